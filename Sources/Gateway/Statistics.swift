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
    /// Dropped packets by reason (SRTP error names, e.g. "bad_version", "too_short").
    public var drops: [String: Int] = [:]

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
