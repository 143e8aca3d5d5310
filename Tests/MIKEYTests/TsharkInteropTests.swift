import CryptoCore
import Foundation
import TestSupport
import XCTest
@testable import MIKEY

/// tshark (Wireshark 4.0 MIKEY dissector, an independent parser) dissects our messages with no
/// malformed-packet or expert entries, and its decoded fields equal what we meant to write
/// (mikey.md section 10 field names).
final class TsharkInteropTests: XCTestCase {
    static let tsharkPath = "/usr/bin/tshark"

    func tshark(_ arguments: [String]) throws -> String {
        guard FileManager.default.isExecutableFile(atPath: Self.tsharkPath) else { throw XCTSkip("tshark not installed") }
        let r = try Tool.run(Self.tsharkPath, arguments)
        XCTAssertEqual(r.status, 0, "tshark \(arguments)")
        return r.stdout
    }

    /// Classic pcap, linktype 101 (raw IPv4), one IPv4/UDP datagram to port 2269 per message.
    func writePcap(_ messages: [[UInt8]]) throws -> URL {
        var file: [UInt8] = []
        func le32(_ v: UInt32) { for i in 0..<4 { file.append(UInt8((v >> (8 * UInt32(i))) & 0xFF)) } }
        func le16(_ v: UInt16) { file.append(UInt8(v & 0xFF)); file.append(UInt8(v >> 8)) }
        le32(0xA1B2_C3D4); le16(2); le16(4); le32(0); le32(0); le32(65535); le32(101)
        for (n, m) in messages.enumerated() {
            var udp: [UInt8] = [0x08, 0xDD, 0x08, 0xDD]   // 2269 -> 2269
            let ulen = UInt16(8 + m.count)
            udp += [UInt8(ulen >> 8), UInt8(ulen & 0xFF), 0, 0] + m   // UDP checksum 0: not computed (RFC 768)
            let total = UInt16(20 + udp.count)
            var ip: [UInt8] = [0x45, 0, UInt8(total >> 8), UInt8(total & 0xFF), 0, UInt8(n & 0xFF), 0x40, 0, 64, 17, 0, 0,
                               10, 0, 0, 1, 232, 1, 2, 3]
            var sum: UInt32 = 0
            for i in stride(from: 0, to: 20, by: 2) { sum += UInt32(ip[i]) << 8 | UInt32(ip[i + 1]) }
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            let checksum = ~UInt16(sum)
            ip[10] = UInt8(checksum >> 8); ip[11] = UInt8(checksum & 0xFF)
            let packet = ip + udp
            le32(UInt32(n)); le32(0); le32(UInt32(packet.count)); le32(UInt32(packet.count))
            file += packet
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("mikey-\(UUID().uuidString).pcap")
        try Data(file).write(to: url)
        return url
    }

    /// One row per frame, columns split on "|".
    func fields(_ url: URL, _ names: [String]) throws -> [[String: String]] {
        var args = ["-r", url.path, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
        for n in names { args += ["-e", n] }
        return try tshark(args).split(separator: "\n", omittingEmptySubsequences: true).map { line in
            let cols = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            var row: [String: String] = [:]
            for (i, n) in names.enumerated() { row[n] = i < cols.count ? cols[i] : "" }
            return row
        }
    }

    func assertClean(_ url: URL, frames: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let rows = try fields(url, ["frame.number", "_ws.malformed", "_ws.expert", "mikey.version"])
        XCTAssertEqual(rows.count, frames, file: file, line: line)
        for r in rows {
            XCTAssertEqual(r["_ws.malformed"], "", "frame \(r["frame.number"] ?? "")", file: file, line: line)
            XCTAssertEqual(r["_ws.expert"], "", "frame \(r["frame.number"] ?? "")", file: file, line: line)
            XCTAssertEqual(r["mikey.version"], "1", file: file, line: line)
        }
        let expert = try tshark(["-r", url.path, "-q", "-z", "expert"])
        for word in ["Errors", "Warns", "Malformed"] {
            XCTAssertFalse(expert.contains(word), "tshark expert info: \(expert)", file: file, line: line)
        }
    }

    /// Replaces the KEMAC by its NULL-encryption twin so that tshark decodes the Key data
    /// (mikey.md 10: "build the same message once with Encr alg NULL"). Test-only bytes.
    func nullEncrypted(_ bytes: [UInt8], psk: SecretBytes, rand: [UInt8]) throws -> [UInt8] {
        var m = try MIKEYDecoder.decode(bytes)
        let kemac = try XCTUnwrap(m.kemac)
        let keys = try MIKEYKeyDerivation.pskKeys(psk: psk, csbID: m.header.csbID, rand: rand)
        let plain = try KEMACCrypto.crypt(kemac.encryptedData, keys: keys, csbID: m.header.csbID, timestamp: try XCTUnwrap(m.timestamp))
        m.payloads[m.payloads.count - 1] = .kemac(KEMACPayload(encryptionAlgorithm: .null, encryptedData: plain,
                                                               macAlgorithm: .hmacSHA1_160, mac: kemac.mac))
        return m.encode()
    }

    func testControlTruncatedMessageIsFlaggedMalformed() throws {
        // Proves the harness can fail: tshark must flag a cut MTK message.
        let url = try writePcap([Array(try Fixtures.mtkBuilder().build().prefix(60))])
        defer { try? FileManager.default.removeItem(at: url) }
        let rows = try fields(url, ["_ws.malformed"])
        XCTAssertEqual(rows.count, 1)
        XCTAssertNotEqual(rows.first?["_ws.malformed"], "")
    }

    func testTsharkDissectsMSKMTKAndVerificationMessages() throws {
        let mskStreaming = try Fixtures.mskBuilder(verification: true).build()
        let mskDownload = try Fixtures.mskBuilder(verification: false, ts: 43, service: .download, csb: CSBID(0x0BAD_F00D)).build()
        let pull = try Fixtures.mskBuilder(content: .solicitedPull, ts: 44, mskID: MSKID(keyGroup: 1, keyNumber: 0)).build()
        let mtkStreaming = try Fixtures.mtkBuilder().build()
        let mtkDownload = try Fixtures.mtkBuilder(mtkID: 6, ts: 8, content: .download(mtk: Fixtures.mtk), csb: CSBID(0xFFFF_FFFF)).build()
        var ue = UEKeyProcessor(muk: Fixtures.muk, nafID: Fixtures.nafID, bTID: Fixtures.bTID)
        guard case .success(.msk(_, let v?)) = ue.process(mskStreaming) else { return XCTFail("no verification message") }
        let messages = [mskStreaming, mskDownload, pull, mtkStreaming, mtkDownload, v]
        let url = try writePcap(messages)
        defer { try? FileManager.default.removeItem(at: url) }
        try assertClean(url, frames: messages.count)

        let names = ["mikey.type", "mikey.v.set", "mikey.prf_func", "mikey.csb_id", "mikey.cs_count", "mikey.cs_id_map_type",
                     "mikey.srtp_id.policy_no", "mikey.srtp_id.ssrc", "mikey.srtp_id.roc", "mikey.next_payload",
                     "mikey.ext.type", "mikey.ext.data", "mikey.t.ts_type", "mikey.rand.data", "mikey.id.type", "mikey.id.data",
                     "mikey.sp.no", "mikey.sp.proto_type", "mikey.sp.param.type", "mikey.sp.patam.value",
                     "mikey.kemac.encr_alg", "mikey.kemac.key_data_len", "mikey.kemac.mac_alg", "mikey.kemac.mac",
                     "mikey.v.auth_alg", "mikey.v.ver_data"]
        let rows = try fields(url, names)
        XCTAssertEqual(rows.count, messages.count)
        guard rows.count == messages.count else { return }
        for (row, bytes) in zip(rows, messages) {
            let m = try MIKEYDecoder.decode(bytes)
            // Fields that tshark reads from the header.
            XCTAssertEqual(row["mikey.type"], String(m.header.dataType.rawValue))
            XCTAssertEqual(row["mikey.v.set"], m.header.verificationRequested ? "1" : "0")
            XCTAssertEqual(row["mikey.prf_func"], "0")
            XCTAssertEqual(row["mikey.csb_id"], "0x" + String(format: "%08x", m.header.csbID.rawValue))
            XCTAssertEqual(row["mikey.cs_count"], String(m.header.csIDMap.sessionCount))
            XCTAssertEqual(row["mikey.cs_id_map_type"], String(m.header.csIDMap.mapType))
            if case .srtpID(let s) = m.header.csIDMap {
                XCTAssertEqual(row["mikey.srtp_id.policy_no"], s.map { String($0.policyNumber) }.joined(separator: ","))
                XCTAssertEqual(row["mikey.srtp_id.ssrc"], s.map { "0x" + String(format: "%08x", $0.ssrc) }.joined(separator: ","))
                XCTAssertEqual(row["mikey.srtp_id.roc"], s.map { "0x" + String(format: "%08x", $0.roc) }.joined(separator: ","))
            }
            // The next-payload chain as we meant it (HDR first, 0 last).
            XCTAssertEqual(row["mikey.next_payload"], (m.payloads.map { String($0.payloadType) } + ["0"]).joined(separator: ","))
            XCTAssertEqual(row["mikey.t.ts_type"], "2")
            if let k = m.keyIDInformation {
                XCTAssertEqual(row["mikey.ext.type"], "3")
                XCTAssertEqual(row["mikey.ext.data"], Hex.encode(k.encode()))
            }
            XCTAssertEqual(row["mikey.rand.data"], m.rand.map { Hex.encode($0) } ?? "")
            XCTAssertEqual(row["mikey.id.data"], m.identities.map { String(decoding: $0.data, as: UTF8.self) }.joined(separator: ","))
            if let sp = m.securityPolicies.first {
                XCTAssertEqual(row["mikey.sp.no"], String(sp.policyNumber))
                XCTAssertEqual(row["mikey.sp.proto_type"], "0")
                XCTAssertEqual(row["mikey.sp.param.type"], sp.parameters.map { String($0.type) }.joined(separator: ","))
                XCTAssertEqual(row["mikey.sp.patam.value"], sp.parameters.map { Hex.encode($0.value) }.joined(separator: ","))
                XCTAssertEqual(try sp.srtpPolicy(), Fixtures.policy)
            } else {
                XCTAssertEqual(row["mikey.sp.param.type"], "")
            }
            if let kemac = m.kemac {
                XCTAssertEqual(row["mikey.kemac.encr_alg"], "1")
                XCTAssertEqual(row["mikey.kemac.mac_alg"], "1")
                XCTAssertEqual(row["mikey.kemac.key_data_len"], String(kemac.encryptedData.count))
                XCTAssertEqual(row["mikey.kemac.mac"], Hex.encode(bytes.suffix(20)))
            }
            if let ver = m.verification {
                XCTAssertEqual(row["mikey.v.auth_alg"], "1")
                XCTAssertEqual(row["mikey.v.ver_data"], Hex.encode(ver.verificationData))
            }
        }
        // Spot checks against literal expectations (not derived from our decoder).
        XCTAssertEqual(rows[0]["mikey.csb_id"], "0xcafe0001")
        XCTAssertEqual(rows[0]["mikey.sp.param.type"], "0,1,2,3,4,5,6,7,8,9,10,11,13,14,15,18,19")
        XCTAssertEqual(rows[0]["mikey.sp.patam.value"], "01,10,03,14,0e,00,00,01,00,00,01,0e,0040,03,01,0e,0a")
        XCTAssertEqual(rows[0]["mikey.ext.data"], "00000300f11001000400010002")
        XCTAssertEqual(rows[1]["mikey.csb_id"], "0x0badf00d")
        XCTAssertEqual(rows[1]["mikey.cs_id_map_type"], "1")
        XCTAssertEqual(rows[2]["mikey.kemac.key_data_len"], "0")
        XCTAssertEqual(rows[3]["mikey.ext.data"], "00000300f110010004000100020200020005")
        XCTAssertEqual(rows[4]["mikey.csb_id"], "0xffffffff")
        XCTAssertEqual(rows[5]["mikey.type"], "1")
        XCTAssertEqual(rows[5]["mikey.next_payload"], "5,6,9,0")
    }

    func testTsharkDecodesKeyDataOfNullEncryptedTwins() throws {
        let msk = try nullEncrypted(try Fixtures.mskBuilder(content: .key(msk: Fixtures.msk, seqL: 0x0003, seqU: 0x0100)).build(),
                                    psk: Fixtures.muk, rand: Fixtures.rand)
        let mtk = try nullEncrypted(try Fixtures.mtkBuilder().build(), psk: Fixtures.msk, rand: Fixtures.rand)
        let tgk = try nullEncrypted(try Fixtures.mtkBuilder(content: .download(mtk: Fixtures.mtk)).build(), psk: Fixtures.msk, rand: Fixtures.rand)
        let url = try writePcap([msk, mtk, tgk])
        defer { try? FileManager.default.removeItem(at: url) }
        try assertClean(url, frames: 3)
        let rows = try fields(url, ["mikey.kemac.encr_alg", "mikey.key.type", "mikey.key.kv", "mikey.key.data.len", "mikey.key.data",
                                    "mikey.key.salt.len", "mikey.key.salt", "mikey.key.kv.from.len", "mikey.key.kv.from",
                                    "mikey.key.kv.to.len", "mikey.key.kv.to"])
        XCTAssertEqual(rows.count, 3)
        guard rows.count == 3 else { return }
        // MSK: TEK (2), KV Interval (2), SEQl 0x0003 / SEQu 0x0100 on 2 octets each.
        XCTAssertEqual(rows[0]["mikey.kemac.encr_alg"], "0")
        XCTAssertEqual(rows[0]["mikey.key.type"], "2")
        XCTAssertEqual(rows[0]["mikey.key.kv"], "2")
        XCTAssertEqual(rows[0]["mikey.key.data.len"], "16")
        XCTAssertEqual(rows[0]["mikey.key.data"], "c0c1c2c3c4c5c6c7c8c9cacbcccdcecf")
        XCTAssertEqual(rows[0]["mikey.key.kv.from.len"], "2")
        XCTAssertEqual(rows[0]["mikey.key.kv.from"], "0003")
        XCTAssertEqual(rows[0]["mikey.key.kv.to.len"], "2")
        XCTAssertEqual(rows[0]["mikey.key.kv.to"], "0100")
        // Streaming MTK: TEK+SALT (3), KV Null, 14-octet salt.
        XCTAssertEqual(rows[1]["mikey.key.type"], "3")
        XCTAssertEqual(rows[1]["mikey.key.kv"], "0")
        XCTAssertEqual(rows[1]["mikey.key.data"], "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf")
        XCTAssertEqual(rows[1]["mikey.key.salt.len"], "14")
        XCTAssertEqual(rows[1]["mikey.key.salt"], "b0b1b2b3b4b5b6b7b8b9babbbcbd")
        // Download MTK: TGK (0), KV Null, no salt.
        XCTAssertEqual(rows[2]["mikey.key.type"], "0")
        XCTAssertEqual(rows[2]["mikey.key.kv"], "0")
        XCTAssertEqual(rows[2]["mikey.key.salt"], "")
    }
}
