import Atomics
import CoreMetrics
import Foundation
import Prometheus
#if canImport(Glibc)
import Glibc
#endif

/// The live gateway's metrics (`DESIGN.md` §9), made through swift-metrics on a Prometheus
/// registry owned by this object (no global bootstrap: several gateways, e.g. in tests, keep
/// their own). Names:
///
/// | metric | type | labels |
/// | --- | --- | --- |
/// | `mbms_packets_in_total`, `mbms_bytes_in_total` | counter | session, kind (rtp, rtcp) |
/// | `mbms_packets_out_total`, `mbms_bytes_out_total` | counter | session, kind |
/// | `mbms_drops_total` | counter | session, kind, reason (SRTP error names, `too_large`, `empty_payload`, `bad_rtcp_length`, `source_filtered`, `no_key`, `send_error`) |
/// | `mbms_flows` | gauge | session, kind: SSRCs whose sender state is held (at most the session's `maxFlows`) |
/// | `mbms_flows_evicted_total` | counter | session, kind: least recently used flows evicted for a new SSRC (`flow_evicted`) |
/// | `mbms_mtk_switches_total` | counter | session |
/// | `mbms_mikey_messages_sent_total`, `mbms_mikey_bytes_sent_total` | counter | session |
/// | `mbms_current_mtk_id` | gauge | session |
/// | `mbms_batch_packets` | histogram (1…64) | session, kind: datagrams per recvmmsg batch (lock-free buckets, see `BatchHistogram`) |
/// | `mbms_last_batch_packets` | gauge | session, kind: size of the latest batch (ring occupancy) |
///
/// Every counter is updated once per batch with the batch's sums, never per packet; a drop
/// counter is made the first time its reason occurs (then reused). Every family carries a
/// `# HELP` line (`help`); the same object serves `/healthz` (`GatewayHealth`).
public final class GatewayMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    /// What `/healthz` answers from: sockets bound and keys current, per session.
    public let health = GatewayHealth()

    private let histogramsLock = NSLock()
    private var histograms: [BatchHistogram] = []

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        factory = PrometheusMetricsFactory(registry: registry)
    }

    /// The `# HELP` text of every metric family `run` exports (Prometheus text format 0.0.4:
    /// one HELP per family). A family missing here is exported with the generic text, which
    /// `LiveHardeningTests` looks for.
    static let help: [String: String] = [
        "mbms_packets_in_total": "RTP or RTCP datagrams received per session.",
        "mbms_bytes_in_total": "UDP payload bytes received per session.",
        "mbms_packets_out_total": "SRTP or SRTCP datagrams sent per session.",
        "mbms_bytes_out_total": "UDP payload bytes sent per session (protected).",
        "mbms_drops_total": "Datagrams not sent, by reason.",
        "mbms_flows": "SSRCs whose sender state (ROC, SRTCP index) is held, at most the session's maxFlows.",
        "mbms_flows_evicted_total": "Least recently used SSRC flows evicted to make room for a new SSRC.",
        "mbms_last_batch_packets": "Datagrams in the latest receive batch (ring occupancy).",
        "mbms_mtk_switches_total": "MTK switches on the packet path.",
        "mbms_mikey_messages_sent_total": "MIKEY MTK messages sent to UDP 2269.",
        "mbms_mikey_bytes_sent_total": "Bytes of MIKEY MTK messages sent.",
        "mbms_current_mtk_id": "MTK ID protecting the session's packets now.",
        "mbms_flute_packets_in_total": "ALC/LCT datagrams received per FLUTE channel.",
        "mbms_flute_packets_out_total": "ALC/LCT datagrams sent per FLUTE channel.",
        "mbms_flute_objects_out_total": "Objects sent (DCF-protected) per FLUTE channel.",
    ]
    static let missingHelp = "mbms-gateway metric (no description)"

    /// The Prometheus text exposition (format 0.0.4): the registry, then the batch histograms.
    public func exposition() -> [UInt8] {
        var out = registry.emitToBuffer()
        histogramsLock.lock()
        let hs = histograms
        histogramsLock.unlock()
        if !hs.isEmpty {
            var text = "# HELP mbms_batch_packets Datagrams per receive batch (recvmmsg).\n# TYPE mbms_batch_packets histogram\n"
            for h in hs { h.render(into: &text) }
            out += Array(text.utf8)
        }
        return out
    }

    func batchHistogram(_ dimensions: [(String, String)]) -> BatchHistogram {
        let h = BatchHistogram(labels: dimensions)
        histogramsLock.lock()
        histograms.append(h)
        histogramsLock.unlock()
        return h
    }

    /// A counter made on the registry with its HELP text (swift-metrics' factory path has no
    /// place for one, and the registry refuses a second, different HELP for a family).
    func counter(_ name: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        let handler = registry.makeCounter(name: name, labels: dimensions, help: Self.help[name] ?? Self.missingHelp)
        return CoreMetrics.Counter(label: name, dimensions: dimensions, handler: handler, factory: factory)
    }

    func gauge(_ name: String, _ dimensions: [(String, String)]) -> CoreMetrics.Gauge {
        let handler = registry.makeGauge(name: name, labels: dimensions, help: Self.help[name] ?? Self.missingHelp)
        return CoreMetrics.Gauge(label: name, dimensions: dimensions, aggregate: false, handler: handler, factory: factory)
    }

    /// A histogram of batch sizes (1…64) whose `record` is a few relaxed atomic increments:
    /// swift-prometheus's own histogram takes a mutex per record, which the packet loop avoids.
    final class BatchHistogram: Sendable {
        static let bounds = [1, 2, 4, 8, 16, 32, 64]
        private let buckets: [ManagedAtomic<Int>]
        private let sum = ManagedAtomic<Int>(0)
        private let count = ManagedAtomic<Int>(0)
        private let labels: String

        init(labels: [(String, String)]) {
            buckets = Self.bounds.map { _ in ManagedAtomic<Int>(0) } + [ManagedAtomic<Int>(0)]
            self.labels = labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",")
        }

        static func escape(_ v: String) -> String {
            v.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
        }

        @inline(__always)
        func record(_ n: Int) {
            var i = 0
            while i < Self.bounds.count && n > Self.bounds[i] { i += 1 }
            buckets[i].wrappingIncrement(ordering: .relaxed)
            sum.wrappingIncrement(by: n, ordering: .relaxed)
            count.wrappingIncrement(ordering: .relaxed)
        }

        func render(into text: inout String) {
            var cumulative = 0
            for (i, b) in Self.bounds.enumerated() {
                cumulative += buckets[i].load(ordering: .relaxed)
                text += "mbms_batch_packets_bucket{\(labels),le=\"\(b)\"} \(cumulative)\n"
            }
            cumulative += buckets[Self.bounds.count].load(ordering: .relaxed)
            text += "mbms_batch_packets_bucket{\(labels),le=\"+Inf\"} \(cumulative)\n"
            text += "mbms_batch_packets_sum{\(labels)} \(sum.load(ordering: .relaxed))\n"
            text += "mbms_batch_packets_count{\(labels)} \(count.load(ordering: .relaxed))\n"
        }
    }

    /// The handles of one session and packet kind, made once at start.
    final class Flow {
        let packetsIn, bytesIn, packetsOut, bytesOut: CoreMetrics.Counter
        let batch: BatchHistogram
        let lastBatch: CoreMetrics.Gauge
        let flows: CoreMetrics.Gauge
        let evictions: CoreMetrics.Counter
        private var drops: [String: CoreMetrics.Counter] = [:]
        private let metrics: GatewayMetrics
        private let dimensions: [(String, String)]

        init(_ m: GatewayMetrics, session: String, kind: String) {
            metrics = m
            dimensions = [("session", session), ("kind", kind)]
            packetsIn = m.counter("mbms_packets_in_total", dimensions)
            bytesIn = m.counter("mbms_bytes_in_total", dimensions)
            packetsOut = m.counter("mbms_packets_out_total", dimensions)
            bytesOut = m.counter("mbms_bytes_out_total", dimensions)
            batch = m.batchHistogram(dimensions)
            lastBatch = m.gauge("mbms_last_batch_packets", dimensions)
            flows = m.gauge("mbms_flows", dimensions)
            evictions = m.counter("mbms_flows_evicted_total", dimensions)
        }

        /// A flow was made (`SessionFlows`), taking the place of an evicted one when `evicted`.
        func flowsChanged(count: Int, evicted: Bool) {
            flows.record(count)
            if evicted { evictions.increment() }
        }

        func drop(_ reason: String, _ n: Int) {
            guard n > 0 else { return }
            if let c = drops[reason] { c.increment(by: n); return }
            let c = metrics.counter("mbms_drops_total", dimensions + [("reason", reason)])
            drops[reason] = c
            c.increment(by: n)
        }
    }

    /// Per-session handles.
    final class Session {
        static let socketDropReason = "socket_rcvbuf_full"
        let rtp, rtcp: Flow
        let mtkSwitches, mikeySent, mikeyBytes: CoreMetrics.Counter
        let currentMTK: CoreMetrics.Gauge
        /// Datagrams the kernel dropped on the session's RTP and RTCP input sockets (receive
        /// buffer full: input faster than the gateway protects), counted by the control thread
        /// from SO_MEMINFO once a second: `mbms_drops_total{reason="socket_rcvbuf_full"}`.
        let rtpSocketDrops, rtcpSocketDrops: CoreMetrics.Counter
        /// The session's line of `/healthz`.
        let health: GatewayHealth.Session

        init(_ m: GatewayMetrics, session: String) {
            health = m.health.register(session)
            rtp = Flow(m, session: session, kind: "rtp")
            rtcp = Flow(m, session: session, kind: "rtcp")
            rtpSocketDrops = m.counter("mbms_drops_total", [("session", session), ("kind", "rtp"), ("reason", Self.socketDropReason)])
            rtcpSocketDrops = m.counter("mbms_drops_total", [("session", session), ("kind", "rtcp"), ("reason", Self.socketDropReason)])
            let d = [("session", session)]
            mtkSwitches = m.counter("mbms_mtk_switches_total", d)
            mikeySent = m.counter("mbms_mikey_messages_sent_total", d)
            mikeyBytes = m.counter("mbms_mikey_bytes_sent_total", d)
            currentMTK = m.gauge("mbms_current_mtk_id", d)
        }
    }
}

/// What `GET /healthz` reports (next to `/metrics`): 200 when every session's sockets are bound
/// and a published key epoch covers now, else 503 with the first reason. The control thread
/// writes (through `Session`), the HTTP thread reads; no lock on the packet path.
public final class GatewayHealth: @unchecked Sendable {
    /// One session's state: sockets bound, and the span of time its published key epochs
    /// (current, plus the next one when it follows on) cover.
    public final class Session: @unchecked Sendable {
        public let name: String
        let bound = ManagedAtomic<Bool>(false)
        /// [from, until) in Unix seconds, replaced as a whole (never torn between two epochs).
        let keys = ManagedAtomic<KeyWindow?>(nil)
        private weak var owner: GatewayHealth?

        init(name: String, owner: GatewayHealth) {
            self.name = name
            self.owner = owner
        }

        /// The session's receive sockets are bound (true also brings back a session `retire`d
        /// before, e.g. added again by a reload), or closed (false: unhealthy).
        public func socketsBound(_ value: Bool) {
            bound.store(value, ordering: .releasing)
            if value { owner?.add(self) }
        }

        /// The session is gone (a reload removed it): it no longer counts for `/healthz`.
        public func retire() {
            bound.store(false, ordering: .releasing)
            owner?.remove(self)
        }

        /// Key epochs published to the packet path: `current`, and `next` when it starts where
        /// `current` ends (the switch is then covered too).
        public func keysPublished(current: KeyEpoch, next: KeyEpoch?) {
            let until = next.map { $0.validFrom == current.validUntil ? $0.validUntil : current.validUntil } ?? current.validUntil
            publishWindow(from: current.validFrom, until: until)
        }

        /// The span [from, until) (Unix seconds) the published keys cover.
        func publishWindow(from: Int64, until: Int64) {
            keys.store(KeyWindow(from: from, until: until), ordering: .releasing)
        }
    }

    final class KeyWindow: AtomicReference, @unchecked Sendable {
        let from: Int64, until: Int64
        init(from: Int64, until: Int64) { self.from = from; self.until = until }
    }

    private let lock = NSLock()   // registration only (start, reload), never the packet path
    private var sessions: [Session] = []
    private let stopping = ManagedAtomic<Bool>(false)

    public init() {}

    /// The state of session `name` (made on first use; the same object after).
    public func register(_ name: String) -> Session {
        lock.lock()
        defer { lock.unlock() }
        if let s = sessions.first(where: { $0.name == name }) { return s }
        let s = Session(name: name, owner: self)
        sessions.append(s)
        return s
    }

    func add(_ s: Session) {
        lock.lock()
        if !sessions.contains(where: { $0 === s }) { sessions.append(s) }
        lock.unlock()
    }

    func remove(_ s: Session) {
        lock.lock()
        sessions.removeAll { $0 === s }
        lock.unlock()
    }

    /// The gateway is draining and about to exit: unhealthy from now on.
    public func markStopping() { stopping.store(true, ordering: .releasing) }

    /// (healthy, one line) at Unix time `now`.
    public func check(now: Int64) -> (healthy: Bool, reason: String) {
        if stopping.load(ordering: .acquiring) { return (false, "stopping: the gateway is draining and will exit") }
        lock.lock()
        let all = sessions
        lock.unlock()
        if all.isEmpty { return (true, "ok: no RTP sessions") }
        for s in all {
            guard s.bound.load(ordering: .acquiring) else { return (false, "session \(s.name): receive sockets are not bound") }
            guard let w = s.keys.load(ordering: .acquiring) else { return (false, "session \(s.name): no key epoch published") }
            if now < w.from || now >= w.until {
                return (false, "session \(s.name): keys are not current (published MTKs cover \(w.from)..<\(w.until), now is \(now)); check the key store and the log")
            }
        }
        return (true, "ok: \(all.count) session\(all.count == 1 ? "" : "s"), sockets bound, keys current")
    }
}

public struct MetricsServerError: Error, CustomStringConvertible {
    public var address: String
    public var reason: String
    public var description: String {
        "--metrics \(address): \(reason); choose another HOST:PORT (e.g. --metrics 127.0.0.1:9101) or leave --metrics out"
    }
}

/// A minimal HTTP/1.1 responder for Prometheus scrapes: `GET /metrics` (and `/`) answers the
/// exposition, `GET /healthz` the health (`GatewayHealth`: 200 or 503, one plain-text line),
/// anything else 404; one request per connection (`Connection: close`). One
/// thread, blocking accept with a 200 ms poll so `stop()` ends it promptly.
public final class MetricsHTTPServer: @unchecked Sendable {
    public let address: String
    public private(set) var port: UInt16 = 0
    private let fd: Int32
    private let metrics: GatewayMetrics
    private let stopped = ManagedAtomic<Bool>(false)
    private let finished = DispatchSemaphore(value: 0)

    /// Binds and listens on `host:port` (IPv4 a.b.c.d or IPv6 in brackets); port 0: any free port.
    public init(host: String, port: UInt16, metrics: GatewayMetrics) throws {
        self.metrics = metrics
        let v6 = host.contains(":")
        address = v6 ? "[\(host)]:\(port)" : "\(host):\(port)"
        let s = socket(v6 ? AF_INET6 : AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard s >= 0 else { throw MetricsServerError(address: address, reason: String(cString: strerror(errno))) }
        var one: Int32 = 1
        _ = setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, 4)
        var rc: Int32
        if v6 {
            var a = sockaddr_in6()
            a.sin6_family = sa_family_t(AF_INET6)
            a.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &a.sin6_addr) == 1 else {
                close(s)
                throw MetricsServerError(address: address, reason: "not an IPv6 address")
            }
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in6>.size)) } }
        } else {
            var a = sockaddr_in()
            a.sin_family = sa_family_t(AF_INET)
            a.sin_port = port.bigEndian
            guard inet_pton(AF_INET, host, &a.sin_addr) == 1 else {
                close(s)
                throw MetricsServerError(address: address, reason: "not an IPv4 address")
            }
            rc = withUnsafePointer(to: &a) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        }
        guard rc == 0, listen(s, 16) == 0 else {
            let e = errno
            close(s)
            throw MetricsServerError(address: address, reason: "cannot listen (\(String(cString: strerror(e))))")
        }
        fd = s
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        _ = withUnsafeMutablePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        self.port = withUnsafePointer(to: &storage) { p in
            v6 ? p.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin6_port) }
               : p.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { UInt16(bigEndian: $0.pointee.sin_port) }
        }
    }

    deinit { close(fd) }

    /// Serves on a thread of its own until `stop()`.
    public func start() {
        let t = Thread { [self] in
            serve()
            finished.signal()
        }
        t.name = "metrics-http"
        t.start()
    }

    public func stop() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        _ = finished.wait(timeout: .now() + 2)
    }

    private func serve() {
        while !stopped.load(ordering: .acquiring) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            handle(c)
            close(c)
        }
    }

    private func handle(_ c: Int32) {
        // Read the request head (bounded: 8 KiB, 2 s).
        var request: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 2048)
        let deadline = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
        while request.count < 8192 {
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
            var p = pollfd(fd: c, events: Int16(POLLIN), revents: 0)
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline, poll(&p, 1, Int32((deadline - now) / 1_000_000)) > 0 else { return }
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            guard n > 0 else { break }
            request += chunk[0..<n]
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        let status: String, body: [UInt8], type: String
        if parts.count >= 2, parts[0] == "GET" || parts[0] == "HEAD", parts[1] == "/metrics" || parts[1] == "/" {
            status = "200 OK"
            body = parts[0] == "HEAD" ? [] : metrics.exposition()
            type = "text/plain; version=0.0.4; charset=utf-8"
        } else if parts.count >= 2, parts[0] == "GET" || parts[0] == "HEAD", parts[1] == "/healthz" {
            var ts = timespec()
            clock_gettime(CLOCK_REALTIME, &ts)
            let (healthy, reason) = metrics.health.check(now: Int64(ts.tv_sec))
            status = healthy ? "200 OK" : "503 Service Unavailable"
            body = parts[0] == "HEAD" ? [] : Array((reason + "\n").utf8)
            type = "text/plain; charset=utf-8"
        } else if parts.count >= 2, parts[0] != "GET" && parts[0] != "HEAD" {
            status = "405 Method Not Allowed"; body = Array("only GET /metrics and GET /healthz\n".utf8); type = "text/plain"
        } else {
            status = "404 Not Found"; body = Array("try GET /metrics or GET /healthz\n".utf8); type = "text/plain"
        }
        let head = Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        sendAll(c, head)
        sendAll(c, body)
    }

    private func sendAll(_ c: Int32, _ bytes: [UInt8]) {
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { b -> Int in
                guard let base = b.baseAddress else { return 0 }
                return send(c, base + off, b.count - off, Int32(MSG_NOSIGNAL))
            }
            if n <= 0 { if n < 0 && errno == EINTR { continue }; return }
            off += n
        }
    }
}
