import CryptoCore
import Foundation
import KeyManagement
import TestSupport
import XCTest

/// `mbms-gateway ue add --ks --rand` derives Ks_NAF as a BSF would: the stored key is the
/// spec vector's Ks_NAF (keyserver.json, an independent computation), never printed; `ue list`
/// and `ue remove` work on the same table; bad keys are refused with the fix.
final class UECommandTests: XCTestCase {
    func testAddDerivesTheVectorsKsNAFAndListNeverShowsKeys() throws {
        guard let binary = Tool.product("mbms-gateway") else {
            if ProcessInfo.processInfo.environment["CI"] == "true" { return XCTFail("mbms-gateway not built") }
            throw XCTSkip("mbms-gateway executable not found: build it first (swift build --build-tests)")
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-ue-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = KeyServerVectors.gba
        let config = dir.appendingPathComponent("gateway.yaml").path
        // bmscFQDN is the vector's NAF FQDN, so NAF_Id = bmsc.home1.net ‖ 01 00 00 00 01 as in the vector.
        try (TestConfiguration.header.replacingOccurrences(of: "bmscFQDN: bmsc.example.org", with: "bmscFQDN: \(g.string("NAF_FQDN"))") + """

              - { name: video, kind: rtp, destination: 239.1.1.1:5000, keyGroup: 1 }
            """).write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["MBMS_KEK": String(repeating: "ab", count: 32)]
        func mbms(_ args: [String]) throws -> ToolResult { try Tool.run(binary.path, args, environment: env) }
        var r = try mbms(["keys", "init", "--config", config])
        XCTAssertEqual(r.status, 0, r.stderr)
        let ks = Hex.encode(g.hex("Ks")), rand = Hex.encode(g.hex("RAND"))
        r = try mbms(["ue", "add", "--config", config, "--btid", "B1@bsf.home1.net", "--impi", g.string("IMPI"), "--ks", ks, "--rand", rand])
        XCTAssertEqual(r.status, 0, r.stderr)
        r = try mbms(["ue", "list", "--config", config])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertTrue(r.stdout.contains("B1@bsf.home1.net  \(g.string("IMPI"))  GBA_ME  valid until"), r.stdout)
        XCTAssertFalse(r.stdout.lowercased().contains(Hex.encode(g.hex("Ks_NAF")).prefix(16)), "no key in the listing")

        let store = try SQLiteKeyStore.open(path: dir.appendingPathComponent("keys.sqlite").path, kek: SecretBytes(Array(repeating: 0xAB, count: 32)))
        let stored = try XCTUnwrap(store.bootstrap(btid: "B1@bsf.home1.net"))
        XCTAssertEqual(stored.ksNAF.revealedBytes(), g.hex("Ks_NAF"), "Ks_NAF derived as the vector says (TS 33.220 B.3)")
        XCTAssertNil(stored.ksIntNAF)

        r = try mbms(["ue", "add", "--config", config, "--btid", "B2", "--impi", "x", "--ks-naf", "00"])
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--ks-naf must be 32 octets as 64 hex digits"), r.stderr)
        r = try mbms(["ue", "remove", "--config", config, "--btid", "B1@bsf.home1.net"])
        XCTAssertEqual(r.status, 0, r.stderr)
        XCTAssertNil(try store.bootstrap(btid: "B1@bsf.home1.net"))
    }
}
