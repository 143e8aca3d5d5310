import CryptoCore
import Foundation
import KeyManagement
import MIKEY

/// How the Key Distribution function pushes MSK messages (`keyServer` section).
public struct MSKDistributionPolicy: Sendable, Equatable {
    /// Set the V bit and retransmit until the UE's verification message arrives (TS 33.246 6.4.5.2).
    public var verify: Bool
    /// Seconds before the first retransmission; doubled for each further one.
    public var firstRetransmission: Int64
    /// Messages per delivery at most (the first one included); then the delivery is given up.
    public var maximumAttempts: Int
    /// MSK messages built and sent per second at most.
    public var pushRate: Int
    /// How long before an MSK rollover the next MSK goes to every registered UE.
    public var pushLead: Int64

    public init(verify: Bool = true, firstRetransmission: Int64 = 2, maximumAttempts: Int = 5, pushRate: Int = 1000, pushLead: Int64 = 3600) {
        self.verify = verify
        self.firstRetransmission = max(1, firstRetransmission)
        self.maximumAttempts = max(1, maximumAttempts)
        self.pushRate = max(1, pushRate)
        self.pushLead = max(0, pushLead)
    }

    public init(gateway c: GatewayConfiguration) {
        let k = c.keyServer ?? KeyServerSettings()
        self.init(verify: k.verify, firstRetransmission: k.retransmitAfter, maximumAttempts: k.maximumAttempts,
                  pushRate: k.pushRate, pushLead: k.mskPushLead)
    }
}

/// One MIKEY message to send: to the UE's address, UDP 2269 (TS 33.246 6.3.2.3).
public struct OutgoingMIKEY: Sendable, Equatable {
    public var address: String
    public var bytes: [UInt8]
    public var deliveryID: Int64
    public var btid: String
    public var timestamp: UInt32
}

/// The Key Distribution function (TS 33.246 4.1.2, 6.3.2.3, 6.3.2.1B, 6.3.2.2.4, 6.4.5): turns
/// the durable delivery queue into MUK-protected MIKEY MSK messages, matches the UEs'
/// verification messages, retransmits with exponential back-off (each retransmission a new
/// message with a new TS, 6.4.3), gives up after a bound, stops when the UE's MUK (GBA key
/// lifetime) has expired, and queues the next MSK for every registered UE ahead of a rollover.
///
/// Pure apart from the store: no sockets and no clock (`now` is a parameter); the UDP layer
/// (`MSKDistributionService`) sends what `tick` returns and hands `received` what arrives.
/// One thread at a time.
public final class MSKDistributor: @unchecked Sendable {
    public let manager: KeyManager
    public let keyStore: any KeyServerStore
    public let queue: any MSKDeliveryQueue
    public let policy: MSKDistributionPolicy
    public let random: any RandomSource

    /// Counters for metrics and the summary.
    public struct Statistics: Sendable, Equatable {
        public var sentByReason: [String: Int] = [:]
        public var retransmissions = 0
        public var verified = 0
        public var verificationsRejected: [String: Int] = [:]
        public var gaveUp: [String: Int] = [:]
        public init() {}
    }
    public private(set) var statistics = Statistics()
    /// Why the last give-ups happened (B-TID and reason; never keys), for the log.
    public private(set) var log: [String] = []

    public init(manager: KeyManager, keyStore: any KeyServerStore, queue: any MSKDeliveryQueue, policy: MSKDistributionPolicy,
                random: any RandomSource = SystemRandomSource()) {
        self.manager = manager
        self.keyStore = keyStore
        self.queue = queue
        self.policy = policy
        self.random = random
    }

    var configuration: GatewayConfiguration { manager.configuration }
    var nafID: String { configuration.bmscFQDN }

    // MARK: Queueing

    /// The hand-over from the Key Request function: MSK pushes after `register` and
    /// `msk-request` (the current MSK, and the next one when it exists), invalidations after
    /// `deregister`.
    @discardableResult
    public func enqueue(deliveries: [MSKDelivery], invalidations: [MSKInvalidation], at now: Int64) throws -> Int {
        var rows: [DeliveryRow] = []
        let schedule = try? manager.schedule()
        let at = Date(timeIntervalSince1970: TimeInterval(now))
        for d in deliveries {
            let reason = d.reason == .registration ? "registration" : "msk-request"
            rows.append(DeliveryRow(impi: d.impi, btid: d.btid, ueAddress: d.ueAddress, keyGroup: d.keyGroup.keyGroup, keyNumber: d.keyNumber,
                                    kind: .key, reason: reason, nextAttemptAt: now, createdAt: now))
            // TS 33.246 6.3.2.3: the next MSK too when it already exists, so a rollover needs no wave.
            if d.keyNumber == 0, let g = KeyGroup(d.keyGroup.keyGroup), let next = try? schedule?.nextMSK(keyGroup: g, at: at) {
                rows.append(DeliveryRow(impi: d.impi, btid: d.btid, ueAddress: d.ueAddress, keyGroup: d.keyGroup.keyGroup,
                                        keyNumber: next.mskID.keyNumber, kind: .key, reason: reason, nextAttemptAt: now, createdAt: now))
            }
        }
        for v in invalidations {
            for g in v.keyGroups {
                guard let kg = KeyGroup(g.keyGroup), let s = schedule else { continue }
                // Every MSK of the group the UE may hold: the current and the next.
                for m in [try? s.msk(keyGroup: kg, at: at), try? s.nextMSK(keyGroup: kg, at: at)].compactMap({ $0 }) {
                    rows.append(DeliveryRow(impi: v.impi, btid: v.btid, ueAddress: v.ueAddress, keyGroup: g.keyGroup, keyNumber: m.mskID.keyNumber,
                                            kind: .invalidation, reason: "deregistration", nextAttemptAt: now, createdAt: now))
                }
            }
        }
        return try queue.enqueue(rows)
    }

    /// `keys pull`: a solicited pull (6.3.2.2.4) to every UE registered to a service using the
    /// key group, or to one B-TID. Returns how many were queued.
    @discardableResult
    public func enqueuePull(keyGroup: KeyGroup, btid: String? = nil, at now: Int64) throws -> Int {
        let rows = try registeredUEs(keyGroup: keyGroup).filter { btid == nil || $0.btid == btid }.map {
            DeliveryRow(impi: $0.impi, btid: $0.btid, ueAddress: $0.ueAddress, keyGroup: keyGroup.rawValue, keyNumber: 0,
                        kind: .solicitedPull, reason: "pull", nextAttemptAt: now, createdAt: now)
        }
        return try queue.enqueue(rows)
    }

    /// `keys rotate --invalidate`: the invalidated MSK's invalidation to every UE registered to
    /// a service using the key group.
    @discardableResult
    public func enqueueInvalidation(keyGroup: KeyGroup, keyNumber: UInt16, at now: Int64) throws -> Int {
        try queue.enqueue(try registeredUEs(keyGroup: keyGroup).map {
            DeliveryRow(impi: $0.impi, btid: $0.btid, ueAddress: $0.ueAddress, keyGroup: keyGroup.rawValue, keyNumber: keyNumber,
                        kind: .invalidation, reason: "invalidation", nextAttemptAt: now, createdAt: now)
        })
    }

    func registeredUEs(keyGroup: KeyGroup) throws -> [RegistrationRow] {
        let services = Set(configuration.userServices.filter { $0.keyGroups.contains(keyGroup) }.map(\.serviceID))
        return try keyStore.registrations().filter { !services.isDisjoint(with: $0.serviceIDs) }
    }

    /// Before each MSK rollover (`pushLead` ahead), the next MSK of every key group to every UE
    /// registered to a service using it, spread at `pushRate` so a large population does not
    /// burst. A UE that already has a delivery of that MSK is skipped.
    @discardableResult
    public func scheduleRollovers(at now: Int64) throws -> Int {
        let schedule = try manager.schedule()
        let at = Date(timeIntervalSince1970: TimeInterval(now))
        var added = 0
        for g in Set(configuration.userServices.flatMap(\.keyGroups)).sorted() {
            guard let next = try? schedule.nextMSK(keyGroup: g, at: at), next.validFrom > now, next.validFrom - now <= policy.pushLead else { continue }
            var rows: [DeliveryRow] = []
            for (i, r) in try registeredUEs(keyGroup: g).enumerated()
            where try !queue.hasDelivery(btid: r.btid, keyGroup: g.rawValue, keyNumber: next.mskID.keyNumber, kind: .key) {
                rows.append(DeliveryRow(impi: r.impi, btid: r.btid, ueAddress: r.ueAddress, keyGroup: g.rawValue, keyNumber: next.mskID.keyNumber,
                                        kind: .key, reason: "rollover", nextAttemptAt: now + Int64(i / policy.pushRate), createdAt: now))
            }
            added += try queue.enqueue(rows)
        }
        return added
    }

    // MARK: Sending

    /// Builds the due messages (at most `limit`), commits each delivery's new state (and the
    /// UE's TS counter) before returning them, so a crash after this call resends with new TS
    /// values and never repeats one.
    public func tick(now: Int64, limit: Int? = nil) throws -> [OutgoingMIKEY] {
        let due = try queue.dueDeliveries(now: now, limit: limit ?? policy.pushRate)
        guard !due.isEmpty else { return [] }
        let schedule = try manager.schedule()
        var out: [OutgoingMIKEY] = []
        for var d in due {
            if d.state == .awaitingVerification, d.attempts >= policy.maximumAttempts {
                try giveUp(&d, "no_verification", "no verification message after \(d.attempts) MSK messages")
                continue
            }
            guard let user = try keyStore.userKey(btid: d.btid), user.expiresAt > now else {
                // 6.3.2.2.4 / issue: no delivery under an expired MUK; the UE must bootstrap again.
                try giveUp(&d, "muk_expired", "the MUK (GBA key lifetime) of the UE has expired or is unknown")
                continue
            }
            do {
                guard let message = try build(&d, muk: user.muk, schedule: schedule, now: now) else { continue }
                if d.attempts > 0 { statistics.retransmissions += 1 }
                d.attempts += 1
                let acknowledged = d.kind != .solicitedPull && policy.verify
                d.state = acknowledged ? .awaitingVerification : .done
                d.nextAttemptAt = now + (policy.firstRetransmission << Int64(min(d.attempts - 1, 20)))
                try queue.updateDelivery(d)
                statistics.sentByReason[d.reason, default: 0] += 1
                out.append(OutgoingMIKEY(address: d.ueAddress, bytes: message, deliveryID: d.id, btid: d.btid, timestamp: d.lastTimestamp ?? 0))
            } catch let e as KeyStoreError {
                throw e   // the store is gone: the caller retries later
            } catch {
                try giveUp(&d, "build_failed", "\(error)")
            }
        }
        return out
    }

    private func giveUp(_ d: inout DeliveryRow, _ reason: String, _ note: String) throws {
        d.state = .gaveUp
        d.note = note
        try queue.updateDelivery(d)
        statistics.gaveUp[reason, default: 0] += 1
        log.append("gave up delivery \(d.id) (\(d.kind.rawValue), key group \(d.keyGroup)) to B-TID \(d.btid): \(note)")
        if log.count > 100 { log.removeFirst(log.count - 100) }
    }

    /// The message of delivery `d` (nil: nothing to send any more, the row is closed).
    private func build(_ d: inout DeliveryRow, muk: SecretBytes, schedule: KeySchedule, now: Int64) throws -> [UInt8]? {
        guard let group = KeyGroup(d.keyGroup), let session = configuration.session(forKeyGroup: group) else {
            try giveUp(&d, "unknown_key_group", "key group \(d.keyGroup) is not configured")
            return nil
        }
        let at = Date(timeIntervalSince1970: TimeInterval(now))
        let service: MSKDeliveryBuilder.Service = session.kind == .rtp
            ? .streaming(policy: MIKEYMSKMessageBuilder.srtpPolicy(session.protection), policyNumber: 0, ssrc: 0, roc: 0)
            : .download
        let record: MSKRecord?
        switch d.kind {
        case .key where d.keyNumber == 0: record = try? schedule.msk(keyGroup: group, at: at)
        case .key, .invalidation: record = schedule.snapshot.msk(MSKID(keyGroup: d.keyGroup, keyNumber: d.keyNumber))
        case .solicitedPull: record = try? schedule.msk(keyGroup: group, at: at)
        }
        let content: MSKDeliveryBuilder.Content
        let mskID: MIKEY.MSKID
        switch d.kind {
        case .key:
            guard let r = record, let key = r.msk, r.validUntil > now, r.invalidatedAt.map({ $0 > now }) ?? true else {
                try giveUp(&d, "msk_retired", "the MSK is retired or invalidated; nothing to deliver")
                return nil
            }
            content = .key(msk: key, seqL: r.keyValidity.seqL, seqU: r.keyValidity.seqU)
            mskID = MIKEY.MSKID(keyGroup: d.keyGroup, keyNumber: r.mskID.keyNumber)
        case .invalidation:
            guard let r = record, let key = r.msk else {
                // Its secrets are gone: the UE's copy has expired with its key validity anyway.
                d.state = .done
                d.note = "MSK retired before the invalidation went out"
                try queue.updateDelivery(d)
                return nil
            }
            // TS 33.246 6.3.2.1B: SEQl > SEQu.
            content = .invalidation(msk: key, seqL: max(r.keyValidity.seqU, 1), seqU: 0)
            mskID = MIKEY.MSKID(keyGroup: d.keyGroup, keyNumber: r.mskID.keyNumber)
        case .solicitedPull:
            content = .solicitedPull
            mskID = MIKEY.MSKID(keyGroup: d.keyGroup, keyNumber: 0)
        }
        let rand: [UInt8]
        if let r = record?.rand { rand = r } else { rand = try random.bytes(count: 16) }
        let csb = try random.bytes(count: 4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        // TS 33.246 6.4.3: one counter per UE (per MUK), committed before use.
        let ts = try manager.store.nextMSKMessageCounter(ueID: d.btid)
        let message = try MSKDeliveryBuilder(muk: muk, nafID: nafID, bTID: d.btid, keyDomainID: schedule.keyDomainID, mskID: mskID,
                                             content: content, service: d.kind == .solicitedPull ? .download : service, rand: rand,
                                             csbID: CSBID(csb), timestamp: ts,
                                             verificationRequested: d.kind != .solicitedPull && policy.verify).build()
        d.lastTimestamp = ts
        d.lastCSBID = csb
        d.lastMSKID = mskID.rawValue
        return message
    }

    // MARK: Verification

    /// What a datagram on UDP 2269 turned out to be.
    public enum Received: Equatable, Sendable {
        case verified(deliveryID: Int64)
        case rejected(String)
    }

    /// A UE's verification message (TS 33.246 6.4.5.2): matched to the open delivery by B-TID,
    /// CSB ID and TS, its MAC checked with the UE's MUK; the delivery is then done.
    public func received(_ bytes: [UInt8], now: Int64) -> Received {
        func reject(_ why: String) -> Received {
            statistics.verificationsRejected[why, default: 0] += 1
            return .rejected(why)
        }
        guard bytes.count <= 4096, let message = try? MIKEYDecoder.decode(bytes) else { return reject("malformed") }
        guard message.header.dataType == .preSharedVerification, let id = message.identities.first,
              case .counter(let ts)? = message.timestamp else { return reject("not_a_verification_message") }
        let btid = String(decoding: id.data, as: UTF8.self)
        do {
            guard var d = try queue.awaitingDelivery(btid: btid, csbID: message.header.csbID.rawValue, timestamp: ts) else { return reject("no_open_delivery") }
            guard let user = try keyStore.userKey(btid: btid), let mskID = d.lastMSKID,
                  let rand = try manager.store.snapshot().msk(MSKID(rawValue: mskID))?.rand else { return reject("no_key") }
            switch MSKVerificationMessage.verify(bytes, muk: user.muk, mskRAND: rand, nafID: Array(nafID.utf8), bTID: id.data,
                                                 expectedCSBID: message.header.csbID, expectedTimestamp: ts) {
            case .success:
                d.state = .done
                d.note = "verified"
                try queue.updateDelivery(d)
                statistics.verified += 1
                return .verified(deliveryID: d.id)
            case .failure(let e):
                return reject("\(e)".prefix(40).description)
            }
        } catch {
            return reject("store_unavailable")
        }
    }
}
