import CryptoCore

/// The MSK verification message (UE -> BM-SC when V = 1; TS 33.246 6.4.5.2):
/// HDR (data type 1, the MSK message's CSB ID, Empty map), T (the MSK message's counter),
/// IDr (B-TID), V (HMAC-SHA-1-160).
public enum MSKVerificationMessage {
    /// How the V MAC input is formed (mikey.md 6.3, ambiguity M-1).
    public enum MACConstruction: Sendable, Equatable, CaseIterable {
        /// Recommended: VerMsg-without-MAC || IDi || IDr || T zero-extended to 64 bits.
        case identitiesAndTimestamp64
        /// VerMsg-without-MAC || IDi || IDr || T as 32-bit counter.
        case identitiesAndTimestamp32
        /// Plain RFC 3830 5.2: VerMsg-without-MAC || T (64 bits).
        case timestamp64

        func input(_ covered: [UInt8], idi: [UInt8], idr: [UInt8], timestamp: UInt32) -> [UInt8] {
            var w = ByteWriter(capacity: covered.count + idi.count + idr.count + 8)
            w.write(covered)
            switch self {
            case .identitiesAndTimestamp64: w.write(idi); w.write(idr); w.write(UInt64(timestamp))
            case .identitiesAndTimestamp32: w.write(idi); w.write(idr); w.write(timestamp)
            case .timestamp64: w.write(UInt64(timestamp))
            }
            return w.finish()
        }
    }

    /// Why the BM-SC rejects a verification message.
    public enum Rejection: Error, Equatable, Sendable {
        case malformed(MIKEYError)
        case notAVerificationMessage(reason: String)
        case csbIDMismatch(expected: CSBID, received: CSBID)
        case timestampMismatch(expected: UInt32, received: UInt32)
        case identityMismatch
        case nullAlgorithm
        case macMismatch
    }

    /// Builds the message. `authenticationKey` is the 4.1.4 auth key of the MSK message
    /// (from the MUK, that message's CSB ID and RAND).
    public static func build(csbID: CSBID, timestamp: UInt32, nafID: [UInt8], bTID: [UInt8], authenticationKey: SecretBytes,
                             construction: MACConstruction = .identitiesAndTimestamp64) throws(MIKEYError) -> [UInt8] {
        let header = MIKEYHeader(dataType: .preSharedVerification, verificationRequested: false, csbID: csbID, csIDMap: .empty)
        var bytes = MIKEYMessage(header: header, payloads: [
            .timestamp(.counter(timestamp)),
            .identity(IdentityPayload(data: bTID)),
            .verification(VerificationPayload(authAlgorithm: .hmacSHA1_160, verificationData: [UInt8](repeating: 0, count: 20))),
        ]).encode()
        let covered = Array(bytes[0..<(bytes.count - 20)])
        let mac = try KEMACCrypto.mac(authenticationKey: authenticationKey,
                                      construction.input(covered, idi: nafID, idr: bTID, timestamp: timestamp))
        bytes.replaceSubrange((bytes.count - 20)..., with: mac)
        return bytes
    }

    /// BM-SC side: checks a verification message against the MSK message it acknowledges and
    /// returns which MAC construction matched (tried in the order of `accepted`; M-1 advises
    /// tolerance on the verifier side).
    public static func verify(_ bytes: [UInt8], muk: SecretBytes, mskRAND: [UInt8], nafID: [UInt8], bTID: [UInt8],
                              expectedCSBID: CSBID, expectedTimestamp: UInt32,
                              accepted: [MACConstruction] = MACConstruction.allCases) -> Result<MACConstruction, Rejection> {
        let message: MIKEYMessage
        do { message = try MIKEYDecoder.decode(bytes) } catch { return .failure(.malformed(error)) }
        guard message.header.dataType == .preSharedVerification else {
            return .failure(.notAVerificationMessage(reason: "data type is not 1 (PSK verification), RFC 3830 6.1"))
        }
        guard let v = message.verification else {
            return .failure(.notAVerificationMessage(reason: "no V payload last, TS 33.246 6.4.5.2"))
        }
        guard message.header.csbID == expectedCSBID else {
            return .failure(.csbIDMismatch(expected: expectedCSBID, received: message.header.csbID))
        }
        guard case .counter(let ts)? = message.timestamp else {
            return .failure(.notAVerificationMessage(reason: "no COUNTER timestamp, TS 33.246 6.4.3"))
        }
        guard ts == expectedTimestamp else { return .failure(.timestampMismatch(expected: expectedTimestamp, received: ts)) }
        let ids = message.identities
        guard ids.count == 1, ids[0].data == bTID else { return .failure(.identityMismatch) }
        guard v.authAlgorithm != .null else { return .failure(.nullAlgorithm) }
        let authKey: SecretBytes
        do { authKey = try MIKEYKeyDerivation.pskAuthenticationKey(psk: muk, csbID: expectedCSBID, rand: mskRAND) } catch {
            return .failure(.malformed(error))
        }
        let covered = Array(bytes[0..<(bytes.count - v.verificationData.count)])
        for c in accepted {
            guard let mac = try? KEMACCrypto.mac(authenticationKey: authKey, c.input(covered, idi: nafID, idr: bTID, timestamp: ts)) else { continue }
            if constantTimeEquals(mac, v.verificationData) { return .success(c) }
        }
        return .failure(.macMismatch)
    }
}
