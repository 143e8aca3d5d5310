import CoreMetrics
import Foundation
import KeyServer
import Prometheus

/// The key server's metrics (DESIGN.md §9), on a Prometheus registry of its own (no global
/// bootstrap), served at `--metrics HOST:PORT` `/metrics`:
///
/// | metric | type | labels |
/// | --- | --- | --- |
/// | `mbms_keyserver_requests_total` | counter | type (register, deregister, msk-request, authorize, none), status |
/// | `mbms_keyserver_digest_failures_total` | counter | reason (bad_response, replayed_nc, stale_nonce, unknown_nonce, uri, qop, realm, algorithm, opaque, malformed, bootstrapping) |
/// | `mbms_keyserver_registrations_total`, `mbms_keyserver_deregistrations_total` | counter | – (requests that changed a registration) |
/// | `mbms_keyserver_msk_deliveries_queued_total` | counter | – |
/// | `mbms_keyserver_bodies_refused_total` | counter | reason (too_large, read_error) |
/// | `mbms_keyserver_request_duration_seconds` | histogram | – (body read to response, front included) |
///
/// It also keeps the per-status counts for the end-of-run summary line.
public final class KeyServerMetrics: @unchecked Sendable {
    public let registry: PrometheusCollectorRegistry
    let factory: PrometheusMetricsFactory
    let lock = NSLock()
    /// The distributor's statistics last exported (`distribution`), for the counters' deltas.
    var lastDistribution = MSKDistributor.Statistics()
    private var requestCounters: [String: CoreMetrics.Counter] = [:]
    private var failureCounters: [String: CoreMetrics.Counter] = [:]
    private var refusalCounters: [String: CoreMetrics.Counter] = [:]
    private var byStatus: [Int: Int] = [:]
    let registrations: CoreMetrics.Counter
    let deregistrations: CoreMetrics.Counter
    let deliveries: CoreMetrics.Counter
    let duration: CoreMetrics.Timer

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var f = PrometheusMetricsFactory(registry: registry)
        f.defaultDurationHistogramBuckets = [.microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                             .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
                                             .milliseconds(500), .seconds(1)]
        factory = f
        registrations = CoreMetrics.Counter(label: "mbms_keyserver_registrations_total", dimensions: [], factory: f)
        deregistrations = CoreMetrics.Counter(label: "mbms_keyserver_deregistrations_total", dimensions: [], factory: f)
        deliveries = CoreMetrics.Counter(label: "mbms_keyserver_msk_deliveries_queued_total", dimensions: [], factory: f)
        duration = CoreMetrics.Timer(label: "mbms_keyserver_request_duration_seconds", dimensions: [], factory: f)
    }

    /// The Prometheus text exposition (format 0.0.4).
    public func exposition() -> [UInt8] { registry.emitToBuffer() }

    /// Requests answered so far, by HTTP status.
    public var requestsByStatus: [Int: Int] { lock.lock(); defer { lock.unlock() }; return byStatus }

    private func counter(_ cache: inout [String: CoreMetrics.Counter], _ key: String, _ make: () -> CoreMetrics.Counter) -> CoreMetrics.Counter {
        if let c = cache[key] { return c }
        let c = make()
        cache[key] = c
        return c
    }

    /// One answered request (a response of the pure handler, or one the front made itself).
    func record(type: KeyRequestType?, status: Int, digestFailure: String?, effects: [KeyServerEffect], seconds: Double) {
        let typeLabel = type?.rawValue ?? "none"
        lock.lock()
        byStatus[status, default: 0] += 1
        let requests = counter(&requestCounters, "\(typeLabel)|\(status)") {
            CoreMetrics.Counter(label: "mbms_keyserver_requests_total", dimensions: [("type", typeLabel), ("status", String(status))], factory: factory)
        }
        let failure = digestFailure.map { reason in
            counter(&failureCounters, reason) {
                CoreMetrics.Counter(label: "mbms_keyserver_digest_failures_total", dimensions: [("reason", reason)], factory: factory)
            }
        }
        lock.unlock()
        requests.increment()
        failure?.increment()
        for e in effects {
            switch e {
            case .register: registrations.increment()
            case .deregister: deregistrations.increment()
            case .deliverMSK: deliveries.increment()
            default: break
            }
        }
        duration.recordNanoseconds(Int64(seconds * 1e9))
    }

    func bodyRefused(_ reason: String) {
        lock.lock()
        let c = counter(&refusalCounters, reason) {
            CoreMetrics.Counter(label: "mbms_keyserver_bodies_refused_total", dimensions: [("reason", reason)], factory: factory)
        }
        lock.unlock()
        c.increment()
    }

    /// A bounded label for a 401's reason (the handler's reason text never carries secrets,
    /// but it carries nonces and nc values, unbounded as labels). nil: no credentials were
    /// offered — the first step of every exchange, not a failure.
    static func digestFailureLabel(_ reason: String) -> String? {
        let r = reason.lowercased()
        if r == "no credentials" { return nil }
        if r.hasPrefix("authorization:") { return "malformed" }
        if r.contains("response does not verify") { return "bad_response" }
        if r.contains("replayed") || r.contains("used concurrently") { return "replayed_nc" }
        if r.contains("nonce expired") { return "stale_nonce" }
        if r.contains("nonce not issued") { return "unknown_nonce" }
        if r.contains("bootstrapping required") { return "bootstrapping" }
        if r.contains(" uri ") { return "uri" }
        if r.contains(" qop ") { return "qop" }
        if r.contains(" realm ") { return "realm" }
        if r.contains(" algorithm ") { return "algorithm" }
        if r.contains(" opaque ") { return "opaque" }
        if r.contains("nc missing") { return "malformed" }
        return "other"
    }
}
