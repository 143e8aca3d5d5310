import MIKEY
import XCTest
@testable import KeyManagement

final class ConfigurationTests: XCTestCase {
    func testExampleConfigurationLoads() throws {
        let path = Fixtures.packageRoot.appendingPathComponent("Examples/gateway.yaml").path
        let c = try GatewayConfiguration.load(path: path)
        // mikey.md 4.2 / M-9: MCC 001 / MNC 01 → 00 f1 10.
        XCTAssertEqual(c.keyDomainID.bytes, [0x00, 0xF1, 0x10])
        XCTAssertEqual(c.bmscFQDN, "bmsc.mnc001.mcc001.pub.3gppnetwork.org")
        XCTAssertTrue(c.keyStore.path.hasSuffix("Examples/keys.sqlite"), c.keyStore.path)
        XCTAssertEqual(c.schedule.epoch, Fixtures.epoch)
        XCTAssertEqual(c.schedule.mtkPeriod, 60)
        XCTAssertEqual(c.schedule.announceLead, 10)
        XCTAssertEqual(c.schedule.repeatInterval, 5)
        XCTAssertEqual(c.schedule.mskPeriod, 86_400)
        XCTAssertEqual(c.sessions.count, 3)
        let news = c.sessions[0]
        XCTAssertEqual(news.kind, .rtp)
        XCTAssertEqual(news.destination.description, "239.1.1.1:5000")
        XCTAssertEqual(news.rtcpDestination?.description, "239.1.1.1:5001")   // port + 1
        XCTAssertEqual(news.output?.description, "232.10.1.1:5000")
        XCTAssertEqual(news.keyGroup.rawValue, 1)
        XCTAssertEqual(news.protection.cipher, .aes128CM)
        XCTAssertEqual(news.protection.authentication, .rccm2)
        XCTAssertEqual(news.protection.rocRate, 64)
        XCTAssertEqual(news.protection.srtpTagLength, 14)
        XCTAssertEqual(news.protection.srtcpTagLength, 10)
        XCTAssertTrue(news.protection.srtcpEncryption)
        let sports = c.sessions[1]
        XCTAssertEqual(sports.destination.description, "[ff0e::1:2]:6000")
        XCTAssertEqual(sports.destination.addressBytes.count, 16)
        XCTAssertEqual(sports.rtcpDestination?.port, 6003)
        XCTAssertEqual(sports.protection.cipher.keyLength, 32)
        XCTAssertEqual(sports.protection.srtpTagLength, 14)   // rccm1 default
        let files = c.sessions[2]
        XCTAssertEqual(files.kind, .flute)
        XCTAssertEqual(files.tsi, 7)
        XCTAssertNil(files.rtcpDestination)
        XCTAssertTrue(files.protection.dcf)
    }

    func testKeyDomainIDEncodingTS24008() throws {
        // Hand-encoded PLMN identities (TS 24.008 10.5.1.13): 001/01, 262/01, 310/410.
        XCTAssertEqual(try KeyDomainID.parse(mcc: "001", mnc: "01").bytes, [0x00, 0xF1, 0x10])
        XCTAssertEqual(try KeyDomainID.parse(mcc: "262", mnc: "01").bytes, [0x62, 0xF2, 0x10])
        XCTAssertEqual(try KeyDomainID.parse(mcc: "310", mnc: "410").bytes, [0x13, 0x00, 0x14])
        XCTAssertEqual(try KeyDomainID.parse(mcc: "001", mnc: "01").hex, "00f110")
        XCTAssertThrowsError(try KeyDomainID.parse(mcc: "1", mnc: "01"))
        XCTAssertThrowsError(try KeyDomainID.parse(mcc: "001", mnc: "1a"))
    }

    /// Each bad file must fail with one line naming the key path, the value and a fix.
    func testBadConfigurationsFailFastWithOneLine() throws {
        let base = Fixtures.yaml()
        struct Case { let name: String; let yaml: String; let key: String; let value: String? }
        let cases: [Case] = [
            Case(name: "unknown key", yaml: base + "\ncolour: blue\n", key: "colour", value: nil),
            Case(name: "unknown nested key", yaml: base.replacingOccurrences(of: "keyGroup: 1 }", with: "keyGroup: 1, tls: on }"),
                 key: "sessions[0].tls", value: nil),
            Case(name: "key group 0", yaml: base.replacingOccurrences(of: "keyGroup: 1 }", with: "keyGroup: 0 }"),
                 key: "sessions[0].keyGroup", value: "0"),
            Case(name: "same key group twice", yaml: base.replacingOccurrences(of: "keyGroup: 2,", with: "keyGroup: 1,"),
                 key: "sessions[1].keyGroup", value: "1"),
            Case(name: "overlapping destinations", yaml: base.replacingOccurrences(of: "239.0.0.1:5002", with: "239.0.0.1:5000"),
                 key: "sessions[1].destination", value: "239.0.0.1:5000"),
            Case(name: "RTP on another session's RTCP port", yaml: base.replacingOccurrences(of: "239.0.0.1:5002", with: "239.0.0.1:5001"),
                 key: "sessions[1].destination", value: "239.0.0.1:5001"),
            Case(name: "period 0", yaml: Fixtures.yaml(mtkPeriod: "0s"), key: "schedule.mtk.period", value: "0s"),
            Case(name: "negative period", yaml: Fixtures.yaml(mtkPeriod: "-60"), key: "schedule.mtk.period", value: "-60"),
            Case(name: "announceLead = period", yaml: Fixtures.yaml(lead: "60s"), key: "schedule.mtk.announceLead", value: "60s"),
            Case(name: "announceLead > period", yaml: Fixtures.yaml(lead: "2m"), key: "schedule.mtk.announceLead", value: "2m"),
            Case(name: "MSK period not a multiple", yaml: Fixtures.yaml(mskPeriod: "90s"), key: "schedule.msk.period", value: "90s"),
            Case(name: "R = 0", yaml: base.replacingOccurrences(of: "keyGroup: 1 }", with: "keyGroup: 1, protection: { rocRate: 0 } }"),
                 key: "sessions[0].protection.rocRate", value: "0"),
            Case(name: "malformed address (3 octets)", yaml: base.replacingOccurrences(of: "239.0.0.1:5000", with: "239.0.1:5000"),
                 key: "sessions[0].destination", value: "239.0.1:5000"),
            Case(name: "malformed address (no port)", yaml: base.replacingOccurrences(of: "239.0.0.1:5000", with: "239.0.0.1"),
                 key: "sessions[0].destination", value: "239.0.0.1"),
            Case(name: "malformed address (port too big)", yaml: base.replacingOccurrences(of: "239.0.0.1:5000", with: "239.0.0.1:70000"),
                 key: "sessions[0].destination", value: "239.0.0.1:70000"),
            Case(name: "malformed IPv6", yaml: base.replacingOccurrences(of: "239.0.0.1:5000", with: "[ff0e::zz]:5000"),
                 key: "sessions[0].destination", value: "[ff0e::zz]:5000"),
            Case(name: "unknown cipher", yaml: base.replacingOccurrences(of: "aes-256-cm", with: "aes-512-cm"),
                 key: "sessions[1].protection.cipher", value: "aes-512-cm"),
            Case(name: "tag length vs auth", yaml: base.replacingOccurrences(of: "{ cipher: aes-256-cm }", with: "{ auth: hmac-sha1-80, srtpTagLength: 14 }"),
                 key: "sessions[1].protection.srtpTagLength", value: "14"),
            Case(name: "flute without TSI", yaml: base.replacingOccurrences(of: "kind: rtp, destination: \"239.0.0.1:5002\"", with: "kind: flute, destination: \"239.0.0.1:5002\""),
                 key: "sessions[1].tsi", value: nil),
            Case(name: "RTP option on flute", yaml: base + "\n  - { name: f, kind: flute, destination: \"239.0.0.9:1\", tsi: 1, keyGroup: 9, protection: { auth: rccm1 } }\n",
                 key: "sessions[2].protection.auth", value: nil),
            Case(name: "bad MCC", yaml: base.replacingOccurrences(of: "mcc: \"001\"", with: "mcc: \"01\""), key: "keyDomain.mcc", value: "01"),
            Case(name: "MIKEY port", yaml: base.replacingOccurrences(of: "239.0.0.1:5000", with: "239.0.0.1:2269"),
                 key: "sessions[0].destination", value: "239.0.0.1:2269"),
        ]
        for c in cases {
            XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: c.yaml, fileName: "bad.yaml"), c.name) { error in
                guard let e = error as? ConfigurationError else { return XCTFail("\(c.name): \(error)") }
                let line = e.description
                XCTAssertEqual(e.key, c.key, "\(c.name): \(line)")
                XCTAssertFalse(line.contains("\n"), "\(c.name): not one line: \(line)")
                XCTAssertTrue(line.hasPrefix("bad.yaml"), "\(c.name): \(line)")
                XCTAssertTrue(line.contains(c.key), "\(c.name): \(line)")
                if let v = c.value { XCTAssertTrue(line.contains("\"\(v)\""), "\(c.name): value missing: \(line)") }
                XCTAssertTrue(line.contains("fix: "), "\(c.name): \(line)")
            }
        }
    }

    func testErrorLineCarriesYAMLLineNumber() throws {
        let yaml = Fixtures.yaml().replacingOccurrences(of: "keyGroup: 1 }", with: "keyGroup: 0 }")
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: yaml, fileName: "g.yaml")) { error in
            // The sessions[0] line is line 9 of the fixture.
            XCTAssertEqual((error as? ConfigurationError)?.line, 9, "\(error)")
        }
    }

    func testDurationsAndDefaults() throws {
        let c = try Fixtures.configuration(mtkPeriod: "1m", lead: "0", mskPeriod: "1h")
        XCTAssertEqual(c.schedule.mtkPeriod, 60)
        XCTAssertEqual(c.schedule.announceLead, 0)
        XCTAssertEqual(c.schedule.mskPeriod, 3600)
        let p = c.sessions[0].protection
        XCTAssertEqual(p.cipher, .aes128CM)
        XCTAssertEqual(p.authentication, .rccm1)
        XCTAssertEqual(p.rocRate, 1)
        XCTAssertEqual(p.srtpTagLength, 14)
    }

    func testMissingFileIsOneLineError() {
        XCTAssertThrowsError(try GatewayConfiguration.load(path: "/nonexistent/g.yaml")) { e in
            XCTAssertTrue("\(e)".hasPrefix("/nonexistent/g.yaml"), "\(e)")
        }
    }
}

/// Issue 19 finding 9: configuration gaps an operator hit.
final class ConfigurationGapTests: XCTestCase {
    func testOutputToTheMIKEYPortIsRefused() {
        for output in ["239.9.9.9:2269", "239.9.9.9:2268"] {   // RTP on 2269, or RTCP (port + 1) on it
            let yaml = Fixtures.yaml().replacingOccurrences(of: "destination: \"239.0.0.1:5000\", keyGroup: 1",
                                                            with: "destination: \"239.0.0.1:5000\", output: \"\(output)\", keyGroup: 1")
            XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: yaml, fileName: "t.yaml"), output) { e in
                XCTAssertTrue("\(e)".contains("sessions[0].output") && "\(e)".contains("port 2269"), "\(e)")
            }
        }
    }

    func testAHugeValueIsNotEchoedAndAHugeFileIsNotRead() throws {
        let huge = String(repeating: "x", count: 5_000_000)
        let yaml = Fixtures.yaml().replacingOccurrences(of: "bmscFQDN: bmsc.example.org", with: "bmscFQDN: \"\(huge)\"")
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: yaml, fileName: "t.yaml")) { e in
            XCTAssertLessThan("\(e)".count, 600, "the error echoes the whole value")
            XCTAssertTrue("\(e)".contains("(5000000 bytes)"), "\(e)")
        }
        let dir = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("big.yaml").path
        try yaml.write(toFile: path, atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try GatewayConfiguration.load(path: path)) { e in
            XCTAssertTrue("\(e)".contains("a configuration is at most 1048576"), "\(e)")
        }
    }

    func testAListWhereAValueBelongsIsNamed() {
        let yaml = Fixtures.yaml(mtkPeriod: "[1, 2]")
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: yaml, fileName: "t.yaml")) { e in
            XCTAssertTrue("\(e)".contains("schedule.mtk.period = \"(a list)\""), "\(e)")
        }
    }

    func testYAMLMergeKeysApply() throws {
        let yaml = Fixtures.yaml().replacingOccurrences(of: "sessions:\n", with: "") .replacingOccurrences(
            of: "  - { name: a, kind: rtp, destination: \"239.0.0.1:5000\", keyGroup: 1 }\n  - { name: b, kind: rtp, destination: \"239.0.0.1:5002\", keyGroup: 2, protection: { cipher: aes-256-cm } }",
            with: """
            defaults: &video { kind: rtp, protection: { cipher: aes-256-cm, auth: rccm2, rocRate: 8 } }
            sessions:
              - { <<: *video, name: a, destination: "239.0.0.1:5000", keyGroup: 1 }
              - { <<: *video, name: b, destination: "239.0.0.1:5002", keyGroup: 2, kind: rtp }
            """)
        // `defaults` itself is not a key of the file: only the merged entries count.
        XCTAssertThrowsError(try GatewayConfiguration.parse(yaml: yaml, fileName: "t.yaml")) { XCTAssertTrue("\($0)".contains("defaults: unknown key"), "\($0)") }
        let ok = yaml.replacingOccurrences(of: "defaults: &video { kind: rtp, protection: { cipher: aes-256-cm, auth: rccm2, rocRate: 8 } }\n", with: "")
            .replacingOccurrences(of: "  - { <<: *video, name: a,", with: "  - { <<: &video { kind: rtp, protection: { cipher: aes-256-cm, auth: rccm2, rocRate: 8 } }, name: a,")
        let c = try GatewayConfiguration.parse(yaml: ok, fileName: "t.yaml")
        XCTAssertEqual(c.sessions.map(\.protection.cipher), [.aes256CM, .aes256CM])
        XCTAssertEqual(c.sessions.map(\.protection.rocRate), [8, 8])
    }
}
