import SRTP

/// One session's sender state (ROC per SSRC for SRTP, SRTCP index per SSRC) and the protection
/// of one UDP payload in place — the per-packet core shared by `StreamingEngine` (replay) and
/// `LiveGateway` (run). Exactly one owner thread (`DESIGN.md` §4).
struct SessionFlows {
    let protector: SRTPProtector
    private(set) var rtpStreams: [UInt32: SRTPSenderStream] = [:]
    private(set) var rtcpStreams: [UInt32: SRTCPSenderStream] = [:]

    init(policy: SRTPPolicy) throws {
        protector = try SRTPProtector(policy: policy)
    }

    /// Protects the RTP (or, with `rtcp`, RTCP) payload at `payload` in place and returns its
    /// new length. The stream is chosen by the packet's SSRC (RTP octets 8…11, RTCP 4…7).
    @inline(__always)
    mutating func protect(_ payload: UnsafeMutableRawPointer, length: Int, capacity: Int, rtcp: Bool,
                          keys: SRTPSessionKeys) throws(SRTPError) -> Int {
        let policy = protector.policy
        if rtcp {
            let ssrc = length >= 8 ? UInt32(bigEndian: payload.loadUnaligned(fromByteOffset: 4, as: UInt32.self)) : 0
            return try protector.protectRTCP(payload, length: length, capacity: capacity, keys: keys,
                                             stream: &rtcpStreams[ssrc, default: SRTCPSenderStream(firstIndex: policy.firstSRTCPIndex)])
        }
        let ssrc = length >= 12 ? UInt32(bigEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) : 0
        return try protector.protectRTP(payload, length: length, capacity: capacity, keys: keys,
                                        stream: &rtpStreams[ssrc, default: SRTPSenderStream(initialROC: policy.initialROC)])
    }

    /// Protects RTP packets of any SSRCs in place: each SSRC's packets together, in their order,
    /// through the batch protect (`SRTPProtector.protectRTP(batch:)`: one batched AES-CM call and
    /// one multi-message HMAC-SHA1 call per group; byte-identical to one by one, RFC 3711 per-SSRC
    /// ROC state). Each slot reports its result. `scratch` and `owner` hold at least 64 entries.
    /// With `pending`, the encryption, MACs and tails are left to `pending.run()`.
    mutating func protectRTP(mixed slots: UnsafeMutableBufferPointer<SRTPPacketSlot>, keys: SRTPSessionKeys,
                             scratch: UnsafeMutableBufferPointer<SRTPPacketSlot>, owner: UnsafeMutableBufferPointer<Int>,
                             deferringCryptoTo pending: SRTPPendingCrypto? = nil) {
        var base = 0
        while base < slots.count {
            let n = Swift.min(64, slots.count - base)
            var taken: UInt64 = 0   // one bit per slot of this chunk
            for g in 0..<n where taken & (1 << UInt64(g)) == 0 {
                let ssrc = Self.ssrc(slots[base + g])
                var m = 0
                for k in g..<n where taken & (1 << UInt64(k)) == 0 && Self.ssrc(slots[base + k]) == ssrc {
                    scratch[m] = slots[base + k]
                    owner[m] = base + k
                    taken |= 1 << UInt64(k)
                    m += 1
                }
                // Through the index, not `subscript(_:default:)`: that accessor allocated twice per call here.
                if rtpStreams.index(forKey: ssrc) == nil { rtpStreams[ssrc] = SRTPSenderStream(initialROC: protector.policy.initialROC) }
                if let at = rtpStreams.index(forKey: ssrc) {
                    protector.protectRTP(batch: UnsafeMutableBufferPointer(rebasing: scratch[0..<m]), keys: keys, stream: &rtpStreams.values[at],
                                         deferringCryptoTo: pending)
                }
                for j in 0..<m { slots[owner[j]] = scratch[j] }
            }
            base += n
        }
    }

    /// RTP SSRC (octets 8…11); 0 for a packet too short to have one (it fails the header check).
    @inline(__always)
    static func ssrc(_ s: SRTPPacketSlot) -> UInt32 {
        s.length >= 12 ? UInt32(bigEndian: s.bytes.loadUnaligned(fromByteOffset: 8, as: UInt32.self)) : 0
    }

    /// Current ROC of every RTP flow, by SSRC.
    var rollover: [(ssrc: UInt32, roc: UInt32)] { rtpStreams.map { ($0.key, $0.value.rollover.roc) }.sorted { $0.ssrc < $1.ssrc } }
}
