/// Rewrites the IP and UDP headers of a frame whose UDP payload changed length in place
/// (SRTP adds MKI and tag), and builds frames for datagrams the gateway originates (MIKEY).
public enum UDPFrameEditor {
    public enum ChecksumPolicy: String, Sendable {
        /// Recompute the UDP checksum (always for IPv6, where it is mandatory).
        case recompute
        /// IPv4: send 0 ("no checksum", RFC 768); IPv6 still recomputes.
        case zeroForIPv4 = "zero"
    }

    /// Sets the UDP payload length to `newPayloadLength` (the payload bytes must already be in
    /// place), fixes IPv4 total length and header checksum or the IPv6 payload length, the UDP
    /// length and checksum. Returns the new frame length: link-layer trailers are dropped.
    /// `deferringChecksum`: leave the UDP checksum 0 for a later `fillUDPChecksum` (replay's
    /// write stage computes it, off the busier work stage).
    @discardableResult
    public static func resizePayload(_ p: UnsafeMutableRawPointer, frame: inout UDPFrame, newPayloadLength: Int,
                                     checksum: ChecksumPolicy = .recompute, deferringChecksum: Bool = false) -> Int {
        let udpLength = 8 + newPayloadLength
        let o = frame.ipOffset
        if frame.ipVersion == 4 {
            let ipLength = frame.udpOffset - o + udpLength
            storeBE16(p, o + 2, UInt16(truncatingIfNeeded: ipLength))
            storeBE16(p, o + 10, 0)
            var s: UInt64 = 0
            InternetChecksum.add(p + o, frame.udpOffset - o, to: &s)
            storeBE16(p, o + 10, InternetChecksum.finish(s))
        } else {
            storeBE16(p, o + 4, UInt16(truncatingIfNeeded: frame.udpOffset - o - 40 + udpLength))
        }
        storeBE16(p, frame.udpOffset + 4, UInt16(truncatingIfNeeded: udpLength))
        frame.payloadLength = newPayloadLength
        storeBE16(p, frame.udpOffset + 6, 0)
        if !deferringChecksum { fillUDPChecksum(p, frame: frame, checksum: checksum) }
        return frame.datagramEnd
    }

    /// Whether `policy` wants a UDP checksum in `frame` (IPv6: always, RFC 8200 8.1).
    @inline(__always)
    public static func needsUDPChecksum(_ frame: UDPFrame, _ policy: ChecksumPolicy) -> Bool {
        frame.ipVersion == 6 || policy == .recompute
    }

    /// Writes the UDP checksum of a frame whose checksum field is 0 (as `resizePayload` leaves
    /// it), when `checksum` asks for one.
    @inline(__always)
    public static func fillUDPChecksum(_ p: UnsafeMutableRawPointer, frame: UDPFrame, checksum: ChecksumPolicy = .recompute) {
        if needsUDPChecksum(frame, checksum) { storeBE16(p, frame.udpOffset + 6, udpChecksum(p, frame: frame)) }
    }

    /// RFC 768 / RFC 8200 8.1 checksum over the pseudo-header and the UDP datagram
    /// (the checksum field must be zero while computing). 0 is sent as 0xFFFF.
    public static func udpChecksum(_ p: UnsafeRawPointer, frame: UDPFrame) -> UInt16 {
        var s = pseudoHeaderSum(p, frame: frame)
        InternetChecksum.add(p + frame.udpOffset, 8 + frame.payloadLength, to: &s)
        let c = InternetChecksum.finish(s)
        return c == 0 ? 0xFFFF : c
    }

    /// Copies the first `length` octets of the frame at `p` to `destination`, and there fills
    /// the UDP checksum as `fillUDPChecksum` would in place (the checksum field at `p` must be
    /// 0, as `resizePayload` leaves it deferring): the datagram is summed as it is copied, one
    /// pass over it (replay lays its output out this way). `p` is not changed.
    public static func copyFillingUDPChecksum(_ p: UnsafeRawPointer, frame: UDPFrame, length: Int, to destination: UnsafeMutableRawPointer,
                                              checksum: ChecksumPolicy = .recompute) {
        let end = frame.datagramEnd
        guard needsUDPChecksum(frame, checksum), end <= length else {
            destination.copyMemory(from: p, byteCount: length)
            if needsUDPChecksum(frame, checksum), frame.udpOffset + 8 <= length {
                storeBE16(destination, frame.udpOffset + 6, udpChecksum(p, frame: frame))
            }
            return
        }
        destination.copyMemory(from: p, byteCount: frame.udpOffset)
        var s = pseudoHeaderSum(p, frame: frame)
        InternetChecksum.addCopying(p + frame.udpOffset, end - frame.udpOffset, to: destination + frame.udpOffset, sum: &s)
        if length > end { (destination + end).copyMemory(from: p + end, byteCount: length - end) }
        let c = InternetChecksum.finish(s)
        storeBE16(destination, frame.udpOffset + 6, c == 0 ? 0xFFFF : c)
    }

    /// The RFC 768 / RFC 8200 8.1 pseudo-header's sum (addresses, protocol, UDP length).
    @inline(__always)
    static func pseudoHeaderSum(_ p: UnsafeRawPointer, frame: UDPFrame) -> UInt64 {
        var s: UInt64 = 0
        let udpLength = 8 + frame.payloadLength
        if frame.ipVersion == 4 {
            InternetChecksum.add(p + frame.ipOffset + 12, 8, to: &s)   // source and destination
            InternetChecksum.add16(17, to: &s)
            InternetChecksum.add16(UInt16(truncatingIfNeeded: udpLength), to: &s)
        } else {
            InternetChecksum.add(p + frame.ipOffset + 8, 32, to: &s)
            InternetChecksum.add32(UInt32(udpLength), to: &s)
            InternetChecksum.add16(17, to: &s)
        }
        return s
    }

    /// A complete frame carrying `payload` from `source` to `destination`, with the link-layer
    /// header of `template` (a frame of the same capture) so it fits the output capture.
    public static func buildFrame(linkType: LinkType, template: [UInt8]?, source: TransportAddress, destination: TransportAddress,
                                  hopLimit: UInt8, payload: [UInt8], checksum: ChecksumPolicy = .recompute) -> [UInt8] {
        let v6: Bool
        if case .v6 = destination.address { v6 = true } else { v6 = false }
        var frame: [UInt8] = []
        switch linkType {
        case .ethernet:
            var eth = template.map { Array($0.prefix(12)) } ?? []
            if eth.count < 12 { eth = [UInt8](repeating: 0, count: 12) }
            frame = eth + (v6 ? [0x86, 0xDD] : [0x08, 0x00])
        case .linuxSLL:
            var h = template.map { Array($0.prefix(14)) } ?? []
            if h.count < 14 { h = [0, 4, 0, 1, 0, 6] + [UInt8](repeating: 0, count: 8) }
            frame = h + (v6 ? [0x86, 0xDD] : [0x08, 0x00])
        case .linuxSLL2:
            var h = template.map { Array($0.prefix(20)) } ?? []
            if h.count < 20 { h = [UInt8](repeating: 0, count: 20); h[9] = 6 }
            h[0] = v6 ? 0x86 : 0x08; h[1] = v6 ? 0xDD : 0x00
            frame = h
        case .null:
            frame = v6 ? [30, 0, 0, 0] : [2, 0, 0, 0]
        case .loop:
            frame = v6 ? [0, 0, 0, 30] : [0, 0, 0, 2]
        case .raw, .rawLinux, .ipv4, .ipv6:
            frame = []
        }
        let ipOffset = frame.count
        let udpLength = 8 + payload.count
        if v6 {
            frame += [0x60, 0, 0, 0] + be16Bytes(UInt16(truncatingIfNeeded: udpLength)) + [17, hopLimit]
            frame += v6Bytes(source.address) + v6Bytes(destination.address)
        } else {
            frame += [0x45, 0] + be16Bytes(UInt16(truncatingIfNeeded: 20 + udpLength)) + [0, 0, 0x40, 0, hopLimit, 17, 0, 0]
            frame += v4Bytes(source.address) + v4Bytes(destination.address)
        }
        let udpOffset = frame.count
        frame += be16Bytes(source.port) + be16Bytes(destination.port) + be16Bytes(UInt16(truncatingIfNeeded: udpLength)) + [0, 0]
        frame += payload
        var info = UDPFrame(linkType: linkType, ipOffset: ipOffset, ipVersion: v6 ? 6 : 4, udpOffset: udpOffset,
                            payloadLength: payload.count, source: source, destination: destination, hopLimit: hopLimit)
        frame.withUnsafeMutableBytes { b in
            _ = resizePayload(b.baseAddress!, frame: &info, newPayloadLength: payload.count, checksum: checksum)
        }
        return frame
    }

    static func be16Bytes(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xFF)] }
    static func v4Bytes(_ a: IPAddress) -> [UInt8] {
        if case .v4(let x) = a { return [UInt8(x >> 24), UInt8(x >> 16 & 0xFF), UInt8(x >> 8 & 0xFF), UInt8(x & 0xFF)] }
        return [0, 0, 0, 0]
    }
    static func v6Bytes(_ a: IPAddress) -> [UInt8] {
        guard case .v6(let h, let l) = a else { return [UInt8](repeating: 0, count: 16) }
        return (0..<8).map { UInt8(truncatingIfNeeded: h >> (56 - 8 * UInt64($0))) } + (0..<8).map { UInt8(truncatingIfNeeded: l >> (56 - 8 * UInt64($0))) }
    }
}
