import ArgumentParser
import CryptoCore
import Foundation
import Gateway
import KeyManagement
import KeyServer
import PacketIO
import Receiver
#if canImport(Glibc)
import Glibc
#endif

/// The README's first command: the whole job end to end on input the demo makes itself.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run the gateway end to end on sample RTP it generates: key store, replay, and a UE that decrypts it all.",
        discussion: """
            Needs no input files. In a work folder (a new temporary one unless --workdir) it:
              1. writes a configuration with two multicast RTP sessions (video: AES-128-CM + RFC 4771
                 RCCm2, R = 64, starting near the SEQ wrap; audio: AES-256-CM + RCCm1, R = 1),
                 a 10 s MTK period and a 2 s announce lead;
              2. creates a key-encryption key and an SQLite key store (mode 0600) with the key groups;
              3. generates a plain RTP/RTCP capture (input.pcap);
              4. replays it through the gateway (protected.pcap: SRTP/SRTCP with MKI = MSK ID || MTK ID,
                 MIKEY MTK messages on UDP 2269 ahead of every MTK switch);
              5. starts the key server (`mbms-gateway keyserver`, a child process on loopback ports) and
                 acts as a UE: registers over HTTP with Digest (qop=auth-int, password from its GBA
                 key), receives the MUK-protected MIKEY MSK messages the key server pushes to it on
                 UDP 2269 and answers each with its verification message;
              6. decrypts protected.pcap with those MSKs and the MTKs from its MIKEY messages only
                 (plain.pcap), checks every TS 33.246 rule, and compares plain.pcap with input.pcap
                 packet by packet.
            The files stay in the work folder for tshark, `mbms-gateway inspect` and your own receivers.
            """)

    @Option(help: "RTP packets per session (50 per second of capture).")
    var packets: Int = 1500

    @Option(help: "Work folder to use (created if missing); default: a new temporary folder.")
    var workdir: String?

    func validate() throws {
        guard (100...2_000_000).contains(packets) else { throw ValidationError("--packets must be 100...2000000 (got \(packets))") }
    }

    func run() throws {
        try checkRuntime()
        let fm = FileManager.default
        let dir = workdir ?? fm.temporaryDirectory.appendingPathComponent("mbms-gateway-demo-\(getpid())").path
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func path(_ name: String) -> String { (dir as NSString).appendingPathComponent(name) }

        // 1. Configuration (with the UE-facing key server on loopback ports of its own).
        let configPath = path("gateway.yaml")
        let keyServer = DemoKeyServerStep(configPath: configPath, directory: dir,
                                          httpPort: try DemoKeyServerStep.freePort(Int32(SOCK_STREAM.rawValue)),
                                          mikeyPort: try DemoKeyServerStep.freePort(Int32(SOCK_DGRAM.rawValue)))
        try """
            # Written by `mbms-gateway demo`.
            keyDomain: { mcc: "001", mnc: "01" }
            bmscFQDN: bmsc.demo.example
            keyStore: { path: keys.sqlite, kekFile: kek.hex }
            schedule:
              epoch: 2026-01-01T00:00:00Z
              mtk: { period: 10s, announceLead: 2s, repeat: 1s }
              msk: { period: 1d }
            sessions:
              - name: video
                kind: rtp
                destination: 239.255.1.1:5004
                keyGroup: 1
                protection: { cipher: aes-128-cm, auth: rccm2, rocRate: 64, srtcpEncryption: on }
              - name: audio
                kind: rtp
                destination: 239.255.1.1:5006
                keyGroup: 2
                protection: { cipher: aes-256-cm, auth: rccm1, rocRate: 1, srtcpEncryption: off }
            \(keyServer.configurationLines)
            """.write(toFile: configPath, atomically: true, encoding: .utf8)
        let configuration = try GatewayConfiguration.load(path: configPath)
        let sessions = try StreamingSession.sessions(of: configuration)

        // 2. KEK and key store. The capture starts on a grid boundary a little in the past.
        let period = UInt64(configuration.schedule.mtkPeriod)
        let nowSeconds = UInt64(Date().timeIntervalSince1970)
        let start = (nowSeconds - UInt64(packets / 50) - 2 * period) / period * period + 3
        if !fm.fileExists(atPath: configuration.keyStore.kekFile ?? path("kek.hex")) {
            _ = try KeyEncryptionKey.createFile(at: configuration.keyStore.kekFile ?? path("kek.hex"))
        }
        let manager = try KeyManager.openSQLite(configuration: configuration, environment: [:], create: true)
        try manager.initialize(at: Date(timeIntervalSince1970: TimeInterval(start)))

        // 3. Sample input.
        let input = path("input.pcap")
        let group = IPAddress.v4(0xEFFF_0101)
        let capture = SyntheticCapture(
            source: .v4(0x0A00_000A),
            streams: [
                .init(destination: TransportAddress(group, 5004), ssrc: 0x1111_2222, payloadType: 96, firstSequence: 65_000,
                      packetsPerSecond: 50, payloadBytes: 300...1200),
                .init(destination: TransportAddress(group, 5006), ssrc: 0x3333_4444, payloadType: 97, firstSequence: 100,
                      packetsPerSecond: 50, payloadBytes: 80...240),
            ],
            startNanoseconds: start * 1_000_000_000, packetsPerStream: packets)
        let inputFrames = try capture.write(to: input)

        // 4. Replay.
        let protected = path("protected.pcap")
        let job = ReplayJob(sessions: sessions, keySource: try KeySource(manager: manager), options: .init(input: input, output: protected))
        let replay = try job.run()
        print("mbms-gateway demo — work folder \(dir)\n")
        print("1. generated \(input): \(inputFrames) frames, 2 RTP sessions to 239.255.1.1 (video :5004 SEQ from 65000, audio :5006) + RTCP SRs")
        print("2. key store \(path("keys.sqlite")) (mode 0600, secrets sealed under kek.hex), key groups 1 and 2\n")
        print("3. " + SummaryTable.render(replay))

        // 5. The UE: registers with the key server over HTTP Digest, gets its MSKs pushed on UDP 2269.
        guard let serverStore = manager.store as? any KeyServerStore else { throw ValidationError("the key store keeps no key server tables") }
        let ksNAF = try SecretBytes.random(count: 32)   // MUK = Ks_NAF (GBA_ME, TS 33.246 6.1)
        let (pushed, keyServerReport) = try keyServer.run(store: serverStore, ksNAF: ksNAF, keyGroups: sessions.count)
        var ue = UEKeyState(muk: ksNAF, nafID: configuration.bmscFQDN, bTID: keyServer.btid)
        for message in pushed { _ = try ue.loadMSKMessage(message, source: "MSK message pushed by the key server") }
        print("4. key server (mbms-gateway keyserver, child process):")
        for line in keyServerReport { print(line) }
        let plain = path("plain.pcap")
        let received = try CaptureReceiver(keys: ue).run(inputPath: protected, outputPath: plain)
        print("5. UE (MSKs from the key server's MUK-protected MIKEY MSK messages, MTKs only from protected.pcap):")
        print(received.summary())

        // 6. Compare.
        let (identical, compared) = try compareUDPPayloads(input, plain)
        let ok = identical == compared && compared == inputFrames && received.violations.isEmpty
        print("6. \(plain) vs \(input): \(identical) of \(compared) packets byte-identical (UDP payloads, in order)\n")
        print("Look closer:\n  mbms-gateway inspect \(protected) --limit 40\n  tshark -r \(protected) -Y mikey -V | less\n  mbms-gateway keys show --config \(configPath)\n")
        print(ok ? "OK: everything the gateway protected came back byte-identical at the UE, with no TS 33.246 rule broken."
                 : "FAILED: see above.")
        if !ok { throw ExitCode.failure }
    }

    /// Compares the UDP payloads of two captures frame by frame.
    func compareUDPPayloads(_ a: String, _ b: String) throws -> (identical: Int, compared: Int) {
        let ra = try CaptureReader(path: a), rb = try CaptureReader(path: b)
        var identical = 0, compared = 0
        while let fa = try ra.next() {
            let pa = payload(fa, ra.linkType)
            guard let fb = try rb.next() else { break }
            compared += 1
            if pa == payload(fb, rb.linkType) { identical += 1 }
        }
        return (identical, compared)
    }

    func payload(_ f: CapturedFrame, _ link: LinkType?) -> [UInt8]? {
        guard let link, let base = f.bytes.baseAddress, case .udp(let u) = FrameParser.classify(base, length: f.bytes.count, linkType: link) else { return nil }
        return Array(f.bytes[u.payloadOffset..<u.datagramEnd])
    }
}
