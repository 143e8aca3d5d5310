import CryptoCore

/// Builds MSK delivery messages (BM-SC -> UE, protected with the MUK; TS 33.246 6.4.5.1).
///
/// Pure: the caller supplies the MUK, the TS counter value (per UE, +1 per message), the RAND
/// fixed for this MSK ID (same for all UEs) and a fresh random CSB ID.
public struct MSKDeliveryBuilder: Sendable {
    /// Streaming: SP present, #CS = 1 with an SRTP-ID map. Download: Empty map, no SP.
    public enum Service: Sendable {
        case streaming(policy: SRTPPolicyParameters, policyNumber: UInt8, ssrc: UInt32, roc: UInt32)
        case download
    }

    /// What the KEMAC carries.
    public enum Content: Sendable {
        /// The MSK as TEK with KV Interval (SEQl, SEQu) (TS 33.246 6.4.5.1).
        case key(msk: SecretBytes, seqL: UInt16, seqU: UInt16)
        /// BM-SC solicited pull: MSK ID Key Number 0, Encr data len 0, MAC only, V clear
        /// (TS 33.246 6.3.2.2.4). No SP is sent.
        case solicitedPull
        /// MSK invalidation: key validity with SEQl > SEQu (TS 33.246 6.3.2.1B). The key field
        /// carries the MSK being invalidated.
        case invalidation(msk: SecretBytes, seqL: UInt16, seqU: UInt16)
    }

    public var muk: SecretBytes
    /// IDi: NAF-ID of the BM-SC (FQDN), IDr: B-TID (TS 33.246 6.4.1).
    public var nafID: String
    public var bTID: String
    public var keyDomainID: KeyDomainID
    public var mskID: MSKID
    public var content: Content
    public var service: Service
    public var rand: [UInt8]
    public var csbID: CSBID
    public var timestamp: UInt32
    public var verificationRequested: Bool

    public init(muk: SecretBytes, nafID: String, bTID: String, keyDomainID: KeyDomainID, mskID: MSKID,
                content: Content, service: Service, rand: [UInt8], csbID: CSBID, timestamp: UInt32,
                verificationRequested: Bool) {
        self.muk = muk
        self.nafID = nafID
        self.bTID = bTID
        self.keyDomainID = keyDomainID
        self.mskID = mskID
        self.content = content
        self.service = service
        self.rand = rand
        self.csbID = csbID
        self.timestamp = timestamp
        self.verificationRequested = verificationRequested
    }

    public func build() throws(MIKEYError) -> [UInt8] {
        guard mskID.keyGroup != 0 else { throw .invalidInput(field: "MSK ID", rule: "TS 33.246 6.3.1: Key Group 0 is not allowed") }
        guard rand.count >= 16, rand.count <= 255 else {
            throw .invalidInput(field: "RAND", rule: "RFC 3830 6.11 / TS 33.246 6.4.5.1: RAND of 16 to 255 octets")
        }
        guard !nafID.isEmpty, !bTID.isEmpty, nafID.utf8.count <= 0xFFFF, bTID.utf8.count <= 0xFFFF else {
            throw .invalidInput(field: "IDi/IDr", rule: "RFC 3830 6.7 / TS 33.246 6.4.1: NAF-ID and B-TID of 1 to 65535 octets")
        }
        var keyData: [KeyDataPayload] = []
        var isPull = false
        switch content {
        case let .key(msk, seqL, seqU):
            guard mskID.keyNumber != 0 else { throw .invalidInput(field: "MSK ID", rule: "TS 33.246 6.3.1: Key Number 0 only in a solicited pull") }
            guard msk.count > 0 else { throw .invalidInput(field: "MSK", rule: "TS 33.246 6.4.5.1: MSK must not be empty") }
            guard seqL <= seqU else { throw .invalidInput(field: "key validity", rule: "TS 33.246 6.3.2.1B: SEQl > SEQu means invalidation; use .invalidation") }
            keyData = [KeyDataPayload(type: .tek, key: msk, validity: .interval(KeyValidityInterval(seqL: seqL, seqU: seqU)))]
        case let .invalidation(msk, seqL, seqU):
            guard mskID.keyNumber != 0, msk.count > 0 else { throw .invalidInput(field: "MSK", rule: "TS 33.246 6.3.2.1B: names a specific MSK") }
            guard seqL > seqU else { throw .invalidInput(field: "key validity", rule: "TS 33.246 6.3.2.1B: invalidation needs SEQl > SEQu") }
            keyData = [KeyDataPayload(type: .tek, key: msk, validity: .interval(KeyValidityInterval(seqL: seqL, seqU: seqU)))]
        case .solicitedPull:
            guard mskID.keyNumber == 0 else { throw .invalidInput(field: "MSK ID", rule: "TS 33.246 6.3.2.2.4: solicited pull uses Key Number 0") }
            isPull = true
        }
        let map: CSIDMap
        var sp: SecurityPolicyPayload? = nil
        switch service {
        case let .streaming(policy, policyNumber, ssrc, roc):
            guard policy.rocTransmissionRate != nil else {
                throw .invalidInput(field: "SRTP policy", rule: "TS 33.246 6.6.2.1: the ROC transmission rate R is always signalled")
            }
            map = .srtpID([SRTPCryptoSession(policyNumber: policyNumber, ssrc: ssrc, roc: roc)])
            if !isPull { sp = SecurityPolicyPayload(policyNumber: policyNumber, srtp: policy) }
        case .download:
            map = .empty
        }
        let header = MIKEYHeader(dataType: .preShared, verificationRequested: isPull ? false : verificationRequested,
                                 csbID: csbID, csIDMap: map)
        let ts = Timestamp.counter(timestamp)
        var payloads: [MIKEYPayload] = [
            .generalExtension(.keyID(KeyIDInformation(keyDomainID: keyDomainID, mskID: mskID))),
            .timestamp(ts),
            .rand(RANDPayload(rand)),
            .identity(IdentityPayload(nafID)),
            .identity(IdentityPayload(bTID)),
        ]
        if let sp { payloads.append(.securityPolicy(sp)) }
        let keys = try MIKEYKeyDerivation.pskKeys(psk: muk, csbID: csbID, rand: rand)
        return try KEMACSealing.seal(header: header, payloads: payloads, keyData: keyData, keys: keys, timestamp: ts)
    }
}
