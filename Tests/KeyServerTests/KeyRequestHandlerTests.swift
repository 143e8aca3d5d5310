import CryptoCore
import Foundation
import MIKEY
import TestSupport
import XCTest
@testable import KeyServer

/// A BSF that never answers in time.
struct SilentBSF: Bootstrapping {
    func answer(btid: String, nafID: [UInt8]) throws(BootstrappingError) -> BootstrappingAnswer? { throw .timeout }
}

/// A UE driving the handler: gets a challenge once, then reuses the nonce with increasing nc.
struct TestUE {
    var client: DigestClient
    var address = Fixture.ueAddress
    var nonce: String?
    var nc: UInt32 = 0

    init(btid: String = Fixture.btid, password: String = KeyServerVectors.gba.string("MRK_base64_password")) {
        client = DigestClient(username: btid, password: Array(password.utf8))
    }

    static func target(_ type: String) -> String { "/keymanagement?requesttype=\(type)" }

    mutating func post<R: RandomNumberGenerator>(_ handler: KeyRequestHandler, _ type: String, body: [UInt8], headers extra: HTTPHeaderFields = [:],
                                                 now: Date = Fixture.t0, random: inout R) -> KeyServerOutcome {
        let target = Self.target(type)
        if nonce == nil {
            let first = handler.handleAndApply(KeyServerRequest(method: "POST", target: target, headers: extra, body: body, sourceAddress: address, now: now), random: &random)
            guard first.response.status == 401, let n = DigestClient.nonce(from: first.response) else { return first }
            nonce = n
        }
        nc += 1
        var headers = extra
        headers.add("Authorization", client.authorization(uri: target, body: body, nonce: nonce ?? "", nc: nc))
        return handler.handleAndApply(KeyServerRequest(method: "POST", target: target, headers: headers, body: body, sourceAddress: address, now: now), random: &random)
    }
}

final class KeyRequestHandlerTests: XCTestCase {
    func makeHandler(_ type: GBAType = .gbaME, configuration: KeyServerConfiguration = Fixture.configuration(),
                     bsf: (any Bootstrapping)? = nil) -> (KeyRequestHandler, InMemoryKeyServerState) {
        let state = InMemoryKeyServerState(nonces: .init(lifetime: 300, staleMemory: 300, maximumOutstanding: 1_000))
        let bootstrapping = bsf ?? InMemoryBootstrapping(sessions: [Fixture.btid: Fixture.session(type)])
        return (KeyRequestHandler(configuration: configuration, bootstrapping: bootstrapping, state: state), state)
    }

    func itemCodes(_ body: [UInt8]) -> [Int] {
        String(decoding: body, as: UTF8.self).components(separatedBy: "<status code=\"").dropFirst().compactMap { Int($0.prefix(3)) }
    }

    // MARK: The §6 exchange byte for byte

    func testWorkedExampleExchange() throws {
        var rng = SplitMix64.seeded("testWorkedExampleExchange")
        let (handler, state) = makeHandler()
        let v = KeyServerVectors.digest
        let body = Array(v.string("request_body_utf8").utf8)
        let target = v.string("digest_uri")
        try state.apply([.register(impi: Fixture.impi, btid: Fixture.btid, ueAddress: Fixture.ueAddress, serviceIDs: [Fixture.news], at: Fixture.t0)])

        // No credentials: 401 with the GBA challenge.
        let first = handler.handleAndApply(KeyServerRequest(method: "POST", target: target, headers: ["User-Agent": "MBMSAgent; Release-6 3gpp-gba"],
                                                            body: body, sourceAddress: Fixture.ueAddress, now: Fixture.t0), random: &rng)
        XCTAssertEqual(first.response.status, 401)
        XCTAssertTrue(first.effects.isEmpty)
        let challenge = try XCTUnwrap(first.response.headers["WWW-Authenticate"])
        XCTAssertTrue(challenge.hasPrefix("Digest realm=\"3GPP-bootstrapping@bmsc.home1.net\", nonce=\""), challenge)
        XCTAssertTrue(challenge.hasSuffix("\", algorithm=MD5, qop=\"auth-int\", opaque=\"5ccc069c403ebaf9f0171e9517f30e41\""), challenge)
        XCTAssertEqual(DigestClient.nonce(from: first.response)?.utf8.count, 32)

        // The vector's nonce, as if we had issued it: the vector's Authorization verifies.
        try state.storeNonce(v.string("nonce"), issuedAt: Fixture.t0)
        let second = handler.handleAndApply(KeyServerRequest(method: "POST", target: target, headers: ["Authorization": v.string("authorization_header")],
                                                             body: body, sourceAddress: Fixture.ueAddress, now: Fixture.t0.addingTimeInterval(1)), random: &rng)
        XCTAssertEqual(second.response.status, 200, second.reason)
        XCTAssertEqual(second.response.body, Array(v.string("response_body_utf8").utf8))
        XCTAssertEqual(second.response.headers["Content-Type"], "application/mbms-msk-response+xml")
        XCTAssertEqual(second.response.headers["Authentication-Info"], v.string("authentication_info_header"))
        let group1 = KeyGroupReference(keyDomainID: Fixture.keyDomain, keyGroup: 1)
        let ksNAF = SecretBytes(KeyServerVectors.gba.hex("Ks_NAF"))
        XCTAssertEqual(second.effects, [
            .storeUserKey(UserKeyRecord(btid: Fixture.btid, impi: Fixture.impi, location: .me, muk: ksNAF, expiry: Fixture.t0.addingTimeInterval(86_400))),
            .deliverMSK(MSKDelivery(impi: Fixture.impi, btid: Fixture.btid, ueAddress: Fixture.ueAddress, keyGroup: group1, keyNumber: 0, reason: .mskRequest)),
        ])
        XCTAssertEqual(state.deliveries.count, 1)
        XCTAssertFalse(second.reason.contains("pkPZ"), "no password in the log reason")

        // The same request again (same nonce and nc): a replay, refused with a fresh stale challenge.
        let replay = handler.handleAndApply(KeyServerRequest(method: "POST", target: target, headers: ["Authorization": v.string("authorization_header")],
                                                             body: body, sourceAddress: Fixture.ueAddress, now: Fixture.t0.addingTimeInterval(2)), random: &rng)
        XCTAssertEqual(replay.response.status, 401)
        XCTAssertTrue(replay.effects.isEmpty)
        XCTAssertTrue(replay.response.headers["WWW-Authenticate"]?.hasSuffix(", stale=true") ?? false)
        XCTAssertNotEqual(DigestClient.nonce(from: replay.response), v.string("nonce"))
        XCTAssertEqual(state.deliveries.count, 1)
    }

    // MARK: register → msk-request → deregister

    func testRegisterMSKRequestDeregister() throws {
        var rng = SplitMix64.seeded("testRegisterMSKRequestDeregister")
        let (handler, state) = makeHandler()
        var ue = TestUE()
        let reg = ue.post(handler, "register", body: registerBody([Fixture.news, "urn:unknown", Fixture.restricted, Fixture.news]), random: &rng)
        XCTAssertEqual(reg.response.status, 200, reg.reason)
        XCTAssertEqual(reg.response.headers["Content-Type"], "application/mbms-register-response+xml")
        XCTAssertNotNil(reg.response.headers["Authentication-Info"])
        XCTAssertEqual(String(decoding: reg.response.body, as: UTF8.self), """
            <?xml version="1.0" encoding="UTF-8"?>
            <mbmsRegisterResponse xmlns="urn:3GPP:metadata:2005:MBMS:mbmsRegisterResponse">
             <status code="200"><serviceId>urn:3gpp:mbms:service:news</serviceId></status>
             <status code="404"><serviceId>urn:unknown</serviceId></status>
             <status code="403"><serviceId>urn:3gpp:mbms:service:restricted</serviceId></status>
            </mbmsRegisterResponse>

            """)
        XCTAssertEqual(state.registrations[Fixture.impi]?.serviceIDs, [Fixture.news])
        XCTAssertEqual(state.registrations[Fixture.impi]?.ueAddress, Fixture.ueAddress)
        let g = { KeyGroupReference(keyDomainID: Fixture.keyDomain, keyGroup: $0) }
        XCTAssertEqual(state.deliveries, [MSKDelivery(impi: Fixture.impi, btid: Fixture.btid, ueAddress: Fixture.ueAddress, keyGroup: g(1), keyNumber: 0, reason: .registration)])

        // msk-request: registered group 200 (hex and decimal forms), not-registered 403, unknown group/domain 404, garbage / group 0 → 400.
        let msk = ue.post(handler, "msk-request", body: mskBody([
            ("00F110", "00010000"), ("0x00f110", "65538"), ("00F110", "00020000"), ("00F110", "00090000"),
            ("02F220", "00010000"), ("zz", "00010000"), ("00F110", "00000005"),
        ]), random: &rng)
        XCTAssertEqual(msk.response.status, 200, msk.reason)
        XCTAssertEqual(itemCodes(msk.response.body), [200, 200, 403, 404, 404, 400, 400])
        XCTAssertTrue(String(decoding: msk.response.body, as: UTF8.self).contains("<key keyDomainID=\"0x00f110\" mskID=\"65538\"/>"), "echoed as sent")
        XCTAssertEqual(Array(state.deliveries.dropFirst()), [
            MSKDelivery(impi: Fixture.impi, btid: Fixture.btid, ueAddress: Fixture.ueAddress, keyGroup: g(1), keyNumber: 0, reason: .mskRequest),
            MSKDelivery(impi: Fixture.impi, btid: Fixture.btid, ueAddress: Fixture.ueAddress, keyGroup: g(1), keyNumber: 2, reason: .mskRequest),
        ])

        // Register sport too (from a new address), then deregister it: groups 2 and 3 invalidated.
        ue.address = "10.45.0.8"
        let reg2 = ue.post(handler, "register", body: registerBody([Fixture.sport]), random: &rng)
        XCTAssertEqual(itemCodes(reg2.response.body), [200])
        XCTAssertEqual(state.registrations[Fixture.impi]?.serviceIDs, [Fixture.news, Fixture.sport])
        XCTAssertEqual(state.registrations[Fixture.impi]?.ueAddress, "10.45.0.8")
        let dereg = ue.post(handler, "deregister", body: registerBody([Fixture.sport, "urn:unknown"], root: "mbmsDeregister"), random: &rng)
        XCTAssertEqual(dereg.response.status, 200, dereg.reason)
        XCTAssertEqual(itemCodes(dereg.response.body), [200, 404])
        XCTAssertEqual(state.registrations[Fixture.impi]?.serviceIDs, [Fixture.news])
        XCTAssertEqual(state.invalidations, [MSKInvalidation(impi: Fixture.impi, btid: Fixture.btid, ueAddress: "10.45.0.8", keyGroups: [g(2), g(3)])])
        // msk-request for the deregistered group is now 403.
        let after = ue.post(handler, "msk-request", body: mskBody([("00F110", "00020000")]), random: &rng)
        XCTAssertEqual(itemCodes(after.response.body), [403])
        // Deregistering the last service removes the registration.
        _ = ue.post(handler, "deregister", body: registerBody([Fixture.news], root: "mbmsDeregister"), random: &rng)
        XCTAssertNil(state.registrations[Fixture.impi])
    }

    // MARK: Digest refusals through the handler

    func testNonceReplayHigherNCAndExpiry() {
        var rng = SplitMix64.seeded("testNonceReplayHigherNCAndExpiry")
        let (handler, _) = makeHandler()
        var ue = TestUE()
        XCTAssertEqual(ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng).response.status, 200)
        // Replay of nc 1 under the same nonce.
        ue.nc = 0
        let replay = ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng)
        XCTAssertEqual(replay.response.status, 401)
        XCTAssertTrue(replay.response.headers["WWW-Authenticate"]?.contains("stale=true") ?? false)
        // A higher nc under the same nonce: accepted.
        ue.nc = 5
        XCTAssertEqual(ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng).response.status, 200)
        // Past the nonce lifetime (300 s): stale=true with a fresh nonce; the new nonce works.
        let late = ue.post(handler, "register", body: registerBody([Fixture.news]), now: Fixture.t0.addingTimeInterval(301), random: &rng)
        XCTAssertEqual(late.response.status, 401)
        XCTAssertTrue(late.response.headers["WWW-Authenticate"]?.hasSuffix("stale=true") ?? false)
        ue.nonce = DigestClient.nonce(from: late.response)
        ue.nc = 0
        XCTAssertEqual(ue.post(handler, "register", body: registerBody([Fixture.news]), now: Fixture.t0.addingTimeInterval(302), random: &rng).response.status, 200)
    }

    func testWrongURIQopAuthPasswordNonceAndBTID() {
        var rng = SplitMix64.seeded("testWrongURIQopAuthPasswordNonceAndBTID")
        let (handler, state) = makeHandler()
        var ue = TestUE()
        _ = ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng) // obtains a nonce
        let nonce = ue.nonce ?? ""
        let body = registerBody([Fixture.news])
        let target = TestUE.target("register")
        func send(_ authorization: String, target: String = target, now: Date = Fixture.t0) -> KeyServerOutcome {
            handler.handleAndApply(KeyServerRequest(method: "POST", target: target, headers: ["Authorization": authorization], body: body,
                                                    sourceAddress: Fixture.ueAddress, now: now), random: &rng)
        }
        func assertRefused(_ o: KeyServerOutcome, _ contains: String, stale: Bool = false, line: UInt = #line) {
            XCTAssertEqual(o.response.status, 401, line: line)
            XCTAssertTrue(o.effects.isEmpty, line: line)
            XCTAssertTrue(o.reason.contains(contains), o.reason, line: line)
            XCTAssertEqual(o.response.headers["WWW-Authenticate"]?.contains("stale=true"), stale, line: line)
            XCTAssertNotEqual(DigestClient.nonce(from: o.response), nonce, "fresh nonce", line: line)
        }
        // uri differs from the request-target.
        assertRefused(send(ue.client.authorization(uri: TestUE.target("msk-request"), body: body, nonce: nonce, nc: 10)), "uri")
        // qop=auth (no body integrity) refused.
        var authOnly = ue.client
        authOnly.qop = "auth"
        assertRefused(send(authOnly.authorization(uri: target, body: body, nonce: nonce, nc: 11)), "qop")
        // Wrong password.
        var wrong = ue.client
        wrong.password = Array("pkPZHVdIK2xBTnNdQRDBPMtyCjOA3lqZoJLGuXT9OMx=".utf8)
        assertRefused(send(wrong.authorization(uri: target, body: body, nonce: nonce, nc: 12)), "does not verify")
        // Body changed after signing (auth-int).
        let signedOther = ue.client.authorization(uri: target, body: registerBody([Fixture.sport]), nonce: nonce, nc: 13)
        assertRefused(send(signedOther), "does not verify")
        // A nonce we never issued.
        assertRefused(send(ue.client.authorization(uri: target, body: body, nonce: "00112233445566778899aabbccddeeff", nc: 1)), "nonce not issued")
        // Malformed header.
        assertRefused(send("Digest username=\"unterminated"), "Authorization")
        // Unknown B-TID: bootstrapping required.
        var stranger = TestUE(btid: "AAAAAAAAAAAAAAAAAAAAAA==@bsf.home1.net")
        stranger.nonce = nonce
        assertRefused(send(stranger.client.authorization(uri: target, body: body, nonce: nonce, nc: 14)), "bootstrapping required")
        // None of these burned an nc or registered anything: nc 10 still works.
        XCTAssertEqual(send(ue.client.authorization(uri: target, body: body, nonce: nonce, nc: 10)).response.status, 200)
        XCTAssertEqual(state.registrations.count, 1)
    }

    func testExpiredGBAKeysNeedBootstrapping() {
        var rng = SplitMix64.seeded("testExpiredGBAKeysNeedBootstrapping")
        let state = InMemoryKeyServerState()
        let bsf = InMemoryBootstrapping(sessions: [Fixture.btid: Fixture.session(.gbaME, expiry: Fixture.t0.addingTimeInterval(10))])
        let handler = KeyRequestHandler(configuration: Fixture.configuration(), bootstrapping: bsf, state: state)
        var ue = TestUE()
        XCTAssertEqual(ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng).response.status, 200)
        let o = ue.post(handler, "register", body: registerBody([Fixture.news]), now: Fixture.t0.addingTimeInterval(11), random: &rng)
        XCTAssertEqual(o.response.status, 401)
        XCTAssertTrue(o.reason.contains("bootstrapping required"), o.reason)
    }

    // MARK: GBA_U (K1)

    func testGBAUTriesBothMRKCandidates() throws {
        var rng = SplitMix64.seeded("testGBAUTriesBothMRKCandidates")
        var configuration = Fixture.configuration()
        configuration.services.append(UserServiceConfiguration(serviceID: "urn:uicc-only", keyGroups: [KeyGroupReference(keyDomainID: Fixture.keyDomain, keyGroup: 9)],
                                                               requiresUICCKeyManagement: true))
        // UICC key management: MRK = Ks_ext_NAF (no Annex F step), MUK = Ks_int_NAF.
        let (handler, state) = makeHandler(.gbaU, configuration: configuration)
        let ksExt = KeyServerVectors.gba.hex("Ks_NAF")
        var uicc = TestUE(password: String(decoding: Data(ksExt).base64EncodedData(), as: UTF8.self))
        let o = uicc.post(handler, "register", body: registerBody([Fixture.news, "urn:uicc-only"]), random: &rng)
        XCTAssertEqual(itemCodes(o.response.body), [200, 200], o.reason)
        guard case let .storeUserKey(record)? = o.effects.first else { return XCTFail("no key record") }
        XCTAssertEqual(record.location, .uicc)
        XCTAssertEqual(Hex.encode(record.muk.revealedBytes()), KeyServerVectors.gba.string("Ks_int_NAF"))
        XCTAssertEqual(try state.userKey(btid: Fixture.btid)?.location, .uicc)
        // The cached outcome is used next time; no new key record.
        let again = uicc.post(handler, "register", body: registerBody([Fixture.news]), random: &rng)
        XCTAssertEqual(again.response.status, 200)
        XCTAssertFalse(again.effects.contains { if case .storeUserKey = $0 { return true } else { return false } })

        // ME key management on a GBA_U subscriber: MRK = KDF(Ks_ext_NAF, "mbms-mrk"); refused for UICC-only services.
        let (handler2, _) = makeHandler(.gbaU, configuration: configuration)
        var me = TestUE()
        let o2 = me.post(handler2, "register", body: registerBody([Fixture.news, "urn:uicc-only"]), random: &rng)
        XCTAssertEqual(itemCodes(o2.response.body), [200, 403], o2.reason)
        guard case let .storeUserKey(record2)? = o2.effects.first else { return XCTFail("no key record") }
        XCTAssertEqual(record2.location, .me)
        XCTAssertEqual(Hex.encode(record2.muk.revealedBytes()), KeyServerVectors.gba.string("Ks_NAF"))
    }

    // MARK: Request line and bodies

    func testMethodPathAndRequestType() {
        var rng = SplitMix64.seeded("testMethodPathAndRequestType")
        let (handler, _) = makeHandler()
        func status(_ method: String, _ target: String) -> KeyServerResponse {
            handler.handleAndApply(KeyServerRequest(method: method, target: target, body: registerBody([Fixture.news]), sourceAddress: Fixture.ueAddress, now: Fixture.t0),
                                   random: &rng).response
        }
        let get = status("GET", "/keymanagement?requesttype=register")
        XCTAssertEqual(get.status, 405)
        XCTAssertEqual(get.headers["Allow"], "POST")
        XCTAssertEqual(status("PUT", "/keymanagement?requesttype=register").status, 405)
        XCTAssertEqual(status("POST", "/other?requesttype=register").status, 404)
        XCTAssertEqual(status("POST", "/keymanagement").status, 404)
        XCTAssertEqual(status("POST", "/keymanagement?requesttype=").status, 404)
        XCTAssertEqual(status("POST", "/keymanagement?requesttype=re%gister").status, 404)
        XCTAssertEqual(status("POST", "/keymanagement?foo=bar").status, 404)
        XCTAssertEqual(status("POST", "/keymanagement?requesttype=msk-delete").status, 501)
        // Tolerated spellings reach authentication (401).
        XCTAssertEqual(status("POST", "/keymanagement?requesttype=%20register").status, 401)
        XCTAssertEqual(status("POST", "/keymanagement?x=1&requesttype=register&y=2").status, 401)
        XCTAssertEqual(status("POST", "http://bmsc.home1.net:1234/keymanagement?requesttype=msk-request").status, 401)
        // Body bound.
        let big = handler.handleAndApply(KeyServerRequest(method: "POST", target: "/keymanagement?requesttype=register",
                                                          body: [UInt8](repeating: 0x20, count: KeyServerModule.maximumBodyBytes + 1),
                                                          sourceAddress: Fixture.ueAddress, now: Fixture.t0), random: &rng)
        XCTAssertEqual(big.response.status, 400)
    }

    func testMalformedAndHostileXML() {
        var rng = SplitMix64.seeded("testMalformedAndHostileXML")
        let (handler, state) = makeHandler()
        var ue = TestUE()
        let cases: [(String, String)] = [
            ("register", "<mbmsRegister><serviceId>urn:x</mbmsRegister>"),
            ("register", "not xml at all"),
            ("register", ""),
            ("register", "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;\">]><mbmsRegister><serviceId>&b;</serviceId></mbmsRegister>"),
            ("register", "<!DOCTYPE r SYSTEM \"file:///etc/passwd\"><mbmsRegister/>"),
            ("register", "<mbmsRegister><serviceId>&xxe;</serviceId></mbmsRegister>"),
            ("register", "<mbmsRegister xmlns=\"urn:x\"></mbmsRegister>"),
            ("msk-request", "<mskRequest><key keyDomainID=\"00F110\"/></mskRequest>"),
            ("msk-request", "<mskRequest><key keyDomainID=\"00F110\" keyDomainID=\"00F110\" mskID=\"1\"/></mskRequest>"),
            ("deregister", String(repeating: "<a>", count: 100) + String(repeating: "</a>", count: 100)),
        ]
        for (type, xml) in cases {
            let o = ue.post(handler, type, body: Array(xml.utf8), random: &rng)
            XCTAssertEqual(o.response.status, 400, "\(type): \(xml.prefix(40)) → \(o.reason)")
            // At most the MUK cache of the (successfully authenticated) B-TID; no registration or delivery.
            XCTAssertFalse(o.effects.contains { if case .storeUserKey = $0 { return false } else { return true } }, o.reason)
            XCTAssertNotNil(o.response.headers["Authentication-Info"], "authenticated 400 still carries rspauth")
        }
        XCTAssertTrue(state.registrations.isEmpty)

        // Tolerant vocabulary (§5.2): other element names, attributes, prefixes, child elements.
        let tolerant = """
            <?xml version="1.0"?><!-- a UE's own shape -->
            <r:registration xmlns:r="urn:3GPP:other"><r:userServiceID> \(Fixture.news) </r:userServiceID><svc serviceId="\(Fixture.sport)"/></r:registration>
            """
        XCTAssertEqual(itemCodes(ue.post(handler, "register", body: Array(tolerant.utf8), random: &rng).response.body), [200, 200])
        let children = "<m><item><KeyDomain>APEQ</KeyDomain><MSKID>AAEAAA==</MSKID></item></m>"
        let o = ue.post(handler, "msk-request", body: Array(children.utf8), random: &rng)
        XCTAssertEqual(itemCodes(o.response.body), [200], o.reason)
        XCTAssertTrue(String(decoding: o.response.body, as: UTF8.self).contains("keyDomainID=\"APEQ\" mskID=\"AAEAAA==\""))
    }

    func testIDDecodingOrder() {
        // §5.2 rule 3: hex first (001010 is hex), then base64, then decimal.
        XCTAssertEqual(KeyRequestBodies.decodeID("001010", octets: 3), [0x00, 0x10, 0x10])
        XCTAssertEqual(KeyRequestBodies.decodeID("0x00F110", octets: 3), [0x00, 0xF1, 0x10])
        XCTAssertEqual(KeyRequestBodies.decodeID("APEQ", octets: 3), [0x00, 0xF1, 0x10])
        XCTAssertEqual(KeyRequestBodies.decodeID("AAEAAA==", octets: 4), [0x00, 0x01, 0x00, 0x00])
        XCTAssertEqual(KeyRequestBodies.decodeID("65536", octets: 4), [0x00, 0x01, 0x00, 0x00])
        XCTAssertEqual(KeyRequestBodies.decodeID("16777216", octets: 3), nil)
        XCTAssertEqual(KeyRequestBodies.decodeID("4294967296", octets: 4), nil)
        XCTAssertEqual(KeyRequestBodies.decodeID("0x", octets: 3), nil)
        XCTAssertEqual(KeyRequestBodies.decodeID("", octets: 4), nil)
        XCTAssertEqual(KeyRequestBodies.decodeID("-1", octets: 4), nil)
    }

    // MARK: authorize (SCF) and IMS registrations

    func testAuthorizeFromSCFAndIntendedIdentity() {
        var rng = SplitMix64.seeded("testAuthorizeFromSCFAndIntendedIdentity")
        let (handler, state) = makeHandler()
        let body = Array("""
            <mbmsAuthorize xmlns="urn:3GPP:metadata:2005:MBMS:mbmsAuthorize">
             <serviceId>\(Fixture.ims)</serviceId>
             <ueIPAddress>\(Fixture.ueAddress)</ueIPAddress>
            </mbmsAuthorize>
            """.utf8)
        func authorize(from source: String, identity: String?, body: [UInt8] = body) -> KeyServerOutcome {
            var headers: HTTPHeaderFields = ["Content-Type": "application/mbms-authorize+xml"]
            if let identity { headers.add("X-3GPP-Asserted-Identity", identity) }
            return handler.handleAndApply(KeyServerRequest(method: "POST", target: "/keymanagement?requesttype=authorize", headers: headers, body: body,
                                                           sourceAddress: source, now: Fixture.t0), random: &rng)
        }
        // Not an SCF peer: refused, nothing stored.
        XCTAssertEqual(authorize(from: "198.51.100.1", identity: "\"sip:user@home1.net\"").response.status, 403)
        XCTAssertEqual(authorize(from: Fixture.ueAddress, identity: "\"sip:user@home1.net\"").response.status, 403)
        XCTAssertEqual(authorize(from: Fixture.scf, identity: nil).response.status, 403)
        XCTAssertTrue(state.grants.isEmpty)
        XCTAssertEqual(authorize(from: Fixture.scf, identity: "sip:user@home1.net", body: Array("<a><serviceId>urn:nope</serviceId><ueIPAddress>10.0.0.1</ueIPAddress></a>".utf8)).response.status, 403)
        XCTAssertEqual(authorize(from: Fixture.scf, identity: "sip:user@home1.net", body: Array("<a><serviceId>\(Fixture.ims)</serviceId></a>".utf8)).response.status, 400)
        XCTAssertEqual(authorize(from: Fixture.scf, identity: "sip:user@home1.net", body: Array("<a><serviceId>\(Fixture.ims)</serviceId><ueIPAddress>10.0.0.999</ueIPAddress></a>".utf8)).response.status, 400)
        XCTAssertEqual(authorize(from: Fixture.scf, identity: "sip:user@home1.net", body: Array("<!DOCTYPE a><a/>".utf8)).response.status, 400)

        // The UE without an SCF grant: 403 for the grants-only service.
        var ue = TestUE()
        let intended: HTTPHeaderFields = ["X-3GPP-Intended-Identity": "\"sip:user@home1.net\""]
        XCTAssertEqual(itemCodes(ue.post(handler, "register", body: registerBody([Fixture.ims]), headers: intended, random: &rng).response.body), [403])

        // From the SCF (IPv4-mapped form of its address) with the asserted identity: 200, empty body, grant stored.
        let ok = authorize(from: "::ffff:" + Fixture.scf, identity: "\"sip:user@home1.net\"")
        XCTAssertEqual(ok.response.status, 200, ok.reason)
        XCTAssertTrue(ok.response.body.isEmpty)
        XCTAssertEqual(state.grants["sip:user@home1.net"]?.serviceIDs, [Fixture.ims])
        XCTAssertEqual(state.grants["sip:user@home1.net"]?.ueAddress, Fixture.ueAddress)

        // Without the Intended-Identity header, or from another address: still 403; with both: 200.
        XCTAssertEqual(itemCodes(ue.post(handler, "register", body: registerBody([Fixture.ims]), random: &rng).response.body), [403])
        ue.address = "10.45.0.99"
        XCTAssertEqual(itemCodes(ue.post(handler, "register", body: registerBody([Fixture.ims]), headers: intended, random: &rng).response.body), [403])
        ue.address = Fixture.ueAddress
        let reg = ue.post(handler, "register", body: registerBody([Fixture.ims]), headers: intended, random: &rng)
        XCTAssertEqual(itemCodes(reg.response.body), [200], reg.reason)
        XCTAssertEqual(state.registrations[Fixture.impi]?.serviceIDs, [Fixture.ims])
    }

    // MARK: Store and BSF failures

    func testStoreFailureIs503AndZnTimeoutIs504() {
        var rng = SplitMix64.seeded("testStoreFailureIs503AndZnTimeoutIs504")
        let (handler, state) = makeHandler()
        var ue = TestUE()
        XCTAssertEqual(ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng).response.status, 200)
        state.failure = KeyServerStateUnavailable("disk gone")
        let o = ue.post(handler, "msk-request", body: mskBody([("00F110", "00010000")]), random: &rng)
        XCTAssertEqual(o.response.status, 503)
        XCTAssertEqual(o.response.headers["Retry-After"], "5")
        // A challenge that cannot be stored is a 503 too.
        let fresh = handler.handleAndApply(KeyServerRequest(method: "POST", target: TestUE.target("register"), body: registerBody([Fixture.news]),
                                                            sourceAddress: Fixture.ueAddress, now: Fixture.t0), random: &rng)
        XCTAssertEqual(fresh.response.status, 503)
        state.failure = nil
        XCTAssertEqual(ue.post(handler, "msk-request", body: mskBody([("00F110", "00010000")]), random: &rng).response.status, 200)

        let (silent, _) = makeHandler(bsf: SilentBSF())
        var ue2 = TestUE()
        XCTAssertEqual(ue2.post(silent, "register", body: registerBody([Fixture.news]), random: &rng).response.status, 504)
    }

    func testSHA256Offered() {
        var rng = SplitMix64.seeded("testSHA256Offered")
        let (handler, _) = makeHandler(configuration: Fixture.configuration(opaque: nil, algorithms: [.sha256, .md5]))
        let first = handler.handleAndApply(KeyServerRequest(method: "POST", target: TestUE.target("register"), body: registerBody([Fixture.news]),
                                                            sourceAddress: Fixture.ueAddress, now: Fixture.t0), random: &rng)
        XCTAssertEqual(first.response.headers.values("WWW-Authenticate").count, 2)
        var ue = TestUE()
        ue.client.opaque = nil
        ue.client.algorithm = .sha256
        ue.nonce = DigestClient.nonce(from: first.response)
        let o = ue.post(handler, "register", body: registerBody([Fixture.news]), random: &rng)
        XCTAssertEqual(o.response.status, 200, o.reason)
        XCTAssertEqual(o.response.headers["Authentication-Info"]?.contains("rspauth=\""), true)
    }

    func testIdentityHeaderAndGlob() {
        XCTAssertEqual(identityHeaderValue("\"sip:user@home1.net\""), "sip:user@home1.net")
        XCTAssertEqual(identityHeaderValue(" <sip:user@home1.net>, tel:+123"), "sip:user@home1.net")
        XCTAssertEqual(identityHeaderValue("\"sip:a,b@x\""), "sip:a,b@x")
        XCTAssertNil(identityHeaderValue("  "))
        XCTAssertNil(identityHeaderValue("\"\""))
        XCTAssertTrue(globMatches("*@ims.mnc001.mcc001.3gppnetwork.org", Fixture.impi))
        XCTAssertTrue(globMatches("00101012345678?@*", Fixture.impi))
        XCTAssertFalse(globMatches("*@ims.mnc002.*", Fixture.impi))
        XCTAssertFalse(globMatches("", Fixture.impi))
        XCTAssertEqual(canonicalIPAddress("::ffff:192.0.2.10"), "192.0.2.10")
        XCTAssertEqual(canonicalIPAddress("[2001:DB8::1]"), "2001:db8::1")
        XCTAssertNil(canonicalIPAddress("bmsc.home1.net"))
    }
}
