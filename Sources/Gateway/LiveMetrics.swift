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
/// | `mbms_drops_total` | counter | session, kind, reason (SRTP error names, `too_large`, `no_key`, `send_error`) |
/// | `mbms_mtk_switches_total` | counter | session |
/// | `mbms_mikey_messages_sent_total`, `mbms_mikey_bytes_sent_total` | counter | session |
/// | `mbms_current_mtk_id` | gauge | session |
/// | `mbms_batch_packets` | histogram (1…64) | session, kind: datagrams per recvmmsg batch (lock-free buckets, see `BatchHistogram`) |
/// | `mbms_last_batch_packets` | gauge | session, kind: size of the latest batch (ring occupancy) |
///
/// Every counter is updated once per batch with the batch's sums, never per packet; a drop
/// counter is made the first time its reason occurs (then reused).
public final class GatewayMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory

    private let histogramsLock = NSLock()
    private var histograms: [BatchHistogram] = []

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        factory = PrometheusMetricsFactory(registry: registry)
    }

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

    func counter(_ name: String, _ dimensions: [(String, String)]) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: dimensions, factory: factory)
    }

    func gauge(_ name: String, _ dimensions: [(String, String)]) -> CoreMetrics.Gauge {
        CoreMetrics.Gauge(label: name, dimensions: dimensions, factory: factory)
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
        let rtp, rtcp: Flow
        let mtkSwitches, mikeySent, mikeyBytes: CoreMetrics.Counter
        let currentMTK: CoreMetrics.Gauge

        init(_ m: GatewayMetrics, session: String) {
            rtp = Flow(m, session: session, kind: "rtp")
            rtcp = Flow(m, session: session, kind: "rtcp")
            let d = [("session", session)]
            mtkSwitches = m.counter("mbms_mtk_switches_total", d)
            mikeySent = m.counter("mbms_mikey_messages_sent_total", d)
            mikeyBytes = m.counter("mbms_mikey_bytes_sent_total", d)
            currentMTK = m.gauge("mbms_current_mtk_id", d)
        }
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
/// exposition, anything else 404; one request per connection (`Connection: close`). One
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
        } else if parts.count >= 2, parts[0] != "GET" && parts[0] != "HEAD" {
            status = "405 Method Not Allowed"; body = Array("only GET /metrics\n".utf8); type = "text/plain"
        } else {
            status = "404 Not Found"; body = Array("try GET /metrics\n".utf8); type = "text/plain"
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
