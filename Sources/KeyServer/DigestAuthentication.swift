import CryptoCore

/// Digest hash algorithms (RFC 2617 3.2.1; RFC 7616 3.2 for SHA-256). The `-sess` variants are
/// not part of the GBA profile (`keyserver.md` §3.1) and are refused.
public enum DigestAlgorithm: String, Sendable, Hashable, CaseIterable {
    case md5 = "MD5"
    case sha256 = "SHA-256"

    /// Case-insensitive; nil for anything unsupported (MD5-sess, SHA-512-256, …).
    public init?(token: String) {
        switch token.uppercased() {
        case "MD5": self = .md5
        case "SHA-256": self = .sha256
        default: return nil
        }
    }

    /// H(data) as lower-case hex (RFC 2617 3.2.1 / RFC 7616 3.4.1).
    public func hex(_ data: [UInt8]) -> String {
        switch self {
        case .md5: return Hex.encode(MD5.hash(data))
        case .sha256: return Hex.encode(SHA256.hash(data))
        }
    }

    func hex(_ text: String) -> String { hex(Array(text.utf8)) }
}

/// The RFC 2617 3.2.2 computations (qop=auth-int and qop=auth). Inputs other than the password
/// are public protocol values; HA1 depends on the password and is treated as secret.
public enum DigestComputation {
    /// HA1 = H(username ":" realm ":" password) (RFC 2617 3.2.2.2, algorithm without -sess).
    public static func ha1(_ algorithm: DigestAlgorithm, username: String, realm: String, password: [UInt8]) -> String {
        var a1 = Array("\(username):\(realm):".utf8) + password
        defer { SecureZero.zero(&a1) }
        return algorithm.hex(a1)
    }

    /// HA2 = H(method ":" digest-uri [":" H(entity-body)]) (RFC 2617 3.2.2.3): the body hash
    /// only for qop=auth-int. `method` is empty for rspauth (RFC 2617 3.2.3).
    public static func ha2(_ algorithm: DigestAlgorithm, method: String, uri: String, qop: String?, body: [UInt8]) -> String {
        if qop?.lowercased() == "auth-int" {
            return algorithm.hex("\(method):\(uri):\(algorithm.hex(body))")
        }
        return algorithm.hex("\(method):\(uri)")
    }

    /// request-digest = H(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2) with qop, else
    /// H(HA1 ":" nonce ":" HA2) (RFC 2617 3.2.2.1).
    public static func response(_ algorithm: DigestAlgorithm, ha1: String, nonce: String, nc: String?, cnonce: String?, qop: String?, ha2: String) -> String {
        if let qop {
            return algorithm.hex("\(ha1):\(nonce):\(nc ?? ""):\(cnonce ?? ""):\(qop):\(ha2)")
        }
        return algorithm.hex("\(ha1):\(nonce):\(ha2)")
    }
}

/// Why credentials did not verify (before any nonce bookkeeping). All lead to 401 + challenge.
public enum DigestVerificationFailure: Error, Equatable, Sendable, CustomStringConvertible {
    /// The realm is not `3GPP-bootstrapping@<our FQDN>` (TS 33.246 Annex H: host part checked).
    case realmMismatch(String)
    /// Unsupported or not offered algorithm (RFC 7616 3.4).
    case unsupportedAlgorithm(String)
    /// qop absent or not `auth-int` (TS 33.246 6.2.1.3; `keyserver.md` K4 refuses `auth`).
    case qopNotAuthInt(String?)
    /// `uri` differs from the request-target (RFC 2617 3.2.2.5).
    case uriMismatch(String)
    /// The opaque value is not the one we sent (RFC 2617 3.2.1).
    case opaqueMismatch
    /// No MRK candidate gives the request-digest (wrong password, wrong body, …).
    case responseMismatch

    public var description: String {
        switch self {
        case let .realmMismatch(r): return "Digest realm '\(r)' is not this BM-SC's GBA realm (TS 33.246 Annex H)"
        case let .unsupportedAlgorithm(a): return "Digest algorithm '\(a)' not supported"
        case let .qopNotAuthInt(q): return "Digest qop '\(q ?? "none")' refused: auth-int required (TS 33.246 6.2.1.3)"
        case let .uriMismatch(u): return "Digest uri '\(u)' differs from the request-target (RFC 2617 3.2.2.5)"
        case .opaqueMismatch: return "Digest opaque differs from the challenge's (RFC 2617 3.2.1)"
        case .responseMismatch: return "Digest response does not verify"
        }
    }
}

/// Server-side Digest rules of the GBA profile (TS 33.246 6.2.1.3 / Annex H, TS 24.109 5.2).
public struct DigestPolicy: Sendable, Equatable {
    /// BM-SC FQDN: realm host and NAF FQDN.
    public var bmscFQDN: String
    /// Algorithms accepted and challenged with, in order of preference (RFC 7616 3.7: the
    /// server sends one challenge per algorithm, most preferred first).
    public var algorithms: [DigestAlgorithm]
    /// Opaque value sent in challenges and required back; nil: none.
    public var opaque: String?

    public init(bmscFQDN: String, algorithms: [DigestAlgorithm] = [.md5], opaque: String? = nil) {
        self.bmscFQDN = bmscFQDN; self.algorithms = algorithms.isEmpty ? [.md5] : algorithms; self.opaque = opaque
    }

    /// The GBA realm prefix (TS 33.220 / TS 24.109: tells the UE to use GBA keys).
    public static let realmPrefix = "3GPP-bootstrapping@"
    public var realm: String { Self.realmPrefix + bmscFQDN }

    /// One challenge per accepted algorithm, preferred first.
    public func challenges(nonce: String, stale: Bool) -> [DigestChallenge] {
        algorithms.map { DigestChallenge(realm: realm, nonce: nonce, algorithm: $0, qop: "auth-int", opaque: opaque, stale: stale) }
    }

    /// Checks everything except the request-digest and nonce: realm (prefix and host, the host
    /// case-insensitively), algorithm, qop=auth-int, uri = request-target, opaque.
    public func checkParameters(_ c: DigestCredentials, requestTarget: String) throws(DigestVerificationFailure) -> DigestAlgorithm {
        let realmOK = c.realm.hasPrefix(Self.realmPrefix)
            && String(c.realm.dropFirst(Self.realmPrefix.count)).lowercased() == bmscFQDN.lowercased()
        guard realmOK else { throw .realmMismatch(c.realm) }
        let algorithmText = c.algorithm ?? "MD5"
        guard let algorithm = DigestAlgorithm(token: algorithmText), algorithms.contains(algorithm) else {
            throw .unsupportedAlgorithm(algorithmText)
        }
        guard c.qop?.lowercased() == "auth-int" else { throw .qopNotAuthInt(c.qop) }
        guard c.uri == requestTarget else { throw .uriMismatch(c.uri) }
        if let opaque, c.opaque != opaque { throw .opaqueMismatch }
        return algorithm
    }

    /// Verifies the request-digest against each password candidate (K1: GBA_U may have two);
    /// returns the index of the one that matches. Comparison in constant time per candidate.
    public func verifyResponse(_ c: DigestCredentials, algorithm: DigestAlgorithm, method: String, body: [UInt8],
                               passwords: [[UInt8]]) throws(DigestVerificationFailure) -> (index: Int, ha1: String) {
        let ha2 = DigestComputation.ha2(algorithm, method: method, uri: c.uri, qop: c.qop, body: body)
        let sent = Array(c.response.lowercased().utf8)
        var found: (Int, String)?
        for (index, password) in passwords.enumerated() {
            let ha1 = DigestComputation.ha1(algorithm, username: c.username, realm: c.realm, password: password)
            let expected = DigestComputation.response(algorithm, ha1: ha1, nonce: c.nonce, nc: c.ncText, cnonce: c.cnonce, qop: c.qop, ha2: ha2)
            if constantTimeEquals(Array(expected.utf8), sent), found == nil { found = (index, ha1) }
        }
        guard let found else { throw .responseMismatch }
        return found
    }

    /// `Authentication-Info: qop=auth-int, rspauth="…", cnonce="…", nc=…` over the response
    /// body (RFC 2617 3.2.3; HA2 with an empty method).
    public static func authenticationInfo(algorithm: DigestAlgorithm, ha1: String, credentials c: DigestCredentials, responseBody: [UInt8]) -> String {
        let qop = c.qop ?? "auth-int"
        let ha2 = DigestComputation.ha2(algorithm, method: "", uri: c.uri, qop: qop, body: responseBody)
        let rspauth = DigestComputation.response(algorithm, ha1: ha1, nonce: c.nonce, nc: c.ncText, cnonce: c.cnonce, qop: qop, ha2: ha2)
        return "qop=\(qop), rspauth=\(quotedString(rspauth)), cnonce=\(quotedString(c.cnonce ?? "")), nc=\(c.ncText ?? "00000001")"
    }
}
