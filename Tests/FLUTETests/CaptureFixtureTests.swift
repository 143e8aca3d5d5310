import Foundation
import XCTest
@testable import FLUTE

/// The two flute-alc captures in `../shared/fixtures`: every packet decodes as the README
/// describes, every file reassembles byte-identical (and with the README's sha256), and the
/// FDT reassembled from TOI 0 equals the `*.fdt.xml` file byte for byte.
final class CaptureFixtureTests: XCTestCase {
    struct Capture {
        let pcap: String, port: UInt16, tsi: UInt64, fdtXML: String
        /// TOI → (file in flute-files/, Content-Location, packets, B-flag packets)
        let files: [UInt64: (name: String, location: String, packets: Int)]
        let fdtPackets: Int, totalPackets: Int
    }

    static let captures = [
        Capture(pcap: "fixtures/flute-files.pcap", port: 4000, tsi: 7, fdtXML: "fixtures/flute-files.fdt.xml", files: [
            1: ("content.bin", "http://bmsc.example.com/download/content.bin", 749),
            2: ("readme.txt", "http://bmsc.example.com/download/readme.txt", 1),
            3: ("clip.mp4", "http://bmsc.example.com/download/clip.mp4", 140),
            4: ("manifest.xml", "http://bmsc.example.com/download/manifest.xml", 2),
        ], fdtPackets: 12, totalPackets: 904),
        Capture(pcap: "fixtures/flute-multicast.pcap", port: 4100, tsi: 9, fdtXML: "fixtures/flute-multicast.fdt.xml", files: [
            1: ("clip.mp4", "http://bmsc.example.com/mc/clip.mp4", 140),
            2: ("readme.txt", "http://bmsc.example.com/mc/readme.txt", 1),
        ], fdtPackets: 3, totalPackets: 144),
    ]

    /// sha256 values from the fixtures README table rows ("`name` ... `64 hex`").
    func readmeHashes() throws -> [String: String] {
        let text = String(decoding: try Shared.bytes("fixtures/README.md"), as: UTF8.self)
        var out: [String: String] = [:]
        for line in text.split(separator: "\n") where line.hasPrefix("|") {
            let ticks = line.split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.map { String($0.element) }
            guard let name = ticks.first(where: { $0.contains(".") && !$0.contains(" ") && $0.count < 40 }),
                  let hash = ticks.first(where: { $0.count == 64 && $0.allSatisfy(\.isHexDigit) }) else { continue }
            out[name] = hash
        }
        return out
    }

    func datagrams(_ c: Capture) throws -> [TestPcap.Datagram] {
        try TestPcap.udpDatagrams(try Shared.bytes(c.pcap)).filter { $0.destinationPort == c.port }
    }

    func testPacketsDecodeAsTheReadmeDescribes() throws {
        for c in Self.captures {
            let packets = try datagrams(c).map { try ALCPacket(decoding: $0.payload) }
            XCTAssertEqual(packets.count, c.totalPackets, c.pcap)
            var perTOI: [UInt64: Int] = [:], closeFlags: [UInt64: Int] = [:]
            for p in packets {
                XCTAssertEqual(p.header.tsi, c.tsi)
                XCTAssertEqual(p.header.identifierWidths, .tsi16toi16)
                XCTAssertFalse(p.header.closeSession)
                XCTAssertEqual(p.header.fti?.encodingSymbolLength, 1400)
                XCTAssertEqual(p.header.fti?.maximumSourceBlockLength, 64)
                XCTAssertEqual(p.header.cenc?.contentEncoding, .null)
                perTOI[p.header.toi, default: 0] += 1
                if p.header.closeObject { closeFlags[p.header.toi, default: 0] += 1 }
                if p.header.toi == 0 {
                    XCTAssertEqual(p.header.fdt, EXTFDT(version: 2, fdtInstanceID: 1))
                    XCTAssertTrue(p.header.headerExtensions.contains { $0.headerExtensionType == LCTHeaderExtension.hetTIME })
                }
            }
            XCTAssertEqual(perTOI[0], c.fdtPackets, c.pcap)
            XCTAssertNil(closeFlags[0])
            for (toi, f) in c.files {
                XCTAssertEqual(perTOI[toi], f.packets, "\(c.pcap) TOI \(toi)")
                XCTAssertEqual(closeFlags[toi], 1, "\(c.pcap) TOI \(toi)")
            }
        }
    }

    /// The bare reassembler, OTI from EXT_FTI only: FDT bytes and every file byte-identical.
    func testEveryObjectReassemblesByteIdentical() throws {
        let hashes = try readmeHashes()
        for c in Self.captures {
            var r = ObjectReassembler(limits: ReassemblyLimits(acceptedTSIs: [c.tsi]))
            var completed: [ObjectKey: [UInt8]] = [:]
            for d in try datagrams(c) {
                if case .completed(let o) = r.receive(try ALCPacket(decoding: d.payload), at: d.time) {
                    XCTAssertNil(completed[o.key], "completed twice")
                    completed[o.key] = o.data
                }
            }
            XCTAssertEqual(completed.count, c.files.count + 1, c.pcap)
            XCTAssertEqual(completed[ObjectKey(tsi: c.tsi, toi: 0, fdtInstanceID: 1)], try Shared.bytes(c.fdtXML), "FDT of \(c.pcap)")
            for (toi, f) in c.files {
                let data = try XCTUnwrap(completed[ObjectKey(tsi: c.tsi, toi: toi)], "\(c.pcap) TOI \(toi)")
                XCTAssertEqual(data, try Shared.bytes("fixtures/flute-files/\(f.name)"), "\(c.pcap) TOI \(toi)")
                XCTAssertEqual(TestSHA256.hex(data), try XCTUnwrap(hashes[f.name], "README hash of \(f.name)"))
            }
            XCTAssertEqual(r.counters.objectsCompleted, c.files.count + 1)
            XCTAssertEqual(r.counters.packetsForFinishedObjects, c.fdtPackets - (c.pcap.contains("multicast") ? 1 : 2))
            XCTAssertEqual(r.counters.rejectedTOICollision + r.counters.rejectedTransferLengthLie + r.counters.rejectedOverLimit, 0)
            XCTAssertEqual(r.activeObjectCount, 0)
            XCTAssertEqual(r.bytesHeld, 0)
        }
    }

    /// The session receiver: FDT parsed (Expires judged against the capture's own timestamps),
    /// files delivered with their FDT entries.
    func testReceiverDeliversFilesWithTheirFDTEntries() throws {
        for c in Self.captures {
            var rx = FLUTEReceiver(configuration: .init(reassembly: ReassemblyLimits(acceptedTSIs: [c.tsi])))
            var objects: [UInt64: FLUTEReceiver.ReceivedObject] = [:]
            var fdts = 0
            for d in try datagrams(c) {
                for event in rx.receive(datagram: d.payload, at: d.time) {
                    switch event {
                    case .object(let o): objects[o.toi] = o
                    case .fdtInstance(let tsi, let id, let instance, let outcome):
                        XCTAssertEqual(tsi, c.tsi); XCTAssertEqual(id, 1)
                        XCTAssertEqual(instance, try FDTInstance(parsing: try Shared.bytes(c.fdtXML)))
                        XCTAssertEqual(outcome, .accepted(newTOIs: instance.files.map(\.toi)))
                        fdts += 1
                    default: XCTFail("\(c.pcap): unexpected \(event)")
                    }
                }
            }
            XCTAssertEqual(fdts, 1)
            XCTAssertEqual(objects.count, c.files.count)
            for (toi, f) in c.files {
                let o = try XCTUnwrap(objects[toi])
                XCTAssertEqual(o.file?.contentLocation, f.location)
                XCTAssertEqual(o.data, try Shared.bytes("fixtures/flute-files/\(f.name)"))
            }
            XCTAssertEqual(rx.counters, FLUTEReceiver.Counters())
        }
    }

    /// Packets replayed in reverse order with every packet sent twice still reassemble.
    func testReversedAndDuplicatedCaptureStillReassembles() throws {
        let c = Self.captures[1]
        var rx = FLUTEReceiver(configuration: .init(honourExpires: false))
        var objects: [UInt64: [UInt8]] = [:]
        for d in try datagrams(c).reversed() {
            for _ in 0..<2 {
                for case .object(let o) in rx.receive(datagram: d.payload, at: 0) { objects[o.toi] = o.data }
            }
        }
        XCTAssertEqual(objects[1], try Shared.bytes("fixtures/flute-files/clip.mp4"))
        XCTAssertEqual(objects[2], try Shared.bytes("fixtures/flute-files/readme.txt"))
        // clip.mp4: 140 symbols, each sent twice; the second copy of the completing packet
        // finds a finished object. readme.txt and the FDT complete with their first packet.
        XCTAssertEqual(rx.reassembler.counters.duplicateSymbols, 139)
        XCTAssertEqual(rx.reassembler.counters.packetsForFinishedObjects, 1 + 1 + 5)
    }
}
