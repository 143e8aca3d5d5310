import Foundation
import Gateway
import KeyManagement
import PacketIO
import TestSupport
import XCTest

/// Issue 19 findings 1, 2 and 10 (part): a capture's timestamps never move key state. One
/// record at t = 0 or in the year 2100 among normal ones is passed through and counted, the
/// store's MSKs, windows, secrets and high-water mark stay as they were, `run` still starts
/// on the store afterwards, and replay ends promptly. A capture older than the store is
/// refused with --start-time as the fix; MSKs beyond the store go to it only with --commit-keys.
final class ReplayClockTests: XCTestCase {
    /// A 300-frame capture of one stream starting `offset` seconds from now, 50 packets/s.
    private func capture(_ h: LiveHarness, _ name: String, startingIn offset: Double, frames: Int = 300) throws -> String {
        let path = h.path(name)
        _ = try SyntheticCapture(source: .v4(0x0A00_0001),
                                 streams: [.init(destination: h.input, ssrc: 0xAB, packetsPerSecond: 50, payloadBytes: 40...120)],
                                 startNanoseconds: UInt64(Date().timeIntervalSince1970 + offset) * 1_000_000_000,
                                 packetsPerStream: frames).write(to: path)
        return path
    }

    /// Sets record `index`'s time (classic pcap: 24-byte file header, 16-byte record headers).
    private func setRecordTime(_ path: String, record index: Int, seconds: UInt32) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        var at = 24
        for _ in 0..<index {
            let caplen = Int(bytes[at + 8]) | Int(bytes[at + 9]) << 8 | Int(bytes[at + 10]) << 16 | Int(bytes[at + 11]) << 24
            at += 16 + caplen
            XCTAssertLessThan(at, bytes.count)
        }
        for k in 0..<4 { bytes[at + k] = UInt8(truncatingIfNeeded: seconds >> (8 * UInt32(k))) }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
    }

    /// The store's key state: MSK IDs, windows, whether their secrets are there, high-water mark.
    private func keyState(_ h: LiveHarness) throws -> String {
        let configuration = try GatewayConfiguration.load(path: h.configPath)
        let manager = try KeyManager.openSQLite(configuration: configuration, environment: [:], create: false)
        let s = try manager.store.snapshot()
        return "high water \(s.highWater ?? -1); " + s.msks.map { "\($0.mskID.hex) [\($0.validFrom), \($0.validUntil)) \($0.isPurged ? "purged" : "secret")" }.joined(separator: ", ")
    }

    private func summary(_ h: LiveHarness, _ name: String) throws -> GatewayStatistics {
        struct Summary: Decodable { var statistics: GatewayStatistics }
        return try JSONDecoder().decode(Summary.self, from: Data(contentsOf: URL(fileURLWithPath: h.path(name)))).statistics
    }

    /// Finding 1: a record at t = 0, replayed with --start-time now, used to move the store's
    /// high-water mark decades ahead; afterwards `run` refused to start ("check NTP").
    func testZeroTimestampDoesNotPoisonTheStore() throws {
        let h = try LiveHarness(test: "clock-zero")
        defer { h.shutdown() }
        let input = try capture(h, "plain.pcap", startingIn: 30)
        try setRecordTime(input, record: 120, seconds: 0)
        let before = try keyState(h)
        let start = ISO8601DateFormatter().string(from: Date().addingTimeInterval(60))
        let (status, stdout, stderr) = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("out.pcap"),
                                                       "--start-time", start, "--summary-json", h.path("summary.json"), "--quiet"])
        XCTAssertEqual(status, 0, stdout + stderr)
        XCTAssertEqual(try keyState(h), before, "replay changed the key store's key state")
        let stats = try summary(h, "summary.json")
        XCTAssertEqual(stats.passedThrough["implausible_timestamp"], 1, "\(stats.passedThrough)")
        XCTAssertEqual(stats.framesIn, try readFrames(input).count)
        XCTAssertTrue(stderr.contains("implausible timestamps"), stderr)
        // The frame went through untouched: 300 frames in, every one out, plus MIKEY.
        let out = try readFrames(h.path("out.pcap"))
        XCTAssertGreaterThan(out.count, 300)
        // And the gateway still starts on this store.
        let run = try h.runToEnd(["run", "--config", h.configPath, "--duration", "1"])
        XCTAssertEqual(run.0, 0, run.1 + run.2)
    }

    /// Finding 2: a record in the year 2100 made replay run for over ten minutes (74 years of
    /// MIKEY repeats) and retire the current MSK, deleting its secrets.
    func testYear2100TimestampNeitherHangsNorRetiresTheMSK() throws {
        let h = try LiveHarness(test: "clock-2100")
        defer { h.shutdown() }
        let input = try capture(h, "plain.pcap", startingIn: 30)
        try setRecordTime(input, record: 150, seconds: 4_102_444_800)   // 2100-01-01T00:00:00Z
        let before = try keyState(h)
        let started = Date()
        let (status, stdout, stderr) = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("out.pcap"),
                                                       "--summary-json", h.path("summary.json"), "--quiet"])
        XCTAssertEqual(status, 0, stdout + stderr)
        XCTAssertLessThan(Date().timeIntervalSince(started), 25, "replay took too long (runToEnd kills it at 30 s)")
        XCTAssertEqual(try keyState(h), before, "replay changed the key store's key state")
        XCTAssertFalse(try keyState(h).contains("purged"))
        XCTAssertEqual(try summary(h, "summary.json").passedThrough["implausible_timestamp"], 1)
        // With --drop-unmatched the frame is dropped and counted as such.
        let dropped = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("out2.pcap"),
                                      "--drop-unmatched", "--summary-json", h.path("summary2.json"), "--quiet"])
        XCTAssertEqual(dropped.0, 0, dropped.1 + dropped.2)
        XCTAssertEqual(try summary(h, "summary2.json").dropped["implausible_timestamp"], 1)
    }

    /// The clock's rule itself: a few bad frames among the first ones do not move its start;
    /// frames beyond the bound either side are refused; the clock only moves forward.
    func testCaptureClockRule() {
        let s: UInt64 = 1_000_000_000
        let t0 = 1_800_000_000 * s
        let start = CaptureClock.start(of: [0, t0, t0 + s, 4_102_444_800 * s, t0 + 2 * s], boundSeconds: 3600)
        XCTAssertEqual(start?.median, t0 + s)
        XCTAssertEqual(start?.first, t0, "the first plausible frame, not the one at t = 0")
        var clock = CaptureClock(start: t0, boundSeconds: 3600)
        XCTAssertTrue(clock.admit(t0 + 3600 * s))
        XCTAssertFalse(clock.admit(t0 + 7201 * s + 1), "more than an hour ahead of the clock")
        XCTAssertTrue(clock.admit(t0 + 10 * s), "behind, within the bound (reordering, several sources)")
        XCTAssertFalse(clock.admit(t0 - 1), "more than an hour behind the clock (which is at t0 + 1 h)")
        XCTAssertFalse(clock.admit(0))
        XCTAssertEqual(clock.rejected, 3)
        XCTAssertEqual(clock.now, t0 + 3600 * s)
    }

    /// Finding 10 (part): a capture older than the store's MSKs is refused with --start-time
    /// (or a store made for its time) as the fix — not "check this host's clock (NTP)".
    func testCaptureOlderThanTheStoreOffersStartTime() throws {
        let h = try LiveHarness(test: "clock-old")
        defer { h.shutdown() }
        let input = try capture(h, "old.pcap", startingIn: -30 * 86_400)
        let (status, stdout, stderr) = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("out.pcap"), "--quiet"])
        XCTAssertEqual(status, 1, stdout + stderr)
        XCTAssertTrue(stderr.contains("--start-time"), stderr)
        XCTAssertTrue(stderr.contains("keys init --config FILE --at"), stderr)
        XCTAssertFalse(stderr.contains("NTP"), stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: h.path("out.pcap")), "no partial output")
        let retimed = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("out.pcap"), "--quiet",
                                      "--start-time", ISO8601DateFormatter().string(from: Date().addingTimeInterval(30))])
        XCTAssertEqual(retimed.0, 0, retimed.1 + retimed.2)
    }

    /// MSKs a capture needs beyond the store: made in memory (and named) by default, added to
    /// the store with --commit-keys — and neither moves the high-water mark.
    func testMSKsBeyondTheStoreNeedCommitKeys() throws {
        let h = try LiveHarness(test: "clock-commit")
        defer { h.shutdown() }
        let input = try capture(h, "later.pcap", startingIn: 3 * 86_400)
        let before = try keyState(h)
        let plain = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("a.pcap"), "--quiet"])
        XCTAssertEqual(plain.0, 0, plain.1 + plain.2)
        XCTAssertTrue(plain.2.contains("made in memory"), plain.2)
        XCTAssertTrue(plain.2.contains("--commit-keys"), plain.2)
        XCTAssertEqual(try keyState(h), before)

        let committed = try h.runToEnd(["replay", "--config", h.configPath, "--input", input, "--output", h.path("b.pcap"), "--quiet", "--commit-keys"])
        XCTAssertEqual(committed.0, 0, committed.1 + committed.2)
        XCTAssertFalse(committed.2.contains("made in memory"), committed.2)
        let after = try keyState(h)
        XCTAssertNotEqual(after, before, "--commit-keys adds the capture's MSKs")
        XCTAssertEqual(after.prefix(while: { $0 != ";" }), before.prefix(while: { $0 != ";" }), "the high-water mark did not move")
        XCTAssertFalse(after.contains("purged"))
    }
}
