/// Why a captured frame cannot be handled as a UDP datagram. Names the layer, the offset
/// and the rule; the data plane counts these per `reason` and keeps going.
public enum FrameError: Error, Hashable, Sendable, CustomStringConvertible {
    case truncated(layer: String, offset: Int, needed: Int, available: Int)
    case unsupportedLinkType(Int32)
    case badIPVersion(offset: Int, version: Int)
    case badIPv4HeaderLength(offset: Int, ihl: Int)
    case ipLengthMismatch(offset: Int, stated: Int, available: Int)
    case badIPv6ExtensionHeader(offset: Int, nextHeader: UInt8)
    case badUDPLength(offset: Int, stated: Int, available: Int)

    /// A short stable name for counters ("drops by reason").
    public var reason: String { reasonName.description }

    /// `reason` as a static string: a frame's drop verdict carries it without making
    /// `EngineFrame` a value that needs reference counting on the packet path.
    public var reasonName: StaticString {
        switch self {
        case .truncated: return "truncated_frame"
        case .unsupportedLinkType: return "unsupported_link_type"
        case .badIPVersion: return "bad_ip_version"
        case .badIPv4HeaderLength: return "bad_ipv4_ihl"
        case .ipLengthMismatch: return "bad_ip_length"
        case .badIPv6ExtensionHeader: return "bad_ipv6_extension"
        case .badUDPLength: return "bad_udp_length"
        }
    }

    public var description: String {
        switch self {
        case let .truncated(layer, offset, needed, available):
            return "\(layer) header at offset \(offset) needs \(needed) bytes, \(available) present"
        case let .unsupportedLinkType(t): return "link type \(t) is not supported (Ethernet, Linux cooked v1/v2, raw IP, loopback are)"
        case let .badIPVersion(offset, v): return "IP version \(v) at offset \(offset) (RFC 791 / RFC 8200: 4 or 6)"
        case let .badIPv4HeaderLength(offset, ihl): return "IPv4 IHL \(ihl) at offset \(offset) (RFC 791: 5...15 and within the packet)"
        case let .ipLengthMismatch(offset, stated, available): return "IP length \(stated) at offset \(offset) exceeds the \(available) bytes captured"
        case let .badIPv6ExtensionHeader(offset, nh): return "IPv6 extension header \(nh) at offset \(offset) runs past the packet"
        case let .badUDPLength(offset, stated, available): return "UDP length \(stated) at offset \(offset) (RFC 768: 8...\(available))"
        }
    }
}

/// Frames we forward untouched (and count), because they are not ours to protect.
public enum PassThroughReason: String, Hashable, Sendable {
    /// An IP fragment: protecting a part of a datagram is impossible; forwarded as is.
    case ipFragment = "ip_fragment"
    case notIP = "not_ip"
    case notUDP = "not_udp"
}

/// Where the layers of a UDP datagram sit in a captured frame.
public struct UDPFrame: Hashable, Sendable {
    public var linkType: LinkType
    public var ipOffset: Int
    public var ipVersion: UInt8
    public var udpOffset: Int
    public var payloadLength: Int
    public var source: TransportAddress
    public var destination: TransportAddress
    /// IPv4 TTL or IPv6 hop limit.
    public var hopLimit: UInt8

    public var payloadOffset: Int { udpOffset + 8 }
    /// Frame length up to the end of the UDP datagram (link-layer trailers excluded).
    public var datagramEnd: Int { payloadOffset + payloadLength }
}

public enum FrameClassification: Hashable, Sendable {
    case udp(UDPFrame)
    case passThrough(PassThroughReason)
    case malformed(FrameError)
}

/// Reads link layer, IPv4/IPv6 (options and extension headers) and UDP headers of a captured
/// frame without copying. Never traps on any input.
public enum FrameParser {
    public static func classify(_ p: UnsafeRawPointer, length: Int, linkType: LinkType) -> FrameClassification {
        var ipOffset = 0
        var etherType: UInt16? = nil
        func need(_ layer: String, _ offset: Int, _ n: Int) -> FrameError? {
            offset + n <= length ? nil : .truncated(layer: layer, offset: offset, needed: n, available: max(0, length - offset))
        }
        switch linkType {
        case .ethernet:
            if let e = need("Ethernet", 0, 14) { return .malformed(e) }
            var off = 12
            var type = be16(p, off)
            // IEEE 802.1Q / 802.1ad tags.
            var tags = 0
            while (type == 0x8100 || type == 0x88A8) && tags < 2 {
                if let e = need("802.1Q", off + 2, 4 + 2) { return .malformed(e) }
                off += 4
                type = be16(p, off)
                tags += 1
            }
            etherType = type
            ipOffset = off + 2
        case .linuxSLL:
            if let e = need("Linux cooked v1", 0, 16) { return .malformed(e) }
            etherType = be16(p, 14)
            ipOffset = 16
        case .linuxSLL2:
            if let e = need("Linux cooked v2", 0, 20) { return .malformed(e) }
            etherType = be16(p, 0)
            ipOffset = 20
        case .null, .loop:
            if let e = need("loopback", 0, 4) { return .malformed(e) }
            // The address family is in the writer's byte order (DLT_NULL) or network order (DLT_LOOP).
            let raw = p.loadUnaligned(as: UInt32.self)
            var family = linkType == .loop ? UInt32(bigEndian: raw) : UInt32(littleEndian: raw)
            if family > 0xFFFF { family = family.byteSwapped }
            switch family {
            case 2: etherType = 0x0800
            case 10, 24, 28, 30: etherType = 0x86DD
            default: return .passThrough(.notIP)
            }
            ipOffset = 4
        case .raw, .rawLinux, .ipv4, .ipv6:
            ipOffset = 0
        }
        if let t = etherType, t != 0x0800, t != 0x86DD { return .passThrough(.notIP) }
        if let e = need("IP", ipOffset, 1) { return .malformed(e) }
        let version = p.load(fromByteOffset: ipOffset, as: UInt8.self) >> 4
        if let t = etherType, (t == 0x0800) != (version == 4) {
            return .malformed(.badIPVersion(offset: ipOffset, version: Int(version)))
        }
        switch version {
        case 4: return ipv4(p, length: length, linkType: linkType, ipOffset: ipOffset)
        case 6: return ipv6(p, length: length, linkType: linkType, ipOffset: ipOffset)
        default: return .malformed(.badIPVersion(offset: ipOffset, version: Int(version)))
        }
    }

    static func ipv4(_ p: UnsafeRawPointer, length: Int, linkType: LinkType, ipOffset o: Int) -> FrameClassification {
        guard o + 20 <= length else { return .malformed(.truncated(layer: "IPv4", offset: o, needed: 20, available: length - o)) }
        let ihl = Int(p.load(fromByteOffset: o, as: UInt8.self) & 0x0F)
        guard ihl >= 5, o + ihl * 4 <= length else { return .malformed(.badIPv4HeaderLength(offset: o, ihl: ihl)) }
        let total = Int(be16(p, o + 2))
        guard total >= ihl * 4, o + total <= length else {
            return .malformed(.ipLengthMismatch(offset: o + 2, stated: total, available: length - o))
        }
        let flagsFragment = be16(p, o + 6)
        if flagsFragment & 0x2000 != 0 || flagsFragment & 0x1FFF != 0 { return .passThrough(.ipFragment) }
        guard p.load(fromByteOffset: o + 9, as: UInt8.self) == 17 else { return .passThrough(.notUDP) }
        let src = IPAddress.v4(be32(p, o + 12)), dst = IPAddress.v4(be32(p, o + 16))
        return udp(p, linkType: linkType, ipOffset: o, ipVersion: 4, udpOffset: o + ihl * 4, ipEnd: o + total,
                   source: src, destination: dst, hopLimit: p.load(fromByteOffset: o + 8, as: UInt8.self))
    }

    static func ipv6(_ p: UnsafeRawPointer, length: Int, linkType: LinkType, ipOffset o: Int) -> FrameClassification {
        guard o + 40 <= length else { return .malformed(.truncated(layer: "IPv6", offset: o, needed: 40, available: length - o)) }
        let payload = Int(be16(p, o + 4))
        guard o + 40 + payload <= length, payload > 0 else {
            return .malformed(.ipLengthMismatch(offset: o + 4, stated: payload, available: length - o - 40))
        }
        let ipEnd = o + 40 + payload
        var next = p.load(fromByteOffset: o + 6, as: UInt8.self)
        var off = o + 40
        // Hop-by-hop (0), routing (43), destination options (60): skip; fragment (44): pass through.
        var hops = 0
        while next == 0 || next == 43 || next == 60 || next == 44 {
            if next == 44 { return .passThrough(.ipFragment) }
            guard off + 8 <= ipEnd, hops < 8 else { return .malformed(.badIPv6ExtensionHeader(offset: off, nextHeader: next)) }
            let len = (Int(p.load(fromByteOffset: off + 1, as: UInt8.self)) + 1) * 8
            guard off + len <= ipEnd else { return .malformed(.badIPv6ExtensionHeader(offset: off, nextHeader: next)) }
            next = p.load(fromByteOffset: off, as: UInt8.self)
            off += len
            hops += 1
        }
        guard next == 17 else { return .passThrough(.notUDP) }
        let src = IPAddress.v6(be64(p, o + 8), be64(p, o + 16)), dst = IPAddress.v6(be64(p, o + 24), be64(p, o + 32))
        return udp(p, linkType: linkType, ipOffset: o, ipVersion: 6, udpOffset: off, ipEnd: ipEnd,
                   source: src, destination: dst, hopLimit: p.load(fromByteOffset: o + 7, as: UInt8.self))
    }

    static func udp(_ p: UnsafeRawPointer, linkType: LinkType, ipOffset: Int, ipVersion: UInt8, udpOffset u: Int, ipEnd: Int,
                    source: IPAddress, destination: IPAddress, hopLimit: UInt8) -> FrameClassification {
        guard u + 8 <= ipEnd else { return .malformed(.truncated(layer: "UDP", offset: u, needed: 8, available: ipEnd - u)) }
        let udpLength = Int(be16(p, u + 4))
        guard udpLength >= 8, u + udpLength <= ipEnd else {
            return .malformed(.badUDPLength(offset: u + 4, stated: udpLength, available: ipEnd - u))
        }
        return .udp(UDPFrame(linkType: linkType, ipOffset: ipOffset, ipVersion: ipVersion, udpOffset: u,
                             payloadLength: udpLength - 8,
                             source: TransportAddress(source, be16(p, u)),
                             destination: TransportAddress(destination, be16(p, u + 2)),
                             hopLimit: hopLimit))
    }
}

@inline(__always) func be16(_ p: UnsafeRawPointer, _ o: Int) -> UInt16 { UInt16(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) }
@inline(__always) func be32(_ p: UnsafeRawPointer, _ o: Int) -> UInt32 { UInt32(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
@inline(__always) func be64(_ p: UnsafeRawPointer, _ o: Int) -> UInt64 { UInt64(bigEndian: p.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
@inline(__always) func storeBE16(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt16) { p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt16.self) }
@inline(__always) func storeBE32(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt32) { p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt32.self) }
@inline(__always) func storeBE64(_ p: UnsafeMutableRawPointer, _ o: Int, _ v: UInt64) { p.storeBytes(of: v.bigEndian, toByteOffset: o, as: UInt64.self) }
