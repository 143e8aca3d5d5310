/// Per-session counters: what `replay` prints at the end and `run` exports as metrics.
public struct SessionStatistics: Sendable, Codable, Equatable {
    public var name: String
    public var rtpPackets = 0
    public var rtcpPackets = 0
    public var packetsIn = 0
    public var bytesIn = 0
    public var packetsOut = 0
    public var bytesOut = 0
    public var mikeySent = 0
    public var mikeyBytes = 0
    public var mtkSwitches = 0
    /// MTK IDs used to protect packets, in order of first use.
    public var mtksUsed: [UInt16] = []
    /// Dropped packets by reason (SRTP error names, e.g. "bad_version", "too_short"; session
    /// limits "too_large", "empty_payload", "bad_rtcp_length", "source_filtered").
    public var drops: [String: Int] = [:]
    /// SSRC flows (RTP and RTCP) evicted to make room for a new SSRC beyond `maxFlows`
    /// (`flow_evicted`; the packets were still protected, so not a drop).
    public var flowsEvicted = 0

    public init(name: String) { self.name = name }
}

/// Whole-run counters.
public struct GatewayStatistics: Sendable, Codable, Equatable {
    public var sessions: [SessionStatistics]
    public var framesIn = 0
    public var framesOut = 0
    /// Frames forwarded untouched, by reason ("ip_fragment", "not_udp", "not_ip", "unmatched").
    public var passedThrough: [String: Int] = [:]
    /// Frames dropped before any session matched, by reason (malformed frames, unmatched with --drop-unmatched).
    public var dropped: [String: Int] = [:]

    public init(sessions: [String]) { self.sessions = sessions.map(SessionStatistics.init(name:)) }

    public var totalDrops: Int { dropped.values.reduce(0, +) + sessions.reduce(0) { $0 + $1.drops.values.reduce(0, +) } }
}

/// The end-of-run summary lines about flows, bounded whatever the number of SSRCs: the ROC of
/// at most `limit` flows, then "… and K more" (the JSON summary has them all), and the
/// evictions per session when there were any.
public enum FlowSummary {
    public static let limit = 16

    public static func lines(rollover: [(session: String, ssrc: String, roc: UInt32)], statistics: GatewayStatistics,
                             limit: Int = FlowSummary.limit) -> String {
        var out = ""
        if !rollover.isEmpty {
            out += "ROC at end: " + rollover.prefix(limit).map { "\($0.session)/\($0.ssrc)=\($0.roc)" }.joined(separator: " ")
            if rollover.count > limit { out += " … and \(rollover.count - limit) more" }
            out += "\n"
        }
        let evicted = statistics.sessions.filter { $0.flowsEvicted > 0 }
        if !evicted.isEmpty {
            out += "flows evicted (more SSRCs than maxFlows; flow_evicted): "
                + evicted.map { "\($0.name)=\($0.flowsEvicted)" }.joined(separator: " ") + "\n"
        }
        return out
    }
}
