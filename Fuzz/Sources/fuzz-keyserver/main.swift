// Fuzz target 7 (issue 19 finding 12): the key server's request path without I/O — the Digest
// Authorization header parser, the XML request bodies (register, deregister, msk-request,
// authorize) and `KeyRequestHandler` itself (routing, Digest checks with nonces, GBA keys,
// body handling), driven with an in-memory state and BSF.
//
// Input: one mode octet (low 2 bits):
//   0: the rest is an Authorization header value;
//   1: the rest is a request body for every body parser;
//   2, 3: an HTTP request [method chunk][target chunk][header lines chunk][source octet][body]
//      to the handler; with 3 the harness first asks for a challenge and signs the request with
//      the test subscriber's password (unless the input brings its own Authorization), so
//      mutations get past Digest into the request types — then replays it once.
import CryptoCore
import Foundation
import FuzzSupport
import KeyServer
import MIKEY

// The worked example of ../shared/spec/keyserver.md (vectors/keyserver.json gba_kdf_and_mrk).
let fqdn = "bmsc.home1.net"
let btid = "I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net"
let password = Array("pkPZHVdIK2xBTnNdQRDBPMtyCjOA3lqZoJLGuXT9OMw=".utf8)
let realm = "3GPP-bootstrapping@" + fqdn
let opaque = "5ccc069c403ebaf9f0171e9517f30e41"
let t0 = Date(timeIntervalSince1970: 1_767_225_600)
let domain = KeyDomainID(bytes: [0x00, 0xF1, 0x10])!
let scf = "192.0.2.10", ueAddress = "10.45.0.7"

let configuration = KeyServerConfiguration(
    bmscFQDN: fqdn, digestAlgorithms: [.md5, .sha256], digestOpaque: opaque,
    services: [
        UserServiceConfiguration(serviceID: "urn:3gpp:mbms:service:news", keyGroups: [KeyGroupReference(keyDomainID: domain, keyGroup: 1)]),
        UserServiceConfiguration(serviceID: "urn:3gpp:mbms:service:sport", keyGroups: [KeyGroupReference(keyDomainID: domain, keyGroup: 2),
                                                                                        KeyGroupReference(keyDomainID: domain, keyGroup: 3)]),
        UserServiceConfiguration(serviceID: "urn:3gpp:mbms:service:restricted", keyGroups: [KeyGroupReference(keyDomainID: domain, keyGroup: 4)],
                                 admission: .impiPatterns(["*@ims.mnc001.mcc001.3gppnetwork.org"])),
        UserServiceConfiguration(serviceID: "urn:3gpp:mbms:service:ims", keyGroups: [KeyGroupReference(keyDomainID: domain, keyGroup: 5)],
                                 admission: .grantsOnly, requiresUICCKeyManagement: true),
    ],
    scfPeers: [scf])
let bsf = InMemoryBootstrapping(sessions: [
    btid: .init(ks: SecretBytes(hexBytes("b40ba9a3c58b2a05bbf0d987b21bf8cbf769bcd751044604127672711c6d3441")),
                rand: hexBytes("23553cbe9637a89d218ae64dae47bf35"), impi: "001010123456789@ims.mnc001.mcc001.3gppnetwork.org",
                gbaType: .gbaME, keyExpiry: t0.addingTimeInterval(86_400)),
])

/// Deterministic nonces (SplitMix64), so a crash reproduces.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func authorization(method: String, uri: String, body: [UInt8], nonce: String, nc: UInt32, algorithm: DigestAlgorithm) -> String {
    let ncText = String(format: "%08x", nc)
    let qop = "auth-int", cnonce = "0a4f113b"
    let ha1 = DigestComputation.ha1(algorithm, username: btid, realm: realm, password: password)
    let ha2 = DigestComputation.ha2(algorithm, method: method, uri: uri, qop: qop, body: body)
    let response = DigestComputation.response(algorithm, ha1: ha1, nonce: nonce, nc: ncText, cnonce: cnonce, qop: qop, ha2: ha2)
    return "Digest username=\"\(btid)\", realm=\"\(realm)\", nonce=\"\(nonce)\", uri=\"\(uri)\", qop=\(qop), nc=\(ncText), cnonce=\"\(cnonce)\", response=\"\(response)\", opaque=\"\(opaque)\", algorithm=\(algorithm.rawValue)"
}

func headerFields(_ text: String) -> HTTPHeaderFields {
    var h = HTTPHeaderFields()
    for line in text.split(separator: "\n", omittingEmptySubsequences: true).prefix(32) {
        guard let colon = line.firstIndex(of: ":") else { continue }
        h.add(String(line[..<colon]), String(line[line.index(after: colon)...].drop { $0 == " " }))
    }
    return h
}

func fuzzOne(_ input: [UInt8]) {
    var r = FuzzReader(input)
    let mode = r.byte() & 3
    switch mode {
    case 0:
        let text = String(decoding: r.rest(), as: UTF8.self)
        _ = try? DigestCredentials.parseParameters(text)
        if let c = try? DigestCredentials.parse(text) {
            _ = try? configuration.digestPolicy.checkParameters(c, requestTarget: "/keymanagement?requesttype=msk-request")
        }
    case 1:
        let body = r.rest()
        _ = try? KeyRequestBodies.serviceIDs(from: body)
        _ = try? KeyRequestBodies.mskItems(from: body)
        _ = try? KeyRequestBodies.authorize(from: body)
        if body.count < 64 {
            let s = String(decoding: body, as: UTF8.self)
            _ = KeyRequestBodies.decodeID(s, octets: 3)
            _ = KeyRequestBodies.decodeID(s, octets: 4)
        }
    default:
        let method = String(decoding: r.chunk(), as: UTF8.self)
        let target = String(decoding: r.chunk(), as: UTF8.self)
        var headers = headerFields(String(decoding: r.chunk(), as: UTF8.self))
        let sourceOctet = r.byte()
        let source = sourceOctet & 1 != 0 ? scf : ueAddress
        let body = r.rest()
        let state = InMemoryKeyServerState(nonces: .init(lifetime: 300, staleMemory: 300, maximumOutstanding: 64))
        let handler = KeyRequestHandler(configuration: configuration, bootstrapping: bsf, state: state)
        var rng = SplitMix64(state: 1)
        if mode == 3, headers["Authorization"] == nil {
            // A challenge first (any request type), then the signed request, then a replay.
            let first = handler.handleAndApply(KeyServerRequest(method: "POST", target: "/keymanagement?requesttype=register", body: [],
                                                                sourceAddress: source, now: t0), random: &rng)
            guard let h = first.response.headers["WWW-Authenticate"], let params = try? DigestCredentials.parseParameters(h),
                  let nonce = params.first(where: { $0.name == "nonce" })?.value else {
                FuzzMain.fail("no Digest challenge to an unauthenticated request (status \(first.response.status))")
            }
            headers.add("Authorization", authorization(method: method, uri: target, body: body, nonce: nonce, nc: 1,
                                                       algorithm: sourceOctet & 2 != 0 ? .sha256 : .md5))
        }
        let request = KeyServerRequest(method: method, target: target, headers: headers, body: body, sourceAddress: source,
                                       now: t0.addingTimeInterval(Double(sourceOctet >> 2)))
        _ = handler.handleAndApply(request, random: &rng)
        if mode == 3 { _ = handler.handleAndApply(request, random: &rng) }
    }
}

// MARK: - Seeds

func makeSeeds(_ w: SeedWriter) throws {
    let v = try SeedWriter.json("keyserver.json")
    let d = (v["digest_auth_int_msk_request"] as? [String: Any]) ?? [:]
    if let h = d["authorization_header"] as? String {
        try w.write("vector-authorization", [0] + Array(h.utf8))
    }
    let body = (d["request_body_utf8"] as? String).map { Array($0.utf8) } ?? []
    try w.write("vector-msk-request-body", [1] + body)
    let register = Array("""
    <?xml version="1.0" encoding="UTF-8"?>
    <mbmsRegister xmlns="urn:3GPP:metadata:2005:MBMS:mbmsRegister">
     <serviceId>urn:3gpp:mbms:service:news</serviceId>
     <serviceId>urn:3gpp:mbms:service:sport</serviceId>
    </mbmsRegister>

    """.utf8)
    let authorize = Array("""
    <?xml version="1.0" encoding="UTF-8"?>
    <mbmsAuthorize xmlns="urn:3GPP:metadata:2005:MBMS:mbmsAuthorize">
     <impu>sip:user@ims.example.org</impu>
     <ueAddress>10.45.0.7</ueAddress>
     <serviceId>urn:3gpp:mbms:service:ims</serviceId>
    </mbmsAuthorize>

    """.utf8)
    try w.write("register-body", [1] + register)
    try w.write("authorize-body", [1] + authorize)
    func request(_ mode: UInt8, _ type: String, _ body: [UInt8], headers: String = "Content-Type: application/mbms-register+xml\n", source: UInt8 = 0) -> [UInt8] {
        var b = FuzzInputBuilder()
        b.byte(mode)
        b.chunk(Array("POST".utf8))
        b.chunk(Array("/keymanagement?requesttype=\(type)".utf8))
        b.chunk(Array(headers.utf8))
        b.byte(source)
        b.raw(body)
        return b.bytes
    }
    try w.write("signed-register", request(3, "register", register))
    try w.write("signed-msk-request", request(3, "msk-request", body, headers: "Content-Type: application/mbms-msk+xml\n"))
    try w.write("signed-deregister", request(3, "deregister", Array(String(decoding: register, as: UTF8.self)
        .replacingOccurrences(of: "mbmsRegister", with: "mbmsDeregister").utf8), headers: "Content-Type: application/mbms-deregister+xml\n"))
    try w.write("authorize-from-scf", request(2, "authorize", authorize, headers: "Content-Type: application/mbms-authorize+xml\n", source: 1))
    if let h = d["authorization_header"] as? String {
        try w.write("vector-request", request(2, "msk-request", body, headers: "Authorization: \(h)\n"))
    }
}

// libFuzzer's entry point; `FuzzMain.run` hands it to the driver (or, where the toolchain links
// libFuzzer's own main, that main calls it directly).
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    fuzzOne(FuzzMain.bytes(data, size))
    return 0
}
FuzzMain.run(LLVMFuzzerTestOneInput, makeSeeds: makeSeeds)
