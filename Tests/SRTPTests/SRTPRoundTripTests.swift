import CryptoCore
import TestSupport
import XCTest
@testable import SRTP

final class SRTPRoundTripTests: XCTestCase {
    func masterKey(_ cipher: SRTPCipher, _ rng: inout SplitMix64) -> [UInt8] {
        rng.bytes(cipher == .null ? 16 : cipher.sessionKeyLength)
    }

    /// Every cipher × auth mode × R × MKI length: protect then unprotect, for SRTP and SRTCP.
    func testEveryCipherAuthRCCModeAndMKI() throws {
        var rng = SplitMix64(seed: 1)
        var combinations = 0
        for cipher in SRTPCipher.allCases {
            for auth in SRTPAuthentication.allCases {
                for rate in (auth.carriesROC ? [UInt16(1), 3, 64] : [1]) {
                    for mkiBytes in [[UInt8](), [0xE1, 0xF9, 0x7A, 0x0D], [0, 1, 0, 2, 0, 5]] {
                        for nonCarrying in (auth == .rccm2 ? [10, 14] : [10]) {
                            let policy = SRTPPolicy(cipher: cipher, authentication: auth, rocTransmissionRate: rate,
                                                    rccm2NonCarryingTagLength: nonCarrying, mkiLength: mkiBytes.count)
                            let key = masterKey(cipher, &rng), salt = rng.bytes(14)
                            let mki = MasterKeyIdentifier(bytes: mkiBytes)
                            let keys = try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: mki, cipher: cipher)
                            let protector = try SRTPProtector(policy: policy)
                            // lateJoin false: ROC 0 known, so RCCm1/3 streams that start on a non-carrying SEQ decode.
                            let receiver = try SRTPReceiver(policy: policy, lateJoin: false)
                            try receiver.addKey(try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: mki, cipher: cipher))
                            var tx = SRTPSenderStream()
                            var rtcpTx = SRTCPSenderStream()
                            for i in 0..<130 {
                                let seq = UInt16(truncatingIfNeeded: 65_470 + i)   // crosses the wrap
                                let plain = rtpPacket(seq: seq, payload: rng.bytes(Int(rng.next() % 64)),
                                                      csrcs: i % 5 == 0 ? [7, 8] : [], extensionWords: i % 7 == 0 ? [0xAABBCCDD] : nil,
                                                      padding: i % 11 == 0 ? 4 : 0)
                                var packet = plain
                                try protector.protectRTP(&packet, keys: keys, stream: &tx)
                                let layout = policy.tagLayout(sequenceNumber: seq)
                                XCTAssertEqual(packet.count, plain.count + mkiBytes.count + layout.length)
                                let headerLength = try plain.withUnsafeBytes { (b) throws(SRTPError) in try RTPHeader.length(b.baseAddress!, b.count) }
                                if plain.count - headerLength >= 8 {
                                    // Encrypted region differs from the plaintext exactly when a cipher is on.
                                    XCTAssertEqual(packet[headerLength..<plain.count] != plain[headerLength...], cipher != .null)
                                }
                                let info = try receiver.unprotectRTP(&packet)
                                XCTAssertEqual(packet, plain, "\(cipher) \(auth) R=\(rate) MKI \(mkiBytes.count) seq \(seq)")
                                XCTAssertEqual(info.index, UInt64(i >= 66 ? 1 : 0) << 16 | UInt64(seq))
                                if i % 10 == 0 {
                                    let sr = rtcpSenderReport(packets: UInt32(i))
                                    var rtcp = sr
                                    try protector.protectRTCP(&rtcp, keys: keys, stream: &rtcpTx)
                                    try receiver.unprotectRTCP(&rtcp)
                                    XCTAssertEqual(rtcp, sr)
                                }
                            }
                            XCTAssertEqual(tx.rollover.roc, 1)
                            combinations += 1
                        }
                    }
                }
            }
        }
        // 4 ciphers × (2 plain + RCCm1×3 + RCCm2×3×2 + RCCm3×3) × 3 MKIs
        XCTAssertEqual(combinations, 4 * (2 + 3 + 6 + 3) * 3)
    }

    /// A 70 000-packet stream across the ROC wrap through our own receiver, RCCm2 R = 64.
    func testSeventyThousandPacketsAcrossROCWrap() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 64)
        var rng = SplitMix64(seed: 99)
        let key = rng.bytes(16), salt = rng.bytes(14)
        let mki = MasterKeyIdentifier(keyGroup: 3, keyNumber: 1, mtkID: 1)
        let protector = try SRTPProtector(policy: policy)
        let tx = try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: mki, cipher: .aesCM128)
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: mki, cipher: .aesCM128))
        var stream = SRTPSenderStream()
        var buffer = [UInt8](repeating: 0, count: 1500)
        var seq: UInt16 = 0   // SEQ 0 carries the ROC, so the late-joining receiver syncs at once
        let payload = rng.bytes(1200)
        var ok = 0
        for _ in 0..<70_000 {
            let plain = rtpPacket(seq: seq, payload: payload)
            buffer.replaceSubrange(0..<plain.count, with: plain)
            let good = try buffer.withUnsafeMutableBytes { (b) throws(SRTPError) -> Bool in
                let n = try protector.protectRTP(b.baseAddress!, length: plain.count, capacity: b.count, keys: tx, stream: &stream)
                let info = try receiver.unprotectRTP(b.baseAddress!, length: n)
                return info.length == plain.count && memcmp(b.baseAddress!, plain, plain.count) == 0
            }
            if good { ok += 1 }
            seq &+= 1
        }
        XCTAssertEqual(ok, 70_000)
        XCTAssertEqual(receiver.rolloverState(ssrc: 0x1234_5678)?.roc, 1)
    }

    func testBatchEqualsSinglePacketProtection() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 4)
        var rng = SplitMix64(seed: 5)
        let key = rng.bytes(16), salt = rng.bytes(14)
        let keys = try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 1), cipher: .aesCM128)
        let protector = try SRTPProtector(policy: policy)
        let plains = (0..<32).map { rtpPacket(seq: UInt16(100 + $0), payload: rng.bytes(50 + $0)) }
        var single: [[UInt8]] = []
        var s1 = SRTPSenderStream()
        for p in plains { var q = p; try protector.protectRTP(&q, keys: keys, stream: &s1); single.append(q) }

        let stride = 256
        let storage = UnsafeMutableRawPointer.allocate(byteCount: stride * plains.count, alignment: 64)
        defer { storage.deallocate() }
        var slots: [SRTPPacketSlot] = []
        for (i, p) in plains.enumerated() {
            p.withUnsafeBytes { (storage + i * stride).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
            slots.append(SRTPPacketSlot(bytes: storage + i * stride, length: p.count, capacity: stride))
        }
        slots.append(SRTPPacketSlot(bytes: storage, length: 3, capacity: stride))   // malformed, reported not thrown
        var s2 = SRTPSenderStream()
        let n = slots.withUnsafeMutableBufferPointer { protector.protectRTP(batch: $0, keys: keys, stream: &s2) }
        XCTAssertEqual(n, plains.count)
        for i in 0..<plains.count {
            XCTAssertNil(slots[i].error)
            XCTAssertEqual(Array(UnsafeRawBufferPointer(start: slots[i].bytes, count: slots[i].length)), single[i])
        }
        XCTAssertEqual(slots.last?.error, .packetTooShort(length: 3, minimum: 12))
    }

    /// The batch path's stack scratch must hold what it lays out (else it would write past it).
    func testBatchScratchIsLargeEnough() {
        XCTAssertGreaterThanOrEqual(MemoryLayout<SRTPProtector.GroupScratch>.size, SRTPProtector.groupScratchBytes)
    }

    func testAES192And256RoundTripWithLibSRTPShape() throws {
        for cipher in [SRTPCipher.aesCM192, .aesCM256] {
            var rng = SplitMix64(seed: UInt64(cipher.sessionKeyLength))
            let key = rng.bytes(cipher.sessionKeyLength), salt = rng.bytes(14)
            let policy = SRTPPolicy(cipher: cipher, authentication: .hmacSHA1_80)
            let keys = try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: 1), cipher: cipher)
            XCTAssertThrowsError(try SRTPSessionKeys(masterKey: rng.bytes(16), masterSalt: salt, mki: .none, cipher: cipher))
            var s = SRTPSenderStream()
            var p = rtpPacket(seq: 1, payload: rng.bytes(100))
            try SRTPProtector(policy: policy).protectRTP(&p, keys: keys, stream: &s)
            let r = try SRTPReceiver(policy: policy)
            try r.addKey(keys.copy())
            try r.unprotectRTP(&p)
            XCTAssertEqual(p.count, 112)
        }
    }
}
