/// Identifies one transport object: TSI, TOI, and for TOI 0 the FDT Instance ID (every FDT
/// Instance is its own object on TOI 0).
public struct ObjectKey: Hashable, Sendable, CustomStringConvertible {
    public var tsi: UInt64
    public var toi: UInt64
    public var fdtInstanceID: UInt32?
    public init(tsi: UInt64, toi: UInt64, fdtInstanceID: UInt32? = nil) { self.tsi = tsi; self.toi = toi; self.fdtInstanceID = fdtInstanceID }
    public var description: String { "TSI \(tsi) TOI \(toi)" + (fdtInstanceID.map { " FDT instance \($0)" } ?? "") }
}

/// Memory and time bounds of the reassembler.
public struct ReassemblyLimits: Equatable, Sendable {
    /// Largest transport object accepted (bytes).
    public var maximumObjectSize: Int
    /// Largest FDT Instance object (TOI 0) accepted — the XML, or the DCF wrapping it.
    public var maximumFDTObjectSize: Int
    /// Most objects under reassembly at once.
    public var maximumConcurrentObjects: Int
    /// Most bytes held over all objects under reassembly (buffers plus early symbols).
    public var maximumTotalBytes: Int
    /// An object that receives no new symbol for this long (seconds of the caller's time) is dropped.
    public var objectTimeout: Double
    /// Completed/rejected objects remembered to recognise late and repeated packets.
    public var rememberedObjects: Int
    /// If set, packets of other TSIs are refused and counted.
    public var acceptedTSIs: Set<UInt64>?
    /// After the B (Close Object) or A (Close Session) flag, an incomplete object still takes
    /// reordered symbols for this long, then is dropped and counted.
    public var closedObjectGracePeriod: Double

    public init(maximumObjectSize: Int = 64 << 20, maximumFDTObjectSize: Int = (1 << 20) + 4096,
                maximumConcurrentObjects: Int = 64, maximumTotalBytes: Int = 256 << 20,
                objectTimeout: Double = 60, rememberedObjects: Int = 4096, acceptedTSIs: Set<UInt64>? = nil,
                closedObjectGracePeriod: Double = 2) {
        self.maximumObjectSize = maximumObjectSize; self.maximumConcurrentObjects = maximumConcurrentObjects
        self.maximumFDTObjectSize = maximumFDTObjectSize
        self.maximumTotalBytes = maximumTotalBytes; self.objectTimeout = objectTimeout
        self.rememberedObjects = rememberedObjects; self.acceptedTSIs = acceptedTSIs
        self.closedObjectGracePeriod = closedObjectGracePeriod
    }
}

/// Counted outcomes of reassembly. Every refused packet or object lands in exactly one counter.
public struct ReassemblyCounters: Equatable, Sendable {
    public var packets = 0
    public var symbolsStored = 0
    public var duplicateSymbols = 0
    public var objectsCompleted = 0
    public var objectsTimedOut = 0
    /// Objects still incomplete a grace period after their B flag or the session's A flag.
    public var objectsClosedIncomplete = 0
    /// Objects refused: the same TSI/TOI carried different content (changed OTI or a
    /// repeated symbol with different bytes, or new OTI for a completed TOI).
    public var rejectedTOICollision = 0
    /// Objects refused: EXT_FTI and FDT disagree on the transfer length, or symbols do not fit
    /// the announced transfer length.
    public var rejectedTransferLengthLie = 0
    /// Packets refused: TSI not in `acceptedTSIs`.
    public var rejectedUnknownTSI = 0
    /// Objects refused: larger than `maximumObjectSize` (`maximumFDTObjectSize` on TOI 0), or not enough room under
    /// `maximumConcurrentObjects` / `maximumTotalBytes`.
    public var rejectedOverLimit = 0
    /// Objects refused: FEC parameters that cannot be partitioned (RFC 5052 §9.1).
    public var rejectedInvalidParameters = 0
    /// Packets for objects already completed or refused (carousel repeats, stragglers).
    public var packetsForFinishedObjects = 0
    /// Packets without a FEC Payload ID (e.g. bare close-session packets).
    public var packetsWithoutPayload = 0
    public var closeSessionPackets = 0
    public init() {}
}

/// A reassembled transport object.
public struct CompletedObject: Equatable, Sendable {
    public var key: ObjectKey
    public var objectTransmissionInformation: ObjectTransmissionInformation
    public var data: [UInt8]
}

/// What one packet did.
public enum ReassemblyOutcome: Equatable, Sendable {
    case stored
    /// Symbol(s) stored before the OTI is known (waiting for EXT_FTI or the FDT).
    case storedAwaitingOTI
    case duplicate
    case completed(CompletedObject)
    case ignored
    case rejected(RejectionReason)
}

public enum RejectionReason: Equatable, Sendable {
    case toiCollision, transferLengthLie, unknownTSI, overLimit, invalidParameters
}

/// Reassembles ALC/FLUTE transport objects (FEC Encoding ID 0) per TSI/TOI with bounded memory.
///
/// Pure: the caller passes the time (`now`, seconds on any monotonic scale) with every call;
/// objects idle for `objectTimeout` are dropped by `expire(at:)` (also run lazily from
/// `receive`). Duplicate symbols are tolerated.
public struct ObjectReassembler: Sendable {
    struct PendingSymbol: Sendable { var sbn: Int; var esi: Int; var bytes: [UInt8] }

    struct PartialObject: Sendable {
        var oti: ObjectTransmissionInformation?
        var partition: SourceBlockPartition?
        var buffer: [UInt8] = []
        var have: [Bool] = []
        var haveCount = 0
        var pending: [PendingSymbol] = []
        var pendingBytes = 0
        var lastActivity: Double
        /// When B (or the session's A) was seen.
        var closedAt: Double?
        var heldBytes: Int { buffer.count + have.count + pendingBytes }
    }

    public let limits: ReassemblyLimits
    public private(set) var counters = ReassemblyCounters()
    private var objects: [ObjectKey: PartialObject] = [:]
    /// Finished objects (completed: their transfer length; refused: nil), FIFO-bounded.
    private var finished: [ObjectKey: UInt64?] = [:]
    private var finishedOrder: [ObjectKey] = []
    private var finishedHead = 0
    private var lastSweep: Double = -Double.infinity
    public private(set) var bytesHeld = 0

    public init(limits: ReassemblyLimits = ReassemblyLimits()) { self.limits = limits }

    public var activeObjectCount: Int { objects.count }
    /// Objects holding symbols while their OTI is unknown.
    public var keysAwaitingOTI: [ObjectKey] { objects.filter { $0.value.oti == nil }.map(\.key) }

    /// Feeds one decoded packet. `fdtOTI` is the OTI the FDT gives for this TOI, if any;
    /// EXT_FTI in the packet is used otherwise (and checked against it when both exist).
    public mutating func receive(_ packet: ALCPacket, at now: Double, fdtOTI: ObjectTransmissionInformation? = nil) -> ReassemblyOutcome {
        counters.packets += 1
        let h = packet.header
        if let accepted = limits.acceptedTSIs, !accepted.contains(h.tsi) {
            counters.rejectedUnknownTSI += 1
            return .rejected(.unknownTSI)
        }
        if h.closeSession { counters.closeSessionPackets += 1 }
        if now - lastSweep >= min(limits.objectTimeout / 4, limits.closedObjectGracePeriod) { expire(at: now) }
        if h.closeSession {
            for (k, o) in objects where k.tsi == h.tsi && o.closedAt == nil { objects[k]?.closedAt = now }
        }
        guard let payloadID = packet.payloadID else {
            counters.packetsWithoutPayload += 1
            return .ignored
        }
        let key = ObjectKey(tsi: h.tsi, toi: h.toi, fdtInstanceID: h.toi == 0 ? h.fdt?.fdtInstanceID : nil)
        let packetOTI = h.fti.map(ObjectTransmissionInformation.init)

        if let done = finished[key] {
            if let doneLength = done, let l = packetOTI?.transferLength ?? fdtOTI?.transferLength, l != doneLength {
                counters.rejectedTOICollision += 1
                remember(key, transferLength: nil)
                return .rejected(.toiCollision)
            }
            counters.packetsForFinishedObjects += 1
            return .ignored
        }
        if let p = packetOTI, let f = fdtOTI, p.transferLength != f.transferLength {
            return reject(key, .transferLengthLie)
        }
        let oti = packetOTI ?? fdtOTI

        if objects[key] == nil {
            if objects.count >= limits.maximumConcurrentObjects { expire(at: now) }
            guard objects.count < limits.maximumConcurrentObjects else { return reject(key, .overLimit) }
            objects[key] = PartialObject(lastActivity: now)
        }
        objects[key]?.lastActivity = now
        let sbn = Int(payloadID.sourceBlockNumber), esi = Int(payloadID.encodingSymbolID)
        if let oti {
            if let known = objects[key]?.oti {
                // EXT_FTI must repeat the OTI exactly; without it only the FDT's length is checked.
                if let p = packetOTI {
                    guard p == known else { return reject(key, .toiCollision) }
                } else if oti.transferLength != known.transferLength {
                    return reject(key, .transferLengthLie)
                }
            } else {
                let replayed = installOTIAndReplay(oti, for: key)
                switch replayed {
                case .rejected, .completed: return replayed
                default: break
                }
            }
        }
        let outcome = objects[key]?.oti == nil
            ? storePending(key, sbn: sbn, esi: esi, bytes: packet.encodingSymbols)
            : storeSymbols(key, sbn: sbn, esi: esi, bytes: packet.encodingSymbols[...])
        if h.closeObject, objects[key] != nil, objects[key]?.closedAt == nil { objects[key]?.closedAt = now }
        return outcome
    }

    /// Supplies the OTI for an object that was waiting for it (the FDT arrived after its
    /// first packets); replays the held symbols. Returns the outcome of the last step.
    @discardableResult
    public mutating func supplyOTI(_ oti: ObjectTransmissionInformation, for key: ObjectKey, at now: Double) -> ReassemblyOutcome {
        guard let object = objects[key], object.oti == nil else { return .ignored }
        objects[key]?.lastActivity = now
        return installOTIAndReplay(oti, for: key)
    }

    /// Drops objects idle for longer than `objectTimeout`, and objects closed (B/A flag) for
    /// longer than `closedObjectGracePeriod`; returns their keys.
    @discardableResult
    public mutating func expire(at now: Double) -> [ObjectKey] {
        lastSweep = now
        var gone: [ObjectKey] = []
        for (key, o) in objects {
            if let closed = o.closedAt, now - closed > limits.closedObjectGracePeriod {
                counters.objectsClosedIncomplete += 1
            } else if now - o.lastActivity > limits.objectTimeout {
                counters.objectsTimedOut += 1
            } else {
                continue
            }
            gone.append(key)
        }
        for key in gone {
            drop(key)
            remember(key, transferLength: nil)
        }
        return gone
    }

    // MARK: - Internals

    /// Validates and allocates for a newly known OTI, then stores the symbols that arrived
    /// before it. Returns `.stored`, `.completed` or `.rejected`.
    private mutating func installOTIAndReplay(_ oti: ObjectTransmissionInformation, for key: ObjectKey) -> ReassemblyOutcome {
        guard let object = objects[key] else { return .ignored }
        guard oti.transferLength <= UInt64(maximumSize(key)) else { return reject(key, .overLimit) }
        let partition: SourceBlockPartition
        do { partition = try SourceBlockPartition(oti) } catch { return reject(key, .invalidParameters) }
        let length = Int(oti.transferLength)
        let bitmap = partition.sourceSymbolCount
        guard bytesHeld - object.pendingBytes + length + bitmap <= limits.maximumTotalBytes else { return reject(key, .overLimit) }
        var o = object
        bytesHeld -= o.heldBytes
        o.oti = oti
        o.partition = partition
        o.buffer = [UInt8](repeating: 0, count: length)
        o.have = [Bool](repeating: false, count: partition.sourceSymbolCount)
        let pending = o.pending
        o.pending = []
        o.pendingBytes = 0
        bytesHeld += o.heldBytes
        objects[key] = o
        var outcome: ReassemblyOutcome = .stored
        for s in pending {
            outcome = storeSymbols(key, sbn: s.sbn, esi: s.esi, bytes: s.bytes[...])
            switch outcome {
            case .rejected, .completed: return outcome
            default: continue
            }
        }
        return .stored
    }

    private mutating func storePending(_ key: ObjectKey, sbn: Int, esi: Int, bytes: [UInt8]) -> ReassemblyOutcome {
        guard var o = objects[key] else { return .ignored }
        if o.pending.contains(where: { $0.sbn == sbn && $0.esi == esi }) {
            counters.duplicateSymbols += 1
            return .duplicate
        }
        guard o.pendingBytes + bytes.count <= maximumSize(key), bytesHeld + bytes.count <= limits.maximumTotalBytes else {
            return reject(key, .overLimit)
        }
        o.pending.append(PendingSymbol(sbn: sbn, esi: esi, bytes: bytes))
        o.pendingBytes += bytes.count
        bytesHeld += bytes.count
        objects[key] = o
        return .storedAwaitingOTI
    }

    /// Stores one or more consecutive symbols starting at (sbn, esi) (RFC 5445 §3.2).
    private mutating func storeSymbols(_ key: ObjectKey, sbn: Int, esi: Int, bytes: ArraySlice<UInt8>) -> ReassemblyOutcome {
        guard var o = objects[key], let partition = o.partition, let oti = o.oti else { return .ignored }
        objects[key] = nil // keep `o` uniquely referenced while writing into its buffer
        var offset = bytes.startIndex
        var symbol = esi
        var stored = 0, duplicates = 0
        var collision = false, lie = bytes.isEmpty
        while offset < bytes.endIndex {
            guard let index = partition.symbolIndex(sourceBlockNumber: sbn, encodingSymbolID: symbol),
                  let range = partition.byteRange(ofSymbol: index),
                  bytes.endIndex - offset >= range.count else { lie = true; break }
            let chunk = bytes[offset..<(offset + range.count)]
            if o.have[index] {
                if !o.buffer[range].elementsEqual(chunk) { collision = true; break }
                duplicates += 1
            } else {
                o.buffer.replaceSubrange(range, with: chunk)
                o.have[index] = true
                o.haveCount += 1
                stored += 1
            }
            offset += range.count
            symbol += 1
        }
        objects[key] = o
        if collision { return reject(key, .toiCollision) }
        if lie { return reject(key, .transferLengthLie) }
        counters.symbolsStored += stored
        counters.duplicateSymbols += duplicates
        if o.haveCount == partition.sourceSymbolCount {
            let data = o.buffer
            drop(key)
            counters.objectsCompleted += 1
            remember(key, transferLength: oti.transferLength)
            return .completed(CompletedObject(key: key, objectTransmissionInformation: oti, data: data))
        }
        return stored == 0 ? .duplicate : .stored
    }

    private func maximumSize(_ key: ObjectKey) -> Int { key.toi == 0 ? limits.maximumFDTObjectSize : limits.maximumObjectSize }

    private mutating func reject(_ key: ObjectKey, _ reason: RejectionReason) -> ReassemblyOutcome {
        switch reason {
        case .toiCollision: counters.rejectedTOICollision += 1
        case .transferLengthLie: counters.rejectedTransferLengthLie += 1
        case .unknownTSI: counters.rejectedUnknownTSI += 1
        case .overLimit: counters.rejectedOverLimit += 1
        case .invalidParameters: counters.rejectedInvalidParameters += 1
        }
        drop(key)
        remember(key, transferLength: nil)
        return .rejected(reason)
    }

    private mutating func drop(_ key: ObjectKey) {
        if let o = objects.removeValue(forKey: key) { bytesHeld -= o.heldBytes }
    }

    private mutating func remember(_ key: ObjectKey, transferLength: UInt64?) {
        if finished.updateValue(transferLength, forKey: key) == nil { finishedOrder.append(key) }
        while finished.count > limits.rememberedObjects, finishedHead < finishedOrder.count {
            finished[finishedOrder[finishedHead]] = nil
            finishedHead += 1
        }
        if finishedHead > 1024 && finishedHead * 2 > finishedOrder.count {
            finishedOrder.removeFirst(finishedHead)
            finishedHead = 0
        }
    }
}
