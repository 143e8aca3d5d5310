import KeyManagement
import SRTP

/// One session's sender state (ROC per SSRC for SRTP, SRTCP index per SSRC) and the protection
/// of one UDP payload in place — the per-packet core shared by `StreamingEngine` (replay) and
/// `LiveGateway` (run). Exactly one owner thread (`DESIGN.md` §4).
///
/// Bounded: at most `maxFlows` SSRCs each of RTP and RTCP are held (`FlowTable`); a new SSRC
/// beyond that evicts the least recently used one (counted, `flow_evicted`). Packets are checked
/// against the session's limits before any flow is made for them: `maxPacketSize`, an RTP
/// payload of at least one octet, RTCP length fields that add up (`RTPPacketChecks`).
///
/// Evicted flows and DESIGN.md §7 (an (MTK, SSRC, index) is used once, ever): the state of an
/// evicted SSRC is gone, and an SSRC that comes back must not start again at an index it used.
/// Remembering every evicted SSRC would make the state unbounded again, so one number per
/// session stands for all of them: `rtpResumeROC`, one past the highest ROC any evicted RTP
/// flow had reached. Every RTP flow made after an eviction starts at that ROC (or higher, at
/// the MTK's block floor) — a returning SSRC is handled as a ROC jump (`SRTPSenderStream`'s
/// "new source" case) past everything any evicted flow used. Since one flow's ROC never goes
/// back, every index of a new incarnation of an SSRC lies above every index of its earlier
/// ones, under whatever MTK. The same for SRTCP with `rtcpResumeIndex`. The cost is ROC space:
/// the resume ROC moves up by one each time a flow that started at it is evicted (about once
/// per `maxFlows` new SSRCs under churn), out of the 2^14 ROC values of an MTK's block
/// (`KeySource.rocBlock`); past the block, new flows are refused as `index_exhausted` rather
/// than reuse an index. Sessions fed by a known encoder set `source:` so that spoofed SSRCs
/// never reach this table. With no eviction (at most `maxFlows` SSRCs) nothing changes: every
/// flow starts at the policy's initial ROC, as before the bound.
struct SessionFlows {
    let protector: SRTPProtector
    /// The largest RTP or RTCP packet accepted (`StreamingSession.maxPacketSize`).
    let maxPacketSize: Int
    private(set) var rtp: FlowTable<SRTPSenderStream>
    private(set) var rtcp: FlowTable<SRTCPSenderStream>
    /// One past the highest ROC of any evicted RTP flow (0 before the first eviction); up to 2^32.
    private(set) var rtpResumeROC: UInt64 = 0
    /// The highest next SRTCP index of any evicted RTCP flow (0 before the first eviction); up to 2^31.
    private(set) var rtcpResumeIndex: UInt32 = 0
    /// Flows evicted so far (RTP, RTCP).
    private(set) var rtpEvictions = 0, rtcpEvictions = 0
    /// `run`'s metrics of the session (flow counts and evictions: rare events, never per packet).
    var metrics: GatewayMetrics.Session?

    var evictions: Int { rtpEvictions + rtcpEvictions }

    init(policy: SRTPPolicy, maxFlows: Int = SessionConfiguration.defaultMaxFlows,
         maxPacketSize: Int = SessionConfiguration.defaultMaxPacketSize, metrics: GatewayMetrics.Session? = nil) throws {
        protector = try SRTPProtector(policy: policy)
        self.maxPacketSize = maxPacketSize
        rtp = FlowTable(limit: maxFlows)
        rtcp = FlowTable(limit: maxFlows)
        self.metrics = metrics
    }

    init(session: StreamingSession, metrics: GatewayMetrics.Session? = nil) throws {
        try self.init(policy: session.policy, maxFlows: session.maxFlows, maxPacketSize: session.maxPacketSize, metrics: metrics)
    }

    /// Protects the RTP (or, with `rtcp`, RTCP) payload at `payload` in place and returns its
    /// new length. The stream is chosen by the packet's SSRC (RTP octets 8…11, RTCP 4…7).
    @inline(__always)
    mutating func protect(_ payload: UnsafeMutableRawPointer, length: Int, capacity: Int, rtcp isRTCP: Bool,
                          keys: SRTPSessionKeys) throws(SRTPError) -> Int {
        guard length <= maxPacketSize else { throw .packetTooLarge(length: length, maximum: maxPacketSize) }
        if isRTCP {
            try RTPPacketChecks.checkRTCP(payload, length: length)
            let ssrc = UInt32(bigEndian: payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            let i = rtcpFlow(ssrc)
            return try protector.protectRTCP(payload, length: length, capacity: capacity, keys: keys, stream: &rtcp.states[i])
        }
        try RTPPacketChecks.checkRTP(payload, length: length)
        let ssrc = UInt32(bigEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard let i = rtpFlow(ssrc) else { throw .senderIndexBlockExhausted }
        return try protector.protectRTP(payload, length: length, capacity: capacity, keys: keys, stream: &rtp.states[i])
    }

    /// Protects RTP packets of any SSRCs in place: each SSRC's packets together, in their order,
    /// through the batch protect (`SRTPProtector.protectRTP(batch:)`: one batched AES-CM call and
    /// one multi-message HMAC-SHA1 call per group; byte-identical to one by one, RFC 3711 per-SSRC
    /// ROC state). Each slot reports its result; a packet outside the session's limits fails
    /// alone, before any flow is made for it. `scratch` and `owner` hold at least 64 entries.
    /// With `pending`, the encryption, MACs and tails are left to `pending.run()`.
    mutating func protectRTP(mixed slots: UnsafeMutableBufferPointer<SRTPPacketSlot>, keys: SRTPSessionKeys,
                             scratch: UnsafeMutableBufferPointer<SRTPPacketSlot>, owner: UnsafeMutableBufferPointer<Int>,
                             deferringCryptoTo pending: SRTPPendingCrypto? = nil) {
        var base = 0
        while base < slots.count {
            let n = Swift.min(64, slots.count - base)
            var taken: UInt64 = 0   // one bit per slot of this chunk
            for k in 0..<n {
                let s = slots[base + k]
                do throws(SRTPError) {
                    guard s.length <= maxPacketSize else { throw .packetTooLarge(length: s.length, maximum: maxPacketSize) }
                    try RTPPacketChecks.checkRTP(s.bytes, length: s.length)
                } catch {
                    slots[base + k].error = error
                    taken |= 1 << UInt64(k)
                }
            }
            for g in 0..<n where taken & (1 << UInt64(g)) == 0 {
                let ssrc = Self.ssrc(slots[base + g])
                var m = 0
                for k in g..<n where taken & (1 << UInt64(k)) == 0 && Self.ssrc(slots[base + k]) == ssrc {
                    scratch[m] = slots[base + k]
                    owner[m] = base + k
                    taken |= 1 << UInt64(k)
                    m += 1
                }
                if let at = rtpFlow(ssrc) {
                    protector.protectRTP(batch: UnsafeMutableBufferPointer(rebasing: scratch[0..<m]), keys: keys, stream: &rtp.states[at],
                                         deferringCryptoTo: pending)
                } else {
                    for j in 0..<m { scratch[j].error = .senderIndexBlockExhausted }
                }
                for j in 0..<m { slots[owner[j]] = scratch[j] }
            }
            base += n
        }
    }

    /// The RTP flow of `ssrc` (made most recently used), made when new — evicting the least
    /// recently used one when the table is full. nil when a new flow has no ROC left to start at.
    @inline(__always)
    private mutating func rtpFlow(_ ssrc: UInt32) -> Int? {
        if let i = rtp.touch(ssrc) { return i }
        let start = Swift.max(UInt64(protector.policy.initialROC), rtpResumeROC)
        guard start <= UInt64(UInt32.max) else { return nil }
        let (i, evicted) = rtp.insert(ssrc, SRTPSenderStream(initialROC: UInt32(start)))
        if let old = evicted {
            rtpEvictions += 1
            // Only a flow that sent something used an index (`isSynchronised` from its first packet).
            if old.rollover.isSynchronised { rtpResumeROC = Swift.max(rtpResumeROC, UInt64(old.rollover.roc) + 1) }
        }
        metrics?.rtp.flowsChanged(count: rtp.count, evicted: evicted != nil)
        return i
    }

    /// The RTCP flow of `ssrc`, as `rtpFlow`. A flow made at `rtcpResumeIndex` 2^31 is refused
    /// by the protect itself (`srtcp_index_exhausted`).
    @inline(__always)
    private mutating func rtcpFlow(_ ssrc: UInt32) -> Int {
        if let i = rtcp.touch(ssrc) { return i }
        var fresh = SRTCPSenderStream(firstIndex: protector.policy.firstSRTCPIndex)
        fresh.nextIndex = Swift.max(fresh.nextIndex, rtcpResumeIndex)
        let (i, evicted) = rtcp.insert(ssrc, fresh)
        if let old = evicted {
            rtcpEvictions += 1
            rtcpResumeIndex = Swift.max(rtcpResumeIndex, old.nextIndex)
        }
        metrics?.rtcp.flowsChanged(count: rtcp.count, evicted: evicted != nil)
        return i
    }

    /// RTP SSRC (octets 8…11); 0 for a packet too short to have one (it fails the header check).
    @inline(__always)
    static func ssrc(_ s: SRTPPacketSlot) -> UInt32 {
        s.length >= 12 ? UInt32(bigEndian: s.bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) : 0
    }

    /// Current ROC of every RTP flow held, by SSRC.
    var rollover: [(ssrc: UInt32, roc: UInt32)] {
        rtp.ssrcs.indices.map { (rtp.ssrcs[$0], rtp.states[$0].rollover.roc) }.sorted { $0.ssrc < $1.ssrc }
    }
}

/// SSRC → flow state, at most `limit` entries; a new SSRC beyond that takes the place of the
/// least recently used one. States live in arrays (a slot per flow) linked into a recency list
/// by slot number, found through one dictionary lookup: no allocation once the table has
/// reached its size (the dictionary keeps its capacity across removals).
struct FlowTable<State> {
    let limit: Int
    private var slotOf: [UInt32: Int32] = [:]
    private(set) var ssrcs: [UInt32] = []
    var states: [State] = []
    /// Recency list: `newer`/`older` neighbours of each slot; `head` most recent, `tail` least.
    private var newer: [Int32] = [], older: [Int32] = []
    private var head: Int32 = -1, tail: Int32 = -1

    init(limit: Int) {
        self.limit = Swift.max(1, limit)
        slotOf.reserveCapacity(Swift.min(self.limit, 64))
    }

    var count: Int { ssrcs.count }

    /// The slot of `ssrc`, now the most recently used; nil when it is not held.
    @inline(__always)
    mutating func touch(_ ssrc: UInt32) -> Int? {
        guard let s = slotOf[ssrc] else { return nil }
        if s != head {
            unlink(s)
            pushFront(s)
        }
        return Int(s)
    }

    /// Adds `ssrc` (not held) as the most recently used; when the table is full, the least
    /// recently used flow gives up its slot and its state is returned.
    mutating func insert(_ ssrc: UInt32, _ state: State) -> (slot: Int, evicted: State?) {
        if ssrcs.count < limit {
            let s = Int32(ssrcs.count)
            ssrcs.append(ssrc)
            states.append(state)
            newer.append(-1)
            older.append(-1)
            slotOf[ssrc] = s
            pushFront(s)
            return (Int(s), nil)
        }
        let s = tail
        unlink(s)
        slotOf.removeValue(forKey: ssrcs[Int(s)])
        let old = states[Int(s)]
        ssrcs[Int(s)] = ssrc
        states[Int(s)] = state
        slotOf[ssrc] = s
        pushFront(s)
        return (Int(s), old)
    }

    private mutating func unlink(_ s: Int32) {
        let n = newer[Int(s)], o = older[Int(s)]
        if n >= 0 { older[Int(n)] = o } else { head = o }
        if o >= 0 { newer[Int(o)] = n } else { tail = n }
    }

    private mutating func pushFront(_ s: Int32) {
        newer[Int(s)] = -1
        older[Int(s)] = head
        if head >= 0 { newer[Int(head)] = s }
        head = s
        if tail < 0 { tail = s }
    }

    /// SSRCs from most to least recently used (tests, reports).
    var recency: [UInt32] {
        var out: [UInt32] = []
        var s = head
        while s >= 0 { out.append(ssrcs[Int(s)]); s = older[Int(s)] }
        return out
    }
}
