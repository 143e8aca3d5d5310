import MIKEY
import Foundation
import Yams

// The gateway configuration: one YAML file drives every subcommand (`Examples/gateway.yaml`).
// Every problem is reported as one line naming the file, the key (YAML path), the value and
// the fix; unknown keys are rejected.

/// A configuration problem. `description` is the one-line message the CLI prints.
public struct ConfigurationError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Characters of a value an error message repeats.
    public static let maximumEcho = 80
    public let file: String
    public let line: Int?
    /// YAML path, e.g. `sessions[1].keyGroup`.
    public let key: String
    public let value: String?
    public let problem: String
    public let fix: String

    public var description: String {
        let location = line.map { "\(file):\($0)" } ?? file
        // A value is echoed so the user sees what was read, never more than a line of it.
        let shown = value.map { v in " = \"" + (v.count > Self.maximumEcho ? v.prefix(Self.maximumEcho) + "…(\(v.utf8.count) bytes)" : v) + "\"" } ?? ""
        return "\(location): \(key)\(shown): \(problem); fix: \(fix)"
    }
}

/// A UDP destination `address:port`: IPv4 dotted quad or bracketed IPv6 (`[ff0e::1]:5000`).
public struct SocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// Canonical textual address (IPv4 as given; IPv6 as normalised by inet_pton/ntop).
    public let host: String
    public let port: UInt16
    /// 4 or 16 octets.
    public let addressBytes: [UInt8]

    public var isIPv6: Bool { addressBytes.count == 16 }
    public var description: String { isIPv6 ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// nil when the text is not `IPv4:port` or `[IPv6]:port` with a port 1…65535.
    public init?(parsing text: String) {
        let hostPart: String, portPart: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return nil }
            hostPart = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return nil }
            portPart = rest.dropFirst()
        } else {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 else { return nil }
            hostPart = String(parts[0])
            portPart = parts[1]
        }
        guard !portPart.isEmpty, portPart.allSatisfy({ $0.isASCII && $0.isNumber }),
              let p = UInt16(portPart), p > 0 else { return nil }
        guard let (canonical, bytes) = Self.parseHost(hostPart, v6: text.hasPrefix("[")) else { return nil }
        self.init(host: canonical, port: p, addressBytes: bytes)
    }

    public init(host: String, port: UInt16, addressBytes: [UInt8]) {
        self.host = host
        self.port = port
        self.addressBytes = addressBytes
    }

    public func withPort(_ p: UInt16) -> SocketAddress { SocketAddress(host: host, port: p, addressBytes: addressBytes) }

    private static func parseHost(_ h: String, v6: Bool) -> (String, [UInt8])? {
        if v6 {
            var a = in6_addr()
            guard inet_pton(AF_INET6, h, &a) == 1 else { return nil }
            let bytes = withUnsafeBytes(of: &a) { Array($0) }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)) != nil else { return nil }
            let canonical = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return (canonical, bytes)
        }
        // Strict dotted quad: four decimal octets, no leading '+', no shorthand forms.
        let parts = h.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt8(p) else { return nil }
            bytes.append(v)
        }
        return (bytes.map(String.init).joined(separator: "."), bytes)
    }
}

/// A source address prefix `a.b.c.d[/len]` or `v6addr[/len]` (a session's `source:` filter).
public struct AddressPrefix: Hashable, Sendable, CustomStringConvertible {
    /// The network address, 4 or 16 octets; no bits set past `length`.
    public let addressBytes: [UInt8]
    /// Prefix length in bits (32 or 128 for a single address).
    public let length: Int

    public var isIPv6: Bool { addressBytes.count == 16 }

    public var description: String {
        let host: String
        if isIPv6 {
            var a = in6_addr()
            withUnsafeMutableBytes(of: &a) { $0.copyBytes(from: addressBytes) }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            host = inet_ntop(AF_INET6, &a, &buf, socklen_t(buf.count)) != nil
                ? String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : "?"
        } else {
            host = addressBytes.map(String.init).joined(separator: ".")
        }
        return length == addressBytes.count * 8 ? host : "\(host)/\(length)"
    }

    public enum ParseError: Error, Equatable, Sendable {
        case malformed
        /// Bits set past the prefix length; `network` is what was probably meant.
        case hostBitsSet(network: String)
    }

    /// Parses `a.b.c.d`, `a.b.c.d/len` (0…32), an IPv6 address (RFC 4291 text, optionally in
    /// brackets) or `v6/len` (0…128).
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        var host = String(parts[0])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        var bytes: [UInt8]
        if host.contains(":") {
            var a = in6_addr()
            guard inet_pton(AF_INET6, host, &a) == 1 else { throw .malformed }
            bytes = withUnsafeBytes(of: &a) { Array($0) }
        } else {
            let octets = host.split(separator: ".", omittingEmptySubsequences: false)
            guard octets.count == 4 else { throw .malformed }
            bytes = []
            for o in octets {
                guard !o.isEmpty, o.count <= 3, o.allSatisfy({ $0.isASCII && $0.isNumber }), let v = UInt8(o) else { throw .malformed }
                bytes.append(v)
            }
        }
        var length = bytes.count * 8
        if parts.count == 2 {
            let l = parts[1]
            guard !l.isEmpty, l.count <= 3, l.allSatisfy({ $0.isASCII && $0.isNumber }), let v = Int(l), v <= bytes.count * 8 else { throw .malformed }
            length = v
        }
        var network = bytes
        for i in network.indices {
            let keep = Swift.max(0, Swift.min(8, length - 8 * i))
            network[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        self.addressBytes = network
        self.length = length
        guard network == bytes else { throw .hostBitsSet(network: description) }
    }
}

/// SRTP cipher (RFC 3711, RFC 6188) or NULL.
public enum SRTPCipher: String, Sendable, CaseIterable {
    case aes128CM = "aes-128-cm", aes192CM = "aes-192-cm", aes256CM = "aes-256-cm", null = "null"
    /// Master key (= MTK) length in octets; NULL still carries a 128-bit MTK.
    public var keyLength: Int {
        switch self {
        case .aes128CM, .null: return 16
        case .aes192CM: return 24
        case .aes256CM: return 32
        }
    }
    /// MIKEY SP type 0 value (`mikey.md` 4.6).
    public var mikeyEncryptionAlgorithm: UInt8 { self == .null ? 0 : 1 }
}

/// SRTP authentication: default transform (RFC 3711) or the RFC 4771 ROC-carrying modes.
public enum SRTPAuthentication: String, Sendable, CaseIterable {
    case hmacSHA1_80 = "hmac-sha1-80", hmacSHA1_32 = "hmac-sha1-32", rccm1, rccm2, rccm3
    /// MIKEY SP type 2/14 value (`rfc4771.md` 6).
    public var mikeyAlgorithm: UInt8 {
        switch self {
        case .hmacSHA1_80, .hmacSHA1_32: return 1
        case .rccm1: return 2
        case .rccm2: return 3
        case .rccm3: return 4
        }
    }
    /// Default SRTP tag length in octets (RCC: including the 4 ROC octets, `rfc4771.md` R-5).
    public var defaultTagLength: Int {
        switch self {
        case .hmacSHA1_80: return 10
        case .hmacSHA1_32: return 4
        case .rccm1, .rccm2: return 14
        case .rccm3: return 4
        }
    }
    /// Allowed tag lengths (octets).
    public var allowedTagLengths: ClosedRange<Int> {
        switch self {
        case .hmacSHA1_80: return 10...10
        case .hmacSHA1_32, .rccm3: return 4...4
        case .rccm1, .rccm2: return 8...24
        }
    }
}

/// The protection policy of one session (TS 33.246 6.6; RFC 4771 §6 parameters).
public struct ProtectionPolicyConfiguration: Hashable, Sendable {
    public var cipher: SRTPCipher = .aes128CM
    public var authentication: SRTPAuthentication = .rccm1
    /// RFC 4771 ROC transmission rate R (16-bit, ≥ 1).
    public var rocRate: UInt16 = 1
    /// SRTP tag length in octets (RCC: including the ROC).
    public var srtpTagLength: Int = 14
    /// SRTCP tag length in octets (default transform, TS 33.246 6.6.2.1A).
    public var srtcpTagLength: Int = 10
    public var srtcpEncryption: Bool = true
    /// FLUTE channels: wrap objects in a DCF (TS 33.246 6.6.3).
    public var dcf: Bool = true
    public init() {}
}

public enum SessionKind: String, Sendable, CaseIterable { case rtp, flute }

/// One RTP session (RTP + RTCP) or one FLUTE channel; exactly one key group each (TS 33.246 6.3.1).
public struct SessionConfiguration: Hashable, Sendable {
    public var name: String
    public var kind: SessionKind
    public var destination: SocketAddress
    /// RTP only: destination of RTCP, by default the RTP address on port + 1.
    public var rtcpDestination: SocketAddress?
    public var output: SocketAddress?
    /// FLUTE only: the LCT Transport Session Identifier.
    public var tsi: UInt64?
    public var keyGroup: KeyGroup
    public var protection: ProtectionPolicyConfiguration
    /// RTP only: SSRCs whose sender state (ROC, SRTCP index) is kept, for RTP and for RTCP
    /// each; beyond it the least recently used is evicted (`maxFlows`).
    public var maxFlows: Int = SessionConfiguration.defaultMaxFlows
    /// RTP only: the source prefixes packets are accepted from (`source`; nil: any source).
    public var sources: [AddressPrefix]? = nil
    /// RTP only: the largest RTP or RTCP packet (UDP payload, before protection) accepted (`maxPacketSize`).
    public var maxPacketSize: Int = SessionConfiguration.defaultMaxPacketSize

    public static let defaultMaxFlows = 64
    public static let maximumMaxFlows = 65_536
    /// An Ethernet MTU: what a UDP datagram of an ordinary network carries, with room to spare.
    public static let defaultMaxPacketSize = 1500
    /// The largest UDP payload of an IPv4 datagram.
    public static let maximumPacketSize = 65_507
    /// Source prefixes per session.
    public static let maximumSources = 64
}

/// Key store location and the key-encryption key (KEK) source.
public struct KeyStoreConfiguration: Hashable, Sendable {
    /// SQLite file (relative paths are resolved against the configuration file's directory).
    public var path: String
    /// File holding the 32-byte KEK as 64 hex digits; overridden by `MBMS_KEK` / `MBMS_KEK_FILE`.
    public var kekFile: String?
}

/// The time grid (`DESIGN.md` §6). All durations in whole seconds.
public struct ScheduleConfiguration: Hashable, Sendable {
    /// Grid origin E as seconds since 1970-01-01T00:00:00Z (must be identical on all gateways).
    public var epoch: Int64
    /// MTK period P.
    public var mtkPeriod: Int64
    /// How long before an MTK switch its MIKEY MTK message is first sent (TS 33.246 6.3.3.2.2).
    public var announceLead: Int64
    /// Interval between repetitions of the MTK message.
    public var repeatInterval: Int64
    /// Nominal MSK lifetime; a positive multiple of the MTK period.
    public var mskPeriod: Int64
}

/// The whole file.
public struct GatewayConfiguration: Hashable, Sendable {
    public var keyDomainID: KeyDomainID
    /// IDi of MSK messages: NAF-ID FQDN of the BM-SC (TS 33.246 6.4.5.1).
    public var bmscFQDN: String
    public var keyStore: KeyStoreConfiguration
    public var schedule: ScheduleConfiguration
    public var sessions: [SessionConfiguration]
    /// The UE-facing key server (`keyserver`, `run --keyserver`); nil when not configured.
    public var keyServer: KeyServerSettings? = nil
    /// MBMS User Services the key server admits registrations to.
    public var userServices: [UserServiceSettings] = []
    /// `run`'s log level (trace … critical); `--log-level` overrides it at start, and a SIGHUP
    /// reload applies a changed value. nil: info.
    public var logLevel: String? = nil

    public func session(forKeyGroup g: KeyGroup) -> SessionConfiguration? { sessions.first { $0.keyGroup == g } }
    public var keyGroups: [KeyGroup] { sessions.map(\.keyGroup).sorted() }

    /// Largest configuration file read (anything bigger is not a gateway configuration).
    public static let maximumFileBytes = 1 << 20

    /// Loads and validates a file; `ConfigurationError` on the first problem.
    public static func load(path: String) throws(ConfigurationError) -> GatewayConfiguration {
        let name = (path as NSString).lastPathComponent
        var st = stat()
        if stat(path, &st) == 0, st.st_size > maximumFileBytes {
            throw ConfigurationError(file: path, line: nil, key: "(file)", value: nil,
                                     problem: "the file is \(st.st_size) bytes; a configuration is at most \(maximumFileBytes)",
                                     fix: "pass the gateway's YAML configuration with --config (see Examples/gateway.yaml)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError(file: path, line: nil, key: "(file)", value: nil,
                                     problem: "cannot read the file", fix: "pass an existing, readable UTF-8 YAML file with --config")
        }
        var c = try parse(yaml: text, fileName: name)
        if !c.keyStore.path.hasPrefix("/") {
            let dir = (path as NSString).deletingLastPathComponent
            c.keyStore.path = ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(c.keyStore.path)
        }
        if let k = c.keyStore.kekFile, !k.hasPrefix("/") {
            let dir = (path as NSString).deletingLastPathComponent
            c.keyStore.kekFile = ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(k)
        }
        let dir = (path as NSString).deletingLastPathComponent
        func beside(_ p: String?) -> String? {
            guard let p, !p.hasPrefix("/") else { return p }
            return ((dir.isEmpty ? "." : dir) as NSString).appendingPathComponent(p)
        }
        if var k = c.keyServer {
            k.tlsCertificate = beside(k.tlsCertificate)
            k.tlsKey = beside(k.tlsKey)
            c.keyServer = k
        }
        return c
    }

    /// Parses and validates YAML text. `fileName` appears in error messages.
    public static func parse(yaml: String, fileName: String = "<config>") throws(ConfigurationError) -> GatewayConfiguration {
        let p = ConfigParser(file: fileName)
        return try p.parseRoot(yaml)
    }
}

// MARK: - Parser

struct ConfigParser {
    let file: String

    func fail(_ node: Node?, _ key: String, _ value: String?, _ problem: String, _ fix: String) -> ConfigurationError {
        // A list or a mapping where a value was expected is named as such, not shown as "".
        var shown = value
        if value == nil || value == "", let node, node.scalar == nil {
            shown = node.sequence != nil ? "(a list)" : node.mapping != nil ? "(a mapping)" : value
        }
        return ConfigurationError(file: file, line: node?.mark?.line, key: key, value: shown, problem: problem, fix: fix)
    }

    /// A mapping's entries by key, rejecting unknown and duplicate keys.
    func entries(_ node: Node, at path: String, allowed: [String]) throws(ConfigurationError) -> [String: Node] {
        guard let m = node.mapping else {
            throw fail(node, path.isEmpty ? "(root)" : path, node.scalar?.string, "expected a mapping (key: value lines)",
                       "indent the keys \(allowed.joined(separator: ", ")) under \(path.isEmpty ? "the top level" : path)")
        }
        var out: [String: Node] = [:]
        // YAML merge keys (`<<: *defaults`, or a list of them): the merged mapping's entries
        // apply where this mapping has no key of its own.
        var merged: [(Node, Node)] = []
        for (k, v) in m where k.scalar?.string == "<<" {
            let sources = v.sequence.map(Array.init) ?? [v]
            for source in sources {
                guard let sm = source.mapping else {
                    throw fail(k, path.isEmpty ? "<<" : "\(path).<<", nil, "a merge key takes a mapping (or a list of mappings)", "write <<: *anchor")
                }
                for (mk, mv) in sm where mk.scalar?.string != "<<" { merged.append((mk, mv)) }
            }
        }
        for (k, v) in m where k.scalar?.string != "<<" {
            let name = k.scalar?.string ?? "?"
            let full = path.isEmpty ? name : "\(path).\(name)"
            guard allowed.contains(name) else {
                throw fail(k, full, nil, "unknown key", "remove it or use one of: \(allowed.joined(separator: ", "))")
            }
            guard out[name] == nil else { throw fail(k, full, nil, "duplicate key", "keep only one \(name)") }
            out[name] = v
        }
        for (k, v) in merged {
            let name = k.scalar?.string ?? "?"
            guard out[name] == nil else { continue }
            guard allowed.contains(name) else {
                throw fail(k, path.isEmpty ? name : "\(path).\(name)", nil, "unknown key (from a merged mapping)", "remove it or use one of: \(allowed.joined(separator: ", "))")
            }
            out[name] = v
        }
        return out
    }

    func required(_ e: [String: Node], _ key: String, at path: String, parent: Node, hint: String) throws(ConfigurationError) -> Node {
        guard let n = e[key] else {
            throw fail(parent, path.isEmpty ? key : "\(path).\(key)", nil, "missing required key", "add \(key): \(hint)")
        }
        return n
    }

    func string(_ n: Node, _ path: String, hint: String) throws(ConfigurationError) -> String {
        guard let s = n.scalar?.string, !s.isEmpty else {
            throw fail(n, path, nil, "expected a non-empty scalar", "write \(path.split(separator: ".").last ?? ""): \(hint)")
        }
        return s
    }

    func integer(_ n: Node, _ path: String, range: ClosedRange<Int64>, fix: String) throws(ConfigurationError) -> Int64 {
        let s = n.scalar?.string ?? ""
        guard let v = Int64(s) else { throw fail(n, path, s, "not an integer", fix) }
        guard range.contains(v) else { throw fail(n, path, s, "out of range \(range.lowerBound)…\(range.upperBound)", fix) }
        return v
    }

    func bool(_ n: Node, _ path: String) throws(ConfigurationError) -> Bool {
        let s = n.scalar?.string ?? ""
        switch s.lowercased() {
        case "on", "true", "yes": return true
        case "off", "false", "no": return false
        default: throw fail(n, path, s, "not a switch", "write on or off")
        }
    }

    /// Durations: integer seconds, or a number with unit s, m, h or d ("90s", "5m", "1h", "1d").
    func duration(_ n: Node, _ path: String, fix: String) throws(ConfigurationError) -> Int64 {
        let s = (n.scalar?.string ?? "").trimmingCharacters(in: .whitespaces)
        var digits = s, mult: Int64 = 1
        if let last = s.last, "smhd".contains(last) {
            digits = String(s.dropLast())
            mult = ["s": 1, "m": 60, "h": 3600, "d": 86400][String(last)] ?? 1
        }
        guard let v = Int64(digits) else {
            throw fail(n, path, s, "not a duration", "write whole seconds or a number with s, m, h or d, e.g. 30s; \(fix)")
        }
        let (r, overflow) = v.multipliedReportingOverflow(by: mult)
        guard !overflow, r <= 100 * 365 * 86400 else { throw fail(n, path, s, "duration too large", fix) }
        return r
    }

    func address(_ n: Node, _ path: String) throws(ConfigurationError) -> SocketAddress {
        let s = n.scalar?.string ?? ""
        guard let a = SocketAddress(parsing: s) else {
            throw fail(n, path, s, "malformed address", "write IPv4:port (239.1.1.1:5000) or [IPv6]:port ([ff0e::1]:5000), port 1-65535")
        }
        return a
    }

    func parseRoot(_ yaml: String) throws(ConfigurationError) -> GatewayConfiguration {
        let root: Node
        do {
            guard let n = try Yams.compose(yaml: yaml) else {
                throw fail(nil, "(root)", nil, "the file is empty", "start from Examples/gateway.yaml")
            }
            root = n
        } catch let e as ConfigurationError {
            throw e
        } catch {
            // Yams quotes the offending line: position and reason come first, then the quote is
            // cut like an echoed value (finding 9), or a 1 MiB one-line file comes back whole.
            var msg = "\(error)".replacingOccurrences(of: "\n", with: " ")
            let limit = 2 * ConfigurationError.maximumEcho
            if msg.count > limit { msg = msg.prefix(limit) + "…" }
            throw fail(nil, "(root)", nil, "not valid YAML (\(msg))", "fix the YAML syntax")
        }
        let e = try entries(root, at: "", allowed: ["keyDomain", "bmscFQDN", "keyStore", "schedule", "sessions", "keyServer", "userServices", "logLevel"])

        // keyDomain
        let kdNode = try required(e, "keyDomain", at: "", parent: root, hint: "{ mcc: \"001\", mnc: \"01\" }")
        let kd = try entries(kdNode, at: "keyDomain", allowed: ["mcc", "mnc"])
        let mccNode = try required(kd, "mcc", at: "keyDomain", parent: kdNode, hint: "\"001\" (3 digits, quoted)")
        let mncNode = try required(kd, "mnc", at: "keyDomain", parent: kdNode, hint: "\"01\" (2 or 3 digits, quoted)")
        let mcc = try string(mccNode, "keyDomain.mcc", hint: "\"001\""), mnc = try string(mncNode, "keyDomain.mnc", hint: "\"01\"")
        let keyDomainID: KeyDomainID
        do { keyDomainID = try KeyDomainID.parse(mcc: mcc, mnc: mnc) } catch {
            switch error {
            case .invalidMCC: throw fail(mccNode, "keyDomain.mcc", mcc, "an MCC is exactly 3 decimal digits", "quote it as a string, e.g. mcc: \"001\"")
            case .invalidMNC: throw fail(mncNode, "keyDomain.mnc", mnc, "an MNC is 2 or 3 decimal digits", "quote it as a string, e.g. mnc: \"01\"")
            }
        }

        // bmscFQDN
        let fqdnNode = try required(e, "bmscFQDN", at: "", parent: root, hint: "bmsc.mnc001.mcc001.pub.3gppnetwork.org")
        let fqdn = try string(fqdnNode, "bmscFQDN", hint: "bmsc.example.org")
        let labelOK = fqdn.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { l in
            !l.isEmpty && l.count <= 63 && l.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-") }
        }
        guard labelOK, fqdn.count <= 253 else {
            throw fail(fqdnNode, "bmscFQDN", fqdn, "not a fully qualified domain name", "write the BM-SC's NAF FQDN, e.g. bmsc.example.org")
        }

        // keyStore
        let ksNode = try required(e, "keyStore", at: "", parent: root, hint: "{ path: keys.sqlite }")
        let ks = try entries(ksNode, at: "keyStore", allowed: ["path", "kekFile"])
        let storePath = try string(try required(ks, "path", at: "keyStore", parent: ksNode, hint: "keys.sqlite"), "keyStore.path", hint: "keys.sqlite")
        let kekFile: String? = try ks["kekFile"].map { (n) throws(ConfigurationError) in try string(n, "keyStore.kekFile", hint: "kek.hex") }

        // schedule
        let schedule = try parseSchedule(try required(e, "schedule", at: "", parent: root, hint: "{ mtk: {...}, msk: {...} }"))

        // sessions
        let sessNode = try required(e, "sessions", at: "", parent: root, hint: "a list of sessions")
        guard let seq = sessNode.sequence, seq.count > 0 else {
            throw fail(sessNode, "sessions", nil, "expected a non-empty list", "add at least one session (- name: ..., kind: rtp, ...)")
        }
        var sessions: [SessionConfiguration] = []
        for (i, n) in seq.enumerated() {
            sessions.append(try parseSession(n, path: "sessions[\(i)]"))
        }
        try checkSessionsTogether(sessions, nodes: Array(seq))

        let keyServer = try e["keyServer"].map { (n) throws(ConfigurationError) in try parseKeyServer(n) }
        let services = try e["userServices"].map { (n) throws(ConfigurationError) in try parseUserServices(n, sessions: sessions) } ?? []
        if keyServer != nil, services.isEmpty {
            throw fail(e["keyServer"], "userServices", nil, "a key server with no user services admits no one",
                       "add userServices: [{ id: \"urn:3gpp:mbms:svc1\", sessions: [\(sessions.first?.name ?? "video")] }]")
        }
        let levels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
        let logLevel: String? = try e["logLevel"].map { (n) throws(ConfigurationError) in
            let s = try string(n, "logLevel", hint: "info")
            guard levels.contains(s) else { throw fail(n, "logLevel", s, "not a log level", "use one of: \(levels.joined(separator: ", "))") }
            return s
        }
        var c = GatewayConfiguration(keyDomainID: keyDomainID, bmscFQDN: fqdn,
                                     keyStore: KeyStoreConfiguration(path: storePath, kekFile: kekFile),
                                     schedule: schedule, sessions: sessions, keyServer: keyServer, userServices: services)
        c.logLevel = logLevel
        return c
    }

    func parseSchedule(_ node: Node) throws(ConfigurationError) -> ScheduleConfiguration {
        let e = try entries(node, at: "schedule", allowed: ["epoch", "mtk", "msk"])
        var epoch: Int64 = 0
        if let en = e["epoch"] {
            let s = en.scalar?.string ?? ""
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime]
            guard let d = f.date(from: s) else {
                throw fail(en, "schedule.epoch", s, "not an RFC 3339 UTC time", "write e.g. 2026-01-01T00:00:00Z (identical on every gateway)")
            }
            epoch = Int64(d.timeIntervalSince1970)
        }
        let mtkNode = try required(e, "mtk", at: "schedule", parent: node, hint: "{ period: 60s, announceLead: 10s, repeat: 5s }")
        let mtk = try entries(mtkNode, at: "schedule.mtk", allowed: ["period", "announceLead", "repeat"])
        let pNode = try required(mtk, "period", at: "schedule.mtk", parent: mtkNode, hint: "60s")
        let period = try duration(pNode, "schedule.mtk.period", fix: "use a period > 0, e.g. 60s")
        guard period > 0 else { throw fail(pNode, "schedule.mtk.period", pNode.scalar?.string, "the MTK period must be > 0", "use e.g. 60s") }
        let lNode = try required(mtk, "announceLead", at: "schedule.mtk", parent: mtkNode, hint: "10s")
        let lead = try duration(lNode, "schedule.mtk.announceLead", fix: "use 0 ≤ announceLead < period")
        guard lead >= 0, lead < period else {
            throw fail(lNode, "schedule.mtk.announceLead", lNode.scalar?.string,
                       "announceLead must be ≥ 0 and < the MTK period (\(period)s)", "use a lead shorter than schedule.mtk.period, e.g. \(max(period / 6, 0))s")
        }
        let rNode = try required(mtk, "repeat", at: "schedule.mtk", parent: mtkNode, hint: "5s")
        let rep = try duration(rNode, "schedule.mtk.repeat", fix: "use 0 < repeat ≤ period")
        guard rep > 0, rep <= period else {
            throw fail(rNode, "schedule.mtk.repeat", rNode.scalar?.string, "repeat must be > 0 and ≤ the MTK period (\(period)s)",
                       "use e.g. \(max(period / 12, 1))s")
        }
        let mskNode = try required(e, "msk", at: "schedule", parent: node, hint: "{ period: 1d }")
        let msk = try entries(mskNode, at: "schedule.msk", allowed: ["period"])
        let mpNode = try required(msk, "period", at: "schedule.msk", parent: mskNode, hint: "1d")
        let mskPeriod = try duration(mpNode, "schedule.msk.period", fix: "use a multiple of schedule.mtk.period")
        guard mskPeriod > 0, mskPeriod % period == 0 else {
            throw fail(mpNode, "schedule.msk.period", mpNode.scalar?.string,
                       "the MSK period must be > 0 and a whole multiple of the MTK period (\(period)s)",
                       "use e.g. \(period * 60)s")
        }
        return ScheduleConfiguration(epoch: epoch, mtkPeriod: period, announceLead: lead, repeatInterval: rep, mskPeriod: mskPeriod)
    }

    func parseSession(_ node: Node, path: String) throws(ConfigurationError) -> SessionConfiguration {
        let e = try entries(node, at: path, allowed: ["name", "kind", "destination", "rtcpDestination", "output", "tsi", "keyGroup", "protection",
                                                      "maxFlows", "source", "maxPacketSize"])
        let name = try string(try required(e, "name", at: path, parent: node, hint: "a unique name"), "\(path).name", hint: "news")
        let kindNode = try required(e, "kind", at: path, parent: node, hint: "rtp or flute")
        let kindText = kindNode.scalar?.string ?? ""
        guard let kind = SessionKind(rawValue: kindText) else {
            throw fail(kindNode, "\(path).kind", kindText, "unknown session kind", "write rtp or flute")
        }
        let destination = try address(try required(e, "destination", at: path, parent: node, hint: "239.1.1.1:5000"), "\(path).destination")
        var rtcp: SocketAddress? = nil
        if let n = e["rtcpDestination"] {
            guard kind == .rtp else { throw fail(n, "\(path).rtcpDestination", n.scalar?.string, "only RTP sessions have RTCP", "remove it from this flute session") }
            rtcp = try address(n, "\(path).rtcpDestination")
        } else if kind == .rtp {
            guard destination.port < UInt16.max else {
                throw fail(e["destination"], "\(path).destination", destination.description, "RTCP would use port+1 = 65536",
                           "use an even RTP port below 65535 or set rtcpDestination")
            }
            rtcp = destination.withPort(destination.port + 1)
        }
        let output = try e["output"].map { (n) throws(ConfigurationError) in try address(n, "\(path).output") }
        if let o = output, o.port == 2269 || (rtcp.map { o.port &+ ($0.port &- destination.port) } == 2269) {
            throw fail(e["output"], "\(path).output", o.description,
                       "the protected RTP or RTCP would go to port 2269, where the MIKEY MTK messages for this address go (TS 33.246 6.3.2.3)",
                       "use another output port")
        }
        var tsi: UInt64? = nil
        if let n = e["tsi"] {
            guard kind == .flute else { throw fail(n, "\(path).tsi", n.scalar?.string, "a TSI belongs to FLUTE channels only", "remove it or set kind: flute") }
            tsi = UInt64(try integer(n, "\(path).tsi", range: 0...0xFFFF_FFFF_FFFF, fix: "use a TSI 0…2^48-1 (LCT)"))
        } else if kind == .flute {
            throw fail(node, "\(path).tsi", nil, "missing required key for a flute session", "add tsi: 1")
        }
        let kgNode = try required(e, "keyGroup", at: path, parent: node, hint: "1 (1…65535)")
        let kgValue = try integer(kgNode, "\(path).keyGroup", range: 0...65535, fix: "use a key group 1…65535, one per session")
        guard let keyGroup = KeyGroup(UInt16(kgValue)) else {
            throw fail(kgNode, "\(path).keyGroup", "0", "key group 0 is forbidden (TS 33.246 6.3.1)", "use a key group 1…65535, one per session")
        }
        let protection = try parseProtection(e["protection"], kind: kind, path: "\(path).protection")
        var session = SessionConfiguration(name: name, kind: kind, destination: destination, rtcpDestination: rtcp, output: output,
                                           tsi: tsi, keyGroup: keyGroup, protection: protection)
        try parseLimits(e, kind: kind, path: path, into: &session)
        return session
    }

    /// The live-mode limits of an RTP session: `maxFlows`, `source`, `maxPacketSize`.
    func parseLimits(_ e: [String: Node], kind: SessionKind, path: String, into s: inout SessionConfiguration) throws(ConfigurationError) {
        for key in ["maxFlows", "source", "maxPacketSize"] {
            if let n = e[key], kind != .rtp {
                throw fail(n, "\(path).\(key)", n.scalar?.string, "only RTP sessions have this limit", "remove it from this flute session")
            }
        }
        if let n = e["maxFlows"] {
            let m = Int64(SessionConfiguration.maximumMaxFlows)
            s.maxFlows = Int(try integer(n, "\(path).maxFlows", range: 1...m,
                                         fix: "use 1…\(m) SSRCs per session (default \(SessionConfiguration.defaultMaxFlows))"))
        }
        if let n = e["maxPacketSize"] {
            let m = Int64(SessionConfiguration.maximumPacketSize)
            s.maxPacketSize = Int(try integer(n, "\(path).maxPacketSize", range: 13...m,
                                              fix: "use 13…\(m) octets of RTP/RTCP packet, before protection (default \(SessionConfiguration.defaultMaxPacketSize))"))
        }
        if let n = e["source"] {
            let items: [Node] = n.sequence.map(Array.init) ?? [n]
            guard !items.isEmpty, items.count <= SessionConfiguration.maximumSources else {
                throw fail(n, "\(path).source", nil, "expected 1…\(SessionConfiguration.maximumSources) source prefixes",
                           "write source: 192.0.2.10, source: 192.0.2.0/24 or a list [192.0.2.0/24, \"2001:db8::/32\"]")
            }
            var prefixes: [AddressPrefix] = []
            for (i, item) in items.enumerated() {
                let key = n.sequence == nil ? "\(path).source" : "\(path).source[\(i)]"
                guard let text = item.scalar?.string, !text.isEmpty else {
                    throw fail(item, key, nil, "expected an address or prefix", "write e.g. 192.0.2.0/24 or 2001:db8::/32")
                }
                do { prefixes.append(try AddressPrefix(parsing: text)) } catch {
                    switch error {
                    case .malformed:
                        throw fail(item, key, text, "not an IPv4 or IPv6 address or prefix",
                                   "write a.b.c.d, a.b.c.d/len (0…32), an IPv6 address or v6/len (0…128; quote it in YAML)")
                    case .hostBitsSet(let network):
                        throw fail(item, key, text, "bits are set past the prefix length", "write the network: \(network)")
                    }
                }
            }
            s.sources = prefixes
        }
    }

    func parseProtection(_ node: Node?, kind: SessionKind, path: String) throws(ConfigurationError) -> ProtectionPolicyConfiguration {
        var p = ProtectionPolicyConfiguration()
        guard let node else {
            p.srtpTagLength = p.authentication.defaultTagLength
            return p
        }
        let rtpKeys = ["cipher", "auth", "rocRate", "srtpTagLength", "srtcpTagLength", "srtcpEncryption"]
        let e = try entries(node, at: path, allowed: kind == .rtp ? rtpKeys : ["dcf"])
        if let n = e["cipher"] {
            let s = n.scalar?.string ?? ""
            guard let c = SRTPCipher(rawValue: s) else {
                throw fail(n, "\(path).cipher", s, "unknown cipher", "write one of \(SRTPCipher.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            p.cipher = c
        }
        if let n = e["auth"] {
            let s = n.scalar?.string ?? ""
            guard let a = SRTPAuthentication(rawValue: s) else {
                throw fail(n, "\(path).auth", s, "unknown authentication", "write one of \(SRTPAuthentication.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            p.authentication = a
        }
        if let n = e["rocRate"] {
            let v = try integer(n, "\(path).rocRate", range: 0...65535, fix: "use R 1…65535 (RFC 4771; 16-bit)")
            guard v >= 1 else { throw fail(n, "\(path).rocRate", "0", "R = 0 is not allowed (RFC 4771: SEQ mod R)", "use R ≥ 1, e.g. 1 or 64") }
            p.rocRate = UInt16(v)
        }
        p.srtpTagLength = p.authentication.defaultTagLength
        if let n = e["srtpTagLength"] {
            let r = p.authentication.allowedTagLengths
            let v = try integer(n, "\(path).srtpTagLength", range: 0...255, fix: "use \(r.lowerBound)…\(r.upperBound) octets for \(p.authentication.rawValue)")
            guard r.contains(Int(v)) else {
                throw fail(n, "\(path).srtpTagLength", String(v), "tag length not allowed with \(p.authentication.rawValue)",
                           "use \(r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)…\(r.upperBound)") octets (RCC: including the 4 ROC octets)")
            }
            p.srtpTagLength = Int(v)
        }
        if let n = e["srtcpTagLength"] {
            let v = try integer(n, "\(path).srtcpTagLength", range: 4...20, fix: "use 4…20 octets (10 = HMAC-SHA1-80)")
            p.srtcpTagLength = Int(v)
        }
        if let n = e["srtcpEncryption"] { p.srtcpEncryption = try bool(n, "\(path).srtcpEncryption") }
        if let n = e["dcf"] { p.dcf = try bool(n, "\(path).dcf") }
        return p
    }

    /// One key group per session, unique names, no two flows on the same address:port
    /// (RTP, RTCP, and the MIKEY port 2269 on a session's destination address).
    func checkSessionsTogether(_ s: [SessionConfiguration], nodes: [Node]) throws(ConfigurationError) {
        var groups: [KeyGroup: Int] = [:], names: [String: Int] = [:]
        var endpoints: [SocketAddress: (Int, String)] = [:]
        for (i, x) in s.enumerated() {
            let e = nodes[i].mapping
            if let j = groups[x.keyGroup] {
                throw fail(e?["keyGroup"], "sessions[\(i)].keyGroup", x.keyGroup.description,
                           "key group already used by sessions[\(j)] (one key group per RTP session or FLUTE channel, TS 33.246 6.3.1)",
                           "give each session its own key group")
            }
            groups[x.keyGroup] = i
            if let j = names[x.name] {
                throw fail(e?["name"], "sessions[\(i)].name", x.name, "name already used by sessions[\(j)]", "give each session a unique name")
            }
            names[x.name] = i
            var mine: [(SocketAddress, String)] = [(x.destination, "destination")]
            if let r = x.rtcpDestination { mine.append((r, "rtcpDestination")) }
            for (a, what) in mine {
                if a.port == 2269 {
                    throw fail(e?[what], "sessions[\(i)].\(what)", a.description, "port 2269 carries the MIKEY MTK messages to the same address",
                               "use another port")
                }
                if let (j, other) = endpoints[a] {
                    throw fail(e?[what] ?? e?["destination"], "sessions[\(i)].\(what)", a.description,
                               j == i ? "RTP and RTCP use the same address:port" : "overlaps sessions[\(j)].\(other)",
                               "give every session distinct destination ports (RTP port, RTCP port+1)")
                }
                endpoints[a] = (i, what)
            }
        }
    }
}

extension Node.Mapping {
    subscript(_ key: String) -> Node? {
        for (k, v) in self where k.scalar?.string == key { return v }
        return nil
    }
}
