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

    public init(socket: UDPSocketOptions = UDPSocketOptions(), maxBatch: Int = 64, configPath: String = "F") {
        self.socket = socket
        self.maxBatch = min(64, max(1, maxBatch))
        self.configPath = configPath
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
/// Threading model: **one loop thread for all sessions** (the caller's thread in `run`). It
/// poll()s every session's RTP and RTCP receive sockets with a timeout up to the next MIKEY
/// event, and for each ready socket receives one batch (recvmmsg, up to 64 datagrams) into a
/// preallocated slot pool (64 KiB + SRTP tailroom each), protects the batch in place with the
/// key epoch read once for the batch, and sends it (sendmmsg) from the session's egress socket.
/// MIKEY MTK messages are sent from the same loop on the `MTKAnnouncer` grid. All flow state
/// (ROC, SRTCP index per SSRC), the key source and the statistics have this one owner: no
/// locks and no allocation on the packet path; the only shared state is the atomic stop flag
/// (set from a signal handler's queue) and the metrics, updated once per batch: swift-metrics
/// counters and gauges (relaxed atomics inside swift-prometheus) and the batch-size histogram
/// (`GatewayMetrics.BatchHistogram`, atomics too: swift-prometheus's histogram takes a mutex). One core carries all sessions; sharding sessions across loop
/// threads (one `LiveGateway` per shard, or per-thread `SRTPSessionKeys.copy()`) is the
/// next step when one core is not enough.
///
/// Per packet it calls the same `SessionFlows.protect` as `StreamingEngine` (replay), on UDP
/// payloads instead of captured frames.
public final class LiveGateway: @unchecked Sendable {
    public let sessions: [StreamingSession]
    public let options: LiveOptions
    public let metrics: GatewayMetrics
    public private(set) var statistics: GatewayStatistics

    private let keySource: KeySource
    private let announcer: MTKAnnouncer
    private var logger: Logger
    private let paths: [Path]
    private let stopFlag = ManagedAtomic<Bool>(false)
    /// FLUTE channels (nil without any): see `LiveDownload`.
    private var download: LiveDownload?

    // The slot pool: maxBatch buffers of `receiveCapacity + tailroom` bytes.
    private let slots: UnsafeMutableBufferPointer<DatagramSlot>
    private let pool: UnsafeMutableRawPointer
    private let receiveCapacity = 65_536
    private let protectCapacity: Int

    /// Largest UDP payload an IPv4 datagram can carry.
    static let maximumUDPPayload = 65_507

    final class Path {
        let session: StreamingSession
        var flows: SessionFlows
        let rtpIn: UDPBatchSocket
        let rtcpIn: UDPBatchSocket
        let egress: UDPBatchSocket
        let rtpOut: TransportAddress
        let rtcpOut: TransportAddress
        let mikeyOut: TransportAddress
        let maxRTP: Int
        let maxRTCP: Int
        let metrics: GatewayMetrics.Session
        var epoch: KeyEpoch?
        var nextMIKEY: Int64 = .max
        var loggedDrops: Set<String> = []
        var lastKeyErrorLog: Int64 = .min
        /// After a failed key lookup, no new attempt (a store access) before this second.
        var keyRetryAfter: Int64 = .min

        init(session: StreamingSession, flows: SessionFlows, rtpIn: UDPBatchSocket, rtcpIn: UDPBatchSocket, egress: UDPBatchSocket,
             rtpOut: TransportAddress, rtcpOut: TransportAddress, metrics: GatewayMetrics.Session) {
            self.session = session
            self.flows = flows
            self.rtpIn = rtpIn
            self.rtcpIn = rtcpIn
            self.egress = egress
            self.rtpOut = rtpOut
            self.rtcpOut = rtcpOut
            mikeyOut = TransportAddress(rtpOut.address, StreamingSession.mikeyPort)
            maxRTP = LiveGateway.maximumUDPPayload - session.policy.maximumSRTPOverhead
            maxRTCP = LiveGateway.maximumUDPPayload - session.policy.srtcpOverhead
            self.metrics = metrics
        }
    }

    /// Validates the sessions against live mode, binds every socket and loads the current key
    /// epoch of every session; throws `LiveSetupError` naming the session and the fix.
    public init(sessions: [StreamingSession], downloads: [DownloadSession] = [], downloadOptions: DownloadEngine.Options = DownloadEngine.Options(),
                keySource: KeySource, options: LiveOptions = LiveOptions(),
                metrics: GatewayMetrics = GatewayMetrics(), logger: Logger = Logger(label: "mbms-gateway.live")) throws {
        self.sessions = sessions
        self.keySource = keySource
        self.options = options
        self.metrics = metrics
        self.logger = logger
        announcer = MTKAnnouncer(keySource.configuration)
        statistics = GatewayStatistics(sessions: sessions.map(\.name))

        if let name = options.socket.interface, if_nametoindex(name) == 0 { throw LiveSetupError.noSuchInterface(name) }

        // Where each session's protected traffic goes, refusing loops back into the gateway.
        var own = Set<TransportAddress>()
        for s in sessions { own.insert(s.rtp); own.insert(s.rtcp) }
        var plans: [(out: TransportAddress, rtcpOut: TransportAddress, loopOff: Bool)] = []
        for s in sessions {
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
            plans.append((out, rtcpOut, loopOff))
        }

        // Keys first: a missing store or schedule is the likeliest setup error.
        let now = Self.unixSeconds()
        var epochs: [KeyEpoch] = []
        for s in sessions {
            do { epochs.append(try keySource.epoch(for: s, at: now)) } catch {
                let underlying = (error as? KeyScheduleError).map { e -> String in
                    if case let .schedule(_, _, u) = e { return u }
                    return "\(e)"
                } ?? "\(error)"
                throw LiveSetupError.keys(session: s.name, underlying: underlying, config: options.configPath)
            }
        }

        // Sockets.
        var paths: [Path] = []
        for (i, s) in sessions.enumerated() {
            func receiver(_ a: TransportAddress) throws -> UDPBatchSocket {
                do { return try UDPBatchSocket(bind: a, options: options.socket, maxBatch: options.maxBatch) } catch {
                    if error.operation == "interface" { throw LiveSetupError.noSuchInterface(error.address) }
                    throw LiveSetupError.cannotReceive(session: s.name, address: "\(a)", error: error)
                }
            }
            let rtpIn = try receiver(s.rtp)
            let rtcpIn = try receiver(s.rtcp)
            let plan = plans[i]
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
            let p = Path(session: s, flows: try SessionFlows(policy: s.policy), rtpIn: rtpIn, rtcpIn: rtcpIn, egress: egress,
                         rtpOut: plan.out, rtcpOut: plan.rtcpOut, metrics: GatewayMetrics.Session(metrics, session: s.name))
            p.epoch = epochs[i]
            statistics.sessions[i].mtksUsed.append(epochs[i].mtkID.rawValue)
            p.metrics.currentMTK.record(Int(epochs[i].mtkID.rawValue))
            paths.append(p)
        }
        self.paths = paths
        if !downloads.isEmpty {
            var own = Set<TransportAddress>()
            for s in sessions { own.insert(s.rtp); own.insert(s.rtcp) }
            download = try LiveDownload(downloads: downloads, keySource: keySource, options: downloadOptions, live: options,
                                        streamingAddresses: own, metrics: metrics)
        }

        // The slot pool.
        let tailroom = max(StreamingEngine.tailroom, sessions.map { max($0.policy.maximumSRTPOverhead, $0.policy.srtcpOverhead) }.max() ?? 0)
        protectCapacity = receiveCapacity + tailroom
        pool = UnsafeMutableRawPointer.allocate(byteCount: protectCapacity * options.maxBatch, alignment: 64)
        slots = .allocate(capacity: options.maxBatch)
        for k in 0..<options.maxBatch {
            slots.initializeElement(at: k, to: DatagramSlot(bytes: pool + k * protectCapacity, capacity: receiveCapacity))
        }
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
        pool.deallocate()
    }

    /// Asks the loop to stop; it drains what the sockets already hold and returns. Safe from any thread.
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
            announce(p, at: now)
            p.nextMIKEY = announcer.nextEvent(after: now)
        }
        var fds: [pollfd] = []
        for p in paths {
            fds.append(pollfd(fd: p.rtpIn.fd, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: p.rtcpIn.fd, events: Int16(POLLIN), revents: 0))
        }
        let streamingFDs = fds.count
        for c in download?.channels ?? [] { fds.append(pollfd(fd: c.input.fd, events: Int16(POLLIN), revents: 0)) }
        var stopReason = "signal"
        logger.info("gateway running", metadata: ["sessions": "\(paths.count)", "batch": "\(options.maxBatch)",
                                                  "duration": "\(duration.map { "\($0)s" } ?? "until SIGINT/SIGTERM")"])
        while !stopFlag.load(ordering: .relaxed) {
            if let d = deadline, DispatchTime.now().uptimeNanoseconds >= d { stopReason = "duration"; break }
            // MIKEY events due.
            let nowMs = Self.unixMilliseconds()
            let nowS = nowMs / 1000
            var nextDue = Int64.max
            for p in paths {
                if p.nextMIKEY <= nowS {
                    announce(p, at: nowS)
                    p.nextMIKEY = announcer.nextEvent(after: nowS)
                }
                nextDue = min(nextDue, p.nextMIKEY)
            }
            download?.sendDue(now: Double(nowMs) / 1000)
            // Wake for the next MIKEY event (none without RTP sessions), the next paced FLUTE
            // datagram, and at least every 100 ms to see the stop flag.
            var timeout: Int64 = nextDue == .max ? 100 : min(100, max(0, nextDue &* 1000 &- nowMs))
            if let due = download?.nextDue { timeout = min(timeout, max(0, Int64(due * 1000) - nowMs)) }
            if let d = deadline {
                let left = Int64(d / 1_000_000) - Int64(DispatchTime.now().uptimeNanoseconds / 1_000_000)
                timeout = min(timeout, max(0, left))
            }
            let ready = poll(&fds, nfds_t(fds.count), Int32(timeout))
            if ready <= 0 { continue }
            for k in 0..<fds.count where fds[k].revents != 0 {
                fds[k].revents = 0
                if k < streamingFDs {
                    _ = pump(paths[k / 2], rtcp: k % 2 == 1)
                } else {
                    do { try download?.pump(k - streamingFDs, now: Double(Self.unixMilliseconds()) / 1000) } catch {
                        logger.error("FLUTE channel failed to protect an object", metadata: ["error": "\(error)"])
                    }
                }
            }
        }
        // Drain: what the kernel already holds for us (bounded), then stop.
        var drained = 0
        for p in paths {
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
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        logger.info("gateway stopped", metadata: ["reason": "\(stopReason)", "drained": "\(drained)",
                                                  "seconds": "\(String(format: "%.1f", seconds))"])
        var flows: [LiveReport.Flow] = []
        for p in paths {
            for f in p.flows.rollover {
                flows.append(LiveReport.Flow(session: p.session.name, ssrc: String(format: "0x%08x", f.ssrc), roc: f.roc))
            }
        }
        // Drain the FLUTE channels too: what their sockets hold, then everything queued.
        if let d = download {
            for k in d.channels.indices {
                var rounds = 0
                while rounds < 256, ((try? d.pump(k, now: Double(Self.unixMilliseconds()) / 1000)) ?? 0) > 0 { rounds += 1 }
            }
            d.sendDue(now: nil)
        }
        var report = LiveReport(routes: routes, statistics: statistics, rollover: flows, seconds: seconds, stopReason: stopReason)
        report.download = download?.statistics ?? []
        return report
    }

    /// The keys for session path `p` at `t`, switching MTKs on the time grid; nil if the key
    /// source has nothing (retried once a second, logged at most every 10 s). A lookup past the
    /// MSKs in the store extends the store (`KeySource`): a store write on this thread, once
    /// per MSK period.
    @inline(__always)
    private func keys(_ p: Path, at t: Int64) -> SRTPSessionKeys? {
        if let e = p.epoch, e.covers(t) { return e.keys }
        guard t >= p.keyRetryAfter else { return nil }
        do {
            let e = try keySource.epoch(for: p.session, at: t)
            let i = p.session.index
            if let old = p.epoch {
                statistics.sessions[i].mtkSwitches += 1
                p.metrics.mtkSwitches.increment()
                logger.info("MTK switch", metadata: ["session": "\(p.session.name)", "msk": "\(e.mskID)", "mtk": "\(e.mtkID.rawValue)",
                                                     "previous_mtk": "\(old.mtkID.rawValue)"])
            }
            p.epoch = e
            if !statistics.sessions[i].mtksUsed.contains(e.mtkID.rawValue) { statistics.sessions[i].mtksUsed.append(e.mtkID.rawValue) }
            p.metrics.currentMTK.record(Int(e.mtkID.rawValue))
            return e.keys
        } catch {
            p.keyRetryAfter = t + 1
            if t - p.lastKeyErrorLog >= 10 {
                p.lastKeyErrorLog = t
                logger.error("no key epoch: dropping packets", metadata: ["session": "\(p.session.name)", "error": "\(error)",
                                                                          "fix": "mbms-gateway keys init --config \(options.configPath)"])
            }
            return nil
        }
    }

    private func countDrop(_ p: Path, rtcp: Bool, _ reason: String, _ n: Int = 1) {
        statistics.sessions[p.session.index].drops[reason, default: 0] += n
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
        let i = p.session.index
        let flow = rtcp ? p.metrics.rtcp : p.metrics.rtp
        var bytesIn = 0, out = 0, bytesOut = 0
        for k in 0..<n { bytesIn += slots[k].length }
        if let keys = keys(p, at: Self.unixSeconds()) {
            let limit = rtcp ? p.maxRTCP : p.maxRTP
            for k in 0..<n {
                let buffer = slots[k].bytes
                let length = slots[k].length
                slots[k].peer = nil
                guard length <= limit else { countDrop(p, rtcp: rtcp, "too_large"); continue }
                do {
                    let protected = try p.flows.protect(buffer, length: length, capacity: protectCapacity, rtcp: rtcp, keys: keys)
                    slots[k].length = protected
                    slots[k].peer = rtcp ? p.rtcpOut : p.rtpOut
                    out += 1
                    bytesOut += protected
                } catch {
                    countDrop(p, rtcp: rtcp, error.reason)
                }
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
        statistics.framesIn += n
        statistics.framesOut += out
        statistics.sessions[i].packetsIn += n
        statistics.sessions[i].bytesIn += bytesIn
        statistics.sessions[i].packetsOut += out
        statistics.sessions[i].bytesOut += bytesOut
        if rtcp { statistics.sessions[i].rtcpPackets += n } else { statistics.sessions[i].rtpPackets += n }
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

    /// Sends the MIKEY MTK messages on the air at `t` for one session to output IP:2269.
    private func announce(_ p: Path, at t: Int64) {
        do {
            for m in try keySource.transmissions(for: p.session, at: t) {
                var message = try keySource.mtkMessage(m)
                let sent: Int = try message.withUnsafeMutableBytes { b throws -> Int in
                    guard let base = b.baseAddress else { return 0 }
                    var slot = DatagramSlot(bytes: base, capacity: b.count)
                    slot.length = b.count
                    slot.peer = p.mikeyOut
                    return try withUnsafeMutablePointer(to: &slot) { try p.egress.send(UnsafeMutableBufferPointer(start: $0, count: 1)) }
                }
                guard sent == 1 else { continue }
                statistics.sessions[p.session.index].mikeySent += 1
                statistics.sessions[p.session.index].mikeyBytes += message.count
                statistics.framesOut += 1
                p.metrics.mikeySent.increment()
                p.metrics.mikeyBytes.increment(by: message.count)
                logger.debug("MIKEY MTK message sent", metadata: ["session": "\(p.session.name)", "msk": "\(m.mskID)", "mtk": "\(m.mtkID)",
                                                                  "to": "\(p.mikeyOut)", "bytes": "\(message.count)"])
            }
        } catch {
            logger.error("MIKEY MTK message not sent", metadata: ["session": "\(p.session.name)", "to": "\(p.mikeyOut)", "error": "\(error)"])
        }
    }
}
