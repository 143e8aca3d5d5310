import MIKEY
import CryptoCore
import Foundation

/// Text of `keys show`. Secret bytes appear only with `reveal: true`.
public enum KeyReport {
    static func iso(_ t: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(t)))
    }

    public static func show(schedule: KeySchedule, configuration: GatewayConfiguration, at date: Date, reveal: Bool) -> String {
        let t = unixSeconds(date)
        var out: [String] = []
        let s = configuration.schedule
        out.append("Key Domain ID \(schedule.keyDomainID.hex)  store revision \(schedule.snapshot.revision)  at \(iso(t))")
        out.append("grid: epoch \(iso(s.epoch)), MTK period \(s.mtkPeriod)s, announce lead \(s.announceLead)s, repeat \(s.repeatInterval)s, MSK period \(s.mskPeriod)s")
        for g in schedule.snapshot.keyGroups {
            let session = configuration.session(forKeyGroup: g.keyGroup)
            out.append("")
            out.append("key group \(g.keyGroup) (\(session.map { "\($0.kind.rawValue) \($0.name) → \($0.destination)" } ?? "not in configuration")), \(g.mtkLength)-octet keys")
            let current = try? schedule.msk(keyGroup: g.keyGroup, at: date)
            let next = try? schedule.nextMSK(keyGroup: g.keyGroup, at: date)
            for m in schedule.snapshot.msks(in: g.keyGroup) {
                var role = m.mskID == current?.mskID ? "current" : m.mskID == next?.mskID ? "next" : (m.validUntil <= t ? "retired" : "planned")
                if m.invalidatedAt != nil { role += ", invalidated" }
                if m.isPurged { role += ", purged" }
                var line = "  MSK \(m.mskID.hex) (Key Number \(m.mskID.keyNumber)) [\(role)] valid \(iso(m.validFrom)) – \(iso(m.validUntil)) SEQl/SEQu \(m.keyValidity.seqL)/\(m.keyValidity.seqU)"
                if reveal, let k = m.msk {
                    line += " MSK \(k.withUnsafeBytes { Hex.encode($0) }) RAND \(Hex.encode(m.rand))"
                }
                out.append(line)
            }
            if let cur = try? schedule.currentMTK(keyGroup: g.keyGroup, at: date) {
                out.append("  current MTK ID \(cur.mtkID.rawValue) (MKI \(Hex.encode(cur.mki))) since \(iso(cur.validFrom)), TS \(cur.timestamp)" + revealed(cur, reveal))
            }
            if let n = try? schedule.nextMTK(keyGroup: g.keyGroup, at: date) {
                out.append("  next MTK ID \(n.mtkID.rawValue) (MKI \(Hex.encode(n.mki))) at \(iso(n.validFrom)), announced from \(iso(n.announceAt)), TS \(n.timestamp)" + revealed(n, reveal))
            }
        }
        return out.joined(separator: "\n")
    }

    static func revealed(_ m: ScheduledMTK, _ reveal: Bool) -> String {
        guard reveal else { return "" }
        return " MTK \(m.mtk.withUnsafeBytes { Hex.encode($0) }) salt \(m.salt.withUnsafeBytes { Hex.encode($0) }) CSB ID \(String(m.csbID.rawValue, radix: 16).leftPadded(8))"
    }
}

/// `keys export-ue`: what a UE of a key group holds (for debugging and tests). Contains secrets.
public struct UEExport: Codable, Equatable, Sendable {
    public struct MSK: Codable, Equatable, Sendable {
        public var role: String
        public var mskID: String
        public var keyGroup: UInt16
        public var keyNumber: UInt16
        public var msk: String
        public var rand: String
        public var seqL: UInt16
        public var seqU: UInt16
        public var validFrom: Int64
        public var validUntil: Int64
    }
    public struct MTK: Codable, Equatable, Sendable {
        public var mskID: String
        public var mtkID: UInt16
        public var mki: String
        public var mtk: String
        public var salt: String
        public var csbID: String
        public var timestamp: UInt32
        public var validFrom: Int64
        public var validUntil: Int64
    }
    public struct Policy: Codable, Equatable, Sendable {
        public var kind: String
        public var cipher: String
        public var auth: String
        public var rocRate: UInt16
        public var srtpTagLength: Int
        public var srtcpTagLength: Int
        public var srtcpEncryption: Bool
        public var dcf: Bool
    }
    public var keyDomainID: String
    public var keyGroup: UInt16
    public var at: Int64
    public var msks: [MSK]
    public var currentMTK: MTK?
    public var nextMTK: MTK?
    public var policy: Policy?

    public static func make(schedule: KeySchedule, configuration: GatewayConfiguration, keyGroup: KeyGroup,
                            at date: Date) throws -> UEExport {
        func hex(_ s: SecretBytes) -> String { s.withUnsafeBytes { Hex.encode($0) } }
        func mtk(_ m: ScheduledMTK) -> MTK {
            MTK(mskID: m.mskID.hex, mtkID: m.mtkID.rawValue, mki: Hex.encode(m.mki), mtk: hex(m.mtk), salt: hex(m.salt),
                csbID: String(m.csbID.rawValue, radix: 16).leftPadded(8), timestamp: m.timestamp, validFrom: m.validFrom, validUntil: m.validUntil)
        }
        let cur = try schedule.msk(keyGroup: keyGroup, at: date)
        let next = try? schedule.nextMSK(keyGroup: keyGroup, at: date)
        let msks = [("current", cur)] + (next.map { [("next", $0)] } ?? [])
        let session = configuration.session(forKeyGroup: keyGroup)
        return UEExport(
            keyDomainID: schedule.keyDomainID.hex, keyGroup: keyGroup.rawValue, at: unixSeconds(date),
            msks: msks.compactMap { role, m in
                guard let k = m.msk else { return nil }
                return MSK(role: role, mskID: m.mskID.hex, keyGroup: m.mskID.keyGroup,
                           keyNumber: m.mskID.keyNumber, msk: hex(k), rand: Hex.encode(m.rand),
                           seqL: m.keyValidity.seqL, seqU: m.keyValidity.seqU, validFrom: m.validFrom, validUntil: m.validUntil)
            },
            currentMTK: mtk(try schedule.currentMTK(keyGroup: keyGroup, at: date)),
            nextMTK: (try? schedule.nextMTK(keyGroup: keyGroup, at: date)).map(mtk),
            policy: session.map { s in
                Policy(kind: s.kind.rawValue, cipher: s.protection.cipher.rawValue, auth: s.protection.authentication.rawValue,
                       rocRate: s.protection.rocRate, srtpTagLength: s.protection.srtpTagLength,
                       srtcpTagLength: s.protection.srtcpTagLength, srtcpEncryption: s.protection.srtcpEncryption,
                       dcf: s.protection.dcf)
            })
    }

    public func json() throws -> String {
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        return String(decoding: try e.encode(self), as: UTF8.self)
    }
}
