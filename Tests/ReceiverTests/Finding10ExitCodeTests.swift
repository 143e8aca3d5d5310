import Foundation
import SRTP
import TestSupport
import XCTest

/// Issue 19 finding 10: one table of exit statuses for every command (`mbms-gateway --help`,
/// README "Exit status"). The same bad capture gave `replay` 1 and `receive` 2; now the same kind
/// of bad input gives the same documented status whichever command meets it.
final class Finding10ExitCodeTests: XCTestCase {
    /// The table's values (README.md "Exit status").
    static let ok: Int32 = 0, failed: Int32 = 1, badInput: Int32 = 2, usage: Int32 = 64

    func testTheSameBadInputGivesTheSameStatusInEveryCommand() throws {
        _ = try CLI.binary()
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        let dir = Paths.temporary("exit-codes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/gateway.yaml"
        try (TestConfiguration.header + """

          - { name: wrap, kind: rtp, destination: 127.0.0.20:5010, keyGroup: 1, protection: { auth: rccm1, rocRate: 1 } }
        """).write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["MBMS_KEK": String(repeating: "ab", count: 32)]
        var r = try CLI.run(["keys", "init", "--config", config, "--at", "2026-11-20T00:00:00Z"], environment: env)
        XCTAssertEqual(r.status, Self.ok, r.output)
        // Key material that works, so that the capture is what is wrong.
        let bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm1, rocTransmissionRate: 1))
        let export = dir + "/export.json"
        try bmsc.exportJSON().write(to: URL(fileURLWithPath: export))

        // Three bad captures: none there, not a capture, cut inside its last record.
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixture))
        try Data((0..<1000).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }).write(to: URL(fileURLWithPath: dir + "/garbage.pcap"))
        try whole.prefix(whole.count - 10).write(to: URL(fileURLWithPath: dir + "/cut.pcap"))
        for name in ["missing.pcap", "garbage.pcap", "cut.pcap"] {
            let bad = dir + "/" + name
            let runs: [(String, [String])] = [
                ("replay", ["replay", "--config", config, "--input", bad, "--output", dir + "/out.pcap", "--quiet"]),
                ("receive", ["receive", "--input", bad, "--ue-export", export]),
                ("receive --plain", ["receive", "--input", fixture, "--ue-export", export, "--plain", bad]),
                ("inspect", ["inspect", bad]),
            ]
            for (label, args) in runs {
                r = try CLI.run(args, environment: env)
                XCTAssertEqual(r.status, Self.badInput, "\(label) \(name): \(r.output)")
                XCTAssertTrue(r.output.contains(name), "\(label) \(name): the error names the file: \(r.output)")
                XCTAssertFalse(r.output.contains("Usage:"), "\(label) \(name): \(r.output)")
            }
        }

        // A configuration that is not YAML: the same status in every command that reads it.
        let badConfig = dir + "/bad.yaml"
        try "sessions: [".write(toFile: badConfig, atomically: true, encoding: .utf8)
        for (label, args) in [("replay", ["replay", "--config", badConfig, "--input", fixture, "--output", dir + "/out.pcap", "--quiet"]),
                              ("keys show", ["keys", "show", "--config", badConfig]),
                              ("run", ["run", "--config", badConfig, "--duration", "1"]),
                              ("keyserver", ["keyserver", "--config", badConfig]),
                              ("receive", ["receive", "--input", fixture, "--config", badConfig, "--muk", String(repeating: "4d", count: 32),
                                           "--ue-id", "ue1@bsf", "--msk-message", export])] {
            r = try CLI.run(args, environment: env)
            XCTAssertEqual(r.status, Self.badInput, "\(label): \(r.output)")
            XCTAssertTrue(r.output.contains("bad.yaml"), "\(label): \(r.output)")
        }

        // Usage errors are ArgumentParser's EX_USAGE everywhere; a failed check is 1.
        for args in [["replay", "--no-such-option"], ["receive", "--no-such-option"], ["inspect"]] {
            XCTAssertEqual(try CLI.run(args, environment: env).status, Self.usage, "\(args)")
        }
        r = try CLI.run(["receive", "--input", fixture, "--ue-export", export, "--quiet"], environment: env)
        XCTAssertEqual(r.status, Self.failed, "nothing verified in a plain capture: \(r.output)")

        // The table is documented where users look.
        r = try CLI.run(["--help"])
        XCTAssertEqual(r.status, Self.ok)
        for line in ["Exit status (every command):", "0    done", "1    failed", "2    bad input", "64   usage", "130  run"] {
            XCTAssertTrue(r.output.contains(line), "--help lacks \"\(line)\": \(r.output)")
        }
        let readme = try String(contentsOf: CLI.repoRoot.appendingPathComponent("README.md"), encoding: .utf8)
        XCTAssertTrue(readme.contains("## Exit status"), "README.md has no Exit status section")
        for row in ["| 0 | done", "| 1 | failed", "| 2 | bad input", "| 64 | usage", "| 130 | `run`"] {
            XCTAssertTrue(readme.contains(row), "README.md lacks \(row)")
        }
    }
}
