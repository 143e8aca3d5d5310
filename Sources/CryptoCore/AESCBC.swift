import COpenSSL

/// AES in CBC mode (one shot). With `padding: true` the RFC 2630 (PKCS#7) padding is
/// added on encryption and checked and removed on decryption (OMA DRM DCF, TS 33.246 6.6.3).
public enum AESCBC {
    public static let blockSize = 16

    public static func encrypt(key: [UInt8], iv: [UInt8], plaintext: [UInt8], padding: Bool = true) throws(CryptoError) -> [UInt8] {
        if !padding && plaintext.count % blockSize != 0 {
            throw .invalidCiphertext(algorithm: "AES-CBC", reason: "plaintext of \(plaintext.count) bytes is not a whole number of blocks and padding is off")
        }
        return try run(encrypt: true, key: key, iv: iv, input: plaintext, padding: padding)
    }

    public static func decrypt(key: [UInt8], iv: [UInt8], ciphertext: [UInt8], padding: Bool = true) throws(CryptoError) -> [UInt8] {
        guard ciphertext.count % blockSize == 0, !(padding && ciphertext.isEmpty) else {
            throw .invalidCiphertext(algorithm: "AES-CBC", reason: "length \(ciphertext.count) is not a positive multiple of 16")
        }
        return try run(encrypt: false, key: key, iv: iv, input: ciphertext, padding: padding)
    }

    private static func run(encrypt: Bool, key: [UInt8], iv: [UInt8], input: [UInt8], padding: Bool) throws(CryptoError) -> [UInt8] {
        guard [16, 24, 32].contains(key.count) else {
            throw .invalidKeyLength(algorithm: "AES-CBC", got: key.count, allowed: [16, 24, 32])
        }
        guard iv.count == blockSize else { throw .invalidIVLength(algorithm: "AES-CBC", got: iv.count, expected: blockSize) }
        var out = [UInt8](repeating: 0, count: input.count + blockSize)
        let n = key.withUnsafeBytes { k in iv.withUnsafeBytes { i in input.withUnsafeBytes { inp in out.withUnsafeMutableBytes { o in
            mbms_aes_cbc(encrypt ? 1 : 0, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count,
                         i.baseAddress!.assumingMemoryBound(to: UInt8.self),
                         inp.baseAddress?.assumingMemoryBound(to: UInt8.self), inp.count,
                         o.baseAddress!.assumingMemoryBound(to: UInt8.self), padding ? 1 : 0)
        } } } }
        guard n >= 0 else {
            if encrypt { throw .backendFailure(operation: "AES-CBC encrypt") }
            throw .invalidCiphertext(algorithm: "AES-CBC", reason: "bad padding")
        }
        out.removeSubrange(Int(n)...)
        return out
    }
}
