import Atomics
import Foundation
import KeyManagement
import Logging
import PacketIO
import SRTP
#if canImport(Glibc)
import Glibc
#endif

/// What a reload of `run` re-reads (issue 19 finding 5): the configuration file, through `load`,
/// and the log level it may set.
public struct LiveReloadOptions: Sendable {
    /// The configuration the gateway was started with (what a reload compares against).
    public var configuration: GatewayConfiguration
    /// Reads the configuration again (`GatewayConfiguration.load(path:)` in `run`).
    public var load: @Sendable () throws -> GatewayConfiguration
    /// The level every logger of the run reads (`LiveLogLevelHandler`); nil: logLevel is not reloaded.
    public var logLevel: LiveLogLevel?
    /// The level when the configuration names none (`--log-level`, else info).
    public var defaultLogLevel: Logger.Level

    public init(configuration: GatewayConfiguration, load: @escaping @Sendable () throws -> GatewayConfiguration,
                logLevel: LiveLogLevel? = nil, defaultLogLevel: Logger.Level = .info) {
        self.configuration = configuration
        self.load = load
        self.logLevel = logLevel
        self.defaultLogLevel = defaultLogLevel
    }
}

/// One log level shared by every copy of a logger (the control thread's and each worker's),
/// so a reload can change it while they run: a relaxed atomic, read once per log call.
public final class LiveLogLevel: @unchecked Sendable {
    private let raw: ManagedAtomic<Int>

    public init(_ level: Logger.Level) { raw = ManagedAtomic(Self.index(level)) }

    public var level: Logger.Level {
        get {
            let i = raw.load(ordering: .relaxed)
            return Logger.Level.allCases.indices.contains(i) ? Logger.Level.allCases[i] : .info
        }
        set { raw.store(Self.index(newValue), ordering: .relaxed) }
    }

    private static func index(_ l: Logger.Level) -> Int { Logger.Level.allCases.firstIndex(of: l) ?? 2 }
}

/// A log handler whose level is a `LiveLogLevel` (shared, changed by reloads); everything else
/// is the wrapped handler's (format, metadata, destination).
public struct LiveLogLevelHandler: LogHandler {
    public var base: any LogHandler
    public let shared: LiveLogLevel

    public init(wrapping base: any LogHandler, level: LiveLogLevel) {
        self.base = base
        shared = level
    }

    public var logLevel: Logger.Level {
        get { shared.level }
        set { shared.level = newValue }
    }

    public var metadata: Logger.Metadata {
        get { base.metadata }
        set { base.metadata = newValue }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { base.metadataProvider }
        set { base.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { base[metadataKey: key] }
        set { base[metadataKey: key] = newValue }
    }

    public func log(event: LogEvent) { base.log(event: event) }
}

/// What a session did, summed over the paths it had (a reload that changes a session's
/// addresses gives it a new path) and kept after a reload removed it.
struct RetiredSession {
    var statistics: SessionStatistics
    var framesIn = 0, framesOut = 0
    var rollover: [LiveReport.Flow] = []
    private var contributions = 0

    init(name: String) { statistics = SessionStatistics(name: name) }

    /// Adds path `p`'s counters; its owner must no longer run it (joined, or acknowledged a plan without it).
    mutating func add(_ p: LiveGateway.Path) {
        let s = p.statistics
        if contributions == 0 {
            statistics = s
        } else {
            statistics.rtpPackets += s.rtpPackets
            statistics.rtcpPackets += s.rtcpPackets
            statistics.packetsIn += s.packetsIn
            statistics.bytesIn += s.bytesIn
            statistics.packetsOut += s.packetsOut
            statistics.bytesOut += s.bytesOut
            statistics.mikeySent += s.mikeySent
            statistics.mikeyBytes += s.mikeyBytes
            statistics.mtkSwitches += s.mtkSwitches
            for id in s.mtksUsed where !statistics.mtksUsed.contains(id) { statistics.mtksUsed.append(id) }
            for (reason, n) in s.drops { statistics.drops[reason, default: 0] += n }
        }
        contributions += 1
        statistics.mikeySent += p.mikeySent
        statistics.mikeyBytes += p.mikeyBytes
        framesIn += p.framesIn
        framesOut += p.framesOut + p.mikeySent
        // The flow state moves with the session, so the latest path's is the whole of it.
        rollover = p.flows.rollover.map { LiveReport.Flow(session: p.session.name, ssrc: String(format: "0x%08x", $0.ssrc), roc: $0.roc) }
    }
}

extension LiveGateway {
    /// Asks the control thread to reload: the configuration (`LiveOptions.reload`) and the key
    /// store, applied at its next round (within 100 ms). Safe from any thread (SIGHUP in `run`).
    public func requestReload() { reloadFlag.store(true, ordering: .releasing) }

    // MARK: key store changes (finding 4)

    /// Control thread, once a second and on reload: re-reads the key store when its revision
    /// moved (another process ran `keys rotate`, `keys init`, or a gateway on the same store
    /// extended it), logs what changed about the MSKs (IDs and windows, never key bytes) and
    /// rebuilds the published epochs the new schedule changes. A rotation moves a switch to an
    /// MTK boundary at least announceLead ahead (`MSKLifecycle.rotation`), so the workers switch
    /// to the new MSK at that boundary, with its MTK message sent first.
    func checkStore(at t: Int64) {
        let before = keySource.schedule.snapshot
        let changed: Bool
        do { changed = try keySource.refreshSchedule() } catch {
            if t - lastStoreErrorLog >= 10 {
                lastStoreErrorLog = t
                logger.error("key store could not be re-read; the published keys stay", metadata: ["error": "\(error)"])
            }
            return
        }
        guard changed else { return }
        let after = keySource.schedule.snapshot
        let changes = Self.mskChanges(from: before, to: after)
        if changes.isEmpty {
            logger.debug("key store revision changed", metadata: ["revision": "\(after.revision)"])
        }
        for c in changes { logger.notice("key store changed", metadata: c) }
        for p in paths { rebuildEpochs(p, at: t) }
    }

    /// What changed about the MSKs between two snapshots, one metadata set per change.
    static func mskChanges(from a: KeyStoreSnapshot, to b: KeyStoreSnapshot) -> [Logger.Metadata] {
        func time(_ t: Int64) -> Logger.MetadataValue {
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime]
            return "\(f.string(from: Date(timeIntervalSince1970: TimeInterval(t))))"
        }
        var out: [Logger.Metadata] = []
        for m in b.msks {
            let id: Logger.MetadataValue = "\(m.mskID.hex)"
            guard let o = a.msk(m.mskID) else {
                out.append(["change": "msk_added", "msk": id, "valid_from": time(m.validFrom), "valid_until": time(m.validUntil)])
                continue
            }
            if o.validFrom != m.validFrom || o.validUntil != m.validUntil {
                out.append(["change": "msk_window_moved", "msk": id, "valid_from": time(m.validFrom), "valid_until": time(m.validUntil),
                            "was_from": time(o.validFrom), "was_until": time(o.validUntil)])
            }
            if o.invalidatedAt == nil, let at = m.invalidatedAt {
                out.append(["change": "msk_invalidated", "msk": id, "at": time(at), "valid_until": time(m.validUntil)])
            }
            if o.seed != nil, m.seed == nil {
                out.append(["change": "msk_secrets_deleted", "msk": id])
            }
        }
        for o in a.msks where b.msk(o.mskID) == nil {
            out.append(["change": "msk_removed", "msk": "\(o.mskID.hex)"])
        }
        return out
    }

    /// Control thread: the epochs published for `p`, as the (new) schedule has them. An epoch
    /// whose MTK and window did not change stays the same object; a changed one is rebuilt and
    /// published, and the session's MIKEY messages go out now (the next MTK may be a new MSK's,
    /// due on the air announceLead before its switch: TS 33.246 6.3.3.2.2).
    func rebuildEpochs(_ p: Path, at t: Int64) {
        guard let pub = p.epochs.load(ordering: .acquiring) else {
            refreshEpochs(p, at: t)
            return
        }
        func same(_ x: KeyEpoch, _ y: KeyEpoch) -> Bool {
            x.mskID == y.mskID && x.mtkID == y.mtkID && x.validFrom == y.validFrom && x.validUntil == y.validUntil
        }
        do {
            let fresh = try keySource.epoch(for: p.session, at: t)
            let current = same(fresh, pub.current) ? pub.current : fresh
            var next: KeyEpoch? = nil
            if pub.next != nil || t + Self.nextEpochLead >= current.validUntil {
                let n = try keySource.epoch(for: p.session, at: current.validUntil)
                if let old = pub.next, same(n, old) { next = old } else { next = n }
            }
            guard current !== pub.current || next !== pub.next else { return }
            p.epochs.store(PublishedEpochs(current: current, next: next), ordering: .releasing)
            p.metrics.health.keysPublished(current: current, next: next)
            p.nextMIKEY = t
            var m: Logger.Metadata = ["session": "\(p.session.name)", "msk": "\(current.mskID.hex)", "mtk": "\(current.mtkID.rawValue)"]
            if let n = next {
                m["next_msk"] = "\(n.mskID.hex)"
                m["next_mtk"] = "\(n.mtkID.rawValue)"
                m["switch_at"] = "\(n.validFrom)"
            }
            logger.notice("key epochs follow the key store", metadata: m)
        } catch {
            logger.error("key store changed but the new epochs cannot be built; the published ones stay", metadata: [
                "session": "\(p.session.name)", "error": "\(error)"])
        }
    }

    // MARK: reload (finding 5)

    /// Control thread: applies the configuration file as it is now, as far as it can change
    /// live, then re-reads the key store. Applied: RTP sessions added, removed, or given other
    /// addresses (`destination`, `rtcpDestination`, `output`); the MIKEY repeat interval;
    /// `logLevel`. Refused with a log line naming the setting (the running value stays): the
    /// Key Domain, the key store and KEK, the time grid and MSK period (fixed by the store),
    /// a session's key group and protection (UEs hold them from its MSK messages), FLUTE
    /// channels (set up at start). A configuration that does not load changes nothing.
    func reload(at t: Int64) {
        logger.notice("reload: re-reading the configuration and the key store")
        guard let r = options.reload, let old = configuration else {
            checkStore(at: t)
            return
        }
        let new: GatewayConfiguration
        do { new = try r.load() } catch {
            logger.error("reload refused: the configuration does not load; the running one stays", metadata: ["error": "\(error)"])
            checkStore(at: t)
            return
        }
        var effective = old
        var refused: [(setting: String, reason: String)] = []

        // Settings of the whole gateway.
        if new.keyDomainID != old.keyDomainID {
            refused.append(("keyDomain", "the key store and every MSK in it belong to the Key Domain the run started with"))
        }
        if new.keyStore.path != old.keyStore.path { refused.append(("keyStore.path", "the key store is opened once, at start")) }
        if new.keyStore.kekFile != old.keyStore.kekFile { refused.append(("keyStore.kekFile", "the KEK is read once, at start")) }
        let grid = "the key store fixes the time grid (every gateway on it must agree)"
        if new.schedule.epoch != old.schedule.epoch { refused.append(("schedule.epoch", grid)) }
        if new.schedule.mtkPeriod != old.schedule.mtkPeriod { refused.append(("schedule.mtk.period", grid)) }
        if new.schedule.announceLead != old.schedule.announceLead { refused.append(("schedule.mtk.announceLead", grid)) }
        if new.schedule.mskPeriod != old.schedule.mskPeriod {
            refused.append(("schedule.msk.period", "new MSKs are planned with the period the run started with"))
        }
        // Not used by `run`; taken as they are.
        effective.bmscFQDN = new.bmscFQDN
        effective.keyServer = new.keyServer
        effective.userServices = new.userServices

        if new.schedule.repeatInterval != old.schedule.repeatInterval {
            var sc = announcerConfiguration
            sc.repeatInterval = new.schedule.repeatInterval
            announcer = MTKAnnouncer(sc)
            for p in paths { p.nextMIKEY = announcer.nextEvent(after: t) }
            effective.schedule.repeatInterval = new.schedule.repeatInterval
            logger.notice("reload: MIKEY repeat interval changed", metadata: ["repeat": "\(new.schedule.repeatInterval)s"])
        }
        if new.logLevel != old.logLevel, let box = r.logLevel {
            let level = new.logLevel.flatMap(Logger.Level.init(rawValue:)) ?? r.defaultLogLevel
            box.level = level
            effective.logLevel = new.logLevel
            logger.notice("reload: log level changed", metadata: ["log_level": "\(level)"])
        }

        // FLUTE channels are set up at start.
        let oldFLUTE = old.sessions.filter { $0.kind == .flute }, newFLUTE = new.sessions.filter { $0.kind == .flute }
        var flute = newFLUTE
        if oldFLUTE != newFLUTE {
            flute = oldFLUTE
            let names = Set(oldFLUTE.map(\.name)).symmetricDifference(newFLUTE.map(\.name))
                .union(oldFLUTE.filter { o in newFLUTE.contains { $0.name == o.name && $0 != o } }.map(\.name))
            refused.append(("sessions (FLUTE channels \(names.sorted().joined(separator: ", ")))", "FLUTE channels are set up at start"))
        }

        // RTP sessions.
        var added: [String] = [], removed: [String] = [], changed: [String] = []
        do {
            let wanted = try StreamingSession.sessions(of: new)
            let newConfigs = Dictionary(new.sessions.filter { $0.kind == .rtp }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let oldConfigs = Dictionary(old.sessions.filter { $0.kind == .rtp }.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            let running = Dictionary(paths.map { ($0.session.name, $0) }, uniquingKeysWith: { a, _ in a })
            var keep: [String: StreamingSession] = [:]      // name -> the session it runs as from now
            // name -> the configuration entry of the session as it runs from now
            var chosen: [String: SessionConfiguration] = [:]
            var replace: [(old: Path, new: StreamingSession)] = []
            var add: [StreamingSession] = []
            for w in wanted {
                guard let p = running[w.name] else { add.append(w); continue }
                var n = w
                n.index = p.session.index
                if n == p.session {
                    // Equal as the data plane sees it: the file's entry (a setting run does not use may differ).
                    keep[w.name] = p.session
                    chosen[w.name] = newConfigs[w.name] ?? oldConfigs[w.name]
                } else if n.keyGroup != p.session.keyGroup {
                    refused.append(("sessions[\(w.name)].keyGroup", "UEs hold this session's MSKs by key group; add the session under a new name instead"))
                    keep[w.name] = p.session
                    chosen[w.name] = oldConfigs[w.name]
                } else if n.policy != p.session.policy {
                    refused.append(("sessions[\(w.name)].protection", "UEs took the SRTP policy from the MSK messages (TS 33.246 6.4.5); it changes with the next MSK delivery after a restart"))
                    keep[w.name] = p.session
                    chosen[w.name] = oldConfigs[w.name]
                } else {
                    replace.append((p, n))
                }
            }
            let retiring = paths.filter { p in !wanted.contains { $0.name == p.session.name } }
            // Every address the gateway receives on from now, for the loop checks.
            var own = Set<TransportAddress>()
            for s in keep.values { own.insert(s.rtp); own.insert(s.rtcp) }
            for (_, n) in replace { own.insert(n.rtp); own.insert(n.rtcp) }
            for n in add { own.insert(n.rtp); own.insert(n.rtcp) }

            // 1. Sessions removed or replaced leave their workers first (flow state has one owner).
            let leaving = Set((retiring + replace.map(\.old)).map { ObjectIdentifier($0) })
            if !leaving.isEmpty {
                paths.removeAll { leaving.contains(ObjectIdentifier($0)) }
                publishPlans()
            }
            for p in retiring {
                retired[p.session.name, default: RetiredSession(name: p.session.name)].add(p)
                flowStash[p.session.keyGroup] = p.flows
                p.metrics.health.retire()   // no longer counts for /healthz
                removed.append(p.session.name)
                logger.notice("reload: session removed", metadata: ["session": "\(p.session.name)", "rtp": "\(p.session.rtp)"])
            }

            // 2. Key groups of added sessions into the store (as `keys init` would), then the store.
            let missing = add.filter { keySource.schedule.snapshot.keyGroup($0.keyGroup) == nil }.compactMap { newConfigs[$0.name] }
            if !missing.isEmpty {
                var c = keySource.manager.configuration
                c.sessions = missing
                do {
                    try KeyManager(configuration: c, store: keySource.manager.store, random: keySource.manager.random)
                        .initialize(at: Date(timeIntervalSince1970: TimeInterval(t)))
                } catch {
                    logger.error("reload: key groups of the added sessions could not be created", metadata: ["error": "\(error)"])
                }
            }
            checkStore(at: t)

            // 3. Replaced sessions: new sockets where the addresses changed, the same flow state.
            var opened: [Path] = []
            for (o, n) in replace {
                retired[o.session.name, default: RetiredSession(name: o.session.name)].add(o)
                do {
                    let plan = try routePlan(for: n, own: own)
                    let p = try openPath(n, plan: plan, epoch: try firstEpoch(for: n, at: t), flows: o.flows, reuse: o)
                    opened.append(p)
                    changed.append(n.name)
                    chosen[n.name] = newConfigs[n.name]
                } catch {
                    // The session goes on as it was (its counters so far are in `retired`: start afresh).
                    o.statistics = SessionStatistics(name: o.session.name)
                    o.framesIn = 0; o.framesOut = 0; o.mikeySent = 0; o.mikeyBytes = 0
                    opened.append(o)
                    chosen[n.name] = oldConfigs[n.name]
                    refused.append(("sessions[\(n.name)] addresses", "\(error)"))
                }
            }
            // 4. Added sessions: lock, bind, keys; a key group used earlier in this run continues its flow state.
            for n in add {
                do {
                    var flows = try SessionFlows(session: n)
                    if let stashed = flowStash[n.keyGroup] {
                        guard stashed.protector.policy == n.policy else {
                            throw LiveReloadError.keyGroupReused(session: n.name, keyGroup: n.keyGroup)
                        }
                        flows = stashed
                    }
                    let plan = try routePlan(for: n, own: own)
                    let p = try openPath(n, plan: plan, epoch: try firstEpoch(for: n, at: t), flows: flows)
                    flowStash[n.keyGroup] = nil
                    opened.append(p)
                    added.append(n.name)
                    if !sessionOrder.contains(n.name) { sessionOrder.append(n.name) }
                    chosen[n.name] = newConfigs[n.name]
                } catch {
                    logger.error("reload: session not added", metadata: ["session": "\(n.name)", "error": "\(error)"])
                }
            }

            // 5. The new and replaced sessions join the workers, with keys and MIKEY from now.
            for p in opened {
                refreshEpochs(p, at: t)
                announce(p, at: t)
                p.nextMIKEY = announcer.nextEvent(after: t)
                logger.notice("session ready", metadata: ["session": "\(p.session.name)", "rtp": "\(p.session.rtp)", "rtcp": "\(p.session.rtcp)",
                                                          "output": "\(p.rtpOut)", "rtcp_output": "\(p.rtcpOut)", "mikey": "\(p.mikeyOut)",
                                                          "reload": "\(changed.contains(p.session.name) ? "changed" : added.contains(p.session.name) ? "added" : "kept")"])
            }
            if !opened.isEmpty {
                paths += opened
                publishPlans()
            }
            effective.sessions = paths.compactMap { chosen[$0.session.name] ?? oldConfigs[$0.session.name] } + flute
        } catch {
            refused.append(("sessions", "\(error)"))
        }

        configuration = effective
        for r in refused {
            logger.warning("reload: not applied, the running value stays", metadata: [
                "setting": "\(r.setting)", "reason": "\(r.reason)", "fix": "restart run to apply it"])
        }
        logger.notice("configuration reloaded", metadata: [
            "sessions": "\(paths.count)", "added": "\(added.joined(separator: ","))", "removed": "\(removed.joined(separator: ","))",
            "changed": "\(changed.joined(separator: ","))", "refused": "\(refused.count)"])
    }

    /// The schedule configuration the MIKEY grid runs on now (the store's grid, this run's repeat).
    var announcerConfiguration: ScheduleConfiguration {
        var c = keySource.configuration
        c.repeatInterval = announcer.repeatInterval
        return c
    }

    /// Publishes `paths` to the workers (each path stays on the worker it is on; a new one goes
    /// to the worker with the fewest) and waits until every worker runs the new plan (or has
    /// ended): from then on no worker touches a path that is not in it.
    func publishPlans() {
        guard !workers.isEmpty else { return }
        var assignment = Array(repeating: [Path](), count: workers.count)
        var placed = Set<ObjectIdentifier>()
        for (w, worker) in workers.enumerated() {
            for p in worker.plan.load(ordering: .acquiring).paths where paths.contains(where: { $0 === p }) {
                assignment[w].append(p)
                placed.insert(ObjectIdentifier(p))
            }
        }
        for p in paths where !placed.contains(ObjectIdentifier(p)) {
            let w = assignment.indices.min { assignment[$0].count < assignment[$1].count } ?? 0
            assignment[w].append(p)
        }
        planGeneration += 1
        for (w, worker) in workers.enumerated() {
            worker.plan.store(WorkerPlan(paths: assignment[w], generation: planGeneration), ordering: .releasing)
        }
        for worker in workers {
            while worker.acknowledged.load(ordering: .acquiring) < planGeneration && !worker.finished.load(ordering: .acquiring) {
                usleep(1000)
            }
        }
    }
}

/// Notices writes to the key store's files between the once-a-second store checks: one stat()
/// of the SQLite file and one of its WAL per control round (every 100 ms at most), so another
/// process's `keys rotate` is seen within a round, well inside any announceLead.
struct StoreWatch {
    let paths: [String]
    private var last: [Fingerprint?] = []

    struct Fingerprint: Equatable {
        var inode: UInt64, size: Int64, seconds: Int, nanoseconds: Int
    }

    init(storePath: String) {
        paths = [storePath, storePath + "-wal"]
        last = paths.map(Self.fingerprint)
    }

    static func fingerprint(_ path: String) -> Fingerprint? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return Fingerprint(inode: UInt64(st.st_ino), size: Int64(st.st_size), seconds: st.st_mtim.tv_sec, nanoseconds: st.st_mtim.tv_nsec)
    }

    /// Whether a file changed since the last call.
    mutating func changed() -> Bool {
        let now = paths.map(Self.fingerprint)
        defer { last = now }
        return now != last
    }
}

enum LiveReloadError: Error, CustomStringConvertible {
    case keyGroupReused(session: String, keyGroup: KeyGroup)
    var description: String {
        switch self {
        case let .keyGroupReused(s, g):
            return "session \(s): key group \(g) was protected with another SRTP policy earlier in this run; its sender state cannot carry over (an SRTP packet index could repeat under the same MTK). Restart run to change it."
        }
    }
}
