import CryptoCore
import Foundation
import MIKEY
import PacketIO
import SRTP

/// The MIKEY port of MTK messages (TS 33.246 6.6.2, mikey.md 7.2).
public let mikeyPort: UInt16 = 2269

/// Options of `CaptureReceiver`.
public struct ReceiveOptions: Sendable {
    /// MTKs kept per flow (TS 33.246 6.5.4: at least the two most recent).
    public var keyCapacity: Int = 4
    /// At most this many entries per violation kind in `ReceiveReport.violations` (all are counted).
    public var maximumViolationsPerKind: Int = 1000
    public init(keyCapacity: Int = 4, maximumViolationsPerKind: Int = 1000) {
        self.keyCapacity = keyCapacity
        self.maximumViolationsPerKind = maximumViolationsPerKind
    }
}

/// The UE side over a capture (TS 33.246 6.4.6, 6.5, 6.6.2.2): MIKEY MTK messages through the
/// MGV-F, SRTP/SRTCP unprotected with RFC 4771 late join, the rule checks of `ViolationKind`,
/// and an optional plaintext capture.
///
/// Session discovery: the destination IP of a MIKEY message (UDP 2269) names a session; UDP
/// flows (destination address:port) to that IP whose payloads are RTP version 2 are SRTP, or
/// SRTCP when the second octet is 200...204 (RFC 5761 4). A flow to another address is also
/// SRTP/SRTCP when its MKI names a key group whose MSK the UE holds. Each flow is bound to the
/// key group of its MKI and gets its own `SRTPReceiver` with that key group's MTKs.
public final class CaptureReceiver {
    public let options: ReceiveOptions
    public private(set) var keys: UEKeyState

    final class Flow {
        let destination: TransportAddress
        var keyGroup: UInt16?
        var policy: SRTPPolicy?
        var receiver: SRTPReceiver?
        init(destination: TransportAddress) { self.destination = destination }
    }

    struct StatKey: Hashable {
        var destination: TransportAddress
        var rtcp: Bool
        var ssrc: UInt32
    }

    struct Stat {
        var source: TransportAddress
        var keyGroup: UInt16?
        var packets = 0
        var ok = 0
        var dropped: [String: Int] = [:]
        var mkis: Set<UInt64> = []
        var lastIndex: UInt64?
        var carried = 0
    }

    struct Announcement {
        var record: DerivedMTKRecord
        var keys: SRTPSessionKeys
        var keyGroup: UInt16
        var order: Int
    }

    struct PendingMKI {
        var frame: Int
        var time: Double
        var stat: StatKey
        var mki: UInt64
        var sequenceNumber: UInt16?
    }

    struct MIKEYSighting {
        var frame: Int
        var time: Double
        var destination: TransportAddress
        var keyGroup: UInt16?
    }

    /// What happens to one input frame.
    enum Disposition {
        /// Write the first n bytes of the (rewritten) frame.
        case write(Int)
        /// Leave it out of the output.
        case omit
        /// SRTP that waits for its stream's first ROC-carrying packet (RFC 4771 late join).
        case wait(StatKey, UDPFrame, Flow, [UInt8])
    }

    /// One output frame, possibly still waiting to be decrypted.
    final class Slot {
        let timestamp: UInt64
        var bytes: [UInt8]?
        var waiting: Bool
        init(timestamp: UInt64, bytes: [UInt8]?, waiting: Bool) {
            self.timestamp = timestamp
            self.bytes = bytes
            self.waiting = waiting
        }
    }

    struct WaitingPacket {
        var slot: Slot
        var frameBytes: [UInt8]
        var udp: UDPFrame
        var flow: Flow
        var frame: Int
        var time: Double
    }

    /// Frames held back while an earlier SRTP packet waits for its ROC, so output order is kept.
    private var queue: [Slot] = []
    private var queueHead = 0
    private var waiting: [StatKey: [WaitingPacket]] = [:]
    /// Set by `process` when an SRTP packet of this stream was accepted.
    private var accepted: StatKey?
    /// Upper bound on frames held back (then the oldest waiting packets are dropped as roc_unknown).
    static let maximumHeldFrames = 16_384

    private var flows: [TransportAddress: Flow] = [:]
    private var stats: [StatKey: Stat] = [:]
    private var statOrder: [StatKey] = []
    private var announced: [UInt64: Announcement] = [:]
    private var pending: [PendingMKI] = []
    private var sightings: [MIKEYSighting] = []
    private var sessionAddresses: Set<IPAddress> = []
    private var report: ReceiveReport

    public init(keys: UEKeyState, options: ReceiveOptions = ReceiveOptions()) {
        self.keys = keys
        self.options = options
        report = ReceiveReport(input: "")
    }

    /// Reads `inputPath`, writes the plaintext capture to `outputPath` (if given) and returns the
    /// report. Throws only for unreadable/unwritable files.
    public static func run(inputPath: String, outputPath: String?, keys: UEKeyState,
                           options: ReceiveOptions = ReceiveOptions()) throws(ReceiverInputError) -> ReceiveReport {
        let r = CaptureReceiver(keys: keys, options: options)
        return try r.run(inputPath: inputPath, outputPath: outputPath)
    }

    public func run(inputPath: String, outputPath: String?) throws(ReceiverInputError) -> ReceiveReport {
        report = ReceiveReport(input: inputPath, output: outputPath)
        if let outputPath, Self.sameFile(inputPath, outputPath) {
            throw ReceiverInputError(source: outputPath, problem: "the output would overwrite the input capture", fix: "choose another --output path")
        }
        try prescan(inputPath)
        let reader: CaptureReader
        do { reader = try CaptureReader(path: inputPath) } catch {
            throw ReceiverInputError(source: inputPath, problem: error.description, fix: "give a pcap/pcapng capture with --input")
        }
        var writer: CaptureWriter? = nil
        if let outputPath {
            do { writer = try CaptureWriter(path: outputPath, dataLinkType: reader.dataLinkType) } catch {
                throw ReceiverInputError(source: outputPath, problem: error.description, fix: "choose a writable --output path")
            }
        }
        defer { writer?.close() }
        var frameNumber = 0
        var buffer: [UInt8] = []
        while true {
            let next: CapturedFrame?
            do { next = try reader.next() } catch {
                // A truncated capture: everything before the damage is processed and reported.
                report.inputError = "\(error.description) after frame \(frameNumber)"
                break
            }
            guard let frame = next else { break }
            frameNumber += 1
            buffer.removeAll(keepingCapacity: true)
            buffer.append(contentsOf: frame.bytes)
            let time = Double(frame.timestampNanoseconds) / 1e9
            accepted = nil
            switch handle(&buffer, frame: frameNumber, time: time, linkType: reader.linkType) {
            case .write(let end):
                if queueHead == queue.count, let writer {
                    buffer.withUnsafeBytes { writer.write(timestampNanoseconds: frame.timestampNanoseconds, bytes: UnsafeRawBufferPointer(rebasing: $0[0..<end])) }
                } else if queueHead < queue.count {
                    queue.append(Slot(timestamp: frame.timestampNanoseconds, bytes: Array(buffer[0..<end]), waiting: false))
                }
            case .omit:
                break
            case let .wait(key, u, flow, _):
                let slot = Slot(timestamp: frame.timestampNanoseconds, bytes: nil, waiting: true)
                queue.append(slot)
                waiting[key, default: []].append(WaitingPacket(slot: slot, frameBytes: buffer, udp: u, flow: flow, frame: frameNumber, time: time))
            }
            if let key = accepted, let list = waiting.removeValue(forKey: key) { retry(list, key) }
            if queue.count - queueHead > Self.maximumHeldFrames { giveUpOldestWaiting() }
            flush(writer)
        }
        // End of capture: whatever still waits never saw a ROC.
        for (key, list) in waiting { retry(list, key) }
        waiting = [:]
        flush(writer)
        report.totals.frames = frameNumber
        finish()
        return report
    }

    private func flush(_ writer: CaptureWriter?) {
        while queueHead < queue.count, !queue[queueHead].waiting {
            let slot = queue[queueHead]
            if let b = slot.bytes { writer?.write(timestampNanoseconds: slot.timestamp, bytes: b) }
            queueHead += 1
        }
        if queueHead == queue.count {
            queue.removeAll(keepingCapacity: true)
            queueHead = 0
        } else if queueHead > 4096 {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
    }

    /// Decrypts packets that waited for the ROC (after their stream synchronised, or at the end).
    ///
    /// They are older than the packet that synchronised the stream, possibly by more than the
    /// replay window (R > 128), so they go through a receiver of their own that starts from the
    /// ROC the synchronised stream implies for the first of them (RFC 3711 3.3.1 estimate).
    private func retry(_ list: [WaitingPacket], _ key: StatKey) {
        var side: SRTPReceiver? = nil
        if let first = list.first, let main = first.flow.receiver, let policy = first.flow.policy,
           let state = main.rolloverState(ssrc: key.ssrc), state.isSynchronised, first.udp.payloadLength >= 4 {
            let b = first.frameBytes, o = first.udp.payloadOffset
            var alt = policy
            alt.initialROC = state.estimateROC(for: UInt16(b[o + 2]) << 8 | UInt16(b[o + 3]))
            if let r = try? SRTPReceiver(policy: alt, keyCapacity: options.keyCapacity, lateJoin: false) {
                let held = Set(main.knownMKIs)
                for a in announced.values.sorted(by: { $0.order < $1.order }) where held.contains(a.keys.mki) { try? r.addKey(a.keys) }
                side = r
            }
        }
        for w in list {
            var bytes = w.frameBytes
            let payload = Array(bytes[w.udp.payloadOffset..<w.udp.datagramEnd])
            switch process(&bytes, w.udp, payload: payload, flow: w.flow, rtcp: false, frame: w.frame, time: w.time, retry: true, using: side) {
            case .write(let end): w.slot.bytes = Array(bytes[0..<end])
            default: w.slot.bytes = nil
            }
            w.slot.waiting = false
        }
    }

    private func giveUpOldestWaiting() {
        guard queueHead < queue.count else { return }
        let head = queue[queueHead]
        for (key, list) in waiting where list.contains(where: { $0.slot === head }) {
            waiting[key] = nil
            for w in list {
                drop(key, SRTPError.rocUnknown(sequenceNumber: 0).reason)
                report.totals.waitingForROC += 1
                w.slot.bytes = nil
                w.slot.waiting = false
            }
        }
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        guard stat(a, &sa) == 0, stat(b, &sb) == 0 else { return false }
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }

    // MARK: pass 1

    /// Session addresses: destinations of UDP port 2269.
    private func prescan(_ path: String) throws(ReceiverInputError) {
        let reader: CaptureReader
        do { reader = try CaptureReader(path: path) } catch {
            throw ReceiverInputError(source: path, problem: error.description, fix: "give a pcap/pcapng capture with --input")
        }
        guard let linkType = reader.linkType else { return }
        while true {
            let next: CapturedFrame?
            do { next = try reader.next() } catch { break }
            guard let f = next, let base = f.bytes.baseAddress else {
                if next == nil { break } else { continue }
            }
            if case .udp(let u) = FrameParser.classify(base, length: f.bytes.count, linkType: linkType), u.destination.port == mikeyPort {
                sessionAddresses.insert(u.destination.address)
            }
        }
    }

    // MARK: pass 2

    private func handle(_ buffer: inout [UInt8], frame: Int, time: Double, linkType: LinkType?) -> Disposition {
        guard let linkType else { report.totals.passedThrough += 1; return .write(buffer.count) }
        let classification = buffer.withUnsafeBytes { b -> FrameClassification in
            guard let base = b.baseAddress else { return .passThrough(.notIP) }
            return FrameParser.classify(base, length: b.count, linkType: linkType)
        }
        guard case .udp(let u) = classification else {
            if case .malformed = classification { report.totals.malformedFrames += 1 }
            report.totals.passedThrough += 1
            return .write(buffer.count)
        }
        let payload = Array(buffer[u.payloadOffset..<u.datagramEnd])
        if u.destination.port == mikeyPort {
            handleMIKEY(payload, u, frame: frame, time: time)
            return .omit
        }
        if Self.looksLikeMIKEY(payload) {
            addViolation(.mikeyWrongPort, frame: frame, time: time, flow: u.destination.description, ssrc: nil, seq: nil, mki: nil,
                         detail: "MIKEY message from \(u.source) to UDP port \(u.destination.port) instead of \(mikeyPort); processed anyway")
            handleMIKEY(payload, u, frame: frame, time: time)
            return .omit
        }
        guard payload.count >= 2, payload[0] >> 6 == 2 else { report.totals.passedThrough += 1; return .write(buffer.count) }
        let rtcp = (200...204).contains(payload[1])
        let flow: Flow
        if let f = flows[u.destination] {
            flow = f
        } else if sessionAddresses.contains(u.destination.address) || bindingGroup(payload, rtcp: rtcp) != nil {
            flow = Flow(destination: u.destination)
            flows[u.destination] = flow
        } else {
            report.totals.passedThrough += 1
            return .write(buffer.count)
        }
        if flow.receiver == nil { bind(flow, payload, rtcp: rtcp) }
        return process(&buffer, u, payload: payload, flow: flow, rtcp: rtcp, frame: frame, time: time, retry: false)
    }

    // MARK: MIKEY

    /// RFC 3830 6.1: version 1, data type 0/1, and a complete decode.
    static func looksLikeMIKEY(_ p: [UInt8]) -> Bool {
        guard p.count >= 10, p[0] == 1, p[1] <= 1 else { return false }
        return (try? MIKEYDecoder.decode(p)) != nil
    }

    private func handleMIKEY(_ payload: [UInt8], _ u: UDPFrame, frame: Int, time: Double) {
        report.mikey.messages += 1
        report.totals.mikeyRemoved += 1
        let decoded = try? MIKEYDecoder.decode(payload)
        let group = decoded?.keyIDInformation?.mskID?.keyGroup
        sightings.append(MIKEYSighting(frame: frame, time: time, destination: u.destination, keyGroup: group))
        switch keys.process(payload) {
        case .success(.mtk(let d)):
            guard d.kind == .streaming, let salt = d.salt else {
                rejection(frame, time, u, "download MTK (TGK) in an SRTP capture", counts: false)
                return
            }
            let mkiBytes = d.mki
            let mki = MasterKeyIdentifier(bytes: mkiBytes)
            if let existing = announced[mki.value], existing.record.mtk == d.key.withUnsafeBytes({ Hex.encode($0) }) {
                report.mikey.repeats += 1
                return
            }
            let policy = keys.policy(keyGroup: d.mskID.keyGroup)?.policy ?? SRTPPolicy()
            let sessionKeys: SRTPSessionKeys
            do {
                sessionKeys = try SRTPSessionKeys(masterKey: d.key, masterSalt: salt.revealedBytes(), mki: mki, cipher: policy.cipher)
            } catch {
                rejection(frame, time, u, "SRTP session keys cannot be derived from the MTK (\(error))", counts: true)
                return
            }
            report.mikey.newMTKs += 1
            let record = DerivedMTKRecord(
                keyGroup: d.mskID.keyGroup, keyNumber: d.mskID.keyNumber,
                mskID: String(d.mskID.rawValue, radix: 16).leftPad(8), mtkID: d.mtkID.rawValue, mki: Hex.encode(mkiBytes),
                mtk: d.key.withUnsafeBytes { Hex.encode($0) }, salt: salt.withUnsafeBytes { Hex.encode($0) },
                timestamp: d.timestamp, csbID: String(d.csbID.rawValue, radix: 16).leftPad(8),
                frame: frame, time: time, destination: u.destination.description)
            report.mtks.append(record)
            announced[mki.value] = Announcement(record: record, keys: sessionKeys, keyGroup: d.mskID.keyGroup, order: report.mtks.count)
            for flow in flows.values where flow.keyGroup == d.mskID.keyGroup {
                try? flow.receiver?.addKey(sessionKeys)
            }
        case .success(.msk):
            report.mikey.msks += 1
        case .success(.mskInvalidated(_, let id, _)):
            rejection(frame, time, u, "MSK message invalidates \(id)", counts: false)
        case .success(.solicitedPull):
            rejection(frame, time, u, "solicited pull (Key Number 0): the UE would fetch the MSK", counts: false)
        case .failure(let r):
            // A repeat of an MTK already held: the processor sees a TS or MTK ID that does not increase.
            switch r {
            case .replayedMTKTimestamp, .mtkIDNotIncreasing:
                if let k = decoded?.keyIDInformation, let msk = k.mskID, let mtk = k.mtkID,
                   announced[MasterKeyIdentifier(keyGroup: msk.keyGroup, keyNumber: msk.keyNumber, mtkID: mtk.rawValue).value] != nil {
                    report.mikey.repeats += 1
                    return
                }
            default: break
            }
            let counts: Bool
            switch r {
            case .unknownMSK, .unknownMUK: counts = false
            default: counts = true
            }
            rejection(frame, time, u, UEKeyState.describe(r), counts: counts)
        }
    }

    private func rejection(_ frame: Int, _ time: Double, _ u: UDPFrame, _ reason: String, counts: Bool) {
        report.mikey.rejected += 1
        report.mikeyRejections.append(MIKEYRejectionRecord(frame: frame, time: time, destination: u.destination.description,
                                                           reason: reason, counts: counts))
    }

    // MARK: flows

    /// The key group whose policy puts, at the MKI position of this packet, an MKI of that key group.
    private func bindingGroup(_ p: [UInt8], rtcp: Bool) -> UInt16? {
        for (group, kp) in keys.policies.sorted(by: { $0.key < $1.key }) {
            for offset in Self.candidateMKIOffsets(p, policy: kp.policy, rtcp: rtcp) {
                if let mki = Self.readMKI(p, at: offset, length: kp.policy.mkiLength), mki.keyGroup == group, mki.keyNumber != 0 {
                    return group
                }
            }
        }
        return nil
    }

    /// MKI offsets to try: the policy's layout first, then the other RFC 4771 layouts.
    static func candidateMKIOffsets(_ p: [UInt8], policy: SRTPPolicy, rtcp: Bool) -> [Int] {
        if rtcp { return [p.count - policy.srtcpTagLength - policy.mkiLength] }
        let seq = p.count >= 4 ? UInt16(p[2]) << 8 | UInt16(p[3]) : 0
        var tags = [policy.tagLength(sequenceNumber: seq)]
        for t in [policy.rccTagLength, policy.rccm2NonCarryingTagLength, 14, 10, 4, 0] where !tags.contains(t) { tags.append(t) }
        return tags.map { p.count - $0 - policy.mkiLength }
    }

    static func readMKI(_ p: [UInt8], at offset: Int, length: Int) -> MasterKeyIdentifier? {
        guard length > 0, offset >= 8, offset + length <= p.count else { return nil }
        return MasterKeyIdentifier(bytes: p[offset..<offset + length])
    }

    private func bind(_ flow: Flow, _ p: [UInt8], rtcp: Bool) {
        guard let group = bindingGroup(p, rtcp: rtcp), let kp = keys.policy(keyGroup: group) else { return }
        guard let receiver = try? SRTPReceiver(policy: kp.policy, keyCapacity: options.keyCapacity, lateJoin: true) else { return }
        for a in announced.values.filter({ $0.keyGroup == group }).sorted(by: { $0.order < $1.order }) {
            try? receiver.addKey(a.keys)
        }
        flow.keyGroup = group
        flow.policy = kp.policy
        flow.receiver = receiver
    }

    private func process(_ buffer: inout [UInt8], _ u: UDPFrame, payload: [UInt8], flow: Flow, rtcp: Bool,
                         frame: Int, time: Double, retry: Bool, using side: SRTPReceiver? = nil) -> Disposition {
        let ssrc: UInt32 = payload.count >= (rtcp ? 8 : 12)
            ? (rtcp ? be32(payload, 4) : be32(payload, 8)) : 0
        let seq: UInt16? = !rtcp && payload.count >= 4 ? UInt16(payload[2]) << 8 | UInt16(payload[3]) : nil
        let key = StatKey(destination: u.destination, rtcp: rtcp, ssrc: ssrc)
        if stats[key] == nil {
            stats[key] = Stat(source: u.source)
            statOrder.append(key)
        }
        if !retry { stats[key]?.packets += 1 }
        stats[key]?.keyGroup = flow.keyGroup

        guard let receiver = side ?? flow.receiver, let policy = flow.policy else {
            // No MSK held names this flow: report the MKI as the first policy held would read it.
            var mki: MasterKeyIdentifier? = nil
            if let kp = keys.policies.sorted(by: { $0.key < $1.key }).first?.value {
                let off = Self.candidateMKIOffsets(payload, policy: kp.policy, rtcp: rtcp)[0]
                mki = Self.readMKI(payload, at: off, length: kp.policy.mkiLength)
            }
            drop(key, rtcp ? "srtcp_unknown_mki" : "unknown_mki")
            if let mki {
                pending.append(PendingMKI(frame: frame, time: time, stat: key, mki: mki.value, sequenceNumber: seq))
            } else {
                addViolation(.unknownMKI, frame: frame, time: time, flow: u.destination.description, ssrc: ssrc, seq: seq, mki: nil,
                             detail: "no MSK held for this flow, so no MKI could be located")
            }
            return .omit
        }

        var result: Result<SRTPReceiveInfo, SRTPError> = .failure(.cryptoFailure)
        buffer.withUnsafeMutableBytes { b in
            guard let base = b.baseAddress else { return }
            do throws(SRTPError) {
                result = .success(rtcp ? try receiver.unprotectRTCP(base + u.payloadOffset, length: u.payloadLength)
                                       : try receiver.unprotectRTP(base + u.payloadOffset, length: u.payloadLength))
            } catch { result = .failure(error) }
        }
        switch result {
        case .success(let info):
            var s = stats[key]
            s?.ok += 1
            s?.mkis.insert(info.mki.value)
            s?.lastIndex = info.index
            if info.carriedROC != nil { s?.carried += 1 }
            stats[key] = s
            if rtcp { report.totals.srtcpOK += 1 } else { report.totals.srtpOK += 1; accepted = key }
            // The E flag is the sender's to set, but only as the policy says (SP type 6): an
            // SRTCP packet sent in clear under a policy that encrypts SRTCP (or the reverse)
            // verifies, so only this check sees it.
            if rtcp, info.encrypted != policy.srtcpEncryption {
                addViolation(.srtcpEncryptionFlagMismatch, frame: frame, time: time, flow: u.destination.description, ssrc: ssrc, seq: nil,
                             mki: Hex.encode(info.mki.bytes),
                             detail: "E = \(info.encrypted ? 1 : 0) but the key group's policy (\(keys.policy(keyGroup: flow.keyGroup ?? 0)?.origin ?? "default")) says SRTCP encryption \(policy.srtcpEncryption ? "on" : "off")")
            }
            var f = u
            let end = buffer.withUnsafeMutableBytes { b -> Int in
                guard let base = b.baseAddress else { return 0 }
                return UDPFrameEditor.resizePayload(base, frame: &f, newPayloadLength: info.length)
            }
            return .write(end)
        case .failure(let error):
            if case .rocUnknown = error, !retry { return .wait(key, u, flow, payload) }
            // The MKI where the policy's layout puts it (the SRTP module's RCCm2 retry may report another offset).
            let expected = Self.readMKI(payload, at: Self.candidateMKIOffsets(payload, policy: policy, rtcp: rtcp)[0], length: policy.mkiLength)
            let held = expected.map { receiver.knownMKIs.contains($0) } ?? false
            switch error {
            case .unknownMKI, .authenticationFailed, .packetTooShort:
                if !rtcp, let seq, let kind = diagnoseLayout(payload, flow: flow, policy: policy, seq: seq, ssrc: ssrc) {
                    layoutViolation(kind, key, frame, time, u, ssrc, seq, policy)
                    return .omit
                }
                if !held, let mki = expected {
                    drop(key, rtcp ? "srtcp_unknown_mki" : "unknown_mki")
                    pending.append(PendingMKI(frame: frame, time: time, stat: key, mki: mki.value, sequenceNumber: seq))
                    return .omit
                }
            default: break
            }
            drop(key, error.reason)
            if case .rocUnknown = error { report.totals.waitingForROC += 1 }
            return .omit
        }
    }

    private func layoutViolation(_ kind: ViolationKind, _ key: StatKey, _ frame: Int, _ time: Double, _ u: UDPFrame,
                                 _ ssrc: UInt32, _ seq: UInt16, _ policy: SRTPPolicy) {
        drop(key, kind.rawValue)
        let r = policy.rocTransmissionRate
        let detail = kind == .rocTagMissing
            ? "SEQ \(seq) mod R \(r) == 0 but the packet verifies only without a ROC in its tag"
            : "SEQ \(seq) mod R \(r) = \(seq % r) but the packet verifies only with a ROC in its tag"
        addViolation(kind, frame: frame, time: time, flow: u.destination.description, ssrc: ssrc, seq: seq, mki: nil, detail: detail)
    }

    /// RFC 4771 tag layout check: a packet that fails under the layout its SEQ calls for but
    /// verifies (finds a held MKI, and its MAC where the layout has one) under the other layout.
    private func diagnoseLayout(_ payload: [UInt8], flow: Flow, policy: SRTPPolicy, seq: UInt16, ssrc: UInt32) -> ViolationKind? {
        guard policy.authentication.carriesROC, let main = flow.receiver, let group = flow.keyGroup else { return nil }
        let held = announced.values.filter { $0.keyGroup == group }.sorted { $0.order < $1.order }
        guard !held.isEmpty else { return nil }
        let estimate = main.rolloverState(ssrc: ssrc).map { $0.isSynchronised ? $0.estimateROC(for: seq) : $0.roc } ?? policy.initialROC
        var alt = policy
        let kind: ViolationKind
        let lateJoin: Bool
        if policy.carriesROC(sequenceNumber: seq) {
            // Expected ROC ‖ MAC; try the non-carrying layout (R chosen so that this SEQ does not carry).
            guard seq != 0 else { return nil }
            alt.rocTransmissionRate = seq == 0xFFFF ? 2 : 0xFFFF
            alt.initialROC = estimate
            lateJoin = false
            kind = .rocTagMissing
        } else {
            alt.rocTransmissionRate = 1
            lateJoin = true
            kind = .rocTagUnexpected
        }
        guard let r = try? SRTPReceiver(policy: alt, keyCapacity: max(2, held.count), lateJoin: lateJoin) else { return nil }
        for a in held { try? r.addKey(a.keys) }
        var copy = payload
        do { _ = try r.unprotectRTP(&copy) } catch { return nil }
        return kind
    }

    private func drop(_ key: StatKey, _ reason: String) {
        stats[key]?.dropped[reason, default: 0] += 1
        report.totals.dropped += 1
    }

    private func addViolation(_ kind: ViolationKind, frame: Int, time: Double, flow: String?, ssrc: UInt32?, seq: UInt16?,
                              mki: String?, detail: String) {
        let n = report.violationCounts[kind.rawValue, default: 0]
        report.violationCounts[kind.rawValue] = n + 1
        guard n < options.maximumViolationsPerKind else { return }
        report.violations.append(Violation(kind: kind, rule: kind.rule, frame: frame, time: time, flow: flow, ssrc: ssrc,
                                           sequenceNumber: seq, mki: mki, detail: detail))
    }

    // MARK: end of capture

    private func finish() {
        // Unknown MKIs: announced later in the capture, or never.
        for p in pending {
            let mkiHex = Hex.encode(mbmsMKI(p.mki).bytes)
            let flow = p.stat.destination.description
            if let a = announced[p.mki], a.record.frame > p.frame {
                stats[p.stat]?.dropped[p.stat.rtcp ? "srtcp_unknown_mki" : "unknown_mki", default: 1] -= 1
                stats[p.stat]?.dropped[ViolationKind.mtkUsedBeforeAnnouncement.rawValue, default: 0] += 1
                addViolation(.mtkUsedBeforeAnnouncement, frame: p.frame, time: p.time, flow: flow, ssrc: p.stat.ssrc, seq: p.sequenceNumber,
                             mki: mkiHex, detail: "MTK \(a.record.mskID)/\(a.record.mtkID) used before its MIKEY message (first at frame \(a.record.frame))")
            } else if let a = announced[p.mki] {
                addViolation(.unknownMKI, frame: p.frame, time: p.time, flow: flow, ssrc: p.stat.ssrc, seq: p.sequenceNumber, mki: mkiHex,
                             detail: "MTK \(a.record.mskID)/\(a.record.mtkID) (announced at frame \(a.record.frame)) is no longer held; the UE keeps the \(options.keyCapacity) most recent MTKs")
            } else {
                addViolation(.unknownMKI, frame: p.frame, time: p.time, flow: flow, ssrc: p.stat.ssrc, seq: p.sequenceNumber, mki: mkiHex,
                             detail: "no MIKEY MTK message in the capture announces this MKI")
            }
        }
        for (k, v) in stats { stats[k]?.dropped = v.dropped.filter { $0.value != 0 } }

        // MIKEY addresses: the destination must carry the key group's session.
        var flowAddresses: [UInt16: Set<IPAddress>] = [:]
        var securedAddresses: Set<IPAddress> = []
        for f in flows.values {
            guard let g = f.keyGroup else { continue }
            flowAddresses[g, default: []].insert(f.destination.address)
            securedAddresses.insert(f.destination.address)
        }
        var reported: Set<String> = []
        for s in sightings {
            let tag = "\(s.destination.address)#\(s.keyGroup.map(String.init) ?? "-")"
            var detail: String? = nil
            if let g = s.keyGroup, let addresses = flowAddresses[g], !addresses.contains(s.destination.address) {
                detail = "MIKEY for key group \(g) sent to \(s.destination.address), but the key group's SRTP goes to "
                    + addresses.map(\.description).sorted().joined(separator: ", ")
            } else if !securedAddresses.contains(s.destination.address) {
                detail = "MIKEY sent to \(s.destination.address), which carries no SRTP/SRTCP session"
            }
            guard let detail, reported.insert(tag).inserted else { continue }
            addViolation(.mikeyWrongAddress, frame: s.frame, time: s.time, flow: s.destination.description, ssrc: nil, seq: nil, mki: nil, detail: detail)
        }
        report.violations.sort { ($0.frame, $0.kind.rawValue) < ($1.frame, $1.kind.rawValue) }

        report.policies = keys.policies.values.sorted { $0.keyGroup < $1.keyGroup }.map { kp in
            PolicyRecord(keyGroup: kp.keyGroup, cipher: kp.policy.cipher.rawValue, auth: kp.policy.authentication.rawValue,
                         rocRate: kp.policy.rocTransmissionRate, rccTagLength: kp.policy.rccTagLength,
                         srtcpTagLength: kp.policy.srtcpTagLength, srtcpEncryption: kp.policy.srtcpEncryption, origin: kp.origin)
        }
        report.flows = statOrder.compactMap { k in
            guard let s = stats[k] else { return nil }
            let mkis = s.mkis.sorted().map(mbmsMKI)
            let roc = k.rtcp ? nil : flows[k.destination]?.receiver?.rolloverState(ssrc: k.ssrc).flatMap { $0.isSynchronised ? $0.roc : nil }
            return FlowRecord(destination: k.destination.description, source: s.source.description, kind: k.rtcp ? "srtcp" : "srtp",
                              ssrc: k.ssrc, keyGroup: s.keyGroup, packets: s.packets, ok: s.ok, dropped: s.dropped,
                              mtkIDs: Array(Set(mkis.map(\.mtkID))).sorted(), mkis: mkis.map { Hex.encode($0.bytes) },
                              rocAtEnd: roc, lastIndex: s.lastIndex, carriedROCPackets: s.carried)
        }
    }
}

@inline(__always) func be32(_ p: [UInt8], _ o: Int) -> UInt32 {
    UInt32(p[o]) << 24 | UInt32(p[o + 1]) << 16 | UInt32(p[o + 2]) << 8 | UInt32(p[o + 3])
}

/// The 6-octet MBMS MKI with this value.
func mbmsMKI(_ value: UInt64) -> MasterKeyIdentifier {
    MasterKeyIdentifier(keyGroup: UInt16(truncatingIfNeeded: value >> 32), keyNumber: UInt16(truncatingIfNeeded: value >> 16),
                        mtkID: UInt16(truncatingIfNeeded: value))
}
