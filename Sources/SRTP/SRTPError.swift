/// Why an SRTP/SRTCP packet was rejected. Every case names the byte offset where the
/// problem was found and, through `rule`, the clause that was broken. No key material.
public enum SRTPError: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    /// Shorter than the fixed header plus what the policy requires after it.
    case packetTooShort(length: Int, minimum: Int)
    /// RTP/RTCP version field is not 2.
    case unsupportedVersion(Int)
    /// The CSRC list runs past the end of the packet.
    case csrcListOverrun(csrcCount: Int, length: Int)
    /// The header extension (X = 1) runs past the end of the packet.
    case headerExtensionOverrun(offset: Int, extensionLength: Int, length: Int)
    /// P = 1 but the pad count is 0 or larger than the payload.
    case paddingOverrun(padCount: Int, payloadLength: Int)
    /// The caller's buffer has no room for the MKI and tag.
    case insufficientTailroom(needed: Int, capacity: Int)
    /// The MKI names no master key (MTK) this receiver holds.
    case unknownMKI(offset: Int)
    /// The authentication tag does not verify.
    case authenticationFailed(offset: Int)
    /// The packet index was already received (replay).
    case replayed(index: UInt64)
    /// The packet index is older than the replay window.
    case tooOld(index: UInt64)
    /// RFC 4771 receiver without a ROC yet, and this packet does not carry one.
    case rocUnknown(sequenceNumber: UInt16)
    /// The SRTCP index space (2^31) of this master key is used up.
    case srtcpIndexExhausted
    /// RTCP packet type outside 192...223 (RFC 5761 4) or length field inconsistent.
    case invalidRTCPHeader(offset: Int)
    /// The crypto library failed (should not happen).
    case cryptoFailure
    /// Sender: this packet's index already went out under this MTK with the same RTP timestamp
    /// (a duplicate); sending it again would reuse a keystream (`DESIGN.md` §7).
    case senderIndexReused(index: UInt64)
    /// Sender: the block of RTP ROC values or SRTCP indices reserved for this MTK is used up
    /// (`SenderIndexBlock`); packets wait for the next MTK.
    case senderIndexBlockExhausted
    /// Sender: larger than the session's `maxPacketSize` (a configured limit, not a protocol rule).
    case packetTooLarge(length: Int, maximum: Int)
    /// Sender: an RTP packet with nothing after its header (and padding).
    case emptyPayload(headerLength: Int)
    /// Sender: the RTCP length fields of a compound packet do not add up to the datagram.
    case rtcpLengthMismatch(offset: Int)

    /// Byte offset in the packet where the problem lies.
    public var offset: Int {
        switch self {
        case .packetTooShort(let length, _): return length
        case .unsupportedVersion: return 0
        case .csrcListOverrun: return 12
        case .headerExtensionOverrun(let offset, _, _): return offset
        case .paddingOverrun(_, _): return 0
        case .insufficientTailroom(_, let capacity): return capacity
        case .unknownMKI(let offset), .authenticationFailed(let offset), .invalidRTCPHeader(let offset): return offset
        case .replayed, .tooOld, .rocUnknown: return 2
        case .srtcpIndexExhausted, .cryptoFailure, .senderIndexBlockExhausted: return 0
        case .senderIndexReused: return 2
        case .packetTooLarge(_, let maximum): return maximum
        case .emptyPayload(let headerLength): return headerLength
        case .rtcpLengthMismatch(let offset): return offset
        }
    }

    /// The rule broken, citing the clause.
    public var rule: String {
        switch self {
        case .packetTooShort: return "RFC 3550 5.1 / RFC 3711 3.1: packet shorter than header + MKI + tag"
        case .unsupportedVersion: return "RFC 3550 5.1: V must be 2"
        case .csrcListOverrun: return "RFC 3550 5.1: CC CSRC identifiers must fit in the packet"
        case .headerExtensionOverrun: return "RFC 3550 5.3.1: header extension must fit in the packet"
        case .paddingOverrun: return "RFC 3550 5.1: pad count must be 1...payload length"
        case .insufficientTailroom: return "buffer must have room for MKI + tag (RFC 3711 3.1)"
        case .unknownMKI: return "RFC 3711 3.1 / TS 33.246 6.6.2.2: MKI must name a known MTK"
        case .authenticationFailed: return "RFC 3711 3.3 step 6 / RFC 4771 4: authentication tag mismatch"
        case .replayed: return "RFC 3711 3.3.2: replayed packet index"
        case .tooOld: return "RFC 3711 3.3.2: packet index left of the replay window"
        case .rocUnknown: return "RFC 4771 4 / TS 33.246 6.6.2.2 NOTE 3: waiting for a ROC-carrying packet"
        case .srtcpIndexExhausted: return "RFC 3711 3.4: SRTCP index space of the master key exhausted"
        case .invalidRTCPHeader: return "RFC 3550 6.4 / RFC 5761 4: not an RTCP header"
        case .cryptoFailure: return "crypto backend failure"
        case .senderIndexReused: return "RFC 3711 9.1: a packet index is never reused under one master key (a duplicate packet)"
        case .senderIndexBlockExhausted: return "RFC 3711 9.1 / DESIGN.md §7: the packet indices reserved for this MTK are used up"
        case .packetTooLarge: return "session limit maxPacketSize (gateway configuration)"
        case .emptyPayload: return "RFC 3550 5.1 leaves the payload to the payload format, and those of media streams need at least one octet (e.g. RFC 6184 5.2: the NAL unit type octet); an empty one is an RTP keepalive (RFC 6263), which a one-way broadcast has no use for"
        case .rtcpLengthMismatch: return "RFC 3550 6.4.1 / A.2: the length fields of a compound RTCP packet must add up to the datagram"
        }
    }

    /// A short stable name for counters ("drops by reason").
    public var reason: String { reasonName.description }

    /// `reason` as a static string (no allocation, no reference counting where it is carried).
    public var reasonName: StaticString {
        switch self {
        case .packetTooShort: return "too_short"
        case .unsupportedVersion: return "bad_version"
        case .csrcListOverrun: return "csrc_overrun"
        case .headerExtensionOverrun: return "extension_overrun"
        case .paddingOverrun: return "padding_overrun"
        case .insufficientTailroom: return "no_tailroom"
        case .unknownMKI: return "unknown_mki"
        case .authenticationFailed: return "auth_failed"
        case .replayed: return "replayed"
        case .tooOld: return "too_old"
        case .rocUnknown: return "roc_unknown"
        case .srtcpIndexExhausted: return "srtcp_index_exhausted"
        case .invalidRTCPHeader: return "bad_rtcp_header"
        case .cryptoFailure: return "crypto_failure"
        case .senderIndexReused: return "index_reused"
        case .senderIndexBlockExhausted: return "index_exhausted"
        case .packetTooLarge: return "too_large"
        case .emptyPayload: return "empty_payload"
        case .rtcpLengthMismatch: return "bad_rtcp_length"
        }
    }

    public var description: String { "\(reason) at offset \(offset): \(rule)" }
}
