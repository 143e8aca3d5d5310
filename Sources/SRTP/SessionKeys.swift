import CryptoCore

/// The keyed transforms of one master key (one MTK) for one thread: SRTP and SRTCP
/// ciphers, HMAC states, session salts and the MKI. Derived once per MTK (kdr = 0).
///
/// The AES contexts are mutated per packet, so an instance belongs to one thread;
/// `copy()` gives another worker its own contexts without re-deriving.
public final class SRTPSessionKeys: @unchecked Sendable {
    public let mki: MasterKeyIdentifier
    public let cipher: SRTPCipher

    let srtpCipher: AESCounterMode?
    /// The same k_e for many packets per call (batch protect); nil with the NULL cipher, or if
    /// a copy's context could not be allocated (the batch path then encrypts packet by packet).
    let srtpCipherBatch: AESCounterModeBatch?
    let srtpAuth: HMACSHA1
    /// The same k_a keyed for multi-packet HMAC-SHA1 (batch protect).
    let srtpAuthBatch: HMACSHA1Batch
    let srtpSalt: SaltWords
    let srtcpCipher: AESCounterMode?
    let srtcpAuth: HMACSHA1
    let srtcpSalt: SaltWords
    /// The packet indices a sender may use under this master key (`SenderIndexBlock`).
    public let senderIndices: SenderIndexBlock

    /// - Parameters:
    ///   - masterKey: the MTK (16, 24 or 32 octets).
    ///   - masterSalt: the 112-bit salt delivered with the MTK.
    ///   - senderIndices: what a sender may use; the whole index space by default.
    public init(masterKey: SecretBytes, masterSalt: [UInt8], mki: MasterKeyIdentifier, cipher: SRTPCipher,
                senderIndices: SenderIndexBlock = .unrestricted) throws(CryptoError) {
        if cipher != .null && masterKey.count != cipher.sessionKeyLength {
            throw .invalidKeyLength(algorithm: "SRTP master key for \(cipher.rawValue)", got: masterKey.count, allowed: [cipher.sessionKeyLength])
        }
        let m = try SRTPKeyDerivation.sessionKeyMaterial(masterKey: masterKey, masterSalt: masterSalt, cipher: cipher)
        self.mki = mki
        self.cipher = cipher
        self.senderIndices = senderIndices
        srtpCipher = cipher == .null ? nil : try AESCounterMode(key: m.srtpEncryptionKey)
        srtpCipherBatch = cipher == .null ? nil : try AESCounterModeBatch(key: m.srtpEncryptionKey)
        srtpAuth = try HMACSHA1(key: m.srtpAuthenticationKey)
        srtpAuthBatch = HMACSHA1Batch(key: m.srtpAuthenticationKey)
        srtpSalt = SaltWords(m.srtpSalt)
        srtcpCipher = cipher == .null ? nil : try AESCounterMode(key: m.srtcpEncryptionKey)
        srtcpAuth = try HMACSHA1(key: m.srtcpAuthenticationKey)
        srtcpSalt = SaltWords(m.srtcpSalt)
    }

    public convenience init(masterKey: [UInt8], masterSalt: [UInt8], mki: MasterKeyIdentifier, cipher: SRTPCipher,
                            senderIndices: SenderIndexBlock = .unrestricted) throws(CryptoError) {
        try self.init(masterKey: SecretBytes(masterKey), masterSalt: masterSalt, mki: mki, cipher: cipher, senderIndices: senderIndices)
    }

    private init(copying o: SRTPSessionKeys) {
        mki = o.mki
        cipher = o.cipher
        senderIndices = o.senderIndices
        srtpCipher = o.srtpCipher?.copy()
        srtpCipherBatch = try? o.srtpCipherBatch?.copy()
        srtpAuth = o.srtpAuth
        srtpAuthBatch = o.srtpAuthBatch
        srtpSalt = o.srtpSalt
        srtcpCipher = o.srtcpCipher?.copy()
        srtcpAuth = o.srtcpAuth
        srtcpSalt = o.srtcpSalt
    }

    /// Independent cipher contexts with the same keys (HMAC states are read-only and shared).
    public func copy() -> SRTPSessionKeys { SRTPSessionKeys(copying: self) }
}

/// The packet indices one sender (one process) may use under one master key: the block of RTP
/// ROC values and the block of SRTCP indices it reserved in the key store before using them
/// (`DESIGN.md` §7). Every SSRC of the sender draws from the same blocks; since the blocks of
/// two processes (or of one process before and after a restart) never overlap, and each
/// stream's indices only move forward, no (MTK, SSRC, index) is used twice.
public struct SenderIndexBlock: Sendable, Equatable, CustomStringConvertible {
    /// First ROC value of the block.
    public var rocFloor: UInt32
    /// One past the last ROC value of the block (at most 2^32).
    public var rocLimit: UInt64
    /// First SRTCP index of the block.
    public var srtcpFloor: UInt32
    /// One past the last SRTCP index of the block (at most 2^31).
    public var srtcpLimit: UInt64

    public init(rocFloor: UInt32, rocLimit: UInt64, srtcpFloor: UInt32, srtcpLimit: UInt64) {
        self.rocFloor = rocFloor
        self.rocLimit = Swift.min(rocLimit, 1 << 32)
        self.srtcpFloor = srtcpFloor
        self.srtcpLimit = Swift.min(srtcpLimit, 1 << 31)
    }

    /// Every index (a single sender that no other sender, before or after, shares the key with).
    public static let unrestricted = SenderIndexBlock(rocFloor: 0, rocLimit: 1 << 32, srtcpFloor: 0, srtcpLimit: 1 << 31)

    public var description: String { "ROC \(rocFloor)..<\(rocLimit), SRTCP index \(srtcpFloor)..<\(srtcpLimit)" }
}

/// A 112-bit session salt as two big-endian words, pre-shifted into IV position (k_s << 16).
struct SaltWords: Sendable {
    let high: UInt64   // IV octets 0...7
    let low: UInt64    // IV octets 8...15 (salt octets 8...13, then 00 00)

    /// From a 112-bit session salt (held as `SecretBytes`, so no copy of it outlives the keys).
    init(_ salt: SecretBytes) {
        var h: UInt64 = 0, l: UInt64 = 0
        salt.withUnsafeBytes { b in
            guard b.count >= 14 else { return }
            for i in 0..<8 { h = h << 8 | UInt64(b[i]) }
            for i in 8..<14 { l = l << 8 | UInt64(b[i]) }
        }
        high = h
        low = l << 16
    }

    /// RFC 3711 4.1.1: IV = (k_s · 2^16) XOR (SSRC · 2^64) XOR (i · 2^16), written big-endian.
    @inline(__always)
    func iv(ssrc: UInt32, index: UInt64) -> (UInt64, UInt64) {
        ((high ^ UInt64(ssrc)).bigEndian, (low ^ (index << 16)).bigEndian)
    }
}
