import CryptoCore
import TestSupport
import XCTest
@testable import SRTP

/// Receiver behaviour: RFC 4771 late join, key choice by MKI (TS 33.246 6.5.4), replay window.
final class SRTPReceiverTests: XCTestCase {
    var rng = SplitMix64(seed: 11)

    func makeKeys(mtkID: UInt16, key: [UInt8], salt: [UInt8]) throws -> SRTPSessionKeys {
        try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: MasterKeyIdentifier(keyGroup: 7, keyNumber: 1, mtkID: mtkID), cipher: .aesCM128)
    }

    /// A receiver that joins after the sender's ROC became 2 learns it from the first
    /// authenticated ROC-carrying packet and drops earlier non-carrying ones.
    func testLateJoinLearnsROCFromCarryingPacket() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 16)
        let key = rng.bytes(16), salt = rng.bytes(14)
        let tx = try makeKeys(mtkID: 1, key: key, salt: salt)
        let protector = try SRTPProtector(policy: policy)
        var stream = SRTPSenderStream(initialROC: 2)
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try makeKeys(mtkID: 1, key: key, salt: salt))
        var outcomes: [SRTPError?] = []
        for seq in UInt16(5)..<UInt16(40) {
            let plain = rtpPacket(seq: seq, payload: rng.bytes(20))
            var p = plain
            try protector.protectRTP(&p, keys: tx, stream: &stream)
            do { try receiver.unprotectRTP(&p); XCTAssertEqual(p, plain); outcomes.append(nil) } catch let e as SRTPError { outcomes.append(e) }
        }
        // SEQ 5...15 arrive before the first carrying packet (SEQ 16).
        XCTAssertEqual(outcomes.prefix(11).compactMap { $0 }, (5...15).map { .rocUnknown(sequenceNumber: UInt16($0)) })
        XCTAssertTrue(outcomes.dropFirst(11).allSatisfy { $0 == nil })
        XCTAssertEqual(receiver.rolloverState(ssrc: 0x1234_5678)?.roc, 2)
    }

    /// Without RFC 4771 a receiver assuming ROC 0 fails on a ROC-2 stream; this is what RCC fixes.
    func testPlainHMACReceiverCannotJoinLate() throws {
        let policy = SRTPPolicy(authentication: .hmacSHA1_80)
        let key = rng.bytes(16), salt = rng.bytes(14)
        var stream = SRTPSenderStream(initialROC: 2)
        var p = rtpPacket(seq: 100, payload: [1, 2, 3])
        try SRTPProtector(policy: policy).protectRTP(&p, keys: try makeKeys(mtkID: 1, key: key, salt: salt), stream: &stream)
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try makeKeys(mtkID: 1, key: key, salt: salt))
        XCTAssertThrowsError(try receiver.unprotectRTP(&p)) { XCTAssertEqual($0 as? SRTPError, .authenticationFailed(offset: 21)) }
    }

    /// Two MTKs in flight: packets of the old MTK that arrive after the switch still decrypt;
    /// a third key evicts the oldest beyond capacity 2.
    func testKeyChoiceByMKIAcrossMTKSwitch() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 1)
        let k1 = rng.bytes(16), s1 = rng.bytes(14), k2 = rng.bytes(16), s2 = rng.bytes(14), k3 = rng.bytes(16), s3 = rng.bytes(14)
        let protector = try SRTPProtector(policy: policy)
        var stream = SRTPSenderStream()
        let receiver = try SRTPReceiver(policy: policy, keyCapacity: 2)
        try receiver.addKey(try makeKeys(mtkID: 1, key: k1, salt: s1))
        try receiver.addKey(try makeKeys(mtkID: 2, key: k2, salt: s2))
        var a = rtpPacket(seq: 1, payload: [1]), b = rtpPacket(seq: 2, payload: [2]), c = rtpPacket(seq: 3, payload: [3])
        try protector.protectRTP(&a, keys: try makeKeys(mtkID: 1, key: k1, salt: s1), stream: &stream)
        try protector.protectRTP(&b, keys: try makeKeys(mtkID: 2, key: k2, salt: s2), stream: &stream)
        try protector.protectRTP(&c, keys: try makeKeys(mtkID: 3, key: k3, salt: s3), stream: &stream)
        XCTAssertEqual(try receiver.unprotectRTP(&b).mki.mtkID, 2)
        XCTAssertEqual(try receiver.unprotectRTP(&a).mki.mtkID, 1)   // late packet of the previous MTK
        XCTAssertThrowsError(try receiver.unprotectRTP(&c)) { XCTAssertEqual($0 as? SRTPError, .unknownMKI(offset: 13)) }
        try receiver.addKey(try makeKeys(mtkID: 3, key: k3, salt: s3))
        XCTAssertEqual(receiver.knownMKIs.map(\.mtkID), [2, 3])
        XCTAssertEqual(try receiver.unprotectRTP(&c).mki.mtkID, 3)
    }

    func testReplayAndOldPacketsRejectedAndFailedAuthChangesNothing() throws {
        let policy = SRTPPolicy(authentication: .hmacSHA1_80)
        let key = rng.bytes(16), salt = rng.bytes(14)
        let tx = try makeKeys(mtkID: 1, key: key, salt: salt)
        let protector = try SRTPProtector(policy: policy)
        var stream = SRTPSenderStream()
        var packets: [[UInt8]] = []
        for seq in UInt16(0)..<300 {
            var p = rtpPacket(seq: seq, payload: [UInt8(truncatingIfNeeded: seq)])
            try protector.protectRTP(&p, keys: tx, stream: &stream)
            packets.append(p)
        }
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try makeKeys(mtkID: 1, key: key, salt: salt))
        var first = packets[0]
        try receiver.unprotectRTP(&first)
        var again = packets[0]
        XCTAssertThrowsError(try receiver.unprotectRTP(&again)) { XCTAssertEqual($0 as? SRTPError, .replayed(index: 0)) }
        var tampered = packets[299]
        tampered[12] ^= 0x80
        XCTAssertThrowsError(try receiver.unprotectRTP(&tampered)) { XCTAssertEqual($0 as? SRTPError, .authenticationFailed(offset: tampered.count - 10)) }
        XCTAssertEqual(receiver.rolloverState(ssrc: 0x1234_5678)?.highestSequence, 0)
        var latest = packets[299]
        try receiver.unprotectRTP(&latest)
        var old = packets[100]   // 199 behind: outside the 128-packet window
        XCTAssertThrowsError(try receiver.unprotectRTP(&old)) { XCTAssertEqual($0 as? SRTPError, .tooOld(index: 100)) }
        var recent = packets[250]   // inside the window, never seen
        XCTAssertNoThrow(try receiver.unprotectRTP(&recent))
        var recentAgain = packets[250]
        XCTAssertThrowsError(try receiver.unprotectRTP(&recentAgain)) { XCTAssertEqual($0 as? SRTPError, .replayed(index: 250)) }
    }

    func testIndexEstimationExamplesFromSpec() {
        // srtp.md 3.2 worked examples: (s_l, ROC, SEQ) -> v.
        let cases: [(UInt16, UInt32, UInt16, UInt32)] = [(65530, 5, 3, 6), (10, 5, 65500, 4), (1000, 5, 1001, 5), (40000, 5, 100, 6), (40000, 5, 8000, 5)]
        for (sl, roc, seq, v) in cases {
            XCTAssertEqual(RolloverCounterState(roc: roc, highestSequence: sl, isSynchronised: true).estimateROC(for: seq), v, "s_l \(sl) seq \(seq)")
        }
    }
}
