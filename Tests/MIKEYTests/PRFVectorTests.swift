import CryptoCore
import Foundation
import XCTest
@testable import MIKEY

/// MIKEY's own derivation path (label layout + PRF plumbing) against `vectors/mikey-prf.json`:
/// third-party HMAC-SHA-256 vectors of the same construction, as documented in that file.
final class PRFVectorTests: XCTestCase {
    static let vectorsDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/spec/vectors")

    func load() throws -> [String: Any] {
        let url = Self.vectorsDirectory.appendingPathComponent("mikey-prf.json")
        guard FileManager.default.fileExists(atPath: url.path) else { throw XCTSkip("\(url.path) not present") }
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
    }

    func testSHA256VectorsThroughMIKEYKeyDerivation() throws {
        let doc = try load()
        XCTAssertEqual(doc["prf_hash"] as? String, "sha256")
        let vectors = try XCTUnwrap(doc["vectors"] as? [[String: Any]])
        var checked = 0
        for v in vectors {
            let inkey = SecretBytes(try Hex.decode(try XCTUnwrap(v["inkey"] as? String)))
            let csID = UInt8(try XCTUnwrap(v["cs_id"] as? Int))
            let csb = try XCTUnwrap(UInt32(try XCTUnwrap(v["csb_id"] as? String), radix: 16))
            let rand = try Hex.decode(try XCTUnwrap(v["rand"] as? String))
            for d in try XCTUnwrap(v["derived"] as? [[String: Any]]) {
                let output = try XCTUnwrap(d["output"] as? String)
                let constantHex = try XCTUnwrap(output.components(separatedBy: "0x").last)
                let constant = try XCTUnwrap(MIKEYPRF.Constant(rawValue: try XCTUnwrap(UInt32(constantHex, radix: 16))))
                let length = try XCTUnwrap(d["length_octets"] as? Int)
                XCTAssertEqual(Hex.encode(MIKEYPRF.label(constant, csID: csID, csbID: csb, rand: rand)), d["label"] as? String)
                let out = try MIKEYKeyDerivation.derive(inkey, constant, csID, CSBID(csb), rand, length, hash: .sha256)
                XCTAssertEqual(Hex.encode(out.revealedBytes()), (d["value"] as? String)?.lowercased(), output)
                checked += 1
            }
        }
        XCTAssertEqual(checked, 6)
    }

    func testConstantsMatchTheVectorFileTable() throws {
        let doc = try load()
        let table = try XCTUnwrap(doc["constants_rfc3830"] as? [String: Any])
        let psk = try XCTUnwrap(table["section_4_1_4_from_envelope_or_preshared_key"] as? [String: String])
        let tgk = try XCTUnwrap(table["section_4_1_3_from_TGK"] as? [String: String])
        func value(_ s: String?) throws -> UInt32 { try XCTUnwrap(UInt32(try XCTUnwrap(s).dropFirst(2), radix: 16)) }
        XCTAssertEqual(MIKEYPRF.Constant.pskEncryption.rawValue, try value(psk["encryption_key"]))
        XCTAssertEqual(MIKEYPRF.Constant.pskAuthentication.rawValue, try value(psk["authentication_key"]))
        XCTAssertEqual(MIKEYPRF.Constant.pskSalting.rawValue, try value(psk["salting_key"]))
        XCTAssertEqual(MIKEYPRF.Constant.tgkEncryption.rawValue, try value(tgk["encryption_key"]))
        XCTAssertEqual(MIKEYPRF.Constant.tgkAuthentication.rawValue, try value(tgk["authentication_key"]))
        XCTAssertEqual(MIKEYKeyDerivation.pskCSID, 0xFF)
        XCTAssertEqual(MIKEYKeyDerivation.downloadCSID, 0x00)
    }
}
