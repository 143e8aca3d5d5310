import CryptoCore
import Foundation
import MIKEY
import XCTest
@testable import KeyManagement

/// Issue 16 (5): secret files are created 0600 and renamed into place, symbolic links are
/// refused (outputs, KEK, store), and `MBMS_KEK` leaves the environment of a running gateway.
final class SecretHygieneTests: XCTestCase {
    var dir: URL!
    override func setUpWithError() throws { dir = try Fixtures.temporaryDirectory() }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    func writePlain(_ name: String, _ text: String, mode: mode_t) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path(name)))
        chmod(path(name), mode)
    }

    // MARK: SecretFile

    func testSecretFileReplacesA0644FileWith0600AndRefusesLinks() throws {
        let old = umask(0o022)
        defer { umask(old) }
        try writePlain("out.bin", "public", mode: 0o644)
        try SecretFile.write(Array("secret".utf8), to: path("out.bin"))
        XCTAssertEqual(fileMode(path("out.bin")), 0o600)
        XCTAssertEqual(FileManager.default.contents(atPath: path("out.bin")), Data("secret".utf8))
        // A new file, too.
        try SecretFile.write([1, 2, 3], to: path("new.bin"))
        XCTAssertEqual(fileMode(path("new.bin")), 0o600)
        // A symbolic link (to an existing file, or dangling) is refused and its target untouched.
        try writePlain("target", "untouched", mode: 0o644)
        XCTAssertEqual(symlink(path("target"), path("link")), 0)
        XCTAssertThrowsError(try SecretFile.write([0], to: path("link"))) { e in
            XCTAssertTrue("\(e)".contains("\(self.path("link")): is a symbolic link"), "\(e)")
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path("target")), Data("untouched".utf8))
        XCTAssertEqual(fileMode(path("target")), 0o644)
        XCTAssertEqual(symlink(path("nowhere"), path("dangling")), 0)
        XCTAssertThrowsError(try SecretFile.write([0], to: path("dangling")))
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("nowhere")))
        // No temporary files are left behind.
        let left = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".tmp") }
        XCTAssertEqual(left, [])
    }

    // MARK: KEK file

    func testKEKFileMustBeARegularFileOfOursNotALink() throws {
        try writePlain("kek.hex", Fixtures.kekHex + "\n", mode: 0o600)
        XCTAssertEqual(try KeyEncryptionKey.loadFile(path("kek.hex")).count, 32)
        XCTAssertEqual(symlink(path("kek.hex"), path("kek-link")), 0)
        XCTAssertThrowsError(try KeyEncryptionKey.loadFile(path("kek-link"))) { e in
            XCTAssertEqual(e as? KeyEncryptionKeyError, .symbolicLink(path: self.path("kek-link")))
            XCTAssertTrue("\(e)".contains("fix: point MBMS_KEK_FILE or keyStore.kekFile at the file itself"), "\(e)")
        }
        try FileManager.default.createDirectory(atPath: path("kek-dir"), withIntermediateDirectories: false)
        chmod(path("kek-dir"), 0o700)
        XCTAssertThrowsError(try KeyEncryptionKey.loadFile(path("kek-dir"))) {
            XCTAssertEqual($0 as? KeyEncryptionKeyError, .notRegularFile(path: self.path("kek-dir")))
        }
        try writePlain("group.hex", Fixtures.kekHex, mode: 0o640)
        XCTAssertThrowsError(try KeyEncryptionKey.loadFile(path("group.hex"))) {
            XCTAssertEqual($0 as? KeyEncryptionKeyError, .tooOpen(path: self.path("group.hex"), mode: "640"))
        }
        if geteuid() == 0 {
            // Root can give the file away: another user's KEK file is refused.
            try writePlain("theirs.hex", Fixtures.kekHex, mode: 0o600)
            XCTAssertEqual(chown(path("theirs.hex"), 1, 1), 0)
            XCTAssertThrowsError(try KeyEncryptionKey.loadFile(path("theirs.hex"))) {
                XCTAssertEqual($0 as? KeyEncryptionKeyError, .wrongOwner(path: self.path("theirs.hex"), owner: 1))
            }
        }
        // Creating never follows a (dangling) link either.
        XCTAssertEqual(symlink(path("elsewhere.hex"), path("new-link.hex")), 0)
        XCTAssertThrowsError(try KeyEncryptionKey.createFile(at: path("new-link.hex"))) {
            XCTAssertEqual($0 as? KeyEncryptionKeyError, .symbolicLink(path: self.path("new-link.hex")))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("elsewhere.hex")))
    }

    func testSymlinkedStorePathIsRefused() throws {
        _ = try SQLiteKeyStore.openOrCreate(path: path("real.sqlite"), kek: try Fixtures.kek())
        XCTAssertEqual(symlink(path("real.sqlite"), path("link.sqlite")), 0)
        XCTAssertEqual(symlink(path("absent.sqlite"), path("dangling.sqlite")), 0)
        for name in ["link.sqlite", "dangling.sqlite"] {
            for open in [SQLiteKeyStore.open, SQLiteKeyStore.openOrCreate] {
                XCTAssertThrowsError(try open(path(name), try Fixtures.kek())) { e in
                    XCTAssertTrue("\(e)".contains("\(self.path(name)): the key store path is a symbolic link"), "\(e)")
                }
            }
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: path("absent.sqlite")))
    }

    // MARK: Environment

    func testScrubRemovesTheVariable() throws {
        setenv("MBMS_TEST_SCRUB", "deadbeef", 1)
        ProcessEnvironment.scrub("MBMS_TEST_SCRUB")
        XCTAssertNil(getenv("MBMS_TEST_SCRUB"))
        XCTAssertNil(ProcessInfo.processInfo.environment["MBMS_TEST_SCRUB"])
    }
}

/// The same through the built binary: `keys deliver/export-ue --output`, and `run`'s environment.
final class SecretHygieneCLITests: XCTestCase {
    var dir: URL!
    var binary: URL!
    static let start = "2026-03-01T12:00:30Z"
    static let muk = String(repeating: "ab", count: 32)

    override func setUpWithError() throws {
        binary = try XCTUnwrap(Fixtures.product("mbms-gateway"), "build the package first: mbms-gateway not found")
        dir = try Fixtures.temporaryDirectory()
        let example = try String(contentsOf: Fixtures.packageRoot.appendingPathComponent("Examples/gateway.yaml"), encoding: .utf8)
        try example.write(to: dir.appendingPathComponent("gateway.yaml"), atomically: true, encoding: .utf8)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func path(_ name: String) -> String { dir.appendingPathComponent(name).path }

    struct Run { let status: Int32; let out: String; let err: String }

    func launch(_ args: [String], env: [String: String] = [:]) throws -> (Process, Pipe, Pipe) {
        let p = Process()
        p.executableURL = binary
        p.arguments = args
        p.currentDirectoryURL = dir
        var e = ProcessInfo.processInfo.environment
        e.removeValue(forKey: "MBMS_KEK"); e.removeValue(forKey: "MBMS_KEK_FILE")
        for (k, v) in env { e[k] = v }
        p.environment = e
        let o = Pipe(), r = Pipe()
        p.standardOutput = o
        p.standardError = r
        try p.run()
        return (p, o, r)
    }

    @discardableResult
    func mbms(_ args: [String], env: [String: String] = [:]) throws -> Run {
        let (p, o, r) = try launch(args, env: env)
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = r.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: out, as: UTF8.self), err: String(decoding: err, as: UTF8.self))
    }

    func initStore() throws {
        let r = try mbms(["keys", "init", "--config", "gateway.yaml", "--create-kek", "--at", Self.start])
        XCTAssertEqual(r.status, 0, r.err)
        try Data(Self.muk.utf8).write(to: URL(fileURLWithPath: path("muk.hex")))
        chmod(path("muk.hex"), 0o600)
    }

    func testOutputsOverA0644FileAre0600AndLinksAreRefused() throws {
        try initStore()
        let old = umask(0o022)
        defer { umask(old) }
        for name in ["msk.mikey", "ue.json"] {
            try Data("old".utf8).write(to: URL(fileURLWithPath: path(name)))
            chmod(path(name), 0o644)
        }
        let deliver = ["keys", "deliver", "--config", "gateway.yaml", "--key-group", "1", "--muk-file", "muk.hex",
                       "--ue-id", "ue@example.org", "--at", Self.start, "--output"]
        var r = try mbms(deliver + ["msk.mikey"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(fileMode(path("msk.mikey")), 0o600)
        XCTAssertGreaterThan(FileManager.default.contents(atPath: path("msk.mikey"))?.count ?? 0, 10)

        let export = ["keys", "export-ue", "--config", "gateway.yaml", "--key-group", "1", "--at", Self.start]
        r = try mbms(export + ["--output", "ue.json"])
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertEqual(r.out, "")
        XCTAssertEqual(fileMode(path("ue.json")), 0o600)
        let e = try JSONDecoder().decode(UEExport.self, from: try XCTUnwrap(FileManager.default.contents(atPath: path("ue.json"))))
        XCTAssertEqual(e.msks.count, 2)
        // To a pipe: the JSON on stdout and a warning on stderr.
        r = try mbms(export)
        XCTAssertEqual(r.status, 0, r.err)
        XCTAssertTrue(r.err.contains("warning: export-ue writes MSKs and MTKs in clear"), r.err)
        XCTAssertNoThrow(try JSONDecoder().decode(UEExport.self, from: Data(r.out.utf8)))

        try Data("victim".utf8).write(to: URL(fileURLWithPath: path("victim")))
        XCTAssertEqual(symlink(path("victim"), path("out-link")), 0)
        for args in [deliver + ["out-link"], export + ["--output", "out-link"]] {
            r = try mbms(args)
            XCTAssertNotEqual(r.status, 0)
            XCTAssertTrue(r.err.contains("out-link: is a symbolic link"), r.err)
        }
        XCTAssertEqual(FileManager.default.contents(atPath: path("victim")), Data("victim".utf8))
    }

    func testSymlinkedKEKFileIsRefusedByEveryCommand() throws {
        try initStore()
        XCTAssertEqual(symlink(path("kek.hex"), path("kek-link.hex")), 0)
        let r = try mbms(["keys", "show", "--config", "gateway.yaml", "--at", Self.start], env: ["MBMS_KEK_FILE": path("kek-link.hex")])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.err.contains("kek-link.hex: the key-encryption key file is a symbolic link"), r.err)
    }

    func testEditedRowFailsEveryCommand() throws {
        try initStore()
        let sqlite = "/usr/bin/sqlite3"
        guard FileManager.default.isExecutableFile(atPath: sqlite) else {
            // .ci/run installs it: under CI a missing sqlite3 is a failure, not a skip.
            if ProcessInfo.processInfo.environment["CI"] == "true" { return XCTFail("sqlite3 is not installed (.ci/run installs it)") }
            throw XCTSkip("sqlite3 not installed")
        }
        let edit = Process()
        edit.executableURL = URL(fileURLWithPath: sqlite)
        edit.arguments = [path("keys.sqlite"), "UPDATE msk SET validUntil = validUntil + 60 WHERE keyGroup = 2 AND keyNumber = 1"]
        try edit.run()
        edit.waitUntilExit()
        XCTAssertEqual(edit.terminationStatus, 0)
        for args in [["show"], ["export-ue", "--key-group", "1"], ["rotate", "--key-group", "1"], ["init"]] {
            let r = try mbms(["keys"] + args + ["--config", "gateway.yaml", "--at", Self.start])
            XCTAssertNotEqual(r.status, 0, "\(args)")
            XCTAssertTrue(r.err.contains("key store corrupt: ./keys.sqlite: MSK 00020001 row fails authentication"), "\(args): \(r.err)")
        }
    }

    /// `run` with MBMS_KEK: once the store is open the variable is gone from /proc/<pid>/environ.
    func testRunRemovesMBMSKEKFromItsEnvironment() throws {
        #if os(Linux)
        let kek = Fixtures.kekHex
        let outIP = "127.77.\(Int.random(in: 1...254)).\(Int.random(in: 1...254))"
        let port = try Self.freeUDPPair()
        print("testRunRemovesMBMSKEKFromItsEnvironment: input 127.0.0.1:\(port), output \(outIP)")
        let yaml = """
            keyDomain: { mcc: "001", mnc: "01" }
            bmscFQDN: bmsc.example.org
            keyStore: { path: keys.sqlite }
            schedule:
              epoch: 2026-01-01T00:00:00Z
              mtk: { period: 4s, announceLead: 1s, repeat: 1s }
              msk: { period: 1d }
            sessions:
              - { name: live, kind: rtp, destination: "127.0.0.1:\(port)", output: "\(outIP):\(port)", keyGroup: 1 }
            """
        try yaml.write(toFile: path("live.yaml"), atomically: true, encoding: .utf8)
        let initRun = try mbms(["keys", "init", "--config", "live.yaml"], env: ["MBMS_KEK": kek])
        XCTAssertEqual(initRun.status, 0, initRun.err)

        // Non-root readers cannot read the environ of a non-dumpable process at all.
        var args = ["run", "--config", "live.yaml", "--duration", "4"]
        if geteuid() != 0 { args.append("--allow-core-dumps") }
        let (p, o, r) = try launch(args, env: ["MBMS_KEK": kek, "MBMS_TEST_MARKER": "present"])
        let environ = "/proc/\(p.processIdentifier)/environ"
        var sawMarker = false, kekGone = false
        let deadline = Date().addingTimeInterval(3.5)
        while p.isRunning && Date() < deadline && !kekGone {
            if let d = FileManager.default.contents(atPath: environ), !d.isEmpty {
                let text = String(decoding: d, as: UTF8.self)
                if text.contains("MBMS_TEST_MARKER=present") { sawMarker = true }
                if sawMarker && !text.contains("MBMS_KEK") && !text.contains(kek) && p.isRunning { kekGone = true }
            }
            usleep(50_000)
        }
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = r.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        XCTAssertTrue(sawMarker, "could not read \(environ)")
        XCTAssertTrue(kekGone, "MBMS_KEK still in \(environ) of the running gateway; stderr: \(String(decoding: err, as: UTF8.self))")
        XCTAssertEqual(p.terminationStatus, 0, String(decoding: err, as: UTF8.self) + String(decoding: out, as: UTF8.self))
        #else
        throw XCTSkip("/proc/<pid>/environ is Linux only")
        #endif
    }

    /// A UDP port p on 127.0.0.1 with p + 1 free too (RTP and RTCP).
    static func freeUDPPair() throws -> UInt16 {
        for _ in 0..<50 {
            let p = UInt16.random(in: 20000...60000) & ~1
            if bindable(p) && bindable(p + 1) { return p }
        }
        // Not a missing tool: the test cannot run, so it fails.
        struct NoPorts: Error, CustomStringConvertible { var description: String { "no free UDP port pair on 127.0.0.1 in 50 tries" } }
        throw NoPorts()
    }

    static func bindable(_ port: UInt16) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        return withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } } == 0
    }
}
