import CryptoCore
import XCTest
@testable import KeyServer

/// TS 33.220 Annex B / TS 33.246 Annex F against `vectors/keyserver.json` "gba_kdf_and_mrk"
/// (self-computed there, cross-checked with an independent HMAC-SHA-256).
final class GBATests: XCTestCase {
    let v = KeyServerVectors.gba

    func testVectorsLoaded() {
        XCTAssertFalse(KeyServerVectors.json.isEmpty, "Vectors/keyserver.json not found in the test bundle")
    }

    func testNAFIdAndKDFInputEncoding() throws {
        let naf = GBAKeyDerivation.nafID(fqdn: v.string("NAF_FQDN"))
        XCTAssertEqual(Hex.encode(naf), v.string("NAF_Id_hex"))
        let impi = Array(v.string("IMPI").utf8)
        XCTAssertEqual(Hex.encode(try GBAKeyDerivation.encodeS(fc: 0x01, parameters: [GBAKeyDerivation.gbaME, v.hex("RAND"), impi, naf])),
                       v.string("S_Ks_NAF_hex"))
        XCTAssertEqual(Hex.encode(try GBAKeyDerivation.encodeS(fc: 0x01, parameters: [GBAKeyDerivation.gbaU, v.hex("RAND"), impi, naf])),
                       v.string("S_Ks_int_NAF_hex"))
        XCTAssertEqual(Hex.encode(try GBAKeyDerivation.encodeS(fc: 0x01, parameters: [GBAKeyDerivation.mbmsMRK])), v.string("S_MRK_hex"))
        XCTAssertEqual(Hex.encode(v.hex("CK") + v.hex("IK")), v.string("Ks"))
    }

    func testKsNAFKsIntNAFMRKAndPassword() throws {
        let ks = SecretBytes(v.hex("Ks"))
        let naf = GBAKeyDerivation.nafID(fqdn: v.string("NAF_FQDN"), ua: .mbms)
        let ksNAF = try GBAKeyDerivation.ksNAF(ks: ks, rand: v.hex("RAND"), impi: v.string("IMPI"), nafID: naf)
        XCTAssertEqual(Hex.encode(ksNAF.revealedBytes()), v.string("Ks_NAF"))
        let ksInt = try GBAKeyDerivation.ksIntNAF(ks: ks, rand: v.hex("RAND"), impi: v.string("IMPI"), nafID: naf)
        XCTAssertEqual(Hex.encode(ksInt.revealedBytes()), v.string("Ks_int_NAF"))
        let mrk = try GBAKeyDerivation.mrk(fromKsNAF: ksNAF)
        XCTAssertEqual(Hex.encode(mrk.revealedBytes()), v.string("MRK"))
        XCTAssertEqual(String(decoding: GBAKeyDerivation.digestPassword(mrk: mrk), as: UTF8.self), v.string("MRK_base64_password"))
        // The generic KDF entry point gives the same.
        let direct = try GBAKeyDerivation.kdf(key: ksNAF, fc: 0x01, parameters: [Array("mbms-mrk".utf8)])
        XCTAssertTrue(direct.isEqual(to: mrk))
    }

    func testUserKeyCandidatesPerGBAType() throws {
        let naf = GBAKeyDerivation.nafID(fqdn: Fixture.fqdn)
        let me = try XCTUnwrap(try InMemoryBootstrapping(sessions: [Fixture.btid: Fixture.session(.gbaME)]).answer(btid: Fixture.btid, nafID: naf))
        let meKeys = try GBAKeyDerivation.userKeyCandidates(for: me)
        XCTAssertEqual(meKeys.map(\.location), [.me])
        XCTAssertEqual(Hex.encode(meKeys[0].muk.revealedBytes()), v.string("Ks_NAF"))
        XCTAssertEqual(Hex.encode(meKeys[0].mrk.revealedBytes()), v.string("MRK"))
        XCTAssertNil(me.ksIntNAF)

        // GBA_U (TS 33.246 6.1, K1): UICC case MUK = Ks_int_NAF, MRK = Ks_ext_NAF; ME case as GBA_ME.
        let u = try XCTUnwrap(try InMemoryBootstrapping(sessions: [Fixture.btid: Fixture.session(.gbaU)]).answer(btid: Fixture.btid, nafID: naf))
        let uKeys = try GBAKeyDerivation.userKeyCandidates(for: u)
        XCTAssertEqual(uKeys.map(\.location), [.uicc, .me])
        XCTAssertEqual(Hex.encode(uKeys[0].muk.revealedBytes()), v.string("Ks_int_NAF"))
        XCTAssertEqual(Hex.encode(uKeys[0].mrk.revealedBytes()), v.string("Ks_NAF"))
        XCTAssertEqual(Hex.encode(uKeys[1].muk.revealedBytes()), v.string("Ks_NAF"))
        XCTAssertEqual(Hex.encode(uKeys[1].mrk.revealedBytes()), v.string("MRK"))
        XCTAssertEqual(try GBAKeyDerivation.userKeyCandidates(for: u, only: .me).map(\.location), [.me])

        var noInt = u
        noInt.ksIntNAF = nil
        XCTAssertThrowsError(try GBAKeyDerivation.userKeyCandidates(for: noInt, only: .uicc)) { XCTAssertEqual($0 as? GBAError, .missingKsIntNAF) }
        XCTAssertNil(try InMemoryBootstrapping().answer(btid: "nobody@bsf", nafID: naf))
    }

    func testKDFBoundsAndUaIdentifier() {
        XCTAssertThrowsError(try GBAKeyDerivation.encodeS(fc: 1, parameters: [[1], [UInt8](repeating: 0, count: 65_536)])) {
            XCTAssertEqual($0 as? GBAError, .parameterTooLong(index: 1, length: 65_536))
        }
        XCTAssertThrowsError(try UaSecurityProtocolID(bytes: [1, 0, 0, 0])) { XCTAssertEqual($0 as? GBAError, .invalidUaSecurityProtocolID(length: 4)) }
        XCTAssertEqual(UaSecurityProtocolID.mbms.bytes, [1, 0, 0, 0, 1])
        // Secrets print redacted.
        XCTAssertFalse("\(SecretBytes(v.hex("Ks")))".contains("b40b"))
    }
}
