import CryptoCore
import DCF
import FLUTE
import Foundation
import MIKEY
import PacketIO

/// One file recovered from a protected FLUTE session (`receive --objects`).
public struct RecoveredObject: Codable, Sendable, Equatable {
    public var flow: String
    public var tsi: UInt64
    public var toi: UInt64
    public var contentLocation: String
    /// The original media type (DCF 'odhe'), or the FDT's for unprotected objects.
    public var contentType: String
    /// Where the plaintext was written, relative to the objects folder (nil: not written).
    public var path: String?
    public var size: Int
    public var sha256: String
    /// The MTK that protected it: "KDID/MSK ID/MTK ID" from the 'obki' KeyID (nil: not a DCF).
    public var keyID: String?
    /// "verified", "missing" (no 'odfs'), "unprotected" (not a DCF) or "failed".
    public var signature: String
    /// Why the object could not be recovered (nil: recovered).
    public var error: String?
}

/// The download side of a receive run.
public struct DownloadReceiveReport: Codable, Sendable, Equatable {
    public var objects: [RecoveredObject] = []
    public var mikeyObjects = 0
    public var mtksDerived = 0
    public var fdtInstances = 0
    /// FDT Instances whose DCF signature verified once the MTK it names was known (TS 33.246 6.6.3.2).
    public var fdtSignaturesVerified = 0
    public var fdtSignaturesFailed = 0
    /// FDTs that came unwrapped (gateway `--plain-fdt` or an unprotected session).
    public var plainFDTs = 0
    public var refused: [String: Int] = [:]
    /// Download rules broken (`fdt_unprotected`, `content_md5_mismatch`, `mtk_object_after_dcf`),
    /// at most `ObjectReceiver.maximumViolationsPerKind` of each kind listed.
    public var violations: [Violation] = []
    /// Violations by kind, including any left out of `violations`.
    public var violationCounts: [String: Int] = [:]

    public var recovered: Int { objects.filter { $0.error == nil }.count }
    public var failed: Int { objects.count - recovered }
    /// Every object recovered and no rule broken.
    public var ok: Bool { failed == 0 && violationCounts.values.reduce(0, +) == 0 }

    public func summary() -> String {
        var out = "FLUTE: \(objects.count) objects, \(recovered) recovered, \(failed) failed; \(mikeyObjects) MIKEY objects (\(mtksDerived) new MTKs); "
        out += "\(fdtInstances) FDT instances (\(fdtSignaturesVerified) signatures verified, \(fdtSignaturesFailed) failed, \(plainFDTs) plain)\n"
        if !objects.isEmpty {
            out += "\n"
            for o in objects {
                let status = o.error.map { "FAILED: \($0)" } ?? "ok"
                out += "  \(o.contentLocation)  \(o.size) bytes  sha256 \(o.sha256.prefix(16))…  key \(o.keyID ?? "-")  signature \(o.signature)  \(status)\n"
            }
        }
        if !refused.isEmpty { out += "refused: " + refused.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") + "\n" }
        if violationCounts.isEmpty {
            out += "FLUTE: no rule violations\n"
        } else {
            out += "FLUTE rule violations: " + violationCounts.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ") + "\n"
            for v in violations.prefix(20) {
                out += "  frame \(v.frame) t=\(String(format: "%.6f", v.time)) \(v.kind.rawValue)\(v.flow.map { " \($0)" } ?? ""): \(v.detail)\n"
            }
            if violations.count > 20 { out += "  … \(violations.count - 20) more in the --report JSON\n" }
        }
        return out
    }
}

/// The UE side of download protection (TS 33.246 6.6.3): reassembles FLUTE sessions, unwraps
/// the DCF-wrapped FDT (NULL encryption, so it is readable before the MTK arrives) and checks its
/// 'odfs' once the MTK is known, takes MTKs from `application/mikey` objects through the MGV-F,
/// verifies and decrypts every DCF, and writes the files.
public final class ObjectReceiver {
    private var keys: UEKeyState
    private let outputDirectory: String?
    private var dcfKeys: [MBMSKeyID: DCFKeys] = [:]
    private var receivers: [TransportAddress: FLUTEReceiver] = [:]
    private var pendingFDTs: [[UInt8]] = []
    private var pendingObjects: [Pending] = []
    /// A DCF waiting for the MTK its 'obki' names: where and when it completed.
    private struct Pending {
        var flow: TransportAddress
        var object: FLUTEReceiver.ReceivedObject
        var keyID: MBMSKeyID?
        var frame: Int
        var time: Double
    }
    /// The frame and time of the datagram being handled (for violations).
    private var current: (frame: Int, time: Double) = (0, 0)
    private let fdtLog = FDTLog()
    public private(set) var report = DownloadReceiveReport()

    /// How many DCF objects may wait for their MTK at once (memory bound).
    public var maximumPendingObjects = 64
    /// Accept an FDT sent as plain XML (the gateway's `--plain-fdt` output) instead of naming
    /// it a rule violation (TS 33.246 6.6.3.2 protects the FDT).
    public var allowPlainFDT = false
    /// At most this many violations of each kind are listed (all are counted).
    public var maximumViolationsPerKind = 1000

    /// Records the raw FDT objects the unwrapper sees (called from FLUTEReceiver).
    final class FDTLog: @unchecked Sendable {
        private let lock = NSLock()
        private var items: [[UInt8]] = []
        func add(_ b: [UInt8]) { lock.lock(); items.append(b); lock.unlock() }
        func drain() -> [[UInt8]] { lock.lock(); defer { items = []; lock.unlock() }; return items }
    }

    public init(keys: UEKeyState, outputDirectory: String?) {
        self.keys = keys
        self.outputDirectory = outputDirectory
    }

    /// True for a datagram that can only be ALC/LCT (LCT version 1 in the top nibble; RTP and
    /// RTCP have version 2 in the top two bits, RFC 5761 4).
    public static func looksLikeALC(_ payload: UnsafeRawBufferPointer) -> Bool {
        payload.count >= 12 && payload[0] >> 4 == 1
    }

    /// Feeds one UDP datagram of a FLUTE flow; `frame` (1-based, as Wireshark counts) places
    /// violations in the capture.
    public func receive(_ payload: [UInt8], flow: TransportAddress, at time: Double, frame: Int = 0) {
        current = (frame, time)
        if receivers[flow] == nil {
            let log = fdtLog
            let unwrap: @Sendable ([UInt8]) throws -> [UInt8] = { bytes in
                log.add(bytes)
                // A DCF-wrapped FDT starts with an 'ftyp' box; a plain one with XML.
                guard Self.startsWithFtyp(bytes) else { return bytes }
                let reader = DCFReader()
                return try reader.decrypt(try reader.parse(bytes), encryptionKey: nil)
            }
            receivers[flow] = FLUTEReceiver(configuration: FLUTEReceiver.Configuration(fdtUnwrapper: unwrap))
        }
        guard var rx = receivers[flow] else { return }
        let events = rx.receive(datagram: payload, at: time)
        receivers[flow] = rx
        for raw in fdtLog.drain() {
            report.fdtInstances += 1
            if Self.startsWithFtyp(raw) {
                pendingFDTs.append(raw)
            } else {
                report.plainFDTs += 1
                if !allowPlainFDT {
                    addViolation(.fdtUnprotected, flow: flow,
                                 detail: "FDT Instance (TOI 0) sent as plain XML, not in a DCF: nothing proves it came from the BM-SC; accept it with --allow-plain-fdt (gateway --plain-fdt output)")
                }
            }
        }
        for event in events {
            switch event {
            case .object(let o) where o.toi != 0:
                checkContentMD5(o, flow: flow)
                handle(o, flow: flow)
            case .object, .fdtInstance:
                break
            case .fdtRefused(_, _, let reason):
                report.refused["fdt_" + reason, default: 0] += 1
            case .rejected(_, let reason):
                report.refused["\(reason)", default: 0] += 1
            case .malformed:
                report.refused["malformed", default: 0] += 1
            }
        }
        verifyPendingFDTs()
    }

    /// Objects still waiting for an MTK are reported as failures.
    public func finish() {
        for p in pendingObjects { record(p.object, flow: p.flow, keyID: p.keyID.map(text), signature: "failed", error: "no MTK for its 'obki' KeyID arrived") }
        pendingObjects.removeAll()
        report.fdtSignaturesFailed += pendingFDTs.count
        pendingFDTs.removeAll()
    }

    private func handle(_ o: FLUTEReceiver.ReceivedObject, flow: TransportAddress, pending: Pending? = nil) {
        let type = o.file?.contentType ?? ""
        if type == "application/mikey" {
            report.mikeyObjects += 1
            if case .success(.mtk(let m)) = keys.process(o.data), m.kind == .download,
               let id = MBMSKeyID(keyDomainID: m.keyDomainID.bytes, mskID: m.mskID.rawValue, mtkID: m.mtkID.rawValue),
               dcfKeys[id] == nil, let k = try? m.downloadKeys() {
                dcfKeys[id] = DCFKeys(encryptionKey: k.encryptionKey, authenticationKey: k.authenticationKey)
                report.mtksDerived += 1
                let waiting = pendingObjects
                pendingObjects.removeAll()
                for p in waiting {
                    if p.keyID == id {
                        // The DCF was on the channel before the key to open it (TS 33.246 6.6.3).
                        addViolation(.mtkObjectAfterDCF, flow: p.flow, frame: p.frame, time: p.time,
                                     detail: "DCF \(p.object.file?.contentLocation ?? "TOI \(p.object.toi)") (TOI \(p.object.toi), MTK \(text(id))) completed before the MIKEY object carrying its MTK (TOI \(o.toi), frame \(current.frame))")
                    }
                    handle(p.object, flow: p.flow, pending: p)
                }
            }
            return
        }
        guard type == "application/vnd.oma.drm.dcf" || isDCF(o.data) else {
            record(o, flow: flow, plaintext: o.data, contentType: type.isEmpty ? "application/octet-stream" : type, keyID: nil, signature: "unprotected")
            return
        }
        let reader = DCFReader()
        let parsed: ParsedDCF
        do { parsed = try reader.parse(o.data) } catch {
            record(o, flow: flow, keyID: nil, signature: "failed", error: "not a valid DCF: \(error)")
            return
        }
        guard let id = parsed.mbmsKeyID else {
            record(o, flow: flow, keyID: nil, signature: "failed", error: "DCF without an MBMS 'obki' KeyID (TS 33.246 6.6.3.2)")
            return
        }
        guard let k = dcfKeys[id] else {
            if pendingObjects.count < maximumPendingObjects {
                pendingObjects.append(pending ?? Pending(flow: flow, object: o, keyID: id, frame: current.frame, time: current.time))
            } else {
                record(o, flow: flow, keyID: text(id), signature: "failed", error: "no MTK yet and too many objects waiting")
            }
            return
        }
        do {
            let opened = try reader.open(o.data, keys: k, requireSignature: true)
            record(o, flow: flow, plaintext: opened.plaintext, contentType: opened.contentType, keyID: text(id), signature: "verified")
        } catch {
            record(o, flow: flow, keyID: text(id), signature: "failed", error: "\(error)")
        }
    }

    private func verifyPendingFDTs() {
        var still: [[UInt8]] = []
        for raw in pendingFDTs {
            let reader = DCFReader()
            guard let parsed = try? reader.parse(raw), let id = parsed.mbmsKeyID else { report.fdtSignaturesFailed += 1; continue }
            guard let k = dcfKeys[id] else { still.append(raw); continue }
            if (try? reader.verifySignature(parsed, authenticationKey: k.authenticationKey)) == .verified {
                report.fdtSignaturesVerified += 1
            } else {
                report.fdtSignaturesFailed += 1
            }
        }
        pendingFDTs = Array(still.suffix(64))
    }

    private func record(_ o: FLUTEReceiver.ReceivedObject, flow: TransportAddress, plaintext: [UInt8]? = nil, contentType: String? = nil,
                        keyID: String?, signature: String, error: String? = nil) {
        let location = o.file?.contentLocation ?? "toi-\(o.toi)"
        var written: String? = nil
        var failure = error
        if let plaintext, let dir = outputDirectory {
            if let rel = Self.safeRelativePath(location) {
                let url = URL(fileURLWithPath: dir).appendingPathComponent(rel)
                do {
                    try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
                    try Data(plaintext).write(to: url)
                    written = rel
                } catch { failure = "cannot write \(url.path): \(error.localizedDescription)" }
            } else {
                failure = "Content-Location \(location) does not map to a safe file name"
            }
        }
        let bytes = plaintext ?? []
        report.objects.append(RecoveredObject(flow: "\(flow)", tsi: o.tsi, toi: o.toi, contentLocation: location,
                                              contentType: contentType ?? (o.file?.contentType ?? ""), path: written, size: bytes.count,
                                              sha256: plaintext.map { Hex.encode(SHA256.hash($0)) } ?? "", keyID: keyID, signature: signature,
                                              error: failure))
    }

    /// RFC 3926 3.4.2: Content-MD5 (RFC 1864: base64 of the MD5) of the object as transported.
    private func checkContentMD5(_ o: FLUTEReceiver.ReceivedObject, flow: TransportAddress) {
        guard let announced = o.file?.contentMD5?.trimmingCharacters(in: .whitespaces) else { return }
        let actual = Data(MD5.hash(o.data)).base64EncodedString()
        guard announced != actual else { return }
        var detail = "\(o.file?.contentLocation ?? "TOI \(o.toi)") (TOI \(o.toi), \(o.data.count) bytes): the FDT says Content-MD5 \(announced), the object received has \(actual)"
        if isDCF(o.data), let parsed = try? DCFReader().parse(o.data), let id = parsed.mbmsKeyID, let k = dcfKeys[id],
           let opened = try? DCFReader().open(o.data, keys: k, requireSignature: false),
           Data(MD5.hash(opened.plaintext)).base64EncodedString() == announced {
            detail += " (the FDT gives the MD5 of the decrypted file, not of the DCF sent)"
        }
        addViolation(.contentMD5Mismatch, flow: flow, detail: detail)
    }

    private func addViolation(_ kind: ViolationKind, flow: TransportAddress, frame: Int? = nil, time: Double? = nil, detail: String) {
        let n = report.violationCounts[kind.rawValue, default: 0]
        report.violationCounts[kind.rawValue] = n + 1
        guard n < maximumViolationsPerKind else { return }
        report.violations.append(Violation(kind: kind, rule: kind.rule, frame: frame ?? current.frame, time: time ?? current.time,
                                           flow: "\(flow)", ssrc: nil, sequenceNumber: nil, mki: nil, detail: detail))
    }

    static func startsWithFtyp(_ b: [UInt8]) -> Bool { b.count >= 8 && b[4] == 0x66 && b[5] == 0x74 && b[6] == 0x79 && b[7] == 0x70 }

    private func isDCF(_ b: [UInt8]) -> Bool { b.count >= 12 && b[4] == 0x66 && b[5] == 0x74 && b[6] == 0x79 && b[7] == 0x70 && b[8] == 0x6F && b[9] == 0x64 }
    private func text(_ id: MBMSKeyID) -> String { "\(Hex.encode(id.keyDomainID))/\(String(format: "%08x", id.mskID))/\(id.mtkID)" }

    /// The path part of a Content-Location URI, without "..", empty or absolute components.
    static func safeRelativePath(_ location: String) -> String? {
        var rest = Substring(location)
        if let r = rest.range(of: "://") {
            rest = rest[r.upperBound...]
            guard let slash = rest.firstIndex(of: "/") else { return nil }
            rest = rest[slash...]
        }
        if let q = rest.firstIndex(where: { $0 == "?" || $0 == "#" }) { rest = rest[..<q] }
        let parts = rest.split(separator: "/").map { $0.removingPercentEncoding ?? String($0) }
        guard !parts.isEmpty, parts.allSatisfy({ !$0.isEmpty && $0 != "." && $0 != ".." && !$0.contains("\0") }) else { return nil }
        return parts.joined(separator: "/")
    }
}

/// Content-Location → relative file path, for tools and tests.
public enum ObjectReceiverPaths {
    public static func safe(_ location: String) -> String? { ObjectReceiver.safeRelativePath(location) }
}
