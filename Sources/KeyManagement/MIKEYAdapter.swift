import CryptoCore
import MIKEY

// The MIKEY module's builders behind KeyManagement's two narrow protocols (KeyManagement
// shares MIKEY's identifier types, so nothing is converted).

/// MTK delivery messages (TS 33.246 6.4.5.3) via `MIKEY.MTKDeliveryBuilder`.
public struct MIKEYMTKMessageBuilder: MTKMessageBuilding {
    public init() {}
    public func buildMTKMessage(_ i: MTKMessageInput) throws -> [UInt8] {
        let content: MTKDeliveryBuilder.Content = i.salt.map { .streaming(mtk: i.mtk, salt: $0) } ?? .download(mtk: i.mtk)
        return try MTKDeliveryBuilder(
            msk: i.msk, mskRAND: i.rand, keyDomainID: i.keyDomainID, mskID: i.mskID,
            mtkID: i.mtkID, content: content, csbID: i.csbID, timestamp: i.timestamp).build()
    }
}

/// MSK delivery messages (TS 33.246 6.4.5.1) via `MIKEY.MSKDeliveryBuilder`.
public struct MIKEYMSKMessageBuilder: MSKMessageBuilding {
    public init() {}
    public func buildMSKMessage(_ i: MSKMessageInput) throws -> [UInt8] {
        let service: MSKDeliveryBuilder.Service = i.policy.map {
            .streaming(policy: Self.srtpPolicy($0), policyNumber: 0, ssrc: i.ssrc, roc: i.roc)
        } ?? .download
        return try MSKDeliveryBuilder(
            muk: i.muk, nafID: i.idi, bTID: i.idr, keyDomainID: i.keyDomainID, mskID: i.mskID,
            content: .key(msk: i.msk, seqL: i.keyValidity.seqL, seqU: i.keyValidity.seqU), service: service,
            rand: i.rand, csbID: i.csbID, timestamp: i.timestamp, verificationRequested: i.verify).build()
    }

    /// The SP parameters of a session's policy: RFC 3830 types 0-12 plus the RFC 4771 types
    /// 13-19 (rfc4771.md 6, R-2: the same RCC value in types 2 and 14; R always sent).
    public static func srtpPolicy(_ p: ProtectionPolicyConfiguration) -> SRTPPolicyParameters {
        var s = SRTPPolicyParameters()
        let auth: SRTPAuthenticationAlgorithm
        switch p.authentication {
        case .hmacSHA1_80, .hmacSHA1_32: auth = .hmacSHA1
        case .rccm1: auth = .rccm1
        case .rccm2: auth = .rccm2
        case .rccm3: auth = .rccm3
        }
        s.encryptionAlgorithm = p.cipher == .null ? .null : .aesCM
        s.sessionEncryptionKeyLength = UInt8(p.cipher.keyLength)
        s.authenticationAlgorithm = auth
        s.sessionAuthenticationKeyLength = 20
        s.sessionSaltKeyLength = 14
        s.pseudoRandomFunction = 0
        s.keyDerivationRate = 0
        s.srtpEncryption = p.cipher != .null
        s.srtcpEncryption = p.srtcpEncryption && p.cipher != .null
        s.fecOrder = 0
        s.srtpAuthentication = true
        s.authenticationTagLength = UInt8(p.srtpTagLength)
        s.rocTransmissionRate = p.rocRate
        s.srtpAuthenticationAlgorithm = auth
        s.srtcpAuthenticationAlgorithm = .hmacSHA1
        s.srtpAuthenticationTagLength = UInt8(p.srtpTagLength)
        s.srtcpAuthenticationTagLength = UInt8(p.srtcpTagLength)
        return s
    }
}
