import Foundation
import Gateway
import PacketIO
import TestSupport
import XCTest

/// `replay --output` never damages what the user owns (DESIGN.md §8): an output that is the
/// input through a symlink (or a hard link) is refused and the input stays intact; a normal
/// run writes beside the output and renames into place, leaving no temporary file; a symlink
/// as output is replaced itself, never written through.
final class ReplayOutputTests: XCTestCase {
    func testOutputThatIsTheInputIsRefusedAndTheInputSurvives() throws {
        let h = try LiveHarness(test: "outlink")
        defer { h.shutdown() }
        let input = h.path("plain.pcap")
        _ = try SyntheticCapture(source: .v4(0x0A00_0001), streams: [.init(destination: h.input, ssrc: 0xAB, packetsPerSecond: 50, payloadBytes: 40...200)],
                                 startNanoseconds: UInt64(Date().timeIntervalSince1970 + 30) * 1_000_000_000, packetsPerStream: 200).write(to: input)
        let original = try Data(contentsOf: URL(fileURLWithPath: input))
        let fm = FileManager.default

        try fm.createSymbolicLink(atPath: h.path("via-symlink.pcap"), withDestinationPath: input)
        try fm.linkItem(atPath: input, toPath: h.path("via-hardlink.pcap"))
        for name in ["via-symlink.pcap", "via-hardlink.pcap"] {
            let (status, stdout, stderr) = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path(name), "--quiet"])
            XCTAssertEqual(status, 1, "\(name): \(stdout)\(stderr)")
            XCTAssertTrue(stderr.contains("is the input capture"), stderr)
            XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: input)), original, "\(name): the input was changed")
        }

        // A symlink to some other file of the user's: the link is replaced, its target untouched.
        let precious = h.path("precious.txt")
        try Data("keep me".utf8).write(to: URL(fileURLWithPath: precious))
        try fm.createSymbolicLink(atPath: h.path("out.pcap"), withDestinationPath: precious)
        let (status, _, stderr) = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("out.pcap"), "--quiet"])
        XCTAssertEqual(status, 0, stderr)
        XCTAssertEqual(try String(contentsOfFile: precious, encoding: .utf8), "keep me")
        XCTAssertEqual(try fm.attributesOfItem(atPath: h.path("out.pcap"))[.type] as? FileAttributeType, .typeRegular)
        XCTAssertGreaterThan(try readFrames(h.path("out.pcap")).count, 200)
        XCTAssertEqual(try fm.contentsOfDirectory(atPath: h.directory.path).filter { $0.contains(".partial-") }, [], "no temporary file left")
    }
}
