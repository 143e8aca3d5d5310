import COpenSSL

/// HMAC-SHA1 (RFC 2104) with the inner and outer SHA-1 states precomputed at keying time,
/// so each message costs only the hashing of its own bytes plus two finalisations.
///
/// Read-only after init: one instance may be used from many threads at once.
public final class HMACSHA1: @unchecked Sendable {
    public static let digestLength = 20
    private let state: UnsafeMutablePointer<mbms_hmac_sha1_state>

    public init(key: UnsafeRawBufferPointer) throws(CryptoError) {
        guard let s = mbms_hmac_sha1_new(key.baseAddress?.assumingMemoryBound(to: UInt8.self), key.count) else {
            throw .backendFailure(operation: "HMAC-SHA1 key setup")
        }
        state = s
    }

    public convenience init(key: [UInt8]) throws(CryptoError) {
        let s = key.withUnsafeBytes { mbms_hmac_sha1_new($0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count) }
        guard let s else { throw .backendFailure(operation: "HMAC-SHA1 key setup") }
        self.init(state: s)
    }

    public convenience init(key: SecretBytes) throws(CryptoError) {
        let s = key.withUnsafeBytes { mbms_hmac_sha1_new($0.baseAddress?.assumingMemoryBound(to: UInt8.self), $0.count) }
        guard let s else { throw .backendFailure(operation: "HMAC-SHA1 key setup") }
        self.init(state: s)
    }

    private init(state: UnsafeMutablePointer<mbms_hmac_sha1_state>) { self.state = state }

    deinit { mbms_hmac_sha1_free(state) }

    /// HMAC-SHA1(key, a || b) written to `out` (20 bytes). Hot path: no allocation.
    @inline(__always)
    public func authenticate(_ a: UnsafeRawPointer?, _ aCount: Int, _ b: UnsafeRawPointer?, _ bCount: Int,
                             into out: UnsafeMutableRawPointer) {
        mbms_hmac_sha1_2(state, a, aCount, b, bCount, out.assumingMemoryBound(to: UInt8.self))
    }

    /// HMAC-SHA1 of the concatenation of `parts`.
    public func authenticate(_ parts: [UInt8]...) -> [UInt8] {
        let joined = parts.count == 1 ? parts[0] : parts.flatMap { $0 }
        var out = [UInt8](repeating: 0, count: Self.digestLength)
        joined.withUnsafeBytes { m in
            out.withUnsafeMutableBytes { o in authenticate(m.baseAddress, m.count, nil, 0, into: o.baseAddress!) }
        }
        return out
    }

    /// One-shot HMAC-SHA1.
    public static func authenticate(key: [UInt8], message: [UInt8]) throws(CryptoError) -> [UInt8] {
        try HMACSHA1(key: key).authenticate(message)
    }
}
