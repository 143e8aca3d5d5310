import CryptoCore

/// RFC 3711 4.3 key derivation with kdr = 0 (TS 33.246 6.4.5.1 / 6.6.2.1: r = 0 always).
public enum SRTPKeyDerivation {
    /// RFC 3711 4.3.2 labels.
    public enum Label: UInt8, Sendable {
        case srtpEncryption = 0x00
        case srtpAuthentication = 0x01
        case srtpSalt = 0x02
        case srtcpEncryption = 0x03
        case srtcpAuthentication = 0x04
        case srtcpSalt = 0x05
    }

    public static let masterSaltLength = 14
    public static let authenticationKeyLength = 20

    /// The first `length` octets of AES-CM(k_m, IV = ((label ‖ r) XOR k_ms) << 16) (RFC 3711 4.3.1, 4.3.3).
    /// The PRF is AES-CM keyed by the master key even when the session cipher is NULL (`srtp.md` 9).
    public static func derive(prf: AESCounterMode, masterSalt: [UInt8], label: Label, length: Int) throws(CryptoError) -> [UInt8] {
        guard masterSalt.count == masterSaltLength else {
            throw .invalidIVLength(algorithm: "SRTP master salt", got: masterSalt.count, expected: masterSaltLength)
        }
        var iv = masterSalt + [0, 0]
        defer { SecureZero.zero(&iv) }
        // key_id = label (8) ‖ r (48) is right-aligned in the 112-bit salt: the label lands on octet 7.
        iv[7] ^= label.rawValue
        return try prf.keystream(iv: iv, count: length)
    }

    /// `derive` into a `SecretBytes`, zeroing the transient array.
    static func deriveSecret(prf: AESCounterMode, masterSalt: [UInt8], label: Label, length: Int) throws(CryptoError) -> SecretBytes {
        var key = try derive(prf: prf, masterSalt: masterSalt, label: label, length: length)
        defer { SecureZero.zero(&key) }
        return SecretBytes(key)
    }

    /// The six session keys of one master key.
    public static func sessionKeyMaterial(masterKey: SecretBytes, masterSalt: [UInt8], cipher: SRTPCipher) throws(CryptoError) -> SessionKeyMaterial {
        let prf = try AESCounterMode(key: masterKey)
        let n = cipher == .null ? 0 : cipher.sessionKeyLength
        return SessionKeyMaterial(
            srtpEncryptionKey: try deriveSecret(prf: prf, masterSalt: masterSalt, label: .srtpEncryption, length: n),
            srtpAuthenticationKey: try deriveSecret(prf: prf, masterSalt: masterSalt, label: .srtpAuthentication, length: authenticationKeyLength),
            srtpSalt: try deriveSecret(prf: prf, masterSalt: masterSalt, label: .srtpSalt, length: masterSaltLength),
            srtcpEncryptionKey: try deriveSecret(prf: prf, masterSalt: masterSalt, label: .srtcpEncryption, length: n),
            srtcpAuthenticationKey: try deriveSecret(prf: prf, masterSalt: masterSalt, label: .srtcpAuthentication, length: authenticationKeyLength),
            srtcpSalt: try deriveSecret(prf: prf, masterSalt: masterSalt, label: .srtcpSalt, length: masterSaltLength))
    }

    public struct SessionKeyMaterial: Sendable {
        public let srtpEncryptionKey: SecretBytes
        public let srtpAuthenticationKey: SecretBytes
        public let srtpSalt: SecretBytes
        public let srtcpEncryptionKey: SecretBytes
        public let srtcpAuthenticationKey: SecretBytes
        public let srtcpSalt: SecretBytes
    }
}
