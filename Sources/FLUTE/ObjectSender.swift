/// FLUTE version written in EXT_FDT (`flute.md` 10).
public enum FLUTEVersion: UInt8, Sendable {
    /// RFC 3926, as TS 26.346 uses it (the default).
    case v1 = 1
    /// RFC 6726.
    case v2 = 2
}

/// Turns transport objects into ALC/FLUTE packets (`flute.md` 8): partition with the blocking
/// algorithm, one encoding symbol per packet, block by block. FDT Instances go on TOI 0 with
/// EXT_FDT + EXT_FTI; files get EXT_FTI (optional) and the B flag on their last packet.
/// Emits LCT C = 0 / CCI 0, PSI 0, no SCT/ERT/EXT_TIME, A = 0 (TS 26.346 Annex A).
public struct ObjectPacketiser: Sendable {
    public var tsi: UInt64
    /// E, bytes per symbol.
    public var encodingSymbolLength: Int
    /// B, symbols per source block at most.
    public var maximumSourceBlockLength: Int
    public var fluteVersion: FLUTEVersion
    /// EXT_FTI on file packets (`flute.md` F13: optional, default on).
    public var includeFTIOnFiles: Bool
    /// B (Close Object) on the last packet of each file (never on TOI 0).
    public var closeObjectOnLastPacket: Bool
    /// Fixed TSI/TOI widths; nil picks the smallest per packet that fits both (`flute.md` 2).
    public var identifierWidths: IdentifierWidths?

    public init(tsi: UInt64, encodingSymbolLength: Int = 1024, maximumSourceBlockLength: Int = 64,
                fluteVersion: FLUTEVersion = .v1, includeFTIOnFiles: Bool = true, closeObjectOnLastPacket: Bool = true,
                identifierWidths: IdentifierWidths? = nil) {
        self.tsi = tsi; self.encodingSymbolLength = encodingSymbolLength
        self.maximumSourceBlockLength = maximumSourceBlockLength; self.fluteVersion = fluteVersion
        self.includeFTIOnFiles = includeFTIOnFiles; self.closeObjectOnLastPacket = closeObjectOnLastPacket
        self.identifierWidths = identifierWidths
    }

    /// The FEC-OTI attributes an FDT Instance should carry for objects sent with this packetiser.
    public var fdtFECParameters: FDTFECParameters {
        FDTFECParameters(encodingID: 0, maximumSourceBlockLength: UInt64(maximumSourceBlockLength),
                         encodingSymbolLength: UInt64(encodingSymbolLength))
    }

    /// Packets of an FDT Instance (TOI 0) with the given FDT Instance ID (20 bits).
    public func packets(fdtInstance object: [UInt8], fdtInstanceID: UInt32) throws(FLUTEPacketError) -> [ALCPacket] {
        guard fdtInstanceID <= EXTFDT.maximumInstanceID else {
            throw .unrepresentable(structure: .extFDT, field: "FDT Instance ID", value: UInt64(fdtInstanceID))
        }
        return try packets(object: object, toi: 0, extensions: [.fdt(EXTFDT(version: fluteVersion.rawValue, fdtInstanceID: fdtInstanceID))],
                           fti: true, closeObject: false)
    }

    /// Packets of a file object (TOI ≥ 1).
    public func packets(file object: [UInt8], toi: UInt64) throws(FLUTEPacketError) -> [ALCPacket] {
        guard toi != 0 else { throw .unrepresentable(structure: .lctHeader, field: "TOI of a file (0 is the FDT)", value: 0) }
        return try packets(object: object, toi: toi, extensions: [], fti: includeFTIOnFiles, closeObject: closeObjectOnLastPacket)
    }

    private func packets(object: [UInt8], toi: UInt64, extensions: [LCTHeaderExtension], fti: Bool, closeObject: Bool) throws(FLUTEPacketError) -> [ALCPacket] {
        guard encodingSymbolLength > 0, encodingSymbolLength <= Int(UInt16.max) else {
            throw .unrepresentable(structure: .extFTI, field: "Encoding Symbol Length", value: UInt64(max(0, encodingSymbolLength)))
        }
        guard maximumSourceBlockLength > 0, maximumSourceBlockLength <= 65536 else {
            throw .unrepresentable(structure: .extFTI, field: "Maximum Source Block Length", value: UInt64(max(0, maximumSourceBlockLength)))
        }
        let partition: SourceBlockPartition
        do {
            partition = try SourceBlockPartition(transferLength: UInt64(object.count), encodingSymbolLength: encodingSymbolLength,
                                                 maximumSourceBlockLength: maximumSourceBlockLength)
        } catch {
            throw .unrepresentable(structure: .fecPayloadID, field: "source blocks for \(object.count) bytes (\(error))", value: UInt64(object.count))
        }
        guard let widths = identifierWidths ?? IdentifierWidths.smallest(tsi: tsi, toi: toi) else {
            throw .unrepresentable(structure: .lctHeader, field: "TSI/TOI", value: max(tsi, toi))
        }
        var exts = extensions
        if fti {
            exts.append(.fti(EXTFTI(transferLength: UInt64(object.count), encodingSymbolLength: UInt16(encodingSymbolLength),
                                    maximumSourceBlockLength: UInt32(maximumSourceBlockLength))))
        }
        var out: [ALCPacket] = []
        out.reserveCapacity(partition.sourceSymbolCount)
        for sbn in 0..<partition.sourceBlockCount {
            for esi in 0..<partition.symbolCount(ofBlock: sbn) {
                let index = partition.firstSymbol(ofBlock: sbn) + esi
                guard let range = partition.byteRange(ofSymbol: index) else { continue }
                let last = index == partition.sourceSymbolCount - 1
                let header = LCTHeader(identifierWidths: widths, tsi: tsi, toi: toi, closeObject: closeObject && last,
                                       codepoint: ALCPacket.compactNoCode, headerExtensions: exts)
                out.append(ALCPacket(header: header,
                                     payloadID: CompactNoCodePayloadID(sourceBlockNumber: UInt16(sbn), encodingSymbolID: UInt16(esi)),
                                     encodingSymbols: Array(object[range])))
            }
        }
        return out
    }
}

/// One datagram and when to send it.
public struct ScheduledPacket: Equatable, Sendable {
    /// Seconds on the caller's time scale (start time + offset).
    public var sendTime: Double
    public var datagram: [UInt8]
}

/// Paces datagrams at a configured rate without sleeping: packet *k* is due when the bits of
/// packets 0..k−1 have drained at `bitsPerSecond` since `startTime`.
public struct SendRatePacer: Sendable {
    public var bitsPerSecond: Double
    /// Bytes counted per packet on top of the UDP payload (e.g. 28 for IPv4 + UDP headers).
    public var overheadBytesPerPacket: Int
    /// When the next packet may go.
    public private(set) var nextSendTime: Double

    public init(bitsPerSecond: Double, startTime: Double, overheadBytesPerPacket: Int = 0) {
        self.bitsPerSecond = bitsPerSecond
        self.overheadBytesPerPacket = overheadBytesPerPacket
        self.nextSendTime = startTime
    }

    /// An idle channel does not bank credit: after a pause, sending resumes at `time`.
    public mutating func advance(to time: Double) {
        if time > nextSendTime { nextSendTime = time }
    }

    /// Assigns a send time to `datagram` and advances the pacer.
    public mutating func schedule(_ datagram: [UInt8]) -> ScheduledPacket {
        let packet = ScheduledPacket(sendTime: nextSendTime, datagram: datagram)
        if bitsPerSecond > 0 { nextSendTime += Double(8 * (datagram.count + overheadBytesPerPacket)) / bitsPerSecond }
        return packet
    }

    public mutating func schedule(_ packets: [ALCPacket]) throws(FLUTEPacketError) -> [ScheduledPacket] {
        var out: [ScheduledPacket] = []
        out.reserveCapacity(packets.count)
        for p in packets { out.append(schedule(try p.encoded())) }
        return out
    }
}

/// A FLUTE channel's sender: packetises objects and paces them at a configured rate, and
/// numbers FDT Instances (`flute.md` 3.1, 5): a re-sent instance with identical bytes keeps its
/// FDT Instance ID; a changed one gets the next ID, modulo 2^20. Output is
/// (send time, datagram) pairs — nothing sleeps or reads a clock.
public struct ObjectSender: Sendable {
    public var packetiser: ObjectPacketiser
    public var pacer: SendRatePacer
    /// The ID of the FDT Instance sent last (nil before the first).
    public private(set) var currentFDTInstanceID: UInt32?
    private var currentFDTObject: [UInt8]?
    private let firstFDTInstanceID: UInt32

    public init(packetiser: ObjectPacketiser, bitsPerSecond: Double, startTime: Double, overheadBytesPerPacket: Int = 0,
                firstFDTInstanceID: UInt32 = 1) {
        self.packetiser = packetiser
        self.pacer = SendRatePacer(bitsPerSecond: bitsPerSecond, startTime: startTime, overheadBytesPerPacket: overheadBytesPerPacket)
        self.firstFDTInstanceID = firstFDTInstanceID & EXTFDT.maximumInstanceID
    }

    /// Sends a file object (TOI ≥ 1).
    public mutating func send(file object: [UInt8], toi: UInt64) throws(FLUTEPacketError) -> [ScheduledPacket] {
        try pacer.schedule(try packetiser.packets(file: object, toi: toi))
    }

    /// Sends an FDT Instance object (the XML, or the DCF that wraps it) on TOI 0.
    public mutating func send(fdtInstance object: [UInt8]) throws(FLUTEPacketError) -> (fdtInstanceID: UInt32, packets: [ScheduledPacket]) {
        let id: UInt32
        if let current = currentFDTInstanceID, currentFDTObject == object {
            id = current
        } else {
            id = currentFDTInstanceID.map { ($0 + 1) & EXTFDT.maximumInstanceID } ?? firstFDTInstanceID
        }
        let packets = try pacer.schedule(try packetiser.packets(fdtInstance: object, fdtInstanceID: id))
        currentFDTInstanceID = id
        currentFDTObject = object
        return (id, packets)
    }
}
