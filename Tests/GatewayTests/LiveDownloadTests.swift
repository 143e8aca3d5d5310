import CryptoCore
import Foundation
import Gateway
import KeyManagement
import PacketIO
import Receiver
import XCTest

/// `run` with a FLUTE channel on loopback: the fixture's FLUTE datagrams go in over UDP, the
/// protected channel comes out (FDT in a DCF, MIKEY object, DCF objects), and a UE holding only
/// the MSK recovers every file byte-identical. Bounded: the gateway runs for a fixed duration.
final class LiveDownloadTests: XCTestCase {
    func testRunProtectsFLUTEChannelAndUERecoversFiles() throws {
        let fixture = try TestGateway.fixture("flute-files.pcap")
        // Free ports on loopback addresses of our own.
        let inIP = IPAddress.v4(0x7F00_0001), outIP = IPAddress.v4(0x7F4E_0000 | UInt32.random(in: 0x0101...0xFEFE))
        let collector = try UDPBatchSocket(bind: TransportAddress(outIP, 0))
        let outPort = collector.boundPort
        // A free port: bound once to learn it, closed again (the gateway binds it exclusively).
        let inPort = try { try UDPBatchSocket(bind: TransportAddress(inIP, 0)).boundPort }()
        let yaml = """
            keyDomain: { mcc: "001", mnc: "01" }
            bmscFQDN: bmsc.example.org
            keyStore: { path: keys.sqlite }
            schedule:
              epoch: 2026-01-01T00:00:00Z
              mtk: { period: 60s, announceLead: 5s, repeat: 5s }
              msk: { period: 1d }
            sessions:
              - { name: files, kind: flute, destination: "127.0.0.1:\(inPort)", output: "\(outIP):\(outPort)", tsi: 7, keyGroup: 7 }
            """
        let gw = try TestGateway(yaml: yaml)
        _ = try gw.manager.maintain(at: Date())
        var downloadOptions = DownloadEngine.Options()
        downloadOptions.bitsPerSecond = 200_000_000
        let live = try LiveGateway(sessions: [], downloads: try DownloadSession.sessions(of: gw.configuration), downloadOptions: downloadOptions,
                                   keySource: try KeySource(manager: gw.manager))
        let finished = DispatchSemaphore(value: 0)
        final class ReportBox: @unchecked Sendable { var report: LiveReport? }
        let box = ReportBox()
        Thread.detachNewThread { box.report = live.run(duration: 8); finished.signal() }

        // Send the fixture's FLUTE payloads, paced a little.
        let sender = try UDPBatchSocket(bind: TransportAddress(inIP, 0))
        let payloads = try readFrames(fixture).compactMap { $0.udp?.destination.port == 4000 ? $0.payload : nil }
        XCTAssertEqual(payloads.count, 904)
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 2048 * 16, alignment: 16)
        defer { buffer.deallocate() }
        var i = 0
        while i < payloads.count {
            var slots: [DatagramSlot] = []
            for k in 0..<min(16, payloads.count - i) {
                let p = payloads[i + k]
                p.withUnsafeBytes { (buffer + k * 2048).copyMemory(from: $0.baseAddress!, byteCount: p.count) }
                var s = DatagramSlot(bytes: buffer + k * 2048, capacity: 2048)
                s.length = p.count
                s.peer = TransportAddress(inIP, inPort)
                slots.append(s)
            }
            _ = try slots.withUnsafeMutableBufferPointer { try sender.send($0) }
            i += slots.count
            usleep(2_000)
        }

        // Collect the output until the gateway has stopped.
        let pool = UnsafeMutableRawPointer.allocate(byteCount: 65_536 * 64, alignment: 16)
        defer { pool.deallocate() }
        var received: [[UInt8]] = []
        var done = false
        while !done {
            var slots = (0..<64).map { DatagramSlot(bytes: pool + $0 * 65_536, capacity: 65_536) }
            let n = try slots.withUnsafeMutableBufferPointer { try collector.receive(into: $0, timeoutMilliseconds: 100) }
            for k in 0..<n { received.append(Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))) }
            if n == 0 && finished.wait(timeout: .now()) == .success { done = true }
        }
        // Anything still in the socket after the drain.
        var slots = (0..<64).map { DatagramSlot(bytes: pool + $0 * 65_536, capacity: 65_536) }
        while let n = try? slots.withUnsafeMutableBufferPointer({ try collector.receive(into: $0, timeoutMilliseconds: 200) }), n > 0 {
            for k in 0..<n { received.append(Array(UnsafeRawBufferPointer(start: slots[k].bytes, count: slots[k].length))) }
        }

        let report = try XCTUnwrap(box.report)
        let stats = try XCTUnwrap(report.download.first)
        XCTAssertEqual(stats.objectsIn, 4, "\(stats)")
        XCTAssertEqual(stats.objectsOut, 4)

        // The UE.
        let muk = try SecretBytes.random(count: 32)
        var keys = UEKeyState(muk: muk, nafID: gw.configuration.bmscFQDN, bTID: "ue-live-dl")
        let group = try XCTUnwrap(KeyGroup(7))
        _ = try keys.loadMSKMessage(try gw.manager.mskMessage(keyGroup: group, ueID: "ue-live-dl", muk: muk, verify: false, at: Date(),
                                                              builder: MIKEYMSKMessageBuilder()), source: "test")
        let rx = ObjectReceiver(keys: keys, outputDirectory: nil)
        for (n, d) in received.enumerated() { rx.receive(d, flow: TransportAddress(outIP, outPort), at: Double(n) * 0.001) }
        rx.finish()
        XCTAssertEqual(rx.report.recovered, 4, rx.report.summary())
        // The fixture's own FDT expired minutes after it was captured, so a live gateway rightly
        // ignores it (objects still complete from their EXT_FTI); compare contents, not names.
        let expected = Set(ObjectReceiverTests.readmeSHA256.filter { $0.key.contains("/download/") }.values)
        XCTAssertEqual(Set(rx.report.objects.map(\.sha256)), expected)
        XCTAssertTrue(rx.report.objects.allSatisfy { $0.signature == "verified" })
        XCTAssertGreaterThan(rx.report.fdtSignaturesVerified, 0)
    }
}
