import ArgumentParser
import Dispatch
import Foundation
import Gateway
import KeyManagement
import Logging
import PacketIO

/// `mbms-gateway run`: the live, inline gateway on UDP sockets.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Protect live traffic over UDP (unicast or multicast): RTP/RTCP to SRTP/SRTCP + MIKEY, FLUTE to DCF-protected FLUTE.",
        discussion: """
            Every RTP session of the configuration is received on its `destination` (RTP) and `rtcpDestination` (RTCP; port + 1 by default): a multicast group is joined (on --interface if given), a unicast address is bound. Packets are protected with the MTK the key schedule has in force now (MKI = MSK ID || MTK ID) and sent to the session's `output` (RTCP to the output port with the same offset, + 1 by default). MIKEY MTK messages go to the output IP on UDP 2269: at start, every `repeat`, and `announceLead` before each MTK switch.

            `output` defaults to the destination itself for a multicast destination (sent with multicast loop off, out of --interface); a unicast destination needs an `output`.

            --workers N packet threads (default 1) carry the sessions, session i on worker i mod N: each polls its sessions' sockets and moves recvmmsg/sendmmsg batches of up to 64, protected in place (SRTP per SSRC through the batch protect). The main thread publishes key epochs to the workers, sends MIKEY and runs the FLUTE channels; only it touches the key store. A session never spans two workers, so use at most as many workers as sessions (and cores). SIGINT or SIGTERM drains what the sockets already hold, prints a summary and exits 0 (a second signal exits at once).

            SIGHUP reloads: the configuration file and the key store are read again and what can change live is applied — RTP sessions added or removed, a session's destination/rtcpDestination/output, schedule.mtk.repeat, logLevel; anything else (keyDomain, keyStore, the time grid and msk period, a session's keyGroup or protection, FLUTE channels) keeps its running value and is named in a warning. A key group new to the store is created as `keys init` would. The key store is also re-read every second: a `keys rotate [--invalidate]` from another process takes effect at the MTK boundary the rotation chose, with its MIKEY message announced first.

            Each input address and port belongs to one gateway: a unicast input is bound exclusively (no SO_REUSEADDR), and a second `run` on the same input (unicast or multicast group:port) is refused with the PID of the one running. Logs (never key bytes) go to stderr as logfmt (values with spaces quoted) or, with --log-format json, one JSON object per line. With --metrics, Prometheus metrics are served at http://HOST:PORT/metrics (mbms_packets_in_total, mbms_packets_out_total, mbms_bytes_*, mbms_drops_total{reason}, mbms_flows, mbms_flows_evicted_total, mbms_mtk_switches_total, mbms_mikey_messages_sent_total, mbms_batch_packets, mbms_last_batch_packets, mbms_current_mtk_id) and GET /healthz answers 200 while every session's sockets are bound and its keys current, else 503 with the reason; off by default.

            Per RTP session (configuration): `maxFlows` SSRCs of sender state (default 64; the least recently used is evicted beyond, counted as flow_evicted), `source` (accept packets only from these addresses/prefixes; others are dropped as source_filtered), `maxPacketSize` (default 1500; larger RTP/RTCP is dropped as too_large). RTP with an empty payload (empty_payload) and RTCP whose length fields do not add up to the datagram (bad_rtcp_length) are dropped too.

            The key store must exist (`mbms-gateway keys init --config F`); MSKs are added to it as time moves past the ones it holds.

            Example:
              mbms-gateway keys init --config gateway.yaml --create-kek
              mbms-gateway run --config gateway.yaml --interface eth1 --multicast-ttl 16 --metrics 127.0.0.1:9100
              mbms-gateway run --config gateway.yaml --workers 4
            """)

    @Option(name: .long, help: "Gateway configuration (YAML).")
    var config: String

    @Option(name: .long, help: "Network interface for multicast joins and multicast sends (e.g. eth1).")
    var interface: String?

    @Option(name: .long, help: "TTL / hop limit of multicast packets sent.")
    var multicastTTL: UInt8?

    @Flag(name: .long, help: "Loop multicast packets sent back to receivers on this host.")
    var multicastLoop = false

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9100; [::1]:9100). Off by default.", valueName: "host:port"))
    var metrics: String?

    @Option(name: .long, help: ArgumentHelp("Packet-path threads (default 1). Sessions are spread over them (session i on worker i mod N); one session never spans two workers, so more workers than sessions do not help. Key lookups, MIKEY and FLUTE stay on the main thread.", valueName: "N"))
    var workers: Int = 1

    @Option(name: .long, help: "Stop after this many seconds (drain, summary, exit 0), e.g. for soak runs and tests.")
    var duration: Double?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical (default: the configuration's logLevel, else info).")
    var logLevel: String?

    @Option(name: .long, help: ArgumentHelp("Log lines on stderr: logfmt (key=value, values with spaces quoted; default) or json (one object per line).", valueName: "logfmt|json"))
    var logFormat: String = "logfmt"

    @OptionGroup(title: "FLUTE channels (download protection)") var flute: FLUTEFlags

    @Option(name: .long, help: "Also write the summary as JSON to this file.")
    var summaryJSON: String?

    @Flag(name: .long, help: "Leave the process dumpable (core dumps, ptrace by the same user); by default it is not, since it holds the KEK and keys.")
    var allowCoreDumps = false

    func validate() throws {
        guard (1...64).contains(workers) else { throw ValidationError("--workers must be 1...64 (got \(workers))") }
        guard LogFormat(rawValue: logFormat) != nil else { throw ValidationError("--log-format must be logfmt or json (got \(logFormat))") }
        if let l = logLevel, Logger.Level(rawValue: l) == nil {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical (got \(l))")
        }
        if let d = duration, !(d > 0) { throw ValidationError("--duration must be a positive number of seconds (got \(d))") }
        if let m = metrics, Self.metricsAddress(m) == nil {
            throw ValidationError("--metrics \(m): expected HOST:PORT, e.g. 127.0.0.1:9100 or [::1]:9100")
        }
    }

    static func metricsAddress(_ text: String) -> (host: String, port: UInt16)? {
        guard let a = TransportAddress(text) else { return nil }
        return ("\(a.address)", a.port)
    }

    func run() throws {
        if !allowCoreDumps { try ProcessHardening.disableCoreDumps() }
        try checkRuntime()
        // SIGHUP is a reload (below); until its handler is in place it must not end the process.
        signal(SIGHUP, SIG_IGN)
        let configuration: GatewayConfiguration
        // A configuration or session error is bad input (exit 2, `ExitStatus`): thrown as it is.
        configuration = try GatewayConfiguration.load(path: config)
        // --log-level, else the configuration's logLevel (a reload may change it), else info.
        let startLevel = logLevel ?? configuration.logLevel ?? "info"
        let level = ProcessHardening.bootstrapLogging(startLevel, format: LogFormat(rawValue: logFormat) ?? .logfmt)
        let liveLevel = LiveLogLevel(level)
        var logger = Logger(label: "mbms-gateway")
        logger.handler = LiveLogLevelHandler(wrapping: logger.handler, level: liveLevel)
        logger[metadataKey: "config"] = "\(config)"
        let sessions: [StreamingSession]
        sessions = try StreamingSession.sessions(of: configuration)
        let downloads: [DownloadSession]
        downloads = try DownloadSession.sessions(of: configuration)
        guard !sessions.isEmpty || !downloads.isEmpty else { throw GatewaySetupError.noSessions(file: config) }
        let manager: KeyManager
        do {
            manager = try KeyManager.openSQLiteFromProcessEnvironment(configuration: configuration, create: false)
        } catch {
            throw RunFailure.keyStore(error, config: config)
        }
        let keySource: KeySource
        do { keySource = try KeySource(manager: manager) } catch {
            throw RunFailure.keyStore(error, config: config)
        }

        var socket = UDPSocketOptions()
        socket.interface = interface
        socket.multicastTTL = multicastTTL
        socket.multicastLoop = multicastLoop ? true : nil
        let gatewayMetrics = GatewayMetrics()
        var options = LiveOptions(socket: socket, configPath: config, workers: workers)
        let path = config
        options.reload = LiveReloadOptions(configuration: configuration, load: { try GatewayConfiguration.load(path: path) },
                                           logLevel: liveLevel, defaultLogLevel: logLevel.flatMap(Logger.Level.init(rawValue:)) ?? .info)
        let gateway: LiveGateway
        do {
            gateway = try LiveGateway(sessions: sessions, downloads: downloads, downloadOptions: flute.options, keySource: keySource,
                                      options: options, metrics: gatewayMetrics, logger: logger)
        } catch let e as LiveSetupError {
            throw RunFailure(e.description)
        }

        var server: MetricsHTTPServer? = nil
        if let m = metrics, let (host, port) = Self.metricsAddress(m) {
            do { server = try MetricsHTTPServer(host: host, port: port, metrics: gatewayMetrics) } catch { throw RunFailure("\(error)") }
            server?.start()
            logger.info("metrics served", metadata: ["url": "http://\(m)/metrics"])
        }

        // SIGINT/SIGTERM: drain and exit 0; a second one exits at once.
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        let signalQueue = DispatchQueue(label: "mbms-gateway.signals")
        var sources: [DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM] {
            let src = DispatchSource.makeSignalSource(signal: sig, queue: signalQueue)
            src.setEventHandler { [logger] in
                if gateway.isStopping {
                    logger.warning("second signal: exiting without drain", metadata: ["signal": "\(sig)"])
                    Foundation.exit(130)
                }
                logger.info("signal received: draining", metadata: ["signal": "\(sig == SIGINT ? "SIGINT" : "SIGTERM")"])
                gateway.stop()
            }
            src.resume()
            sources.append(src)
        }
        // SIGHUP: reload (configuration and key store) and keep running.
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: signalQueue)
        hup.setEventHandler { [logger] in
            logger.notice("signal received: reloading", metadata: ["signal": "SIGHUP"])
            gateway.requestReload()
        }
        hup.resume()
        sources.append(hup)

        let report = gateway.run(duration: duration)
        server?.stop()
        for s in sources { s.cancel() }
        print(LiveSummaryTable.render(report))
        if let path = summaryJSON {
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            try enc.encode(report).write(to: URL(fileURLWithPath: path))
        }
    }
}

struct RunFailure: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }

    /// The key store could not be opened or read: the error, and `keys init` as the fix only
    /// when the store is missing (a corrupt store or a wrong KEK names its own fix).
    static func keyStore(_ error: any Error, config: String) -> RunFailure {
        if case KeyStoreError.notInitialized = error {
            return RunFailure("\(error)\nCreate the key store first: mbms-gateway keys init --config \(config)")
        }
        if case ScheduleError.notInitialized = error {
            return RunFailure("\(error)\nCreate the key store first: mbms-gateway keys init --config \(config)")
        }
        if let kek = error as? KeyEncryptionKeyError, kek == .notConfigured || kek == .unreadable(path: kekPath(kek)) {
            return RunFailure("\(error)\nCreate the key store first: mbms-gateway keys init --config \(config) --create-kek")
        }
        return RunFailure("\(error)")
    }

    private static func kekPath(_ e: KeyEncryptionKeyError) -> String {
        if case .unreadable(let path) = e { return path }
        return ""
    }
}

/// The end-of-run table, in the style of `replay`'s: per session packets and bytes in/out,
/// MTKs, MIKEY, drops by reason.
enum LiveSummaryTable {
    static func render(_ r: LiveReport) -> String {
        let s = r.statistics
        var out = "run stopped (\(r.stopReason)) after \(String(format: "%.1f", r.seconds)) s: \(s.framesIn) datagrams in, \(s.framesOut) out\n\n"
        let header = ["session", "RTP", "RTCP", "out", "bytes in", "bytes out", "MTK IDs used", "MTK switches", "MIKEY sent", "dropped"]
        var rows: [[String]] = [header]
        for x in s.sessions {
            let drops = x.drops.isEmpty ? "0" : x.drops.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            rows.append([x.name, "\(x.rtpPackets)", "\(x.rtcpPackets)", "\(x.packetsOut)", "\(x.bytesIn)", "\(x.bytesOut)",
                         x.mtksUsed.isEmpty ? "-" : x.mtksUsed.map(String.init).joined(separator: ","), "\(x.mtkSwitches)", "\(x.mikeySent)", drops])
        }
        if rows.count > 1 { out += SummaryTable.table(rows, left: [0, 6, 9]) }
        if !r.download.isEmpty { out += "\n" + SummaryTable.downloadTable(r.download) }
        out += "\n"
        for route in r.routes {
            out += "\(route.session): \(route.rtp) -> \(route.output), \(route.rtcp) -> \(route.rtcpOutput), MIKEY -> \(route.mikey)\n"
        }
        // Bounded however many SSRCs came (issue 19 finding 11); the JSON summary has every flow.
        out += FlowSummary.lines(rollover: r.rollover.map { ($0.session, $0.ssrc, $0.roc) }, statistics: r.statistics)
        return out
    }
}
