import CryptoCore
import DCF
import FLUTE
import Foundation
import Gateway
import KeyManagement
import MIKEY
import PacketIO
import Receiver
import TestSupport
import XCTest

/// Download protection (TS 33.246 6.6.3) through `replay`, checked from the UE side and by the
/// independent FLUTE receiver of the fixtures README (PyPI flute-alc).
final class DownloadTests: XCTestCase {
    static let yaml = TestConfiguration.header + """

          - { name: files, kind: flute, destination: 127.0.0.30:4000, tsi: 7, keyGroup: 7 }
          - { name: mcfiles, kind: flute, destination: 239.255.20.1:4100, tsi: 9, keyGroup: 8 }
        """

    /// The original files, by the last path component of their Content-Location.
    func originals() throws -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for name in ["content.bin", "readme.txt", "clip.mp4", "manifest.xml"] {
            let path = TestGateway.sharedFixtures.appendingPathComponent("flute-files/\(name)").path
            guard let data = FileManager.default.contents(atPath: path) else { throw XCTSkip("\(path) missing") }
            out[name] = Array(data)
        }
        return out
    }

    func replay(_ fixture: String, plainFDT: Bool = false) throws -> (TestGateway, String, ReplayJob.Report) {
        let gw = try TestGateway(yaml: Self.yaml)
        let output = gw.path("out.pcap")
        var options = ReplayJob.Options(input: try TestGateway.fixture(fixture), output: output)
        options.download.plainFDT = plainFDT
        options.download.fdtLifetime = 5 * 365 * 86_400   // FDT Expires in the wall clock's future (oracle)
        let report = try ReplayJob(sessions: [], downloads: try DownloadSession.sessions(of: gw.configuration),
                                   keySource: try KeySource(manager: gw.manager), options: options).run()
        return (gw, output, report)
    }

    /// Every file comes back byte-identical for a UE that holds only the MSK (MUK-protected MSK
    /// message): FDT unwrapped from its DCF, MTK from the MIKEY object, DCF signature verified.
    func testUERecoversEveryFileFromProtectedOutput() throws {
        let files = try originals()
        for (fixture, expected, port) in [("flute-files.pcap", 4, UInt16(4000)), ("flute-multicast.pcap", 2, 4100)] {
            let (gw, output, report) = try replay(fixture)
            XCTAssertEqual(report.download.reduce(0) { $0 + $1.objectsOut }, expected, fixture)
            XCTAssertTrue(report.download.allSatisfy { $0.rejected.isEmpty }, "\(report.download)")
            let muk = try SecretBytes.random(count: 32)
            var ue = UEKeyProcessor(muk: muk, nafID: gw.configuration.bmscFQDN, bTID: "ue-7")
            let t0 = Date(timeIntervalSince1970: TimeInterval(try XCTUnwrap(report.firstPacketTime)))
            let session = try XCTUnwrap(gw.configuration.sessions.first { $0.destination.port == port })
            guard case .success(.msk) = ue.process(try gw.manager.mskMessage(keyGroup: session.keyGroup, ueID: "ue-7", muk: muk, verify: false,
                                                                              at: t0, builder: MIKEYMSKMessageBuilder())) else {
                return XCTFail("MSK message refused")
            }
            // The wrapped FDT is a NULL-encrypted DCF: readable before the MTK arrives.
            let unwrap: @Sendable ([UInt8]) throws -> [UInt8] = { bytes in try DCFReader().decrypt(try DCFReader().parse(bytes), encryptionKey: nil) }
            var rx = FLUTEReceiver(configuration: FLUTEReceiver.Configuration(fdtUnwrapper: unwrap))
            var keys: DCFKeys? = nil
            var recovered: [String: [UInt8]] = [:]
            for f in try readFrames(output) where f.udp?.destination.port == port {
                for event in rx.receive(datagram: f.payload, at: Double(f.time) / 1e9) {
                    guard case .object(let o) = event, o.toi != 0, let file = o.file else { continue }
                    if file.contentType == "application/mikey" {
                        guard case .success(.mtk(let m)) = ue.process(o.data) else { continue }
                        let k = try m.downloadKeys()
                        keys = DCFKeys(encryptionKey: k.encryptionKey, authenticationKey: k.authenticationKey)
                    } else {
                        XCTAssertEqual(file.contentType, "application/vnd.oma.drm.dcf")
                        let opened = try DCFReader().open(o.data, keys: try XCTUnwrap(keys, "DCF before its MIKEY object"), requireSignature: true)
                        recovered[String(file.contentLocation.split(separator: "/").last ?? "")] = opened.plaintext
                    }
                }
            }
            XCTAssertEqual(recovered.count, expected, fixture)
            for (name, bytes) in recovered {
                XCTAssertEqual(bytes, files[name], "\(fixture) \(name)")
            }
        }
    }

    /// With --plain-fdt, the independent FLUTE receiver (flute-alc) reassembles our DCF objects
    /// and the MIKEY object, checking the Content-MD5 we announce; the DCFs it wrote decrypt to
    /// the original files. Skipped with a message when flute-alc is not installed.
    func testIndependentFLUTEReceiverReassemblesOurOutput() throws {
        let (gw, output, _) = try replay("flute-files.pcap", plainFDT: true)
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tools/flute_oracle.py").path
        let outdir = gw.path("oracle")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, output, "4000", outdir]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        if p.terminationStatus == 3 { throw XCTSkip("flute-alc is not installed (pip install flute-alc); independent FLUTE receiver check skipped") }
        XCTAssertEqual(p.terminationStatus, 0)
        struct Entry: Decodable { var path: String; var size: Int; var md5: String }
        // flute-alc's Rust core also prints progress lines to stdout; ours are the JSON ones.
        let entries = try String(decoding: data, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("{") }
            .map { try JSONDecoder().decode(Entry.self, from: Data($0.utf8)) }
        XCTAssertEqual(entries.count, 5, "\(entries.map(\.path))")   // 4 DCFs + the MIKEY object
        // The sizes and MD5s the independent receiver saw are those of what we put on the air:
        // flute-alc only completes an object whose Content-MD5 matches; recompute them here too.
        let originals = try originals()
        let mikeyPath = try XCTUnwrap(entries.first { $0.path.hasSuffix(".mikey") }?.path)
        let mikey = try XCTUnwrap(FileManager.default.contents(atPath: "\(outdir)/\(mikeyPath)"))
        let muk = try SecretBytes.random(count: 32)
        var ue = UEKeyProcessor(muk: muk, nafID: gw.configuration.bmscFQDN, bTID: "ue-8")
        let group = try XCTUnwrap(KeyGroup(7))
        let reportTime = try readFrames(output).first.map { Date(timeIntervalSince1970: TimeInterval($0.time / 1_000_000_000)) } ?? Date()
        guard case .success(.msk) = ue.process(try gw.manager.mskMessage(keyGroup: group, ueID: "ue-8", muk: muk, verify: false, at: reportTime,
                                                                          builder: MIKEYMSKMessageBuilder())),
              case .success(.mtk(let m)) = ue.process(Array(mikey)) else { return XCTFail("MIKEY object refused") }
        let k = try m.downloadKeys()
        let keys = DCFKeys(encryptionKey: k.encryptionKey, authenticationKey: k.authenticationKey)
        for e in entries where !e.path.hasSuffix(".mikey") {
            let bytes = Array(try XCTUnwrap(FileManager.default.contents(atPath: "\(outdir)/\(e.path)")))
            XCTAssertEqual(e.size, bytes.count)
            XCTAssertEqual(e.md5, Hex.encode(MD5.hash(bytes)))
            let name = String(e.path.split(separator: "/").last ?? "")
            XCTAssertEqual(try DCFReader().open(bytes, keys: keys).plaintext, originals[name], name)
        }
    }

    /// tshark decodes the output as ALC/LCT without malformed packets and shows our FDT XML.
    func testTsharkDecodesOutputAndShowsFDT() throws {
        let (_, output, _) = try replay("flute-files.pcap", plainFDT: true)
        let malformed = try runTshark(["-r", output, "-d", "udp.port==4000,alc", "-Y", "_ws.malformed", "-T", "fields", "-e", "frame.number"])
        XCTAssertEqual(malformed.trimmingCharacters(in: .whitespacesAndNewlines), "")
        let verbose = try runTshark(["-r", output, "-d", "udp.port==4000,alc", "-Y", "rmt-lct.toi == 0 && xml", "-V"])
        XCTAssertTrue(verbose.contains("FDT-Instance"), "FDT XML not shown")
        XCTAssertTrue(verbose.contains("application/vnd.oma.drm.dcf"))
        XCTAssertTrue(verbose.contains("application/mikey"))
        XCTAssertTrue(verbose.contains("http://bmsc.example.com/download/content.bin"))
    }
}

/// `receive --objects` path: the Receiver module's ObjectReceiver recovers every file of both
/// FLUTE fixtures byte-identical (sha256 values copied from ../shared/fixtures/README.md).
final class ObjectReceiverTests: XCTestCase {
    static let readmeSHA256 = [
        "http://bmsc.example.com/download/content.bin": "bd8b1743deaa7ba98d30a6e28fcc0d2d0650a6b3a9b6ad9f0b3fa668cf86c1d2",
        "http://bmsc.example.com/download/readme.txt": "b71351e074ae5186689a01fa9f5d0ad825722f813a7edb5258c08e6c9bf29e3b",
        "http://bmsc.example.com/download/clip.mp4": "719418448baf2e8704b4ce79e52947a25e1be9b033176cc53d89667d42eabe67",
        "http://bmsc.example.com/download/manifest.xml": "cb5e560e0ed01a202e0e8e4db12bcb8a46b9b46af37e04a191a12e348e2197b4",
        "http://bmsc.example.com/mc/clip.mp4": "719418448baf2e8704b4ce79e52947a25e1be9b033176cc53d89667d42eabe67",
        "http://bmsc.example.com/mc/readme.txt": "b71351e074ae5186689a01fa9f5d0ad825722f813a7edb5258c08e6c9bf29e3b",
    ]

    func testBothFLUTEFixturesRecoverByteIdentical() throws {
        for (fixture, port, count) in [("flute-files.pcap", UInt16(4000), 4), ("flute-multicast.pcap", 4100, 2)] {
            let gw = try TestGateway(yaml: DownloadTests.yaml)
            let output = gw.path("out.pcap")
            let report = try ReplayJob(sessions: [], downloads: try DownloadSession.sessions(of: gw.configuration),
                                       keySource: try KeySource(manager: gw.manager),
                                       options: .init(input: try TestGateway.fixture(fixture), output: output)).run()
            let session = try XCTUnwrap(gw.configuration.sessions.first { $0.destination.port == port })
            let muk = try SecretBytes.random(count: 32)
            var keys = UEKeyState(muk: muk, nafID: gw.configuration.bmscFQDN, bTID: "ue-9")
            let t0 = Date(timeIntervalSince1970: TimeInterval(try XCTUnwrap(report.firstPacketTime)))
            _ = try keys.loadMSKMessage(try gw.manager.mskMessage(keyGroup: session.keyGroup, ueID: "ue-9", muk: muk, verify: false, at: t0,
                                                                  builder: MIKEYMSKMessageBuilder()), source: "test")
            let objects = gw.path("objects")
            let rx = ObjectReceiver(keys: keys, outputDirectory: objects)
            for f in try readFrames(output) {
                guard let u = f.udp, u.destination.port == port else { continue }
                rx.receive(f.payload, flow: u.destination, at: Double(f.time) / 1e9)
            }
            rx.finish()
            XCTAssertEqual(rx.report.recovered, count, "\(fixture): \(rx.report.summary())")
            XCTAssertEqual(rx.report.failed, 0)
            XCTAssertGreaterThan(rx.report.fdtSignaturesVerified, 0)
            XCTAssertEqual(rx.report.fdtSignaturesFailed, 0)
            for o in rx.report.objects {
                XCTAssertEqual(o.sha256, Self.readmeSHA256[o.contentLocation], o.contentLocation)
                XCTAssertEqual(o.signature, "verified")
                let written = try XCTUnwrap(FileManager.default.contents(atPath: "\(objects)/\(try XCTUnwrap(o.path))"))
                XCTAssertEqual(Hex.encode(SHA256.hash(Array(written))), Self.readmeSHA256[o.contentLocation])
            }
        }
    }

    /// Content-Locations never escape the objects folder (tampered DCFs: DCFProtectionTests).
    func testHostileContentLocationsNeverEscapeTheFolder() throws {
        XCTAssertNil(ObjectReceiverPaths.safe("http://x/../../etc/passwd"))
        XCTAssertNil(ObjectReceiverPaths.safe("http://x"))
        XCTAssertEqual(ObjectReceiverPaths.safe("http://bmsc.example.com/a/b.txt?x=1"), "a/b.txt")
        XCTAssertEqual(ObjectReceiverPaths.safe("file:///mbms/keys/k.mikey"), "mbms/keys/k.mikey")
    }
}
