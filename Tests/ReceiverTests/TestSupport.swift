import CryptoCore
import Foundation
import MIKEY
import PacketIO
import SRTP
import XCTest

/// Paths of the shared fixtures (../shared beside the checkout).
enum Paths {
    static let shared = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared")

    static func fixture(_ name: String) throws -> String {
        let url = shared.appendingPathComponent("fixtures/\(name)")
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw XCTSkip("\(url.path) not present (tests expect ../shared/fixtures beside the checkout)")
        }
        return url.path
    }

    static func temporary(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("receiver-tests-\(ProcessInfo.processInfo.processIdentifier)")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }
}

/// Every frame of a capture: timestamp, bytes, and the UDP payload (nil for non-UDP).
struct Frame {
    var timestamp: UInt64
    var bytes: [UInt8]
    var udp: UDPFrame?
    var payload: [UInt8]? { udp.map { Array(bytes[$0.payloadOffset..<$0.datagramEnd]) } }
}

func readFrames(_ path: String) throws -> (linkType: Int32, frames: [Frame]) {
    let r = try CaptureReader(path: path)
    var out: [Frame] = []
    while let f = try r.next() {
        let bytes = Array(f.bytes)
        var udp: UDPFrame? = nil
        if let lt = r.linkType, case .udp(let u) = bytes.withUnsafeBytes({ FrameParser.classify($0.baseAddress!, length: $0.count, linkType: lt) }) {
            udp = u
        }
        out.append(Frame(timestamp: f.timestampNanoseconds, bytes: bytes, udp: udp))
    }
    return (r.dataLinkType, out)
}

func writeFrames(_ path: String, linkType: Int32, _ frames: [(UInt64, [UInt8])]) throws {
    let w = try CaptureWriter(path: path, dataLinkType: linkType)
    for (t, b) in frames { w.write(timestampNanoseconds: t, bytes: b) }
    w.close()
}

/// Replaces the UDP payload of a frame (fixing IP/UDP lengths and checksums).
func replacingPayload(_ f: Frame, _ payload: [UInt8]) -> [UInt8] {
    guard var u = f.udp else { return f.bytes }
    var bytes = Array(f.bytes[0..<u.payloadOffset]) + payload
    let end = bytes.withUnsafeMutableBytes { UDPFrameEditor.resizePayload($0.baseAddress!, frame: &u, newPayloadLength: payload.count) }
    bytes.removeSubrange(end...)
    return bytes
}

/// A BM-SC in miniature: an MSK, MTKs under it, an MSK message for a test UE, MTK messages.
struct TestBMSC {
    var muk = SecretBytes([UInt8](repeating: 0x4D, count: 32))
    var nafID = "bmsc.mnc001.mcc001.pub.3gppnetwork.org"
    var bTID = "ue1@bsf.example"
    var domain: KeyDomainID = TestBMSC.defaultDomain
    static let defaultDomain: KeyDomainID = {
        guard let d = KeyDomainID(mcc: "001", mnc: "01") else { fatalError("MCC 001 / MNC 01 is a valid Key Domain ID") }
        return d
    }()
    var keyGroup: UInt16 = 1
    var keyNumber: UInt16 = 1
    var msk = SecretBytes((0..<16).map { UInt8($0 &* 7 &+ 3) })
    var rand: [UInt8] = (0..<16).map { UInt8($0 &+ 0xA0) }
    let policy: SRTPPolicy
    /// The two MTK IDs used (first half, second half); MTK 7 is never announced.
    var mtkIDs: (UInt16, UInt16) = (1, 2)
    /// MTK bytes by ID when not the built-in pattern (e.g. from `keys export-ue`).
    var mtkOverride: [UInt16: (key: [UInt8], salt: [UInt8])] = [:]
    var mtkTimestamps: (UInt32, UInt32) = (10, 11)
    /// TS of the MSK message (per-UE counter: increase it for a second key group).
    var mskTimestamp: UInt32 = 1

    init(policy: SRTPPolicy) { self.policy = policy }

    var mskID: MSKID { MSKID(keyGroup: keyGroup, keyNumber: keyNumber) }

    func mtk(_ id: UInt16) -> (key: [UInt8], salt: [UInt8]) {
        if let o = mtkOverride[id] { return o }
        return ((0..<16).map { UInt8(truncatingIfNeeded: Int(id) &* 31 &+ $0) }, (0..<14).map { UInt8(truncatingIfNeeded: Int(id) &* 17 &+ $0 &+ 100) })
    }

    func sessionKeys(_ id: UInt16) throws -> SRTPSessionKeys {
        let m = mtk(id)
        return try SRTPSessionKeys(masterKey: m.key, masterSalt: m.salt, mki: MasterKeyIdentifier(keyGroup: keyGroup, keyNumber: keyNumber, mtkID: id),
                                   cipher: policy.cipher)
    }

    func spParameters() -> SRTPPolicyParameters {
        let auth: SRTPAuthenticationAlgorithm
        switch policy.authentication {
        case .rccm1: auth = .rccm1
        case .rccm2: auth = .rccm2
        case .rccm3: auth = .rccm3
        default: auth = .hmacSHA1
        }
        var p = SRTPPolicyParameters.mbmsRecommended(rocTransmissionRate: policy.rocTransmissionRate, authentication: auth,
                                                     srtcpEncryption: policy.srtcpEncryption)
        p.sessionEncryptionKeyLength = UInt8(policy.cipher.sessionKeyLength)
        return p
    }

    func mskMessage(seqL: UInt16 = 0, seqU: UInt16 = 100) throws -> [UInt8] {
        try MSKDeliveryBuilder(muk: muk, nafID: nafID, bTID: bTID, keyDomainID: domain, mskID: mskID,
                               content: .key(msk: msk, seqL: seqL, seqU: seqU),
                               service: .streaming(policy: spParameters(), policyNumber: 0, ssrc: 0, roc: 0),
                               rand: rand, csbID: CSBID(0x1234_5678), timestamp: mskTimestamp, verificationRequested: false).build()
    }

    func mtkMessage(_ id: UInt16, timestamp: UInt32) throws -> [UInt8] {
        let m = mtk(id)
        return try MTKDeliveryBuilder(msk: msk, mskRAND: rand, keyDomainID: domain, mskID: mskID, mtkID: MTKID(id),
                                      content: .streaming(mtk: SecretBytes(m.key), salt: SecretBytes(m.salt)),
                                      csbID: CSBID(0xC0DE_0000 | UInt32(id)), timestamp: timestamp).build()
    }

    /// `keys export-ue`-shaped JSON for this MSK and policy.
    func exportJSON() -> Data {
        let auth = policy.authentication.rawValue
        let json = """
        {"keyDomainID":"00f110","keyGroup":\(keyGroup),"at":0,
         "msks":[{"role":"current","mskID":"\(String(format: "%04x%04x", keyGroup, keyNumber))","keyGroup":\(keyGroup),"keyNumber":\(keyNumber),
                  "msk":"\(msk.withUnsafeBytes { Hex.encode($0) })","rand":"\(Hex.encode(rand))","seqL":0,"seqU":100,
                  "validFrom":0,"validUntil":86400}],
         "policy":{"kind":"rtp","cipher":"\(policy.cipher.rawValue)","auth":"\(auth)","rocRate":\(policy.rocTransmissionRate),
                   "srtpTagLength":\(policy.authentication.carriesROC ? policy.rccTagLength : 10),"srtcpTagLength":\(policy.srtcpTagLength),
                   "srtcpEncryption":\(policy.srtcpEncryption),"dcf":false}}
        """
        return Data(json.utf8)
    }
}

/// How to distort the protected capture (for the rule-violation tests).
struct Distortion {
    /// Announce MTK 2 only this many RTP packets after its first use (nil: before, as it should).
    var announceMTK2Late: Int? = nil
    /// RTP packet numbers (0-based among RTP packets) protected with MTK 7, never announced.
    var unknownMKIPackets: Set<Int> = []
    /// RTP packet numbers protected with the ROC-carrying layout whatever their SEQ.
    var forceROCPackets: Set<Int> = []
    /// RTP packet numbers protected without ROC (plain 10-octet MAC) whatever their SEQ.
    var omitROCPackets: Set<Int> = []
    /// UDP port for the MTK messages.
    var mikeyPort: UInt16 = 2269
    /// Destination address for the MTK messages (nil: the session's).
    var mikeyAddress: IPAddress? = nil
    /// SRTCP sent with this E flag (encrypted or not) whatever the policy says (nil: as the policy says).
    var srtcpEncryption: Bool? = nil
}

struct ProtectedCapture {
    var path: String
    var fixturePayloads: [[UInt8]]
    var rtpCount: Int
    var switchAt: Int
    /// (frame number in the protected capture, RTP packet number) of every RTP packet.
    var rtpFrames: [Int: Int]
    var mtk2Frame: Int
}

/// Protects every RTP/RTCP payload of `fixture` with MTK 1, then MTK 2 from the middle RTP
/// packet on; MTK messages to the session address on UDP 2269 before each MTK's first use,
/// MTK 1 repeated every 400 RTP packets.
func buildProtectedCapture(fixture: String, bmsc: TestBMSC, output: String, distortion: Distortion = Distortion()) throws -> ProtectedCapture {
    let (linkType, frames) = try readFrames(fixture)
    let rtpTotal = frames.filter { f in f.payload.map { $0.count >= 2 && !(200...204).contains($0[1]) } ?? false }.count
    let switchAt = rtpTotal / 2
    let protector = try SRTPProtector(policy: bmsc.policy)
    var carry = bmsc.policy
    carry.rocTransmissionRate = 1
    let carryProtector = try SRTPProtector(policy: carry)
    var plainMAC = bmsc.policy
    plainMAC.authentication = .hmacSHA1_80
    let plainProtector = try SRTPProtector(policy: plainMAC)
    var rtcpPolicy = bmsc.policy
    if let e = distortion.srtcpEncryption { rtcpPolicy.srtcpEncryption = e }
    let rtcpProtector = try SRTPProtector(policy: rtcpPolicy)
    let k1 = try bmsc.sessionKeys(bmsc.mtkIDs.0), k2 = try bmsc.sessionKeys(bmsc.mtkIDs.1), k7 = try bmsc.sessionKeys(7)
    var streams: [UInt32: SRTPSenderStream] = [:]
    var rtcpStream = SRTCPSenderStream(firstIndex: bmsc.policy.firstSRTCPIndex)
    var out: [(UInt64, [UInt8])] = []
    var payloads: [[UInt8]] = []
    var rtpN = 0
    var rtpFrames: [Int: Int] = [:]
    var mtk2Frame = 0
    var announced1 = false, announced2 = false
    let m1 = try bmsc.mtkMessage(bmsc.mtkIDs.0, timestamp: bmsc.mtkTimestamps.0), m2 = try bmsc.mtkMessage(bmsc.mtkIDs.1, timestamp: bmsc.mtkTimestamps.1)

    func inject(_ message: [UInt8], like f: Frame) {
        guard let u = f.udp else { return }
        let dst = TransportAddress(distortion.mikeyAddress ?? u.destination.address, distortion.mikeyPort)
        let frame = UDPFrameEditor.buildFrame(linkType: .ethernet, template: f.bytes, source: TransportAddress(u.source.address, 2269),
                                              destination: dst, hopLimit: u.hopLimit, payload: message)
        out.append((f.timestamp, frame))
    }

    for f in frames {
        guard let payload = f.payload, payload.count >= 2 else { out.append((f.timestamp, f.bytes)); continue }
        payloads.append(payload)
        let rtcp = (200...204).contains(payload[1])
        if !announced1 { inject(m1, like: f); announced1 = true }
        let mtk2Due: Int = switchAt + (distortion.announceMTK2Late ?? -50)
        if !announced2 && rtpN >= mtk2Due && !rtcp {
            inject(m2, like: f)
            mtk2Frame = out.count
            announced2 = true
        }
        var p = payload
        if rtcp {
            try rtcpProtector.protectRTCP(&p, keys: rtpN < switchAt ? k1 : k2, stream: &rtcpStream)
        } else {
            if rtpN > 0 && rtpN % 400 == 0 && rtpN < switchAt { inject(m1, like: f) }
            let ssrc = UInt32(p[8]) << 24 | UInt32(p[9]) << 16 | UInt32(p[10]) << 8 | UInt32(p[11])
            var stream = streams[ssrc] ?? SRTPSenderStream()
            let keys = distortion.unknownMKIPackets.contains(rtpN) ? k7 : (rtpN < switchAt ? k1 : k2)
            if distortion.forceROCPackets.contains(rtpN) {
                try carryProtector.protectRTP(&p, keys: keys, stream: &stream)
            } else if distortion.omitROCPackets.contains(rtpN) {
                try plainProtector.protectRTP(&p, keys: keys, stream: &stream)
            } else {
                try protector.protectRTP(&p, keys: keys, stream: &stream)
            }
            streams[ssrc] = stream
            rtpFrames[out.count + 1] = rtpN
            rtpN += 1
        }
        out.append((f.timestamp, replacingPayload(f, p)))
    }
    try writeFrames(output, linkType: linkType, out)
    return ProtectedCapture(path: output, fixturePayloads: payloads, rtpCount: rtpTotal, switchAt: switchAt, rtpFrames: rtpFrames,
                            mtk2Frame: mtk2Frame)
}

/// The UDP payloads of a capture, in order, leaving out MIKEY (port 2269).
func udpPayloads(_ path: String) throws -> [[UInt8]] {
    try readFrames(path).frames.compactMap { f in
        guard let u = f.udp, u.destination.port != 2269 else { return nil }
        return f.payload
    }
}

/// Several sessions in one capture: `sessions[p]` keys the RTP flow to port p and its RTCP on
/// p + 1. Each session switches from its first to its second MTK at half its RTP packets; MTK
/// messages go to the session address on UDP 2269 before each MTK's first use.
func buildMultiSessionCapture(fixture: String, sessions: [UInt16: TestBMSC], output: String) throws -> [[UInt8]] {
    let (linkType, frames) = try readFrames(fixture)
    func base(_ port: UInt16) -> UInt16? { sessions[port] != nil ? port : (sessions[port &- 1] != nil ? port &- 1 : nil) }
    var totals: [UInt16: Int] = [:]
    for f in frames {
        guard let u = f.udp, let p = f.payload, p.count >= 2, !(200...204).contains(p[1]), let b = base(u.destination.port) else { continue }
        totals[b, default: 0] += 1
    }
    var out: [(UInt64, [UInt8])] = []
    var payloads: [[UInt8]] = []
    var counts: [UInt16: Int] = [:]
    var announced: [UInt16: Int] = [:]
    var rtpStreams: [UInt32: SRTPSenderStream] = [:]
    var rtcpStreams: [UInt16: SRTCPSenderStream] = [:]
    for f in frames {
        guard let u = f.udp, let payload = f.payload, payload.count >= 2, let b = base(u.destination.port), let bmsc = sessions[b] else {
            out.append((f.timestamp, f.bytes))
            continue
        }
        payloads.append(payload)
        let n = counts[b, default: 0]
        let switchAt = totals[b, default: 0] / 2
        let stage = announced[b, default: 0]
        func inject(_ id: UInt16, _ ts: UInt32) throws {
            let frame = UDPFrameEditor.buildFrame(linkType: .ethernet, template: f.bytes, source: TransportAddress(u.source.address, 2269),
                                                  destination: TransportAddress(u.destination.address, 2269), hopLimit: u.hopLimit,
                                                  payload: try bmsc.mtkMessage(id, timestamp: ts))
            out.append((f.timestamp, frame))
        }
        if stage == 0 { try inject(bmsc.mtkIDs.0, bmsc.mtkTimestamps.0); announced[b] = 1 }
        if stage <= 1 && n >= switchAt - 20 { try inject(bmsc.mtkIDs.1, bmsc.mtkTimestamps.1); announced[b] = 2 }
        let keys = try bmsc.sessionKeys(n < switchAt ? bmsc.mtkIDs.0 : bmsc.mtkIDs.1)
        let protector = try SRTPProtector(policy: bmsc.policy)
        var p = payload
        if (200...204).contains(payload[1]) {
            var s = rtcpStreams[b] ?? SRTCPSenderStream(firstIndex: bmsc.policy.firstSRTCPIndex)
            try protector.protectRTCP(&p, keys: keys, stream: &s)
            rtcpStreams[b] = s
        } else {
            let ssrc = UInt32(p[8]) << 24 | UInt32(p[9]) << 16 | UInt32(p[10]) << 8 | UInt32(p[11])
            var s = rtpStreams[ssrc] ?? SRTPSenderStream()
            try protector.protectRTP(&p, keys: keys, stream: &s)
            rtpStreams[ssrc] = s
            counts[b] = n + 1
        }
        out.append((f.timestamp, replacingPayload(f, p)))
    }
    try writeFrames(output, linkType: linkType, out)
    return payloads
}
