/// Bounds-checked reading of the RTP and RTCP fixed headers (RFC 3550 5.1, 6.4).
enum RTPHeader {
    static let fixedLength = 12

    /// Length of the RTP header (fixed part, CSRCs, extension): where encryption starts.
    @inline(__always)
    static func length(_ p: UnsafeRawPointer, _ length: Int) throws(SRTPError) -> Int {
        guard length >= fixedLength else { throw .packetTooShort(length: length, minimum: fixedLength) }
        let b0 = p.load(as: UInt8.self)
        guard b0 >> 6 == 2 else { throw .unsupportedVersion(Int(b0 >> 6)) }
        let cc = Int(b0 & 0x0F)
        var h = fixedLength + 4 &* cc
        guard h <= length else { throw .csrcListOverrun(csrcCount: cc, length: length) }
        if b0 & 0x10 != 0 {
            guard h + 4 <= length else { throw .headerExtensionOverrun(offset: h, extensionLength: 0, length: length) }
            let words = Int(loadBE16(p, h + 2))
            let extOffset = h
            h += 4 &+ 4 &* words
            guard h <= length else { throw .headerExtensionOverrun(offset: extOffset, extensionLength: words, length: length) }
        }
        return h
    }

    /// RFC 3550 5.1: with P = 1 the last octet counts the padding octets, itself included.
    @inline(__always)
    static func checkPadding(_ p: UnsafeRawPointer, headerLength: Int, length: Int) throws(SRTPError) {
        guard p.load(as: UInt8.self) & 0x20 != 0 else { return }
        let payload = length - headerLength
        let pad = payload > 0 ? Int(p.load(fromByteOffset: length - 1, as: UInt8.self)) : 0
        guard pad >= 1, pad <= payload else { throw .paddingOverrun(padCount: pad, payloadLength: payload) }
    }

    @inline(__always) static func sequenceNumber(_ p: UnsafeRawPointer) -> UInt16 { loadBE16(p, 2) }
    @inline(__always) static func ssrc(_ p: UnsafeRawPointer) -> UInt32 { loadBE32(p, 8) }
    @inline(__always) static func timestamp(_ p: UnsafeRawPointer) -> UInt32 { loadBE32(p, 4) }
    /// SSRC of the (first) RTCP packet's sender: octets 4...7 (RFC 3550 6.4.1).
    @inline(__always) static func rtcpSSRC(_ p: UnsafeRawPointer) -> UInt32 { loadBE32(p, 4) }

    /// RTCP: V = 2, packet type 192...223 (RFC 5761 4), at least the 8-octet header.
    @inline(__always)
    static func checkRTCP(_ p: UnsafeRawPointer, _ length: Int) throws(SRTPError) {
        guard length >= 8 else { throw .packetTooShort(length: length, minimum: 8) }
        let b0 = p.load(as: UInt8.self)
        guard b0 >> 6 == 2 else { throw .unsupportedVersion(Int(b0 >> 6)) }
        let pt = p.load(fromByteOffset: 1, as: UInt8.self)
        guard pt >= 192, pt <= 223 else { throw .invalidRTCPHeader(offset: 1) }
    }
}

/// The sender-side checks a gateway makes before protecting a packet, beyond what the protect
/// itself needs (RFC 3550 A.1 and A.2 validity checks): the same header errors the protect
/// would report first, then what it would have let through.
public enum RTPPacketChecks {
    /// An RTP packet: header, CSRCs, extension and padding as `SRTPProtector` checks them, then
    /// at least one payload octet besides the padding (`SRTPError.emptyPayload`).
    @inline(__always)
    public static func checkRTP(_ p: UnsafeRawPointer, length: Int) throws(SRTPError) {
        let h = try RTPHeader.length(p, length)
        try RTPHeader.checkPadding(p, headerLength: h, length: length)
        let pad = p.load(as: UInt8.self) & 0x20 != 0 ? Int(p.load(fromByteOffset: length - 1, as: UInt8.self)) : 0
        guard length - h - pad > 0 else { throw .emptyPayload(headerLength: h) }
    }

    /// An RTCP compound packet: the first header as `SRTPProtector` checks it, then RFC 3550
    /// A.2: every packet has V = 2 and the length fields (32-bit words minus one, 6.4.1) add up
    /// to the datagram exactly. A length of 0xffff in a small datagram, or bytes after the last
    /// packet, is `SRTPError.rtcpLengthMismatch` at the offending header.
    @inline(__always)
    public static func checkRTCP(_ p: UnsafeRawPointer, length: Int) throws(SRTPError) {
        try RTPHeader.checkRTCP(p, length)
        var offset = 0
        while offset < length {
            guard length - offset >= 4, p.load(fromByteOffset: offset, as: UInt8.self) >> 6 == 2 else {
                throw .rtcpLengthMismatch(offset: offset)
            }
            let next = offset + 4 * (Int(loadBE16(p, offset + 2)) + 1)
            guard next <= length else { throw .rtcpLengthMismatch(offset: offset) }
            offset = next
        }
    }
}

@inline(__always) func loadBE16(_ p: UnsafeRawPointer, _ offset: Int) -> UInt16 {
    UInt16(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
}
@inline(__always) func loadBE32(_ p: UnsafeRawPointer, _ offset: Int) -> UInt32 {
    UInt32(bigEndian: p.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
}
@inline(__always) func storeBE32(_ p: UnsafeMutableRawPointer, _ offset: Int, _ v: UInt32) {
    p.storeBytes(of: v.bigEndian, toByteOffset: offset, as: UInt32.self)
}
