import Foundation
import TestSupport
import XCTest
@testable import PacketIO

final class PacketIOTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures")

    func fixture(_ name: String) throws -> String {
        let path = Self.fixtures.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) not present (tests expect ../shared beside the checkout)") }
        return path
    }

    func tempPath(_ name: String) -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-packetio-\(getpid())")
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent(name).path
    }

    struct FlowCount: Hashable { var packets = 0; var bytes = 0 }

    func flows(_ path: String) throws -> (frames: Int, flows: [String: FlowCount]) {
        let reader = try CaptureReader(path: path)
        var flows: [String: FlowCount] = [:]
        var frames = 0
        let link = try XCTUnwrap(reader.linkType)
        while let f = try reader.next() {
            frames += 1
            guard case .udp(let u) = FrameParser.classify(f.bytes.baseAddress!, length: f.bytes.count, linkType: link) else {
                XCTFail("frame \(frames) is not UDP"); continue
            }
            let key = "\(u.source)>\(u.destination)"
            flows[key, default: FlowCount()].packets += 1
            flows[key, default: FlowCount()].bytes += u.payloadLength
        }
        return (frames, flows)
    }

    /// Frame and per-flow counts equal the tables of ../shared/fixtures/README.md (made by tcpdump).
    func testRTPFixturesParseToTheDocumentedFlows() throws {
        let h264 = try flows(try fixture("rtp-h264-aac.pcap"))
        XCTAssertEqual(h264.frames, 5284)
        XCTAssertEqual(h264.flows["127.0.0.10:5004>127.0.0.20:5004"], FlowCount(packets: 4335, bytes: 3_837_929))
        XCTAssertEqual(h264.flows["127.0.0.10:5006>127.0.0.20:5006"], FlowCount(packets: 939, bytes: 255_697))
        XCTAssertEqual(h264.flows["127.0.0.10:5005>127.0.0.20:5005"], FlowCount(packets: 5, bytes: 408))
        let wrap = try flows(try fixture("rtp-seqwrap.pcap"))
        XCTAssertEqual(wrap.frames, 3492)
        XCTAssertEqual(wrap.flows["127.0.0.10:5010>127.0.0.20:5010"], FlowCount(packets: 3486, bytes: 803_762))
        let mc = try flows(try fixture("rtp-multicast.pcap"))
        XCTAssertEqual(mc.frames, 1822)
        XCTAssertEqual(mc.flows["127.0.0.10:5020>239.255.10.1:5020"], FlowCount(packets: 1252, bytes: 495_562))
        XCTAssertEqual(mc.flows["127.0.0.10:5023>239.255.10.1:5023"], FlowCount(packets: 3, bytes: 248))
    }

    /// Copying a capture frame by frame gives the same frames and timestamps (µs precision).
    func testReadWriteCopyIsFaithful() throws {
        let input = try fixture("rtp-seqwrap.pcap")
        let output = tempPath("copy.pcap")
        let reader = try CaptureReader(path: input)
        let writer = try CaptureWriter(path: output, dataLinkType: reader.dataLinkType)
        var original: [(UInt64, [UInt8])] = []
        while let f = try reader.next() {
            original.append((f.timestampNanoseconds, Array(f.bytes)))
            writer.write(timestampNanoseconds: f.timestampNanoseconds, bytes: f.bytes)
        }
        writer.close()
        let again = try CaptureReader(path: output)
        var i = 0
        while let f = try again.next() {
            XCTAssertEqual(Array(f.bytes), original[i].1)
            XCTAssertEqual(f.timestampNanoseconds, original[i].0 / 1000 * 1000)
            i += 1
        }
        XCTAssertEqual(i, original.count)
        // Byte-identical to the tcpdump original (same header, same records).
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: output)), try Data(contentsOf: URL(fileURLWithPath: input)))
    }

    /// After growing payloads in place, tshark (an independent implementation) finds every IP
    /// header checksum and UDP checksum good, IPv4 and IPv6, over four link types.
    func testResizedAndBuiltFramesHaveChecksumsTsharkAccepts() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/tshark") else { throw XCTSkip("tshark not installed") }
        let src4 = TransportAddress(try XCTUnwrap(IPAddress("10.1.2.3")), 5004)
        let dst4 = TransportAddress(try XCTUnwrap(IPAddress("239.255.10.1")), 5004)
        let src6 = TransportAddress(try XCTUnwrap(IPAddress("2001:db8::1")), 5004)
        let dst6 = TransportAddress(try XCTUnwrap(IPAddress("ff0e::10:1")), 5004)
        for link in [LinkType.ethernet, .linuxSLL, .linuxSLL2, .rawLinux] {
            let path = tempPath("checksums-\(link.rawValue).pcap")
            let writer = try CaptureWriter(path: path, dataLinkType: link.rawValue)
            var written = 0
            for (i, (s, d)) in [(src4, dst4), (src6, dst6)].enumerated() {
                for n in [0, 1, 13, 160, 1201] {
                    let payload = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) }
                    var frame = UDPFrameEditor.buildFrame(linkType: link, template: nil, source: s, destination: d, hopLimit: 7, payload: payload)
                    writer.write(timestampNanoseconds: UInt64(written) * 1_000_000, bytes: frame)
                    written += 1
                    let original = frame
                    // Grow the payload by 20 bytes in place, as SRTP protection does.
                    frame += [UInt8](repeating: 0xAB, count: 20)
                    let grown = try frame.withUnsafeMutableBytes { (b) -> Int in
                        guard case .udp(var u) = FrameParser.classify(b.baseAddress!, length: b.count - 20, linkType: link) else {
                            throw XCTSkip("built frame did not parse")
                        }
                        XCTAssertEqual(u.payloadLength, n)
                        XCTAssertEqual(u.destination, d)
                        XCTAssertEqual(u.hopLimit, 7)
                        return UDPFrameEditor.resizePayload(b.baseAddress!, frame: &u, newPayloadLength: n + 20)
                    }
                    XCTAssertEqual(grown, frame.count)
                    writer.write(timestampNanoseconds: UInt64(written) * 1_000_000, bytes: frame)
                    written += 1
                    // The same growth with the UDP checksum deferred, then filled while the frame
                    // is copied out (replay's output layout): the same bytes, checked by tshark too.
                    var deferred = original + [UInt8](repeating: 0xAB, count: 20)
                    let copied = try deferred.withUnsafeMutableBytes { (b) -> [UInt8] in
                        guard case .udp(var u) = FrameParser.classify(b.baseAddress!, length: b.count - 20, linkType: link) else {
                            throw XCTSkip("built frame did not parse")
                        }
                        let total = UDPFrameEditor.resizePayload(b.baseAddress!, frame: &u, newPayloadLength: n + 20, deferringChecksum: true)
                        var out = [UInt8](repeating: 0, count: total)
                        out.withUnsafeMutableBytes { UDPFrameEditor.copyFillingUDPChecksum(b.baseAddress!, frame: u, length: total, to: $0.baseAddress!) }
                        return out
                    }
                    XCTAssertEqual(copied, frame, "link \(link), \(n) octets")
                    writer.write(timestampNanoseconds: UInt64(written) * 1_000_000, bytes: copied)
                    written += 1
                }
            }
            writer.close()
            let out = try tshark(["-r", path, "-o", "ip.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE",
                                  "-T", "fields", "-e", "ip.checksum.status", "-e", "udp.checksum.status", "-e", "_ws.malformed"])
            let lines = out.split(separator: "\n")
            XCTAssertEqual(lines.count, written, "link \(link)")
            for (i, line) in lines.enumerated() {
                let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                // ip.checksum.status is empty for IPv6; 1 = good.
                XCTAssertTrue(fields[0] == "" || fields[0] == "1", "link \(link) frame \(i): \(line)")
                XCTAssertEqual(fields[1], "1", "link \(link) frame \(i): \(line)")
                XCTAssertEqual(fields.count > 2 ? fields[2] : "", "", "malformed: \(line)")
            }
        }
    }

    func tshark(_ args: [String]) throws -> String { try Tool.run(Tool.tshark, args).stdout }

    func classify(_ bytes: [UInt8], _ link: LinkType = .ethernet) -> FrameClassification {
        bytes.withUnsafeBytes { FrameParser.classify($0.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!, length: $0.count, linkType: link) }
    }

    func ipv4Frame(payload: [UInt8] = [1, 2, 3, 4]) -> [UInt8] {
        UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: TransportAddress(.v4(0x0A00_0001), 1000),
                                  destination: TransportAddress(.v4(0x0A00_0002), 2000), hopLimit: 64, payload: payload)
    }

    func testMalformedAndPassThroughFrames() {
        let good = ipv4Frame()
        guard case .udp = classify(good) else { return XCTFail("valid frame") }
        XCTAssertEqual(classify(Array(good.prefix(10))), .malformed(.truncated(layer: "Ethernet", offset: 0, needed: 14, available: 10)))
        XCTAssertEqual(classify(Array(good.prefix(30))), .malformed(.truncated(layer: "IPv4", offset: 14, needed: 20, available: 16)))
        var badIHL = good; badIHL[14] = 0x43
        XCTAssertEqual(classify(badIHL), .malformed(.badIPv4HeaderLength(offset: 14, ihl: 3)))
        var badVersion = good; badVersion[14] = 0x65
        XCTAssertEqual(classify(badVersion), .malformed(.badIPVersion(offset: 14, version: 6)))
        var longIP = good; longIP[16] = 0x05   // total length 0x05xx > captured
        if case .malformed(.ipLengthMismatch) = classify(longIP) {} else { XCTFail("IP length lie") }
        var fragment = good; fragment[20] = 0x20   // MF set
        XCTAssertEqual(classify(fragment), .passThrough(.ipFragment))
        var laterFragment = good; laterFragment[20] = 0x00; laterFragment[21] = 0x10
        XCTAssertEqual(classify(laterFragment), .passThrough(.ipFragment))
        var tcp = good; tcp[23] = 6
        XCTAssertEqual(classify(tcp), .passThrough(.notUDP))
        var arp = good; arp[12] = 0x08; arp[13] = 0x06
        XCTAssertEqual(classify(arp), .passThrough(.notIP))
        var udpLie = good; udpLie[38] = 0x10
        if case .malformed(.badUDPLength) = classify(udpLie) {} else { XCTFail("UDP length lie") }
        var udpShort = good; udpShort[38] = 0; udpShort[39] = 4
        XCTAssertEqual(classify(udpShort), .malformed(.badUDPLength(offset: 38, stated: 4, available: 12)))
        XCTAssertEqual(classify([], .raw), .malformed(.truncated(layer: "IP", offset: 0, needed: 1, available: 0)))
        // Zero-length UDP payload is a valid datagram.
        if case .udp(let u) = classify(ipv4Frame(payload: [])) { XCTAssertEqual(u.payloadLength, 0) } else { XCTFail("empty UDP") }
        // Ethernet trailer padding after the IP datagram is excluded.
        if case .udp(let u) = classify(ipv4Frame(payload: [9]) + [0, 0, 0, 0]) { XCTAssertEqual(u.datagramEnd, 14 + 20 + 8 + 1) } else { XCTFail("padding") }
    }

    func testIPv4OptionsVLANAndIPv6ExtensionHeaders() {
        // IPv4 with 4 octets of options (IHL 6): UDP found after them.
        var f = ipv4Frame(payload: [7, 7])
        f.insert(contentsOf: [0x94, 0x04, 0, 0], at: 34)   // Router Alert
        f[14] = 0x46
        f[17] = UInt8(f.count - 14)
        if case .udp(let u) = classify(f) { XCTAssertEqual(u.udpOffset, 38); XCTAssertEqual(u.payloadLength, 2) } else { XCTFail("options") }
        // 802.1Q tag.
        var v = ipv4Frame(payload: [5])
        v.insert(contentsOf: [0x81, 0x00, 0x00, 0x64], at: 12)
        if case .udp(let u) = classify(v) { XCTAssertEqual(u.ipOffset, 18) } else { XCTFail("VLAN") }
        // IPv6 with a hop-by-hop header (8 octets) before UDP.
        let s6 = TransportAddress(.v6(0x2001_0db8_0000_0000, 1), 1), d6 = TransportAddress(.v6(0xff0e_0000_0000_0000, 0x10_0001), 2)
        var six = UDPFrameEditor.buildFrame(linkType: .raw, template: nil, source: s6, destination: d6, hopLimit: 1, payload: [1, 2, 3])
        six.insert(contentsOf: [17, 0, 0, 0, 0, 0, 0, 0], at: 40)
        six[6] = 0   // next header: hop-by-hop
        six[5] = UInt8(six.count - 40)
        if case .udp(let u) = classify(six, .raw) { XCTAssertEqual(u.udpOffset, 48); XCTAssertEqual(u.destination, d6) } else { XCTFail("IPv6 ext") }
        six[6] = 44
        XCTAssertEqual(classify(six, .raw), .passThrough(.ipFragment))
    }

    func testRandomBytesNeverTrap() {
        var state: UInt64 = 0x1234
        for i in 0..<50_000 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let n = Int(state >> 58) + (i % 3 == 0 ? 40 : 0)
            var bytes = (0..<n).map { j in UInt8(truncatingIfNeeded: (state >> UInt64(j % 56)) &+ UInt64(j)) }
            if i % 2 == 0, bytes.count > 20 { bytes[14] = 0x45 }
            for link in LinkType.allCases { _ = classify(bytes, link) }
        }
    }

    func testAddressParsing() {
        XCTAssertEqual(IPAddress("239.255.10.1"), .v4(0xEFFF_0A01))
        XCTAssertEqual(IPAddress("ff0e::10:1")?.description, "ff0e::10:1")
        XCTAssertEqual(IPAddress("2001:db8::1")?.description, "2001:db8::1")
        XCTAssertEqual(IPAddress("::1"), .v6(0, 1))
        for bad in ["256.1.1.1", "1.2.3", "1..2.3", "1:2:::3", "g::1", "1:2:3:4:5:6:7:8:9", ""] {
            XCTAssertNil(IPAddress(bad), bad)
        }
        XCTAssertEqual(TransportAddress("239.255.10.1:5020")?.port, 5020)
        XCTAssertEqual(TransportAddress("[ff0e::1]:5000")?.description, "[ff0e::1]:5000")
        XCTAssertNil(TransportAddress("1.2.3.4"))
        XCTAssertNil(TransportAddress("1.2.3.4:70000"))
        XCTAssertTrue(IPAddress("239.1.1.1")?.isMulticast ?? false)
        XCTAssertFalse(IPAddress("127.0.0.1")?.isMulticast ?? true)
    }

    func testReaderReportsMissingAndCorruptFiles() throws {
        XCTAssertThrowsError(try CaptureReader(path: "/nonexistent/x.pcap")) { e in
            XCTAssertTrue("\(e)".contains("/nonexistent/x.pcap"))
        }
        let path = tempPath("corrupt.pcap")
        // Valid global header (Ethernet, snaplen 65535), then a record claiming a 16 MiB frame.
        let header: [UInt8] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]
        let record: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xAA]
        try Data(header + record).write(to: URL(fileURLWithPath: path))
        let r = try CaptureReader(path: path)
        XCTAssertThrowsError(try r.next())
    }
}

/// pcapng input (converted by Wireshark's editcap, an independent writer) reads back the same
/// frames and timestamps as the classic pcap.
final class PcapngTests: XCTestCase {
    func testPcapngInputMatchesClassicPcap() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/editcap") else { throw XCTSkip("editcap (wireshark-common) not installed") }
        let classic = PacketIOTests.fixtures.appendingPathComponent("rtp-seqwrap.pcap").path
        guard FileManager.default.fileExists(atPath: classic) else { throw XCTSkip("\(classic) not present") }
        let ng = FileManager.default.temporaryDirectory.appendingPathComponent("seqwrap-\(getpid()).pcapng").path
        XCTAssertEqual(try Tool.run("/usr/bin/editcap", ["-F", "pcapng", classic, ng]).status, 0)
        let a = try CaptureReader(path: classic), b = try CaptureReader(path: ng)
        XCTAssertEqual(b.linkType, .ethernet)
        var n = 0
        while let fa = try a.next() {
            let bytesA = Array(fa.bytes), timeA = fa.timestampNanoseconds
            let fb = try XCTUnwrap(try b.next())
            XCTAssertEqual(Array(fb.bytes), bytesA)
            XCTAssertEqual(fb.timestampNanoseconds, timeA)
            n += 1
        }
        XCTAssertNil(try b.next())
        XCTAssertEqual(n, 3492)
    }
}
