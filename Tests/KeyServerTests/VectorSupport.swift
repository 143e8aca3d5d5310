import CryptoCore
import Foundation
import MIKEY
import XCTest
@testable import KeyServer

/// `Vectors/keyserver.json` (a copy of `../shared/spec/vectors/keyserver.json`).
enum KeyServerVectors {
    /// Section → its string-valued fields (numbers and booleans dropped).
    static let json: [String: [String: String]] = {
        guard let url = Bundle.module.url(forResource: "keyserver", withExtension: "json", subdirectory: "Vectors"),
              let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
        var out: [String: [String: String]] = [:]
        for (name, value) in object {
            guard let section = value as? [String: Any] else { continue }
            out[name] = section.compactMapValues { $0 as? String }
        }
        return out
    }()

    static func section(_ name: String) -> [String: String] { json[name] ?? [:] }
    static var rfc2617: [String: String] { section("rfc2617_section_3_5_example") }
    static var gba: [String: String] { section("gba_kdf_and_mrk") }
    static var digest: [String: String] { section("digest_auth_int_msk_request") }
}

extension Dictionary where Key == String, Value == String {
    func string(_ key: String, file: StaticString = #filePath, line: UInt = #line) -> String {
        guard let s = self[key] else {
            XCTFail("vector field \(key) missing", file: file, line: line)
            return ""
        }
        return s
    }
    func hex(_ key: String, file: StaticString = #filePath, line: UInt = #line) -> [UInt8] {
        (try? Hex.decode(string(key, file: file, line: line))) ?? []
    }
}

/// The §3.4 worked example's subscriber and BM-SC as fixtures.
enum Fixture {
    static let fqdn = "bmsc.home1.net"
    static let btid = "I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net"
    static let impi = "001010123456789@ims.mnc001.mcc001.3gppnetwork.org"
    static let opaque = "5ccc069c403ebaf9f0171e9517f30e41"
    static let t0 = Date(timeIntervalSince1970: 1_767_225_600) // 2026-01-01T00:00:00Z
    static let keyDomain = KeyDomainID(mcc: "001", mnc: "01")!
    static let news = "urn:3gpp:mbms:service:news"
    static let sport = "urn:3gpp:mbms:service:sport"
    static let restricted = "urn:3gpp:mbms:service:restricted"
    static let ims = "urn:3gpp:mbms:service:ims"
    static let scf = "192.0.2.10"
    static let ueAddress = "10.45.0.7"

    static func session(_ type: GBAType = .gbaME, expiry: Date = t0.addingTimeInterval(86_400)) -> InMemoryBootstrapping.Session {
        let g = KeyServerVectors.gba
        return .init(ks: SecretBytes(g.hex("Ks")), rand: g.hex("RAND"), impi: g.string("IMPI"), gbaType: type, keyExpiry: expiry)
    }

    static func configuration(opaque: String? = Fixture.opaque, algorithms: [DigestAlgorithm] = [.md5]) -> KeyServerConfiguration {
        KeyServerConfiguration(
            bmscFQDN: fqdn, digestAlgorithms: algorithms, digestOpaque: opaque,
            services: [
                UserServiceConfiguration(serviceID: news, keyGroups: [KeyGroupReference(keyDomainID: keyDomain, keyGroup: 1)]),
                UserServiceConfiguration(serviceID: sport, keyGroups: [KeyGroupReference(keyDomainID: keyDomain, keyGroup: 2),
                                                                       KeyGroupReference(keyDomainID: keyDomain, keyGroup: 3)]),
                UserServiceConfiguration(serviceID: restricted, keyGroups: [KeyGroupReference(keyDomainID: keyDomain, keyGroup: 4)],
                                         admission: .impiPatterns(["*@ims.mnc002.mcc002.3gppnetwork.org"])),
                UserServiceConfiguration(serviceID: ims, keyGroups: [KeyGroupReference(keyDomainID: keyDomain, keyGroup: 5)],
                                         admission: .grantsOnly),
            ],
            scfPeers: [scf])
    }
}

/// A UE's Digest client side (RFC 2617 3.2.2), for driving the handler.
struct DigestClient {
    var username: String
    var password: [UInt8]
    var realm = "3GPP-bootstrapping@" + Fixture.fqdn
    var cnonce = "0a4f113b"
    var opaque: String? = Fixture.opaque
    var algorithm: DigestAlgorithm = .md5
    var qop = "auth-int"

    func authorization(method: String = "POST", uri: String, body: [UInt8], nonce: String, nc: UInt32) -> String {
        let ncText = String(format: "%08x", nc)
        let ha1 = DigestComputation.ha1(algorithm, username: username, realm: realm, password: password)
        let ha2 = DigestComputation.ha2(algorithm, method: method, uri: uri, qop: qop, body: body)
        let response = DigestComputation.response(algorithm, ha1: ha1, nonce: nonce, nc: ncText, cnonce: cnonce, qop: qop, ha2: ha2)
        var h = "Digest username=\"\(username)\", realm=\"\(realm)\", nonce=\"\(nonce)\", uri=\"\(uri)\", qop=\(qop), nc=\(ncText), cnonce=\"\(cnonce)\", response=\"\(response)\""
        if let opaque { h += ", opaque=\"\(opaque)\"" }
        h += ", algorithm=\(algorithm.rawValue)"
        return h
    }

    /// The nonce of the first challenge in a 401 response.
    static func nonce(from response: KeyServerResponse) -> String? {
        guard let h = response.headers["WWW-Authenticate"], let params = try? DigestCredentials.parseParameters(h) else { return nil }
        return params.first { $0.name == "nonce" }?.value
    }
}

func xmlBody(_ s: String) -> [UInt8] { Array(s.utf8) }

func registerBody(_ ids: [String], root: String = "mbmsRegister") -> [UInt8] {
    var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<\(root) xmlns=\"urn:3GPP:metadata:2005:MBMS:\(root)\">\n"
    for id in ids { s += " <serviceId>\(id)</serviceId>\n" }
    s += "</\(root)>\n"
    return Array(s.utf8)
}

func mskBody(_ pairs: [(String, String)]) -> [UInt8] {
    var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<mskRequest xmlns=\"urn:3GPP:metadata:2005:MBMS:mskRequest\">\n"
    for (kd, msk) in pairs { s += " <key keyDomainID=\"\(kd)\" mskID=\"\(msk)\"/>\n" }
    s += "</mskRequest>\n"
    return Array(s.utf8)
}
