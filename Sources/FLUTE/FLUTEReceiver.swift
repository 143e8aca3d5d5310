/// The receiving side of FLUTE sessions: decodes UDP payloads, keeps one FDT table per TSI,
/// parses FDT Instances as they complete, and reassembles files with the FDT's OTI
/// (`flute.md` 11). Pure: time is a parameter (`now`, Unix seconds, used for object
/// timeouts and — when enabled — for FDT `Expires`).
public struct FLUTEReceiver: Sendable {
    public struct Configuration: Sendable {
        public var reassembly: ReassemblyLimits
        public var fdtLimits: FDTParserLimits
        public var maximumFilesPerSession: Int
        /// Most FLUTE sessions (TSIs) with FDT state.
        public var maximumSessions: Int
        /// Refuse FDT Instances whose Expires is before `now` (RFC 3926 §3.4.1).
        public var honourExpires: Bool
        /// Seconds added to every FDT Instance's Expires before it is compared with `now`: the
        /// offset by which the packets' times were moved (a capture re-timed by `replay
        /// --start-time`). Expires is absolute (RFC 3926 §3.4.1: NTP seconds), so without this an
        /// FDT re-timed into its own future looks expired and its objects lose their names.
        public var expiresShiftSeconds: Int64 = 0
        /// Turns a completed TOI 0 object into FDT XML (e.g. unwrap and verify the DCF that
        /// carries a protected FDT, TS 33.246 6.6.3.2). Nil: the object is the XML.
        public var fdtUnwrapper: (@Sendable ([UInt8]) throws -> [UInt8])?

        public init(reassembly: ReassemblyLimits = ReassemblyLimits(), fdtLimits: FDTParserLimits = FDTParserLimits(),
                    maximumFilesPerSession: Int = 10_000, maximumSessions: Int = 64, honourExpires: Bool = true,
                    fdtUnwrapper: (@Sendable ([UInt8]) throws -> [UInt8])? = nil) {
            self.reassembly = reassembly; self.fdtLimits = fdtLimits; self.maximumFilesPerSession = maximumFilesPerSession
            self.maximumSessions = maximumSessions
            self.honourExpires = honourExpires; self.fdtUnwrapper = fdtUnwrapper
        }
    }

    public struct Counters: Equatable, Sendable {
        /// UDP payloads that are not valid ALC/FLUTE packets.
        public var malformedPackets = 0
        /// Completed TOI 0 objects that did not parse (or unwrap) as an FDT Instance.
        public var fdtInstancesRefused = 0
        /// Files completed before any FDT described their TOI.
        public var objectsWithoutFDTEntry = 0
        /// FDT packets with EXT_CENC other than null: TS 26.346 Annex A forbids content-encoded
        /// FDT Instances from an MBMS server, and this codec does not decompress.
        public var contentEncodedFDTPackets = 0
        /// FDT Instances refused because `maximumSessions` TSIs already have FDT state.
        public var fdtInstancesOverSessionLimit = 0
        public init() {}
    }

    /// A delivered file.
    public struct ReceivedObject: Equatable, Sendable {
        public var tsi: UInt64
        public var toi: UInt64
        public var data: [UInt8]
        /// The FDT File entry for the TOI, when an FDT Instance described it.
        public var file: FDTFile?
    }

    public enum Event: Equatable, Sendable {
        case fdtInstance(tsi: UInt64, fdtInstanceID: UInt32, FDTInstance, FDTTable.InsertOutcome)
        case fdtRefused(tsi: UInt64, fdtInstanceID: UInt32, reason: String)
        case object(ReceivedObject)
        case rejected(ObjectKey, RejectionReason)
        case malformed(FLUTEPacketError)
    }

    public let configuration: Configuration
    public private(set) var reassembler: ObjectReassembler
    public private(set) var fdtTables: [UInt64: FDTTable] = [:]
    public private(set) var counters = Counters()

    public init(configuration: Configuration = Configuration()) {
        self.configuration = configuration
        self.reassembler = ObjectReassembler(limits: configuration.reassembly)
    }

    /// Processes one UDP payload received at `now` (Unix seconds).
    public mutating func receive(datagram: [UInt8], at now: Double) -> [Event] {
        let packet: ALCPacket
        do {
            packet = try ALCPacket(decoding: datagram)
        } catch {
            counters.malformedPackets += 1
            return [.malformed(error)]
        }
        return receive(packet, at: now)
    }

    /// Processes one decoded packet.
    public mutating func receive(_ packet: ALCPacket, at now: Double) -> [Event] {
        let tsi = packet.header.tsi, toi = packet.header.toi
        if toi == 0, let cenc = packet.header.cenc, cenc.contentEncoding != .null {
            counters.contentEncodedFDTPackets += 1
            return [.fdtRefused(tsi: tsi, fdtInstanceID: packet.header.fdt?.fdtInstanceID ?? 0,
                                reason: "content-encoded FDT Instance (EXT_CENC \(cenc.contentEncoding)) not supported; TS 26.346 Annex A: the MBMS server shall not content-encode FDT Instances")]
        }
        let fdtOTI = toi == 0 ? nil : fdtTables[tsi]?.entry(forTOI: toi)?.objectTransmissionInformation
        switch reassembler.receive(packet, at: now, fdtOTI: fdtOTI) {
        case .completed(let object): return deliver(object, at: now)
        case .rejected(let reason):
            return [.rejected(ObjectKey(tsi: tsi, toi: toi, fdtInstanceID: toi == 0 ? packet.header.fdt?.fdtInstanceID : nil), reason)]
        default: return []
        }
    }

    /// Times out idle objects and drops expired FDT entries.
    @discardableResult
    public mutating func expire(at now: Double) -> [ObjectKey] {
        if configuration.honourExpires, let ntp = Self.ntpSeconds(unshifted(now)) {
            for tsi in fdtTables.keys { fdtTables[tsi]?.expire(ntpNow: ntp) }
        }
        return reassembler.expire(at: now)
    }

    /// `now` on the clock the FDT's Expires was written against (Expires + shift >= now
    /// exactly when Expires >= now - shift).
    private func unshifted(_ now: Double) -> Double { now - Double(configuration.expiresShiftSeconds) }

    static func ntpSeconds(_ unix: Double) -> UInt32? {
        guard unix.isFinite, unix >= 0, unix < 1e15 else { return nil }
        let ntp = UInt64(unix) + FDTInstance.ntpUnixOffset
        return UInt32(truncatingIfNeeded: ntp)
    }

    private mutating func deliver(_ object: CompletedObject, at now: Double) -> [Event] {
        let tsi = object.key.tsi
        guard object.key.toi == 0 else {
            let file = fdtTables[tsi]?.entry(forTOI: object.key.toi)?.file
            if file == nil { counters.objectsWithoutFDTEntry += 1 }
            return [.object(ReceivedObject(tsi: tsi, toi: object.key.toi, data: object.data, file: file))]
        }
        let id = object.key.fdtInstanceID ?? 0
        let instance: FDTInstance
        do {
            let xml = try configuration.fdtUnwrapper.map { try $0(object.data) } ?? object.data
            instance = try FDTInstance(parsing: xml, limits: configuration.fdtLimits)
        } catch {
            counters.fdtInstancesRefused += 1
            return [.fdtRefused(tsi: tsi, fdtInstanceID: id, reason: "\(error)")]
        }
        if fdtTables[tsi] == nil && fdtTables.count >= configuration.maximumSessions {
            counters.fdtInstancesOverSessionLimit += 1
            return [.fdtRefused(tsi: tsi, fdtInstanceID: id, reason: "more than \(configuration.maximumSessions) FLUTE sessions")]
        }
        var table = fdtTables[tsi] ?? FDTTable(maximumFiles: configuration.maximumFilesPerSession)
        let outcome = table.insert(instance, fdtInstanceID: id, ntpNow: configuration.honourExpires ? Self.ntpSeconds(unshifted(now)) : nil)
        fdtTables[tsi] = table
        var events: [Event] = [.fdtInstance(tsi: tsi, fdtInstanceID: id, instance, outcome)]
        // Objects that arrived before the FDT: hand them their OTI now.
        if case .accepted(let newTOIs) = outcome, !newTOIs.isEmpty {
            let waiting = Set(reassembler.keysAwaitingOTI)
            for toi in newTOIs {
                let key = ObjectKey(tsi: tsi, toi: toi)
                guard waiting.contains(key), let oti = table.entry(forTOI: toi)?.objectTransmissionInformation else { continue }
                switch reassembler.supplyOTI(oti, for: key, at: now) {
                case .completed(let done): events += deliver(done, at: now)
                case .rejected(let reason): events.append(.rejected(key, reason))
                default: break
                }
            }
        }
        return events
    }
}
