import CryptoCore

/// Builds MTK delivery messages (BM-SC -> UEs on UDP 2269, protected with the MSK;
/// TS 33.246 6.4.5.3): HDR (V clear, Empty map), EXT (Key Domain ID, MSK ID, MTK ID),
/// T COUNTER, KEMAC. No RAND: the keys come from the MSK and the MSK message's RAND.
public struct MTKDeliveryBuilder: Sendable {
    public enum Content: Sendable {
        /// Streaming: TEK+SALT with the 112-bit SRTP master salt, KV Null.
        case streaming(mtk: SecretBytes, salt: SecretBytes)
        /// Download: the MTK as TGK, KV Null (keys for the DCF derived with 4.1.3).
        case download(mtk: SecretBytes)
    }

    public var msk: SecretBytes
    /// RAND of the MSK message that delivered `msk` (TS 33.246 6.5.4).
    public var mskRAND: [UInt8]
    public var keyDomainID: KeyDomainID
    public var mskID: MSKID
    public var mtkID: MTKID
    public var content: Content
    public var csbID: CSBID
    /// Per-MSK MTK counter (or NTP seconds with several BM-SCs, 6.3.4.6).
    public var timestamp: UInt32

    public init(msk: SecretBytes, mskRAND: [UInt8], keyDomainID: KeyDomainID, mskID: MSKID, mtkID: MTKID,
                content: Content, csbID: CSBID, timestamp: UInt32) {
        self.msk = msk
        self.mskRAND = mskRAND
        self.keyDomainID = keyDomainID
        self.mskID = mskID
        self.mtkID = mtkID
        self.content = content
        self.csbID = csbID
        self.timestamp = timestamp
    }

    public func build() throws(MIKEYError) -> [UInt8] {
        guard mskID.keyGroup != 0, mskID.keyNumber != 0 else {
            throw .invalidInput(field: "MSK ID", rule: "TS 33.246 6.3.1: Key Group 0 not allowed; an MTK names a specific MSK")
        }
        guard mtkID.rawValue != 0, mtkID.rawValue != 0xFFFF else {
            throw .invalidInput(field: "MTK ID", rule: "TS 33.246 6.3.1: MTK IDs start above 0; 0xFFFF is not used")
        }
        guard !mskRAND.isEmpty else { throw .invalidInput(field: "MSK RAND", rule: "TS 33.246 6.5.4: the MSK message's RAND") }
        let keyData: KeyDataPayload
        switch content {
        case let .streaming(mtk, salt):
            guard [16, 24, 32].contains(mtk.count) else { throw .invalidInput(field: "MTK", rule: "TS 33.246 6.4.5.3: SRTP master key of 16, 24 or 32 octets") }
            guard salt.count == 14 else { throw .invalidInput(field: "salt", rule: "TS 33.246 6.4.5.3: 112-bit SRTP master salt") }
            keyData = KeyDataPayload(type: .tekSalt, key: mtk, salt: salt, validity: .null)
        case let .download(mtk):
            guard mtk.count > 0 else { throw .invalidInput(field: "MTK", rule: "TS 33.246 6.4.5.3: MTK must not be empty") }
            keyData = KeyDataPayload(type: .tgk, key: mtk, validity: .null)
        }
        let header = MIKEYHeader(dataType: .preShared, verificationRequested: false, csbID: csbID, csIDMap: .empty)
        let ts = Timestamp.counter(timestamp)
        let payloads: [MIKEYPayload] = [
            .generalExtension(.keyID(KeyIDInformation(keyDomainID: keyDomainID, mskID: mskID, mtkID: mtkID))),
            .timestamp(ts),
        ]
        let keys = try MIKEYKeyDerivation.pskKeys(psk: msk, csbID: csbID, rand: mskRAND)
        return try KEMACSealing.seal(header: header, payloads: payloads, keyData: [keyData], keys: keys, timestamp: ts)
    }
}
