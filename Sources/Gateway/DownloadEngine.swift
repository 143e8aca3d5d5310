import CryptoCore
import DCF
import FLUTE
import Foundation
import KeyManagement
import PacketIO

/// One configured FLUTE channel (`DESIGN.md` §5).
public struct DownloadSession: Sendable, Equatable {
    public var index: Int
    public var name: String
    public var keyGroup: KeyGroup
    public var destination: TransportAddress
    /// Input TSI to accept (nil: any); the output keeps the TSI it arrived with.
    public var tsi: UInt64?
    public var output: TransportAddress?
    /// TS 33.246 6.6.3: wrap objects and the FDT in DCFs.
    public var dcf: Bool

    public static func sessions(of configuration: GatewayConfiguration) throws(GatewaySetupError) -> [DownloadSession] {
        var out: [DownloadSession] = []
        for s in configuration.sessions where s.kind == .flute {
            guard let ip = IPAddress(s.destination.host) else { throw .badAddress(session: s.name, value: s.destination.description) }
            var output: TransportAddress? = nil
            if let o = s.output {
                guard let oip = IPAddress(o.host) else { throw .badAddress(session: s.name, value: o.description) }
                output = TransportAddress(oip, o.port)
            }
            out.append(DownloadSession(index: out.count, name: s.name, keyGroup: s.keyGroup, destination: TransportAddress(ip, s.destination.port),
                                       tsi: s.tsi, output: output, dcf: s.protection.dcf))
        }
        return out
    }
}

/// Counters of one FLUTE channel.
public struct DownloadStatistics: Sendable, Codable, Equatable {
    public var name: String
    public var packetsIn = 0
    public var bytesIn = 0
    public var objectsIn = 0
    public var objectsOut = 0
    public var objectBytesIn = 0
    public var objectBytesOut = 0
    public var packetsOut = 0
    public var fdtInstancesSent = 0
    public var mikeyObjectsSent = 0
    public var mtksUsed: [UInt16] = []
    /// Objects or packets refused, by reason (FLUTE reassembly and FDT outcomes; an input FDT
    /// Instance already expired at the capture's clock is `fdt_expired`).
    public var rejected: [String: Int] = [:]
    /// Objects that arrived without a valid FDT entry (no FDT Instance described their TOI, or
    /// the one that did had expired): forwarded named `file:///object-<TOI>` with type
    /// application/octet-stream, counted here and warned about once per channel — never
    /// renamed silently (RFC 3926 §3.4.1: the FDT gives an object its name).
    public var objectsWithoutFDTEntry = 0
    public init(name: String) { self.name = name }
}

/// A datagram the gateway originates, due at `time` (Unix seconds, fractional).
public struct OutgoingDatagram: Sendable {
    public var time: Double
    public var session: Int
    public var payload: [UInt8]
}

/// Download protection (TS 33.246 6.6.3, `flute.md` 8–9, `dcf.md` 7): FLUTE in; every complete
/// object wrapped in a DCF (AES-128-CBC, `obki` naming the MTK, `odfs` HMAC-SHA1) and sent
/// again on the channel, after a new FDT Instance describing it (itself a NULL-encrypted,
/// signed DCF unless `plainFDT`) and the MIKEY MTK message object (`application/mikey`).
/// Store-and-forward per object; deterministic for a given store and input.
public final class DownloadEngine {
    public struct Options: Sendable {
        /// Send the FDT unwrapped (for receivers that cannot read a DCF-wrapped FDT).
        public var plainFDT = false
        /// Output rate per channel in bit/s.
        public var bitsPerSecond: Double = 20_000_000
        /// FDT `Expires` = send time + this many seconds (NTP).
        public var fdtLifetime: Int64 = 3600
        public var fluteVersion: FLUTEVersion = .v1
        public var encodingSymbolLength = 1400
        /// How many recent objects each FDT Instance keeps listing besides the MIKEY object. The
        /// default lists only the object in flight, which keeps every FDT Instance in one packet
        /// (tshark and some receivers do not reassemble multi-packet FDTs).
        public var objectsListed = 1
        /// Seconds by which the input's packet times were moved (`replay --start-time`): added to
        /// each input FDT Instance's Expires before it is compared with the capture's clock, as
        /// the frames themselves were moved (Expires is absolute NTP time, RFC 3926 §3.4.1).
        public var expiresShiftSeconds: Int64 = 0
        /// Where warnings go (an object forwarded without a valid FDT entry, once per channel).
        /// Nil: standard error.
        public var warning: (@Sendable (String) -> Void)? = nil
        public init() {}
    }

    public let sessions: [DownloadSession]
    public let options: Options
    public private(set) var statistics: [DownloadStatistics]
    private let keySource: KeySource
    private var channels: [Channel]

    struct Channel {
        var receiver: FLUTEReceiver
        var sender: ObjectSender?
        var nextTOI: UInt64 = 1
        var mikey: (mtkID: UInt16, mskID: UInt32, toi: UInt64, bytes: [UInt8], file: FDTFile)?
        var listed: [FDTFile] = []
        /// Whether this channel already warned about an object without a valid FDT entry.
        var warnedWithoutFDTEntry = false
    }

    public init(sessions: [DownloadSession], keySource: KeySource, options: Options = Options()) {
        self.sessions = sessions
        self.keySource = keySource
        self.options = options
        statistics = sessions.map { DownloadStatistics(name: $0.name) }
        channels = sessions.map { s in
            var limits = ReassemblyLimits()
            if let tsi = s.tsi { limits.acceptedTSIs = [tsi] }
            var configuration = FLUTEReceiver.Configuration(reassembly: limits)
            configuration.expiresShiftSeconds = options.expiresShiftSeconds
            return Channel(receiver: FLUTEReceiver(configuration: configuration))
        }
    }

    /// Feeds one datagram of channel `i` received at `time`; returns what to send because of it.
    public func receive(_ payload: [UInt8], session i: Int, at time: Double) throws -> [OutgoingDatagram] {
        statistics[i].packetsIn += 1
        statistics[i].bytesIn += payload.count
        var out: [OutgoingDatagram] = []
        for event in channels[i].receiver.receive(datagram: payload, at: time) {
            switch event {
            case .object(let o) where o.toi != 0:
                statistics[i].objectsIn += 1
                statistics[i].objectBytesIn += o.data.count
                out += try forward(o, session: i, at: time)
            case .fdtInstance(_, _, _, .expired):
                statistics[i].rejected["fdt_expired", default: 0] += 1
            case .object, .fdtInstance:
                break
            case .fdtRefused(_, _, let reason):
                statistics[i].rejected["fdt_" + reason, default: 0] += 1
            case .rejected(_, let reason):
                statistics[i].rejected["\(reason)", default: 0] += 1
            case .malformed:
                statistics[i].rejected["malformed", default: 0] += 1
            }
        }
        let timedOut = channels[i].receiver.expire(at: time).count
        if timedOut > 0 { statistics[i].rejected["timed_out", default: 0] += timedOut }
        return out
    }

    private func forward(_ object: FLUTEReceiver.ReceivedObject, session i: Int, at time: Double) throws -> [OutgoingDatagram] {
        let s = sessions[i]
        if channels[i].sender == nil {
            let packetiser = ObjectPacketiser(tsi: object.tsi, encodingSymbolLength: options.encodingSymbolLength,
                                              fluteVersion: options.fluteVersion)
            channels[i].sender = ObjectSender(packetiser: packetiser, bitsPerSecond: options.bitsPerSecond, startTime: time,
                                              overheadBytesPerPacket: 28)
        }
        guard var sender = channels[i].sender else { return [] }
        if object.file == nil { noteObjectWithoutFDTEntry(object, session: i) }
        sender.pacer.advance(to: time)
        let fec = sender.packetiser.fdtFECParameters
        let location = object.file?.contentLocation ?? "file:///object-\(object.toi)"
        let originalType = object.file?.contentType ?? "application/octet-stream"

        var packets: [ScheduledPacket] = []
        var payload = object.data
        var contentType = originalType
        var keysForFDT: (DCFKeys, MBMSKeyID)? = nil
        if s.dcf {
            let t = Int64(time.rounded(.down))
            let m = try keySource.downloadMTK(for: s.keyGroup, sessionName: s.name, at: t)
            let keys = try keySource.dcfKeys(m)
            guard let keyID = MBMSKeyID(keyDomainID: m.keyDomainID.bytes, mskID: m.mskID.rawValue, mtkID: m.mtkID.rawValue) else {
                throw KeyScheduleError.schedule(session: s.name, at: t, underlying: "bad key identifiers")
            }
            if !statistics[i].mtksUsed.contains(m.mtkID.rawValue) { statistics[i].mtksUsed.append(m.mtkID.rawValue) }
            // The MIKEY MTK message (download: TGK) as an object of its own (33.246 6.3.3.2.1).
            if channels[i].mikey?.mtkID != m.mtkID.rawValue || channels[i].mikey?.mskID != m.mskID.rawValue {
                let bytes = try keySource.mtkMessage(m, download: true)
                let toi = channels[i].nextTOI
                channels[i].nextTOI += 1
                let file = FDTFile(toi: toi, contentLocation: "file:///mbms/keys/mtk-\(m.keyDomainID.hex)-\(m.mskID.bytes.map { String(format: "%02x", $0) }.joined())-\(m.mtkID.rawValue).mikey",
                                   contentType: "application/mikey", contentLength: UInt64(bytes.count),
                                   transferLength: UInt64(bytes.count), contentMD5: Self.contentMD5(bytes), fec: fec)
                channels[i].mikey = (m.mtkID.rawValue, m.mskID.rawValue, toi, bytes, file)
            }
            // A CBC IV unpredictable to anyone without K_enc, yet deterministic for replay.
            var encryptionKey = keys.encryptionKey.revealedBytes()
            defer { SecureZero.zero(&encryptionKey) }
            let iv = Array(try HMACSHA256.authenticate(key: encryptionKey,
                                                       message: Array("DCF-IV".utf8) + withUnsafeBytes(of: object.tsi.bigEndian, Array.init)
                                                       + withUnsafeBytes(of: object.toi.bigEndian, Array.init) + SHA256.hash(object.data)).prefix(16))
            payload = try DCFWriter().protect(plaintext: object.data, contentType: originalType,
                                              contentID: "cid:\(object.tsi)-\(object.toi)@\(keySource.manager.configuration.bmscFQDN)",
                                              keyID: keyID, cipher: .aes128CBC(iv: iv), keys: keys)
            contentType = "application/vnd.oma.drm.dcf"
            keysForFDT = (keys, keyID)
        }
        let toi = channels[i].nextTOI
        channels[i].nextTOI += 1
        let file = FDTFile(toi: toi, contentLocation: location, contentType: contentType, contentLength: UInt64(payload.count),
                           transferLength: UInt64(payload.count), contentMD5: Self.contentMD5(payload), fec: fec)
        channels[i].listed.append(file)
        if channels[i].listed.count > options.objectsListed { channels[i].listed.removeFirst(channels[i].listed.count - options.objectsListed) }

        // FDT Instance first, so it precedes the object's last packet (flute.md 8).
        var files = channels[i].listed
        if let mikey = channels[i].mikey { files.insert(mikey.file, at: 0) }
        // NTP seconds are 32 bits (era 0 ends in 2036): clamp rather than wrap into the past.
        let ntpExpires = UInt32(clamping: Int64(time) + 2_208_988_800 + options.fdtLifetime)
        let fdt = FDTInstance(expires: ntpExpires, files: files)
        var fdtObject = try fdt.xml()
        if let (keys, keyID) = keysForFDT, !options.plainFDT {
            // NULL encryption + odfs: readable before the MTK arrives, verifiable after (flute.md 9.3).
            fdtObject = try DCFWriter().protect(plaintext: fdtObject, contentType: "text/xml", contentID: "cid:fdt-\(object.tsi)@\(keySource.manager.configuration.bmscFQDN)",
                                                keyInfo: OMABCASTKeyInfoBox(mbmsKeyID: keyID, keyIssuerURL: nil), cipher: .null,
                                                encryptionKey: nil, authenticationKey: keys.authenticationKey)
        }
        let (_, fdtPackets) = try sender.send(fdtInstance: fdtObject)
        packets += fdtPackets
        statistics[i].fdtInstancesSent += 1
        if let mikey = channels[i].mikey {
            packets += try sender.send(file: mikey.bytes, toi: mikey.toi)
            statistics[i].mikeyObjectsSent += 1
        }
        packets += try sender.send(file: payload, toi: toi)
        channels[i].sender = sender
        statistics[i].objectsOut += 1
        statistics[i].objectBytesOut += payload.count
        statistics[i].packetsOut += packets.count
        return packets.map { OutgoingDatagram(time: $0.sendTime, session: i, payload: $0.datagram) }
    }
}

extension DownloadEngine {
    /// Counts an object no valid FDT entry named, and warns once per channel: the output can only
    /// call it `file:///object-<TOI>`, which no UE can match with what it was meant to be.
    private func noteObjectWithoutFDTEntry(_ object: FLUTEReceiver.ReceivedObject, session i: Int) {
        statistics[i].objectsWithoutFDTEntry += 1
        guard !channels[i].warnedWithoutFDTEntry else { return }
        channels[i].warnedWithoutFDTEntry = true
        let expired = statistics[i].rejected["fdt_expired", default: 0]
        let why = expired > 0
            ? "the FDT Instance that describes it had expired at the gateway's clock (replay: the capture's times; \(expired) expired FDT Instance(s) so far; Expires is absolute, so a capture re-timed by other means than `replay --start-time` keeps its old Expires)"
            : "no FDT Instance described its TOI before it completed"
        let message = "warning: FLUTE channel \(sessions[i].name): object TSI \(object.tsi) TOI \(object.toi) has no valid FDT entry: \(why); it is sent as file:///object-\(object.toi) (application/octet-stream); further such objects on this channel are only counted (objectsWithoutFDTEntry)"
        if let warn = options.warning { warn(message) } else { FileHandle.standardError.write(Data((message + "\n").utf8)) }
    }

    /// RFC 3926 3.4.2 / RFC 1864: base64 of the MD5 of the transport object.
    static func contentMD5(_ bytes: [UInt8]) -> String { Data(MD5.hash(bytes)).base64EncodedString() }
}

extension KeySource {
    /// The MTK in force at t for a download key group (TS 33.246 6.6.3: carried as a TGK).
    func downloadMTK(for keyGroup: KeyGroup, sessionName: String, at t: Int64) throws -> ScheduledMTK {
        let probe = StreamingSession(index: -1, name: sessionName, keyGroup: keyGroup, rtp: TransportAddress(.v4(0), 0),
                                     rtcp: TransportAddress(.v4(0), 0), output: nil, policy: .init())
        guard let m = try transmissions(for: probe, at: t).first else {
            throw KeyScheduleError.schedule(session: sessionName, at: t, underlying: "no MTK")
        }
        return m
    }

    /// DCF keys from the MTK (TS 33.246 6.5.4 → RFC 3830 4.1.3, cs_id 0; CSB ID of the MTK
    /// message; RAND of the MSK).
    func dcfKeys(_ m: ScheduledMTK) throws -> DCFKeys {
        guard let msk = schedule.snapshot.msk(m.mskID) else { throw ScheduleError.secretsPurged(m.mskID) }
        return try DCFKeys.derive(mtk: m.mtk, csbID: m.csbID.rawValue, rand: msk.rand)
    }
}
