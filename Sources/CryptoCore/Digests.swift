import COpenSSL

/// SHA-1 (FIPS 180-4); used by HMAC and by hash-based identifiers, never alone for integrity.
public enum SHA1 {
    public static let digestLength = 20
    public static func hash(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestLength)
        data.withUnsafeBytes { d in out.withUnsafeMutableBytes { o in
            _ = mbms_sha1(d.baseAddress, d.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
        } }
        return out
    }
}

/// SHA-256 (FIPS 180-4).
public enum SHA256 {
    public static let digestLength = 32
    public static func hash(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestLength)
        data.withUnsafeBytes { d in out.withUnsafeMutableBytes { o in
            _ = mbms_sha256(d.baseAddress, d.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
        } }
        return out
    }
}

/// HMAC-SHA256 (RFC 2104 / RFC 4231); used by the key server (GBA) and the PRF-HMAC-SHA-256 variant.
public enum HMACSHA256 {
    public static let digestLength = 32
    public static func authenticate(key: [UInt8], message: [UInt8]) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestLength)
        let ok = key.withUnsafeBytes { k in message.withUnsafeBytes { m in out.withUnsafeMutableBytes { o in
            mbms_hmac_sha256(k.baseAddress?.assumingMemoryBound(to: UInt8.self), k.count, m.baseAddress, m.count,
                             o.baseAddress!.assumingMemoryBound(to: UInt8.self)) == 1
        } } }
        guard ok else { throw .backendFailure(operation: "HMAC-SHA256") }
        return out
    }
}

/// MD5 (RFC 1321): only for FLUTE Content-MD5 integrity of transport objects (RFC 3926 3.4.2),
/// which receivers check against accidental corruption; never for security.
public enum MD5 {
    public static let digestLength = 16
    public static func hash(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: digestLength)
        data.withUnsafeBytes { d in out.withUnsafeMutableBytes { o in
            _ = mbms_md5(d.baseAddress, d.count, o.baseAddress!.assumingMemoryBound(to: UInt8.self))
        } }
        return out
    }
}
