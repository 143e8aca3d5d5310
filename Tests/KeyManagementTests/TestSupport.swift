import CryptoCore
import Foundation
import MIKEY
import XCTest
@testable import KeyManagement

/// Deterministic "randomness" for planners: SHA-256 of a label and a counter.
final class DeterministicRandom: RandomSource, @unchecked Sendable {
    private let lock = NSLock()
    private var counter: UInt64 = 0
    let label: String
    init(_ label: String) { self.label = label }
    func bytes(count: Int) throws -> [UInt8] {
        lock.lock(); defer { lock.unlock() }
        var out: [UInt8] = []
        while out.count < count {
            counter += 1
            out += SHA256.hash(Array("\(label)/\(counter)".utf8))
        }
        return Array(out.prefix(count))
    }
}

/// A second `KeyStore` implementation (in memory): shows the protocol is implementable
/// without SQLite, and lets schedule tests run without files.
final class InMemoryKeyStore: KeyStore, @unchecked Sendable {
    private let lock = NSLock()
    private var revision: Int64 = 0
    private var keyDomainID: KeyDomainID?
    private var grid: GridParameters?
    private var highWater: Int64?
    private var groups: [KeyGroupRecord] = []
    private var msks: [MSKRecord] = []
    private var counters: [String: UInt32] = [:]

    func snapshot() throws -> KeyStoreSnapshot {
        lock.lock(); defer { lock.unlock() }
        return KeyStoreSnapshot(revision: revision, keyDomainID: keyDomainID, grid: grid, highWater: highWater, keyGroups: groups, msks: msks)
    }

    func commit(_ changes: [KeyStoreChange], expectedRevision: Int64) throws -> Int64 {
        lock.lock(); defer { lock.unlock() }
        guard expectedRevision == revision else { throw KeyStoreError.conflict(expected: expectedRevision, found: revision) }
        // Atomic like the SQLite store: `applying` publishes nothing unless every change applies.
        let next = try KeyStoreSnapshot(revision: revision, keyDomainID: keyDomainID, grid: grid, highWater: highWater,
                                        keyGroups: groups, msks: msks).applying(changes)
        keyDomainID = next.keyDomainID; grid = next.grid; highWater = next.highWater
        groups = next.keyGroups; msks = next.msks
        revision = next.revision
        return revision
    }

    func nextMSKMessageCounter(ueID: String) throws -> UInt32 {
        lock.lock(); defer { lock.unlock() }
        counters[ueID, default: 0] += 1
        return counters[ueID, default: 0]
    }

    func mskMessageCounter(ueID: String) throws -> UInt32? {
        lock.lock(); defer { lock.unlock() }
        return counters[ueID]
    }

    private var senderIndices: [SenderIndexCounter: UInt64] = [:]

    func reserveSenderIndices(_ counter: SenderIndexCounter, count: UInt64, limit: UInt64, atLeast: UInt64) throws -> UInt64 {
        lock.lock(); defer { lock.unlock() }
        let first = max(senderIndices[counter, default: 0], atLeast)
        guard first <= limit, count <= limit - first else { throw KeyStoreError.senderIndicesExhausted("\(counter)") }
        senderIndices[counter] = first + count
        return first
    }
}

/// A stand-in MIKEY MTK builder for tests that only need "same inputs → same bytes":
/// serialises every input field (keys included) in a fixed order.
struct SerialisingMTKBuilder: MTKMessageBuilding {
    func buildMTKMessage(_ i: MTKMessageInput) throws -> [UInt8] {
        var out: [UInt8] = i.keyDomainID.bytes + i.mskID.bytes
        out += [UInt8(i.mtkID.rawValue >> 8), UInt8(i.mtkID.rawValue & 0xFF)]
        out += withUnsafeBytes(of: i.csbID.rawValue.bigEndian) { Array($0) }
        out += withUnsafeBytes(of: i.timestamp.bigEndian) { Array($0) }
        out += i.msk.revealedBytes() + i.rand + i.mtk.revealedBytes() + (i.salt?.revealedBytes() ?? [])
        return out
    }
}

enum Fixtures {
    /// 2026-01-01T00:00:00Z (hand-computed: 2025-01-01 = 1735689600, + 365 × 86400).
    static let epoch: Int64 = 1_767_225_600

    static func yaml(mtkPeriod: String = "60s", lead: String = "10s", repeatInterval: String = "1s", mskPeriod: String = "600s",
                     storePath: String = "/nonexistent/keys.sqlite") -> String {
        """
        keyDomain: { mcc: "001", mnc: "01" }
        bmscFQDN: bmsc.example.org
        keyStore: { path: \(storePath) }
        schedule:
          epoch: 2026-01-01T00:00:00Z
          mtk: { period: \(mtkPeriod), announceLead: \(lead), repeat: \(repeatInterval) }
          msk: { period: \(mskPeriod) }
        sessions:
          - { name: a, kind: rtp, destination: "239.0.0.1:5000", keyGroup: 1 }
          - { name: b, kind: rtp, destination: "239.0.0.1:5002", keyGroup: 2, protection: { cipher: aes-256-cm } }
        """
    }

    static func configuration(mtkPeriod: String = "60s", lead: String = "10s", repeatInterval: String = "1s", mskPeriod: String = "600s",
                              storePath: String = "/nonexistent/keys.sqlite") throws -> GatewayConfiguration {
        try GatewayConfiguration.parse(yaml: yaml(mtkPeriod: mtkPeriod, lead: lead, repeatInterval: repeatInterval, mskPeriod: mskPeriod,
                                                  storePath: storePath),
                                       fileName: "test.yaml")
    }

    static var packageRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// A built executable of this package (next to the test bundle).
    static func product(_ name: String) -> URL? {
        var dirs = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                    Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        for b in Bundle.allBundles { dirs.append(b.bundleURL.deletingLastPathComponent()) }
        dirs.append(packageRoot.appendingPathComponent(".build/debug"))
        for d in dirs {
            let u = d.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: u.path) { return u }
        }
        return nil
    }

    static func temporaryDirectory() throws -> URL {
        let u = FileManager.default.temporaryDirectory.appendingPathComponent("km-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: u, withIntermediateDirectories: true)
        return u
    }

    static let kekHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    static func kek() throws -> SecretBytes { SecretBytes(try Hex.decode(kekHex)) }
}

func at(_ offset: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(Fixtures.epoch + offset)) }

func hex(_ s: SecretBytes) -> String { s.withUnsafeBytes { Hex.encode($0) } }

func fileMode(_ path: String) -> mode_t? {
    var st = stat()
    guard stat(path, &st) == 0 else { return nil }
    return st.st_mode & 0o777
}
