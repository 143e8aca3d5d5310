import CryptoCore
import TestSupport
import XCTest
@testable import KeyServer

final class DigestTests: XCTestCase {
    // MARK: Published and worked vectors

    /// RFC 2617 §3.5 (qop=auth): the published response 6629fae49393a05397450978507c4ef1.
    func testRFC2617Section35Example() {
        let v = KeyServerVectors.rfc2617
        let ha1 = DigestComputation.ha1(.md5, username: v.string("username"), realm: v.string("realm"), password: Array(v.string("password").utf8))
        XCTAssertEqual(ha1, v.string("HA1"))
        let ha2 = DigestComputation.ha2(.md5, method: v.string("method"), uri: v.string("uri"), qop: v.string("qop"), body: [])
        XCTAssertEqual(ha2, v.string("HA2"))
        let response = DigestComputation.response(.md5, ha1: ha1, nonce: v.string("nonce"), nc: v.string("nc"), cnonce: v.string("cnonce"), qop: v.string("qop"), ha2: ha2)
        XCTAssertEqual(response, v.string("response"))
        XCTAssertEqual(response, "6629fae49393a05397450978507c4ef1")
    }

    /// `keyserver.md` §3.4 (qop=auth-int, MD5): request digest, rspauth, both headers byte for byte.
    func testAuthIntWorkedExample() throws {
        let v = KeyServerVectors.digest
        let body = Array(v.string("request_body_utf8").utf8)
        XCTAssertEqual(body.count, 159)
        XCTAssertEqual(DigestAlgorithm.md5.hex(body), v.string("H_request_body"))
        let password = Array(v.string("password").utf8)
        let ha1 = DigestComputation.ha1(.md5, username: v.string("username"), realm: v.string("realm"), password: password)
        XCTAssertEqual(ha1, v.string("HA1"))
        let ha2 = DigestComputation.ha2(.md5, method: "POST", uri: v.string("digest_uri"), qop: "auth-int", body: body)
        XCTAssertEqual(ha2, v.string("HA2"))
        XCTAssertEqual(DigestComputation.response(.md5, ha1: ha1, nonce: v.string("nonce"), nc: v.string("nc"), cnonce: v.string("cnonce"), qop: "auth-int", ha2: ha2),
                       v.string("response"))

        // The header as a UE sends it parses and verifies under the policy.
        let c = try DigestCredentials.parse(v.string("authorization_header"))
        XCTAssertEqual(c.username, v.string("username"))
        XCTAssertEqual(c.nc, 1)
        XCTAssertEqual(c.opaque, Fixture.opaque)
        let policy = DigestPolicy(bmscFQDN: Fixture.fqdn, opaque: Fixture.opaque)
        let algorithm = try policy.checkParameters(c, requestTarget: v.string("digest_uri"))
        XCTAssertEqual(algorithm, .md5)
        let wrong = Array("pkPZHVdIK2xBTnNdQRDBPMtyCjOA3lqZoJLGuXT9OMx=".utf8)
        let matched = try policy.verifyResponse(c, algorithm: .md5, method: "POST", body: body, passwords: [wrong, password])
        XCTAssertEqual(matched.index, 1)
        XCTAssertEqual(matched.ha1, v.string("HA1"))

        // rspauth over the 190-byte response body (RFC 2617 3.2.3).
        let responseBody = Array(v.string("response_body_utf8").utf8)
        XCTAssertEqual(responseBody.count, 190)
        XCTAssertEqual(DigestAlgorithm.md5.hex(responseBody), v.string("H_response_body"))
        XCTAssertEqual(DigestComputation.ha2(.md5, method: "", uri: v.string("digest_uri"), qop: "auth-int", body: responseBody), v.string("HA2_rspauth"))
        XCTAssertEqual(DigestPolicy.authenticationInfo(algorithm: .md5, ha1: matched.ha1, credentials: c, responseBody: responseBody),
                       v.string("authentication_info_header"))
    }

    func testChallengeHeader() {
        let policy = DigestPolicy(bmscFQDN: Fixture.fqdn, opaque: Fixture.opaque)
        // `keyserver.md` §6, byte for byte.
        XCTAssertEqual(policy.challenges(nonce: "a1b2c3d4e5f60718293a4b5c6d7e8f90", stale: false).map(\.headerValue),
                       ["Digest realm=\"3GPP-bootstrapping@bmsc.home1.net\", nonce=\"a1b2c3d4e5f60718293a4b5c6d7e8f90\", algorithm=MD5, qop=\"auth-int\", opaque=\"5ccc069c403ebaf9f0171e9517f30e41\""])
        let both = DigestPolicy(bmscFQDN: Fixture.fqdn, algorithms: [.sha256, .md5])
        XCTAssertEqual(both.challenges(nonce: "n", stale: true).map(\.headerValue),
                       ["Digest realm=\"3GPP-bootstrapping@bmsc.home1.net\", nonce=\"n\", algorithm=SHA-256, qop=\"auth-int\", stale=true",
                        "Digest realm=\"3GPP-bootstrapping@bmsc.home1.net\", nonce=\"n\", algorithm=MD5, qop=\"auth-int\", stale=true"])
    }

    func testPolicyRefusals() throws {
        let v = KeyServerVectors.digest
        let header = v.string("authorization_header")
        let policy = DigestPolicy(bmscFQDN: Fixture.fqdn, opaque: Fixture.opaque)
        let uri = v.string("digest_uri")
        func check(_ h: String, target: String? = nil) -> DigestVerificationFailure? {
            do {
                _ = try policy.checkParameters(try DigestCredentials.parse(h), requestTarget: target ?? uri)
                return nil
            } catch let e as DigestVerificationFailure { return e } catch { XCTFail("\(error)"); return nil }
        }
        XCTAssertNil(check(header))
        XCTAssertEqual(check(header, target: "/keymanagement?requesttype=register"), .uriMismatch(uri))
        XCTAssertEqual(check(header.replacingOccurrences(of: "qop=auth-int", with: "qop=auth")), .qopNotAuthInt("auth"))
        XCTAssertEqual(check(header.replacingOccurrences(of: "@bmsc.home1.net\"", with: "@evil.example\"")), .realmMismatch("3GPP-bootstrapping@evil.example"))
        XCTAssertEqual(check(header.replacingOccurrences(of: "3GPP-bootstrapping@", with: "")), .realmMismatch("bmsc.home1.net"))
        XCTAssertEqual(check(header.replacingOccurrences(of: "algorithm=MD5", with: "algorithm=MD5-sess")), .unsupportedAlgorithm("MD5-sess"))
        XCTAssertEqual(check(header.replacingOccurrences(of: "algorithm=MD5", with: "algorithm=SHA-256")), .unsupportedAlgorithm("SHA-256"))
        XCTAssertEqual(check(header.replacingOccurrences(of: Fixture.opaque, with: "00")), .opaqueMismatch)
        // Realm host compared case-insensitively.
        XCTAssertNil(check(header.replacingOccurrences(of: "@bmsc.home1.net\"", with: "@BMSC.Home1.NET\"")))
    }

    func testSHA256RoundTrip() throws {
        let policy = DigestPolicy(bmscFQDN: Fixture.fqdn, algorithms: [.sha256, .md5])
        var client = DigestClient(username: Fixture.btid, password: Array("secret".utf8))
        client.algorithm = .sha256
        client.opaque = nil
        let body = Array("<x/>".utf8)
        let c = try DigestCredentials.parse(client.authorization(uri: "/keymanagement?requesttype=register", body: body, nonce: "abc", nc: 7))
        let algorithm = try policy.checkParameters(c, requestTarget: "/keymanagement?requesttype=register")
        XCTAssertEqual(algorithm, .sha256)
        XCTAssertEqual(c.response.utf8.count, 64)
        XCTAssertEqual(try policy.verifyResponse(c, algorithm: algorithm, method: "POST", body: body, passwords: [Array("secret".utf8)]).index, 0)
        XCTAssertThrowsError(try policy.verifyResponse(c, algorithm: algorithm, method: "POST", body: body + [0x20], passwords: [Array("secret".utf8)])) {
            XCTAssertEqual($0 as? DigestVerificationFailure, .responseMismatch)
        }
    }

    // MARK: Header parser: tolerant forms

    func testParserToleratesQuotingCaseAndSpacing() throws {
        let h = #"DIGEST  USERNAME = "a, b" ,Realm=3GPP-bootstrapping@x ,, nonce="n\"q", uri="/k?requesttype=register",qop="auth-int", NC=0000000a, cnonce=c1, response="ABCDEF", extension="ignored""#
        let c = try DigestCredentials.parse(h)
        XCTAssertEqual(c.username, "a, b")
        XCTAssertEqual(c.realm, "3GPP-bootstrapping@x")
        XCTAssertEqual(c.nonce, "n\"q")
        XCTAssertEqual(c.uri, "/k?requesttype=register")
        XCTAssertEqual(c.qop, "auth-int")
        XCTAssertEqual(c.nc, 10)
        XCTAssertEqual(c.ncText, "0000000a")
        XCTAssertEqual(c.cnonce, "c1")
        XCTAssertEqual(c.response, "ABCDEF")
        XCTAssertEqual(c.parameters.last?.name, "extension")
    }

    // MARK: Header parser: hostile inputs (typed errors, never a crash)

    func testParserHostileInputs() {
        func error(_ h: String) -> DigestParseError? {
            do { _ = try DigestCredentials.parse(h); return nil } catch { return error }
        }
        let full = KeyServerVectors.digest.string("authorization_header")
        XCTAssertNil(error(full))
        XCTAssertEqual(error(#"Digest username="abc, realm=r"#), .unterminatedQuotedString(offset: 16))
        XCTAssertEqual(error(#"Digest username="abc, realm="r""#), .malformed(offset: 29, rule: "expected ',' between parameters, RFC 7235 2.1"))
        XCTAssertEqual(error(#"Digest username="abc\"#), .unterminatedQuotedString(offset: 16))
        let huge = "Digest username=\"" + String(repeating: "A", count: 100_000) + "\""
        XCTAssertEqual(error(huge), .tooLong(length: huge.utf8.count, limit: DigestCredentials.maximumLength))
        XCTAssertEqual(error(full + ", Username=\"x\""), .duplicateParameter("username", offset: full.utf8.count + 2))
        XCTAssertEqual(error(full.replacingOccurrences(of: "response=\"1b230cf79aaaf64cd8d86aa03d457da6\", ", with: "")), .missingParameter("response"))
        XCTAssertEqual(error(full.replacingOccurrences(of: "cnonce=\"0a4f113b\", ", with: "")), .missingParameter("cnonce"))
        let shortNC = full.replacingOccurrences(of: "nc=00000001", with: "nc=1")
        let ncOffset = shortNC.utf8.count - shortNC.components(separatedBy: ", nc=1")[1].utf8.count - 4
        XCTAssertEqual(error(shortNC), .invalidParameter("nc", offset: ncOffset, rule: "nc-value = 8LHEX, RFC 2617 3.2.2"))
        XCTAssertEqual(error(full.replacingOccurrences(of: "nc=00000001", with: "nc=0000000g")), .invalidParameter("nc", offset: ncOffset, rule: "nc-value = 8LHEX, RFC 2617 3.2.2"))
        XCTAssertEqual(error("Basic dXNlcjpwYXNz"), .notDigest(offset: 0))
        XCTAssertEqual(error(""), .notDigest(offset: 0))
        XCTAssertEqual(error("Digest"), .malformed(offset: 6, rule: "scheme and parameters separated by white space, RFC 7235 2.1"))
        XCTAssertEqual(error("Digest ="), .malformed(offset: 7, rule: "expected a parameter name (token), RFC 7235 2.1"))
        XCTAssertEqual(error("Digest username"), .malformed(offset: 15, rule: "expected '=' after username, RFC 7235 2.1"))
        XCTAssertEqual(error("Digest username="), .malformed(offset: 16, rule: "expected a token or quoted string for username, RFC 7235 2.1"))
        XCTAssertEqual(error("Digest a=b c=d"), .malformed(offset: 11, rule: "expected ',' between parameters, RFC 7235 2.1"))
        XCTAssertEqual(error("Digest a=\"x\ny\""), .malformed(offset: 11, rule: "control character in quoted string, RFC 7230 3.2.6"))
        let many = "Digest " + (0..<40).map { "p\($0)=v" }.joined(separator: ",")
        XCTAssertEqual(error(many), .tooManyParameters(limit: DigestCredentials.maximumParameters))
        XCTAssertEqual(error("Digest username=\"é\u{0}\""), .malformed(offset: 19, rule: "control character in quoted string, RFC 7230 3.2.6"))
    }

    /// Random mutations of a valid header: every outcome is a value or a typed error.
    func testParserMutationCampaign() {
        var rng = SplitMix64.seeded("testParserMutationCampaign")
        let base = Array(KeyServerVectors.digest.string("authorization_header").utf8)
        let alphabet = Array("\"\\,= \t\r\nabcAZ09@/:;%\u{7f}".utf8) + [0x00, 0xC3, 0xFF]
        var parsed = 0
        for _ in 0..<5_000 {
            var b = base
            for _ in 0..<Int.random(in: 1...6, using: &rng) {
                let at = Int.random(in: 0..<b.count, using: &rng)
                switch Int.random(in: 0..<4, using: &rng) {
                case 0: b[at] = alphabet.randomElement(using: &rng) ?? 0
                case 1: b.remove(at: at)
                case 2: b.insert(alphabet.randomElement(using: &rng) ?? 0, at: at)
                default: b = Array(b[..<at])
                }
                if b.isEmpty { b = [0x22] }
            }
            if (try? DigestCredentials.parse(String(decoding: b, as: UTF8.self))) != nil { parsed += 1 }
        }
        XCTAssertLessThan(parsed, 5_000)
    }
}
