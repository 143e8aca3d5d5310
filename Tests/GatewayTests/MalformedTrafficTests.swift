import Foundation
import Gateway
import PacketIO
import XCTest

/// A capture of malformed traffic goes through `replay` without a crash; every drop is counted
/// under its reason and good packets around the bad ones are still protected.
final class MalformedTrafficTests: XCTestCase {
    func testMalformedCaptureIsCountedPerReason() throws {
        let gw = try TestGateway()
        let src = TransportAddress(.v4(0x7F00_000A), 5004)
        let rtp = TransportAddress(.v4(0x7F00_0014), 5004)       // session "video"
        let rtcp = TransportAddress(.v4(0x7F00_0014), 5005)
        func frame(_ payload: [UInt8], to d: TransportAddress = rtp) -> [UInt8] {
            UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: src, destination: d, hopLimit: 64, payload: payload)
        }
        func goodRTP(_ seq: UInt16) -> [UInt8] {
            [0x80, 96, UInt8(seq >> 8), UInt8(seq & 0xFF), 0, 0, 0, 1, 0x1A, 0x2B, 0x3C, 0x4D] + [UInt8](repeating: 0x42, count: 100)
        }
        var frames: [[UInt8]] = []
        frames.append(frame(goodRTP(1)))
        frames.append(frame([0x80, 96, 0, 2, 0]))                       // truncated RTP
        frames.append(frame([0x40] + goodRTP(3).dropFirst()))            // version 1
        frames.append(frame([0x8F, 96, 0, 4] + [UInt8](repeating: 0, count: 20)))  // 15 CSRCs announced
        frames.append(frame([]))                                          // zero-length UDP payload
        var garbage = SystemRandomNumberGenerator()
        frames.append(frame([0x00] + (0..<200).map { _ in UInt8.random(in: 0...255, using: &garbage) }))  // garbage (version 0)
        // IPv4 options (Router Alert): still a valid datagram, protected.
        var options = frame(goodRTP(5))
        options.insert(contentsOf: [0x94, 0x04, 0, 0], at: 34)
        options[14] = 0x46
        let ipLength = options.count - 14
        options[16] = UInt8(ipLength >> 8); options[17] = UInt8(ipLength & 0xFF)
        options[24] = 0; options[25] = 0
        frames.append(options)
        var fragment = frame(goodRTP(6))
        fragment[20] = 0x20                                               // MF: first fragment
        frames.append(fragment)
        frames.append(Array(frame(goodRTP(7)).prefix(10)))                // truncated Ethernet frame
        var udpLie = frame(goodRTP(8))
        udpLie[38] = 0xFF                                                 // UDP length beyond the datagram
        frames.append(udpLie)
        frames.append(frame([0x81, 200, 0, 1], to: rtcp))                 // RTCP shorter than its header
        frames.append(frame(goodRTP(9)))

        let input = gw.path("malformed.pcap")
        let w = try CaptureWriter(path: input, dataLinkType: LinkType.ethernet.rawValue)
        for (i, f) in frames.enumerated() { w.write(timestampNanoseconds: 1_795_000_000_000_000_000 + UInt64(i) * 1_000_000, bytes: f) }
        w.close()
        let output = gw.path("out.pcap")
        let report = try gw.replay(input, output: output)
        let video = try XCTUnwrap(report.statistics.sessions.first { $0.name == "video" })
        XCTAssertEqual(video.drops["too_short"], 3)       // truncated RTP, empty payload, 4-byte RTCP
        XCTAssertEqual(video.drops["bad_version"], 2)     // version 1, garbage with version 0
        XCTAssertEqual(video.drops["csrc_overrun"], 1)
        XCTAssertEqual(video.rtpPackets, 3)               // SEQ 1, 5 (IPv4 options), 9
        XCTAssertEqual(video.rtcpPackets, 0)
        XCTAssertEqual(report.statistics.passedThrough["ip_fragment"], 1)
        XCTAssertEqual(report.statistics.dropped["truncated_frame"], 1)
        XCTAssertEqual(report.statistics.dropped["bad_udp_length"], 1)
        let out = try readFrames(output)
        XCTAssertEqual(out.filter { $0.udp?.destination == rtp }.count, 3)
        XCTAssertEqual(out.filter { $0.udp == nil }.count, 1)            // the fragment, untouched
    }
}
