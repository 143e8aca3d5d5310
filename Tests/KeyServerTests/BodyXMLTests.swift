import TestSupport
import XCTest
@testable import KeyServer

final class BodyXMLTests: XCTestCase {
    func testTypedErrorsWithOffsets() {
        func error(_ s: String) -> KeyServerXMLError? {
            do { _ = try BodyXMLParser.parse(Array(s.utf8)); return nil } catch { return error }
        }
        XCTAssertEqual(error("<a><!DOCTYPE x></a>"), .forbiddenDeclaration("<!DOCTYPE", offset: 3))
        XCTAssertEqual(error("<a><!entity x></a>"), .forbiddenDeclaration("<!ENTITY", offset: 3))
        XCTAssertEqual(error("<a><!ATTLIST x></a>"), .forbiddenDeclaration("markup declaration '<!'", offset: 3))
        XCTAssertEqual(error("<a>&ext;</a>"), .undefinedEntity("ext", offset: 3))
        XCTAssertEqual(error("<a></b>"), .malformed(offset: 3, rule: "end tag </b> does not match <a>, XML 1.0 §3"))
        XCTAssertEqual(error("<a x='1' x='2'/>"), .malformed(offset: 9, rule: "duplicate attribute x, XML 1.0 §3.1"))
        XCTAssertEqual(error("<a/><b/>"), .malformed(offset: 4, rule: "a second root element, XML 1.0 §2.1"))
        XCTAssertEqual(error(String(repeating: " ", count: KeyServerModule.maximumBodyBytes + 1)),
                       .tooLarge(size: KeyServerModule.maximumBodyBytes + 1, limit: KeyServerModule.maximumBodyBytes))
        XCTAssertNil(error("\u{FEFF}<a b=\"&lt;&#x41;&#66;\"><![CDATA[<x>]]><!-- c --></a>"))
        let many = "<a>" + String(repeating: "<b/>", count: 5_000) + "</a>"
        XCTAssertEqual(error(many), .limitExceeded("element count", offset: 3 + 4 * 4095, limit: 4096))
    }

    /// Random mutations of a valid msk-request body: a value or a typed error, never a trap.
    func testMutationCampaign() {
        var rng = SplitMix64.seeded("BodyXMLTests.testMutationCampaign")
        let base = mskBody([("00F110", "00010000"), ("APEQ", "65536")]) + registerBody(["urn:x"])
        let alphabet = Array("<>/=\"'&;#x!-[]?: \nA0".utf8) + [0x00, 0xC3, 0xFF]
        for _ in 0..<3_000 {
            var b = base
            for _ in 0..<Int.random(in: 1...8, using: &rng) {
                guard !b.isEmpty else { break }
                let at = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<3, using: &rng) {
                case 0: b[at] = alphabet.randomElement(using: &rng) ?? 0
                case 1: b.remove(at: at)
                default: b.insert(alphabet.randomElement(using: &rng) ?? 0, at: at)
                }
            }
            _ = try? KeyRequestBodies.mskItems(from: b)
            _ = try? KeyRequestBodies.serviceIDs(from: b)
        }
    }
}
