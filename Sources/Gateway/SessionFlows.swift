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

    /// Protects RTP packets of one SSRC in place, in order (`SRTPProtector.protectRTP(batch:)`:
    /// byte-identical to one by one); each slot reports its result.
    @inline(__always)
    mutating func protectRTP(batch: UnsafeMutableBufferPointer<SRTPPacketSlot>, ssrc: UInt32, keys: SRTPSessionKeys) {
        protector.protectRTP(batch: batch, keys: keys,
                             stream: &rtpStreams[ssrc, default: SRTPSenderStream(initialROC: protector.policy.initialROC)])
    }

    /// Current ROC of every RTP flow, by SSRC.
    var rollover: [(ssrc: UInt32, roc: UInt32)] { rtpStreams.map { ($0.key, $0.value.rollover.roc) }.sorted { $0.ssrc < $1.ssrc } }
}
