import CryptoCore
import TestSupport
import XCTest
@testable import SRTP

/// The sender never uses a packet index twice under one master key (RFC 3711 9.1, DESIGN.md §7),
/// whatever the upstream SEQs do. Reuse is checked from the bytes: the keystream of a packet is
/// its ciphertext XOR its known plaintext; two packets with the same keystream prefix share an
/// (SSRC, index) under the key.
final class SenderIndexTests: XCTestCase {
    let key = Array(UInt8(1)...UInt8(16)), salt = Array(UInt8(101)...UInt8(114))

    func keys(_ block: SenderIndexBlock = .unrestricted) throws -> SRTPSessionKeys {
        try SRTPSessionKeys(masterKey: key, masterSalt: salt, mki: MasterKeyIdentifier(keyGroup: 7, keyNumber: 1, mtkID: 1),
                            cipher: .aesCM128, senderIndices: block)
    }

    /// One protected packet and what is known about it.
    struct Sent {
        var seq: UInt16
        var plain: [UInt8]
        var protected: [UInt8]
        /// Payload keystream (first 16 octets): ciphertext XOR plaintext.
        var keystream: [UInt8] { (12..<28).map { protected[$0] ^ plain[$0] } }
        /// RFC 4771 ROC field of a carrying packet (after the 6-octet MKI).
        var carriedROC: UInt32 { protected[plain.count + 6..<plain.count + 10].reduce(0) { $0 << 8 | UInt32($1) } }
    }

    func assertNoKeystreamReuse(_ sent: [Sent], file: StaticString = #filePath, line: UInt = #line) {
        var seen: [[UInt8]: UInt16] = [:]
        for s in sent {
            if let other = seen[s.keystream] {
                XCTFail("keystream reused: SEQ \(s.seq) and SEQ \(other)", file: file, line: line)
            }
            seen[s.keystream] = s.seq
        }
    }

    /// SEQ 3000–3039 twice with different payloads (a new encoder with the same SSRC): the
    /// second run starts ROC 1, nothing is dropped, every packet has its own keystream, and a
    /// receiver decrypts all 80 (RCCm2 with R = 1: every packet carries its ROC).
    func testSEQRegressionStartsTheNextROC() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 1)
        let protector = try SRTPProtector(policy: policy)
        let tx = try keys()
        var stream = SRTPSenderStream()
        var sent: [Sent] = []
        for run in 0..<2 {
            for i in 0..<40 {
                let seq = UInt16(3000 + i)
                let plain = rtpPacket(seq: seq, timestamp: UInt32(run * 1_000_000 + i * 3000),
                                      payload: (0..<32).map { UInt8(truncatingIfNeeded: run * 97 + i + $0) })
                var p = plain
                try protector.protectRTP(&p, keys: tx, stream: &stream)
                sent.append(Sent(seq: seq, plain: plain, protected: p))
            }
        }
        XCTAssertEqual(sent.prefix(40).map(\.carriedROC), Array(repeating: 0, count: 40))
        XCTAssertEqual(sent.suffix(40).map(\.carriedROC), Array(repeating: 1, count: 40))
        XCTAssertEqual(stream.rocJumps, 1)
        assertNoKeystreamReuse(sent)

        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try keys())
        for s in sent {
            var p = s.protected
            try receiver.unprotectRTP(&p)
            XCTAssertEqual(p, s.plain)
        }
    }

    /// With R = 4 a receiver that had the old ROC loses the packets between the jump and the
    /// next ROC-carrying one (at most R − 1): here SEQ 3001–3003, then SEQ 3004 resynchronises.
    func testReceiverLosesAtMostRMinusOneAtAJump() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 4)
        let protector = try SRTPProtector(policy: policy)
        let tx = try keys()
        var stream = SRTPSenderStream()
        let receiver = try SRTPReceiver(policy: policy)
        try receiver.addKey(try keys())
        var failed: [UInt16] = []
        var sent: [Sent] = []
        for (run, range) in [(0, 3000..<3040), (1, 3001..<3041)] {
            for seq in range {
                let plain = rtpPacket(seq: UInt16(seq), timestamp: UInt32(run * 1_000_000 + seq), payload: Array(repeating: UInt8(run), count: 24))
                var p = plain
                try protector.protectRTP(&p, keys: tx, stream: &stream)
                sent.append(Sent(seq: UInt16(seq), plain: plain, protected: p))
                do { try receiver.unprotectRTP(&p); XCTAssertEqual(p, plain) } catch { failed.append(UInt16(seq)) }
            }
        }
        XCTAssertEqual(failed, [3001, 3002, 3003])
        assertNoKeystreamReuse(sent)
    }

    /// A duplicate (same SEQ, same RTP timestamp) is dropped, not sent under a used index.
    func testDuplicateIsDroppedAsIndexReused() throws {
        let protector = try SRTPProtector(policy: SRTPPolicy())
        let tx = try keys()
        var stream = SRTPSenderStream()
        var a = rtpPacket(seq: 10, payload: [1, 2, 3]), b = a
        try protector.protectRTP(&a, keys: tx, stream: &stream)
        XCTAssertThrowsError(try protector.protectRTP(&b, keys: tx, stream: &stream)) {
            XCTAssertEqual($0 as? SRTPError, .senderIndexReused(index: 10))
            XCTAssertEqual(($0 as? SRTPError)?.reason, "index_reused")
        }
        XCTAssertEqual(b, rtpPacket(seq: 10, payload: [1, 2, 3]), "a dropped packet is left as it was")
        XCTAssertEqual(stream.packets, 1)
    }

    /// A late packet inside the reorder window takes its own (unused) index; the same SEQ again
    /// with another timestamp is a new packet and goes to the next ROC.
    func testReorderedPacketKeepsItsIndexOnce() throws {
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 1)
        let protector = try SRTPProtector(policy: policy)
        let tx = try keys()
        var stream = SRTPSenderStream()
        var sent: [Sent] = []
        for (seq, ts) in [(10, 100), (11, 200), (13, 400), (12, 300), (12, 999)] as [(UInt16, UInt32)] {
            let plain = rtpPacket(seq: seq, timestamp: ts, payload: Array(repeating: UInt8(seq), count: 20))
            var p = plain
            try protector.protectRTP(&p, keys: tx, stream: &stream)
            sent.append(Sent(seq: seq, plain: plain, protected: p))
        }
        XCTAssertEqual(sent.map(\.carriedROC), [0, 0, 0, 0, 1])
        assertNoKeystreamReuse(sent)
    }

    /// The ROC and the SRTCP index stay inside the block reserved for the MTK; past it, packets
    /// are refused (counted as index_exhausted) instead of reusing an index.
    func testIndicesStayInsideTheReservedBlock() throws {
        let block = SenderIndexBlock(rocFloor: 5, rocLimit: 7, srtcpFloor: 100, srtcpLimit: 102)
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: 1)
        let protector = try SRTPProtector(policy: policy)
        let tx = try keys(block)
        var stream = SRTPSenderStream()
        var p1 = rtpPacket(seq: 500, timestamp: 1, payload: [1])
        try protector.protectRTP(&p1, keys: tx, stream: &stream)
        XCTAssertEqual(Sent(seq: 500, plain: rtpPacket(seq: 500, timestamp: 1, payload: [1]), protected: p1).carriedROC, 5)
        var p2 = rtpPacket(seq: 400, timestamp: 2, payload: [2])   // back: next ROC, 6
        try protector.protectRTP(&p2, keys: tx, stream: &stream)
        XCTAssertEqual(stream.rollover.roc, 6)
        var p3 = rtpPacket(seq: 300, timestamp: 3, payload: [3])   // back again: ROC 7 is not ours
        XCTAssertThrowsError(try protector.protectRTP(&p3, keys: tx, stream: &stream)) {
            XCTAssertEqual(($0 as? SRTPError)?.reason, "index_exhausted")
        }

        var rtcp = SRTCPSenderStream()
        var indices: [UInt32] = []
        for _ in 0..<2 {
            var r = rtcpSenderReport(packets: 1)
            try protector.protectRTCP(&r, keys: tx, stream: &rtcp)
            indices.append(r[r.count - 20..<r.count - 16].reduce(0) { $0 << 8 | UInt32($1) } & 0x7FFF_FFFF)
        }
        XCTAssertEqual(indices, [100, 101])
        var r = rtcpSenderReport(packets: 1)
        XCTAssertThrowsError(try protector.protectRTCP(&r, keys: tx, stream: &rtcp)) {
            XCTAssertEqual(($0 as? SRTPError)?.reason, "index_exhausted")
        }
    }

    /// Random upstream behaviour (steps, wraps, reordering, duplicates, jumps back and forward):
    /// no two sent packets share a keystream, and the batch protect gives the same bytes and
    /// verdicts as one by one.
    func testRandomSEQsNeverReuseAKeystream() throws {
        var rng = SplitMix64.seeded("testRandomSEQsNeverReuseAKeystream")
        let policy = SRTPPolicy(authentication: .rccm2, rocTransmissionRate: UInt16(1 + rng.next() % 4))
        let protector = try SRTPProtector(policy: policy)
        var seq = UInt16.random(in: 0...UInt16.max, using: &rng)
        var ts: UInt32 = 0
        var history: [(UInt16, UInt32)] = []
        var input: [[UInt8]] = []
        for i in 0..<6000 {
            switch rng.next() % 100 {
            case 0..<80: seq &+= 1; ts &+= 90
            case 80..<88 where !history.isEmpty:   // duplicate or late packet of the recent past
                let (s, t) = history[history.count - 1 - Int(rng.next() % UInt64(min(history.count, 40)))]
                seq = s; ts = t
            case 88..<94: seq &-= UInt16(rng.next() % 3000); ts = UInt32(truncatingIfNeeded: rng.next())
            case 94..<98: seq &+= UInt16(rng.next() % 40000); ts &+= 90
            default: seq &-= UInt16(rng.next() % 64); ts = UInt32(truncatingIfNeeded: rng.next())
            }
            history.append((seq, ts))
            input.append(rtpPacket(seq: seq, timestamp: ts, payload: (0..<24).map { UInt8(truncatingIfNeeded: i &* 31 &+ $0) }))
        }

        // One by one.
        let single = try keys()
        var stream = SRTPSenderStream()
        var sent: [Sent] = []
        var verdicts: [SRTPError?] = []
        for (k, plain) in input.enumerated() {
            var p = plain
            do {
                try protector.protectRTP(&p, keys: single, stream: &stream)
                sent.append(Sent(seq: history[k].0, plain: plain, protected: p))
                verdicts.append(nil)
            } catch let e as SRTPError {
                verdicts.append(e)
            }
        }
        assertNoKeystreamReuse(sent)
        XCTAssertGreaterThan(stream.rocJumps, 0)
        XCTAssertTrue(verdicts.contains { $0?.reason == "index_reused" })

        // The batch protect, in random batch sizes: same verdicts, same bytes.
        let batched = try keys()
        var batchStream = SRTPSenderStream()
        let capacity = 256
        let pool = UnsafeMutableRawPointer.allocate(byteCount: capacity * 64, alignment: 16)
        defer { pool.deallocate() }
        let slots = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: 64)
        defer { slots.deallocate() }
        var at = 0, okIndex = 0
        while at < input.count {
            let n = min(input.count - at, 1 + Int(rng.next() % 64))
            for j in 0..<n {
                let b = pool + j * capacity
                input[at + j].withUnsafeBytes { b.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
                slots[j] = SRTPPacketSlot(bytes: b, length: input[at + j].count, capacity: capacity)
            }
            protector.protectRTP(batch: UnsafeMutableBufferPointer(rebasing: slots[0..<n]), keys: batched, stream: &batchStream)
            for j in 0..<n {
                XCTAssertEqual(slots[j].error, verdicts[at + j], "packet \(at + j)")
                if slots[j].error == nil {
                    let bytes = Array(UnsafeRawBufferPointer(start: slots[j].bytes, count: slots[j].length))
                    XCTAssertEqual(bytes, sent[okIndex].protected, "packet \(at + j)")
                    okIndex += 1
                }
            }
            at += n
        }
        XCTAssertEqual(batchStream, stream)
    }
}
