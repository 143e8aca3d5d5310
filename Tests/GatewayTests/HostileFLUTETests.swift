import FLUTE
import Foundation
import Gateway
import PacketIO
import XCTest

/// Hostile FLUTE input through `replay`: no crash, nothing leaks through, each case counted.
final class HostileFLUTETests: XCTestCase {
    func testHostileFLUTECaptureIsCountedNotForwarded() throws {
        let gw = try TestGateway(yaml: DownloadTests.yaml)
        let src = TransportAddress(.v4(0x7F00_000A), 4000), dst = TransportAddress(.v4(0x7F00_001E), 4000)
        let packetiser = ObjectPacketiser(tsi: 7, encodingSymbolLength: 500)
        var datagrams: [[UInt8]] = []
        func add(_ packets: [ALCPacket]) throws { for p in packets { datagrams.append(try p.encoded()) } }
        // 1. An FDT with a DTD and entity expansion ("billion laughs"): refused before parsing.
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\"><!ENTITY lol2 \"&lol;&lol;&lol;&lol;\">]>"
            + "<FDT-Instance xmlns=\"urn:IETF:metadata:2005:FLUTE:FDT\" Expires=\"4100000000\"><File TOI=\"1\" Content-Location=\"&lol2;\"/></FDT-Instance>"
        try add(try packetiser.packets(fdtInstance: Array(laughs.utf8), fdtInstanceID: 1))
        // 2. A valid FDT announcing TOI 1 with 1000 bytes, then TOI 1 sent with a different transfer length (a lie).
        let fdt = FDTInstance(expires: 4_100_000_000, files: [FDTFile(toi: 1, contentLocation: "http://x/a.bin", contentLength: 1000,
                                                                        transferLength: 1000, fec: packetiser.fdtFECParameters)])
        try add(try packetiser.packets(fdtInstance: try fdt.xml(), fdtInstanceID: 2))
        try add(try packetiser.packets(file: [UInt8](repeating: 1, count: 3000), toi: 1))
        // 3. Packets for an unknown TSI.
        try add(try ObjectPacketiser(tsi: 99, encodingSymbolLength: 500).packets(file: [UInt8](repeating: 2, count: 800), toi: 5))
        // 4. An object that never completes (its last packets are missing).
        let partial = try packetiser.packets(file: [UInt8](repeating: 3, count: 5000), toi: 9)
        try add(Array(partial.prefix(3)))
        // 5. Garbage on the FLUTE port.
        datagrams.append([0x10, 0xFF, 0, 0, 1, 2, 3])

        let input = gw.path("hostile.pcap")
        let w = try CaptureWriter(path: input, dataLinkType: LinkType.ethernet.rawValue)
        for (i, d) in datagrams.enumerated() {
            w.write(timestampNanoseconds: 1_795_000_000_000_000_000 + UInt64(i) * 10_000_000,
                    bytes: UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: src, destination: dst, hopLimit: 64, payload: d))
        }
        // Let the incomplete object time out.
        w.write(timestampNanoseconds: 1_795_000_600_000_000_000,
                bytes: UDPFrameEditor.buildFrame(linkType: .ethernet, template: nil, source: src, destination: dst, hopLimit: 64, payload: [0x10, 0, 0, 0]))
        w.close()
        let output = gw.path("out.pcap")
        let report = try ReplayJob(sessions: [], downloads: try DownloadSession.sessions(of: gw.configuration),
                                   keySource: try KeySource(manager: gw.manager), options: .init(input: input, output: output)).run()
        let files = try XCTUnwrap(report.download.first { $0.name == "files" })
        XCTAssertEqual(files.objectsIn, 0, "\(files)")
        XCTAssertEqual(files.objectsOut, 0)
        XCTAssertGreaterThanOrEqual(files.rejected.values.reduce(0, +), 4, "\(files.rejected)")
        XCTAssertNotNil(files.rejected["transferLengthLie"], "\(files.rejected)")
        XCTAssertNotNil(files.rejected["timed_out"], "\(files.rejected)")
        XCTAssertNotNil(files.rejected.keys.first { $0.hasPrefix("fdt_") }, "DTD FDT not counted: \(files.rejected)")
        XCTAssertNotNil(files.rejected["unknownTSI"], "\(files.rejected)")
        XCTAssertNotNil(files.rejected["malformed"], "\(files.rejected)")
        // Nothing of the hostile channel is forwarded.
        XCTAssertEqual(try readFrames(output).filter { $0.udp?.destination == dst }.count, 0)
    }
}
