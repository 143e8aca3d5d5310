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

    /// fuzz-pcap crash-27b0fc9d25a216cf4f6667182e6c1a807840e962 (minimised): a record whose
    /// fraction field is 0xD901_6C95 (≥ 2^31, so not a valid µs/ns value). libpcap reads the field
    /// as a signed 32-bit value, and the libpcap path clamps the negative result to 0; the mapped
    /// walk read it unsigned and gave a time 3640 s later — the two walks disagreed, against the
    /// reader's promise. Both must give 1795436341 s exactly (what libpcap's pcap_next_ex gives,
    /// checked with libpcap itself); the valid record after it is unaffected.
    func testFractionOf2To31OrMoreReadsTheSameOnBothWalks() throws {
        // Little-endian µs pcap, Ethernet, snaplen 262144: two records of 4 octets.
        let micro: [UInt8] = [
            0xd4, 0xc3, 0xb2, 0xa1, 0x02, 0x00, 0x04, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x04, 0x00, 0x01, 0x00, 0x00, 0x00,
            0x35, 0x2f, 0x04, 0x6b, 0x95, 0x6c, 0x01, 0xd9, 0x04, 0, 0, 0, 0x04, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef,
            0x35, 0x2f, 0x04, 0x6b, 0x5b, 0x6c, 0x01, 0x00, 0x04, 0, 0, 0, 0x04, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe,
        ]
        var nano = micro
        nano.replaceSubrange(0..<4, with: [0x4d, 0x3c, 0xb2, 0xa1])
        let seconds: UInt64 = 1_795_436_341   // 0x6b042f35
        for (name, bytes, second) in [("micro", micro, seconds * 1_000_000_000 + 93_275 * 1_000),
                                      ("nano", nano, seconds * 1_000_000_000 + 93_275)] {
            let path = tempPath("fraction-\(name).pcap")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            let mapped = try stamps(path, mapping: true), libpcap = try stamps(path, mapping: false)
            XCTAssertEqual(libpcap, [seconds * 1_000_000_000, second], name)
            XCTAssertEqual(mapped, libpcap, name)
        }
    }
}
