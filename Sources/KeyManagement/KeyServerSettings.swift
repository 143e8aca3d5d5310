import Foundation
import Yams

/// The `keyServer` section: where the BM-SC's Key Request function (HTTP/HTTPS) and Key
/// Distribution function (MIKEY over UDP 2269) listen, and their limits (TS 33.246 6.1-6.3).
public struct KeyServerSettings: Hashable, Sendable {
    /// Plain HTTP (TS 33.246 6.2.1.3: Digest protects the exchange; HTTPS is optional).
    public var listen: SocketAddress?
    /// HTTPS; needs `tls`.
    public var tlsListen: SocketAddress?
    /// PEM files (paths relative to the configuration's folder).
    public var tlsCertificate: String?
    public var tlsKey: String?
    /// Seconds a Digest nonce stays valid.
    public var nonceLifetime: Int64
    /// SCF addresses allowed to send `authorize` (IMS-based MBMS).
    public var scfPeers: [String]
    /// Where UEs' MIKEY verification messages arrive (UDP 2269 by default).
    public var mikeyListen: SocketAddress?
    /// Set the MIKEY V bit and retransmit until the UE's verification message arrives.
    public var verify: Bool
    /// How long before an MSK rollover the next MSK is pushed to registered UEs.
    public var mskPushLead: Int64
    /// MSK messages sent per second at most (a rollover wave is spread over the lead).
    public var pushRate: Int
    /// Seconds before an unverified MSK message is sent again (doubled each time).
    public var retransmitAfter: Int64
    /// MSK messages per delivery at most (the first included); then it is given up.
    public var maximumAttempts: Int

    public init(listen: SocketAddress? = nil, tlsListen: SocketAddress? = nil, tlsCertificate: String? = nil, tlsKey: String? = nil,
                nonceLifetime: Int64 = 300, scfPeers: [String] = [], mikeyListen: SocketAddress? = nil, verify: Bool = true,
                mskPushLead: Int64 = 3600, pushRate: Int = 1000, retransmitAfter: Int64 = 2, maximumAttempts: Int = 5) {
        self.listen = listen; self.tlsListen = tlsListen; self.tlsCertificate = tlsCertificate; self.tlsKey = tlsKey
        self.nonceLifetime = nonceLifetime; self.scfPeers = scfPeers; self.mikeyListen = mikeyListen; self.verify = verify
        self.mskPushLead = mskPushLead; self.pushRate = pushRate
        self.retransmitAfter = retransmitAfter; self.maximumAttempts = maximumAttempts
    }
}

/// One MBMS User Service as the key server sees it (`userServices`): its service ID, the
/// sessions (hence key groups) protecting it, and who may register.
public struct UserServiceSettings: Hashable, Sendable {
    public enum Admission: Hashable, Sendable {
        case everyone
        /// IMPIs matching one of these patterns (`*` any run, `?` one character).
        case impiPatterns([String])
        /// Only UEs an SCF authorized (`authorize`).
        case grantsOnly
    }
    public var serviceID: String
    public var sessions: [String]
    public var keyGroups: [KeyGroup]
    public var admission: Admission
    /// Key management must run in the UICC (GBA_U, TS 33.246 6.1).
    public var requiresUICC: Bool
}

extension ConfigParser {
    func parseKeyServer(_ node: Node) throws(ConfigurationError) -> KeyServerSettings {
        let e = try entries(node, at: "keyServer", allowed: ["listen", "tlsListen", "tls", "nonceLifetime", "scfPeers",
                                                             "mikeyListen", "verify", "mskPushLead", "pushRate",
                                                             "retransmitAfter", "maximumAttempts"])
        var s = KeyServerSettings()
        s.listen = try e["listen"].map { (n) throws(ConfigurationError) in try address(n, "keyServer.listen") }
        s.tlsListen = try e["tlsListen"].map { (n) throws(ConfigurationError) in try address(n, "keyServer.tlsListen") }
        if let t = e["tls"] {
            let te = try entries(t, at: "keyServer.tls", allowed: ["certificate", "key"])
            s.tlsCertificate = try string(try required(te, "certificate", at: "keyServer.tls", parent: t, hint: "bmsc-cert.pem"),
                                          "keyServer.tls.certificate", hint: "bmsc-cert.pem")
            s.tlsKey = try string(try required(te, "key", at: "keyServer.tls", parent: t, hint: "bmsc-key.pem"), "keyServer.tls.key", hint: "bmsc-key.pem")
        }
        if s.tlsListen != nil, s.tlsCertificate == nil {
            throw fail(node, "keyServer.tls", nil, "tlsListen needs a certificate and key",
                       "add tls: { certificate: bmsc-cert.pem, key: bmsc-key.pem } (see `mbms-gateway keyserver --help`)")
        }
        if s.tlsCertificate != nil, s.tlsListen == nil {
            throw fail(e["tls"], "keyServer.tlsListen", nil, "a TLS certificate but no address to serve HTTPS on", "add tlsListen: 0.0.0.0:8443")
        }
        if s.listen == nil, s.tlsListen == nil {
            throw fail(node, "keyServer.listen", nil, "the key server listens nowhere", "add listen: 127.0.0.1:8080 and/or tlsListen")
        }
        if let l = e["nonceLifetime"] {
            s.nonceLifetime = try duration(l, "keyServer.nonceLifetime", fix: "a few minutes, e.g. 5m")
            guard (10...86_400).contains(s.nonceLifetime) else {
                throw fail(l, "keyServer.nonceLifetime", l.scalar?.string, "out of range 10s…1d", "write e.g. 5m")
            }
        }
        if let p = e["scfPeers"] {
            guard let seq = p.sequence else { throw fail(p, "keyServer.scfPeers", p.scalar?.string, "expected a list", "write scfPeers: [10.0.0.5]") }
            for (i, n) in seq.enumerated() {
                let text = n.scalar?.string ?? ""
                guard let a = SocketAddress(parsing: text.contains(":") && !text.hasPrefix("[") ? "[\(text)]:1" : "\(text):1") else {
                    throw fail(n, "keyServer.scfPeers[\(i)]", text, "not an IP address", "write the SCF's IPv4 or IPv6 address, without a port")
                }
                s.scfPeers.append(a.host)
            }
        }
        s.mikeyListen = try e["mikeyListen"].map { (n) throws(ConfigurationError) in try address(n, "keyServer.mikeyListen") }
        if let v = e["verify"] { s.verify = try bool(v, "keyServer.verify") }
        if let l = e["mskPushLead"] { s.mskPushLead = try duration(l, "keyServer.mskPushLead", fix: "e.g. 1h") }
        if let r = e["pushRate"] {
            s.pushRate = Int(try integer(r, "keyServer.pushRate", range: 1...1_000_000, fix: "MSK messages per second, e.g. 1000"))
        }
        if let r = e["retransmitAfter"] {
            s.retransmitAfter = try duration(r, "keyServer.retransmitAfter", fix: "e.g. 2s")
            guard (1...3600).contains(s.retransmitAfter) else { throw fail(r, "keyServer.retransmitAfter", r.scalar?.string, "out of range 1s…1h", "write e.g. 2s") }
        }
        if let a = e["maximumAttempts"] {
            s.maximumAttempts = Int(try integer(a, "keyServer.maximumAttempts", range: 1...20, fix: "MSK messages per delivery, e.g. 5"))
        }
        return s
    }

    func parseUserServices(_ node: Node, sessions: [SessionConfiguration]) throws(ConfigurationError) -> [UserServiceSettings] {
        guard let seq = node.sequence else {
            throw fail(node, "userServices", node.scalar?.string, "expected a list", "write - { id: \"urn:3gpp:mbms:svc1\", sessions: [video] }")
        }
        var out: [UserServiceSettings] = []
        for (i, n) in seq.enumerated() {
            let path = "userServices[\(i)]"
            let e = try entries(n, at: path, allowed: ["id", "sessions", "register", "uicc"])
            let id = try string(try required(e, "id", at: path, parent: n, hint: "\"urn:3gpp:mbms:svc1\""), "\(path).id", hint: "\"urn:3gpp:mbms:svc1\"")
            guard id.count <= 512, !id.contains(where: { $0.isNewline || $0 == "\u{0}" }) else {
                throw fail(e["id"], "\(path).id", String(id.prefix(80)), "not a service ID (one line, at most 512 characters)", "write the USD serviceId URI")
            }
            guard !out.contains(where: { $0.serviceID == id }) else {
                throw fail(e["id"], "\(path).id", id, "duplicate service ID", "give each user service its own id")
            }
            let sNode = try required(e, "sessions", at: path, parent: n, hint: "[video, audio]")
            guard let names = sNode.sequence?.map({ $0.scalar?.string ?? "" }), !names.isEmpty else {
                throw fail(sNode, "\(path).sessions", sNode.scalar?.string, "expected a non-empty list of session names", "write sessions: [video]")
            }
            var groups: [KeyGroup] = []
            for name in names {
                guard let s = sessions.first(where: { $0.name == name }) else {
                    throw fail(sNode, "\(path).sessions", name, "no session of that name",
                               "use one of: \(sessions.map(\.name).joined(separator: ", "))")
                }
                groups.append(s.keyGroup)
            }
            var admission = UserServiceSettings.Admission.everyone
            if let r = e["register"] {
                if let word = r.scalar?.string {
                    switch word {
                    case "everyone": admission = .everyone
                    case "grants": admission = .grantsOnly
                    default: throw fail(r, "\(path).register", word, "unknown admission", "write everyone, grants, or a list of IMPI patterns")
                    }
                } else if let list = r.sequence?.compactMap({ $0.scalar?.string }), !list.isEmpty {
                    admission = .impiPatterns(list)
                } else {
                    throw fail(r, "\(path).register", nil, "expected everyone, grants or a list", "write register: [\"*@ims.example.org\"]")
                }
            }
            let uicc = try e["uicc"].map { (u) throws(ConfigurationError) in try bool(u, "\(path).uicc") } ?? false
            out.append(UserServiceSettings(serviceID: id, sessions: names, keyGroups: groups, admission: admission, requiresUICC: uicc))
        }
        return out
    }
}
