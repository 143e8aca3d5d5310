import XCTest
@testable import FLUTE

/// LCT/ALC/FLUTE packets against `flute.json` (decoded by Wireshark's dissector there).
final class PacketVectorTests: XCTestCase {
    func vectors() throws -> (doc: [String: Any], packets: [[String: Any]]) {
        let doc = try Shared.json("spec/vectors/flute.json")
        return (doc, try XCTUnwrap(doc["packets"] as? [[String: Any]]))
    }

    func testDecodeVectorPackets() throws {
        let packets = try vectors().packets
        XCTAssertEqual(packets.count, 3)
        let fdt = try ALCPacket(decoding: try hexDecode(try XCTUnwrap(packets[0]["packet_hex"] as? String)))
        XCTAssertEqual(fdt.header.version, 1)
        XCTAssertEqual(fdt.header.congestionControlInformation, [0, 0, 0, 0])
        XCTAssertEqual(fdt.header.identifierWidths, .tsi16toi16)
        XCTAssertEqual(fdt.header.tsi, 0x1234)
        XCTAssertEqual(fdt.header.toi, 0)
        XCTAssertFalse(fdt.header.closeObject)
        XCTAssertFalse(fdt.header.closeSession)
        XCTAssertEqual(fdt.header.encodedLength, 32)
        XCTAssertEqual(fdt.header.fdt, EXTFDT(version: 1, fdtInstanceID: 1))
        XCTAssertEqual(fdt.header.fti, EXTFTI(transferLength: 556, encodingSymbolLength: 1024, maximumSourceBlockLength: 64))
        XCTAssertEqual(fdt.payloadID, CompactNoCodePayloadID(sourceBlockNumber: 0, encodingSymbolID: 0))
        XCTAssertEqual(fdt.encodingSymbols.count, packets[0]["payload_len"] as? Int)
        XCTAssertEqual(fdt.encodingSymbols, Array(try XCTUnwrap(try vectors().doc["fdt_instance_xml"] as? String).utf8))

        let mikey = try ALCPacket(decoding: try hexDecode(try XCTUnwrap(packets[1]["packet_hex"] as? String)))
        XCTAssertEqual(mikey.header.toi, 1)
        XCTAssertTrue(mikey.header.closeObject)
        XCTAssertNil(mikey.header.fti)
        XCTAssertEqual(mikey.header.encodedLength, 12)
        XCTAssertEqual(mikey.encodingSymbols, (0..<64).map { UInt8($0) })

        let dcf = try ALCPacket(decoding: try hexDecode(try XCTUnwrap(packets[2]["packet_hex"] as? String)))
        XCTAssertEqual(dcf.header.toi, 2)
        XCTAssertTrue(dcf.header.closeObject)
        XCTAssertEqual(dcf.header.fti?.transferLength, 259)
        XCTAssertEqual(dcf.header.encodedLength, 28)
        XCTAssertEqual(dcf.encodingSymbols.count, 259)
    }

    /// The sender reproduces the three vector packets byte for byte.
    func testPacketiserReproducesVectorPackets() throws {
        let (doc, packets) = try vectors()
        let xml = Array(try XCTUnwrap(doc["fdt_instance_xml"] as? String).utf8)
        var p = ObjectPacketiser(tsi: 0x1234, encodingSymbolLength: 1024, maximumSourceBlockLength: 64, includeFTIOnFiles: false)
        let fdtPackets = try p.packets(fdtInstance: xml, fdtInstanceID: 1)
        XCTAssertEqual(fdtPackets.count, 1)
        XCTAssertEqual(hexEncode(try fdtPackets[0].encoded()), packets[0]["packet_hex"] as? String)

        let mikeyPackets = try p.packets(file: (0..<64).map { UInt8($0) }, toi: 1)
        XCTAssertEqual(mikeyPackets.count, 1)
        XCTAssertEqual(hexEncode(try mikeyPackets[0].encoded()), packets[1]["packet_hex"] as? String)

        p.includeFTIOnFiles = true
        let dcfBytes = try hexDecode(try XCTUnwrap((try Shared.json("spec/vectors/dcf.json")["vector_2_mbms_dcf"] as? [String: Any])?["dcf_hex"] as? String))
        let dcfPackets = try p.packets(file: dcfBytes, toi: 2)
        XCTAssertEqual(dcfPackets.count, 1)
        XCTAssertEqual(hexEncode(try dcfPackets[0].encoded()), packets[2]["packet_hex"] as? String)
    }

    func testHeaderRoundTripsEveryWidthVersionAndFlag() throws {
        let cases: [(IdentifierWidths, UInt64, UInt64)] = [
            (.tsi16toi16, 0xBEEF, 0xCAFE), (.tsi32toi32, 0xDEAD_BEEF, 0x1234_5678),
            (.tsi48toi48, 0xAABB_CCDD_EEFF, 0x0102_0304_0506), (.tsi32toi64, 7, 0x0102_0304_0506_0708),
        ]
        for (widths, tsi, toi) in cases {
            for version in [FLUTEVersion.v1, .v2] {
                var p = ObjectPacketiser(tsi: tsi, encodingSymbolLength: 100, maximumSourceBlockLength: 4, fluteVersion: version, identifierWidths: widths)
                p.includeFTIOnFiles = true
                for packet in try p.packets(file: Array(repeating: 0x5A, count: 950), toi: toi) + (try p.packets(fdtInstance: [1, 2, 3], fdtInstanceID: 0xF_FFFF)) {
                    let bytes = try packet.encoded()
                    let decoded = try ALCPacket(decoding: bytes)
                    XCTAssertEqual(decoded, packet)
                    XCTAssertEqual(decoded.header.identifierWidths.tsiBits, widths.tsiBits)
                    if decoded.header.toi == 0 { XCTAssertEqual(decoded.header.fdt?.version, version.rawValue) }
                }
            }
        }
        XCTAssertEqual(IdentifierWidths.smallest(tsi: 7, toi: 70000), .tsi32toi32)
        XCTAssertEqual(IdentifierWidths.smallest(tsi: 1 << 40, toi: 1), .tsi48toi48)
        XCTAssertEqual(IdentifierWidths.smallest(tsi: 1, toi: 1 << 50), .tsi32toi64)
        XCTAssertNil(IdentifierWidths.smallest(tsi: 1 << 50, toi: 1 << 50))
    }

    /// RFC 3451 SCT/ERT, EXT_TIME, EXT_NOP, EXT_CENC and a 128-bit CCI are decoded or skipped.
    func testDecodesOptionalFieldsAndUnknownExtensions() throws {
        var h = LCTHeader(identifierWidths: .tsi16toi16, tsi: 9, toi: 0, headerExtensions: [
            .fdt(EXTFDT(version: 2, fdtInstanceID: 5)), .cenc(EXTCENC(contentEncoding: .null)),
            .other(het: LCTHeaderExtension.hetTIME, content: [0x80, 0, 0, 0, 0, 1]),
            .other(het: LCTHeaderExtension.hetNOP, content: [0, 0]), .other(het: 200, content: [1, 2, 3]),
            .fti(EXTFTI(transferLength: 3, encodingSymbolLength: 1400, maximumSourceBlockLength: 64)),
        ])
        h.congestionControlInformation = [UInt8](repeating: 0xCC, count: 16)
        h.senderCurrentTime = 0x0102_0304
        h.expectedResidualTime = 0x0506_0708
        h.closeSession = true
        h.protocolSpecificIndication = 2
        let packet = ALCPacket(header: h, payloadID: CompactNoCodePayloadID(sourceBlockNumber: 0, encodingSymbolID: 0), encodingSymbols: [1, 2, 3])
        let bytes = try packet.encoded()
        XCTAssertEqual(bytes[0], 0x1E, "V=1, C=3, PSI=2")
        XCTAssertEqual(bytes[1], 0x1E, "H, T, R, A")
        let decoded = try ALCPacket(decoding: bytes)
        XCTAssertEqual(decoded, packet)
        XCTAssertEqual(decoded.header.cenc, EXTCENC(contentEncoding: .null))
    }

    func testMalformedPacketsAreTypedErrors() throws {
        let good = try hexDecode(try XCTUnwrap(try vectors().packets[0]["packet_hex"] as? String))
        func expect(_ bytes: [UInt8], _ check: (FLUTEPacketError) -> Bool, _ line: UInt = #line) {
            do {
                _ = try ALCPacket(decoding: bytes)
                XCTFail("decoded", line: line)
            } catch {
                XCTAssertTrue(check(error), "\(error)", line: line)
            }
        }
        var v2 = good; v2[0] = 0x20
        expect(v2) { if case .invalidField(.lctHeader, _, 0, _) = $0 { return true }; return false }
        var noIDs = good; noIDs[1] = 0x00
        expect(noIDs) { if case .invalidField(.lctHeader, "S/H", 1, _) = $0 { return true }; return false }
        var shortHeader = good; shortHeader[2] = 2
        expect(shortHeader) { if case .invalidField(.lctHeader, _, 2, _) = $0 { return true }; return false }
        var longHeader = good; longHeader[2] = 0xFF
        expect(longHeader) { if case .truncated(.lctHeader, _, 0, _, _) = $0 { return true }; return false }
        var zeroHEL = good; zeroHEL[17] = 0; zeroHEL[16] = 0x05
        expect(zeroHEL) { if case .invalidField(.headerExtension, _, 17, _) = $0 { return true }; return false }
        var badFDTVersion = good; badFDTVersion[13] = 0x30
        expect(badFDTVersion) { if case .invalidField(.extFDT, _, 13, _) = $0 { return true }; return false }
        var noFDT = good; noFDT[12] = 0xC8 // EXT_FDT → an unknown fixed-length HET on TOI 0
        expect(noFDT) { if case .invalidField(.extFDT, "EXT_FDT", _, _) = $0 { return true }; return false }
        var fec = good; fec[3] = 2
        expect(fec) { if case .unsupported(.lctHeader, _, 3, _) = $0 { return true }; return false }
        // Every truncation throws (or is a valid shorter header-only packet), never traps.
        for n in 0..<good.count { _ = try? ALCPacket(decoding: Array(good.prefix(n))) }
        for n in 0..<32 { XCTAssertThrowsError(try ALCPacket(decoding: Array(good.prefix(n))), "prefix \(n)") }
        // Deterministic mutation fuzz.
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> UInt64 { state ^= state << 13; state ^= state >> 7; state ^= state << 17; return state }
        for _ in 0..<20000 {
            var m = Array(good.prefix(40 + Int(next() % 40)))
            for _ in 0..<(1 + Int(next() % 3)) { m[Int(next() % 32)] = UInt8(truncatingIfNeeded: next()) }
            if let p = try? ALCPacket(decoding: m) { XCTAssertNoThrow(try p.encoded()) }
        }
    }

    /// The pacer spaces packets by their bits at the configured rate (no sleeping).
    func testSendRatePacer() throws {
        var pacer = SendRatePacer(bitsPerSecond: 8000, startTime: 100, overheadBytesPerPacket: 0)
        let times = (0..<4).map { _ in pacer.schedule([UInt8](repeating: 0, count: 100)).sendTime }
        XCTAssertEqual(times, [100, 100.1, 100.2, 100.30000000000001].map { $0 }, accuracy: 1e-9)
        var withOverhead = SendRatePacer(bitsPerSecond: 1_000_000, startTime: 0, overheadBytesPerPacket: 28)
        let p = ObjectPacketiser(tsi: 1, encodingSymbolLength: 1000, maximumSourceBlockLength: 64, includeFTIOnFiles: false)
        let scheduled = try withOverhead.schedule(try p.packets(file: [UInt8](repeating: 1, count: 2500), toi: 5))
        // 3 packets of 12 + 4 + {1000, 1000, 500} bytes + 28 overhead: 1044·8 µs, then 1044·8 µs.
        XCTAssertEqual(scheduled.map(\.sendTime), [0, 0.008352, 0.016704], accuracy: 1e-12)
        XCTAssertEqual(withOverhead.nextSendTime, 0.016704 + 544 * 8 / 1e6, accuracy: 1e-12)
    }
}

func XCTAssertEqual(_ a: [Double], _ b: [Double], accuracy: Double, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, file: file, line: line)
    for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: accuracy, file: file, line: line) }
}
