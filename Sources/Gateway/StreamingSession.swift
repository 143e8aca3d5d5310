import KeyManagement
import PacketIO
import SRTP

/// One configured RTP session as the data plane sees it (`DESIGN.md` §4): where its RTP and
/// RTCP go, its key group, and the SRTP policy its MSK messages announce.
public struct StreamingSession: Sendable, Equatable {
    public var index: Int
    public var name: String
    public var keyGroup: KeyGroup
    public var rtp: TransportAddress
    public var rtcp: TransportAddress
    /// Where protected traffic is sent in live mode (default: the destination itself).
    public var output: TransportAddress?
    public var policy: SRTPPolicy
    /// SSRCs whose sender state is kept, for RTP and for RTCP each (`maxFlows`; `SessionFlows`).
    public var maxFlows: Int = SessionConfiguration.defaultMaxFlows
    /// The sources packets are accepted from (`source`); nil: any.
    public var sourceFilter: SourceFilter? = nil
    /// The largest RTP or RTCP packet (UDP payload, before protection) accepted (`maxPacketSize`).
    public var maxPacketSize: Int = SessionConfiguration.defaultMaxPacketSize

    /// UDP port of MIKEY MTK messages (TS 33.246 6.3.3.2.2: same destination address).
    public static let mikeyPort: UInt16 = 2269

    public var mikeyDestination: TransportAddress { TransportAddress(rtp.address, Self.mikeyPort) }

    /// Whether a datagram from `source` passes the session's `source:` filter (any does without
    /// one; one whose source is unknown does not pass a filter).
    @inline(__always)
    public func admits(_ source: TransportAddress?) -> Bool {
        guard let filter = sourceFilter else { return true }
        guard let a = source?.address else { return false }
        return filter.contains(a)
    }
}

public enum GatewaySetupError: Error, Equatable, Sendable, CustomStringConvertible {
    case badAddress(session: String, value: String)
    case badPolicy(session: String, reason: String)
    case noSessions(file: String)

    public var description: String {
        switch self {
        case let .badAddress(s, v): return "session \(s): address \(v) cannot be used (expected IPv4 a.b.c.d:port or [IPv6]:port)"
        case let .badPolicy(s, r): return "session \(s): protection policy: \(r)"
        case let .noSessions(f): return "\(f): no rtp sessions configured (add one under `sessions:` with kind: rtp)"
        }
    }
}

extension StreamingSession {
    /// The RTP sessions of a configuration, in file order.
    public static func sessions(of configuration: GatewayConfiguration) throws(GatewaySetupError) -> [StreamingSession] {
        var out: [StreamingSession] = []
        for s in configuration.sessions where s.kind == .rtp {
            func address(_ a: KeyManagement.SocketAddress) throws(GatewaySetupError) -> TransportAddress {
                guard let ip = IPAddress(a.host) else { throw .badAddress(session: s.name, value: a.description) }
                return TransportAddress(ip, a.port)
            }
            let rtp = try address(s.destination)
            let rtcp = try s.rtcpDestination.map { (a) throws(GatewaySetupError) in try address(a) } ?? TransportAddress(rtp.address, rtp.port &+ 1)
            let output = try s.output.map { (a) throws(GatewaySetupError) in try address(a) }
            let policy = try policy(s.protection, session: s.name)
            out.append(StreamingSession(index: out.count, name: s.name, keyGroup: s.keyGroup, rtp: rtp, rtcp: rtcp,
                                        output: output, policy: policy, maxFlows: s.maxFlows,
                                        sourceFilter: s.sources.map(SourceFilter.init(_:)), maxPacketSize: s.maxPacketSize))
        }
        return out
    }

    /// The SRTP module's policy for a configured protection policy.
    public static func policy(_ p: ProtectionPolicyConfiguration, session: String) throws(GatewaySetupError) -> SRTPPolicy {
        let cipher: SRTP.SRTPCipher
        switch p.cipher {
        case .aes128CM: cipher = .aesCM128
        case .aes192CM: cipher = .aesCM192
        case .aes256CM: cipher = .aesCM256
        case .null: cipher = .null
        }
        let auth: SRTP.SRTPAuthentication
        switch p.authentication {
        case .hmacSHA1_80: auth = .hmacSHA1_80
        case .hmacSHA1_32: auth = .hmacSHA1_32
        case .rccm1: auth = .rccm1
        case .rccm2: auth = .rccm2
        case .rccm3: auth = .rccm3
        }
        let policy = SRTPPolicy(cipher: cipher, authentication: auth, rocTransmissionRate: p.rocRate,
                                rccTagLength: auth.carriesROC ? p.srtpTagLength : nil,
                                srtcpEncryption: p.srtcpEncryption && cipher != .null, srtcpTagLength: p.srtcpTagLength)
        do { try policy.validate() } catch { throw .badPolicy(session: session, reason: error.description) }
        return policy
    }
}

/// A session's `source:` prefixes, as the packet path tests them: a mask and compare per
/// prefix. An IPv4 prefix also matches the IPv4-mapped IPv6 form of its addresses
/// (::ffff:a.b.c.d, RFC 4291 2.5.5.2), as a dual-stack socket reports them.
public struct SourceFilter: Sendable, Equatable, CustomStringConvertible {
    struct Prefix: Sendable, Equatable {
        var high: UInt64, low: UInt64          // network, as an IPv6 address (IPv4: mapped)
        var highMask: UInt64, lowMask: UInt64
    }
    let prefixes: [Prefix]
    public let description: String

    public init(_ configured: [AddressPrefix]) {
        prefixes = configured.map { p in
            var bytes = p.addressBytes, length = p.length
            if bytes.count == 4 {
                bytes = [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + bytes
                length += 96
            }
            let high = bytes[0..<8].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            let low = bytes[8..<16].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            func mask(_ bits: Int) -> UInt64 { bits <= 0 ? 0 : bits >= 64 ? .max : ~(UInt64.max >> UInt64(bits)) }
            return Prefix(high: high, low: low, highMask: mask(length), lowMask: mask(length - 64))
        }
        description = configured.map(\.description).joined(separator: ", ")
    }

    @inline(__always)
    public func contains(_ a: IPAddress) -> Bool {
        let h: UInt64, l: UInt64
        switch a {
        case .v4(let v): h = 0; l = 0xFFFF_0000_0000 | UInt64(v)
        case .v6(let x, let y): h = x; l = y
        }
        for p in prefixes where h & p.highMask == p.high && l & p.lowMask == p.low { return true }
        return false
    }
}
