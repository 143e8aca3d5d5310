import CryptoCore
import Foundation
import MIKEY
import PacketIO
import SRTP

/// One decoded frame of `inspect`: a one-line summary and named fields (for --json).
public struct InspectedPacket: Codable, Sendable, Equatable {
    public var frame: Int
    public var time: Double
    /// "mikey", "srtp", "srtcp", "udp", "other" or "malformed".
    public var kind: String
    public var source: String?
    public var destination: String?
    /// UDP payload length (frame length for non-UDP frames).
    public var length: Int
    /// Named fields, in display order.
    public var fields: [Field]
    public var line: String

    public struct Field: Codable, Sendable, Equatable {
        public var name: String
        public var value: String
    }

    /// The value of the field called `name`.
    public func field(_ name: String) -> String? { fields.first { $0.name == name }?.value }

    /// A flat JSON object: frame, time, kind, source, destination, length and every field.
    public func jsonObject() -> [String: Any] {
        var o: [String: Any] = ["frame": frame, "time": time, "kind": kind, "length": length]
        if let source { o["source"] = source }
        if let destination { o["destination"] = destination }
        for f in fields { o[f.name] = f.value }
        return o
    }

    public func jsonLine() -> String {
        guard let data = try? JSONSerialization.data(withJSONObject: jsonObject(), options: [.sortedKeys]) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }
}

/// Decodes the security fields of a capture, packet by packet, with no keys (`mbms-gateway
/// inspect`). Never traps on any input.
///
/// MIKEY (UDP 2269, or any payload that decodes as MIKEY): HDR, EXT Key IDs, T, SP parameters
/// (named), KEMAC algorithms. SRTP: SSRC, SEQ, MKI (Key Group / Key Number / MTK ID), carried ROC
/// and tag. The SRTP tag length is not in the packet: the MKI is found by trying the RFC 4771
/// layouts (ROC ‖ MAC 14, MAC 10, ROC or MAC 4, none) and keeping the one whose MKI was announced
/// by an MTK message in the capture (else whose Key Group was); with an SP seen in the capture
/// (an MSK message), R and the tag lengths come from it. Failing both, the last 16 octets are shown.
public struct CaptureInspector {
    /// MKIs announced by MTK messages in the capture (EXT: MSK ID ‖ MTK ID).
    public private(set) var announcedMKIs: Set<UInt64> = []
    public private(set) var keyGroups: Set<UInt16> = []
    /// The SRTP policy of the last SP payload seen (MSK messages only).
    public private(set) var policy: SRTPPolicyParameters?

    public init() {}

    /// Inspects a capture. `limit`: at most this many frames (nil: all). A capture damaged part
    /// way throws; `inspectPartially` returns the frames before the damage too.
    public static func inspect(path: String, limit: Int? = nil) throws(ReceiverInputError) -> [InspectedPacket] {
        let (packets, error) = try inspectPartially(path: path, limit: limit)
        if let error { throw error }
        return packets
    }

    /// The frames that could be read, and the read error that stopped it (nil at a clean end).
    public static func inspectPartially(path: String, limit: Int? = nil) throws(ReceiverInputError) -> ([InspectedPacket], ReceiverInputError?) {
        var inspector = CaptureInspector()
        // Pass 1: the MIKEY messages, for MKIs and SP (up to any damage).
        _ = try? forEachFrame(path: path, limit: nil) { _, _, bytes, linkType in
            guard let linkType, let u = udp(bytes, linkType) else { return }
            let payload = Array(bytes[u.payloadOffset..<u.datagramEnd])
            if u.destination.port == mikeyPort || u.source.port == mikeyPort || looksLikeMIKEY(payload) {
                inspector.learn(payload)
            }
        }
        var out: [InspectedPacket] = []
        do {
            try forEachFrame(path: path, limit: limit) { n, time, bytes, linkType in
                out.append(inspector.inspect(frame: n, time: time, bytes: bytes, linkType: linkType))
            }
        } catch {
            if out.isEmpty { throw error }
            return (out, error)
        }
        return (out, nil)
    }

    static func forEachFrame(path: String, limit: Int?,
                             _ body: (Int, Double, UnsafeRawBufferPointer, LinkType?) -> Void) throws(ReceiverInputError) {
        let reader: CaptureReader
        do { reader = try CaptureReader(path: path) } catch {
            throw ReceiverInputError(source: path, problem: error.description, fix: "give a pcap or pcapng capture")
        }
        var n = 0
        while limit.map({ n < $0 }) ?? true {
            let next: CapturedFrame?
            do { next = try reader.next() } catch {
                throw ReceiverInputError(source: path, problem: error.description, fix: "the capture is truncated or corrupt; the frames before the damage were decoded")
            }
            guard let f = next else { break }
            n += 1
            body(n, Double(f.timestampNanoseconds) / 1e9, f.bytes, reader.linkType)
        }
    }

    static func udp(_ bytes: UnsafeRawBufferPointer, _ linkType: LinkType) -> UDPFrame? {
        guard let base = bytes.baseAddress, case .udp(let u) = FrameParser.classify(base, length: bytes.count, linkType: linkType) else { return nil }
        return u
    }

    static func looksLikeMIKEY(_ p: [UInt8]) -> Bool { CaptureReceiver.looksLikeMIKEY(p) }

    /// Remembers the MKI, Key Group and SP of a MIKEY message.
    public mutating func learn(_ payload: [UInt8]) {
        guard let m = try? MIKEYDecoder.decode(payload) else { return }
        if let k = m.keyIDInformation, let msk = k.mskID {
            keyGroups.insert(msk.keyGroup)
            if let mtk = k.mtkID {
                announcedMKIs.insert(MasterKeyIdentifier(keyGroup: msk.keyGroup, keyNumber: msk.keyNumber, mtkID: mtk.rawValue).value)
            }
        }
        if let sp = m.securityPolicies.first, let p = try? sp.srtpPolicy() { policy = p }
    }

    /// Decodes one frame.
    public func inspect(frame n: Int, time: Double, bytes: UnsafeRawBufferPointer, linkType: LinkType?) -> InspectedPacket {
        guard let linkType, let base = bytes.baseAddress else {
            return InspectedPacket(frame: n, time: time, kind: "other", length: bytes.count, fields: [],
                                   line: "frame \(n): \(bytes.count) bytes, link type not decoded")
        }
        switch FrameParser.classify(base, length: bytes.count, linkType: linkType) {
        case .passThrough(let why):
            return InspectedPacket(frame: n, time: time, kind: "other", length: bytes.count, fields: [.init(name: "reason", value: why.rawValue)],
                                   line: "\(n) \(Self.clock(time)) \(why.rawValue), \(bytes.count) bytes")
        case .malformed(let e):
            return InspectedPacket(frame: n, time: time, kind: "malformed", length: bytes.count,
                                   fields: [.init(name: "error", value: e.description)],
                                   line: "\(n) \(Self.clock(time)) malformed frame: \(e.description)")
        case .udp(let u):
            let payload = Array(bytes[u.payloadOffset..<u.datagramEnd])
            var p = InspectedPacket(frame: n, time: time, kind: "udp", source: u.source.description, destination: u.destination.description,
                                    length: payload.count, fields: [], line: "")
            let head = "\(n) \(Self.clock(time)) \(u.source) → \(u.destination)"
            if u.destination.port == mikeyPort || u.source.port == mikeyPort || Self.looksLikeMIKEY(payload) {
                p.kind = "mikey"
                p.fields = Self.mikeyFields(payload)
                if u.destination.port != mikeyPort { p.fields.append(.init(name: "warning", value: "MIKEY not on UDP port \(mikeyPort)")) }
                p.line = head + " MIKEY " + Self.render(p.fields)
            } else if payload.count >= 12, payload[0] >> 6 == 2, (200...204).contains(payload[1]) {
                p.kind = "srtcp"
                p.fields = srtcpFields(payload)
                p.line = head + " SRTCP " + Self.render(p.fields)
            } else if payload.count >= 12, payload[0] >> 6 == 2 {
                p.kind = "srtp"
                p.fields = srtpFields(payload)
                p.line = head + " SRTP " + Self.render(p.fields)
            } else {
                p.line = head + " UDP \(payload.count) bytes"
            }
            return p
        }
    }

    static func clock(_ t: Double) -> String { String(format: "%.6f", t) }

    static func render(_ fields: [InspectedPacket.Field]) -> String {
        fields.map { "\($0.name)=\($0.value)" }.joined(separator: " ")
    }

    // MARK: SRTP / SRTCP

    func srtpFields(_ p: [UInt8]) -> [InspectedPacket.Field] {
        var f: [InspectedPacket.Field] = []
        let seq = UInt16(p[2]) << 8 | UInt16(p[3])
        f.append(.init(name: "ssrc", value: "0x" + String(be32(p, 8), radix: 16).leftPad(8)))
        f.append(.init(name: "seq", value: String(seq)))
        f.append(.init(name: "pt", value: String(p[1] & 0x7F)))
        f.append(.init(name: "m", value: String(p[1] >> 7)))
        f.append(.init(name: "ts", value: String(be32(p, 4))))
        let headerLength = 12 + 4 * Int(p[0] & 0x0F) + (p[0] & 0x10 != 0 && p.count >= 16 + 4 * Int(p[0] & 0x0F)
            ? 4 + 4 * Int(UInt16(p[14 + 4 * Int(p[0] & 0x0F)]) << 8 | UInt16(p[15 + 4 * Int(p[0] & 0x0F)])) : 0)
        // Layouts: (tag length, ROC in the tag?, MAC length, name).
        var layouts: [(tag: Int, roc: Bool, mac: Int, name: String, fromSP: Bool)] = []
        if let sp = policy {
            let pol = PolicyMapping.srtpPolicy(sp)
            let t = pol.tagLength(sequenceNumber: seq)
            let carry = pol.carriesROC(sequenceNumber: seq)
            layouts.append((t, carry, carry ? t - 4 : t, "\(pol.authentication.rawValue) R=\(pol.rocTransmissionRate)", true))
        }
        layouts += [(14, true, 10, "ROC+MAC", false), (10, false, 10, "MAC", false), (4, true, 0, "ROC (RCCm3) or MAC-32", false),
                    (0, false, 0, "no tag (RCCm1/3)", false)]
        var chosen: (tag: Int, roc: Bool, mac: Int, name: String, fromSP: Bool, mki: MasterKeyIdentifier, how: String)? = nil
        for pass in 0..<2 where chosen == nil {
            for l in layouts {
                let off = p.count - l.tag - 6
                guard off >= headerLength, let mki = CaptureReceiver.readMKI(p, at: off, length: 6) else { continue }
                let match = pass == 0 ? announcedMKIs.contains(mki.value) : (keyGroups.contains(mki.keyGroup) && mki.keyNumber != 0)
                if match {
                    chosen = (l.tag, l.roc, l.mac, l.name, l.fromSP, mki, l.fromSP ? "SP" : (pass == 0 ? "MKI announced" : "Key Group announced"))
                    break
                }
            }
        }
        if let c = chosen {
            let off = p.count - c.tag - 6
            f.append(.init(name: "mki", value: Hex.encode(c.mki.bytes)))
            f.append(.init(name: "key_group", value: String(c.mki.keyGroup)))
            f.append(.init(name: "key_number", value: String(c.mki.keyNumber)))
            f.append(.init(name: "mtk_id", value: String(c.mki.mtkID)))
            let tag = Array(p[(off + 6)...])
            if c.roc && tag.count >= 4 {
                f.append(.init(name: "roc", value: String(be32(tag, 0))))
                if tag.count > 4 { f.append(.init(name: "mac", value: Hex.encode(tag[4...]))) }
            } else if !tag.isEmpty {
                f.append(.init(name: "mac", value: Hex.encode(tag)))
            }
            f.append(.init(name: "tag_layout", value: "\(c.name) (\(c.tag) octets, by \(c.how))"))
            f.append(.init(name: "encrypted_payload", value: String(max(0, off - headerLength))))
        } else {
            f.append(.init(name: "tail16", value: Hex.encode(p.suffix(16))))
            f.append(.init(name: "tag_layout", value: "unknown (no MIKEY in the capture names this MKI)"))
        }
        return f
    }

    func srtcpFields(_ p: [UInt8]) -> [InspectedPacket.Field] {
        var f: [InspectedPacket.Field] = []
        f.append(.init(name: "ssrc", value: "0x" + String(be32(p, 4), radix: 16).leftPad(8)))
        f.append(.init(name: "pt", value: String(p[1])))
        var tagLengths = [10, 4]
        if let t = policy?.srtcpAuthenticationTagLength { tagLengths.insert(Int(t), at: 0) }
        var chosen: (Int, MasterKeyIdentifier)? = nil
        for pass in 0..<3 where chosen == nil {
            for t in tagLengths {
                let off = p.count - t - 6
                guard off >= 12, let mki = CaptureReceiver.readMKI(p, at: off, length: 6) else { continue }
                if pass == 0 && announcedMKIs.contains(mki.value) || pass == 1 && keyGroups.contains(mki.keyGroup) || pass == 2 && t == tagLengths[0] {
                    chosen = (t, mki)
                    break
                }
            }
        }
        guard let (t, mki) = chosen else {
            f.append(.init(name: "tail16", value: Hex.encode(p.suffix(16))))
            return f
        }
        let word = be32(p, p.count - t - 10)
        f.append(.init(name: "e", value: word & 0x8000_0000 != 0 ? "1" : "0"))
        f.append(.init(name: "index", value: String(word & 0x7FFF_FFFF)))
        f.append(.init(name: "mki", value: Hex.encode(mki.bytes)))
        f.append(.init(name: "key_group", value: String(mki.keyGroup)))
        f.append(.init(name: "key_number", value: String(mki.keyNumber)))
        f.append(.init(name: "mtk_id", value: String(mki.mtkID)))
        f.append(.init(name: "tag", value: Hex.encode(p.suffix(t))))
        return f
    }

    // MARK: MIKEY

    static func mikeyFields(_ p: [UInt8]) -> [InspectedPacket.Field] {
        var f: [InspectedPacket.Field] = []
        let m: MIKEYMessage
        do { m = try MIKEYDecoder.decode(p) } catch {
            if p.count >= 10 {
                f.append(.init(name: "version", value: String(p[0])))
                f.append(.init(name: "data_type", value: String(p[1])))
                f.append(.init(name: "v", value: String(p[3] >> 7)))
                f.append(.init(name: "prf", value: String(p[3] & 0x7F)))
                f.append(.init(name: "csb_id", value: "0x" + String(be32(p, 4), radix: 16).leftPad(8)))
                f.append(.init(name: "cs_count", value: String(p[8])))
                f.append(.init(name: "cs_map_type", value: String(p[9])))
            }
            f.append(.init(name: "error", value: "\(error)"))
            return f
        }
        let h = m.header
        f.append(.init(name: "data_type", value: h.dataType == .preShared ? "0 (PSK init)" : "1 (PSK verification)"))
        f.append(.init(name: "v", value: h.verificationRequested ? "1" : "0"))
        f.append(.init(name: "prf", value: "0 (MIKEY-1)"))
        f.append(.init(name: "csb_id", value: "0x" + String(h.csbID.rawValue, radix: 16).leftPad(8)))
        switch h.csIDMap {
        case .empty:
            f.append(.init(name: "cs_count", value: "0"))
            f.append(.init(name: "cs_map", value: "1 (Empty)"))
        case .srtpID(let sessions):
            f.append(.init(name: "cs_count", value: String(sessions.count)))
            f.append(.init(name: "cs_map", value: "0 (SRTP-ID) " + sessions.map { "policy \($0.policyNumber) SSRC 0x\(String($0.ssrc, radix: 16)) ROC \($0.roc)" }.joined(separator: "; ")))
        }
        var kind = "MIKEY"
        if let k = m.keyIDInformation {
            if let d = k.keyDomainID { f.append(.init(name: "key_domain_id", value: Hex.encode(d.bytes))) }
            if let msk = k.mskID {
                f.append(.init(name: "msk_id", value: String(msk.rawValue, radix: 16).leftPad(8)))
                f.append(.init(name: "key_group", value: String(msk.keyGroup)))
                f.append(.init(name: "key_number", value: String(msk.keyNumber)))
            }
            if let mtk = k.mtkID {
                f.append(.init(name: "mtk_id", value: String(mtk.rawValue)))
                kind = "MTK message"
            } else if k.mskID != nil {
                kind = "MSK message"
            }
        }
        f.insert(.init(name: "message", value: kind), at: 0)
        switch m.timestamp {
        case .counter(let c)?: f.append(.init(name: "ts", value: "COUNTER \(c)"))
        case .ntp(let v)?: f.append(.init(name: "ts", value: "NTP 0x\(String(v, radix: 16))"))
        case .ntpUTC(let v)?: f.append(.init(name: "ts", value: "NTP-UTC 0x\(String(v, radix: 16))"))
        case nil: break
        }
        if let r = m.rand { f.append(.init(name: "rand_length", value: String(r.count))) }
        let ids = m.identities
        if ids.count >= 1 { f.append(.init(name: "idi", value: String(decoding: ids[0].data, as: UTF8.self))) }
        if ids.count >= 2 { f.append(.init(name: "idr", value: String(decoding: ids[1].data, as: UTF8.self))) }
        for sp in m.securityPolicies {
            f.append(.init(name: "sp", value: "policy \(sp.policyNumber) prot \(sp.protocolType == 0 ? "SRTP" : String(sp.protocolType)): "
                           + sp.parameters.map { "\(spName($0.type))=\(spValue($0))" }.joined(separator: ", ")))
        }
        if let k = m.kemac {
            let enc: String
            switch k.encryptionAlgorithm {
            case .null: enc = "NULL"
            case .aesCM128: enc = "AES-CM-128"
            case .aesKW128: enc = "AES-KW-128"
            case .aesCM256: enc = "AES-CM-256"
            }
            f.append(.init(name: "kemac_encr", value: enc))
            f.append(.init(name: "kemac_encr_length", value: String(k.encryptedData.count)))
            f.append(.init(name: "kemac_mac", value: k.macAlgorithm == .null ? "NULL" : "HMAC-SHA-1-160"))
        }
        return f
    }

    static func spName(_ t: UInt8) -> String {
        switch t {
        case 0: return "encr_alg"
        case 1: return "encr_key_len"
        case 2: return "auth_alg"
        case 3: return "auth_key_len"
        case 4: return "salt_key_len"
        case 5: return "prf"
        case 6: return "kdr"
        case 7: return "srtp_encr"
        case 8: return "srtcp_encr"
        case 9: return "fec_order"
        case 10: return "srtp_auth"
        case 11: return "auth_tag_len"
        case 12: return "srtp_prefix_len"
        case 13: return "roc_rate_R"
        case 14: return "srtp_auth_alg"
        case 15: return "srtcp_auth_alg"
        case 16: return "srtp_auth_key_len"
        case 17: return "srtcp_auth_key_len"
        case 18: return "srtp_tag_len"
        case 19: return "srtcp_tag_len"
        default: return "type\(t)"
        }
    }

    static func spValue(_ p: PolicyParameter) -> String {
        let v = p.value.reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        switch p.type {
        case 0:
            switch v { case 0: return "NULL"; case 1: return "AES-CM"; case 2: return "AES-F8"; default: return String(v) }
        case 2, 14, 15:
            switch v { case 0: return "NULL"; case 1: return "HMAC-SHA1"; case 2: return "RCCm1"; case 3: return "RCCm2"; case 4: return "RCCm3"; default: return String(v) }
        case 7, 8, 10:
            return v == 0 ? "off" : "on"
        default:
            return String(v)
        }
    }
}
