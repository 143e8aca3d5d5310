import Foundation
import XCTest
@testable import CryptoCore

/// The MIKEY PRF against `../shared/spec/vectors/mikey-prf.json` (third-party HMAC-SHA-256
/// vectors for the same P-function and label layout) and the DCF key vector of `dcf.json`.
final class MIKEYPRFTests: XCTestCase {
    static let vectorsDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/spec/vectors")

    func load(_ name: String) throws -> [String: Any] {
        let url = Self.vectorsDirectory.appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) not present (tests expect ../shared beside the checkout)")
        }
        return try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }

    func testSHA256VariantVectors() throws {
        let doc = try load("mikey-prf.json")
        let vectors = try XCTUnwrap(doc["vectors"] as? [[String: Any]])
        XCTAssertEqual(vectors.count, 3)
        var checked = 0
        for v in vectors {
            let inkey = try Hex.decode(v["inkey"] as! String)
            for d in v["derived"] as! [[String: Any]] {
                let label = try Hex.decode(d["label"] as! String)
                let out = try MIKEYPRF.derive(inkey: inkey, label: label, outputLength: d["length_octets"] as! Int, hash: .sha256)
                XCTAssertEqual(Hex.encode(out), (d["value"] as! String).lowercased(), "\(v["name"]!) \(d["output"]!)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 6)
    }

    func testLabelLayoutMatchesVector() throws {
        let label = MIKEYPRF.label(.tgkEncryption, csID: 4, csbID: 0x05A8_5C16, rand: try Hex.decode("4339F62F55AAC86348846A482C893802"))
        XCTAssertEqual(Hex.encode(label), "15798cef0405a85c164339f62f55aac86348846a482c893802")
    }

    func testDCFKeysFromMTK() throws {
        let doc = try load("dcf.json")
        let v = try XCTUnwrap(doc["vector_2_mbms_dcf"] as? [String: Any])
        let mtk = try Hex.decode(v["MTK"] as! String)
        let rand = try Hex.decode(v["MIKEY_RAND"] as! String)
        let enc = MIKEYPRF.label(.tgkEncryption, csID: 0, csbID: 0x1234_5678, rand: rand)
        let auth = MIKEYPRF.label(.tgkAuthentication, csID: 0, csbID: 0x1234_5678, rand: rand)
        XCTAssertEqual(Hex.encode(enc), v["prf_label_encryption_key"] as? String)
        XCTAssertEqual(Hex.encode(auth), v["prf_label_authentication_key"] as? String)
        XCTAssertEqual(Hex.encode(try MIKEYPRF.derive(inkey: mtk, label: enc, outputLength: 16)), v["encryption_key_128"] as? String)
        XCTAssertEqual(Hex.encode(try MIKEYPRF.derive(inkey: mtk, label: auth, outputLength: 20)), v["authentication_key_160"] as? String)
    }

    func testLongInkeyIsSplitIntoFullChunks() throws {
        // 256-bit inkey: exactly one full chunk, never an empty-key HMAC (mikey.md 5.1 pitfall).
        let key = (0..<32).map { UInt8($0) }
        let label = [UInt8](repeating: 0xAB, count: 25)
        let whole = try MIKEYPRF.derive(inkey: key, label: label, outputLength: 20)
        let single = try MIKEYPRF.pFunction(secret: key, label: label, blocks: 1, hash: .sha1)
        XCTAssertEqual(whole, single)
        // 40-byte inkey: chunk 1 (32 bytes) XOR chunk 2 (8 bytes).
        let key40 = (0..<40).map { UInt8($0) }
        let p1 = try MIKEYPRF.pFunction(secret: Array(key40[0..<32]), label: label, blocks: 2, hash: .sha1)
        let p2 = try MIKEYPRF.pFunction(secret: Array(key40[32..<40]), label: label, blocks: 2, hash: .sha1)
        XCTAssertEqual(try MIKEYPRF.derive(inkey: key40, label: label, outputLength: 30), Array(zip(p1, p2).map { $0 ^ $1 }.prefix(30)))
    }
}
