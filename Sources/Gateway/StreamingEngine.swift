import KeyManagement
import PacketIO
import SRTP

/// What to do with a frame after the engine looked at it.
public enum FrameVerdict: Equatable, Sendable {
    /// Send it, now `length` bytes long (protected in place).
    case forward(length: Int)
    /// Send it unchanged (not ours to protect).
    case passThrough
    /// Do not send it; counted under `reason`. A static string, so that `EngineFrame` stays a
    /// plain value: a `String` here made every store of a frame into a batch retain and release.
    case drop(reason: StaticString)

    public static func == (a: FrameVerdict, b: FrameVerdict) -> Bool {
        switch (a, b) {
        case let (.forward(x), .forward(y)): return x == y
        case (.passThrough, .passThrough): return true
        case let (.drop(x), .drop(y)): return x.description == y.description
        default: return false
        }
    }
}

/// A frame handed to `StreamingEngine.stage`: its buffer (protected in place; `capacity` leaves
/// `tailroom` after `length`), its time (Unix seconds: the capture clock in `replay`) and, once
/// processed, what to do with it.
public struct EngineFrame {
    public var bytes: UnsafeMutableRawPointer
    public var length: Int
    public var capacity: Int
    public var time: Int64
    public var verdict: FrameVerdict = .passThrough
    /// Set when the engine defers the UDP checksum (`deferUDPChecksums`): the frame's UDP
    /// geometry, for `UDPFrameEditor.fillUDPChecksum` before the frame is sent.
    public var deferredChecksum: UDPFrame? = nil

    public init(bytes: UnsafeMutableRawPointer, length: Int, capacity: Int, time: Int64) {
        self.bytes = bytes
        self.length = length
        self.capacity = capacity
        self.time = time
    }
}

/// The streaming data path of `DESIGN.md` §4 for one owner thread: classify by destination
/// address and port, keep per-SSRC SRTP/SRTCP sender state, protect in place with the key
/// epoch in force at the packet's time, fix IP/UDP lengths and checksums.
///
/// Per packet: one address-table lookup for the session and one for the flow state, no
/// allocation once a flow is known, no locks, no copies.
public final class StreamingEngine {
    public let sessions: [StreamingSession]
    public let dropUnmatched: Bool
    public let checksum: UDPFrameEditor.ChecksumPolicy
    public private(set) var statistics: GatewayStatistics
    /// Leave the UDP checksum of protected frames for the caller (`EngineFrame.deferredChecksum`):
    /// `replay` computes it as it copies each batch's output out (`ReplayBatch.prepareOutput`,
    /// one pass over the bytes, outside the work turn) instead of in the work turn, which every
    /// lane waits for.
    public var deferUDPChecksums = false
    /// Where `completeStaged()` leaves the SRTP packets' encryption, MACs and tails, when set
    /// (`SRTPPendingCrypto`): the caller runs it before the frames go out. `replay` sets each
    /// batch's own, and its lanes run it outside the work turn.
    public var pendingCrypto: SRTPPendingCrypto?

    private var flows: [SessionFlows]
    private let keySource: KeySource
    private var lookup = TransportAddressTable<Route>()
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
        flows = try sessions.map { try SessionFlows(session: $0) }
        epochs = Array(repeating: nil, count: sessions.count)
        statistics = GatewayStatistics(sessions: sessions.map(\.name))
        for s in sessions {
            lookup[s.rtp] = Route(session: s.index, rtcp: false)
            lookup[s.rtcp] = Route(session: s.index, rtcp: true)
        }
        staged.reserveCapacity(Self.maximumStaged)
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

    // MARK: - Batches

    /// Frames staged for batch protection: SRTP packets wait here until `completeStaged()`
    /// protects each flow's packets together (`SRTPProtector.protectRTP(batch:)`: one batched
    /// AES-CM call and one multi-message HMAC-SHA1 call per group).
    struct Staged {
        var frame: UnsafeMutablePointer<EngineFrame>
        var udp: UDPFrame
        var session: Int
        var keys: SRTPSessionKeys
        var done: Bool
    }
    private var staged: [Staged] = []
    private let slots = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: StreamingEngine.maximumStaged)
    private let slotOwner = UnsafeMutableBufferPointer<Int>.allocate(capacity: StreamingEngine.maximumStaged)
    private let scratch = UnsafeMutableBufferPointer<SRTPPacketSlot>.allocate(capacity: StreamingEngine.maximumStaged)
    private let scratchOwner = UnsafeMutableBufferPointer<Int>.allocate(capacity: StreamingEngine.maximumStaged)
    /// SRTP packets held before `stage` completes them itself (a batch of the pipeline).
    public static let maximumStaged = 64

    deinit {
        slots.deallocate()
        slotOwner.deallocate()
        scratch.deallocate()
        scratchOwner.deallocate()
    }

    /// First half of batch processing: classifies the frame, counts it and takes the key epoch
    /// at its time (so the key source sees the frames in capture order);
    /// drops, pass-throughs and SRTCP get their verdict now, SRTP packets are held until
    /// `completeStaged()`. `frame` must stay valid (and unmoved) until then. Per flow the
    /// packets are protected in the order they were staged, so ROC and output are identical to
    /// one-by-one processing.
    public func stage(_ frame: UnsafeMutablePointer<EngineFrame>, linkType: LinkType) throws {
        if staged.count >= Self.maximumStaged { completeStaged() }
        statistics.framesIn += 1
        let p = frame.pointee.bytes
        switch FrameParser.classify(p, length: frame.pointee.length, linkType: linkType) {
        case .malformed(let e):
            statistics.dropped[e.reason, default: 0] += 1
            frame.pointee.verdict = .drop(reason: e.reasonName)
        case .passThrough(let why):
            statistics.passedThrough[why.rawValue, default: 0] += 1
            statistics.framesOut += 1
            frame.pointee.verdict = .passThrough
        case .udp(var udp):
            guard let route = lookup[udp.destination] else {
                if dropUnmatched {
                    statistics.dropped["unmatched", default: 0] += 1
                    frame.pointee.verdict = .drop(reason: "unmatched")
                } else {
                    statistics.passedThrough["unmatched", default: 0] += 1
                    statistics.framesOut += 1
                    frame.pointee.verdict = .passThrough
                }
                return
            }
            let i = route.session
            statistics.sessions[i].packetsIn += 1
            statistics.sessions[i].bytesIn += udp.payloadLength
            // `source:` (before the key epoch: a spoofed packet reaches no key state).
            if let filter = sessions[i].sourceFilter, !filter.contains(udp.source.address) {
                statistics.sessions[i].drops["source_filtered", default: 0] += 1
                frame.pointee.verdict = .drop(reason: "source_filtered")
                return
            }
            let keys = try epoch(i, at: frame.pointee.time).keys
            let payload = p + udp.payloadOffset
            if route.rtcp {
                let room = frame.pointee.capacity - udp.payloadOffset
                do {
                    let n = try flows[i].protect(payload, length: udp.payloadLength, capacity: room, rtcp: true, keys: keys)
                    statistics.sessions[i].rtcpPackets += 1
                    finish(frame, &udp, session: i, payloadLength: n)
                } catch let e {
                    statistics.sessions[i].drops[e.reason, default: 0] += 1
                    frame.pointee.verdict = .drop(reason: e.reasonName)
                }
                statistics.sessions[i].flowsEvicted = flows[i].evictions
                return
            }
            staged.append(Staged(frame: frame, udp: udp, session: i, keys: keys, done: false))
        }
    }

    /// Second half: protects the held SRTP packets in place, per session and key epoch (each
    /// SSRC's packets in staging order, `SessionFlows.protectRTP(mixed:)`), and gives each its verdict.
    public func completeStaged() {
        guard !staged.isEmpty else { return }
        for g in staged.indices where !staged[g].done {
            let i = staged[g].session, keys = staged[g].keys
            var n = 0
            for k in g..<staged.count where !staged[k].done && staged[k].session == i && staged[k].keys === keys {
                let f = staged[k].frame
                let off = staged[k].udp.payloadOffset
                slots[n] = SRTPPacketSlot(bytes: f.pointee.bytes + off, length: staged[k].udp.payloadLength,
                                          capacity: f.pointee.capacity - off)
                slotOwner[n] = k
                staged[k].done = true
                n += 1
            }
            flows[i].protectRTP(mixed: UnsafeMutableBufferPointer(rebasing: slots[0..<n]), keys: keys, scratch: scratch, owner: scratchOwner,
                                deferringCryptoTo: pendingCrypto)
            statistics.sessions[i].flowsEvicted = flows[i].evictions
            for j in 0..<n {
                let k = slotOwner[j]
                let f = staged[k].frame
                if let e = slots[j].error {
                    statistics.sessions[i].drops[e.reason, default: 0] += 1
                    f.pointee.verdict = .drop(reason: e.reasonName)
                } else {
                    statistics.sessions[i].rtpPackets += 1
                    finish(f, &staged[k].udp, session: i, payloadLength: slots[j].length)
                }
            }
        }
        staged.removeAll(keepingCapacity: true)
    }

    @inline(__always)
    private func finish(_ f: UnsafeMutablePointer<EngineFrame>, _ udp: inout UDPFrame, session i: Int, payloadLength: Int) {
        let total = UDPFrameEditor.resizePayload(f.pointee.bytes, frame: &udp, newPayloadLength: payloadLength, checksum: checksum,
                                                 deferringChecksum: deferUDPChecksums)
        if deferUDPChecksums, UDPFrameEditor.needsUDPChecksum(udp, checksum) { f.pointee.deferredChecksum = udp }
        statistics.sessions[i].packetsOut += 1
        statistics.sessions[i].bytesOut += payloadLength
        statistics.framesOut += 1
        f.pointee.verdict = .forward(length: total)
    }

    /// Counts a MIKEY message sent for session `i`.
    public func countMIKEY(session i: Int, bytes: Int) {
        statistics.sessions[i].mikeySent += 1
        statistics.sessions[i].mikeyBytes += bytes
        statistics.framesOut += 1
    }

    /// SSRC flows held per session (RTP, RTCP): at most the session's `maxFlows` each.
    public var flowCounts: [(rtp: Int, rtcp: Int)] { flows.map { ($0.rtp.count, $0.rtcp.count) } }

    /// Current SRTP ROC of every RTP flow (for reports).
    public var rollover: [(session: String, ssrc: UInt32, roc: UInt32)] {
        sessions.indices.flatMap { i in flows[i].rollover.map { (sessions[i].name, $0.ssrc, $0.roc) } }
    }
}
