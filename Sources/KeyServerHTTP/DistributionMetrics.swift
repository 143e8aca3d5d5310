import CoreMetrics
import Foundation
import KeyManagement
import KeyServer

extension KeyServerMetrics {
    /// The Key Distribution function's counters (`MSKDistributor.Statistics`, cumulative) and the
    /// delivery queue's depth by state, exported as
    /// mbms_keyserver_msk_messages_sent_total{reason}, mbms_keyserver_msk_retransmissions_total,
    /// mbms_keyserver_msk_verifications_total, mbms_keyserver_msk_verifications_refused_total,
    /// mbms_keyserver_msk_give_ups_total{reason} and mbms_keyserver_msk_queue{state}.
    public func distribution(_ s: MSKDistributor.Statistics, queue: [DeliveryRow.State: Int]) {
        lock.lock()
        let previous = lastDistribution
        lastDistribution = s
        lock.unlock()
        func add(_ label: String, _ dimensions: [(String, String)], _ now: Int, _ before: Int) {
            guard now > before else { return }
            CoreMetrics.Counter(label: label, dimensions: dimensions, factory: factory).increment(by: now - before)
        }
        for (reason, n) in s.sentByReason { add("mbms_keyserver_msk_messages_sent_total", [("reason", reason)], n, previous.sentByReason[reason] ?? 0) }
        add("mbms_keyserver_msk_retransmissions_total", [], s.retransmissions, previous.retransmissions)
        add("mbms_keyserver_msk_verifications_total", [], s.verified, previous.verified)
        add("mbms_keyserver_msk_verifications_refused_total", [], s.verificationsRejected.values.reduce(0, +),
            previous.verificationsRejected.values.reduce(0, +))
        for (reason, n) in s.gaveUp { add("mbms_keyserver_msk_give_ups_total", [("reason", reason)], n, previous.gaveUp[reason] ?? 0) }
        for state in [DeliveryRow.State.pending, .awaitingVerification, .done, .gaveUp] {
            CoreMetrics.Gauge(label: "mbms_keyserver_msk_queue", dimensions: [("state", state.rawValue)], factory: factory).record(queue[state] ?? 0)
        }
    }
}
