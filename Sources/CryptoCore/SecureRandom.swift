import COpenSSL

/// The CSPRNG (OpenSSL RAND_bytes, seeded from the OS).
public enum SecureRandom {
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        guard buffer.count > 0 else { return }
        guard mbms_rand_bytes(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), buffer.count) == 1 else {
            throw .randomUnavailable
        }
    }

    public static func bytes(count: Int) throws(CryptoError) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let ok = out.withUnsafeMutableBytes { buffer in
            buffer.count == 0 || mbms_rand_bytes(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), buffer.count) == 1
        }
        guard ok else { throw .randomUnavailable }
        return out
    }
}
