import XCTest
@testable import FLUTE

/// FDT-Instance XML: the vector written byte for byte, the fixture FDTs parsed, hostile XML refused.
final class FDTInstanceTests: XCTestCase {
    func vectorInstance() -> FDTInstance {
        FDTInstance(expires: 4_102_444_800, fec: FDTFECParameters(encodingID: 0, maximumSourceBlockLength: 64, encodingSymbolLength: 1024), files: [
            FDTFile(toi: 1, contentLocation: "file:///mbms/keys/mtk-00f110-00010002-0003.mikey", contentType: "application/mikey", contentLength: 64),
            FDTFile(toi: 2, contentLocation: "http://bmsc.home1.net/content/file1.txt", contentType: "application/vnd.oma.drm.dcf",
                    contentLength: 259, contentMD5: "l+7H8tcsWj/ZRB3D4YvmAw=="),
        ])
    }

    func testWriterReproducesVectorXML() throws {
        let doc = try Shared.json("spec/vectors/flute.json")
        let expected = try XCTUnwrap(doc["fdt_instance_xml"] as? String)
        XCTAssertEqual(String(decoding: try vectorInstance().xml(), as: UTF8.self), expected)
        XCTAssertEqual(try FDTInstance(parsing: Array(expected.utf8)), vectorInstance())
        let expires = try XCTUnwrap(doc["fdt_expires_example"] as? [String: Any])
        XCTAssertEqual(UInt64(try XCTUnwrap(expires["unix"] as? Int)) + FDTInstance.ntpUnixOffset, UInt64(vectorInstance().expires))
    }

    func testWriteParseRoundTripWithEscapingAndAllAttributes() throws {
        let instance = FDTInstance(expires: 1, complete: true, contentType: "text/plain", contentEncoding: nil,
                                   fec: FDTFECParameters(encodingID: 0, instanceID: 0, maximumSourceBlockLength: 10, encodingSymbolLength: 5,
                                                         maxNumberOfEncodingSymbols: 10),
                                   fullFDT: true, files: [
                                       FDTFile(toi: 0xFFFF_FFFF_FFFF, contentLocation: "http://x/a?b=1&c=\"2\"<'>\t\nend ü",
                                               contentType: "a/b", contentEncoding: "gzip", contentLength: 10, transferLength: 7,
                                               contentMD5: "AAAA", fec: FDTFECParameters(encodingSymbolLength: 3)),
                                   ])
        let xml = try instance.xml()
        XCTAssertEqual(try FDTInstance(parsing: xml), instance)
        XCTAssertTrue(String(decoding: xml, as: UTF8.self).contains("a?b=1&amp;c=&quot;2&quot;&lt;&apos;&gt;&#x9;&#xA;end"))
        XCTAssertEqual(try FDTInstance(parsing: try instance.xml(namespace: FDTInstance.namespaceRFC6726)), instance)
        let file = instance.files[0]
        XCTAssertEqual(instance.objectTransmissionInformation(for: file),
                       ObjectTransmissionInformation(transferLength: 7, encodingSymbolLength: 3, maximumSourceBlockLength: 10))
    }

    /// The fixture FDTs (flute-alc output) against the fixtures README table.
    func testParsesFixtureFDTs() throws {
        let files = try FDTInstance(parsing: try Shared.bytes("fixtures/flute-files.fdt.xml"))
        XCTAssertEqual(files.expires, 4_004_428_775)
        XCTAssertEqual(files.fullFDT, true)
        XCTAssertEqual(files.fec, FDTFECParameters(encodingID: 0, instanceID: 0, maximumSourceBlockLength: 64, encodingSymbolLength: 1400,
                                                   maxNumberOfEncodingSymbols: 64))
        let expected: [(UInt64, String, String, UInt64, String)] = [
            (1, "http://bmsc.example.com/download/content.bin", "application/octet-stream", 1_048_576, "Uz3fEE7SWn4qV9rJ03UuDg=="),
            (2, "http://bmsc.example.com/download/readme.txt", "text/plain", 51, "qLmnoLa8v6NhT8QWUXrhOQ=="),
            (3, "http://bmsc.example.com/download/clip.mp4", "video/mp4", 195_013, "fnAIP1ZqsV4yc2C15HnKlw=="),
            (4, "http://bmsc.example.com/download/manifest.xml", "application/xml", 1971, "ITw3IXmyWod935i+xBg7mw=="),
        ]
        let byTOI = Dictionary(uniqueKeysWithValues: files.files.map { ($0.toi, $0) })
        XCTAssertEqual(byTOI.count, 4)
        for (toi, location, type, size, md5) in expected {
            let f = try XCTUnwrap(byTOI[toi])
            XCTAssertEqual(f.contentLocation, location)
            XCTAssertEqual(f.contentType, type)
            XCTAssertEqual(f.contentLength, size)
            XCTAssertEqual(f.transferLength, size)
            XCTAssertEqual(f.contentMD5, md5)
            XCTAssertEqual(files.objectTransmissionInformation(for: f), ObjectTransmissionInformation(transferLength: size, encodingSymbolLength: 1400, maximumSourceBlockLength: 64))
        }
        let mc = try FDTInstance(parsing: try Shared.bytes("fixtures/flute-multicast.fdt.xml"))
        XCTAssertEqual(mc.files.map(\.toi).sorted(), [1, 2])
        XCTAssertEqual(mc.files.first { $0.toi == 1 }?.contentLocation, "http://bmsc.example.com/mc/clip.mp4")
        XCTAssertEqual(mc.files.first { $0.toi == 2 }?.contentLength, 51)
    }

    func testBillionLaughsAndOtherDTDsAreRefusedBeforeParsing() {
        let laughs = """
        <?xml version="1.0"?>
        <!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
        <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
        <FDT-Instance xmlns="urn:IETF:metadata:2005:FLUTE:FDT" Expires="1"><File TOI="1" Content-Location="&lol3;"/></FDT-Instance>
        """
        XCTAssertThrowsError(try FDTInstance(parsing: Array(laughs.utf8))) {
            XCTAssertEqual($0 as? FDTParseError, .forbiddenDeclaration("<!DOCTYPE", offset: 22))
        }
        let xxe = "<!ENTITY xxe SYSTEM \"file:///etc/passwd\"><FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\"/>"
        XCTAssertThrowsError(try FDTInstance(parsing: Array(xxe.utf8))) {
            XCTAssertEqual($0 as? FDTParseError, .forbiddenDeclaration("<!ENTITY", offset: 0))
        }
        let lowercase = "<!doctype x><FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\"/>"
        XCTAssertThrowsError(try FDTInstance(parsing: Array(lowercase.utf8)))
        let otherDecl = "<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\"><!ATTLIST a b CDATA #IMPLIED></FDT-Instance>"
        XCTAssertThrowsError(try FDTInstance(parsing: Array(otherDecl.utf8))) {
            guard case .forbiddenDeclaration? = $0 as? FDTParseError else { return XCTFail("\($0)") }
        }
        let undefined = "<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\"><File TOI=\"1\" Content-Location=\"&ext;\"/></FDT-Instance>"
        XCTAssertThrowsError(try FDTInstance(parsing: Array(undefined.utf8))) {
            XCTAssertEqual($0 as? FDTParseError, .undefinedEntity("ext", offset: 99))
        }
    }

    func testSizeDepthAndCountBounds() {
        let big = "<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\">" + String(repeating: "<x/>", count: 300_000) + "</FDT-Instance>"
        XCTAssertThrowsError(try FDTInstance(parsing: Array(big.utf8))) {
            XCTAssertEqual($0 as? FDTParseError, .tooLarge(size: big.utf8.count, limit: 1 << 20))
        }
        let many = "<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\">" + String(repeating: "<x/>", count: 2000) + "</FDT-Instance>"
        XCTAssertThrowsError(try FDTInstance(parsing: Array(many.utf8), limits: FDTParserLimits(maximumElements: 1000))) {
            guard case .limitExceeded("element count", _, 1000)? = $0 as? FDTParseError else { return XCTFail("\($0)") }
        }
        let deep = "<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\">" + String(repeating: "<a>", count: 10_000) + String(repeating: "</a>", count: 10_000) + "</FDT-Instance>"
        XCTAssertThrowsError(try FDTInstance(parsing: Array(deep.utf8))) {
            guard case .limitExceeded("element nesting", _, 16)? = $0 as? FDTParseError else { return XCTFail("\($0)") }
        }
    }

    func testStructuralErrors() throws {
        func fails(_ xml: String, _ line: UInt = #line, _ check: (FDTParseError) -> Bool) {
            XCTAssertThrowsError(try FDTInstance(parsing: Array(xml.utf8)), line: line) {
                guard let e = $0 as? FDTParseError else { return XCTFail("\($0)", line: line) }
                XCTAssertTrue(check(e), "\(e)", line: line)
            }
        }
        let ns = "xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\""
        fails("<FDT-Instance \(ns)/>") { if case .missingAttribute("FDT-Instance", "Expires", 0) = $0 { return true }; return false }
        fails("<FDT-Instance \(ns) Expires=\"99999999999\"/>") { if case .invalidAttribute(_, "Expires", _, _, _) = $0 { return true }; return false }
        fails("<FDT-Instance Expires=\"1\"/>") { if case .notAnFDTInstance = $0 { return true }; return false }
        fails("<FDT-Instance \(ns) Expires=\"1\"><File TOI=\"0\" Content-Location=\"a\"/></FDT-Instance>") { if case .invalidAttribute(_, "TOI", _, _, _) = $0 { return true }; return false }
        fails("<FDT-Instance \(ns) Expires=\"1\"><File TOI=\"1\"/></FDT-Instance>") { if case .missingAttribute("File", "Content-Location", _) = $0 { return true }; return false }
        fails("<FDT-Instance \(ns) Expires=\"1\"><File TOI=\"1\" Content-Location=\"a\"/><File TOI=\"1\" Content-Location=\"b\"/></FDT-Instance>") {
            if case .duplicateTOI(1, _) = $0 { return true }; return false
        }
        fails("<FDT-Instance \(ns) Expires=\"1\"><File></FDT-Instance>") { if case .malformed = $0 { return true }; return false }
        fails("<FDT-Instance \(ns) Expires=\"1\" Expires=\"2\"/>") { if case .malformed = $0 { return true }; return false }
        fails("<FDT-Instance \(ns) Expires=\"1\"><p:x/></FDT-Instance>") { if case .unboundPrefix("p", _) = $0 { return true }; return false }
        fails("<FDT-Instance \(ns) Expires=\"1\"/><second/>") { if case .malformed = $0 { return true }; return false }
        fails("") { if case .malformed = $0 { return true }; return false }
        // Truncations of a valid document never trap.
        let xml = try vectorInstance().xml()
        for n in 0..<xml.count { _ = try? FDTInstance(parsing: Array(xml.prefix(n))) }
    }

    /// Deterministic mutations of the fixture FDT: the parser only ever returns or throws.
    func testMutatedFixtureFDTsNeverTrap() throws {
        let xml = try Shared.bytes("fixtures/flute-files.fdt.xml")
        var state: UInt64 = 0xDEAD_BEEF_CAFE_F00D
        func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        let specials = Array("<>&;=\"'/!?:#x-[]".utf8)
        var parsed = 0
        for _ in 0..<3000 {
            var m = xml
            for _ in 0..<(1 + Int(next() % 4)) {
                let at = Int(next() % UInt64(m.count))
                switch next() % 3 {
                case 0: m[at] = specials[Int(next() % UInt64(specials.count))]
                case 1: m.remove(at: at)
                default: m.insert(UInt8(truncatingIfNeeded: next()), at: at)
                }
            }
            if (try? FDTInstance(parsing: m)) != nil { parsed += 1 }
        }
        XCTAssertGreaterThan(parsed, 0, "some mutations (inside attribute values) stay valid")
    }

    func testFDTTableMergesRepeatsAndCountsCollisions() throws {
        var table = FDTTable()
        let first = vectorInstance()
        XCTAssertEqual(table.insert(first, fdtInstanceID: 1, ntpNow: 4_000_000_000), .accepted(newTOIs: [1, 2]))
        XCTAssertEqual(table.insert(first, fdtInstanceID: 1, ntpNow: 4_000_000_000), .repeated)
        var changed = first
        changed.files.removeLast()
        XCTAssertEqual(table.insert(changed, fdtInstanceID: 1, ntpNow: 4_000_000_000), .conflicting)
        // A later instance adds TOI 3, repeats TOI 1, and maps TOI 2 to another file: a collision.
        var second = first
        second.files = [first.files[0],
                        FDTFile(toi: 2, contentLocation: "http://evil/other", contentLength: 5),
                        FDTFile(toi: 3, contentLocation: "http://x/3", contentLength: 3)]
        XCTAssertEqual(table.insert(second, fdtInstanceID: 2, ntpNow: 4_000_000_000), .accepted(newTOIs: [3]))
        XCTAssertEqual(table.entry(forTOI: 2)?.file.contentLocation, "http://bmsc.home1.net/content/file1.txt")
        XCTAssertEqual(table.entry(forTOI: 2)?.objectTransmissionInformation?.transferLength, 259)
        XCTAssertEqual(table.counters.toiCollisions, 1)
        XCTAssertEqual(table.counters.instancesRepeated, 1)
        XCTAssertEqual(table.counters.instancesConflicting, 1)
        var stale = first
        stale.expires = 10
        XCTAssertEqual(table.insert(stale, fdtInstanceID: 3, ntpNow: 11), .expired)
        XCTAssertEqual(table.counters.instancesExpired, 1)
        XCTAssertEqual(Set(table.expire(ntpNow: 4_102_444_801)), [1, 2, 3])
        XCTAssertTrue(table.files.isEmpty)
        // After expiry the instance ID and the TOIs may be reused.
        XCTAssertEqual(table.insert(second, fdtInstanceID: 1, ntpNow: 4_000_000_000), .accepted(newTOIs: [1, 2, 3]))
        var bounded = FDTTable(maximumFiles: 1)
        XCTAssertEqual(bounded.insert(first, fdtInstanceID: 1, ntpNow: nil), .accepted(newTOIs: [1]))
        XCTAssertEqual(bounded.counters.filesOverLimit, 1)
    }
}
