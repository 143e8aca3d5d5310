import Atomics
import Foundation
import KeyManagement
import Logging
import PacketIO
import SRTP
#if canImport(Glibc)
import Glibc
#endif

/// Why `run` refuses to start; every case names the session or address and the fix.
public enum LiveSetupError: Error, CustomStringConvertible {
    case unicastWithoutOutput(session: String, destination: String)
    case outputLoops(session: String, output: String)
    case multicastLoopToSelf(session: String, group: String)
    case cannotReceive(session: String, address: String, error: SocketError)
    /// Another gateway holds the flow lock of this input (`FlowLock`), or another process the port.
    case inputHeld(session: String, address: String, holder: String, gateway: Bool)
    case cannotSend(session: String, address: String, error: SocketError)
    case noSuchInterface(String)
    case keys(session: String, underlying: String, config: String)

    public var description: String {
        switch self {
        case let .unicastWithoutOutput(s, d):
            return "session \(s): destination \(d) is a unicast address and the session has no `output:`, so protected packets would be sent back into the gateway. Add `output: HOST:PORT` (where the protected stream should go) to session \(s) in the configuration."
        case let .outputLoops(s, o):
            return "session \(s): output \(o) (or its RTCP port) is an address the gateway itself receives on, so protected packets would loop. Point `output:` of session \(s) at the receivers instead."
        case let .multicastLoopToSelf(s, g):
            return "session \(s): output is the multicast group \(g) the gateway receives on; with --multicast-loop its own packets would come back in. Drop --multicast-loop or give session \(s) a different `output:`."
        case let .cannotReceive(s, a, e):
            return "session \(s): cannot receive on \(a): \(e). \(Self.hint(e.errno, field: "destination"))"
        case let .inputHeld(s, a, h, true):
            return "session \(s): another gateway, \(h), already receives on \(a): two gateways on one input would both protect and send every packet (or split the input between them). Stop that one first (kill -TERM its PID) or give session \(s) another `destination:`."
        case let .inputHeld(s, a, h, false):
            return "session \(s): cannot receive on \(a): \(h) holds this address and port. Another program holds this address and port: stop it or change `destination:`."
        case let .cannotSend(s, a, e):
            return "session \(s): cannot open a socket to send to \(a): \(e). \(Self.hint(e.errno, field: "output"))"
        case let .noSuchInterface(n):
            return "--interface \(n): no such network interface (list them with `ip link`)."
        case let .keys(s, u, c):
            return "session \(s): no key material for now (\(u)). Create or extend the key store: mbms-gateway keys init --config \(c)"
        }
    }

    static func hint(_ e: Int32, field: String) -> String {
        switch e {
        case EADDRINUSE: return "Another program holds this address and port: stop it or change `\(field):`."
        case EADDRNOTAVAIL: return "This host has no such address: use one of its own addresses (or a multicast group) in `\(field):`."
        case EACCES: return "Ports below 1024 need privileges: use a higher port or run with CAP_NET_BIND_SERVICE."
        case ENODEV: return "Check --interface (list interfaces with `ip link`)."
        default: return "Check `\(field):` in the configuration."
        }
    }
}

/// Options of the live gateway.
public struct LiveOptions: Sendable {
    /// Multicast interface, TTL, loop and socket buffers, for the receive and send sockets.
    public var socket: UDPSocketOptions
    /// Datagrams per recvmmsg/sendmmsg batch (1…64).
    public var maxBatch: Int
    /// Path of the configuration, for messages that name the fix.
    public var configPath: String
    /// Packet-path threads. Sessions are sharded over them (session i on worker i mod N), so
    /// each flow's state has one owner; more workers than sessions leave the extra ones out.
    public var workers: Int
    /// Called on each worker thread as it starts (`starting` true) and as it ends, e.g. to read
    /// per-thread counters around the packet path (the benchmark's allocation count).
    public var workerThreadHook: (@Sendable (_ worker: Int, _ starting: Bool) -> Void)?
    /// What a reload (`requestReload()`, SIGHUP in `run`) re-reads; nil: only the key store.
    public var reload: LiveReloadOptions?

    public init(socket: UDPSocketOptions = UDPSocketOptions(), maxBatch: Int = 64, configPath: String = "F", workers: Int = 1) {
        self.socket = socket
        self.maxBatch = min(64, max(1, maxBatch))
        self.configPath = configPath
        self.workers = max(1, workers)
    }
}

/// What a live run did: the same statistics as `replay`, plus where each session went.
public struct LiveReport: Sendable, Codable {
    public struct Route: Sendable, Codable { public var session, rtp, rtcp, output, rtcpOutput, mikey: String }
    public struct Flow: Sendable, Codable { public var session: String; public var ssrc: String; public var roc: UInt32 }
    public var routes: [Route]
    public var statistics: GatewayStatistics
    public var rollover: [Flow]
    public var seconds: Double
    /// "signal" (SIGINT/SIGTERM or `stop()`) or "duration".
    public var stopReason: String
    /// FLUTE channels (download protection), as in `replay`.
    public var download: [DownloadStatistics] = []
}

/// `run`: the inline deployment of `DESIGN.md` §4 on UDP sockets.
///
/// Threading model: a **control thread** (the caller's, in `run`) and **N worker threads**.
/// Sessions are sharded over the workers (every flow's ROC and SRTCP index has exactly one
/// owner). A worker poll()s its sessions' RTP and RTCP sockets and, for each ready socket,
/// receives one batch (recvmmsg, up to 64 datagrams) into its own preallocated slot pool
/// (64 KiB + SRTP tailroom each), protects it in place — SRTP per SSRC through the batch protect
/// (one batched AES-CM call and one multi-message HMAC-SHA1 call per group), SRTCP one by one —
/// with the key epoch read once per batch, and sends it (sendmmsg) from the session's egress socket.
///
/// Keys reach the workers as immutable key epochs (current and, ahead of each switch, next)
/// that the control thread publishes per session through an atomic reference; a worker loads
/// it once per batch and never touches the key store, so store writes (extending the schedule)
/// stay on the control thread. The control thread also sends the MIKEY MTK messages on the
/// `MTKAnnouncer` grid (from a socket of its own per session, to output IP:2269), runs the
/// FLUTE channels, watches the stop flag and the deadline, re-reads the key store every second
/// (`checkStore`: another process's `keys rotate` reaches the workers at the next MTK boundary)
/// and applies reloads (`requestReload`, SIGHUP: `LiveReload.swift`). Which sessions a worker
/// serves is an immutable plan it loads once per poll round; a session leaves a worker only
/// after the worker acknowledged the plan without it, so its flow state never has two owners.
/// No locks on the packet path; shared state is the stop and reload flags, the plans, the
/// published epochs and the metrics (swift-metrics counters and gauges, relaxed atomics inside
/// swift-prometheus; the batch-size histogram on atomics). Statistics are kept per session by
/// its owner and merged after the workers are joined (or when a reload removes the session).
///
/// Each input address is this process's alone (issue 19 finding 3): a `FlowLock` taken before
/// binding refuses a second gateway (naming its PID), and unicast inputs are bound without
/// SO_REUSEADDR, so no other program can bind them either.
public final class LiveGateway: @unchecked Sendable {
    /// The RTP sessions protected now (a reload adds and removes some; read on the control thread).
    public var sessions: [StreamingSession] { paths.map(\.session) }
    public let options: LiveOptions
    public let metrics: GatewayMetrics
    public private(set) var statistics: GatewayStatistics

    let keySource: KeySource
    var announcer: MTKAnnouncer
    var logger: Logger
    /// The sessions' paths (control-owned list; each path's flow state is its worker's).
    var paths: [Path]
    let stopFlag = ManagedAtomic<Bool>(false)
    let reloadFlag = ManagedAtomic<Bool>(false)
    /// FLUTE channels (nil without any): see `LiveDownload`.
    var download: LiveDownload?
    /// Flow locks of the FLUTE channels' inputs.
    var downloadLocks: [FlowLock] = []

    // Each worker's slot pool: maxBatch buffers of `receiveCapacity + tailroom` bytes.
    let receiveCapacity = 65_536
    private(set) var protectCapacity: Int

    /// Largest UDP payload an IPv4 datagram can carry.
    static let maximumUDPPayload = 65_507

    // Lifecycle state (control thread; `LiveReload.swift`).
    /// The worker threads of a `run` in progress (empty before and after).
    var workers: [Worker] = []
    var planGeneration = 0
    /// Session names in order of first appearance (the summary's rows).
    var sessionOrder: [String]
    /// What sessions removed by a reload did (merged into the report by name).
    var retired: [String: RetiredSession] = [:]
    /// Sender state of sessions a reload removed, by key group: a later session of the same key
    /// group continues it, so it never starts again at the floor of a sender-index block this
    /// process already used (an (MTK, SSRC, index) is used once, `DESIGN.md` §7).
    var flowStash: [KeyGroup: SessionFlows] = [:]
    var metricsSessions: [String: GatewayMetrics.Session] = [:]
    /// The configuration in force (the last one loaded, less what a reload refused).
    var configuration: GatewayConfiguration?
    /// Next key store check (Unix milliseconds) and the last store error logged (Unix seconds).
    var nextStoreCheck: Int64 = 0
    /// The store's files, looked at every round (`StoreWatch`).
    lazy var storeWatch = StoreWatch(storePath: keySource.manager.configuration.keyStore.path)
    var lastStoreErrorLog: Int64 = .min

    /// One session's sockets, flow state and counters.
    final class Path {
        let session: StreamingSession
        var flows: SessionFlows
        let rtpIn: UDPBatchSocket
        let rtcpIn: UDPBatchSocket
        /// Held as long as the input sockets (`FlowLock`): RTP's, RTCP's.
        let locks: [FlowLock]
        let egress: UDPBatchSocket
        let rtpOut: TransportAddress
        let rtcpOut: TransportAddress
        let mikeyOut: TransportAddress
        let maxRTP: Int
        let maxRTCP: Int
        let metrics: GatewayMetrics.Session
        /// Published by the control thread, loaded by the owning worker once per batch.
        let epochs = ManagedAtomic<PublishedEpochs?>(nil)
        /// Worker-owned: the key (MSK ID ‖ MTK ID) last used (switch detection) and this session's counters.
        var lastKey: UInt64?
        var statistics: SessionStatistics
        var framesIn = 0, framesOut = 0
        var loggedDrops: Set<String> = []
        /// Control-owned: MIKEY socket and schedule, key refresh.
        let mikeySocket: UDPBatchSocket
        var nextMIKEY: Int64 = .max
        var mikeySent = 0, mikeyBytes = 0
        var lastKeyErrorLog: Int64 = .min
        /// After a failed key lookup, no new attempt (a store access) before this second.
        var keyRetryAfter: Int64 = .min
        /// Control-owned: the kernel's drop counters of the input sockets when last read
        /// (`countKernelDrops`), and the drops counted so far.
        var kernelDropsSeen: (rtp: UInt32, rtcp: UInt32)?
        var kernelDrops: (rtp: Int, rtcp: Int) = (0, 0)

        /// Adds what the kernel dropped on the input sockets since the last look to the metrics
        /// (control thread, once a second, and once at the end of the run).
        func countKernelDrops() {
            guard let rtpNow = rtpIn.kernelDrops(), let rtcpNow = rtcpIn.kernelDrops() else { return }
            if let seen = kernelDropsSeen {
                let (r, c) = (Int(rtpNow &- seen.rtp), Int(rtcpNow &- seen.rtcp))
                if r > 0 { metrics.rtpSocketDrops.increment(by: r); kernelDrops.rtp += r }
                if c > 0 { metrics.rtcpSocketDrops.increment(by: c); kernelDrops.rtcp += c }
            } else {
                // The sockets are new (or reused from before a reload): what they dropped before
                // counts too, from 0.
                if rtpNow > 0 { metrics.rtpSocketDrops.increment(by: Int(rtpNow)); kernelDrops.rtp += Int(rtpNow) }
                if rtcpNow > 0 { metrics.rtcpSocketDrops.increment(by: Int(rtcpNow)); kernelDrops.rtcp += Int(rtcpNow) }
            }
            kernelDropsSeen = (rtpNow, rtcpNow)
        }

        init(session: StreamingSession, flows: SessionFlows, rtpIn: UDPBatchSocket, rtcpIn: UDPBatchSocket, locks: [FlowLock],
             egress: UDPBatchSocket, mikeySocket: UDPBatchSocket, rtpOut: TransportAddress, rtcpOut: TransportAddress,
             metrics: GatewayMetrics.Session) {
            self.session = session
            self.flows = flows
            self.rtpIn = rtpIn
            self.rtcpIn = rtcpIn
            self.locks = locks
            self.egress = egress
            self.mikeySocket = mikeySocket
            statistics = SessionStatistics(name: session.name)
            self.rtpOut = rtpOut
            self.rtcpOut = rtcpOut
            mikeyOut = TransportAddress(rtpOut.address, StreamingSession.mikeyPort)
            maxRTP = LiveGateway.maximumUDPPayload - session.policy.maximumSRTPOverhead
            maxRTCP = LiveGateway.maximumUDPPayload - session.policy.srtcpOverhead
            self.metrics = metrics
        }
    }

    /// The key epochs a worker may use: the current MTK's and, from shortly before the switch,
    /// the next one's (so the switch happens on the packet's own clock, not the control loop's).
    final class PublishedEpochs: AtomicReference, @unchecked Sendable {
        let current: KeyEpoch
        let next: KeyEpoch?
        init(current: KeyEpoch, next: KeyEpoch?) {
            self.current = current
            self.next = next
        }
        @inline(__always) func epoch(at t: Int64) -> KeyEpoch? {
            if current.covers(t) { return current }
            if let n = next, n.covers(t) { return n }
            return nil
        }
    }

    /// Validates the sessions against live mode, binds every socket and loads the current key
    /// epoch of every session; throws `LiveSetupError` naming the session and the fix.
    public init(sessions: [StreamingSession], downloads: [DownloadSession] = [], downloadOptions: DownloadEngine.Options = DownloadEngine.Options(),
                keySource: KeySource, options: LiveOptions = LiveOptions(),
                metrics: GatewayMetrics = GatewayMetrics(), logger: Logger = Logger(label: "mbms-gateway.live")) throws {
        self.keySource = keySource
        self.options = options
        self.metrics = metrics
        self.logger = logger
        announcer = MTKAnnouncer(keySource.configuration)
        statistics = GatewayStatistics(sessions: sessions.map(\.name))
        sessionOrder = sessions.map(\.name)
        configuration = options.reload?.configuration
        paths = []
        protectCapacity = receiveCapacity + StreamingEngine.tailroom

        if let name = options.socket.interface, if_nametoindex(name) == 0 { throw LiveSetupError.noSuchInterface(name) }

        // Where each session's protected traffic goes, refusing loops back into the gateway.
        var own = Set<TransportAddress>()
        for s in sessions { own.insert(s.rtp); own.insert(s.rtcp) }
        let plans = try sessions.map { try routePlan(for: $0, own: own) }

        // Keys first: a missing store or schedule is the likeliest setup error.
        let now = Self.unixSeconds()
        let epochs = try sessions.map { try firstEpoch(for: $0, at: now) }

        // Sockets.
        for (i, s) in sessions.enumerated() {
            paths.append(try openPath(s, plan: plans[i], epoch: epochs[i], flows: try SessionFlows(session: s)))
        }
        if !downloads.isEmpty {
            for d in downloads { downloadLocks.append(try Self.lock(d.destination, session: d.name)) }
            download = try LiveDownload(downloads: downloads, keySource: keySource, options: downloadOptions, live: options,
                                        streamingAddresses: own, metrics: metrics)
        }
        protectCapacity = receiveCapacity + Self.tailroom(sessions)
    }

    static func tailroom(_ sessions: [StreamingSession]) -> Int {
        max(StreamingEngine.tailroom, sessions.map { max($0.policy.maximumSRTPOverhead, $0.policy.srtcpOverhead) }.max() ?? 0)
    }

    /// Where session `s` sends (output, RTCP output) and whether its egress must not loop
    /// multicast back to this host; refuses loops into `own` (every address the gateway receives on).
    func routePlan(for s: StreamingSession, own: Set<TransportAddress>) throws -> RoutePlan {
        let out: TransportAddress
        if let o = s.output {
            out = o
        } else if s.rtp.address.isMulticast {
            out = s.rtp
        } else {
            throw LiveSetupError.unicastWithoutOutput(session: s.name, destination: "\(s.rtp)")
        }
        // RTCP keeps its offset from RTP (port + 1 unless rtcpDestination says otherwise).
        let rtcpOut = TransportAddress(out.address, out.port &+ (s.rtcp.port &- s.rtp.port))
        var loopOff = false
        if own.contains(out) || own.contains(rtcpOut) {
            guard out.address.isMulticast else { throw LiveSetupError.outputLoops(session: s.name, output: "\(out)") }
            if options.socket.multicastLoop == true { throw LiveSetupError.multicastLoopToSelf(session: s.name, group: "\(out.address)") }
            loopOff = true
        }
        return RoutePlan(out: out, rtcpOut: rtcpOut, loopOff: loopOff)
    }

    struct RoutePlan {
        var out: TransportAddress
        var rtcpOut: TransportAddress
        var loopOff: Bool
    }

    /// The epoch in force at `t` for a session being set up; `LiveSetupError.keys` otherwise.
    func firstEpoch(for s: StreamingSession, at t: Int64) throws -> KeyEpoch {
        do { return try keySource.epoch(for: s, at: t) } catch {
            let underlying = (error as? KeyScheduleError).map { e -> String in
                if case let .schedule(_, _, u) = e { return u }
                return "\(e)"
            } ?? "\(error)"
            throw LiveSetupError.keys(session: s.name, underlying: underlying, config: options.configPath)
        }
    }

    /// The flow lock of an input address, or who holds it.
    static func lock(_ a: TransportAddress, session: String) throws -> FlowLock {
        do { return try FlowLock.acquire(a) } catch {
            switch error {
            case let .held(by: h):
                throw LiveSetupError.inputHeld(session: session, address: "\(a)", holder: h?.description ?? "a process whose PID could not be read", gateway: true)
            case let .system(operation, e):
                throw LiveSetupError.cannotReceive(session: session, address: "\(a)", error: SocketError(operation: operation, address: "\(a)", errno: e))
            }
        }
    }

    /// Binds (or, from `reuse`, takes over) session `s`'s sockets and makes its path with `flows`.
    func openPath(_ s: StreamingSession, plan: RoutePlan, epoch: KeyEpoch, flows: SessionFlows, reuse: Path? = nil) throws -> Path {
        // An input: taken over from `reuse` when it stays (a reload that moves only the other
        // one), else locked (`FlowLock`) and bound.
        func input(_ a: TransportAddress) throws -> (UDPBatchSocket, FlowLock) {
            if let old = reuse {
                if old.session.rtp == a { return (old.rtpIn, old.locks[0]) }
                if old.session.rtcp == a { return (old.rtcpIn, old.locks[1]) }
            }
            let lock = try Self.lock(a, session: s.name)
            do { return (try UDPBatchSocket(bind: a, options: options.socket, maxBatch: options.maxBatch), lock) } catch {
                if error.operation == "interface" { throw LiveSetupError.noSuchInterface(error.address) }
                if error.errno == EADDRINUSE, let h = FlowLock.udpPortHolder(a) {
                    throw LiveSetupError.inputHeld(session: s.name, address: "\(a)", holder: h.description, gateway: false)
                }
                throw LiveSetupError.cannotReceive(session: s.name, address: "\(a)", error: error)
            }
        }
        let (rtpIn, rtpLock) = try input(s.rtp)
        let (rtcpIn, rtcpLock) = try input(s.rtcp)
        let locks = [rtpLock, rtcpLock]
        var egressOptions = options.socket
        if plan.loopOff { egressOptions.multicastLoop = false }
        egressOptions.receiveBufferBytes = nil
        let any: TransportAddress
        if case .v6 = plan.out.address { any = TransportAddress(.v6(0, 0), 0) } else { any = TransportAddress(.v4(0), 0) }
        let egress: UDPBatchSocket
        do { egress = try UDPBatchSocket(bind: any, options: egressOptions, maxBatch: options.maxBatch) } catch {
            if error.operation == "interface" { throw LiveSetupError.noSuchInterface(error.address) }
            throw LiveSetupError.cannotSend(session: s.name, address: "\(plan.out)", error: error)
        }
        let mikeySocket: UDPBatchSocket
        do { mikeySocket = try UDPBatchSocket(bind: any, options: egressOptions, maxBatch: 1) } catch {
            throw LiveSetupError.cannotSend(session: s.name, address: "\(TransportAddress(plan.out.address, StreamingSession.mikeyPort))", error: error)
        }
        let m = metricsSessions[s.name] ?? GatewayMetrics.Session(metrics, session: s.name)
        metricsSessions[s.name] = m
        let p = Path(session: s, flows: flows, rtpIn: rtpIn, rtcpIn: rtcpIn, locks: locks, egress: egress,
                     mikeySocket: mikeySocket, rtpOut: plan.out, rtcpOut: plan.rtcpOut, metrics: m)
        p.epochs.store(PublishedEpochs(current: epoch, next: nil), ordering: .releasing)
        p.metrics.currentMTK.record(Int(epoch.mtkID.rawValue))
        p.flows.metrics = m   // flow counts and evictions (issue 19 finding 11)
        p.metrics.health.socketsBound(true)
        p.metrics.health.keysPublished(current: epoch, next: nil)
        return p
    }

    /// Asks the loops to stop; they drain what the sockets already hold and return. Safe from any thread.
    public func stop() { stopFlag.store(true, ordering: .releasing) }

    public var isStopping: Bool { stopFlag.load(ordering: .acquiring) }

    /// Where each session's traffic goes (for the start log line and the summary).
    public var routes: [LiveReport.Route] {
        paths.map { LiveReport.Route(session: $0.session.name, rtp: "\($0.session.rtp)", rtcp: "\($0.session.rtcp)",
                                     output: "\($0.rtpOut)", rtcpOutput: "\($0.rtcpOut)", mikey: "\($0.mikeyOut)") }
    }

    static func unixSeconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec)
    }

    static func unixMilliseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000
    }

    /// Runs until `stop()` (or a signal handler calling it) or for `duration` seconds, then
    /// drains: whatever the receive sockets already hold is protected and sent, nothing more
    /// is received. Returns the run's report.
    public func run(duration: Double? = nil) -> LiveReport {
        let started = DispatchTime.now().uptimeNanoseconds
        let deadline = duration.map { started + UInt64(max(0, $0) * 1e9) }
        for r in routes {
            logger.info("session ready", metadata: ["session": "\(r.session)", "rtp": "\(r.rtp)", "rtcp": "\(r.rtcp)",
                                                    "output": "\(r.output)", "rtcp_output": "\(r.rtcpOutput)", "mikey": "\(r.mikey)"])
        }
        // Once at start: the MTK messages on the air now (current, and the next within announceLead).
        let now = Self.unixSeconds()
        for p in paths {
            refreshEpochs(p, at: now)
            announce(p, at: now)
            p.nextMIKEY = announcer.nextEvent(after: now)
        }
        // Workers: session i on worker i mod N. With reloads, every requested worker starts
        // (sessions may be added later); without, more workers than sessions leave the extra out.
        let n = options.reload != nil ? options.workers : min(options.workers, paths.count)
        workers = (0..<n).map { w in
            Worker(paths: paths.enumerated().filter { $0.offset % n == w }.map(\.element), gateway: self, index: w)
        }
        let joined = DispatchGroup()
        for w in workers {
            joined.enter()
            let t = Thread { w.run(); joined.leave() }
            t.name = "mbms-worker-\(w.index)"
            t.stackSize = 1 << 20
            t.start()
        }

        var fds: [pollfd] = []
        for c in download?.channels ?? [] { fds.append(pollfd(fd: c.input.fd, events: Int16(POLLIN), revents: 0)) }
        var stopReason = "signal"
        logger.info("gateway running", metadata: ["sessions": "\(paths.count)", "workers": "\(n)", "batch": "\(options.maxBatch)",
                                                  "duration": "\(duration.map { "\($0)s" } ?? "until SIGINT/SIGTERM")"])
        nextStoreCheck = Self.unixMilliseconds() + Self.storeCheckInterval
        while !stopFlag.load(ordering: .relaxed) {
            if let d = deadline, DispatchTime.now().uptimeNanoseconds >= d { stopReason = "duration"; break }
            if reloadFlag.exchange(false, ordering: .acquiringAndReleasing) { reload(at: Self.unixSeconds()) }
            // Key epochs and MIKEY events due; the key store's revision once a second.
            let nowMs = Self.unixMilliseconds()
            let nowS = nowMs / 1000
            if storeWatch.changed() || nowMs >= nextStoreCheck {
                nextStoreCheck = nowMs + Self.storeCheckInterval
                checkStore(at: nowS)
                for p in paths { for l in p.locks { l.answerProbes() }; p.countKernelDrops() }
                for l in downloadLocks { l.answerProbes() }
            }
            var nextDue = Int64.max
            for p in paths {
                refreshEpochs(p, at: nowS)
                if p.nextMIKEY <= nowS {
                    announce(p, at: nowS)
                    p.nextMIKEY = announcer.nextEvent(after: nowS)
                }
                nextDue = min(nextDue, p.nextMIKEY)
            }
            download?.sendDue(now: Double(nowMs) / 1000)
            // Wake for the next MIKEY event, the next paced FLUTE datagram, and at least every
            // 100 ms (key epochs, the stop and reload flags).
            var timeout: Int64 = nextDue == .max ? 100 : min(100, max(0, nextDue &* 1000 &- nowMs))
            if let due = download?.nextDue { timeout = min(timeout, max(0, Int64(due * 1000) - nowMs)) }
            if let d = deadline {
                let left = Int64(d / 1_000_000) - Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
                timeout = min(timeout, max(0, left))
            }
            if fds.isEmpty {
                if timeout > 0 { usleep(UInt32(timeout) * 1000) }
                continue
            }
            let ready = poll(&fds, nfds_t(fds.count), Int32(timeout))
            if ready <= 0 { continue }
            for k in 0..<fds.count where fds[k].revents != 0 {
                fds[k].revents = 0
                do { try download?.pump(k, now: Double(Self.unixMilliseconds()) / 1000) } catch {
                    logger.error("FLUTE channel failed to protect an object", metadata: ["error": "\(error)"])
                }
            }
        }
        // Stop the workers; each drains what its sockets already hold (bounded).
        stopFlag.store(true, ordering: .releasing)
        metrics.health.markStopping()
        joined.wait()
        let drained = workers.map(\.drained).reduce(0, +)
        // The worker objects may outlive this call a little (their threads' closures): they let
        // go of the paths now, so sockets and flow locks end with the gateway, not later.
        for w in workers { w.plan.store(WorkerPlan(paths: [], generation: .max), ordering: .releasing) }
        workers = []
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        logger.info("gateway stopped", metadata: ["reason": "\(stopReason)", "drained": "\(drained)",
                                                  "seconds": "\(String(format: "%.1f", seconds))"])
        // Drain the FLUTE channels too: what their sockets hold, then everything queued.
        if let d = download {
            for k in d.channels.indices {
                var rounds = 0
                while rounds < 256, ((try? d.pump(k, now: Double(Self.unixMilliseconds()) / 1000)) ?? 0) > 0 { rounds += 1 }
            }
            d.sendDue(now: nil)
        }
        // The workers are done: the kernel's drops (receive buffer full) go into each session's
        // drop counts, as socket_rcvbuf_full.
        for p in paths {
            p.countKernelDrops()
            let n = p.kernelDrops.rtp + p.kernelDrops.rtcp
            if n > 0 { p.statistics.drops[GatewayMetrics.Session.socketDropReason, default: 0] += n }
        }
        // Merge, by session name in order of first appearance: each session's counters (its
        // worker's), what the control thread sent, and what sessions removed by a reload did.
        var merged: [String: RetiredSession] = retired
        for p in paths { merged[p.session.name, default: RetiredSession(name: p.session.name)].add(p) }
        statistics = GatewayStatistics(sessions: [])
        var flows: [LiveReport.Flow] = []
        for name in sessionOrder {
            guard let r = merged[name] else { continue }
            statistics.sessions.append(r.statistics)
            statistics.framesIn += r.framesIn
            statistics.framesOut += r.framesOut
            flows += r.rollover
        }
        var report = LiveReport(routes: routes, statistics: statistics, rollover: flows, seconds: seconds, stopReason: stopReason)
        report.download = download?.statistics ?? []
        return report
    }

    /// How often the control thread re-reads the key store's revision (`checkStore`) whatever
    /// its files look like; a write to them (`StoreWatch`) triggers a check at the next round.
    /// A `keys rotate` moves a switch at least `announceLead` ahead, so it is seen in time to
    /// announce the new MTK (TS 33.246 6.3.3.2.2).
    static let storeCheckInterval: Int64 = 1000

    /// Control thread: makes sure session `p` has the epoch in force at `t` published and,
    /// within `announceLead` of the switch, the next one too. A lookup past the MSKs in the
    /// store extends the store (`KeySource`): a store write on this thread, once per MSK period.
    /// On failure the previous epochs stay (the worker drops packets they do not cover as
    /// "no_key"); retried once a second, logged at most every 10 s.
    func refreshEpochs(_ p: Path, at t: Int64) {
        let published = p.epochs.load(ordering: .acquiring)
        if let pub = published, pub.current.covers(t),
           t + Self.nextEpochLead < pub.current.validUntil || pub.next?.validFrom == pub.current.validUntil {
            return   // in force now, and the next one is there when it is due
        }
        var current = published?.epoch(at: t)
        var next = published?.next
        guard t >= p.keyRetryAfter else { return }
        do {
            if current == nil { current = try keySource.epoch(for: p.session, at: t) }
            guard let c = current else { return }
            if t + Self.nextEpochLead >= c.validUntil {
                if next?.validFrom != c.validUntil { next = try keySource.epoch(for: p.session, at: c.validUntil) }
            } else {
                next = nil
            }
            p.epochs.store(PublishedEpochs(current: c, next: next), ordering: .releasing)
            p.metrics.health.keysPublished(current: c, next: next)
        } catch {
            p.keyRetryAfter = t + 1
            if t - p.lastKeyErrorLog >= 10 {
                p.lastKeyErrorLog = t
                logger.error("no key epoch: packets outside the published MTKs are dropped", metadata: [
                    "session": "\(p.session.name)", "error": "\(error)", "fix": "mbms-gateway keys init --config \(options.configPath)"])
            }
        }
    }

    /// Seconds before an MTK switch from which the next epoch is published to the workers.
    static let nextEpochLead: Int64 = 3

    /// Control thread: sends the MIKEY MTK messages on the air at `t` for one session to output IP:2269.
    func announce(_ p: Path, at t: Int64) {
        do {
            for m in try keySource.transmissions(for: p.session, at: t) {
                var message = try keySource.mtkMessage(m)
                let sent: Int = try message.withUnsafeMutableBytes { b throws -> Int in
                    guard let base = b.baseAddress else { return 0 }
                    var slot = DatagramSlot(bytes: base, capacity: b.count)
                    slot.length = b.count
                    slot.peer = p.mikeyOut
                    return try withUnsafeMutablePointer(to: &slot) { try p.mikeySocket.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
                }
                guard sent == 1 else { continue }
                p.mikeySent += 1
                p.mikeyBytes += message.count
                p.metrics.mikeySent.increment()
                p.metrics.mikeyBytes.increment(by: message.count)
                logger.debug("MIKEY MTK message sent", metadata: ["session": "\(p.session.name)", "msk": "\(m.mskID)", "mtk": "\(m.mtkID)",
                                                                  "to": "\(p.mikeyOut)", "bytes": "\(message.count)"])
            }
        } catch {
            logger.error("MIKEY MTK message not sent", metadata: ["session": "\(p.session.name)", "to": "\(p.mikeyOut)", "error": "\(error)"])
        }
    }

    /// The sessions one worker serves: immutable, replaced as a whole by the control thread.
    final class WorkerPlan: AtomicReference, @unchecked Sendable {
        let paths: [Path]
        let generation: Int
        init(paths: [Path], generation: Int) {
            self.paths = paths
            self.generation = generation
        }
    }

    /// One packet-path thread: its sessions' sockets, its own slot pool, their flow state.
    final class Worker: @unchecked Sendable {
        /// Published by the control thread; loaded once per poll round. The worker stores the
        /// generation it runs in `acknowledged`: from then on it no longer touches paths that
        /// are not in that plan (their flow state may move to another path).
        let plan: ManagedAtomic<WorkerPlan>
        let acknowledged = ManagedAtomic<Int>(0)
        /// Set once the worker drained and ended: it touches no path any more.
        let finished = ManagedAtomic<Bool>(false)
        let index: Int
        unowned let gateway: LiveGateway
        let logger: Logger
        let slots: UnsafeMutableBufferPointer<DatagramSlot>
        let pool: UnsafeMutableRawPointer
        let protectCapacity: Int
        var drained = 0
        /// SRTP view of a received batch (and which datagram slot each is), and the grouping scratch.
        let rtp: UnsafeMutableBufferPointer<SRTPPacketSlot>
        let rtpSlot: UnsafeMutableBufferPointer<Int>
        let scratch: UnsafeMutableBufferPointer<SRTPPacketSlot>
        let scratchOwner: UnsafeMutableBufferPointer<Int>

        init(paths: [Path], gateway: LiveGateway, index: Int) {
            plan = ManagedAtomic(WorkerPlan(paths: paths, generation: 0))
            self.gateway = gateway
            self.index = index
            logger = gateway.logger
            protectCapacity = gateway.protectCapacity
            let batch = gateway.options.maxBatch
            pool = UnsafeMutableRawPointer.allocate(byteCount: protectCapacity * batch, alignment: 64)
            slots = .allocate(capacity: batch)
            rtp = .allocate(capacity: 64)
            rtpSlot = .allocate(capacity: 64)
            scratch = .allocate(capacity: 64)
            scratchOwner = .allocate(capacity: 64)
            for k in 0..<batch {
                slots.initializeElement(at: k, to: DatagramSlot(bytes: pool + k * protectCapacity, capacity: gateway.receiveCapacity))
            }
        }

        deinit {
            slots.deinitialize()
            slots.deallocate()
            pool.deallocate()
            rtp.deallocate()
            rtpSlot.deallocate()
            scratch.deallocate()
            scratchOwner.deallocate()
        }

        func run() {
            gateway.options.workerThreadHook?(index, true)
            defer {
                finished.store(true, ordering: .releasing)
                gateway.options.workerThreadHook?(index, false)
            }
            var current = plan.load(ordering: .acquiring)
            var fds: [pollfd] = []
            func watch(_ paths: [Path]) {
                fds.removeAll(keepingCapacity: true)
                for p in paths {
                    fds.append(pollfd(fd: p.rtpIn.fd, events: Int16(POLLIN), revents: 0))
                    fds.append(pollfd(fd: p.rtcpIn.fd, events: Int16(POLLIN), revents: 0))
                }
            }
            watch(current.paths)
            while !gateway.stopFlag.load(ordering: .relaxed) {
                // A new plan (a reload added or removed sessions): one atomic load per round.
                let latest = plan.load(ordering: .acquiring)
                if latest !== current {
                    current = latest
                    watch(current.paths)
                    acknowledged.store(current.generation, ordering: .releasing)
                }
                // 100 ms at most between looks at the stop flag and the plan.
                let ready = fds.isEmpty ? Int32(usleep(100_000)) : poll(&fds, nfds_t(fds.count), 100)
                if ready <= 0 { continue }
                for k in 0..<fds.count where fds[k].revents != 0 {
                    fds[k].revents = 0
                    _ = pump(current.paths[k / 2], rtcp: k % 2 == 1)
                }
            }
            // Drain: what the kernel already holds for us (bounded), then stop.
            for p in current.paths {
                for rtcp in [false, true] {
                    var rounds = 0
                    while rounds < 256 {
                        let n = pump(p, rtcp: rtcp)
                        if n == 0 { break }
                        drained += n
                        rounds += 1
                    }
                }
            }
        }

        /// The keys for `p` at `t` from the published epochs (one atomic load per batch); nil
        /// when none covers t (the control thread has not caught up, or the store failed).
        @inline(__always)
        private func keys(_ p: Path, at t: Int64) -> SRTPSessionKeys? {
            guard let e = p.epochs.load(ordering: .acquiring)?.epoch(at: t) else { return nil }
            let id = e.mtkID.rawValue
            // MSK ID ‖ MTK ID: a rotation may switch to a new MSK whose first MTK ID equals the last one's.
            let key = UInt64(e.mskID.rawValue) << 16 | UInt64(id)
            if p.lastKey != key {
                if let old = p.lastKey {
                    p.statistics.mtkSwitches += 1
                    p.metrics.mtkSwitches.increment()
                    logger.info("MTK switch", metadata: ["session": "\(p.session.name)", "msk": "\(e.mskID)", "mtk": "\(id)",
                                                         "previous_mtk": "\(old & 0xFFFF)"])
                }
                p.lastKey = key
                if !p.statistics.mtksUsed.contains(id) { p.statistics.mtksUsed.append(id) }
                p.metrics.currentMTK.record(Int(id))
            }
            return e.keys
        }

        private func countDrop(_ p: Path, rtcp: Bool, _ reason: String, _ n: Int = 1) {
            p.statistics.drops[reason, default: 0] += n
            (rtcp ? p.metrics.rtcp : p.metrics.rtp).drop(reason, n)
            if !p.loggedDrops.contains(reason) {
                p.loggedDrops.insert(reason)
                logger.warning("dropping packets (first of this reason; counted in mbms_drops_total)",
                               metadata: ["session": "\(p.session.name)", "kind": "\(rtcp ? "rtcp" : "rtp")", "reason": "\(reason)"])
            }
        }

        /// One batch from one socket: receive, protect in place, send. Returns datagrams received.
        private func pump(_ p: Path, rtcp: Bool) -> Int {
            let n: Int
            do { n = try (rtcp ? p.rtcpIn : p.rtpIn).receive(into: slots, timeoutMilliseconds: 0) } catch {
                logger.error("receive failed", metadata: ["session": "\(p.session.name)", "error": "\(error)"])
                return 0
            }
            guard n > 0 else { return 0 }
            let flow = rtcp ? p.metrics.rtcp : p.metrics.rtp
            var bytesIn = 0, out = 0, bytesOut = 0
            for k in 0..<n { bytesIn += slots[k].length }
            if let keys = keys(p, at: LiveGateway.unixSeconds()) {
                let limit = rtcp ? p.maxRTCP : p.maxRTP
                if rtcp {
                    for k in 0..<n {
                        let length = slots[k].length
                        let admitted = p.session.admits(slots[k].peer)   // `source:` (the peer is the source after receive)
                        slots[k].peer = nil
                        guard admitted else { countDrop(p, rtcp: true, "source_filtered"); continue }
                        guard length <= limit else { countDrop(p, rtcp: true, "too_large"); continue }
                        do {
                            let protected = try p.flows.protect(slots[k].bytes, length: length, capacity: protectCapacity, rtcp: true, keys: keys)
                            slots[k].length = protected
                            slots[k].peer = p.rtcpOut
                            out += 1
                            bytesOut += protected
                        } catch {
                            countDrop(p, rtcp: true, error.reason)
                        }
                    }
                } else {
                    protectRTP(p, count: n, limit: limit, keys: keys, out: &out, bytesOut: &bytesOut)
                }
                if out > 0 {
                    do { try p.egress.send(UnsafeMutableBufferPointer(rebasing: slots[0..<n])) } catch {
                        countDrop(p, rtcp: rtcp, "send_error", out)
                        logger.warning("send failed", metadata: ["session": "\(p.session.name)", "to": "\(rtcp ? p.rtcpOut : p.rtpOut)", "error": "\(error)"])
                        out = 0
                        bytesOut = 0
                    }
                }
            } else {
                countDrop(p, rtcp: rtcp, "no_key", n)
            }
            // Statistics and metrics: once per batch.
            p.statistics.flowsEvicted = p.flows.evictions
            p.framesIn += n
            p.framesOut += out
            p.statistics.packetsIn += n
            p.statistics.bytesIn += bytesIn
            p.statistics.packetsOut += out
            p.statistics.bytesOut += bytesOut
            if rtcp { p.statistics.rtcpPackets += n } else { p.statistics.rtpPackets += n }
            flow.packetsIn.increment(by: n)
            flow.bytesIn.increment(by: bytesIn)
            if out > 0 {
                flow.packetsOut.increment(by: out)
                flow.bytesOut.increment(by: bytesOut)
            }
            flow.batch.record(n)
            flow.lastBatch.record(n)
            return n
        }

        /// SRTP of a received batch through the batch protect (`SessionFlows.protectRTP(mixed:)`).
        private func protectRTP(_ p: Path, count n: Int, limit: Int, keys: SRTPSessionKeys, out: inout Int, bytesOut: inout Int) {
            var m = 0
            for k in 0..<n {
                let admitted = p.session.admits(slots[k].peer)   // `source:` (the peer is the source after receive)
                slots[k].peer = nil
                guard admitted else { countDrop(p, rtcp: false, "source_filtered"); continue }
                guard slots[k].length <= limit else { countDrop(p, rtcp: false, "too_large"); continue }
                rtp[m] = SRTPPacketSlot(bytes: slots[k].bytes, length: slots[k].length, capacity: protectCapacity)
                rtpSlot[m] = k
                m += 1
            }
            p.flows.protectRTP(mixed: UnsafeMutableBufferPointer(rebasing: rtp[0..<m]), keys: keys, scratch: scratch, owner: scratchOwner)
            for j in 0..<m {
                if let e = rtp[j].error {
                    countDrop(p, rtcp: false, e.reason)
                    continue
                }
                let k = rtpSlot[j]
                slots[k].length = rtp[j].length
                slots[k].peer = p.rtpOut
                out += 1
                bytesOut += rtp[j].length
            }
        }
    }
}
