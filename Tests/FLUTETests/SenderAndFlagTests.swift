import XCTest
@testable import FLUTE

/// The paced object sender, FDT Instance numbering, close flags, and remaining refusal paths.
final class SenderAndFlagTests: XCTestCase {
    func testObjectSenderNumbersFDTInstancesAndPacesEverything() throws {
        let p = ObjectPacketiser(tsi: 0x1234, encodingSymbolLength: 1024, maximumSourceBlockLength: 64, includeFTIOnFiles: false)
        var sender = ObjectSender(packetiser: p, bitsPerSecond: 1_000_000, startTime: 50)
        let xml1 = Array("<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"1\"/>".utf8)
        let first = try sender.send(fdtInstance: xml1)
        XCTAssertEqual(first.fdtInstanceID, 1)
        XCTAssertEqual(first.packets.map(\.sendTime), [50])
        let again = try sender.send(fdtInstance: xml1)
        XCTAssertEqual(again.fdtInstanceID, 1, "a repeat keeps its FDT Instance ID")
        let file = try sender.send(file: [UInt8](repeating: 9, count: 2048), toi: 1)
        XCTAssertEqual(file.count, 2)
        let changed = try sender.send(fdtInstance: xml1 + [0x0A])
        XCTAssertEqual(changed.fdtInstanceID, 2)
        // Every packet starts when the previous one has drained at 1 Mbit/s.
        let all = first.packets + again.packets + file + changed.packets
        var t = 50.0
        for s in all {
            XCTAssertEqual(s.sendTime, t, accuracy: 1e-9)
            t += Double(s.datagram.count * 8) / 1_000_000
        }
        XCTAssertEqual(try ALCPacket(decoding: changed.packets[0].datagram).header.fdt, EXTFDT(version: 1, fdtInstanceID: 2))
        // The instance ID wraps modulo 2^20.
        var wrap = ObjectSender(packetiser: p, bitsPerSecond: 0, startTime: 0, firstFDTInstanceID: 0xF_FFFF)
        XCTAssertEqual(try wrap.send(fdtInstance: [1]).fdtInstanceID, 0xF_FFFF)
        XCTAssertEqual(try wrap.send(fdtInstance: [2]).fdtInstanceID, 0)
    }

    func testSenderProfileAndOptions() throws {
        var p = ObjectPacketiser(tsi: 5, encodingSymbolLength: 10, maximumSourceBlockLength: 3)
        let packets = try p.packets(file: (0..<95).map { UInt8($0) }, toi: 2)
        XCTAssertEqual(packets.count, 10)
        XCTAssertEqual(packets.filter(\.header.closeObject).count, 1)
        XCTAssertTrue(packets.last?.header.closeObject ?? false)
        XCTAssertEqual(packets.last?.encodingSymbols.count, 5)
        XCTAssertTrue(packets.allSatisfy { !$0.header.closeSession && $0.header.congestionControlInformation == [0, 0, 0, 0] && $0.header.fti != nil })
        // Blocks [3, 3, 2, 2] (T = 10, N = 4): SBN/ESI follow RFC 5052 §9.1.
        XCTAssertEqual(packets.map { [Int($0.payloadID?.sourceBlockNumber ?? 99), Int($0.payloadID?.encodingSymbolID ?? 99)] },
                       [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2], [2, 0], [2, 1], [3, 0], [3, 1]])
        let fdt = try p.packets(fdtInstance: [UInt8](repeating: 0x41, count: 25), fdtInstanceID: 3)
        XCTAssertTrue(fdt.allSatisfy { !$0.header.closeObject && $0.header.fdt == EXTFDT(version: 1, fdtInstanceID: 3) && $0.header.fti != nil })
        p.fluteVersion = .v2
        XCTAssertEqual(try p.packets(fdtInstance: [1], fdtInstanceID: 3).first?.header.fdt?.version, 2)
        p.closeObjectOnLastPacket = false
        XCTAssertFalse(try p.packets(file: [1], toi: 1)[0].header.closeObject)
        XCTAssertTrue(try p.packets(file: [], toi: 1).isEmpty, "empty file: FDT entry only (flute.md F10)")
        XCTAssertThrowsError(try p.packets(file: [1], toi: 0))
        XCTAssertThrowsError(try p.packets(fdtInstance: [1], fdtInstanceID: 1 << 20))
        XCTAssertThrowsError(try ObjectPacketiser(tsi: 1 << 50).packets(file: [1], toi: 1))
        XCTAssertThrowsError(try ObjectPacketiser(tsi: 1, encodingSymbolLength: 70_000).packets(file: [1], toi: 1))
    }

    func testPartitionRefusesAbsurdParametersWithoutTrapping() {
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: .max, encodingSymbolLength: 1, maximumSourceBlockLength: .max))
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: .max, encodingSymbolLength: 0xFFFF, maximumSourceBlockLength: 1))
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: 10, encodingSymbolLength: .max, maximumSourceBlockLength: 1))
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: 10, encodingSymbolLength: -1, maximumSourceBlockLength: 1))
        XCTAssertThrowsError(try SourceBlockPartition(transferLength: 1 << 30, encodingSymbolLength: 1, maximumSourceBlockLength: 1 << 20)) {
            XCTAssertEqual($0 as? BlockingError, .sourceBlockTooLong(symbols: 1 << 20))
        }
        XCTAssertNoThrow(try SourceBlockPartition(transferLength: 10, encodingSymbolLength: 1, maximumSourceBlockLength: .max))
    }

    func packet(toi: UInt64, esi: UInt16, closeObject: Bool = false, closeSession: Bool = false) -> ALCPacket {
        var h = LCTHeader(identifierWidths: .tsi16toi16, tsi: 1, toi: toi, closeObject: closeObject,
                          headerExtensions: [.fti(EXTFTI(transferLength: 30, encodingSymbolLength: 10, maximumSourceBlockLength: 8))])
        h.closeSession = closeSession
        return ALCPacket(header: h, payloadID: CompactNoCodePayloadID(sourceBlockNumber: 0, encodingSymbolID: esi),
                         encodingSymbols: [UInt8](repeating: UInt8(esi), count: 10))
    }

    /// B ends an incomplete object after a grace period for reordered packets; A does so for
    /// every object of the session. Both counted.
    func testCloseObjectAndCloseSessionFlags() {
        var r = ObjectReassembler(limits: ReassemblyLimits(objectTimeout: 60, closedObjectGracePeriod: 2))
        XCTAssertEqual(r.receive(packet(toi: 1, esi: 2, closeObject: true), at: 0), .stored)
        XCTAssertEqual(r.receive(packet(toi: 1, esi: 0), at: 1), .stored, "reordered symbol within the grace period")
        XCTAssertEqual(r.receive(packet(toi: 2, esi: 0), at: 1), .stored)
        XCTAssertEqual(r.receive(packet(toi: 3, esi: 0), at: 1), .stored)
        XCTAssertEqual(r.expire(at: 2.5), [ObjectKey(tsi: 1, toi: 1)])
        XCTAssertEqual(r.counters.objectsClosedIncomplete, 1)
        XCTAssertEqual(r.receive(packet(toi: 3, esi: 1, closeSession: true), at: 3), .stored)
        XCTAssertEqual(Set(r.expire(at: 5.5)), [ObjectKey(tsi: 1, toi: 2), ObjectKey(tsi: 1, toi: 3)])
        XCTAssertEqual(r.counters.objectsClosedIncomplete, 3)
        XCTAssertEqual(r.counters.closeSessionPackets, 1)
        XCTAssertEqual(r.counters.objectsTimedOut, 0)
        XCTAssertEqual(r.bytesHeld, 0)
        // A complete object with B set is simply completed.
        var done = ObjectReassembler()
        _ = done.receive(packet(toi: 1, esi: 0), at: 0)
        _ = done.receive(packet(toi: 1, esi: 1), at: 0)
        guard case .completed = done.receive(packet(toi: 1, esi: 2, closeObject: true), at: 0) else { return XCTFail() }
    }

    func testContentEncodedFDTAndSessionLimitAreRefusedAndCounted() throws {
        var rx = FLUTEReceiver(configuration: .init(maximumSessions: 1, honourExpires: false))
        var p = ObjectPacketiser(tsi: 1)
        let xml = try FDTInstance(expires: 1, files: []).xml()
        var packets = try p.packets(fdtInstance: xml, fdtInstanceID: 1)
        packets[0].header.headerExtensions.append(.cenc(EXTCENC(contentEncoding: .gzip)))
        guard case .fdtRefused(1, 1, let reason)? = rx.receive(datagram: try packets[0].encoded(), at: 0).first else { return XCTFail() }
        XCTAssertTrue(reason.contains("Annex A"))
        XCTAssertEqual(rx.counters.contentEncodedFDTPackets, 1)
        for packet in try p.packets(fdtInstance: xml, fdtInstanceID: 2) { _ = rx.receive(datagram: try packet.encoded(), at: 0) }
        p.tsi = 2
        for packet in try p.packets(fdtInstance: xml, fdtInstanceID: 2) { _ = rx.receive(datagram: try packet.encoded(), at: 0) }
        XCTAssertEqual(rx.fdtTables.count, 1)
        XCTAssertEqual(rx.counters.fdtInstancesOverSessionLimit, 1)
    }

    func testFDTWriterRefusesCharactersXMLCannotCarry() {
        let bad = FDTInstance(expires: 1, files: [FDTFile(toi: 1, contentLocation: "a\u{1}b")])
        XCTAssertThrowsError(try bad.xml()) {
            XCTAssertEqual($0 as? FDTWriteError, .characterNotAllowedInXML(attribute: "Content-Location", scalar: 1))
        }
    }
}
