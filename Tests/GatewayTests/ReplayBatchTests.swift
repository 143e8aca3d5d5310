import Foundation
@testable import Gateway
import PacketIO
import SRTP
import XCTest

/// `ReplayBatch.prepareOutput`: a batch's output laid out as the capture file takes it, outside
/// the write turn — every record in capture order (injections before the frame they precede,
/// dropped frames left out), the deferred UDP checksums filled in the copy; and the batch whose
/// output does not fit left to the gathered write.
final class ReplayBatchTests: XCTestCase {
    private let v4 = (TransportAddress(.v4(0x0A01_0203), 5004), TransportAddress(.v4(0xEFFF_0101), 5004))
    private let v6: (TransportAddress, TransportAddress) = {
        let s = IPAddress("2001:db8::1").map { TransportAddress($0, 5004) } ?? TransportAddress(.v4(1), 1)
        let d = IPAddress("ff0e::10:1").map { TransportAddress($0, 5006) } ?? TransportAddress(.v4(2), 2)
        return (s, d)
    }()

    private func frame(_ payload: Int, _ ends: (TransportAddress, TransportAddress), seed: Int) -> [UInt8] {
        UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: ends.0, destination: ends.1, hopLimit: 9,
                                  payload: (0..<payload).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ seed) })
    }

    /// A classic pcap record from the format's definition: seconds, microseconds, captured and
    /// original length, 32-bit each in the writer's (host, little-endian) order, then the frame.
    private func record(_ nanoseconds: UInt64, _ bytes: [UInt8]) -> [UInt8] {
        var r = [UInt8]()
        for v in [UInt32(nanoseconds / 1_000_000_000), UInt32(nanoseconds % 1_000_000_000 / 1_000), UInt32(bytes.count), UInt32(bytes.count)] {
            r += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)]
        }
        return r + bytes
    }

    /// Grows frame `k`'s UDP payload by `growth` octets in the arena as the work step does,
    /// checksum deferred; returns the frame as it must go out (checksum filled in place on a copy).
    private func grow(_ batch: ReplayBatch, _ k: Int, by growth: Int) throws -> [UInt8] {
        let f = batch.frames + k
        guard case .udp(var u) = FrameParser.classify(f.pointee.bytes, length: f.pointee.length, linkType: .ethernet) else {
            throw XCTSkip("test frame did not parse")
        }
        for i in 0..<growth { f.pointee.bytes.storeBytes(of: UInt8(0xC0 | i), toByteOffset: f.pointee.length + i, as: UInt8.self) }
        let total = UDPFrameEditor.resizePayload(f.pointee.bytes, frame: &u, newPayloadLength: u.payloadLength + growth, deferringChecksum: true)
        f.pointee.verdict = .forward(length: total)
        f.pointee.deferredChecksum = u
        var out = Array(UnsafeRawBufferPointer(start: f.pointee.bytes, count: total))
        out.withUnsafeMutableBytes { UDPFrameEditor.fillUDPChecksum($0.baseAddress!, frame: u) }
        return out
    }

    func testPreparedOutputIsEveryRecordInOrderWithTheChecksumsFilled() throws {
        let batch = ReplayBatch()
        let inputs = [frame(1200, v4, seed: 1), frame(160, v6, seed: 2), frame(40, v4, seed: 3), frame(333, v6, seed: 4), frame(0, v4, seed: 5)]
        let stamps: [UInt64] = [1_700_000_000_123_456_789, 1_700_000_000_223_456_000, 1_700_000_001_000_000_000, 1_700_000_001_999_999_999, 1_700_000_002_000_001_000]
        for (k, b) in inputs.enumerated() { b.withUnsafeBytes { batch.append($0, stamp: stamps[k], offset: 0) } }
        let out0 = try grow(batch, 0, by: 16)                          // SRTP: MKI + tag
        batch.frames[1].verdict = .passThrough
        batch.frames[2].verdict = .drop(reason: "test")
        let out3 = try grow(batch, 3, by: 20)                          // SRTP with an RFC 4771 ROC
        batch.frames[4].verdict = .forward(length: inputs[4].count)    // no checksum asked for
        let mikey = [UInt8](repeating: 0x1A, count: 120), flute = [UInt8](repeating: 0xF1, count: 1442), last = [UInt8](repeating: 0x77, count: 64)
        batch.injections = [.init(before: 0, time: 1_700_000_000_000_000_000, frame: mikey),
                            .init(before: 2, time: 1_700_000_000_900_000_000, frame: flute),
                            .init(before: 5, time: 1_700_000_003_000_000_000, frame: last)]
        let arenaBefore = Array(UnsafeRawBufferPointer(start: batch.arena, count: batch.used))

        batch.prepareOutput()

        let p = try XCTUnwrap(batch.prepared)
        let want = record(1_700_000_000_000_000_000, mikey) + record(stamps[0], out0) + record(stamps[1], inputs[1])
            + record(1_700_000_000_900_000_000, flute) + record(stamps[3], out3) + record(stamps[4], inputs[4])
            + record(1_700_000_003_000_000_000, last)
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: batch.image, count: p.bytes)), want)
        XCTAssertEqual(p.frames, 7)
        XCTAssertEqual(p.frameBytes, [mikey, out0, inputs[1], flute, out3, inputs[4], last].map(\.count).reduce(0, +))
        // Filled in the copy only: the arena keeps the checksum field 0, as the work step left it.
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: batch.arena, count: batch.used)), arenaBefore)
        XCTAssertNotEqual(out0, Array(UnsafeRawBufferPointer(start: batch.frames[0].bytes, count: out0.count)))
    }

    /// More injected output than the image has room for (a burst of FLUTE packets): nothing is
    /// prepared and nothing in the arena changes, so the write step gathers the batch as before.
    func testOutputThatDoesNotFitIsLeftToTheGatheredWrite() throws {
        let batch = ReplayBatch()
        frame(700, v4, seed: 9).withUnsafeBytes { batch.append($0, stamp: 1_700_000_000_000_000_000, offset: 0) }
        _ = try grow(batch, 0, by: 16)
        let burst = ReplayBatch.imageBytes / 1_400 + 1
        batch.injections = (0..<burst).map { _ in .init(before: 1, time: 1_700_000_000_000_000_000, frame: [UInt8](repeating: 3, count: 1_400)) }
        let arenaBefore = Array(UnsafeRawBufferPointer(start: batch.arena, count: batch.used))
        batch.prepareOutput()
        XCTAssertNil(batch.prepared)
        XCTAssertNotNil(batch.frames[0].deferredChecksum, "the gathered write still has to fill the checksum")
        XCTAssertEqual(Array(UnsafeRawBufferPointer(start: batch.arena, count: batch.used)), arenaBefore)
        // A reset batch lays out again.
        batch.reset()
        frame(100, v4, seed: 1).withUnsafeBytes { batch.append($0, stamp: 1_700_000_000_000_000_000, offset: 0) }
        batch.frames[0].verdict = .passThrough
        batch.prepareOutput()
        XCTAssertEqual(batch.prepared?.frames, 1)
    }

    /// A lane's cipher contexts: one copy per session key while its batches use it (the same
    /// copy every time, never the work state's own object), dropped after the first batch
    /// that does not use it.
    func testLaneCipherKeysCopyOncePerKeyAndForgetRetiredOnes() throws {
        func keys(_ mtk: UInt16) throws -> SRTPSessionKeys {
            try SRTPSessionKeys(masterKey: [UInt8](repeating: UInt8(mtk), count: 16), masterSalt: [UInt8](repeating: 1, count: 14),
                                mki: MasterKeyIdentifier(keyGroup: 1, keyNumber: 1, mtkID: mtk), cipher: .aesCM128)
        }
        let a = try keys(1), b = try keys(2), c = try keys(3)
        let lane = ReplayPipeline.LaneCipherKeys()
        XCTAssertNil(lane.keys(for: a), "no copy before prepare")
        lane.prepare(a)
        lane.prepare(b)
        let a1 = try XCTUnwrap(lane.keys(for: a)), b1 = try XCTUnwrap(lane.keys(for: b))
        XCTAssertFalse(a1 === a)
        XCTAssertFalse(b1 === b)
        lane.prepare(a)
        XCTAssertTrue(lane.keys(for: a) === a1, "the same copy within a batch")
        XCTAssertEqual(a1.mki, a.mki)
        lane.endBatch()
        XCTAssertEqual(lane.count, 2)
        // Next batch: a and c (an MTK switch retired b).
        lane.prepare(a)
        lane.prepare(c)
        XCTAssertTrue(lane.keys(for: a) === a1, "the same copy in the next batch")
        let c1 = try XCTUnwrap(lane.keys(for: c))
        XCTAssertFalse(c1 === c)
        lane.endBatch()
        XCTAssertEqual(lane.count, 2, "b's copy is gone after a batch without it")
        XCTAssertNil(lane.keys(for: b))
        lane.prepare(b)
        XCTAssertFalse(lane.keys(for: b) === b1, "b comes back as a new copy")
    }
}
