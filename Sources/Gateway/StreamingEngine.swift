import KeyManagement
import PacketIO
import SRTP

/// What to do with a frame after the engine looked at it.
public enum FrameVerdict: Equatable, Sendable {
    /// Send it, now `length` bytes long (protected in place).
    case forward(length: Int)
    /// Send it unchanged (not ours to protect).
    case passThrough
    /// Do not send it; counted under `reason`.
    case drop(reason: String)
}

/// The streaming data path of `DESIGN.md` §4 for one owner thread: classify by destination
/// address and port, keep per-SSRC SRTP/SRTCP sender state, protect in place with the key
/// epoch in force at the packet's time, fix IP/UDP lengths and checksums.
///
/// Per packet: one dictionary lookup for the session and one for the flow state, no
/// allocation once a flow is known, no locks, no copies.
public final class StreamingEngine {
    public let sessions: [StreamingSession]
    public let dropUnmatched: Bool
    public let checksum: UDPFrameEditor.ChecksumPolicy
    public private(set) var statistics: GatewayStatistics

    private var flows: [SessionFlows]
    private let keySource: KeySource
    private var lookup: [TransportAddress: Route] = [:]
    private var epochs: [KeyEpoch?]

    struct Route { var session: Int; var rtcp: Bool }

    /// Bytes of tailroom every frame buffer needs (MKI + the longest tag, or the SRTCP trailer).
    public static let tailroom = 64

    public init(sessions: [StreamingSession], keySource: KeySource, dropUnmatched: Bool = false,
                checksum: UDPFrameEditor.ChecksumPolicy = .recompute) throws {
        self.sessions = sessions
        self.keySource = keySource
        self.dropUnmatched = dropUnmatched
        self.checksum = checksum
        flows = try sessions.map { try SessionFlows(policy: $0.policy) }
        epochs = Array(repeating: nil, count: sessions.count)
        statistics = GatewayStatistics(sessions: sessions.map(\.name))
        for s in sessions {
            lookup[s.rtp] = Route(session: s.index, rtcp: false)
            lookup[s.rtcp] = Route(session: s.index, rtcp: true)
        }
    }

    /// Key epoch for session `i` at Unix time `t`, switching MTKs on the time grid.
    @inline(__always)
    func epoch(_ i: Int, at t: Int64) throws -> KeyEpoch {
        if let e = epochs[i], e.covers(t) { return e }
        let e = try keySource.epoch(for: sessions[i], at: t)
        if epochs[i] != nil { statistics.sessions[i].mtkSwitches += 1 }
        epochs[i] = e
        if !statistics.sessions[i].mtksUsed.contains(e.mtkID.rawValue) { statistics.sessions[i].mtksUsed.append(e.mtkID.rawValue) }
        return e
    }

    /// Processes one captured or received frame in place. `capacity` must leave `tailroom`
    /// bytes after `length`. `time` is Unix seconds (the capture clock in `replay`).
    public func process(_ p: UnsafeMutableRawPointer, length: Int, capacity: Int, linkType: LinkType, time: Int64) throws -> FrameVerdict {
        statistics.framesIn += 1
        switch FrameParser.classify(p, length: length, linkType: linkType) {
        case .malformed(let e):
            statistics.dropped[e.reason, default: 0] += 1
            return .drop(reason: e.reason)
        case .passThrough(let why):
            statistics.passedThrough[why.rawValue, default: 0] += 1
            statistics.framesOut += 1
            return .passThrough
        case .udp(var frame):
            guard let route = lookup[frame.destination] else {
                if dropUnmatched {
                    statistics.dropped["unmatched", default: 0] += 1
                    return .drop(reason: "unmatched")
                }
                statistics.passedThrough["unmatched", default: 0] += 1
                statistics.framesOut += 1
                return .passThrough
            }
            let i = route.session
            statistics.sessions[i].packetsIn += 1
            statistics.sessions[i].bytesIn += frame.payloadLength
            let keys = try epoch(i, at: time).keys
            let payload = p + frame.payloadOffset
            let room = capacity - frame.payloadOffset
            let newLength: Int
            do {
                newLength = try flows[i].protect(payload, length: frame.payloadLength, capacity: room, rtcp: route.rtcp, keys: keys)
                if route.rtcp { statistics.sessions[i].rtcpPackets += 1 } else { statistics.sessions[i].rtpPackets += 1 }
            } catch let e {
                statistics.sessions[i].drops[e.reason, default: 0] += 1
                return .drop(reason: e.reason)
            }
            let total = UDPFrameEditor.resizePayload(p, frame: &frame, newPayloadLength: newLength, checksum: checksum)
            statistics.sessions[i].packetsOut += 1
            statistics.sessions[i].bytesOut += newLength
            statistics.framesOut += 1
            return .forward(length: total)
        }
    }

    /// Counts a MIKEY message sent for session `i`.
    public func countMIKEY(session i: Int, bytes: Int) {
        statistics.sessions[i].mikeySent += 1
        statistics.sessions[i].mikeyBytes += bytes
        statistics.framesOut += 1
    }

    /// Current SRTP ROC of every RTP flow (for reports).
    public var rollover: [(session: String, ssrc: UInt32, roc: UInt32)] {
        sessions.indices.flatMap { i in flows[i].rollover.map { (sessions[i].name, $0.ssrc, $0.roc) } }
    }
}
