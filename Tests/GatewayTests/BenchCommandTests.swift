import Foundation
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `mbms-gateway bench` as a separate process (the built binary): the JSON it prints is well
/// formed, every case is there, every figure is positive. No timing thresholds.
final class BenchCommandTests: XCTestCase {
    private func bench(_ args: [String], timeout: TimeInterval = 120) throws -> (status: Int32, stdout: String, stderr: String) {
        guard let binary = LiveHarness.product("mbms-gateway") else {
            throw XCTSkip("mbms-gateway executable not found: build it first (swift build --build-tests)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-bench-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out").path, err = dir.appendingPathComponent("err").path
        _ = FileManager.default.createFile(atPath: out, contents: nil)
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        let p = Process()
        p.executableURL = binary
        p.arguments = ["bench"] + args
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: out))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: err))
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(50_000) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOfFile: out, encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: err, encoding: .utf8)) ?? "")
    }

    func testQuickJSONHasEveryCaseWithPositiveFigures() throws {
        let r = try bench(["--quick", "--json"])
        XCTAssertEqual(r.status, 0, "bench --quick --json failed; stderr:\n\(r.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        let root = try XCTUnwrap(object as? [String: Any], "top level is not an object:\n\(r.stdout)")
        XCTAssertEqual(root["quick"] as? Bool, true)

        let machine = try XCTUnwrap(root["machine"] as? [String: Any])
        for key in ["cpu", "openssl", "libsrtp", "multiHash", "batchAES", "mallocCounter"] {
            XCTAssertFalse((machine[key] as? String ?? "").isEmpty, "machine.\(key) missing")
        }
        XCTAssertGreaterThan(machine["cores"] as? Int ?? 0, 0)
        XCTAssertNotNil(machine["cpuFlags"] as? [String])

        let cases = try XCTUnwrap(root["cases"] as? [[String: Any]])
        let byName = Dictionary(cases.map { ($0["name"] as? String ?? "?", $0) }, uniquingKeysWith: { a, _ in a })
        for name in ["crypto", "replay", "live", "workers", "mallocs"] {
            let c = try XCTUnwrap(byName[name], "case \(name) missing")
            let rows = try XCTUnwrap(c["rows"] as? [[String: Any]], "\(name).rows")
            XCTAssertFalse(rows.isEmpty, "\(name) has no rows")
            for row in rows {
                let label = "\(name) / \(row["name"] as? String ?? "?") \(row["payloadBytes"] as? String ?? "?")"
                XCTAssertGreaterThan(row["packets"] as? Int ?? 0, 0, label)
                for key in ["nsPerPacket", "packetsPerSecond", "gbitPerSecond"] {
                    let v = (row[key] as? NSNumber)?.doubleValue ?? -1
                    XCTAssertTrue(v > 0 && v.isFinite, "\(label): \(key) = \(v)")
                }
                if name == "mallocs" {
                    // Counted or explicitly absent (null) when the counter is not the malloc in use; never negative.
                    if let m = (row["mallocsPerPacket"] as? NSNumber)?.doubleValue { XCTAssertGreaterThanOrEqual(m, 0, label) }
                }
            }
            let ratios = c["ratios"] as? [[String: Any]] ?? []
            if name != "mallocs" { XCTAssertFalse(ratios.isEmpty, "\(name) has no ratios") }
            for ratio in ratios {
                let v = (ratio["value"] as? NSNumber)?.doubleValue ?? -1
                XCTAssertTrue(v > 0 && v.isFinite, "\(name) ratio \(ratio["name"] ?? "?") = \(v)")
                XCTAssertFalse((ratio["meaning"] as? String ?? "").isEmpty, "ratio without meaning")
            }
        }
        // The crypto case compares ours (single, batch) with the OpenSSL floor at both sizes.
        let crypto = try XCTUnwrap(byName["crypto"]?["rows"] as? [[String: Any]])
        for size in ["160", "1200"] {
            let names = crypto.filter { $0["payloadBytes"] as? String == size }.compactMap { $0["name"] as? String }
            XCTAssertTrue(names.contains("mbms-gateway single") && names.contains("mbms-gateway batch"), "\(size) B: \(names)")
            XCTAssertTrue(names.contains { $0.hasPrefix("OpenSSL floor") }, "\(size) B: no floor in \(names)")
        }
        let mallocRows = try XCTUnwrap(byName["mallocs"]?["rows"] as? [[String: Any]])
        XCTAssertTrue(mallocRows.contains { ($0["name"] as? String ?? "").contains("mbms-gateway batch") }, "no allocation count for the batch loop")
    }

    func testTableAndHelpAndBadCase() throws {
        let table = try bench(["--quick", "--cases", "crypto,workers", "--rounds", "1"])
        XCTAssertEqual(table.status, 0, table.stderr)
        for part in ["CPU:", "== crypto", "== workers", "== mallocs", "OpenSSL floor", "allocs/packet", "2 workers / 1 worker"] {
            XCTAssertTrue(table.stdout.contains(part), "table lacks \(part):\n\(table.stdout)")
        }
        XCTAssertFalse(table.stdout.contains("== replay"), "replay ran though not selected")

        let help = try bench(["--help"])
        for part in ["crypto", "replay", "live", "workers", "OpenSSL floor", "libsrtp2", "plain copy", ">= 0.8", "Ratios:"] {
            XCTAssertTrue(help.stdout.contains(part), "--help lacks \(part)")
        }

        let bad = try bench(["--cases", "crypto,warp"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("unknown case warp") && bad.stderr.contains("crypto, replay, live, workers"), bad.stderr)
    }
}
