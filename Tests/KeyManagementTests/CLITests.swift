import CryptoCore
import Foundation
import MIKEY
import TestSupport
import XCTest
@testable import KeyManagement

/// `mbms-gateway keys …` as a user runs it (the built binary, in a temporary directory).
final class CLITests: XCTestCase {
    var dir: URL!
    var binary: URL!
    static let start = "2026-03-01T12:00:30Z"

    override func setUpWithError() throws {
        binary = try XCTUnwrap(Fixtures.product("mbms-gateway"), "build the package first: mbms-gateway not found")
        dir = try Fixtures.temporaryDirectory()
        let example = try String(contentsOf: Fixtures.packageRoot.appendingPathComponent("Examples/gateway.yaml"), encoding: .utf8)
        try example.write(to: dir.appendingPathComponent("gateway.yaml"), atomically: true, encoding: .utf8)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    struct Run { let status: Int32; let out: String; let err: String }

    @discardableResult
    func keys(_ args: [String], env: [String: String] = [:]) throws -> Run {
        let p = Process()
        p.executableURL = binary
        p.arguments = ["keys"] + args
        p.currentDirectoryURL = dir
        var e = ProcessInfo.processInfo.environment
        e.removeValue(forKey: "MBMS_KEK"); e.removeValue(forKey: "MBMS_KEK_FILE")
        for (k, v) in env { e[k] = v }
        p.environment = e
        let o = Pipe(), r = Pipe()
        p.standardOutput = o
        p.standardError = r
        try p.run()
        let out = o.fileHandleForReading.readDataToEndOfFile(), err = r.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Run(status: p.terminationStatus, out: String(decoding: out, as: UTF8.self), err: String(decoding: err, as: UTF8.self))
    }

    func initStore() throws {
        let r = try keys(["init", "--config", "gateway.yaml", "--create-kek", "--at", Self.start])
        XCTAssertEqual(r.status, 0, r.err)
    }

    func testInitCreatesFilesWith0600AndIsIdempotent() throws {
        let noKEK = try keys(["init", "--config", "gateway.yaml", "--at", Self.start])
        XCTAssertNotEqual(noKEK.status, 0)
        XCTAssertTrue(noKEK.err.contains("MBMS_KEK"), noKEK.err)
        try initStore()
        XCTAssertEqual(fileMode(dir.appendingPathComponent("kek.hex").path), 0o600)
        XCTAssertEqual(fileMode(dir.appendingPathComponent("keys.sqlite").path), 0o600)
        let first = try keys(["show", "--config", "gateway.yaml", "--at", Self.start]).out
        let again = try keys(["init", "--config", "gateway.yaml", "--at", Self.start])
        XCTAssertEqual(again.status, 0, again.err)
        XCTAssertTrue(again.out.contains("revision 1"), again.out)   // nothing new committed
        XCTAssertEqual(try keys(["show", "--config", "gateway.yaml", "--at", Self.start]).out, first)
    }

    func testShowNeverPrintsKeyBytesWithoutReveal() throws {
        try initStore()
        var secrets: [String] = []
        for g in ["1", "2", "3"] {
            let r = try keys(["export-ue", "--config", "gateway.yaml", "--key-group", g, "--at", Self.start])
            XCTAssertEqual(r.status, 0, r.err)
            let e = try JSONDecoder().decode(UEExport.self, from: Data(r.out.utf8))
            XCTAssertEqual(e.msks.count, 2)
            XCTAssertEqual(e.msks.map(\.seqU), [1440, 1440])   // 1 day / 60 s
            secrets += e.msks.map(\.msk) + [e.currentMTK?.mtk, e.currentMTK?.salt, e.nextMTK?.mtk, e.nextMTK?.salt].compactMap { $0 }
        }
        XCTAssertEqual(secrets.count, 18)
        let show = try keys(["show", "--config", "gateway.yaml", "--at", Self.start])
        XCTAssertEqual(show.status, 0, show.err)
        XCTAssertTrue(show.out.contains("MSK 00010001"), show.out)
        XCTAssertTrue(show.out.contains("current MTK ID 1"), show.out)
        for s in secrets {
            XCTAssertFalse(show.out.contains(s) || show.err.contains(s), "secret printed without --reveal")
        }
        let revealed = try keys(["show", "--config", "gateway.yaml", "--reveal", "--at", Self.start]).out
        for s in secrets { XCTAssertTrue(revealed.contains(s), "--reveal should print \(s.prefix(4))…") }
    }

    func testRotateForcesNextMSK() throws {
        try initStore()
        let before = try JSONDecoder().decode(UEExport.self, from: Data(try keys(["export-ue", "--config", "gateway.yaml", "--key-group", "1", "--at", Self.start]).out.utf8))
        let r = try keys(["rotate", "--config", "gateway.yaml", "--key-group", "1", "--at", Self.start])
        XCTAssertEqual(r.status, 0, r.err)
        // 12:00:30 + lead 10 s → switch at 12:01:00.
        let after = try JSONDecoder().decode(UEExport.self, from: Data(try keys(["export-ue", "--config", "gateway.yaml", "--key-group", "1", "--at", "2026-03-01T12:01:00Z"]).out.utf8))
        XCTAssertEqual(after.msks.first?.mskID, before.msks.last?.mskID)
        XCTAssertEqual(after.msks.first?.msk, before.msks.last?.msk)
        XCTAssertEqual(after.currentMTK?.mtkID, 1)
        XCTAssertEqual(after.msks.last?.keyNumber, 3)
        let zero = try keys(["rotate", "--config", "gateway.yaml", "--key-group", "0", "--at", Self.start])
        XCTAssertNotEqual(zero.status, 0)
        XCTAssertTrue(zero.err.contains("key group 0"), zero.err)
    }

    /// A MUK is 32 octets (Ks_(ext/int)_NAF): `keys deliver` refuses a 1-octet or a 1000-octet
    /// one, and non-hex, with the rule named, and writes nothing (issue 19 finding 8).
    func testDeliverRefusesAMUKThatIsNot32Octets() throws {
        try initStore()
        for (muk, says) in [("00", "1 octets"), (String(repeating: "ab", count: 1000), "1000 octets"), ("zz", "not hex")] {
            let out = dir.appendingPathComponent("bad-\(muk.count).bin")
            let r = try keys(["deliver", "--config", "gateway.yaml", "--key-group", "1", "--muk", muk, "--ue-id", "ue@bsf",
                              "--output", out.lastPathComponent, "--at", Self.start])
            XCTAssertNotEqual(r.status, 0, "MUK \(muk.prefix(8))… accepted")
            XCTAssertTrue(r.err.contains(says) && r.err.contains("64 hex digits"), r.err)
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path))
        }
    }

    /// `keys deliver` output: accepted by the MIKEY UE processor with the right MUK, rejected
    /// with a wrong one; the V bit follows --verify; tshark dissects it cleanly.
    func testDeliverOutputIsAcceptedByUEAndDissectedByTshark() throws {
        try initStore()
        let muk = String(repeating: "5a", count: 32)
        let bTID = "btid-0001@bsf.example.org"
        var files: [URL] = []
        for (g, verify) in [("1", true), ("3", false)] {
            let out = dir.appendingPathComponent("msk-\(g).bin")
            var args = ["deliver", "--config", "gateway.yaml", "--key-group", g, "--muk", muk, "--ue-id", bTID,
                        "--output", out.lastPathComponent, "--at", Self.start]
            if verify { args.append("--verify") }
            let r = try keys(args)
            XCTAssertEqual(r.status, 0, r.err)
            XCTAssertFalse(r.out.contains(muk) || r.err.contains(muk))
            XCTAssertEqual(fileMode(out.path), 0o600)
            files.append(out)
        }
        let c = try GatewayConfiguration.load(path: dir.appendingPathComponent("gateway.yaml").path)
        let export = try JSONDecoder().decode(UEExport.self, from: Data(try keys(["export-ue", "--config", "gateway.yaml", "--key-group", "1", "--at", Self.start]).out.utf8))
        let streaming = [UInt8](try Data(contentsOf: files[0])), download = [UInt8](try Data(contentsOf: files[1]))

        var wrong = UEKeyProcessor(muk: SecretBytes([UInt8](repeating: 0x5b, count: 32)), nafID: c.bmscFQDN, bTID: bTID)
        guard case .failure(.macMismatch) = wrong.process(streaming) else { return XCTFail("accepted with a wrong MUK") }
        var ue = UEKeyProcessor(muk: SecretBytes(try Hex.decode(muk)), nafID: c.bmscFQDN, bTID: bTID)
        guard case .success(.msk(let d, let v?)) = ue.process(streaming) else { return XCTFail("rejected with the right MUK (or no V)") }
        XCTAssertEqual(Hex.encode(d.key.revealedBytes()), export.msks.first?.msk)
        XCTAssertEqual(d.seqU, 1440)
        XCTAssertEqual(d.srtpPolicy?.rocTransmissionRate, 64)
        guard case .success(.msk(_, nil)) = ue.process(download) else { return XCTFail("download MSK message rejected") }

        // tshark: both messages (and the verification reply) dissect without malformed/expert entries.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") else { throw XCTSkip("tshark not installed") }
        let pcap = dir.appendingPathComponent("deliver.pcap")
        try Data(Self.pcap([streaming, download, v])).write(to: pcap)
        let fields = try tshark(["-r", pcap.path, "-T", "fields", "-E", "separator=|", "-e", "frame.number", "-e", "_ws.malformed",
                                 "-e", "_ws.expert", "-e", "mikey.type", "-e", "mikey.v.set", "-e", "mikey.cs_count",
                                 "-e", "mikey.ext.data", "-e", "mikey.id.data", "-e", "mikey.t.ts_type"])
        let rows = fields.split(separator: "\n").map { $0.split(separator: "|", omittingEmptySubsequences: false).map(String.init) }
        XCTAssertEqual(rows.count, 3, fields)
        guard rows.count == 3, rows.allSatisfy({ $0.count == 9 }) else { return }
        for r in rows { XCTAssertEqual(r[1], "", "malformed: \(r)"); XCTAssertEqual(r[2], "", "expert: \(r)") }
        XCTAssertEqual(rows[0][3], "0"); XCTAssertEqual(rows[0][4], "1"); XCTAssertEqual(rows[0][5], "1")   // PSK, V, #CS 1
        XCTAssertEqual(rows[1][4], "0"); XCTAssertEqual(rows[1][5], "0")                                    // download: #CS 0
        XCTAssertEqual(rows[2][3], "1")                                                                     // verification
        // EXT Key ID data: Key Domain 00f110, MSK ID 00010001 (mikey.md 4.2 layout).
        XCTAssertEqual(rows[0][6].replacingOccurrences(of: ":", with: ""), "0000030" + "0f110" + "01000400010001")
        XCTAssertEqual(rows[0][8], "2")   // TS type COUNTER
        XCTAssertTrue(rows[0][7].contains(Hex.encode(Array(c.bmscFQDN.utf8))) || rows[0][7].contains(c.bmscFQDN), rows[0][7])
        let expert = try tshark(["-r", pcap.path, "-q", "-z", "expert"])
        for word in ["Errors", "Warns", "Malformed"] { XCTAssertFalse(expert.contains(word), expert) }
    }

    func testBadConfigurationFailsWithOneLine() throws {
        let path = dir.appendingPathComponent("gateway.yaml")
        let text = try String(contentsOf: path, encoding: .utf8).replacingOccurrences(of: "keyGroup: 2", with: "keyGroup: 0")
        try text.write(to: path, atomically: true, encoding: .utf8)
        let r = try keys(["init", "--config", "gateway.yaml", "--create-kek", "--at", Self.start])
        XCTAssertNotEqual(r.status, 0)
        let lines = r.err.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, r.err)
        XCTAssertTrue(r.err.contains("gateway.yaml:"), r.err)
        XCTAssertTrue(r.err.contains("sessions[1].keyGroup"), r.err)
        XCTAssertTrue(r.err.contains("fix:"), r.err)
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.appendingPathComponent("keys.sqlite").path), "failed before touching the store")
    }

    func tshark(_ args: [String]) throws -> String { try Tool.run(Tool.tshark, args).stdout }

    /// Classic pcap, linktype 101 (raw IP), IPv4/UDP 2269 → 2269.
    static func pcap(_ messages: [[UInt8]]) -> [UInt8] {
        var f: [UInt8] = []
        func le32(_ v: UInt32) { for i in 0..<4 { f.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
        func le16(_ v: UInt16) { f.append(UInt8(v & 0xFF)); f.append(UInt8(v >> 8)) }
        le32(0xA1B2_C3D4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(101)
        for (n, m) in messages.enumerated() {
            let ulen = UInt16(8 + m.count)
            let udp: [UInt8] = [0x08, 0xDD, 0x08, 0xDD, UInt8(ulen >> 8), UInt8(ulen & 0xFF), 0, 0] + m
            let total = UInt16(20 + udp.count)
            var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, UInt8(n & 0xFF), 0x40, 0, 64, 17, 0, 0,
                               10, 0, 0, 1, 10, 0, 0, 2]
            var sum: UInt32 = 0
            for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            ip[10] = UInt8(~UInt16(sum) >> 8); ip[11] = UInt8(~UInt16(sum) & 0xFF)
            le32(UInt32(n)); le32(0); le32(UInt32(ip.count + udp.count)); le32(UInt32(ip.count + udp.count))
            f += ip + udp
        }
        return f
    }
}
