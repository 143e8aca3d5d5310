import CryptoCore
import Foundation
import KeyManagement
import MIKEY
import SRTP
import TestSupport
import XCTest
@testable import Receiver

/// Runs the built `mbms-gateway` (bounded in time); output is stdout and stderr together.
enum CLI {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The binary built beside these tests (whatever --scratch-path), else .build/debug's.
    static func binary() throws -> String {
        if let built = Tool.product("mbms-gateway") { return built.path }
        let path = repoRoot.appendingPathComponent(".build/debug/mbms-gateway").path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw XCTSkip("\(path) not built (run swift build first)") }
        return path
    }

    @discardableResult
    static func run(_ args: [String], environment: [String: String] = [:], stdout: String? = nil) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try binary())
        p.arguments = args
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        let capture = Paths.temporary("cli-output-\(UUID().uuidString).txt")
        FileManager.default.createFile(atPath: capture, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: capture))
        defer { try? handle.close(); try? FileManager.default.removeItem(atPath: capture) }
        p.standardOutput = handle
        p.standardError = handle
        try p.run()
        // Bounded: the commands here take well under a second each.
        let deadline = Date().addingTimeInterval(60)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning { p.terminate(); XCTFail("\(args.first ?? "") timed out") }
        p.waitUntilExit()
        let data = try Data(contentsOf: URL(fileURLWithPath: capture))
        let text = String(decoding: data, as: UTF8.self)
        if let stdout { try Data(text.utf8).write(to: URL(fileURLWithPath: stdout)) }
        return (p.terminationStatus, text)
    }
}

/// End to end through the built binary: `keys init/deliver/export-ue` make the key material, the
/// test protects rtp-seqwrap with the exported current and next MTKs (MTK messages built from
/// the exported MSK and RAND), then `receive` (both key paths) and `inspect` run on it.
final class CLITests: XCTestCase {
    func binary() throws -> String { try CLI.binary() }

    @discardableResult
    func run(_ args: [String], environment: [String: String] = [:], stdout: String? = nil) throws -> (status: Int32, output: String) {
        try CLI.run(args, environment: environment, stdout: stdout)
    }

    func testReceiveAndInspectThroughTheBinary() throws {
        let fixture = try Paths.fixture("rtp-seqwrap.pcap")
        _ = try binary()
        let dir = Paths.temporary("cli")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let config = dir + "/gateway.yaml"
        try """
        keyDomain:
          mcc: "001"
          mnc: "01"
        bmscFQDN: bmsc.mnc001.mcc001.pub.3gppnetwork.org
        keyStore:
          path: keys.sqlite
        schedule:
          epoch: 2026-01-01T00:00:00Z
          mtk:
            period: 60s
            announceLead: 10s
            repeat: 5s
          msk:
            period: 1d
        sessions:
          - name: wrap
            kind: rtp
            destination: 127.0.0.20:5010
            keyGroup: 1
            protection:
              cipher: aes-128-cm
              auth: rccm2
              rocRate: 16
              srtpTagLength: 14
              srtcpTagLength: 10
              srtcpEncryption: on
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["MBMS_KEK": String(repeating: "ab", count: 32)]
        let at = "2026-01-01T00:10:55Z"  // 5 s before an MTK switch: current and next MTK both exported
        let muk = String(repeating: "4d", count: 32)
        var r = try run(["keys", "init", "--config", config, "--at", at], environment: env)
        XCTAssertEqual(r.status, 0, r.output)
        r = try run(["keys", "deliver", "--config", config, "--at", at, "--key-group", "1", "--muk", muk, "--ue-id", "ue1@bsf",
                     "--output", dir + "/msk.bin"], environment: env)
        XCTAssertEqual(r.status, 0, r.output)
        r = try run(["keys", "export-ue", "--config", config, "--at", at, "--key-group", "1", "--output", dir + "/export.json"], environment: env)
        XCTAssertEqual(r.status, 0, r.output)

        let export = try JSONDecoder().decode(UEExport.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/export.json")))
        let current = try XCTUnwrap(export.currentMTK), next = try XCTUnwrap(export.nextMTK)
        let mskEntry = try XCTUnwrap(export.msks.first { $0.mskID == current.mskID })
        var bmsc = TestBMSC(policy: SRTPPolicy(cipher: .aesCM128, authentication: .rccm2, rocTransmissionRate: 16))
        bmsc.keyGroup = mskEntry.keyGroup
        bmsc.keyNumber = mskEntry.keyNumber
        bmsc.msk = SecretBytes(try Hex.decode(mskEntry.msk))
        bmsc.rand = try Hex.decode(mskEntry.rand)
        bmsc.mtkIDs = (current.mtkID, next.mtkID)
        bmsc.mtkTimestamps = (current.timestamp, next.timestamp)
        bmsc.mtkOverride = [current.mtkID: (try Hex.decode(current.mtk), try Hex.decode(current.salt)),
                            next.mtkID: (try Hex.decode(next.mtk), try Hex.decode(next.salt))]
        let cap = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: dir + "/protected.pcap")

        // MSK message path, NAF-ID from the configuration.
        r = try run(["receive", "--input", cap.path, "--output", dir + "/plain.pcap", "--report", dir + "/report.json",
                     "--muk", muk, "--ue-id", "ue1@bsf", "--config", config, "--msk-message", dir + "/msk.bin"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("no rule violations"), r.output)
        XCTAssertEqual(try udpPayloads(dir + "/plain.pcap"), cap.fixturePayloads)
        let report = try JSONDecoder().decode(ReceiveReport.self, from: Data(contentsOf: URL(fileURLWithPath: dir + "/report.json")))
        XCTAssertEqual(report.mtks.map(\.mtk), [current.mtk, next.mtk])
        XCTAssertEqual(report.mtks.map(\.mki), [current.mki, next.mki])
        let mode = try FileManager.default.attributesOfItem(atPath: dir + "/report.json")[.posixPermissions] as? Int
        XCTAssertEqual(mode, 0o600)

        // Export path.
        r = try run(["receive", "--input", cap.path, "--ue-export", dir + "/export.json", "--quiet"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(r.output.trimmingCharacters(in: .whitespacesAndNewlines), "OK")

        // Nothing checked is not a pass: the plain capture itself, same keys → exit 1 (issue 19 finding 10).
        r = try run(["receive", "--input", fixture, "--ue-export", dir + "/export.json", "--quiet"])
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("FAILED") && r.output.contains("nothing was verified"), r.output)

        // A violation gives exit status 1; bad key material 2 with a one-line error naming the file.
        let bad = try buildProtectedCapture(fixture: fixture, bmsc: bmsc, output: dir + "/bad.pcap", distortion: Distortion(unknownMKIPackets: [5]))
        r = try run(["receive", "--input", bad.path, "--ue-export", dir + "/export.json", "--quiet"])
        XCTAssertEqual(r.status, 1, r.output)
        r = try run(["receive", "--input", cap.path, "--ue-export", dir + "/gateway.yaml"])
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssertTrue(r.output.contains("gateway.yaml") && r.output.contains("export-ue"), r.output)

        r = try run(["inspect", cap.path, "--limit", "3"])
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertEqual(r.output.split(separator: "\n").count, 3)
        XCTAssertTrue(r.output.contains("mtk_id=\(current.mtkID)"), r.output)
        r = try run(["inspect", dir + "/gateway.yaml"])
        XCTAssertEqual(r.status, 2, r.output)
    }
}

/// `replay`'s failures a user meets first: no key store yet (exit 1), and a damaged capture
/// (exit 2, bad input, as in every command: README "Exit status"). Each names the problem and
/// the fix, without the usage text, and leaves no output file.
final class ReplayFailureCLITests: XCTestCase {
    func testNoKeyStoreAndADamagedCaptureFailCleanly() throws {
        let fixture = try Paths.fixture("rtp-multicast.pcap")
        let dir = Paths.temporary("replay-failures-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/gateway.yaml"
        try (TestConfiguration.header + """

          - { name: mcvideo, kind: rtp, destination: 239.255.10.1:5020, keyGroup: 1, protection: { auth: hmac-sha1-80 } }
          - { name: mcaudio, kind: rtp, destination: 239.255.10.1:5022, keyGroup: 2, protection: { auth: hmac-sha1-80 } }
        """).write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["MBMS_KEK": String(repeating: "ab", count: 32)]
        let output = dir + "/out.pcap"
        var r = try CLI.run(["replay", "--config", config, "--input", fixture, "--output", output, "--quiet"], environment: env)
        XCTAssertEqual(r.status, 1, r.output)
        XCTAssertTrue(r.output.contains("Create the key store first: mbms-gateway keys init --config \(config)"), r.output)
        XCTAssertFalse(r.output.contains("Usage:"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output))

        r = try CLI.run(["keys", "init", "--config", config, "--at", "2026-11-20T00:00:00Z"], environment: env)
        XCTAssertEqual(r.status, 0, r.output)
        // Every session starts at once, so the capture is read once and the cut last record is
        // met after most of the output was written: the run fails and removes it.
        let whole = try Data(contentsOf: URL(fileURLWithPath: fixture))
        let cut = dir + "/cut.pcap"
        try whole.prefix(whole.count - 10).write(to: URL(fileURLWithPath: cut))
        r = try CLI.run(["replay", "--config", config, "--input", cut, "--output", output, "--quiet"], environment: env)
        XCTAssertEqual(r.status, 2, r.output)
        XCTAssertTrue(r.output.contains("cut.pcap") && r.output.contains("truncated dump file"), r.output)
        XCTAssertFalse(r.output.contains("Usage:"), r.output)
        XCTAssertFalse(FileManager.default.fileExists(atPath: output), "a failed replay left its partial output")

        r = try CLI.run(["replay", "--config", config, "--input", fixture, "--output", output, "--quiet"], environment: env)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("(to every session's first packet)"), r.output)
    }
}

/// The issue's "done when": the three RTP captures through `replay` (the gateway), back through
/// `receive` (MSK messages from `keys deliver`), byte-identical RTP and RTCP payloads packet by
/// packet; and Debian's libsrtp2 authenticates and decrypts the replay output's SRTP and SRTCP
/// with the MTKs from `receive --report`.
final class ReplayRoundTripTests: XCTestCase {
    override class func setUp() { super.setUp(); LibSRTPScope.begin() }
    override class func tearDown() { LibSRTPScope.end(); super.tearDown() }

    func testReplayThenReceiveReproducesTheThreeCaptures() throws {
        let cli = CLI.self
        let binary = try cli.binary()
        XCTAssertEqual(try cli.run(["replay", "--help"]).status, 0, "\(binary) replay --help")
        let fixtures = try ["rtp-h264-aac", "rtp-seqwrap", "rtp-multicast"].map { ($0, try Paths.fixture("\($0).pcap")) }
        let dir = Paths.temporary("replay")
        try? FileManager.default.removeItem(atPath: dir)
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let config = dir + "/gateway.yaml"
        try """
        keyDomain:
          mcc: "001"
          mnc: "01"
        bmscFQDN: bmsc.mnc001.mcc001.pub.3gppnetwork.org
        keyStore:
          path: keys.sqlite
        schedule:
          epoch: 2026-01-01T00:00:00Z
          mtk:
            period: 5s
            announceLead: 2s
            repeat: 1s
          msk:
            period: 1d
        sessions:
          - name: video
            kind: rtp
            destination: 127.0.0.20:5004
            keyGroup: 1
            protection: { cipher: aes-128-cm, auth: rccm2, rocRate: 64 }
          - name: audio
            kind: rtp
            destination: 127.0.0.20:5006
            keyGroup: 2
            protection: { cipher: aes-256-cm, auth: rccm1, rocRate: 1, srtcpEncryption: off }
          - name: wrap
            kind: rtp
            destination: 127.0.0.20:5010
            keyGroup: 3
            protection: { cipher: aes-128-cm, auth: rccm2, rocRate: 16 }
          - name: mc-video
            kind: rtp
            destination: 239.255.10.1:5020
            keyGroup: 4
            protection: { cipher: aes-128-cm, auth: hmac-sha1-80 }
          - name: mc-audio
            kind: rtp
            destination: 239.255.10.1:5022
            keyGroup: 5
            protection: { cipher: aes-128-cm, auth: rccm2, rocRate: 8 }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let layouts: [UInt16: SessionLayout] = [
            5004: SessionLayout(rocRate: 64, rcc: true, srtcpEncryption: true),
            5006: SessionLayout(rocRate: 1, rcc: true, srtcpEncryption: false),
            5010: SessionLayout(rocRate: 16, rcc: true, srtcpEncryption: true),
            5020: SessionLayout(rocRate: 1, rcc: false, srtcpEncryption: true),
            5022: SessionLayout(rocRate: 8, rcc: true, srtcpEncryption: true),
        ]
        let env = ["MBMS_KEK": String(repeating: "cd", count: 32)]
        let muk = String(repeating: "4d", count: 32)
        var r = try cli.run(["keys", "init", "--config", config, "--at", "2026-11-20T00:00:00Z"], environment: env)
        XCTAssertEqual(r.status, 0, r.output)
        // replay --commit-keys adds the MSKs covering the captures' time (2026-11-23 around
        // 12:18 UTC) to the store (without it they would be made in memory only); then one MSK
        // message per key group covers all three captures.
        for (name, fixture) in fixtures {
            r = try cli.run(["replay", "--config", config, "--input", fixture, "--output", dir + "/\(name).protected.pcap", "--quiet", "--commit-keys"], environment: env)
            XCTAssertEqual(r.status, 0, "\(name): \(r.output)")
        }
        var mskFiles: [String] = []
        for g in 1...5 {
            let file = dir + "/msk\(g).bin"
            r = try cli.run(["keys", "deliver", "--config", config, "--at", "2026-11-23T12:18:50Z", "--key-group", "\(g)",
                             "--muk", muk, "--ue-id", "ue1@bsf", "--output", file], environment: env)
            XCTAssertEqual(r.status, 0, r.output)
            mskFiles.append(file)
        }
        for (name, fixture) in fixtures {
            let protected = dir + "/\(name).protected.pcap", plain = dir + "/\(name).plain.pcap", reportFile = dir + "/\(name).report.json"
            r = try cli.run(["receive", "--input", protected, "--output", plain, "--report", reportFile, "--muk", muk, "--ue-id", "ue1@bsf",
                             "--config", config, "--msk-message"] + mskFiles)
            XCTAssertEqual(r.status, 0, "\(name): \(r.output)")
            let input = try udpPayloads(fixture)
            let output = try udpPayloads(plain)
            XCTAssertEqual(output.count, input.count, name)
            if let i = zip(output, input).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
                XCTFail("\(name): UDP payload \(i) differs after replay + receive")
            }
            let report = try JSONDecoder().decode(ReceiveReport.self, from: Data(contentsOf: URL(fileURLWithPath: reportFile)))
            XCTAssertTrue(report.ok, report.summary())
            XCTAssertGreaterThan(report.mtks.count, 2, "\(name): the 5 s MTK period gives several MTK switches")
            let checked = try checkWithLibSRTP(protected: protected, report: report, expected: input, layouts: layouts)
            XCTAssertEqual(checked.rtp + checked.rtcp, input.count, name)
        }
    }
}
