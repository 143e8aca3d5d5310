import Foundation
import XCTest
@testable import PacketIO

/// Inputs the libFuzzer campaign (Fuzz/, `make fuzz`; issue 19 finding 12) found, kept as
/// regression tests of the normal suite.
final class PacketIOFuzzRegressionTests: XCTestCase {
    func tempPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-fuzz-regression-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    func stamps(_ path: String, mapping: Bool) throws -> [UInt64] {
        let r = try CaptureReader(path: path, mapping: mapping)
        var out: [UInt64] = []
        while let f = try r.next() { out.append(f.timestampNanoseconds) }
        return out
    }

    /// fuzz-pcap crash-27b0fc9d25a216cf4f6667182e6c1a807840e962 and crash-8d9bec8e65b4 (minimised):
    /// a record whose fraction field is 0xD901_6C95 (≥ 2^31: not a valid µs/ns value). libpcap
    /// reads the field as signed 32-bit in a file of the host's byte order (the libpcap path
    /// then clamps the negative result to 0) but byte-swaps it as unsigned in a file of the
    /// other order; the mapped walk read it unsigned in both — and after a first fix, signed in
    /// both — so the two walks disagreed, against the reader's promise. Expected values are what
    /// libpcap's pcap_next_ex gives (checked with libpcap itself); the valid record after it is
    /// unaffected.
    func testFractionOf2To31OrMoreReadsTheSameOnBothWalks() throws {
        // Little-endian (host order) µs pcap, Ethernet, snaplen 262144: two records of 4 octets.
        let micro: [UInt8] = [
            0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x35, 0x2f, 0x04, 0x6b, 0x95, 0x6c, 0x01, 0xd9, 0x04, 0, 0, 0, 0x04, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef,
            0x35, 0x2f, 0x04, 0x6b, 0x5b, 0x6c, 0x01, 0x00, 0x04, 0, 0, 0, 0x04, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe,
        ]
        var nano = micro
        nano.replaceSubrange(0..<4, with: [0x4d, 0x3c, 0xb2, 0xa1])
        // The same two records big-endian (byte-swapped on this host).
        let bigMicro: [UInt8] = [
            0xa1, 0xb2, 0xc3, 0xd4, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
            0x6b, 0x04, 0x2f, 0x35, 0xd9, 0x01, 0x6c, 0x95, 0, 0, 0, 0x04, 0, 0, 0, 0x04, 0xde, 0xad, 0xbe, 0xef,
            0x6b, 0x04, 0x2f, 0x35, 0x00, 0x01, 0x6c, 0x5b, 0, 0, 0, 0x04, 0, 0, 0, 0x04, 0xca, 0xfe, 0xba, 0xbe,
        ]
        var bigNano = bigMicro
        bigNano.replaceSubrange(0..<4, with: [0xa1, 0xb2, 0x3c, 0x4d])
        let s: UInt64 = 1_795_436_341 * 1_000_000_000   // 0x6b042f35 seconds
        let cases: [(String, [UInt8], [UInt64])] = [
            ("little-endian µs", micro, [s, s + 93_275_000]),
            ("little-endian ns", nano, [s, s + 93_275]),
            ("big-endian µs", bigMicro, [s + 3_640_749_205_000, s + 93_275_000]),
            ("big-endian ns", bigNano, [s + 3_640_749_205, s + 93_275]),
        ]
        for (name, bytes, expected) in cases {
            let path = tempPath("fraction-\(name.replacingOccurrences(of: " ", with: "-")).pcap")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let mapped = try stamps(path, mapping: true), libpcap = try stamps(path, mapping: false)
            XCTAssertEqual(libpcap, expected, name)
            XCTAssertEqual(mapped, libpcap, name)
        }
    }

    func walk(_ path: String, mapping: Bool) throws -> (frames: [[UInt8]], originals: [Int], failed: Bool) {
        let r = try CaptureReader(path: path, mapping: mapping)
        var out: (frames: [[UInt8]], originals: [Int], failed: Bool) = ([], [], false)
        do {
            while let f = try r.next() { out.frames.append(Array(f.bytes)); out.originals.append(f.originalLength) }
        } catch {
            out.failed = true
        }
        return out
    }

    /// fuzz-pcap crash-3233dc92d0b8f5cf6ae32d820abcea81ae06e8cf: a pcap of version 2.0. libpcap
    /// reads the captured and original lengths of versions before 2.3 (and of 2.3 when caplen >
    /// len) the other way round (sf-pcap.c lengths_swapped); the mapped walk read them as in 2.4,
    /// so it returned 2 frames where libpcap refuses the first record. Only 2.4 files are mapped
    /// now; the others go through libpcap. Expected values are libpcap's.
    func testOldPcapVersionsReadAsLibpcapReadsThem() throws {
        let crash: [UInt8] = [
            0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x00, 0x00, 0x20, 0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0xa2, 0x2f, 0x04,
            0x6b, 0xff, 0xff, 0xff, 0xff, 0x2c, 0x01, 0x00, 0x00, 0x98, 0x05, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02,
            0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
            0x01, 0x00, 0x00, 0x00, 0x5f, 0x2f, 0x04, 0x6b, 0xc8, 0x9a, 0x0c, 0x00, 0x2c, 0x00, 0x01, 0x00, 0x00, 0x98, 0x05, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x08, 0x00, 0x45, 0x00, 0x05, 0xb8,
            0xe0,
        ]
        let path = tempPath("version-2.0.pcap")
        try Data(crash).write(to: URL(fileURLWithPath: path))
        XCTAssertFalse(try CaptureReader(path: path).isMapped)
        let mapped = try walk(path, mapping: true), libpcap = try walk(path, mapping: false)
        XCTAssertEqual(libpcap.frames.count, 0)
        XCTAssertTrue(libpcap.failed)
        XCTAssertEqual(mapped.frames, libpcap.frames)
        XCTAssertEqual(mapped.failed, libpcap.failed)

        // Versions 2.2 and 2.3 with a record written (caplen 1500, len 60) and 60 octets: libpcap
        // reads caplen 60, len 1500 — as both walks must.
        let frame = (0..<60).map { UInt8($0) }
        func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24)] }
        for minor: UInt8 in [2, 3] {
            let file = [0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, minor, 0x00] + le32(0) + le32(0) + le32(262_144) + le32(1)
                + le32(1_700_000_000) + le32(5) + le32(1500) + le32(60) + frame
                + le32(1_700_000_001) + le32(6) + le32(60) + le32(60) + frame
            let p = tempPath("version-2.\(minor).pcap")
            try Data(file).write(to: URL(fileURLWithPath: p))
            let m = try walk(p, mapping: true), l = try walk(p, mapping: false)
            XCTAssertEqual(l.frames, [frame, frame], "2.\(minor)")
            XCTAssertEqual(l.originals, [1500, 60], "2.\(minor)")
            XCTAssertFalse(l.failed, "2.\(minor)")
            XCTAssertEqual(m.frames, l.frames, "2.\(minor)")
            XCTAssertEqual(m.originals, l.originals, "2.\(minor)")
            XCTAssertEqual(m.failed, l.failed, "2.\(minor)")
        }
    }
}
