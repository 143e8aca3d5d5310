#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import MIKEY

// Key groups are MIKEY.KeyGroupReference (Key Domain ID + Key Group, TS 33.246 6.3.1): one
// definition of each spec identifier in the package (DESIGN.md §3).

/// Who may register to a user service.
public enum RegistrationAdmission: Sendable, Equatable {
    /// Every authenticated subscriber.
    case everyone
    /// Subscribers whose IMPI matches one of the patterns (`*` any run, `?` one character;
    /// exact, case-sensitive otherwise), or who hold an SCF grant for the service.
    case impiPatterns([String])
    /// Only subscribers holding an SCF `authorize` grant for the service (IMS-based MBMS).
    case grantsOnly

    func admits(impi: String) -> Bool {
        switch self {
        case .everyone: return true
        case let .impiPatterns(patterns): return patterns.contains { globMatches($0, impi) }
        case .grantsOnly: return false
        }
    }
}

/// One MBMS User Service as the key server sees it: its service ID (USD `serviceId`) and the
/// key groups whose MSKs protect it.
public struct UserServiceConfiguration: Sendable, Equatable {
    public var serviceID: String
    public var keyGroups: [KeyGroupReference]
    public var admission: RegistrationAdmission
    /// The service requires key management in the UICC (`keyserver.md` K1): a GBA_U UE whose
    /// Digest verified with the ME-case MRK is refused (per-item 403).
    public var requiresUICCKeyManagement: Bool

    public init(serviceID: String, keyGroups: [KeyGroupReference], admission: RegistrationAdmission = .everyone, requiresUICCKeyManagement: Bool = false) {
        self.serviceID = serviceID; self.keyGroups = keyGroups; self.admission = admission
        self.requiresUICCKeyManagement = requiresUICCKeyManagement
    }
}

/// Everything the request state machine needs to know (a plain struct; the YAML schema maps
/// onto it later).
public struct KeyServerConfiguration: Sendable, Equatable {
    /// The BM-SC FQDN: Digest realm host and NAF FQDN (`keyserver.md` §2.1).
    public var bmscFQDN: String
    /// Ua security protocol identifier in NAF_Id (K10; default TS 33.246 MBMS).
    public var uaSecurityProtocolID: UaSecurityProtocolID
    public var digestAlgorithms: [DigestAlgorithm]
    /// Opaque sent in challenges and required back; nil: none.
    public var digestOpaque: String?
    public var services: [UserServiceConfiguration]
    /// Addresses of the SCFs allowed to send `authorize` (K9), textual IP addresses.
    public var scfPeers: Set<String>
    /// Retry-After on 503 (seconds).
    public var retryAfterSeconds: Int
    /// The Request-URI path (TS 33.246 Annex G).
    public var path: String
    public var maximumBodyBytes: Int
    /// Random octets per Digest nonce.
    public var nonceBytes: Int
    public var vocabulary: KeyServerVocabulary

    public init(bmscFQDN: String, uaSecurityProtocolID: UaSecurityProtocolID = .mbms, digestAlgorithms: [DigestAlgorithm] = [.md5],
                digestOpaque: String? = nil, services: [UserServiceConfiguration] = [], scfPeers: Set<String> = [],
                retryAfterSeconds: Int = 5, path: String = "/keymanagement", maximumBodyBytes: Int = KeyServerModule.maximumBodyBytes,
                nonceBytes: Int = 16, vocabulary: KeyServerVocabulary = .init()) {
        self.bmscFQDN = bmscFQDN; self.uaSecurityProtocolID = uaSecurityProtocolID; self.digestAlgorithms = digestAlgorithms
        self.digestOpaque = digestOpaque; self.services = services; self.scfPeers = Set(scfPeers.map(normalizedAddress))
        self.retryAfterSeconds = retryAfterSeconds; self.path = path; self.maximumBodyBytes = maximumBodyBytes
        self.nonceBytes = max(8, nonceBytes); self.vocabulary = vocabulary
    }

    public var digestPolicy: DigestPolicy { DigestPolicy(bmscFQDN: bmscFQDN, algorithms: digestAlgorithms, opaque: digestOpaque) }
    public var nafID: [UInt8] { GBAKeyDerivation.nafID(fqdn: bmscFQDN, ua: uaSecurityProtocolID) }

    public func service(_ id: String) -> UserServiceConfiguration? { services.first { $0.serviceID == id } }

    /// Every key group of every configured service.
    public var allKeyGroups: Set<KeyGroupReference> { Set(services.flatMap(\.keyGroups)) }
    public var keyDomains: Set<KeyDomainID> { Set(services.flatMap { $0.keyGroups.map(\.keyDomainID) }) }

    public func keyGroups(ofServices ids: some Sequence<String>) -> Set<KeyGroupReference> {
        var out: Set<KeyGroupReference> = []
        for id in ids { if let s = service(id) { out.formUnion(s.keyGroups) } }
        return out
    }
}

/// `*` matches any run, `?` one character (IMPI admission patterns).
func globMatches(_ pattern: String, _ text: String) -> Bool {
    let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
    var pi = 0, ti = 0
    var star = -1, mark = 0
    while ti < t.count {
        if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
            pi += 1; ti += 1
        } else if pi < p.count, p[pi] == "*" {
            star = pi; mark = ti; pi += 1
        } else if star >= 0 {
            pi = star + 1; mark += 1; ti = mark
        } else {
            return false
        }
    }
    while pi < p.count, p[pi] == "*" { pi += 1 }
    return pi == p.count
}

/// A textual IP address in canonical form (inet_ntop of inet_pton; IPv4-mapped IPv6 → IPv4),
/// or nil when `text` is not an IP address.
public func canonicalIPAddress(_ text: String) -> String? {
    var s = text.trimmingCharacters(in: .whitespaces)
    if s.hasPrefix("["), s.hasSuffix("]") { s = String(s.dropFirst().dropLast()) }
    var v4 = in_addr()
    if inet_pton(AF_INET, s, &v4) == 1 {
        return ntop(AF_INET, &v4, Int(INET_ADDRSTRLEN))
    }
    var v6 = in6_addr()
    if inet_pton(AF_INET6, s, &v6) == 1 {
        let bytes = withUnsafeBytes(of: &v6) { Array($0) }
        if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            return bytes[12..<16].map(String.init).joined(separator: ".")
        }
        return ntop(AF_INET6, &v6, Int(INET6_ADDRSTRLEN))
    }
    return nil
}

private func ntop<T>(_ family: Int32, _ addr: inout T, _ length: Int) -> String? {
    var buffer = [CChar](repeating: 0, count: length + 1)
    let ok = withUnsafePointer(to: &addr) { p in inet_ntop(family, p, &buffer, socklen_t(length)) } != nil
    guard ok else { return nil }
    return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

/// An address as compared against configuration: canonical when it parses, else as given.
func normalizedAddress(_ text: String) -> String { canonicalIPAddress(text) ?? text }

/// `X-3GPP-Asserted-Identity` / `X-3GPP-Intended-Identity` value (K14): the first of a
/// comma-separated list, surrounding quotes and angle brackets removed; nil when empty.
func identityHeaderValue(_ raw: String?) -> String? {
    guard let raw else { return nil }
    var first = Substring(raw)
    if !first.hasPrefix("\""), let comma = first.firstIndex(of: ",") { first = first[..<comma] }
    var s = first.trimmingCharacters(in: .whitespaces)
    if s.hasPrefix("\"") {
        s.removeFirst()
        if let close = s.firstIndex(of: "\"") { s = String(s[..<close]) }
    }
    s = s.trimmingCharacters(in: .whitespaces)
    if s.hasPrefix("<"), s.hasSuffix(">") { s = String(s.dropFirst().dropLast()) }
    return s.isEmpty ? nil : s
}
