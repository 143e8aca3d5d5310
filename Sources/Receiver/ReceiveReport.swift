import Foundation

/// A TS 33.246 / RFC 4771 rule the capture breaks, as `receive` reports it.
public enum ViolationKind: String, Codable, Sendable, CaseIterable {
    /// SRTP/SRTCP carries the MKI of an MTK whose MIKEY message comes only later in the capture.
    case mtkUsedBeforeAnnouncement = "mtk_used_before_announcement"
    /// The MKI names no MTK announced (accepted) anywhere in the capture, or one no longer held.
    case unknownMKI = "unknown_mki"
    /// SEQ mod R == 0 but the packet has no ROC in its tag (it verifies with the non-carrying layout).
    case rocTagMissing = "roc_tag_missing"
    /// SEQ mod R != 0 but the packet carries a ROC (it verifies with the carrying layout).
    case rocTagUnexpected = "roc_tag_unexpected"
    /// A MIKEY message on a UDP port other than 2269.
    case mikeyWrongPort = "mikey_wrong_port"
    /// A MIKEY message to an address that carries no (or another) session of its key group.
    case mikeyWrongAddress = "mikey_wrong_address"
    /// An SRTCP packet whose E flag says the opposite of the SRTCP-encryption parameter of the
    /// key group's security policy (MSK message SP, or the export's policy).
    case srtcpEncryptionFlagMismatch = "srtcp_e_flag_mismatch"
    /// Download: an FDT Instance sent as plain XML instead of a DCF (`receive --allow-plain-fdt`
    /// accepts it, for the gateway's `--plain-fdt` output).
    case fdtUnprotected = "fdt_unprotected"
    /// Download: the FDT's Content-MD5 for an object is not the MD5 of the object received.
    case contentMD5Mismatch = "content_md5_mismatch"
    /// Download: a DCF completed before the MIKEY object that carries its MTK.
    case mtkObjectAfterDCF = "mtk_object_after_dcf"

    /// The clause broken.
    public var rule: String {
        switch self {
        case .mtkUsedBeforeAnnouncement:
            return "TS 33.246 6.3.3.2.2 / 6.6.2.2: the MTK message must reach the UE before the MTK is used"
        case .unknownMKI:
            return "TS 33.246 6.6.2.1: MKI = MSK ID || MTK ID of an MTK delivered by MIKEY"
        case .rocTagMissing:
            return "RFC 4771 3 / TS 33.246 6.6.2.1: packets with SEQ mod R == 0 carry the ROC in the tag"
        case .rocTagUnexpected:
            return "RFC 4771 3 / TS 33.246 6.6.2.1: only packets with SEQ mod R == 0 carry the ROC"
        case .mikeyWrongPort:
            return "TS 33.246 6.4.5.3 / 6.6.2: MTK messages go to UDP port 2269"
        case .mikeyWrongAddress:
            return "TS 33.246 6.6.2: MTK messages go to the destination address of the session they key"
        case .fdtUnprotected:
            return "TS 33.246 6.6.3.2: the FDT is sent in a DCF (integrity by its 'odfs' signature); accept a plain one only with --allow-plain-fdt"
        case .contentMD5Mismatch:
            return "RFC 3926 3.4.2 / RFC 1864: Content-MD5 is the MD5 of the object as transported (the DCF)"
        case .mtkObjectAfterDCF:
            return "TS 33.246 6.3.3.2.2 / 6.6.3: the MIKEY MTK message (application/mikey object) reaches the UE before the DCF it keys"
        case .srtcpEncryptionFlagMismatch:
            return "TS 33.246 6.6.2.1 / RFC 3830 6.10.1 (SP type 6, SRTCP encryption) / RFC 3711 3.4: the SRTCP E flag follows the security policy"
        }
    }
}

/// One rule violation with where it happened.
public struct Violation: Codable, Sendable, Equatable {
    public var kind: ViolationKind
    public var rule: String
    /// 1-based frame number in the input capture (as Wireshark counts).
    public var frame: Int
    /// Capture time, seconds since the Unix epoch.
    public var time: Double
    /// Destination address:port of the packet.
    public var flow: String?
    public var ssrc: UInt32?
    public var sequenceNumber: UInt16?
    /// Hex MKI involved, if any.
    public var mki: String?
    public var detail: String
}

/// An MTK the receiver derived from an accepted MIKEY MTK message. Contains secrets.
public struct DerivedMTKRecord: Codable, Sendable, Equatable {
    public var keyGroup: UInt16
    public var keyNumber: UInt16
    /// 8 hex digits.
    public var mskID: String
    public var mtkID: UInt16
    /// 12 hex digits: MSK ID || MTK ID.
    public var mki: String
    /// SRTP master key, hex. SECRET.
    public var mtk: String
    /// SRTP master salt (112 bits), hex. SECRET.
    public var salt: String
    public var timestamp: UInt32
    public var csbID: String
    /// Frame and time of the MIKEY message that delivered it first.
    public var frame: Int
    public var time: Double
    public var destination: String
}

/// Results of one (destination, RTP|RTCP, SSRC) flow.
public struct FlowRecord: Codable, Sendable, Equatable {
    public var destination: String
    public var source: String
    /// "srtp" or "srtcp".
    public var kind: String
    public var ssrc: UInt32
    public var keyGroup: UInt16?
    public var packets: Int
    public var ok: Int
    /// Drops by reason (`SRTPError.reason` or a violation kind).
    public var dropped: [String: Int]
    /// MTK IDs that decrypted at least one packet, ascending.
    public var mtkIDs: [UInt16]
    /// MKIs (hex) that decrypted at least one packet.
    public var mkis: [String]
    /// SRTP: the receiver's ROC after the last packet (nil until synchronised).
    public var rocAtEnd: UInt32?
    /// SRTP: the 48-bit index of the last accepted packet; SRTCP: its 31-bit index.
    public var lastIndex: UInt64?
    public var carriedROCPackets: Int
}

/// The SRTP policy used for a key group.
public struct PolicyRecord: Codable, Sendable, Equatable {
    public var keyGroup: UInt16
    public var cipher: String
    public var auth: String
    public var rocRate: UInt16
    public var rccTagLength: Int
    public var srtcpTagLength: Int
    public var srtcpEncryption: Bool
    public var origin: String
}

/// A MIKEY message the receiver rejected (other than a benign repeat).
public struct MIKEYRejectionRecord: Codable, Sendable, Equatable {
    public var frame: Int
    public var time: Double
    public var destination: String
    public var reason: String
    /// True when the rejection means broken key delivery (MAC, key validity, malformed...),
    /// false when the message is simply not for this UE (an MSK it does not hold).
    public var counts: Bool
}

/// What `receive` found: the JSON of `--report`. Contains the derived MTKs and salts (secrets):
/// a debugging artefact, keep it private.
public struct ReceiveReport: Codable, Sendable, Equatable {
    public struct MIKEYSummary: Codable, Sendable, Equatable {
        /// MIKEY messages seen (port 2269 plus MIKEY found on other ports).
        public var messages: Int = 0
        /// Messages that delivered a new MTK.
        public var newMTKs: Int = 0
        /// Repeats of an MTK already held (expected: the BM-SC resends periodically).
        public var repeats: Int = 0
        /// MSK messages found in the capture and accepted.
        public var msks: Int = 0
        public var rejected: Int = 0
    }
    public struct Totals: Codable, Sendable, Equatable {
        public var frames: Int = 0
        public var srtpOK: Int = 0
        public var srtcpOK: Int = 0
        /// SRTP/SRTCP packets not decrypted (all reasons).
        public var dropped: Int = 0
        /// Of `dropped`: RFC 4771 late-join waits (before the first ROC-carrying packet); not failures.
        public var waitingForROC: Int = 0
        /// Frames copied unchanged (not UDP, or UDP that is not SRTP/SRTCP/MIKEY).
        public var passedThrough: Int = 0
        /// MIKEY frames left out of the plaintext output.
        public var mikeyRemoved: Int = 0
        public var malformedFrames: Int = 0
    }

    public var input: String
    public var output: String?
    public var note: String = "contains MTKs and salts in clear: debugging only, keep private"
    public var totals = Totals()
    public var mikey = MIKEYSummary()
    public var policies: [PolicyRecord] = []
    public var mtks: [DerivedMTKRecord] = []
    public var flows: [FlowRecord] = []
    public var violations: [Violation] = []
    /// Violations by kind, including any left out of `violations` beyond the per-kind cap.
    public var violationCounts: [String: Int] = [:]
    public var mikeyRejections: [MIKEYRejectionRecord] = []
    /// Set when the capture could not be read to its end (truncated or corrupt); the frames
    /// before the damage are processed.
    public var inputError: String? = nil

    /// Packets that failed to decrypt, excluding RFC 4771 late-join waits.
    public var failedPackets: Int { totals.dropped - totals.waitingForROC }
    /// True when every SRTP/SRTCP packet decrypted (late-join waits aside), no rule was broken
    /// and no MIKEY message was rejected for a reason that breaks key delivery.
    public var ok: Bool {
        failedPackets == 0 && violationCounts.values.reduce(0, +) == 0 && !mikeyRejections.contains { $0.counts } && inputError == nil
    }

    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }

    /// The human-readable summary `receive` prints (no secrets).
    public func summary() -> String {
        var out: [String] = []
        out.append("\(input): \(totals.frames) frames; SRTP ok \(totals.srtpOK), SRTCP ok \(totals.srtcpOK), dropped \(totals.dropped)"
                   + (totals.waitingForROC > 0 ? " (\(totals.waitingForROC) waiting for the first ROC, RFC 4771 late join)" : "")
                   + ", passed through \(totals.passedThrough), MIKEY removed \(totals.mikeyRemoved)")
        out.append("MIKEY: \(mikey.messages) messages, \(mikey.newMTKs) new MTKs, \(mikey.repeats) repeats, \(mikey.msks) MSK messages, \(mikey.rejected) rejected")
        let used = Set(flows.compactMap(\.keyGroup)).union(mtks.map(\.keyGroup))
        for p in policies where used.contains(p.keyGroup) {
            out.append("key group \(p.keyGroup): \(p.cipher) + \(p.auth), R = \(p.rocRate), RCC tag \(p.rccTagLength), SRTCP tag \(p.srtcpTagLength), SRTCP E = \(p.srtcpEncryption ? 1 : 0) (\(p.origin))")
        }
        if !mtks.isEmpty {
            out.append("MTKs derived: " + mtks.map { "\($0.mskID)/\($0.mtkID) (frame \($0.frame))" }.joined(separator: ", "))
        }
        out.append("")
        out.append("flow                                    kind   SSRC        packets     ok  dropped  MTK IDs      ROC")
        for f in flows {
            let drops = f.dropped.isEmpty ? "0" : f.dropped.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let ssrc = "0x" + String(f.ssrc, radix: 16).leftPad(8)
            let ids = f.mtkIDs.map(String.init).joined(separator: ",")
            out.append("\(f.destination.pad(40)) \(f.kind.pad(6)) \(ssrc)  \(String(f.packets).leftPad(7, " ")) \(String(f.ok).leftPad(6, " "))  \(drops.pad(8)) \(ids.pad(12)) \(f.rocAtEnd.map(String.init) ?? "-")")
        }
        out.append("")
        if violationCounts.isEmpty {
            out.append("no rule violations")
        } else {
            out.append("rule violations: " + violationCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", "))
            for v in violations.prefix(20) {
                out.append("  frame \(v.frame) t=\(String(format: "%.6f", v.time)) \(v.kind.rawValue)\(v.flow.map { " \($0)" } ?? "")\(v.mki.map { " MKI \($0)" } ?? ""): \(v.detail)")
            }
            if violations.count > 20 { out.append("  … \(violations.count - 20) more in the --report JSON") }
        }
        for r in mikeyRejections.prefix(10) {
            out.append("MIKEY rejected: frame \(r.frame) to \(r.destination): \(r.reason)")
        }
        if let inputError { out.append("input damaged: \(inputError) (frames before it were processed)") }
        out.append(ok ? "OK" : "FAILED: \(failedPackets) packet(s) not decrypted, \(violationCounts.values.reduce(0, +)) violation(s), \(mikeyRejections.filter(\.counts).count) MIKEY rejection(s)\(inputError == nil ? "" : ", input damaged")")
        return out.joined(separator: "\n")
    }
}

extension String {
    func pad(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
    func leftPad(_ width: Int, _ c: Character = "0") -> String { count >= width ? self : String(repeating: c, count: width - count) + self }
}
