import MIKEY
import CryptoCore

// The narrow interface KeyManagement needs from the MIKEY module (message builders of
// TS 33.246 6.4.5). KeyManagement decides *what* to send (IDs, counters, keys); MIKEY decides
// the bytes. The MIKEY module satisfies these protocols (an adapter in the CLI or in MIKEY).

/// Inputs of a MIKEY MTK delivery message (TS 33.246 6.4.5.2, `mikey.md` 7.2).
public struct MTKMessageInput: Sendable {
    public let keyDomainID: KeyDomainID
    public let mskID: MSKID
    public let mtkID: MTKID
    /// HDR CSB ID (derived from the MSK's seed, so identical on every gateway).
    public let csbID: CSBID
    /// T payload COUNTER (NTP seconds, TS 33.246 6.3.4.6).
    public let timestamp: UInt32
    /// PSK of the message.
    public let msk: SecretBytes
    /// RAND of the MSK messages of this MSK (key derivation, TS 33.246 6.5.4).
    public let rand: [UInt8]
    public let mtk: SecretBytes
    /// 14-octet SRTP master salt (streaming: Key data TEK+SALT); nil for download (TGK).
    public let salt: SecretBytes?

    public init(keyDomainID: KeyDomainID, mskID: MSKID, mtkID: MTKID, csbID: CSBID, timestamp: UInt32,
                msk: SecretBytes, rand: [UInt8], mtk: SecretBytes, salt: SecretBytes?) {
        self.keyDomainID = keyDomainID
        self.mskID = mskID
        self.mtkID = mtkID
        self.csbID = csbID
        self.timestamp = timestamp
        self.msk = msk
        self.rand = rand
        self.mtk = mtk
        self.salt = salt
    }
}

/// Inputs of a MIKEY MSK delivery message (TS 33.246 6.4.5.1, `mikey.md` 7.1).
public struct MSKMessageInput: Sendable {
    public let keyDomainID: KeyDomainID
    public let mskID: MSKID
    /// Fresh random CSB ID of this message.
    public let csbID: CSBID
    /// Per-UE COUNTER, already committed to the store (`KeyStore.nextMSKMessageCounter`).
    public let timestamp: UInt32
    public let rand: [UInt8]
    /// IDi: NAF-ID FQDN of the BM-SC.
    public let idi: String
    /// IDr: B-TID of the UE.
    public let idr: String
    /// PSK of the message.
    public let muk: SecretBytes
    public let msk: SecretBytes
    public let keyValidity: KeyValidity
    /// V bit: ask the UE for a verification message.
    public let verify: Bool
    /// SRTP policy for the SP payload (streaming); nil for download (no SP, #CS 0, Empty map).
    public let policy: ProtectionPolicyConfiguration?
    /// SRTP-ID map entry of a streaming MSK message (`mikey.md` 3): SSRC and ROC (0 for MBMS
    /// late joiners relying on RFC 4771).
    public let ssrc: UInt32
    public let roc: UInt32

    public init(keyDomainID: KeyDomainID, mskID: MSKID, csbID: CSBID, timestamp: UInt32, rand: [UInt8], idi: String,
                idr: String, muk: SecretBytes, msk: SecretBytes, keyValidity: KeyValidity, verify: Bool,
                policy: ProtectionPolicyConfiguration?, ssrc: UInt32 = 0, roc: UInt32 = 0) {
        self.keyDomainID = keyDomainID
        self.mskID = mskID
        self.csbID = csbID
        self.timestamp = timestamp
        self.rand = rand
        self.idi = idi
        self.idr = idr
        self.muk = muk
        self.msk = msk
        self.keyValidity = keyValidity
        self.verify = verify
        self.policy = policy
        self.ssrc = ssrc
        self.roc = roc
    }
}

public protocol MTKMessageBuilding: Sendable {
    func buildMTKMessage(_ input: MTKMessageInput) throws -> [UInt8]
}

public protocol MSKMessageBuilding: Sendable {
    func buildMSKMessage(_ input: MSKMessageInput) throws -> [UInt8]
}
