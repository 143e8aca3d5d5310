import CryptoCore
import Foundation
import Gateway
import KeyManagement
import MIKEY
import PacketIO
import SRTP
import TestSupport
import XCTest

/// A temporary gateway: config, KEK and SQLite store in a fresh folder, sessions for every
/// flow of the three RTP fixtures.
struct TestGateway {
    let directory: URL
    let configuration: GatewayConfiguration
    let manager: KeyManager
    let sessions: [StreamingSession]

    static let sharedFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/fixtures")

    static func fixture(_ name: String) throws -> String {
        let p = sharedFixtures.appendingPathComponent(name).path
        guard FileManager.default.fileExists(atPath: p) else { throw XCTSkip("\(p) not present (tests expect ../shared beside the checkout)") }
        return p
    }

    /// Everything but the sessions: key domain, store, a 10 s MTK grid.
    static let header = TestConfiguration.header

    static let yaml = header + """

          - { name: video, kind: rtp, destination: 127.0.0.20:5004, keyGroup: 1, protection: { cipher: aes-128-cm, auth: rccm2, rocRate: 64 } }
          - { name: audio, kind: rtp, destination: 127.0.0.20:5006, keyGroup: 2, protection: { cipher: aes-128-cm, auth: rccm1, rocRate: 1 } }
          - { name: wrap, kind: rtp, destination: 127.0.0.20:5010, keyGroup: 3, protection: { cipher: aes-256-cm, auth: rccm2, rocRate: 16 } }
          - { name: mcvideo, kind: rtp, destination: 239.255.10.1:5020, keyGroup: 4, protection: { auth: rccm2, rocRate: 1, srtcpEncryption: off } }
          - { name: mcaudio, kind: rtp, destination: 239.255.10.1:5022, keyGroup: 5, protection: { auth: hmac-sha1-80, srtpTagLength: 10 } }
        """

    init(yaml: String = TestGateway.yaml) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("mbms-gw-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let configPath = directory.appendingPathComponent("gateway.yaml").path
        try yaml.write(toFile: configPath, atomically: true, encoding: .utf8)
        configuration = try GatewayConfiguration.load(path: configPath)
        let kek = try SecretBytes.random(count: 32)
        let store = try SQLiteKeyStore.openOrCreate(path: configuration.keyStore.path, kek: kek)
        manager = KeyManager(configuration: configuration, store: store)
        try manager.initialize(at: Date(timeIntervalSince1970: 1_790_000_000))
        sessions = try StreamingSession.sessions(of: configuration)
    }

    func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    func replay(_ input: String, output: String, senderIndices: SenderIndexMode = .reserve) throws -> ReplayJob.Report {
        try ReplayJob(sessions: sessions, keySource: try KeySource(manager: manager, senderIndices: senderIndices),
                      options: .init(input: input, output: output)).run()
    }
}

/// All frames of a capture with their classification.
struct Frame {
    var time: UInt64
    var bytes: [UInt8]
    var udp: UDPFrame?
    var payload: [UInt8] { udp.map { Array(bytes[$0.payloadOffset..<$0.datagramEnd]) } ?? [] }
}

func readFrames(_ path: String) throws -> [Frame] {
    let r = try CaptureReader(path: path)
    guard let link = r.linkType else { throw XCTSkip("unsupported link type") }
    var out: [Frame] = []
    while let f = try r.next() {
        let bytes = Array(f.bytes)
        let c = bytes.withUnsafeBytes { FrameParser.classify($0.baseAddress!, length: $0.count, linkType: link) }
        var udp: UDPFrame? = nil
        if case .udp(let u) = c { udp = u }
        out.append(Frame(time: f.timestampNanoseconds, bytes: bytes, udp: udp))
    }
    return out
}

func runTshark(_ args: [String]) throws -> String {
    guard Tool.isInstalled(Tool.tshark) else { throw XCTSkip("tshark not installed") }
    return try Tool.run(Tool.tshark, args).stdout
}
