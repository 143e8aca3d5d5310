/// The MIKEY pseudo-random function and its key-derivation labels (RFC 3830 4.1.2–4.1.4).
///
/// Lives in CryptoCore rather than in MIKEY because the download protection (DCF keys from
/// the MTK, TS 33.246 6.5.4) uses the same derivation without any MIKEY payloads.
public enum MIKEYPRF {
    /// MIKEY-1 uses HMAC-SHA-1 (PRF func 0). HMAC-SHA-256 (RFC 6043) is here only so the
    /// third-party SHA-256 vectors in `spec/vectors/mikey-prf.json` can test the plumbing.
    public enum Hash: Sendable { case sha1, sha256 }

    /// RFC 3830 4.1.3 (from a TGK) and 4.1.4 (from a pre-shared key) label constants.
    public enum Constant: UInt32, Sendable {
        // 4.1.3 — keys from a TGK (MBMS download: MTK carried as TGK, cs_id 0).
        case tgkTEK = 0x2AD0_1C64
        case tgkAuthentication = 0x1B5C_7973
        case tgkEncryption = 0x1579_8CEF
        case tgkSalting = 0x39A2_C14B
        // 4.1.4 — keys that protect the KEMAC, from the PSK (MUK for MSK, MSK for MTK messages).
        case pskEncryption = 0x1505_33E1
        case pskAuthentication = 0x2D22_AC75
        case pskSalting = 0x29B8_8916
    }

    /// `constant ‖ cs_id ‖ CSB ID ‖ RAND`. RFC 3830 4.1.4 puts 0xFF in the cs_id position.
    public static func label(_ constant: Constant, csID: UInt8, csbID: UInt32, rand: [UInt8]) -> [UInt8] {
        var l: [UInt8] = []
        l.reserveCapacity(9 + rand.count)
        appendBigEndian(constant.rawValue, to: &l)
        l.append(csID)
        appendBigEndian(csbID, to: &l)
        l.append(contentsOf: rand)
        return l
    }

    /// PRF(inkey, label) truncated to `outputLength` bytes (RFC 3830 4.1.2).
    ///
    /// inkey is split into 256-bit chunks; a final chunk is shorter only when the length is
    /// not a multiple of 256 bits (the minisip empty-key pitfall of `mikey.md` 5.1 avoided).
    public static func derive(inkey: [UInt8], label: [UInt8], outputLength: Int, hash: Hash = .sha1) throws(CryptoError) -> [UInt8] {
        let chunkLength = 32
        let digestLength = hash == .sha1 ? 20 : 32
        let blocks = (outputLength + digestLength - 1) / digestLength
        var output = [UInt8](repeating: 0, count: blocks * digestLength)
        var start = 0
        repeat {
            let end = min(start + chunkLength, inkey.count)
            let s = Array(inkey[start..<end])
            var p = try pFunction(secret: s, label: label, blocks: blocks, hash: hash)
            for i in 0..<output.count { output[i] ^= p[i] }
            SecureZero.zero(&p)
            start = end
        } while start < inkey.count
        output.removeSubrange(outputLength...)
        return output
    }

    /// P(s, label, m) = HMAC(s, A_1 ‖ label) ‖ … ‖ HMAC(s, A_m ‖ label), A_0 = label, A_i = HMAC(s, A_{i-1}).
    static func pFunction(secret: [UInt8], label: [UInt8], blocks: Int, hash: Hash) throws(CryptoError) -> [UInt8] {
        var out: [UInt8] = []
        var a = label
        switch hash {
        case .sha1:
            let mac = try HMACSHA1(key: secret)
            for _ in 0..<blocks {
                a = mac.authenticate(a)
                out += mac.authenticate(a, label)
            }
        case .sha256:
            for _ in 0..<blocks {
                a = try HMACSHA256.authenticate(key: secret, message: a)
                out += try HMACSHA256.authenticate(key: secret, message: a + label)
            }
        }
        return out
    }

    private static func appendBigEndian(_ v: UInt32, to bytes: inout [UInt8]) {
        bytes.append(UInt8(v >> 24)); bytes.append(UInt8(v >> 16 & 0xFF))
        bytes.append(UInt8(v >> 8 & 0xFF)); bytes.append(UInt8(v & 0xFF))
    }
}
