import CryptoCore

/// The DCF encryption and authentication keys of one MTK (TS 33.246 6.5.4 → RFC 3830 4.1.3).
///
/// `K_enc = PRF(MTK, 0x15798CEF ‖ cs_id ‖ CSB ID ‖ RAND)` (128 bits) and
/// `K_auth = PRF(MTK, 0x1B5C7973 ‖ cs_id ‖ CSB ID ‖ RAND)` (160 bits), with cs_id one zero
/// octet (`dcf.md` 8, D5), CSB ID from the MIKEY MTK message's HDR, RAND the MIKEY-RAND stored
/// with the MSK.
public struct DCFKeys: Sendable {
    public let encryptionKey: SecretBytes
    public let authenticationKey: SecretBytes

    public static let encryptionKeyLength = 16
    public static let authenticationKeyLength = 20

    public init(encryptionKey: SecretBytes, authenticationKey: SecretBytes) {
        self.encryptionKey = encryptionKey
        self.authenticationKey = authenticationKey
    }

    /// Derives both keys from the MTK (`dcf.md` 8).
    public static func derive(mtk: SecretBytes, csbID: UInt32, rand: [UInt8]) throws(DCFError) -> DCFKeys {
        var key = mtk.revealedBytes()
        defer { SecureZero.zero(&key) }
        do {
            var enc = try MIKEYPRF.derive(inkey: key, label: MIKEYPRF.label(.tgkEncryption, csID: 0, csbID: csbID, rand: rand),
                                          outputLength: encryptionKeyLength)
            var auth = try MIKEYPRF.derive(inkey: key, label: MIKEYPRF.label(.tgkAuthentication, csID: 0, csbID: csbID, rand: rand),
                                           outputLength: authenticationKeyLength)
            defer { SecureZero.zero(&enc); SecureZero.zero(&auth) }
            return DCFKeys(encryptionKey: SecretBytes(enc), authenticationKey: SecretBytes(auth))
        } catch {
            throw .crypto(error)
        }
    }
}

/// The key named by an MBMS DCF: Key Domain ID (3) ‖ MSK ID (4) ‖ MTK ID (2), carried as
/// base64 text in the 'obki' KeyID (TS 33.246 6.6.3.2; `dcf.md` 4.5).
public struct MBMSKeyID: Hashable, Sendable {
    /// MCC ‖ MNC, 3 bytes (TS 24.008 PLMN encoding, e.g. `00 f1 10` for 001/01).
    public let keyDomainID: [UInt8]
    /// Key Group (2) ‖ Key Number (2).
    public let mskID: UInt32
    public let mtkID: UInt16

    /// Nil unless `keyDomainID` is exactly 3 bytes.
    public init?(keyDomainID: [UInt8], mskID: UInt32, mtkID: UInt16) {
        guard keyDomainID.count == 3 else { return nil }
        self.keyDomainID = keyDomainID; self.mskID = mskID; self.mtkID = mtkID
    }

    /// The 9 raw bytes KDID ‖ MSK ID ‖ MTK ID.
    public var rawBytes: [UInt8] {
        keyDomainID + [UInt8(mskID >> 24), UInt8(mskID >> 16 & 0xFF), UInt8(mskID >> 8 & 0xFF), UInt8(mskID & 0xFF),
                       UInt8(mtkID >> 8), UInt8(mtkID & 0xFF)]
    }

    /// base64 of the raw bytes: always 12 characters, never padded.
    public var base64: String { Base64.encode(rawBytes) }

    /// Parses the 'obki' KeyID text; nil unless it is canonical base64 of exactly 9 bytes.
    public init?(base64 text: String) {
        guard let raw = Base64.decode(text), raw.count == 9 else { return nil }
        keyDomainID = Array(raw[0..<3])
        mskID = raw[3..<7].reduce(0) { $0 << 8 | UInt32($1) }
        mtkID = raw[7..<9].reduce(0) { $0 << 8 | UInt16($1) }
    }
}

/// RFC 4648 §4 base64 (standard alphabet, padded), strict on decode.
enum Base64 {
    private static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i], b1 = i + 1 < bytes.count ? bytes[i + 1] : 0, b2 = i + 2 < bytes.count ? bytes[i + 2] : 0
            out.append(alphabet[Int(b0 >> 2)])
            out.append(alphabet[Int((b0 & 0x03) << 4 | b1 >> 4)])
            out.append(i + 1 < bytes.count ? alphabet[Int((b1 & 0x0F) << 2 | b2 >> 6)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(b2 & 0x3F)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        var i = 0
        while i < chars.count {
            var v: UInt32 = 0
            var pad = 0
            for j in 0..<4 {
                let c = chars[i + j]
                let d: UInt32
                switch c {
                case UInt8(ascii: "A")...UInt8(ascii: "Z"): d = UInt32(c - UInt8(ascii: "A"))
                case UInt8(ascii: "a")...UInt8(ascii: "z"): d = UInt32(c - UInt8(ascii: "a") + 26)
                case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0") + 52)
                case UInt8(ascii: "+"): d = 62
                case UInt8(ascii: "/"): d = 63
                case UInt8(ascii: "="):
                    guard i + 4 == chars.count, j >= 2 else { return nil }
                    pad += 1; d = 0
                default: return nil
                }
                if pad > 0 && c != UInt8(ascii: "=") { return nil }
                v = v << 6 | d
            }
            out.append(UInt8(v >> 16 & 0xFF))
            if pad < 2 { out.append(UInt8(v >> 8 & 0xFF)) }
            if pad < 1 { out.append(UInt8(v & 0xFF)) }
            i += 4
        }
        return out
    }
}
