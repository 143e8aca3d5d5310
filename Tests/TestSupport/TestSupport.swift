import Foundation

// Shared by the test targets only: running external tools (tshark, editcap, python3, the built
// binary) and a seeded PRNG. Not part of the product.

/// What an external tool printed and how it exited.
public struct ToolResult: Sendable {
    public var status: Int32
    public var stdout: String
    public var stderr: String
}

public enum Tool {
    public static let tshark = "/usr/bin/tshark"

    public static func isInstalled(_ path: String) -> Bool { FileManager.default.isExecutableFile(atPath: path) }

    /// A product of this package built beside the tests (`mbms-gateway`, `keystore-torture`):
    /// next to the test bundle, else in `.build/debug` of the checkout.
    public static func product(_ name: String) -> URL? {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        // TEST_PRODUCT_DIR: run the tests against other builds of the products (e.g. the
        // binary of the commit before a fix, to see a regression test fail there).
        if let dir = ProcessInfo.processInfo.environment["TEST_PRODUCT_DIR"] {
            let u = URL(fileURLWithPath: dir).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        var dirs = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                    Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        for b in Bundle.allBundles { dirs.append(b.bundleURL.deletingLastPathComponent()) }
        dirs.append(root.appendingPathComponent(".build/debug"))
        for d in dirs {
            let u = d.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    /// Runs `executable` with `arguments` to completion, capturing both outputs.
    public static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> ToolResult {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        // Read stderr concurrently so a chatty tool cannot block on a full pipe.
        final class Box: @unchecked Sendable { var data = Data() }
        let errBox = Box()
        let group = DispatchGroup()
        group.enter()
        let errHandle = err.fileHandleForReading
        DispatchQueue.global().async {
            errBox.data = errHandle.readDataToEndOfFile()
            group.leave()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        group.wait()
        p.waitUntilExit()
        let errData = errBox.data
        return ToolResult(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                          stderr: String(decoding: errData, as: UTF8.self))
    }
}

/// SplitMix64: a seeded, reproducible PRNG for test data and mutation campaigns.
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    public mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }

    /// A generator seeded from `MBMS_TEST_SEED` when set, else from the clock; prints the seed
    /// so a failing random test can be replayed (`MBMS_TEST_SEED=<seed> swift test --filter …`).
    public static func seeded(_ label: String) -> SplitMix64 {
        let seed = ProcessInfo.processInfo.environment["MBMS_TEST_SEED"].flatMap { UInt64($0) }
            ?? UInt64(truncatingIfNeeded: DispatchTime.now().uptimeNanoseconds)
        print("\(label): seed \(seed) (replay with MBMS_TEST_SEED=\(seed))")
        return SplitMix64(seed: seed)
    }
}

/// The gateway configuration tests share, up to its session list: key domain 001/01, an SQLite
/// store beside the file, a 10 s MTK grid (2 s lead, 1 s repeat) and daily MSKs. Append
/// `  - { name: ..., kind: ..., ... }` lines.
public enum TestConfiguration {
    public static let header = """
        keyDomain: { mcc: "001", mnc: "01" }
        bmscFQDN: bmsc.example.org
        keyStore: { path: keys.sqlite }
        schedule:
          epoch: 2026-01-01T00:00:00Z
          mtk: { period: 10s, announceLead: 2s, repeat: 1s }
          msk: { period: 1d }
        sessions:
        """
}
