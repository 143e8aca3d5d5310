import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// `mbms-gateway keyserver` as a child process on loopback, with its own folder: a config with
/// free ports, a throw-away certificate (openssl req), a key store (`keys init`) and UEs
/// (`ue add`). Driven by tools that are not our code: curl, openssl s_client and
/// Tools/keyserver_client.py.
final class KeyServerHarness {
    struct UE {
        let btid: String
        let impi: String
        let ksNAF: String
    }

    static let bmsc = "bmsc.example.org"
    static let python = "/usr/bin/env"
    let directory: URL
    let configPath: String
    let binary: URL
    let httpPort: UInt16
    let httpsPort: UInt16
    let metricsPort: UInt16
    var ues: [UE] = []
    private(set) var process: Process?

    static var repositoryRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var clientScript: String { repositoryRoot.appendingPathComponent("Tools/keyserver_client.py").path }
    static var loadScript: String { repositoryRoot.appendingPathComponent("Tools/keyserver-load.py").path }

    /// A tool this test needs: under CI a missing one fails the test, elsewhere it skips.
    static func require(_ tools: [String]) throws {
        for t in tools {
            let found = ["/usr/bin/\(t)", "/usr/local/bin/\(t)", "/bin/\(t)"].contains { FileManager.default.isExecutableFile(atPath: $0) }
                || (try? Tool.run("/bin/sh", ["-c", "command -v \(t)"]))?.status == 0
            if !found {
                if ProcessInfo.processInfo.environment["CI"] == "true" {
                    throw HarnessError("\(t) is not installed (CI must have it: see .ci/run)")
                }
                throw XCTSkip("\(t) is not installed")
            }
        }
    }

    /// Where the key server's MIKEY socket listens (the UEs' verification messages).
    let mikeyPort: UInt16

    init(test: String, extraServices: String = "", ueCount: Int = 2, tls: Bool = true, keyServerLines: String = "") throws {
        try Self.require(["python3", "openssl", "curl"])
        guard let b = Tool.product("mbms-gateway") else {
            // `make test` builds it: under CI its absence is a failure, not a skip.
            if ProcessInfo.processInfo.environment["CI"] == "true" { throw HarnessError("mbms-gateway executable not found") }
            throw XCTSkip("mbms-gateway executable not found: build it first (swift build --build-tests)")
        }
        binary = b
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-keyserver-\(test)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        configPath = directory.appendingPathComponent("gateway.yaml").path
        httpPort = try Self.freeTCPPort()
        httpsPort = try Self.freeTCPPort()
        metricsPort = try Self.freeTCPPort()
        mikeyPort = try Self.freeTCPPort()
        let tlsLines = tls ? """

              tlsListen: 127.0.0.1:\(httpsPort)
              tls: { certificate: cert.pem, key: key.pem }
            """ : ""
        let yaml = """
            keyDomain: { mcc: "001", mnc: "01" }
            bmscFQDN: \(Self.bmsc)
            keyStore: { path: keys.sqlite, kekFile: kek.hex }
            schedule:
              epoch: 2026-01-01T00:00:00Z
              mtk: { period: 10s, announceLead: 2s, repeat: 1s }
              msk: { period: 1d }
            sessions:
              - { name: video, kind: rtp, destination: "127.0.0.1:30000", output: "127.0.0.1:30002", keyGroup: 1, protection: { cipher: aes-128-cm, auth: rccm2, rocRate: 16 } }
            keyServer:
              listen: 127.0.0.1:\(httpPort)\(tlsLines)
              nonceLifetime: 5m
              scfPeers: [127.0.0.5]
              mikeyListen: 127.0.0.1:\(mikeyPort)\(keyServerLines)
            userServices:
              - { id: "urn:3gpp:mbms:svc1", sessions: [video] }
            \(extraServices)
            """
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        if tls {
            let r = try Tool.run("/usr/bin/env", ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", path("key.pem"),
                                                  "-out", path("cert.pem"), "-days", "2", "-subj", "/CN=\(Self.bmsc)",
                                                  "-addext", "subjectAltName=DNS:\(Self.bmsc),IP:127.0.0.1"])
            guard r.status == 0 else { throw HarnessError("openssl req failed: \(r.stderr)") }
        }
        let (s, _, e) = try runToEnd(["keys", "init", "--config", configPath, "--create-kek"])
        guard s == 0 else { throw HarnessError("keys init failed (\(s)): \(e)") }
        var random = SplitMix64.seeded("KeyServerHarness.\(test)")
        for i in 0..<ueCount {
            let rand = random.bytes(16)
            let ue = UE(btid: Data(rand).base64EncodedString() + "@bsf.example.org",
                        impi: "00101000000\(String(format: "%04d", i))@ims.mnc001.mcc001.3gppnetwork.org",
                        ksNAF: random.bytes(32).map { String(format: "%02x", $0) }.joined())
            let (s, _, e) = try runToEnd(["ue", "add", "--config", configPath, "--btid", ue.btid, "--impi", ue.impi, "--ks-naf", ue.ksNAF, "--lifetime", "1d"])
            guard s == 0 else { throw HarnessError("ue add failed (\(s)): \(e)") }
            ues.append(ue)
        }
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
    func read(_ name: String) -> String { (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? "" }
    var httpURL: String { "http://127.0.0.1:\(httpPort)" }
    var httpsURL: String { "https://127.0.0.1:\(httpsPort)" }

    /// Starts `keyserver` and waits (bounded) until its HTTP port accepts connections.
    func start(extraArguments: [String] = [], logLevel: String = "info") throws {
        let p = Process()
        p.executableURL = binary
        p.arguments = ["keyserver", "--config", configPath, "--duration", "300", "--log-level", logLevel,
                       "--metrics", "127.0.0.1:\(metricsPort)"] + extraArguments
        p.currentDirectoryURL = directory
        _ = FileManager.default.createFile(atPath: path("stdout.txt"), contents: nil)
        _ = FileManager.default.createFile(atPath: path("stderr.txt"), contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: path("stdout.txt")))
        p.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: path("stderr.txt")))
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            if !p.isRunning { throw HarnessError("keyserver exited (\(p.terminationStatus)):\n\(read("stderr.txt"))") }
            if read("stderr.txt").contains("key server listening") { return }
            usleep(50_000)
        }
        throw HarnessError("keyserver did not start within 20 s:\n\(read("stderr.txt"))")
    }

    /// SIGTERM, then waits (bounded) for the exit: (status, stdout, stderr).
    func stop() throws -> (Int32, String, String) {
        guard let p = process else { throw HarnessError("not started") }
        kill(p.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(20)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            throw HarnessError("keyserver did not exit within 20 s of SIGTERM:\n\(read("stderr.txt"))")
        }
        p.waitUntilExit()
        return (p.terminationStatus, read("stdout.txt"), read("stderr.txt"))
    }

    /// The child's resident set (kB) from /proc/<pid>/status.
    func residentKB() throws -> Int {
        guard let p = process else { throw HarnessError("not started") }
        let status = try String(contentsOfFile: "/proc/\(p.processIdentifier)/status", encoding: .utf8)
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { throw HarnessError("no VmRSS in /proc/\(p.processIdentifier)/status") }
        return kb
    }

    /// Tools/keyserver_client.py as UE `ue` (nil: no credentials); returns its JSON answer.
    func client(_ type: String, ue: UE?, url: String? = nil, _ arguments: [String] = []) throws -> [String: Any] {
        var args = [Self.clientScript, "--url", url ?? httpURL, "--bmsc", Self.bmsc]
        if let ue { args += ["--btid", ue.btid, "--ks-naf", ue.ksNAF] }
        if (url ?? httpURL).hasPrefix("https") { args += ["--cafile", path("cert.pem")] }
        args += arguments + [type]
        let r = try Tool.run("/usr/bin/env", ["python3"] + args)
        guard let data = r.stdout.data(using: .utf8),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { throw HarnessError("keyserver_client.py \(arguments) \(type) (exit \(r.status)): \(r.stdout)\n\(r.stderr)") }
        return json
    }

    /// curl with `arguments`; returns (HTTP status, response headers and body as text).
    func curl(_ arguments: [String]) throws -> (Int, String) {
        let r = try Tool.run("/usr/bin/env", ["curl", "-s", "-i", "--max-time", "20", "-w", "\n%{http_code}"] + arguments)
        let lines = r.stdout.split(separator: "\n", omittingEmptySubsequences: false)
        let code = Int(lines.last.map(String.init)?.trimmingCharacters(in: .whitespaces) ?? "") ?? 0
        return (code, r.stdout)
    }

    func runToEnd(_ args: [String]) throws -> (Int32, String, String) {
        let r = try Tool.run(binary.path, args)
        return (r.status, r.stdout, r.stderr)
    }

    func shutdown() {
        if let p = process, p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
        }
        try? FileManager.default.removeItem(at: directory)
    }

    static func freeTCPPort() throws -> UInt16 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw HarnessError("socket: \(errno)") }
        defer { close(s) }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let ok = withUnsafeMutablePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) == 0 && getsockname(s, $0, &len) == 0 }
        }
        guard ok else { throw HarnessError("bind: \(errno)") }
        return UInt16(bigEndian: a.sin_port)
    }

    /// A listening socket on 127.0.0.1:port (to make the key server's bind fail); close it after.
    static func occupy(_ port: UInt16) throws -> Int32 {
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw HarnessError("socket: \(errno)") }
        var a = sockaddr_in()
        a.sin_family = sa_family_t(AF_INET)
        a.sin_port = port.bigEndian
        a.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        let ok = withUnsafePointer(to: &a) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
        } && listen(s, 1) == 0
        guard ok else { close(s); throw HarnessError("cannot occupy port \(port): \(errno)") }
        return s
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// JSON helpers for the client's answers.
extension Dictionary where Key == String, Value == Any {
    func int(_ key: String) -> Int? { self[key] as? Int }
    func dict(_ key: String) -> [String: Any]? { self[key] as? [String: Any] }
    func string(_ key: String) -> String? { self[key] as? String }
    /// The first value of a response header (the client lower-cases names).
    func header(_ name: String) -> String? { (dict("headers")?[name.lowercased()] as? [String])?.first }
}
