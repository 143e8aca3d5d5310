import CryptoCore
import Foundation
import MIKEY
import SRTP

/// A one-line problem with the receiver's inputs: names the file (or option) and the fix.
public struct ReceiverInputError: Error, Equatable, Sendable, CustomStringConvertible {
    public let source: String
    public let problem: String
    public let fix: String

    public init(source: String, problem: String, fix: String) {
        self.source = source
        self.problem = problem
        self.fix = fix
    }

    public var description: String { "\(source): \(problem); \(fix)" }
}

/// The SRTP policy of one key group as the UE learned it (MSK message SP or `keys export-ue`).
public struct KeyGroupPolicy: Sendable, Equatable {
    public var keyGroup: UInt16
    public var policy: SRTPPolicy
    /// Where it came from, for reports ("MSK message SP", "export JSON", "default").
    public var origin: String
}

/// Maps the MIKEY SP parameters of an MSK message (RFC 3830 6.10.1 + RFC 4771 types 13-19) onto
/// the SRTP module's policy. Absent parameters take the RFC 3830 / RFC 4771 defaults.
public enum PolicyMapping {
    public static func srtpPolicy(_ p: SRTPPolicyParameters?) -> SRTPPolicy {
        guard let p else { return SRTPPolicy() }
        let cipher: SRTPCipher
        if p.encryptionAlgorithm == .null || p.srtpEncryption == false {
            cipher = .null
        } else {
            switch p.sessionEncryptionKeyLength ?? 16 {
            case 24: cipher = .aesCM192
            case 32: cipher = .aesCM256
            default: cipher = .aesCM128
            }
        }
        let tag = Int(p.srtpAuthenticationTagLength ?? p.authenticationTagLength ?? 10)
        let auth: SRTPAuthentication
        switch p.effectiveSRTPAuthenticationAlgorithm {
        case .rccm1: auth = .rccm1
        case .rccm2: auth = .rccm2
        case .rccm3: auth = .rccm3
        case .hmacSHA1, .null: auth = tag == 4 ? .hmacSHA1_32 : .hmacSHA1_80
        }
        return SRTPPolicy(cipher: cipher, authentication: auth,
                          rocTransmissionRate: max(1, p.effectiveROCTransmissionRate),
                          rccTagLength: auth.carriesROC ? tag : nil,
                          srtcpEncryption: (p.srtcpEncryption ?? true) && cipher != .null,
                          srtcpTagLength: Int(p.srtcpAuthenticationTagLength ?? 10))
    }

    /// The policy of a `keys export-ue` JSON (`UEExport.Policy` fields).
    public static func srtpPolicy(cipher: String, auth: String, rocRate: UInt16, srtpTagLength: Int, srtcpTagLength: Int,
                                  srtcpEncryption: Bool, source: String) throws(ReceiverInputError) -> SRTPPolicy {
        guard let c = SRTPCipher(rawValue: cipher) else {
            throw ReceiverInputError(source: source, problem: "policy.cipher \"\(cipher)\" is unknown",
                                     fix: "use one of \(SRTPCipher.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard let a = SRTPAuthentication(rawValue: auth) else {
            throw ReceiverInputError(source: source, problem: "policy.auth \"\(auth)\" is unknown",
                                     fix: "use one of \(SRTPAuthentication.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let policy = SRTPPolicy(cipher: c, authentication: a, rocTransmissionRate: max(1, rocRate),
                                rccTagLength: a.carriesROC ? srtpTagLength : nil,
                                srtcpEncryption: srtcpEncryption && c != .null, srtcpTagLength: srtcpTagLength)
        do { try policy.validate() } catch {
            throw ReceiverInputError(source: source, problem: "policy is invalid (\(error))", fix: "export the key group again with `mbms-gateway keys export-ue`")
        }
        return policy
    }

    /// The SP parameters that describe `policy` (used to install an exported MSK through the MGV-F).
    static func parameters(_ policy: SRTPPolicy) -> SRTPPolicyParameters {
        let auth: SRTPAuthenticationAlgorithm
        switch policy.authentication {
        case .hmacSHA1_80, .hmacSHA1_32: auth = .hmacSHA1
        case .rccm1: auth = .rccm1
        case .rccm2: auth = .rccm2
        case .rccm3: auth = .rccm3
        }
        var p = SRTPPolicyParameters.mbmsRecommended(rocTransmissionRate: policy.rocTransmissionRate, authentication: auth,
                                                     srtcpEncryption: policy.srtcpEncryption)
        p.encryptionAlgorithm = policy.cipher == .null ? .null : .aesCM
        p.srtpEncryption = policy.cipher != .null
        p.sessionEncryptionKeyLength = UInt8(policy.cipher == .null ? 16 : policy.cipher.sessionKeyLength)
        let tag: Int
        switch policy.authentication {
        case .hmacSHA1_80: tag = 10
        case .hmacSHA1_32: tag = 4
        case .rccm1, .rccm2, .rccm3: tag = policy.rccTagLength
        }
        p.authenticationTagLength = UInt8(clamping: tag)
        p.srtpAuthenticationTagLength = UInt8(clamping: tag)
        p.srtcpAuthenticationTagLength = UInt8(clamping: policy.srtcpTagLength)
        return p
    }
}

/// The UE's key state: `UEKeyProcessor`s (ME + MGV-F, TS 33.246 6.4.6 / 6.5) plus the SRTP
/// policy of every key group whose MSK it holds.
///
/// Two ways in: MSK messages under the UE's MUK (`loadMSKMessage`), or the MSKs of a
/// `keys export-ue` JSON (`loadUEExport`). An exported MSK is installed by sealing it into an
/// MSK message under a local random MUK and passing that through the same MGV-F checks (a
/// second processor, so the MSK-message TS counter of the real MUK is untouched); every MTK
/// message then goes through one code path.
public struct UEKeyState: Sendable {
    private var mukProcessor: UEKeyProcessor?
    private var exportProcessor: UEKeyProcessor?
    public private(set) var policies: [UInt16: KeyGroupPolicy] = [:]
    /// MSKs held, by key group (for reports and flow binding).
    public private(set) var msks: [UInt16: [DeliveredMSK]] = [:]
    private var synthesizedTimestamp: UInt32 = 0

    /// A UE with a real MUK (from GBA), its NAF-ID (IDi) and B-TID (IDr).
    public init(muk: SecretBytes, nafID: String, bTID: String) {
        mukProcessor = UEKeyProcessor(muk: muk, nafID: nafID, bTID: bTID)
    }

    /// A UE that gets its MSKs only from export JSON.
    public init() {}

    /// Processes an MSK message (the bytes `keys deliver --output` writes). `source` names the
    /// file in errors.
    @discardableResult
    public mutating func loadMSKMessage(_ bytes: [UInt8], source: String) throws(ReceiverInputError) -> DeliveredMSK {
        guard var processor = mukProcessor else {
            throw ReceiverInputError(source: source, problem: "an MSK message needs the UE's MUK", fix: "give --muk, --ue-id and --naf-id")
        }
        let result = processor.process(bytes)
        mukProcessor = processor
        switch result {
        case .success(.msk(let msk, _)):
            record(msk, policyOrigin: "MSK message SP")
            return msk
        case .success(.mskInvalidated(_, let id, _)):
            throw ReceiverInputError(source: source, problem: "the MSK message invalidates \(id) (SEQl > SEQu)",
                                     fix: "deliver the current MSK with `mbms-gateway keys deliver`")
        case .success(.solicitedPull):
            throw ReceiverInputError(source: source, problem: "the MSK message is a solicited pull (Key Number 0) and carries no MSK",
                                     fix: "deliver the MSK itself with `mbms-gateway keys deliver`")
        case .success(.mtk):
            throw ReceiverInputError(source: source, problem: "this is an MTK message, not an MSK message",
                                     fix: "pass the file written by `mbms-gateway keys deliver --output`")
        case .failure(let r):
            throw ReceiverInputError(source: source, problem: "MSK message rejected: \(Self.describe(r))", fix: Self.fix(for: r))
        }
    }

    /// Installs the MSKs of one `keys export-ue` JSON document (one key group).
    @discardableResult
    public mutating func loadUEExport(_ data: Data, source: String) throws(ReceiverInputError) -> [DeliveredMSK] {
        let export: ExportDocument
        do { export = try JSONDecoder().decode(ExportDocument.self, from: data) } catch {
            throw ReceiverInputError(source: source, problem: "not a `keys export-ue` JSON document (\(Self.shortDecodingError(error)))",
                                     fix: "write it with `mbms-gateway keys export-ue --key-group N > FILE.json`")
        }
        guard let domainBytes = try? Hex.decode(export.keyDomainID), let domain = KeyDomainID(bytes: domainBytes) else {
            throw ReceiverInputError(source: source, problem: "keyDomainID \"\(export.keyDomainID)\" is not 3 octets of hex",
                                     fix: "export the key group again with `mbms-gateway keys export-ue`")
        }
        var policy = SRTPPolicy()
        var origin = "default (export has no policy)"
        if let p = export.policy {
            policy = try PolicyMapping.srtpPolicy(cipher: p.cipher, auth: p.auth, rocRate: p.rocRate, srtpTagLength: p.srtpTagLength,
                                                  srtcpTagLength: p.srtcpTagLength, srtcpEncryption: p.srtcpEncryption, source: source)
            origin = "export JSON"
        }
        guard !export.msks.isEmpty else {
            throw ReceiverInputError(source: source, problem: "the export holds no MSK", fix: "export a key group that has a current MSK")
        }
        var processor: UEKeyProcessor
        if let p = exportProcessor {
            processor = p
        } else {
            do {
                processor = UEKeyProcessor(muk: try SecretBytes.random(count: 32), nafID: "receiver.local", bTID: "export@receiver.local")
            } catch {
                throw ReceiverInputError(source: source, problem: "no random bytes for the local MUK (\(error))", fix: "check the OpenSSL installation")
            }
        }
        defer { exportProcessor = processor }
        var out: [DeliveredMSK] = []
        // Oldest first, so the MGV-F keeps the two newest (6.5.3).
        for m in export.msks.sorted(by: { $0.keyNumber < $1.keyNumber }) {
            guard let key = try? Hex.decode(m.msk), !key.isEmpty else {
                throw ReceiverInputError(source: source, problem: "msks[\(m.mskID)].msk is not hex", fix: "export the key group again")
            }
            guard let rand = try? Hex.decode(m.rand), rand.count >= 16 else {
                throw ReceiverInputError(source: source, problem: "msks[\(m.mskID)].rand is not 16+ octets of hex", fix: "export the key group again")
            }
            guard m.keyGroup != 0, m.keyNumber != 0 else {
                throw ReceiverInputError(source: source, problem: "MSK \(m.mskID) has Key Group or Key Number 0 (TS 33.246 6.3.1)",
                                         fix: "export the key group again")
            }
            synthesizedTimestamp &+= 1
            let builder = MSKDeliveryBuilder(
                muk: processor.muk, nafID: String(decoding: processor.nafID, as: UTF8.self),
                bTID: String(decoding: processor.bTID, as: UTF8.self), keyDomainID: domain,
                mskID: MSKID(keyGroup: m.keyGroup, keyNumber: m.keyNumber),
                content: .key(msk: SecretBytes(key), seqL: m.seqL, seqU: m.seqU),
                service: .streaming(policy: PolicyMapping.parameters(policy), policyNumber: 0, ssrc: 0, roc: 0),
                rand: rand, csbID: CSBID(UInt32(truncatingIfNeeded: synthesizedTimestamp) ^ 0x5A5A_0000),
                timestamp: synthesizedTimestamp, verificationRequested: false)
            let bytes: [UInt8]
            do { bytes = try builder.build() } catch {
                throw ReceiverInputError(source: source, problem: "MSK \(m.mskID) cannot be installed: \(error)", fix: "export the key group again")
            }
            switch processor.process(bytes) {
            case .success(.msk(let msk, _)):
                record(msk, policy: policy, policyOrigin: origin)
                out.append(msk)
            case .success:
                throw ReceiverInputError(source: source, problem: "MSK \(m.mskID) was not installed", fix: "export the key group again")
            case .failure(let r):
                throw ReceiverInputError(source: source, problem: "MSK \(m.mskID) rejected: \(Self.describe(r))", fix: "export the key group again")
            }
        }
        return out
    }

    /// Processes a MIKEY message from the capture (normally an MTK message on UDP 2269): the
    /// processor that holds the MSK answers; with none, the first one's rejection is returned.
    public mutating func process(_ bytes: [UInt8]) -> Result<UEKeyOutcome, UEKeyRejection> {
        var first: Result<UEKeyOutcome, UEKeyRejection>? = nil
        if var p = mukProcessor {
            let r = p.process(bytes)
            mukProcessor = p
            if case .success(.msk(let msk, _)) = r { record(msk, policyOrigin: "MSK message SP") }
            if case .failure(.unknownMSK) = r {} else if case .failure(.unknownMUK) = r {} else { return r }
            first = r
        }
        if var p = exportProcessor {
            let r = p.process(bytes)
            exportProcessor = p
            if case .failure(.unknownMSK) = r, let first { return first }
            if case .failure(.unknownMUK) = r, let first { return first }
            return r
        }
        return first ?? .failure(.notMBMSMessage(reason: "the receiver holds no key material"))
    }

    /// True when no MSK is held at all.
    public var isEmpty: Bool { msks.isEmpty }

    public func policy(keyGroup: UInt16) -> KeyGroupPolicy? { policies[keyGroup] }

    private mutating func record(_ msk: DeliveredMSK, policy explicit: SRTPPolicy? = nil, policyOrigin: String) {
        let group = msk.mskID.keyGroup
        var list = msks[group] ?? []
        list.removeAll { $0.mskID == msk.mskID }
        list.append(msk)
        msks[group] = list
        let policy = explicit ?? PolicyMapping.srtpPolicy(msk.srtpPolicy)
        policies[group] = KeyGroupPolicy(keyGroup: group, policy: policy,
                                         origin: explicit == nil && msk.srtpPolicy == nil ? "default (MSK message has no SP)" : policyOrigin)
    }

    static func describe(_ r: UEKeyRejection) -> String {
        switch r {
        case .malformed(let e): return "malformed MIKEY (\(e))"
        case .notMBMSMessage(let reason): return "not an MBMS key message: \(reason)"
        case .nullAlgorithm(let field): return "\(field) is NULL (TS 33.246 6.4.1)"
        case .unknownMUK: return "IDi/IDr do not name this UE (NAF-ID + B-TID, TS 33.246 6.4.5.1)"
        case let .unknownMSK(_, id): return "MTK message under \(id), which the UE does not hold (6.4.6.2)"
        case .macMismatch: return "KEMAC MAC does not verify (6.5.3/6.5.4)"
        case let .replayedMSKTimestamp(s, t): return "MSK message TS \(t) not greater than stored \(s) (6.4.6.1)"
        case let .replayedMTKTimestamp(s, t): return "MTK message TS \(t) not greater than stored \(s) (6.4.6.2)"
        case let .mtkIDNotIncreasing(c, t): return "\(t) not greater than current \(c) (6.4.6.2)"
        case let .mtkIDOutsideKeyValidity(l, u, t): return "\(t) outside SEQl \(l) < MTK ID <= SEQu \(u) (6.5.4)"
        case .invalidKeyData(let reason): return "invalid key data: \(reason)"
        }
    }

    static func fix(for r: UEKeyRejection) -> String {
        switch r {
        case .unknownMUK: return "check --ue-id (B-TID) and --naf-id (bmscFQDN of the gateway configuration)"
        case .macMismatch: return "check --muk: the MSK message was protected under another MUK"
        default: return "deliver the MSK again with `mbms-gateway keys deliver`"
        }
    }

    static func shortDecodingError(_ e: any Error) -> String {
        if let d = e as? DecodingError {
            switch d {
            case .keyNotFound(let k, _): return "missing key \"\(k.stringValue)\""
            case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c):
                let path = c.codingPath.map(\.stringValue).joined(separator: ".")
                return path.isEmpty ? c.debugDescription : "\(path): \(c.debugDescription)"
            @unknown default: return "\(d)"
            }
        }
        return "\(e)"
    }
}

/// The fields of `KeyManagement.UEExport` that the receiver needs (same JSON).
struct ExportDocument: Decodable {
    struct MSK: Decodable {
        var mskID: String
        var keyGroup: UInt16
        var keyNumber: UInt16
        var msk: String
        var rand: String
        var seqL: UInt16
        var seqU: UInt16
    }
    struct Policy: Decodable {
        var cipher: String
        var auth: String
        var rocRate: UInt16
        var srtpTagLength: Int
        var srtcpTagLength: Int
        var srtcpEncryption: Bool
    }
    var keyDomainID: String
    var keyGroup: UInt16
    var msks: [MSK]
    var policy: Policy?
}
