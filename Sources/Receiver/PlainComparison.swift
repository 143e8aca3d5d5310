import CryptoCore
import Foundation
import PacketIO

/// `receive --plain INPUT`: the receiver's plaintext capture against the plain capture the
/// gateway was given, payload by payload and per flow. Decrypting proves only that the
/// packets came from a key holder; this shows whether what came out is what went in (an altered
/// or dropped payload authenticates fine when the gateway itself altered or dropped it).
///
/// A flow is (destination address:port, RTP or RTCP, SSRC), RTP/RTCP told apart as the receiver
/// does (RTP version 2; RTCP when the second octet is 200...204, RFC 5761 4). RTP packets are
/// paired by sequence number (in order, so a SEQ seen again after a wrap pairs with its next
/// occurrence); RTCP compounds, which have no sequence number, by content, then what is left
/// pairs in order. A pair with different payloads is `altered`; a plain packet with no
/// partner is `missing`, a received one `extra`. Payloads are compared by SHA-256.
public struct PlainComparison: Codable, Sendable, Equatable {
    public struct Flow: Codable, Sendable, Equatable {
        public var destination: String
        /// "rtp" or "rtcp".
        public var kind: String
        public var ssrc: UInt32
        /// Packets of the flow in the plain capture, and in the receiver's output.
        public var plain: Int
        public var received: Int
        public var matched: Int
        public var altered: Int
        public var missing: Int
        public var extra: Int
        /// False when the protected capture carried this flow in clear (passed through by the
        /// gateway, not SRTP/SRTCP): its payloads are compared all the same.
        public var protected: Bool
        /// The first few RTP sequence numbers altered or missing (RTCP: none), for a closer look.
        public var firstAlteredSequenceNumbers: [UInt16]
        public var firstMissingSequenceNumbers: [UInt16]
    }

    /// The plain capture.
    public var plainInput: String
    public var flows: [Flow]
    /// Plain-capture UDP datagrams that are not RTP/RTCP (FLUTE, MIKEY, other): not compared.
    public var notCompared = 0

    public var altered: Int { flows.reduce(0) { $0 + $1.altered } }
    public var missing: Int { flows.reduce(0) { $0 + $1.missing } }
    public var extra: Int { flows.reduce(0) { $0 + $1.extra } }
    /// No payload altered or missing (extra packets are reported, not failures: a protected
    /// capture may start earlier or end later than the plain one).
    public var ok: Bool { altered == 0 && missing == 0 }

    struct Key: Hashable, Comparable {
        var destination: TransportAddress
        var rtcp: Bool
        var ssrc: UInt32
        static func < (a: Key, b: Key) -> Bool {
            (a.destination.description, a.rtcp ? 1 : 0, a.ssrc) < (b.destination.description, b.rtcp ? 1 : 0, b.ssrc)
        }
    }

    /// One datagram's identity within its flow and its digest.
    struct Packet {
        var sequenceNumber: UInt16?
        var digest: [UInt8]
    }

    /// Compares `plain` (the gateway's input) with `received` (the receiver's `--output`).
    /// `protectedFlows` are the flows the receiver decrypted (destination, "srtp"/"srtcp", SSRC).
    public static func compare(plain: String, received: String,
                               protectedFlows: [FlowRecord]) throws(ReceiverInputError) -> PlainComparison {
        var notCompared = 0
        let p = try packets(plain, option: "--plain") { notCompared += 1 }
        let r = try packets(received, option: "--output") {}
        let secured = Set(protectedFlows.map { "\($0.destination)|\($0.kind == "srtcp")|\($0.ssrc)" })
        var flows: [Flow] = []
        for key in Set(p.keys).union(r.keys).sorted() {
            let a = p[key] ?? [], b = r[key] ?? []
            var flow = Flow(destination: key.destination.description, kind: key.rtcp ? "rtcp" : "rtp", ssrc: key.ssrc, plain: a.count,
                            received: b.count, matched: 0, altered: 0, missing: 0, extra: 0,
                            protected: secured.contains("\(key.destination)|\(key.rtcp)|\(key.ssrc)"),
                            firstAlteredSequenceNumbers: [], firstMissingSequenceNumbers: [])
            if key.rtcp { pairByContent(a, b, into: &flow) } else { pairBySequenceNumber(a, b, into: &flow) }
            flows.append(flow)
        }
        return PlainComparison(plainInput: plain, flows: flows, notCompared: notCompared)
    }

    static let examples = 10

    static func pairBySequenceNumber(_ plain: [Packet], _ received: [Packet], into flow: inout Flow) {
        var queues: [UInt16: [Int]] = [:]
        for (i, x) in plain.enumerated() { queues[x.sequenceNumber ?? 0, default: []].append(i) }
        var heads: [UInt16: Int] = [:]
        var paired = [Bool](repeating: false, count: plain.count)
        for x in received {
            let seq = x.sequenceNumber ?? 0
            let h = heads[seq, default: 0]
            guard let q = queues[seq], h < q.count else { flow.extra += 1; continue }
            heads[seq] = h + 1
            paired[q[h]] = true
            if plain[q[h]].digest == x.digest {
                flow.matched += 1
            } else {
                flow.altered += 1
                if flow.firstAlteredSequenceNumbers.count < examples { flow.firstAlteredSequenceNumbers.append(seq) }
            }
        }
        for (i, x) in plain.enumerated() where !paired[i] {
            flow.missing += 1
            if flow.firstMissingSequenceNumbers.count < examples { flow.firstMissingSequenceNumbers.append(x.sequenceNumber ?? 0) }
        }
    }

    static func pairByContent(_ plain: [Packet], _ received: [Packet], into flow: inout Flow) {
        var unpaired: [[UInt8]: Int] = [:]
        for x in plain { unpaired[x.digest, default: 0] += 1 }
        var leftover = 0
        for x in received {
            if let n = unpaired[x.digest], n > 0 {
                unpaired[x.digest] = n - 1
                flow.matched += 1
            } else {
                leftover += 1
            }
        }
        let plainLeft = plain.count - flow.matched
        flow.altered = min(plainLeft, leftover)
        flow.missing = plainLeft - flow.altered
        flow.extra = leftover - flow.altered
    }

    /// The RTP/RTCP datagrams of a capture by flow, in capture order.
    static func packets(_ path: String, option: String, other: () -> Void) throws(ReceiverInputError) -> [Key: [Packet]] {
        let reader: CaptureReader
        do { reader = try CaptureReader(path: path) } catch {
            throw ReceiverInputError(source: path, problem: error.description, fix: "give a pcap/pcapng capture with \(option)")
        }
        guard let link = reader.linkType else {
            throw ReceiverInputError(source: path, problem: "link type \(reader.dataLinkType) is not supported",
                                     fix: "give an Ethernet, Linux cooked, raw IP or loopback capture with \(option)")
        }
        var out: [Key: [Packet]] = [:]
        var frame = 0
        while true {
            let next: CapturedFrame?
            do { next = try reader.next() } catch {
                throw ReceiverInputError(source: path, problem: "\(error.description) after frame \(frame)", fix: "give an undamaged capture with \(option)")
            }
            guard let f = next else { break }
            frame += 1
            guard let base = f.bytes.baseAddress, case .udp(let u) = FrameParser.classify(base, length: f.bytes.count, linkType: link) else { continue }
            let payload = UnsafeRawBufferPointer(rebasing: f.bytes[u.payloadOffset..<u.datagramEnd])
            guard u.destination.port != mikeyPort, payload.count >= 8, payload[0] >> 6 == 2 else { other(); continue }
            let rtcp = (200...204).contains(payload[1])
            guard rtcp || payload.count >= 12 else { other(); continue }
            let o = rtcp ? 4 : 8
            let ssrc = UInt32(payload[o]) << 24 | UInt32(payload[o + 1]) << 16 | UInt32(payload[o + 2]) << 8 | UInt32(payload[o + 3])
            let seq: UInt16? = rtcp ? nil : UInt16(payload[2]) << 8 | UInt16(payload[3])
            out[Key(destination: u.destination, rtcp: rtcp, ssrc: ssrc), default: []].append(Packet(sequenceNumber: seq, digest: SHA256.hash(Array(payload))))
        }
        return out
    }

    /// The lines `receive --plain` prints.
    public func summary() -> String {
        var out = ["payloads against \(plainInput): \(flows.reduce(0) { $0 + $1.matched }) matched, \(altered) altered, \(missing) missing, \(extra) extra"
                   + (notCompared > 0 ? " (\(notCompared) other datagrams of the plain capture not compared)" : "")]
        out.append("flow                                    kind  SSRC        plain  received  matched  altered  missing  extra")
        for f in flows {
            let ssrc = "0x" + String(f.ssrc, radix: 16).leftPad(8)
            out.append("\(f.destination.pad(40)) \(f.kind.pad(5)) \(ssrc)  \(String(f.plain).leftPad(5, " "))  \(String(f.received).leftPad(8, " "))  \(String(f.matched).leftPad(7, " "))  \(String(f.altered).leftPad(7, " "))  \(String(f.missing).leftPad(7, " "))  \(String(f.extra).leftPad(5, " "))"
                       + (f.protected ? "" : "  (in clear: not SRTP/SRTCP in the protected capture)"))
            if !f.firstAlteredSequenceNumbers.isEmpty { out.append("  altered SEQ: " + f.firstAlteredSequenceNumbers.map(String.init).joined(separator: ", ") + (f.altered > Self.examples ? ", …" : "")) }
            if !f.firstMissingSequenceNumbers.isEmpty { out.append("  missing SEQ: " + f.firstMissingSequenceNumbers.map(String.init).joined(separator: ", ") + (f.missing > Self.examples ? ", …" : "")) }
        }
        out.append(ok ? "payloads: OK (every plain payload came back unaltered)" : "payloads: FAILED (\(altered) altered, \(missing) missing)")
        return out.joined(separator: "\n")
    }
}
