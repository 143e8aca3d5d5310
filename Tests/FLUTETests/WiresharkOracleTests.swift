import Foundation
import XCTest
@testable import FLUTE

/// Our sender's packets decoded by an independent dissector (tshark's ALC/LCT/FEC), when
/// tshark is installed: TSI/TOI of every width, FLUTE v1 and v2, several source blocks.
final class WiresharkOracleTests: XCTestCase {
    func tsharkPath() throws -> String {
        for p in ["/usr/bin/tshark", "/usr/local/bin/tshark", "/opt/homebrew/bin/tshark"] where FileManager.default.isExecutableFile(atPath: p) { return p }
        throw XCTSkip("tshark not installed")
    }

    /// Classic pcap, Ethernet / IPv4 / UDP 127.0.0.10:4000 → 127.0.0.30:4000.
    func pcap(_ datagrams: [[UInt8]]) -> [UInt8] {
        var out: [UInt8] = [0xD4, 0xC3, 0xB2, 0xA1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]
        func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
        func be16(_ v: Int) -> [UInt8] { [UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
        for (i, d) in datagrams.enumerated() {
            var ip: [UInt8] = [0x45, 0] + be16(20 + 8 + d.count) + be16(i & 0xFFFF) + [0x40, 0, 64, 17, 0, 0, 127, 0, 0, 10, 127, 0, 0, 30]
            var sum = 0
            for k in stride(from: 0, to: 20, by: 2) { sum += Int(ip[k]) << 8 | Int(ip[k + 1]) }
            while sum > 0xFFFF { sum = (sum & 0xFFFF) + (sum >> 16) }
            ip.replaceSubrange(10..<12, with: be16(~sum & 0xFFFF))
            let frame = [UInt8](repeating: 0, count: 12) + [0x08, 0x00] + ip + be16(4000) + be16(4000) + be16(8 + d.count) + [0, 0] + d
            out += le32(i) + le32(0) + le32(frame.count) + le32(frame.count) + frame
        }
        return out
    }

    func testTsharkDecodesOurPacketsAsSent() throws {
        let tshark = try tsharkPath()
        var datagrams: [[UInt8]] = []
        var expected: [String] = []
        let configs: [(UInt64, UInt64, FLUTEVersion, IdentifierWidths?)] = [
            (0x1234, 1, .v1, nil), (0xDEAD_BEEF, 0x1_0000, .v1, nil), (0xAABB_CCDD_EEFF, 0x0102_0304_0506, .v2, nil), (7, 3, .v2, .tsi32toi32),
        ]
        for (tsi, toi, version, widths) in configs {
            let p = ObjectPacketiser(tsi: tsi, encodingSymbolLength: 100, maximumSourceBlockLength: 4, fluteVersion: version, identifierWidths: widths)
            let fdt = try p.packets(fdtInstance: [UInt8](repeating: 0x20, count: 150), fdtInstanceID: 0x12345)
            let file = try p.packets(file: [UInt8](repeating: 0x5A, count: 1050), toi: toi) // T = 11, N = 3: blocks 4, 4, 3
            let blocks = [(0, 4), (1, 4), (2, 3)]
            for (i, packet) in fdt.enumerated() {
                datagrams.append(try packet.encoded())
                expected.append("\(tsi),0,0,\(i),0,150,\(version.rawValue),\(0x12345)")
            }
            var n = 0
            for (sbn, count) in blocks {
                for esi in 0..<count {
                    n += 1
                    datagrams.append(try file[n - 1].encoded())
                    expected.append("\(tsi),\(toi),\(sbn),\(esi),\(n == 11 ? 1 : 0),1050,,")
                }
            }
        }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("flute-oracle-\(ProcessInfo.processInfo.processIdentifier)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("sent.pcap")
        try Data(pcap(datagrams)).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: tshark)
        process.arguments = ["-r", file.path, "-d", "udp.port==4000,alc", "-T", "fields", "-E", "separator=,",
                             "-e", "rmt-lct.tsi", "-e", "rmt-lct.toi", "-e", "rmt-fec.sbn", "-e", "rmt-fec.esi",
                             "-e", "rmt-lct.flags.close_object", "-e", "rmt-fec.fti.transfer_length",
                             "-e", "rmt-lct.flute_version", "-e", "rmt-lct.fdt_instance_id",
                             "-e", "rmt-lct.tsi64", "-e", "rmt-lct.toi64"]
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = FileHandle.nullDevice
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let lines = String(decoding: output, as: UTF8.self).split(separator: "\n").map { line -> String in
            // tshark prints the ESI as 0x%08x; normalise it to decimal.
            // 48- and 64-bit TSI/TOI are in the separate tsi64/toi64 fields (last two columns).
            var f = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 10 else { return String(line) }
            if f[3].hasPrefix("0x"), let v = UInt64(f[3].dropFirst(2), radix: 16) { f[3] = String(v) }
            if f[0].isEmpty { f[0] = f[8] }
            if f[1].isEmpty { f[1] = f[9] }
            return f.prefix(8).joined(separator: ",")
        }
        XCTAssertEqual(lines.count, expected.count)
        for (got, want) in zip(lines, expected) { XCTAssertEqual(got, want) }
    }
}
