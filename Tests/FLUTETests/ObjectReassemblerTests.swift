import XCTest
@testable import FLUTE

/// Sender → reassembler round trips, and every hostile case of the issue: counted, no crash,
/// memory bounded.
final class ObjectReassemblerTests: XCTestCase {
    struct XorShift {
        var state: UInt64
        mutating func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8(truncatingIfNeeded: next()) } }
    }

    func completed(_ outcome: ReassemblyOutcome) -> CompletedObject? {
        if case .completed(let o) = outcome { return o }
        return nil
    }

    func testRoundTripShuffledWithDuplicatesAcrossBlocksAndWidths() throws {
        var rng = XorShift(state: 42)
        for (widths, tsi, toi, length) in [(IdentifierWidths.tsi16toi16, UInt64(1), UInt64(5), 200_000),
                                           (.tsi32toi32, 0xFFFF_FFFF, 0x1_0000, 55),
                                           (.tsi48toi48, 1 << 47, 3, 1),
                                           (.tsi32toi64, 9, 1 << 40, 65536)] {
            let object = rng.bytes(length)
            let p = ObjectPacketiser(tsi: tsi, encodingSymbolLength: length == 55 ? 5 : 1400, maximumSourceBlockLength: length == 55 ? 10 : 64,
                                     fluteVersion: .v2, identifierWidths: widths)
            var packets = try p.packets(file: object, toi: toi)
            packets += packets.prefix(packets.count / 3) // duplicates
            for i in stride(from: packets.count - 1, to: 0, by: -1) { packets.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var r = ObjectReassembler()
            var result: CompletedObject?
            for packet in packets {
                let decoded = try ALCPacket(decoding: try packet.encoded())
                if let done = completed(r.receive(decoded, at: 0)) { XCTAssertNil(result); result = done }
            }
            XCTAssertEqual(result?.data, object, "\(widths)")
            XCTAssertEqual(result?.key, ObjectKey(tsi: tsi, toi: toi))
            XCTAssertEqual(r.bytesHeld, 0)
            XCTAssertEqual(r.counters.objectsCompleted, 1)
        }
    }

    func testSeveralSymbolsPerPacket() throws {
        let object = (0..<55).map { UInt8($0) }
        var header = LCTHeader(identifierWidths: .tsi16toi16, tsi: 1, toi: 1,
                               headerExtensions: [.fti(EXTFTI(transferLength: 55, encodingSymbolLength: 5, maximumSourceBlockLength: 10))])
        var r = ObjectReassembler()
        // Block 0 holds 6 symbols (30 bytes), block 1 holds 5 (25 bytes): flute.json example.
        XCTAssertEqual(r.receive(ALCPacket(header: header, payloadID: .init(sourceBlockNumber: 0, encodingSymbolID: 0), encodingSymbols: Array(object[0..<30])), at: 0), .stored)
        header.closeObject = true
        let done = completed(r.receive(ALCPacket(header: header, payloadID: .init(sourceBlockNumber: 1, encodingSymbolID: 2), encodingSymbols: Array(object[40..<55])), at: 0))
        XCTAssertNil(done)
        let last = completed(r.receive(ALCPacket(header: header, payloadID: .init(sourceBlockNumber: 1, encodingSymbolID: 0), encodingSymbols: Array(object[30..<40])), at: 0))
        XCTAssertEqual(last?.data, object)
    }

    /// Files whose packets carry no EXT_FTI wait for the FDT, then complete from held symbols.
    func testObjectsArrivingBeforeTheirFDTCompleteWhenItArrives() throws {
        let file = (0..<3000).map { UInt8(truncatingIfNeeded: $0 * 31) }
        let p = ObjectPacketiser(tsi: 3, encodingSymbolLength: 1024, maximumSourceBlockLength: 64, includeFTIOnFiles: false)
        let fdt = FDTInstance(expires: 4_102_444_800, fec: p.fdtFECParameters,
                              files: [FDTFile(toi: 1, contentLocation: "http://x/file", contentLength: 3000)])
        var rx = FLUTEReceiver()
        for packet in try p.packets(file: file, toi: 1) { XCTAssertEqual(rx.receive(datagram: try packet.encoded(), at: 1_800_000_000), []) }
        XCTAssertEqual(rx.reassembler.keysAwaitingOTI, [ObjectKey(tsi: 3, toi: 1)])
        XCTAssertEqual(rx.reassembler.bytesHeld, 3000)
        var events: [FLUTEReceiver.Event] = []
        for packet in try p.packets(fdtInstance: fdt.xml(), fdtInstanceID: 7) { events += rx.receive(datagram: try packet.encoded(), at: 1_800_000_000) }
        XCTAssertEqual(events.count, 2)
        XCTAssertEqual(events.last, .object(.init(tsi: 3, toi: 1, data: file, file: fdt.files[0])))
        XCTAssertEqual(rx.reassembler.bytesHeld, 0)
    }

    // MARK: Hostile input

    func packet(tsi: UInt64 = 1, toi: UInt64, sbn: UInt16 = 0, esi: UInt16, symbols: [UInt8], fti: EXTFTI?) -> ALCPacket {
        ALCPacket(header: LCTHeader(identifierWidths: .tsi16toi16, tsi: tsi, toi: toi, headerExtensions: fti.map { [.fti($0)] } ?? []),
                  payloadID: CompactNoCodePayloadID(sourceBlockNumber: sbn, encodingSymbolID: esi), encodingSymbols: symbols)
    }

    func testTOICollisionsAreRefusedAndCounted() throws {
        var r = ObjectReassembler()
        let fti = EXTFTI(transferLength: 20, encodingSymbolLength: 10, maximumSourceBlockLength: 4)
        XCTAssertEqual(r.receive(packet(toi: 1, esi: 0, symbols: [UInt8](repeating: 1, count: 10), fti: fti), at: 0), .stored)
        // (a) the same TOI now announced with another transfer length.
        let other = EXTFTI(transferLength: 30, encodingSymbolLength: 10, maximumSourceBlockLength: 4)
        XCTAssertEqual(r.receive(packet(toi: 1, esi: 1, symbols: [UInt8](repeating: 2, count: 10), fti: other), at: 0), .rejected(.toiCollision))
        XCTAssertEqual(r.bytesHeld, 0)
        // (b) a repeated symbol with different bytes.
        XCTAssertEqual(r.receive(packet(toi: 2, esi: 0, symbols: [UInt8](repeating: 1, count: 10), fti: fti), at: 0), .stored)
        XCTAssertEqual(r.receive(packet(toi: 2, esi: 0, symbols: [UInt8](repeating: 1, count: 10), fti: fti), at: 0), .duplicate)
        XCTAssertEqual(r.receive(packet(toi: 2, esi: 0, symbols: [UInt8](repeating: 9, count: 10), fti: fti), at: 0), .rejected(.toiCollision))
        // (c) a completed TOI re-announced with another length.
        XCTAssertNotNil(completed(r.receive(packet(toi: 3, esi: 0, symbols: [UInt8](repeating: 3, count: 5), fti: EXTFTI(transferLength: 5, encodingSymbolLength: 10, maximumSourceBlockLength: 4)), at: 0)))
        XCTAssertEqual(r.receive(packet(toi: 3, esi: 0, symbols: [UInt8](repeating: 3, count: 5), fti: EXTFTI(transferLength: 5, encodingSymbolLength: 10, maximumSourceBlockLength: 4)), at: 0), .ignored)
        XCTAssertEqual(r.receive(packet(toi: 3, esi: 0, symbols: [UInt8](repeating: 3, count: 10), fti: fti), at: 0), .rejected(.toiCollision))
        // Later packets of a refused object are dropped without new state.
        XCTAssertEqual(r.receive(packet(toi: 1, esi: 1, symbols: [UInt8](repeating: 2, count: 10), fti: fti), at: 0), .ignored)
        XCTAssertEqual(r.counters.rejectedTOICollision, 3)
        XCTAssertEqual(r.counters.packetsForFinishedObjects, 2)
        XCTAssertEqual(r.activeObjectCount, 0)
        XCTAssertEqual(r.bytesHeld, 0)
    }

    func testLyingTransferLengthsAreRefusedAndCounted() throws {
        var r = ObjectReassembler()
        // EXT_FTI says 100 bytes, the packet carries a full 1400-byte symbol.
        XCTAssertEqual(r.receive(packet(toi: 1, esi: 0, symbols: [UInt8](repeating: 0, count: 1400),
                                        fti: EXTFTI(transferLength: 100, encodingSymbolLength: 1400, maximumSourceBlockLength: 64)), at: 0),
                       .rejected(.transferLengthLie))
        // Symbols beyond the announced object.
        XCTAssertEqual(r.receive(packet(toi: 2, sbn: 3, esi: 0, symbols: [UInt8](repeating: 0, count: 10),
                                        fti: EXTFTI(transferLength: 20, encodingSymbolLength: 10, maximumSourceBlockLength: 4)), at: 0),
                       .rejected(.transferLengthLie))
        // EXT_FTI disagrees with the FDT.
        let fdtOTI = ObjectTransmissionInformation(transferLength: 259, encodingSymbolLength: 1024, maximumSourceBlockLength: 64)
        XCTAssertEqual(r.receive(packet(toi: 3, esi: 0, symbols: [UInt8](repeating: 0, count: 300),
                                        fti: EXTFTI(transferLength: 300, encodingSymbolLength: 1024, maximumSourceBlockLength: 64)), at: 0, fdtOTI: fdtOTI),
                       .rejected(.transferLengthLie))
        // A huge claimed length is refused before any allocation.
        XCTAssertEqual(r.receive(packet(toi: 4, esi: 0, symbols: [1], fti: EXTFTI(transferLength: (1 << 48) - 1, encodingSymbolLength: 1, maximumSourceBlockLength: 1)), at: 0),
                       .rejected(.overLimit))
        XCTAssertEqual(r.receive(packet(toi: 5, esi: 0, symbols: [1], fti: EXTFTI(transferLength: 10, encodingSymbolLength: 0, maximumSourceBlockLength: 1)), at: 0),
                       .rejected(.invalidParameters))
        // Started from EXT_FTI, then the FDT describes the TOI with another length.
        XCTAssertEqual(r.receive(packet(toi: 6, esi: 0, symbols: [UInt8](repeating: 0, count: 10),
                                        fti: EXTFTI(transferLength: 20, encodingSymbolLength: 10, maximumSourceBlockLength: 4)), at: 0), .stored)
        XCTAssertEqual(r.receive(packet(toi: 6, esi: 1, symbols: [UInt8](repeating: 0, count: 10), fti: nil), at: 0,
                                 fdtOTI: ObjectTransmissionInformation(transferLength: 30, encodingSymbolLength: 10, maximumSourceBlockLength: 4)),
                       .rejected(.transferLengthLie))
        XCTAssertEqual(r.counters.rejectedTransferLengthLie, 4)
        XCTAssertEqual(r.counters.rejectedOverLimit, 1)
        XCTAssertEqual(r.counters.rejectedInvalidParameters, 1)
        XCTAssertEqual(r.bytesHeld, 0)
    }

    func testUnknownTSIIsCountedAndHoldsNothing() throws {
        var rx = FLUTEReceiver(configuration: .init(reassembly: ReassemblyLimits(acceptedTSIs: [7])))
        let p = ObjectPacketiser(tsi: 8)
        for packet in try p.packets(file: [UInt8](repeating: 1, count: 5000), toi: 1) {
            XCTAssertEqual(rx.receive(datagram: try packet.encoded(), at: 0), [.rejected(ObjectKey(tsi: 8, toi: 1), .unknownTSI)])
        }
        XCTAssertEqual(rx.reassembler.counters.rejectedUnknownTSI, 5)
        XCTAssertEqual(rx.reassembler.activeObjectCount, 0)
        XCTAssertEqual(rx.reassembler.bytesHeld, 0)
    }

    /// Objects that never complete: bounded by the concurrency and byte limits, dropped on timeout.
    func testNeverCompletingObjectsStayBoundedAndTimeOut() throws {
        let limits = ReassemblyLimits(maximumObjectSize: 1 << 20, maximumConcurrentObjects: 16, maximumTotalBytes: 4 << 20, objectTimeout: 10)
        var r = ObjectReassembler(limits: limits)
        let fti = EXTFTI(transferLength: 300_000, encodingSymbolLength: 1000, maximumSourceBlockLength: 64)
        var maxHeld = 0
        for toi in 1...1000 {
            _ = r.receive(packet(toi: UInt64(toi), esi: 0, symbols: [UInt8](repeating: 7, count: 1000), fti: fti), at: 0)
            maxHeld = max(maxHeld, r.bytesHeld)
        }
        XCTAssertLessThanOrEqual(maxHeld, limits.maximumTotalBytes)
        XCTAssertLessThanOrEqual(r.activeObjectCount, 16)
        // 13 objects of 300 000 (+300 bitmap) bytes fit in 4 MiB; the rest are refused.
        XCTAssertEqual(r.activeObjectCount, 13)
        XCTAssertEqual(r.counters.rejectedOverLimit, 1000 - 13)
        // Symbols without any OTI (no EXT_FTI, no FDT) are held only within the same bounds.
        for toi in 2000..<2100 { _ = r.receive(packet(toi: UInt64(toi), esi: 0, symbols: [UInt8](repeating: 1, count: 1000), fti: nil), at: 5) }
        XCTAssertLessThanOrEqual(r.bytesHeld, limits.maximumTotalBytes)
        XCTAssertLessThanOrEqual(r.activeObjectCount, 16)
        // Time passes (a parameter, no clock): everything idle is dropped and counted.
        XCTAssertEqual(r.expire(at: 9).count, 0)
        XCTAssertEqual(r.expire(at: 14).count, 13)
        XCTAssertEqual(r.expire(at: 100).count, 3)
        XCTAssertEqual(r.counters.objectsTimedOut, 16)
        XCTAssertEqual(r.activeObjectCount, 0)
        XCTAssertEqual(r.bytesHeld, 0)
        // Room again: a new object completes.
        XCTAssertNotNil(completed(r.receive(packet(toi: 5000, esi: 0, symbols: [1, 2, 3], fti: EXTFTI(transferLength: 3, encodingSymbolLength: 1000, maximumSourceBlockLength: 64)), at: 101)))
    }

    /// Random packet streams (random TSI/TOI, SBN/ESI, EXT_FTI or none, flags, sizes):
    /// the bounds hold after every packet and everything drains on timeout.
    func testRandomPacketStreamsKeepTheBounds() throws {
        let limits = ReassemblyLimits(maximumObjectSize: 200_000, maximumConcurrentObjects: 8, maximumTotalBytes: 500_000,
                                      objectTimeout: 5, rememberedObjects: 64, closedObjectGracePeriod: 1)
        var r = ObjectReassembler(limits: limits)
        var rng = XorShift(state: 7)
        var now = 0.0
        for _ in 0..<20_000 {
            now += Double(rng.next() % 100) / 1000
            let toi = rng.next() % 24
            let e = Int(1 + rng.next() % 300)
            let fti: EXTFTI? = rng.next() % 4 == 0 ? nil : EXTFTI(transferLength: rng.next() % 400_000, encodingSymbolLength: UInt16(e),
                                                                  maximumSourceBlockLength: UInt32(1 + rng.next() % 70))
            var h = LCTHeader(identifierWidths: .tsi16toi16, tsi: rng.next() % 3, toi: toi, closeObject: rng.next() % 50 == 0,
                              headerExtensions: (toi == 0 ? [.fdt(EXTFDT(version: 1, fdtInstanceID: UInt32(rng.next() % 3)))] : []) + (fti.map { [.fti($0)] } ?? []))
            h.closeSession = rng.next() % 500 == 0
            let p = ALCPacket(header: h, payloadID: CompactNoCodePayloadID(sourceBlockNumber: UInt16(rng.next() % 4), encodingSymbolID: UInt16(rng.next() % 70)),
                              encodingSymbols: rng.bytes(Int(rng.next() % UInt64(2 * e + 1))))
            _ = r.receive(p, at: now)
            XCTAssertLessThanOrEqual(r.bytesHeld, limits.maximumTotalBytes)
            XCTAssertLessThanOrEqual(r.activeObjectCount, limits.maximumConcurrentObjects)
        }
        r.expire(at: now + 10)
        XCTAssertEqual(r.activeObjectCount, 0)
        XCTAssertEqual(r.bytesHeld, 0)
        let c = r.counters
        XCTAssertEqual(c.packets, 20_000)
        XCTAssertGreaterThan(c.rejectedTransferLengthLie + c.rejectedTOICollision + c.rejectedOverLimit + c.objectsTimedOut, 0)
    }

    func testTimeoutsAlsoRunLazilyFromReceive() throws {
        var r = ObjectReassembler(limits: ReassemblyLimits(maximumConcurrentObjects: 2, objectTimeout: 10))
        let fti = EXTFTI(transferLength: 20, encodingSymbolLength: 10, maximumSourceBlockLength: 4)
        _ = r.receive(packet(toi: 1, esi: 0, symbols: [UInt8](repeating: 0, count: 10), fti: fti), at: 0)
        _ = r.receive(packet(toi: 2, esi: 0, symbols: [UInt8](repeating: 0, count: 10), fti: fti), at: 0)
        XCTAssertEqual(r.receive(packet(toi: 3, esi: 0, symbols: [UInt8](repeating: 0, count: 10), fti: fti), at: 5), .rejected(.overLimit))
        XCTAssertEqual(r.receive(packet(toi: 4, esi: 0, symbols: [UInt8](repeating: 0, count: 10), fti: fti), at: 20), .stored)
        XCTAssertEqual(r.counters.objectsTimedOut, 2)
        XCTAssertEqual(r.activeObjectCount, 1)
    }

    /// Hostile FDT Instances on TOI 0 are refused and counted by the receiver.
    func testHostileFDTObjectsAreRefusedAndCounted() throws {
        var rx = FLUTEReceiver(configuration: .init(fdtLimits: FDTParserLimits(maximumBytes: 64 << 10), honourExpires: false))
        let p = ObjectPacketiser(tsi: 1, encodingSymbolLength: 1400, maximumSourceBlockLength: 64)
        let laughs = Array("<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]><FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\"/>".utf8)
        var events: [FLUTEReceiver.Event] = []
        for packet in try p.packets(fdtInstance: laughs, fdtInstanceID: 1) { events += rx.receive(datagram: try packet.encoded(), at: 0) }
        let oversized = Array("<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\">".utf8) + [UInt8](repeating: 0x20, count: 100_000) + Array("</FDT-Instance>".utf8)
        for packet in try p.packets(fdtInstance: oversized, fdtInstanceID: 2) { events += rx.receive(datagram: try packet.encoded(), at: 0) }
        let garbage = [UInt8](repeating: 0xFF, count: 3000)
        for packet in try p.packets(fdtInstance: garbage, fdtInstanceID: 3) { events += rx.receive(datagram: try packet.encoded(), at: 0) }
        XCTAssertEqual(events.count, 3)
        guard case .fdtRefused(1, 1, let r1) = events[0], case .fdtRefused(1, 2, let r2) = events[1], case .fdtRefused(1, 3, _) = events[2] else {
            return XCTFail("\(events)")
        }
        XCTAssertTrue(r1.contains("DOCTYPE"), r1)
        XCTAssertTrue(r2.contains("exceeds the limit"), r2)
        XCTAssertEqual(rx.counters.fdtInstancesRefused, 3)
        // An FDT object beyond maximumFDTObjectSize is refused from its first packet's EXT_FTI,
        // before anything is buffered.
        let huge = [UInt8](repeating: 0x20, count: (1 << 20) + 5000)
        let hugePackets = try p.packets(fdtInstance: huge, fdtInstanceID: 4)
        XCTAssertEqual(rx.receive(datagram: try hugePackets[0].encoded(), at: 0), [.rejected(ObjectKey(tsi: 1, toi: 0, fdtInstanceID: 4), .overLimit)])
        XCTAssertEqual(rx.receive(datagram: try hugePackets[1].encoded(), at: 0), [])
        XCTAssertEqual(rx.reassembler.counters.rejectedOverLimit, 1)
        XCTAssertTrue(rx.fdtTables[1]?.files.isEmpty ?? true)
        XCTAssertEqual(rx.reassembler.bytesHeld, 0)
        // Malformed datagrams are counted too.
        XCTAssertEqual(rx.receive(datagram: [0x10, 0x10], at: 0).count, 1)
        XCTAssertEqual(rx.counters.malformedPackets, 1)
    }

    /// Conflicting FDT Instances and colliding File entries arrive through the receiver.
    func testConflictingFDTInstancesThroughTheReceiver() throws {
        var rx = FLUTEReceiver(configuration: .init(honourExpires: true))
        let p = ObjectPacketiser(tsi: 1, encodingSymbolLength: 1400, maximumSourceBlockLength: 64)
        let a = FDTInstance(expires: 4_102_444_800, fec: p.fdtFECParameters, files: [FDTFile(toi: 1, contentLocation: "http://x/a", contentLength: 10)])
        var b = a
        b.files = [FDTFile(toi: 1, contentLocation: "http://x/b", contentLength: 10), FDTFile(toi: 2, contentLocation: "http://x/c", contentLength: 1)]
        var outcomes: [FDTTable.InsertOutcome] = []
        for (instance, id) in [(a, UInt32(1)), (b, 1), (b, 2)] {
            for packet in try p.packets(fdtInstance: instance.xml(), fdtInstanceID: id) {
                for case .fdtInstance(_, _, _, let outcome) in rx.receive(datagram: try packet.encoded(), at: 1_800_000_000) { outcomes.append(outcome) }
            }
        }
        // Instance 1 re-sent with other content is a TOI-0 collision at the transport level
        // (different transfer length) or an FDT conflict; instance 2's TOI 1 entry collides.
        XCTAssertEqual(outcomes.first, .accepted(newTOIs: [1]))
        XCTAssertEqual(outcomes.last, .accepted(newTOIs: [2]))
        XCTAssertEqual(rx.fdtTables[1]?.entry(forTOI: 1)?.file.contentLocation, "http://x/a")
        XCTAssertEqual(rx.fdtTables[1]?.counters.toiCollisions, 1)
        XCTAssertEqual(rx.reassembler.counters.rejectedTOICollision + (rx.fdtTables[1]?.counters.instancesConflicting ?? 0), 1)
        // An expired instance is refused.
        var old = a
        old.expires = 100
        for packet in try p.packets(fdtInstance: old.xml(), fdtInstanceID: 9) {
            for case .fdtInstance(_, _, _, let outcome) in rx.receive(datagram: try packet.encoded(), at: 1_800_000_000) { XCTAssertEqual(outcome, .expired) }
        }
        XCTAssertEqual(rx.fdtTables[1]?.counters.instancesExpired, 1)
    }
}
