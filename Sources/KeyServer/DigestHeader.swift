/// HTTP Digest header syntax: the `Authorization: Digest …` credentials (RFC 2617 3.2.2,
/// RFC 7616 3.4, RFC 7235 2.1 auth-param) parsed tolerantly but within bounds, and the
/// `WWW-Authenticate` / `Authentication-Info` values the key server emits.

/// Why an Authorization header was refused. Offsets are byte offsets into the header value.
public enum DigestParseError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLong(length: Int, limit: Int)
    /// The scheme is not `Digest` (RFC 7235 2.1; schemes are case-insensitive).
    case notDigest(offset: Int)
    case malformed(offset: Int, rule: String)
    case unterminatedQuotedString(offset: Int)
    /// A parameter given twice (RFC 7616 3.4: "MUST NOT appear more than once").
    case duplicateParameter(String, offset: Int)
    case tooManyParameters(limit: Int)
    case missingParameter(String)
    case invalidParameter(String, offset: Int, rule: String)

    public var description: String {
        switch self {
        case let .tooLong(length, limit): return "Authorization header of \(length) bytes exceeds \(limit)"
        case let .notDigest(offset): return "Authorization scheme at offset \(offset) is not Digest (RFC 7616 3.4)"
        case let .malformed(offset, rule): return "Authorization header malformed at offset \(offset) (\(rule))"
        case let .unterminatedQuotedString(offset): return "Authorization header: quoted string from offset \(offset) not terminated (RFC 7230 3.2.6)"
        case let .duplicateParameter(name, offset): return "Authorization header: parameter \(name) repeated at offset \(offset) (RFC 7616 3.4)"
        case let .tooManyParameters(limit): return "Authorization header: more than \(limit) parameters"
        case let .missingParameter(name): return "Authorization header: parameter \(name) missing (RFC 2617 3.2.2)"
        case let .invalidParameter(name, offset, rule): return "Authorization header: \(name) at offset \(offset) invalid (\(rule))"
        }
    }
}

/// One `name=value` of an auth-param list; `name` lower-cased, `value` unquoted.
public struct DigestParameter: Equatable, Sendable {
    public var name: String
    public var value: String
    public var quoted: Bool
    public var offset: Int
}

/// Parsed Digest credentials (RFC 2617 3.2.2).
public struct DigestCredentials: Equatable, Sendable {
    /// Longest header value accepted.
    public static let maximumLength = 8192
    /// Most parameters accepted.
    public static let maximumParameters = 32

    public var username: String
    public var realm: String
    public var nonce: String
    public var uri: String
    /// The request-digest as sent (hex); compared case-insensitively.
    public var response: String
    /// As sent; nil means MD5 (RFC 2617 3.2.1).
    public var algorithm: String?
    public var qop: String?
    /// The nonce count, from 8 hex digits (RFC 2617 3.2.2); nil when qop is absent.
    public var nc: UInt32?
    /// The nonce count exactly as sent (used verbatim in the digest computation).
    public var ncText: String?
    public var cnonce: String?
    public var opaque: String?
    /// Every parameter in order, including ones this profile ignores.
    public var parameters: [DigestParameter]

    /// Parses an `Authorization` header value (`Digest username="…", …`). Never traps.
    public static func parse(_ header: String) throws(DigestParseError) -> DigestCredentials {
        let params = try parseParameters(header)
        func value(_ name: String) -> DigestParameter? { params.first { $0.name == name } }
        func required(_ name: String) throws(DigestParseError) -> String {
            guard let p = value(name) else { throw .missingParameter(name) }
            return p.value
        }
        var c = DigestCredentials(
            username: try required("username"), realm: try required("realm"), nonce: try required("nonce"),
            uri: try required("uri"), response: try required("response"),
            algorithm: value("algorithm")?.value, qop: value("qop")?.value, nc: nil, ncText: nil,
            cnonce: value("cnonce")?.value, opaque: value("opaque")?.value, parameters: params)
        if let ncp = value("nc") {
            // RFC 2617 3.2.2: nc-value = 8LHEX.
            guard ncp.value.utf8.count == 8, let n = UInt32(ncp.value, radix: 16) else {
                throw .invalidParameter("nc", offset: ncp.offset, rule: "nc-value = 8LHEX, RFC 2617 3.2.2")
            }
            c.nc = n
            c.ncText = ncp.value
        }
        if c.qop != nil {
            // RFC 2617 3.2.2: cnonce and nc MUST be present when qop is.
            guard c.cnonce != nil else { throw .missingParameter("cnonce") }
            guard c.nc != nil else { throw .missingParameter("nc") }
        }
        return c
    }

    /// The auth-param list after the `Digest` scheme token (RFC 7235 2.1), tolerant of
    /// quoted or bare values, empty list elements and optional white space around `=`/`,`.
    public static func parseParameters(_ header: String) throws(DigestParseError) -> [DigestParameter] {
        let b = Array(header.utf8)
        guard b.count <= maximumLength else { throw .tooLong(length: b.count, limit: maximumLength) }
        var i = 0
        func skipWS() { while i < b.count, b[i] == 0x20 || b[i] == 0x09 { i += 1 } }
        skipWS()
        let schemeStart = i
        while i < b.count, isTokenByte(b[i]) { i += 1 }
        let scheme = String(decoding: b[schemeStart..<i], as: UTF8.self)
        guard scheme.lowercased() == "digest" else { throw .notDigest(offset: schemeStart) }
        guard i < b.count, b[i] == 0x20 || b[i] == 0x09 else {
            throw .malformed(offset: i, rule: "scheme and parameters separated by white space, RFC 7235 2.1")
        }
        var params: [DigestParameter] = []
        while true {
            skipWS()
            while i < b.count, b[i] == UInt8(ascii: ",") { i += 1; skipWS() } // empty list elements (RFC 7230 7)
            guard i < b.count else { break }
            let nameStart = i
            while i < b.count, isTokenByte(b[i]) { i += 1 }
            guard i > nameStart else { throw .malformed(offset: i, rule: "expected a parameter name (token), RFC 7235 2.1") }
            let name = String(decoding: b[nameStart..<i], as: UTF8.self).lowercased()
            skipWS()
            guard i < b.count, b[i] == UInt8(ascii: "=") else {
                throw .malformed(offset: i, rule: "expected '=' after \(name), RFC 7235 2.1")
            }
            i += 1
            skipWS()
            var value: [UInt8] = []
            var quoted = false
            if i < b.count, b[i] == UInt8(ascii: "\"") {
                quoted = true
                let open = i
                i += 1
                var closed = false
                while i < b.count {
                    let c = b[i]
                    if c == UInt8(ascii: "\"") { closed = true; i += 1; break }
                    if c == UInt8(ascii: "\\") { // quoted-pair, RFC 7230 3.2.6
                        guard i + 1 < b.count else { break }
                        value.append(b[i + 1]); i += 2; continue
                    }
                    guard c != 0x0D, c != 0x0A, c != 0x00 else {
                        throw .malformed(offset: i, rule: "control character in quoted string, RFC 7230 3.2.6")
                    }
                    value.append(c); i += 1
                }
                guard closed else { throw .unterminatedQuotedString(offset: open) }
            } else {
                // Bare value: a token per RFC 7235, tolerantly any visible bytes up to ',' or
                // white space (UEs send e.g. realm=3GPP-bootstrapping@host unquoted).
                let valueStart = i
                while i < b.count, b[i] > 0x20, b[i] != 0x7F, b[i] != UInt8(ascii: ","), b[i] != UInt8(ascii: "\"") { i += 1 }
                guard i > valueStart else { throw .malformed(offset: i, rule: "expected a token or quoted string for \(name), RFC 7235 2.1") }
                value = Array(b[valueStart..<i])
            }
            if params.contains(where: { $0.name == name }) { throw .duplicateParameter(name, offset: nameStart) }
            params.append(DigestParameter(name: name, value: String(decoding: value, as: UTF8.self), quoted: quoted, offset: nameStart))
            guard params.count <= maximumParameters else { throw .tooManyParameters(limit: maximumParameters) }
            skipWS()
            guard i < b.count else { break }
            guard b[i] == UInt8(ascii: ",") else { throw .malformed(offset: i, rule: "expected ',' between parameters, RFC 7235 2.1") }
        }
        return params
    }

    /// RFC 7230 3.2.6 tchar.
    static func isTokenByte(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"), UInt8(ascii: "'"),
             UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "^"), UInt8(ascii: "_"),
             UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}

/// Quoting for emitted header values (RFC 7230 3.2.6).
func quotedString(_ s: String) -> String {
    var out = "\""
    for ch in s {
        if ch == "\"" || ch == "\\" { out.append("\\") }
        out.append(ch)
    }
    out.append("\"")
    return out
}

/// A `WWW-Authenticate: Digest …` challenge (RFC 2617 3.2.1, TS 33.246 Annex H, `keyserver.md` §3.2).
public struct DigestChallenge: Equatable, Sendable {
    public var realm: String
    public var nonce: String
    public var algorithm: DigestAlgorithm
    /// Always `auth-int` here (TS 33.246 6.2.1.3: integrity on all MBMS HTTP procedures).
    public var qop: String
    public var opaque: String?
    /// RFC 2617 3.2.1: the previous request had a valid digest but a stale nonce.
    public var stale: Bool

    public init(realm: String, nonce: String, algorithm: DigestAlgorithm = .md5, qop: String = "auth-int", opaque: String? = nil, stale: Bool = false) {
        self.realm = realm; self.nonce = nonce; self.algorithm = algorithm; self.qop = qop; self.opaque = opaque; self.stale = stale
    }

    /// `Digest realm="…", nonce="…", algorithm=MD5, qop="auth-int", opaque="…"[, stale=true]`.
    public var headerValue: String {
        var s = "Digest realm=\(quotedString(realm)), nonce=\(quotedString(nonce)), algorithm=\(algorithm.rawValue), qop=\(quotedString(qop))"
        if let opaque { s += ", opaque=\(quotedString(opaque))" }
        if stale { s += ", stale=true" }
        return s
    }
}
