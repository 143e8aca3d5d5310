import CryptoCore

/// Key Domain ID + Key Group: the scope in which the UE keeps at most two MSKs and two MTKs
/// (TS 33.246 6.5.3; one key group protects one RTP session or FLUTE channel).
public struct KeyGroupReference: Hashable, Sendable {
    public var keyDomainID: KeyDomainID
    public var keyGroup: UInt16
    public init(keyDomainID: KeyDomainID, keyGroup: UInt16) {
        self.keyDomainID = keyDomainID
        self.keyGroup = keyGroup
    }
}

/// An MSK the MGV-F accepted (TS 33.246 6.5.3).
public struct DeliveredMSK: Sendable, CustomStringConvertible {
    public let keyDomainID: KeyDomainID
    public let mskID: MSKID
    public let key: SecretBytes
    /// Key validity as delivered: SEQl < MTK ID <= SEQu.
    public let seqL: UInt32
    public let seqU: UInt32
    /// RAND of the MSK message, needed for every MTK message under this MSK (6.5.4).
    public let rand: [UInt8]
    public let timestamp: UInt32
    /// The SRTP policy, released only now that the MGV-F accepted the message (6.4.6.1).
    public let srtpPolicy: SRTPPolicyParameters?
    public let csIDMap: CSIDMap

    public var description: String { "DeliveredMSK(\(keyDomainID), \(mskID), SEQl \(seqL), SEQu \(seqU), key redacted)" }
}

/// An MTK the MGV-F accepted (TS 33.246 6.5.4).
public struct DeliveredMTK: Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable { case streaming, download }

    public let keyDomainID: KeyDomainID
    public let mskID: MSKID
    public let mtkID: MTKID
    public let kind: Kind
    /// SRTP master key (streaming) or TGK (download).
    public let key: SecretBytes
    /// 112-bit SRTP master salt (streaming only).
    public let salt: SecretBytes?
    /// CSB ID of the MTK message and RAND of the MSK message: inputs of the download keys.
    public let csbID: CSBID
    public let mskRAND: [UInt8]
    public let timestamp: UInt32

    /// SRTP MKI = MSK ID || MTK ID (TS 33.246 6.6.2.1).
    public var mki: [UInt8] {
        var w = ByteWriter(capacity: 6)
        w.write(mskID.rawValue)
        w.write(mtkID.rawValue)
        return w.finish()
    }

    /// DCF keys from a download MTK (TS 33.246 6.5.4).
    public func downloadKeys() throws(MIKEYError) -> DownloadKeys {
        try MIKEYKeyDerivation.downloadKeys(mtk: key, csbID: csbID, rand: mskRAND)
    }

    public var description: String { "DeliveredMTK(\(keyDomainID), \(mskID), \(mtkID), \(kind), key redacted)" }
}

/// What the processor returns for an accepted message.
public enum UEKeyOutcome: Sendable {
    /// New or updated MSK; `verificationMessage` is set when the MSK message had V = 1.
    case msk(DeliveredMSK, verificationMessage: [UInt8]?)
    /// SEQl > SEQu: the MSK is deleted (TS 33.246 6.3.2.1B).
    case mskInvalidated(KeyDomainID, MSKID, verificationMessage: [UInt8]?)
    /// Key Number 0, no key: the BM-SC asks the UE to request the current MSK (6.3.2.2.4).
    case solicitedPull(KeyGroupReference)
    case mtk(DeliveredMTK)
}

/// Why the processor discards a message. Carries no key material.
public enum UEKeyRejection: Error, Equatable, Sendable {
    /// The bytes are not a well-formed MIKEY message (or the decrypted Key data is not).
    case malformed(MIKEYError)
    /// Well-formed MIKEY but not an MSK or MTK message as TS 33.246 6.4.5 profiles them.
    case notMBMSMessage(reason: String)
    /// NULL encryption or MAC in the KEMAC (TS 33.246 6.4.1 forbids them).
    case nullAlgorithm(field: String)
    /// IDi/IDr do not name this UE's MUK (TS 33.246 6.4.5.1: MUK ID = NAF-ID + B-TID).
    case unknownMUK
    /// An MTK message under an MSK the UE does not hold (6.4.6.2).
    case unknownMSK(KeyDomainID, MSKID)
    /// The KEMAC MAC does not verify with the MUK / MSK (6.5.3, 6.5.4).
    case macMismatch
    /// MSK message TS not greater (RFC 1982) than the last one for this MUK (6.4.3, 6.4.6.1).
    case replayedMSKTimestamp(stored: UInt32, received: UInt32)
    /// MTK message TS not greater (RFC 1982) than the last one for this MSK (6.4.3, 6.4.6.2).
    case replayedMTKTimestamp(stored: UInt32, received: UInt32)
    /// MTK ID not greater than the current MTK ID (6.4.6.2).
    case mtkIDNotIncreasing(current: MTKID, received: MTKID)
    /// MTK ID outside SEQl < MTK ID <= SEQu (6.5.4).
    case mtkIDOutsideKeyValidity(seqL: UInt32, seqU: UInt32, received: MTKID)
    /// The decrypted Key data is not what the message kind must carry (6.4.5.1, 6.4.5.3).
    case invalidKeyData(reason: String)
}

/// The UE-side MIKEY checks (ME, TS 33.246 6.4.6, and MGV-F, 6.5.3/6.5.4): one MUK, up to two
/// MSKs per key group, up to two MTKs per key group (session), one TS counter per MUK and one
/// per MSK. Value type: copying it copies the whole state.
public struct UEKeyProcessor: Sendable {
    struct StoredMSK: Sendable {
        var delivered: DeliveredMSK
        var mukGeneration: UInt64
        /// SEQl as updated by accepted MTKs (SEQl := SEQp, 6.5.4).
        var seqL: UInt32
        var lastMTKID: MTKID?
        var lastMTKTimestamp: UInt32?
    }

    public private(set) var muk: SecretBytes
    public let nafID: [UInt8]
    public let bTID: [UInt8]
    public var verificationConstruction: MSKVerificationMessage.MACConstruction = .identitiesAndTimestamp64
    private var mukGeneration: UInt64 = 0
    private var lastMSKTimestamp: UInt32? = nil
    private var msks: [KeyGroupReference: [StoredMSK]] = [:]
    private var mtks: [KeyGroupReference: [DeliveredMTK]] = [:]

    public static let msksPerKeyGroup = 2
    public static let mtksPerKeyGroup = 2

    public init(muk: SecretBytes, nafID: String, bTID: String) {
        self.muk = muk
        self.nafID = Array(nafID.utf8)
        self.bTID = Array(bTID.utf8)
    }

    /// A new MUK (GBA re-run): MSK-message TS counting restarts (6.4.3); MSKs delivered under
    /// the new MUK count as newer than those under the old one (6.5.3).
    public mutating func replaceMUK(_ newMUK: SecretBytes) {
        muk = newMUK
        mukGeneration += 1
        lastMSKTimestamp = nil
    }

    /// MSK IDs held for a key group, oldest first.
    public func mskIDs(in group: KeyGroupReference) -> [MSKID] { (msks[group] ?? []).map { $0.delivered.mskID } }
    public func msk(_ keyDomainID: KeyDomainID, _ mskID: MSKID) -> DeliveredMSK? {
        msks[KeyGroupReference(keyDomainID: keyDomainID, keyGroup: mskID.keyGroup)]?.first { $0.delivered.mskID == mskID }?.delivered
    }
    /// MTKs held for a key group, oldest first (at most two).
    public func mtks(in group: KeyGroupReference) -> [DeliveredMTK] { mtks[group] ?? [] }

    /// Checks a message and, if every check passes, updates the state and returns the keys.
    public mutating func process(_ bytes: [UInt8]) -> Result<UEKeyOutcome, UEKeyRejection> {
        do throws(UEKeyRejection) { return .success(try processThrowing(bytes)) } catch { return .failure(error) }
    }

    private mutating func processThrowing(_ bytes: [UInt8]) throws(UEKeyRejection) -> UEKeyOutcome {
        let message: MIKEYMessage
        do { message = try MIKEYDecoder.decode(bytes) } catch { throw .malformed(error) }
        guard message.header.dataType == .preShared else {
            throw .notMBMSMessage(reason: "data type \(message.header.dataType.rawValue); MSK/MTK messages use 0 (TS 33.246 6.4.5)")
        }
        guard let keyID = message.keyIDInformation, let domain = keyID.keyDomainID, let mskID = keyID.mskID else {
            throw .notMBMSMessage(reason: "no EXT Key ID with Key Domain ID and MSK ID (TS 33.246 6.4.4)")
        }
        guard mskID.keyGroup != 0 else { throw .notMBMSMessage(reason: "Key Group 0 is not allowed (TS 33.246 6.3.1)") }
        guard case .counter(let ts)? = message.timestamp else {
            throw .notMBMSMessage(reason: "no COUNTER timestamp (TS 33.246 6.4.3)")
        }
        guard let kemac = message.kemac else { throw .notMBMSMessage(reason: "no KEMAC (TS 33.246 6.4.5)") }
        guard kemac.encryptionAlgorithm != .null else { throw .nullAlgorithm(field: "KEMAC Encr alg") }
        guard kemac.macAlgorithm != .null else { throw .nullAlgorithm(field: "KEMAC Mac alg") }
        guard kemac.encryptionAlgorithm == .aesCM128 else {
            throw .notMBMSMessage(reason: "KEMAC Encr alg \(kemac.encryptionAlgorithm.rawValue); TS 33.246 6.4.1 uses AES-CM-128")
        }
        let group = KeyGroupReference(keyDomainID: domain, keyGroup: mskID.keyGroup)
        if let mtkID = keyID.mtkID {
            return try processMTK(bytes, message, kemac, group, domain, mskID, mtkID, ts)
        }
        return try processMSK(bytes, message, kemac, group, domain, mskID, ts)
    }

    // MARK: MSK messages (6.4.6.1, 6.5.3)

    private mutating func processMSK(_ bytes: [UInt8], _ message: MIKEYMessage, _ kemac: KEMACPayload, _ group: KeyGroupReference,
                                     _ domain: KeyDomainID, _ mskID: MSKID, _ ts: UInt32) throws(UEKeyRejection) -> UEKeyOutcome {
        guard let rand = message.rand else { throw .notMBMSMessage(reason: "MSK message without RAND (TS 33.246 6.4.5.1)") }
        let ids = message.identities
        guard ids.count == 2 else { throw .notMBMSMessage(reason: "MSK message needs IDi and IDr (TS 33.246 6.4.5.1)") }
        guard ids[0].data == nafID, ids[1].data == bTID else { throw .unknownMUK }
        let keys = try verifyMAC(bytes, kemac, psk: muk, csbID: message.header.csbID, rand: rand)
        if let stored = lastMSKTimestamp, !SerialNumber.isLess(stored, ts) {
            throw .replayedMSKTimestamp(stored: stored, received: ts)
        }
        let verificationAuthKey = keys.authenticationKey
        if mskID.keyNumber == 0 {
            // Solicited pull: no key inside the KEMAC, V clear (6.3.2.2.4).
            guard kemac.encryptedData.isEmpty else { throw .invalidKeyData(reason: "Key Number 0 (solicited pull) carries no key (TS 33.246 6.3.2.2.4)") }
            guard !message.header.verificationRequested else { throw .notMBMSMessage(reason: "solicited pull with V set (TS 33.246 6.3.2.2.4)") }
            lastMSKTimestamp = ts
            return .solicitedPull(group)
        }
        let keyData = try decryptKeyData(message, kemac, keys, ts)
        guard keyData.count == 1, let kd = keyData.first else { throw .invalidKeyData(reason: "exactly one key per KEMAC (TS 33.246 6.4.5.1)") }
        guard kd.type == .tek, case .interval(let validity) = kd.validity, kd.salt == nil else {
            throw .invalidKeyData(reason: "MSK must be a TEK with KV Interval (TS 33.246 6.4.5.1)")
        }
        var policy: SRTPPolicyParameters? = nil
        let spIndices = message.payloads.indices.filter { if case .securityPolicy = message.payloads[$0] { return true } else { return false } }
        if spIndices.count > 1 { throw .notMBMSMessage(reason: "more than one SP payload (TS 33.246 6.4.5.1)") }
        if let i = spIndices.first, case .securityPolicy(let sp) = message.payloads[i] {
            let payloadOffset = i < message.payloadOffsets.count ? message.payloadOffsets[i] : 0
            do { policy = try sp.srtpPolicy(payloadOffset: payloadOffset) } catch { throw .malformed(error) }
            // The SRTP-ID map's Policy_no refers to the SP of this message (RFC 3830 6.1.1).
            if case .srtpID(let sessions) = message.header.csIDMap, sessions.contains(where: { $0.policyNumber != sp.policyNumber }) {
                throw .notMBMSMessage(reason: "CS ID map names a Policy_no with no SP payload (RFC 3830 6.1.1)")
            }
        }
        let verification: [UInt8]?
        if message.header.verificationRequested {
            do {
                verification = try MSKVerificationMessage.build(csbID: message.header.csbID, timestamp: ts, nafID: nafID, bTID: bTID,
                                                                authenticationKey: verificationAuthKey, construction: verificationConstruction)
            } catch { throw .malformed(error) }
        } else {
            verification = nil
        }
        lastMSKTimestamp = ts
        var list = msks[group] ?? []
        if validity.isInvalidation {
            list.removeAll { $0.delivered.mskID == mskID }
            msks[group] = list.isEmpty ? nil : list
            mtks[group]?.removeAll { $0.mskID == mskID }
            return .mskInvalidated(domain, mskID, verificationMessage: verification)
        }
        let delivered = DeliveredMSK(keyDomainID: domain, mskID: mskID, key: kd.key, seqL: validity.seqL, seqU: validity.seqU,
                                     rand: rand, timestamp: ts, srtpPolicy: policy, csIDMap: message.header.csIDMap)
        var entry = StoredMSK(delivered: delivered, mukGeneration: mukGeneration, seqL: validity.seqL)
        if let i = list.firstIndex(where: { $0.delivered.mskID == mskID }) {
            // Same MSK re-delivered: keep the MTK progress if the key and RAND are unchanged.
            let old = list[i]
            if old.delivered.key.isEqual(to: kd.key), old.delivered.rand == rand {
                entry.seqL = max(entry.seqL, old.seqL)
                entry.lastMTKID = old.lastMTKID
                entry.lastMTKTimestamp = old.lastMTKTimestamp
            }
            list.remove(at: i)
        }
        list.append(entry)
        // Keep the two newest: newer MUK first, then higher TS (6.5.3).
        list.sort { a, b in
            a.mukGeneration != b.mukGeneration ? a.mukGeneration < b.mukGeneration
                : SerialNumber.isLess(a.delivered.timestamp, b.delivered.timestamp)
        }
        while list.count > Self.msksPerKeyGroup {
            let dropped = list.removeFirst()
            mtks[group]?.removeAll { $0.mskID == dropped.delivered.mskID }
        }
        msks[group] = list
        return .msk(delivered, verificationMessage: verification)
    }

    // MARK: MTK messages (6.4.6.2, 6.5.4)

    private mutating func processMTK(_ bytes: [UInt8], _ message: MIKEYMessage, _ kemac: KEMACPayload, _ group: KeyGroupReference,
                                     _ domain: KeyDomainID, _ mskID: MSKID, _ mtkID: MTKID, _ ts: UInt32) throws(UEKeyRejection) -> UEKeyOutcome {
        guard !message.header.verificationRequested else { throw .notMBMSMessage(reason: "V set in an MTK message (TS 33.246 6.4.5.3)") }
        guard message.rand == nil, message.identities.isEmpty, message.securityPolicies.isEmpty else {
            throw .notMBMSMessage(reason: "MTK message carries only HDR, EXT, T and KEMAC (TS 33.246 6.4.5.3, Annex D.3)")
        }
        guard var list = msks[group], let index = list.firstIndex(where: { $0.delivered.mskID == mskID }) else {
            throw .unknownMSK(domain, mskID)
        }
        var stored = list[index]
        let keys = try verifyMAC(bytes, kemac, psk: stored.delivered.key, csbID: message.header.csbID, rand: stored.delivered.rand)
        if let last = stored.lastMTKTimestamp, !SerialNumber.isLess(last, ts) {
            throw .replayedMTKTimestamp(stored: last, received: ts)
        }
        if let current = stored.lastMTKID, mtkID <= current {
            throw .mtkIDNotIncreasing(current: current, received: mtkID)
        }
        guard stored.seqL < UInt32(mtkID.rawValue), UInt32(mtkID.rawValue) <= stored.delivered.seqU else {
            throw .mtkIDOutsideKeyValidity(seqL: stored.seqL, seqU: stored.delivered.seqU, received: mtkID)
        }
        let keyData = try decryptKeyData(message, kemac, keys, ts)
        guard keyData.count == 1, let kd = keyData.first else { throw .invalidKeyData(reason: "exactly one key per KEMAC (TS 33.246 6.4.5.3)") }
        guard kd.validity == .null else { throw .invalidKeyData(reason: "MTK key validity must be NULL (TS 33.246 6.4.5.3)") }
        let kind: DeliveredMTK.Kind
        switch kd.type {
        case .tekSalt:
            guard [16, 24, 32].contains(kd.key.count) else { throw .invalidKeyData(reason: "SRTP master key of 16, 24 or 32 octets (TS 33.246 6.4.5.3)") }
            guard kd.salt?.count == 14 else { throw .invalidKeyData(reason: "SRTP master salt must be 112 bits (TS 33.246 6.4.5.3)") }
            kind = .streaming
        case .tgk:
            kind = .download
        default:
            throw .invalidKeyData(reason: "MTK must be TEK+SALT (streaming) or TGK (download) (TS 33.246 6.4.5.3)")
        }
        let mtk = DeliveredMTK(keyDomainID: domain, mskID: mskID, mtkID: mtkID, kind: kind, key: kd.key, salt: kd.salt,
                               csbID: message.header.csbID, mskRAND: stored.delivered.rand, timestamp: ts)
        stored.seqL = UInt32(mtkID.rawValue)
        stored.lastMTKID = mtkID
        stored.lastMTKTimestamp = ts
        list[index] = stored
        msks[group] = list
        var held = mtks[group] ?? []
        held.append(mtk)
        if held.count > Self.mtksPerKeyGroup { held.removeFirst(held.count - Self.mtksPerKeyGroup) }
        mtks[group] = held
        return .mtk(mtk)
    }

    // MARK: crypto steps

    /// MAC first (6.5.3): only the auth key is derived before the MAC is known to be good.
    private func verifyMAC(_ bytes: [UInt8], _ kemac: KEMACPayload, psk: SecretBytes, csbID: CSBID,
                           rand: [UInt8]) throws(UEKeyRejection) -> PSKDerivedKeys {
        let covered = bytes.count - kemac.mac.count
        guard covered >= 0 else { throw .macMismatch }
        do {
            let authKey = try MIKEYKeyDerivation.pskAuthenticationKey(psk: psk, csbID: csbID, rand: rand)
            let mac = try KEMACCrypto.mac(authenticationKey: authKey, Array(bytes[0..<covered]))
            guard constantTimeEquals(mac, kemac.mac) else { throw UEKeyRejection.macMismatch }
            return try MIKEYKeyDerivation.pskKeys(psk: psk, csbID: csbID, rand: rand)
        } catch let e as UEKeyRejection {
            throw e
        } catch let e as MIKEYError {
            throw .malformed(e)
        } catch {
            throw .macMismatch
        }
    }

    private func decryptKeyData(_ message: MIKEYMessage, _ kemac: KEMACPayload, _ keys: PSKDerivedKeys,
                                _ ts: UInt32) throws(UEKeyRejection) -> [KeyDataPayload] {
        guard !kemac.encryptedData.isEmpty else { throw .invalidKeyData(reason: "KEMAC carries no key (TS 33.246 6.4.5)") }
        do {
            var plaintext = try KEMACCrypto.crypt(kemac.encryptedData, keys: keys, csbID: message.header.csbID, timestamp: .counter(ts))
            defer { SecureZero.zero(&plaintext) }
            return try KeyDataPayload.decodeList(plaintext, base: message.kemacEncryptedDataOffset ?? 0)
        } catch {
            throw .malformed(error)
        }
    }
}

/// The MBMS Generic Verification Function of the UICC/ME (TS 33.246 6.5) is this processor.
public typealias MGVF = UEKeyProcessor
