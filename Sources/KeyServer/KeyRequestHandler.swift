import CryptoCore
import Foundation
import MIKEY

/// Header fields in order; names compared case-insensitively (RFC 7230 3.2).
public struct HTTPHeaderFields: Equatable, Sendable, ExpressibleByDictionaryLiteral {
    public struct Field: Equatable, Sendable {
        public var name: String
        public var value: String
        public init(name: String, value: String) { self.name = name; self.value = value }
    }
    public var fields: [Field]

    public init(_ fields: [Field] = []) { self.fields = fields }
    public init(dictionaryLiteral elements: (String, String)...) { fields = elements.map { Field(name: $0.0, value: $0.1) } }

    public subscript(_ name: String) -> String? { fields.first { $0.name.lowercased() == name.lowercased() }?.value }
    public func values(_ name: String) -> [String] { fields.filter { $0.name.lowercased() == name.lowercased() }.map(\.value) }
    public mutating func add(_ name: String, _ value: String) { fields.append(Field(name: name, value: value)) }
}

/// One HTTP request as the front hands it over (already de-chunked; `target` exactly as on the
/// request line; `now` the front's clock).
public struct KeyServerRequest: Sendable {
    public var method: String
    public var target: String
    public var headers: HTTPHeaderFields
    public var body: [UInt8]
    /// The peer's IP address (TCP source): the UE address for MSK pushes (TS 33.246 6.3.1).
    public var sourceAddress: String
    public var now: Date

    public init(method: String, target: String, headers: HTTPHeaderFields = [:], body: [UInt8] = [], sourceAddress: String, now: Date) {
        self.method = method; self.target = target; self.headers = headers; self.body = body
        self.sourceAddress = sourceAddress; self.now = now
    }
}

public struct KeyServerResponse: Equatable, Sendable {
    public var status: Int
    /// Content-Length is left to the front.
    public var headers: HTTPHeaderFields
    public var body: [UInt8]
    public init(status: Int, headers: HTTPHeaderFields = [:], body: [UInt8] = []) {
        self.status = status; self.headers = headers; self.body = body
    }
}

/// The answer to one request and the state changes it implies.
public struct KeyServerOutcome: Sendable {
    public var response: KeyServerResponse
    /// To apply (`KeyServerState.apply`) before the response is sent.
    public var effects: [KeyServerEffect]
    /// Why the request ended this way, for the log (never contains key material or passwords).
    public var reason: String
    /// The request type, when the target named a known one.
    public var requestType: KeyRequestType?
}

/// The BM-SC Key Request function as a pure state machine (TS 33.246 6.2, 6.3.2, Annex G/H;
/// `keyserver.md` §3–§5): request in, response and effects out. Time comes with the request,
/// randomness (nonces) from the caller's generator; the state and the BSF are injected.
public struct KeyRequestHandler: Sendable {
    public let configuration: KeyServerConfiguration
    public let bootstrapping: any Bootstrapping
    public let state: any KeyServerState

    public init(configuration: KeyServerConfiguration, bootstrapping: any Bootstrapping, state: any KeyServerState) {
        self.configuration = configuration
        self.bootstrapping = bootstrapping
        self.state = state
    }

    /// Handles `request` and applies its effects to `state`; a state failure while applying
    /// turns the answer into 503 (nothing was promised to the UE yet).
    public func handleAndApply<R: RandomNumberGenerator>(_ request: KeyServerRequest, random: inout R) -> KeyServerOutcome {
        var outcome = handle(request, random: &random)
        guard !outcome.effects.isEmpty else { return outcome }
        do {
            try state.apply(outcome.effects)
        } catch {
            outcome = unavailable("state store: applying effects failed (\(type(of: error)))", requestType: outcome.requestType)
        }
        return outcome
    }

    /// Handles one request without applying its effects.
    public func handle<R: RandomNumberGenerator>(_ request: KeyServerRequest, random: inout R) -> KeyServerOutcome {
        // Request-URI: /keymanagement?requesttype=<type> (TS 33.246 Annex G, K6; unknown path → 404).
        let (path, query) = Self.splitTarget(request.target)
        guard path == configuration.path else {
            return plain(404, reason: "unknown path \(path)")
        }
        // TS 33.246 Table G.2.4-1: methods other than POST → 405 (with Allow, K-table INTERP).
        guard request.method == "POST" else {
            var r = plain(405, reason: "method \(request.method) not allowed")
            r.response.headers.add("Allow", "POST")
            return r
        }
        guard let typeText = Self.requestTypeValue(query) else {
            return plain(404, reason: "requesttype missing or garbled")
        }
        guard let type = KeyRequestType(rawValue: typeText) else {
            return plain(501, reason: "request type \(typeText) not implemented") // K8
        }
        guard request.body.count <= configuration.maximumBodyBytes else {
            return plain(400, reason: "body of \(request.body.count) bytes exceeds \(configuration.maximumBodyBytes)", type: type)
        }
        do {
            if type == .authorize { return try authorize(request) }
            let ue: AuthenticatedUE
            switch try authenticate(request, type: type, random: &random) {
            case let .success(u): ue = u
            case let .failure(refusal): return refusal.outcome
            }
            var outcome: KeyServerOutcome
            switch type {
            case .register: outcome = try register(request, ue: ue)
            case .deregister: outcome = try deregister(request, ue: ue)
            case .mskRequest: outcome = try mskRequest(request, ue: ue)
            case .authorize: outcome = plain(500, reason: "unreachable")
            }
            if let keyRecord = ue.newKeyRecord { outcome.effects.insert(.storeUserKey(keyRecord), at: 0) }
            // RFC 2617 3.2.3: Authentication-Info with rspauth over the response body.
            outcome.response.headers.add("Authentication-Info", DigestPolicy.authenticationInfo(
                algorithm: ue.algorithm, ha1: ue.ha1, credentials: ue.credentials, responseBody: outcome.response.body))
            return outcome
        } catch let e as BootstrappingError {
            if e == .timeout { return plain(504, reason: "Zn: \(e)", type: type) } // Table G.2.4-1
            return unavailable("Zn: \(e)", requestType: type)
        } catch {
            return unavailable("state store: \(Swift.type(of: error))", requestType: type)
        }
    }

    // MARK: Request-URI

    /// Path and query of an origin-form or absolute-form target (RFC 7230 5.3).
    static func splitTarget(_ target: String) -> (path: String, query: String?) {
        var t = Substring(target)
        for scheme in ["http://", "https://"] where t.lowercased().hasPrefix(scheme) {
            t = t.dropFirst(scheme.count)
            t = t.firstIndex(of: "/").map { t[$0...] } ?? "/"
        }
        if let hash = t.firstIndex(of: "#") { t = t[..<hash] }
        guard let q = t.firstIndex(of: "?") else { return (String(t), nil) }
        return (String(t[..<q]), String(t[t.index(after: q)...]))
    }

    /// The `requesttype` value: a token of lower-case letters and '-', surrounding spaces
    /// (also %20, the editorial space of Annex G) tolerated; nil when missing or garbled.
    static func requestTypeValue(_ query: String?) -> String? {
        guard let query else { return nil }
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, parts[0].lowercased() == "requesttype" else { continue }
            let value = parts[1].replacingOccurrences(of: "%20", with: " ").replacingOccurrences(of: "+", with: " ")
                .trimmingCharacters(in: .whitespaces).lowercased()
            guard !value.isEmpty, value.utf8.count <= 64,
                  value.utf8.allSatisfy({ (0x61...0x7A).contains($0) || (0x30...0x39).contains($0) || $0 == UInt8(ascii: "-") })
            else { return nil }
            return value
        }
        return nil
    }

    // MARK: Outcomes

    private func plain(_ status: Int, reason: String, type: KeyRequestType? = nil) -> KeyServerOutcome {
        KeyServerOutcome(response: KeyServerResponse(status: status), effects: [], reason: reason, requestType: type)
    }

    private func unavailable(_ reason: String, requestType: KeyRequestType?) -> KeyServerOutcome {
        var o = plain(503, reason: reason, type: requestType)
        o.response.headers.add("Retry-After", String(configuration.retryAfterSeconds))
        return o
    }

    // MARK: Digest authentication (TS 33.246 6.2.1.3 / Annex H, `keyserver.md` §3.2)

    struct AuthenticatedUE {
        var btid: String
        var impi: String
        var location: KeyManagementLocation
        var algorithm: DigestAlgorithm
        var ha1: String
        var credentials: DigestCredentials
        /// Set when the MUK / K1 outcome of this B-TID is not cached yet.
        var newKeyRecord: UserKeyRecord?
    }

    struct Refusal: Error { var outcome: KeyServerOutcome }

    /// 401 with a fresh nonce (stale=true when the digest was right but the nonce not).
    private func challenge<R: RandomNumberGenerator>(_ reason: String, stale: Bool = false, type: KeyRequestType, now: Date, random: inout R) throws -> Refusal {
        var bytes = [UInt8](repeating: 0, count: configuration.nonceBytes)
        for k in bytes.indices { bytes[k] = random.next() }
        let nonce = Hex.encode(bytes)
        try state.storeNonce(nonce, issuedAt: now)
        var o = plain(401, reason: reason, type: type)
        for c in configuration.digestPolicy.challenges(nonce: nonce, stale: stale) {
            o.response.headers.add("WWW-Authenticate", c.headerValue)
        }
        return Refusal(outcome: o)
    }

    private func authenticate<R: RandomNumberGenerator>(_ request: KeyServerRequest, type: KeyRequestType, random: inout R) throws -> Result<AuthenticatedUE, Refusal> {
        let now = request.now
        guard let header = request.headers["Authorization"] else {
            return .failure(try challenge("no credentials", type: type, now: now, random: &random))
        }
        let credentials: DigestCredentials
        do {
            credentials = try DigestCredentials.parse(header)
        } catch {
            return .failure(try challenge("Authorization: \(error)", type: type, now: now, random: &random))
        }
        let policy = configuration.digestPolicy
        let algorithm: DigestAlgorithm
        do {
            algorithm = try policy.checkParameters(credentials, requestTarget: request.target)
        } catch {
            return .failure(try challenge("Digest: \(error)", type: type, now: now, random: &random))
        }
        guard let nc = credentials.nc else {
            return .failure(try challenge("Digest: nc missing", type: type, now: now, random: &random))
        }
        let verdict = try state.checkNonce(credentials.nonce, nc: nc, now: now)
        if verdict == .unknown {
            return .failure(try challenge("Digest: nonce not issued by this server or forgotten", type: type, now: now, random: &random))
        }
        // Zn (TS 33.220 4.5.3): unknown B-TID → the UE must bootstrap again (K11: 401).
        guard let answer = try bootstrapping.answer(btid: credentials.username, nafID: configuration.nafID) else {
            return .failure(try challenge("B-TID unknown to the BSF: bootstrapping required", type: type, now: now, random: &random))
        }
        guard answer.keyExpiry > now else {
            return .failure(try challenge("GBA key lifetime of the B-TID ended: bootstrapping required", type: type, now: now, random: &random))
        }
        let cached = try state.userKey(btid: credentials.username)
        var candidates: [MBMSUserKeys]
        do {
            candidates = try GBAKeyDerivation.userKeyCandidates(for: answer, only: cached?.location)
            if candidates.isEmpty { candidates = try GBAKeyDerivation.userKeyCandidates(for: answer) }
        } catch {
            throw BootstrappingError.unavailable("key derivation: \(error)")
        }
        var passwords = candidates.map { GBAKeyDerivation.digestPassword(mrk: $0.mrk) }
        defer { for k in passwords.indices { SecureZero.zero(&passwords[k]) } }
        let matched: (index: Int, ha1: String)
        do {
            matched = try policy.verifyResponse(credentials, algorithm: algorithm, method: request.method, body: request.body, passwords: passwords)
        } catch {
            return .failure(try challenge("Digest: \(error)", type: type, now: now, random: &random))
        }
        // The digest is right; now the nonce must be fresh and the nc unused.
        switch verdict {
        case .expired:
            return .failure(try challenge("Digest: nonce expired", stale: true, type: type, now: now, random: &random))
        case let .replayed(highest):
            return .failure(try challenge("Digest: nc \(nc) replayed (highest accepted \(highest))", stale: true, type: type, now: now, random: &random))
        case .fresh, .unknown:
            break
        }
        let committed = try state.commitNonce(credentials.nonce, nc: nc, now: now)
        guard committed == .fresh else {
            return .failure(try challenge("Digest: nonce/nc used concurrently", stale: true, type: type, now: now, random: &random))
        }
        let keys = candidates[matched.index]
        let record = UserKeyRecord(btid: answer.btid, impi: answer.impi, location: keys.location, muk: keys.muk, expiry: answer.keyExpiry)
        return .success(AuthenticatedUE(
            btid: answer.btid, impi: answer.impi, location: keys.location, algorithm: algorithm, ha1: matched.ha1,
            credentials: credentials, newKeyRecord: cached == record ? nil : record))
    }

    // MARK: register / deregister / msk-request (TS 33.246 6.3.2.1, 6.3.2.1B, 6.3.2.2)

    private func bodyError(_ error: KeyServerXMLError, type: KeyRequestType) -> KeyServerOutcome {
        plain(400, reason: "\(error)", type: type)
    }

    private func register(_ request: KeyServerRequest, ue: AuthenticatedUE) throws -> KeyServerOutcome {
        let ids: [String]
        do { ids = try KeyRequestBodies.serviceIDs(from: request.body) } catch { return bodyError(error, type: .register) }
        let address = normalizedAddress(request.sourceAddress)
        // IMS-based MBMS: a registration naming an IMPU is authorised by the SCF's grant (§5.5).
        var grant: AuthorizationGrant?
        if let impu = identityHeaderValue(request.headers["X-3GPP-Intended-Identity"]) {
            grant = try state.grant(impu: impu)
        }
        var items: [(serviceID: String, status: Int)] = []
        var accepted: [String] = []
        var refusals: [String] = []
        for id in ids {
            guard let service = configuration.service(id) else {
                items.append((id, 404)); refusals.append("\(id): unknown service"); continue
            }
            let granted = grant.map { $0.serviceIDs.contains(id) && $0.ueAddress == address } ?? false
            guard service.admission.admits(impi: ue.impi) || granted else {
                items.append((id, 403)); refusals.append("\(id): not admitted"); continue
            }
            if service.requiresUICCKeyManagement, ue.location == .me {
                items.append((id, 403)); refusals.append("\(id): UICC key management required"); continue
            }
            items.append((id, 200))
            accepted.append(id)
        }
        var effects: [KeyServerEffect] = []
        if !accepted.isEmpty {
            effects.append(.register(impi: ue.impi, btid: ue.btid, ueAddress: address, serviceIDs: accepted, at: request.now))
            // Push the current MSK of each key group of the accepted services (6.3.2.1).
            var seen: Set<KeyGroupReference> = []
            for id in accepted {
                for group in configuration.service(id)?.keyGroups ?? [] where seen.insert(group).inserted {
                    effects.append(.deliverMSK(MSKDelivery(impi: ue.impi, btid: ue.btid, ueAddress: address, keyGroup: group, keyNumber: 0, reason: .registration)))
                }
            }
        }
        var headers: HTTPHeaderFields = [:]
        headers.add("Content-Type", KeyServerContentType.registerResponse)
        let body = KeyRequestBodies.registerResponse(items, vocabulary: configuration.vocabulary)
        return KeyServerOutcome(response: KeyServerResponse(status: 200, headers: headers, body: body), effects: effects,
                                reason: "register: \(accepted.count) of \(ids.count) accepted" + (refusals.isEmpty ? "" : "; " + refusals.joined(separator: "; ")),
                                requestType: .register)
    }

    private func deregister(_ request: KeyServerRequest, ue: AuthenticatedUE) throws -> KeyServerOutcome {
        let ids: [String]
        do { ids = try KeyRequestBodies.serviceIDs(from: request.body) } catch { return bodyError(error, type: .deregister) }
        let existing = try state.registration(impi: ue.impi)
        var items: [(serviceID: String, status: Int)] = []
        var removed: [String] = []
        for id in ids {
            // Unknown service → 404; a known one not registered is already in the asked-for state → 200.
            guard configuration.service(id) != nil else { items.append((id, 404)); continue }
            items.append((id, 200))
            removed.append(id)
        }
        var effects: [KeyServerEffect] = []
        if !removed.isEmpty, let existing {
            effects.append(.deregister(impi: ue.impi, serviceIDs: removed))
            // 6.3.2.1B: invalidate MSKs of key groups no remaining service needs.
            let remaining = existing.serviceIDs.subtracting(removed)
            let dropped = configuration.keyGroups(ofServices: existing.serviceIDs.intersection(removed))
                .subtracting(configuration.keyGroups(ofServices: remaining))
            if !dropped.isEmpty {
                effects.append(.invalidateMSKs(MSKInvalidation(impi: ue.impi, btid: ue.btid, ueAddress: existing.ueAddress, keyGroups: dropped)))
            }
        }
        var headers: HTTPHeaderFields = [:]
        headers.add("Content-Type", KeyServerContentType.registerResponse)
        let body = KeyRequestBodies.registerResponse(items, vocabulary: configuration.vocabulary)
        return KeyServerOutcome(response: KeyServerResponse(status: 200, headers: headers, body: body), effects: effects,
                                reason: "deregister: \(removed.count) of \(ids.count) removed", requestType: .deregister)
    }

    private func mskRequest(_ request: KeyServerRequest, ue: AuthenticatedUE) throws -> KeyServerOutcome {
        let items: [MSKRequestItem]
        do { items = try KeyRequestBodies.mskItems(from: request.body) } catch { return bodyError(error, type: .mskRequest) }
        let registration = try state.registration(impi: ue.impi)
        let registeredGroups = configuration.keyGroups(ofServices: registration?.serviceIDs ?? [])
        let known = configuration.allKeyGroups
        var results: [(item: MSKRequestItem, status: Int)] = []
        var effects: [KeyServerEffect] = []
        var queued: Set<MSKDelivery> = []
        for item in items {
            // K7 item codes: 400 undecodable / Key Group 0 (6.3.1), 404 unknown, 403 not registered (6.3.2.2).
            guard let domain = item.keyDomainID, let msk = item.mskID, msk.keyGroup != 0 else { results.append((item, 400)); continue }
            let group = KeyGroupReference(keyDomainID: domain, keyGroup: msk.keyGroup)
            guard known.contains(group) else { results.append((item, 404)); continue }
            guard let registration, registeredGroups.contains(group) else { results.append((item, 403)); continue }
            results.append((item, 200))
            let d = MSKDelivery(impi: ue.impi, btid: ue.btid, ueAddress: registration.ueAddress, keyGroup: group, keyNumber: msk.keyNumber, reason: .mskRequest)
            if queued.insert(d).inserted { effects.append(.deliverMSK(d)) }
        }
        var headers: HTTPHeaderFields = [:]
        headers.add("Content-Type", KeyServerContentType.mskResponse)
        let body = KeyRequestBodies.mskResponse(results, vocabulary: configuration.vocabulary)
        let ok = results.filter { $0.status == 200 }.count
        return KeyServerOutcome(response: KeyServerResponse(status: 200, headers: headers, body: body), effects: effects,
                                reason: "msk-request: \(ok) of \(items.count) accepted", requestType: .mskRequest)
    }

    // MARK: authorize (CR to TS 26.237, `keyserver.md` §5.5, K9)

    private func authorize(_ request: KeyServerRequest) throws -> KeyServerOutcome {
        let source = normalizedAddress(request.sourceAddress)
        guard configuration.scfPeers.contains(source) else {
            return plain(403, reason: "authorize from \(source), not a configured SCF peer", type: .authorize)
        }
        guard let impu = identityHeaderValue(request.headers["X-3GPP-Asserted-Identity"]) else {
            return plain(403, reason: "authorize without X-3GPP-Asserted-Identity", type: .authorize)
        }
        let body: AuthorizeRequestBody
        do { body = try KeyRequestBodies.authorize(from: request.body) } catch { return bodyError(error, type: .authorize) }
        guard let addressText = body.ueAddress, let ueAddress = canonicalIPAddress(addressText) else {
            return plain(400, reason: "authorize: UE IP address missing or invalid", type: .authorize)
        }
        let unknown = body.serviceIDs.filter { configuration.service($0) == nil }
        guard unknown.isEmpty else {
            return plain(403, reason: "authorize: unknown service(s) \(unknown.joined(separator: ", "))", type: .authorize)
        }
        let grant = AuthorizationGrant(impu: impu, serviceIDs: Set(body.serviceIDs), ueAddress: ueAddress, scfAddress: source, grantedAt: request.now)
        return KeyServerOutcome(response: KeyServerResponse(status: 200), effects: [.storeGrant(grant)],
                                reason: "authorize: \(impu) for \(body.serviceIDs.count) service(s)", requestType: .authorize)
    }
}
