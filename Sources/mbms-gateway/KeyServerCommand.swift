import ArgumentParser
import Dispatch
import Foundation
import KeyManagement
import PacketIO
import KeyServer
import KeyServerHTTP
import Logging

/// `mbms-gateway keyserver`: the BM-SC Key Request function over HTTP/HTTPS.
struct KeyServerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keyserver",
        abstract: "Serve the BM-SC Key Request function (TS 33.246): UE register / deregister / msk-request and SCF authorize over HTTP(S) with GBA Digest.",
        discussion: """
            UEs POST to /keymanagement?requesttype=register|deregister|msk-request (TS 33.246 Annex G) and authenticate with HTTP Digest, qop=auth-int: realm 3GPP-bootstrapping@<bmscFQDN>, username the B-TID, password base64(MRK) derived from the UE's GBA keys (Annex F/H). An SCF POSTs requesttype=authorize (IMS-based MBMS) from an address listed in keyServer.scfPeers. MSKs are never in the HTTP answer: a 200 carries one status per item, and accepted items queue MIKEY MSK deliveries.

            Configuration (the gateway YAML, besides keyDomain, bmscFQDN, keyStore, schedule, sessions):
              keyServer:
                listen: 0.0.0.0:8080            # plain HTTP (Digest protects the requests)
                tlsListen: 0.0.0.0:8443         # HTTPS, needs tls
                tls: { certificate: cert.pem, key: key.pem }   # PEM, relative to the YAML file
                nonceLifetime: 5m
                scfPeers: [10.0.0.5]            # who may send authorize
              userServices:
                - { id: "urn:3gpp:mbms:svc1", sessions: [video] }               # everyone may register
                - { id: "urn:3gpp:mbms:svc2", sessions: [audio], register: grants }  # only SCF-authorized UEs

            The key store must exist (mbms-gateway keys init --config F). UEs come from its bootstrapping table, the Zn answers a BSF would give:
              mbms-gateway ue add --config F --btid 'I1U8vpY3qJ0hiuZNrke/NQ==@bsf.home1.net' --impi 001010123456789@ims.example.org --ks-naf <64 hex> --lifetime 1d

            HTTPS: TLS 1.2 and 1.3 only, server certificate only (no client certificate is requested), ECDHE with AES-GCM or ChaCha20-Poly1305 only. A certificate and key for a lab:
              \(KeyServerTLS.makeCertificateHint)

            Limits: request bodies over 64 KiB are refused with 413 without being read; a connection that sends no complete request part for 15 s, or whose body is not in 10 s after its headers, is closed. Status codes: 401 + WWW-Authenticate (challenge or failed Digest, stale=true for a replayed or expired nonce), 400 malformed XML, 403 (authorize from a non-SCF address), 404 unknown path or garbled requesttype, 405 + Allow: POST, 501 unknown request type, 503 + Retry-After when the key store is unavailable.

            SIGINT or SIGTERM drains (in-flight requests finish), prints a one-line summary (requests by status) and exits 0. Logs go to stderr (key=value metadata, never key bytes). With --metrics, Prometheus metrics at http://HOST:PORT/metrics: mbms_keyserver_requests_total{type,status}, mbms_keyserver_digest_failures_total{reason}, mbms_keyserver_registrations_total, mbms_keyserver_deregistrations_total, mbms_keyserver_msk_deliveries_queued_total, mbms_keyserver_bodies_refused_total{reason}, mbms_keyserver_request_duration_seconds.

            A client: Tools/keyserver_client.py (Python standard library only) does the whole two-step auth-int exchange and checks rspauth; `curl --digest` cannot (it does not do qop=auth-int):
              python3 Tools/keyserver_client.py --url http://127.0.0.1:8080 --btid B --ks-naf HEX --bmsc bmsc.example.org msk-request --key 00F110:00010000
            """)

    @Option(name: .long, help: "Gateway configuration (YAML) with keyServer and userServices sections.")
    var config: String

    @Option(name: .long, help: ArgumentHelp("Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 127.0.0.1:9101). Off by default.", valueName: "host:port"))
    var metrics: String?

    @Option(name: .long, help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Option(name: .long, help: "Stop after this many seconds (drain, summary, exit 0), e.g. for tests.")
    var duration: Double?

    @Flag(name: .long, help: "Leave the process dumpable (core dumps, ptrace by the same user); by default it is not, since it holds the KEK and UE keys.")
    var allowCoreDumps = false

    func validate() throws {
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical (got \(logLevel))")
        }
        if let d = duration, !(d > 0) { throw ValidationError("--duration must be a positive number of seconds (got \(d))") }
        if let m = metrics, RunCommand.metricsAddress(m) == nil {
            throw ValidationError("--metrics \(m): expected HOST:PORT, e.g. 127.0.0.1:9101 or [::1]:9101")
        }
    }

    func run() throws {
        if !allowCoreDumps { try ProcessHardening.disableCoreDumps() }
        try checkRuntime()
        let level = ProcessHardening.bootstrapLogging(logLevel)
        var logger = Logger(label: "mbms-gateway.keyserver")
        logger.logLevel = level

        let configuration: GatewayConfiguration
        configuration = try GatewayConfiguration.load(path: config)   // bad input: exit 2 (`ExitStatus`)
        guard let settings = configuration.keyServer else {
            throw RunFailure("\(config): no keyServer section: add keyServer: { listen: 127.0.0.1:8080 } and userServices (see mbms-gateway keyserver --help)")
        }
        var tlsFiles: (certificate: String, key: String)?
        if let cert = settings.tlsCertificate, let key = settings.tlsKey { tlsFiles = (cert, key) }
        let manager: KeyManager
        do {
            manager = try KeyManager.openSQLiteFromProcessEnvironment(configuration: configuration, create: false)
        } catch {
            throw RunFailure.keyStore(error, config: config)
        }
        guard let store = manager.store as? any KeyServerStore else {
            throw RunFailure("key store \(configuration.keyStore.path) holds no key server tables")
        }
        // The MSKs the key server hands out: a store that is not initialised, was made for
        // another grid, or fails authentication is refused now, not at the first request.
        do { _ = try manager.schedule() } catch { throw RunFailure.keyStore(error, config: config) }
        let requests = StoreKeyServerState(store: store, nonces: KeyServerConfiguration.nonces(gateway: configuration))
        let handler = KeyRequestHandler(configuration: KeyServerConfiguration(gateway: configuration),
                                        bootstrapping: StoreBootstrapping(store: store), state: requests)
        let keyMetrics = KeyServerMetrics()

        // The Key Distribution function: MSK messages to UEs on UDP 2269, their verification
        // messages back (TS 33.246 6.3.2.3, 6.4.5.2), on a thread of its own.
        guard let queue = manager.store as? any MSKDeliveryQueue else {
            throw RunFailure("key store \(configuration.keyStore.path) holds no MSK delivery queue")
        }
        let mikeyListen = settings.mikeyListen.map { "\($0)" } ?? "0.0.0.0:\(MSKDistributionService.ueMIKEYPort)"
        guard let mikeyAddress = TransportAddress(mikeyListen) else { throw RunFailure("keyServer.mikeyListen \(mikeyListen) is not an address") }
        let distributor = MSKDistributor(manager: manager, keyStore: store, queue: queue, policy: MSKDistributionPolicy(gateway: configuration))
        let distribution: MSKDistributionService
        do {
            let mikeyLogger = logger
            distribution = try MSKDistributionService(distributor: distributor, listen: mikeyAddress, requests: nil,
                                                      log: { mikeyLogger.notice("\($0)") })
        } catch {
            throw RunFailure("cannot receive MIKEY verification messages on \(mikeyListen) (\(error)); fix: set keyServer.mikeyListen to a free address (UDP 2269 is the MIKEY port; another key server may hold it)")
        }
        distribution.onStatistics = { keyMetrics.distribution($0, queue: $1) }
        // Accepted requests queue their MSK messages durably before the UE gets its 200.
        requests.deliver = { try distributor.enqueue(deliveries: $0, invalidations: $1, at: Int64(Date().timeIntervalSince1970)) }
        distribution.start()
        defer { distribution.stop() }
        let front = KeyServerFront(handler: handler, metrics: keyMetrics, limits: KeyServerLimits(maximumBodyBytes: handler.configuration.maximumBodyBytes),
                                   logger: logger)
        let metricsEndpoint = metrics.flatMap(RunCommand.metricsAddress).map { KeyServerEndpoint(host: $0.host, port: Int($0.port)) }
        let server: KeyServerHTTPServer
        do {
            server = try KeyServerHTTPServer(
                front: front,
                http: settings.listen.map { KeyServerEndpoint(host: $0.host, port: Int($0.port)) },
                https: settings.tlsListen.map { KeyServerEndpoint(host: $0.host, port: Int($0.port)) },
                tlsFiles: tlsFiles, metrics: metricsEndpoint, logger: logger)
        } catch { throw RunFailure(error.description) }

        let started = Date()
        let serviceCount = handler.configuration.services.count
        let fqdn = handler.configuration.bmscFQDN
        let result = BlockingResult()
        let startLogger = logger
        let duration = self.duration
        Task {
            do {
                try await server.run(duration: duration) { bound in
                    var metadata: Logger.Metadata = ["realm": "3GPP-bootstrapping@\(fqdn)", "userServices": "\(serviceCount)"]
                    for (name, address) in bound { metadata[name] = "\(address)" }
                    startLogger.notice("key server listening", metadata: metadata)
                }
                result.finish(nil)
            } catch {
                result.finish(error)
            }
        }
        if let error = result.wait() {
            if let e = error as? KeyServerSetupError { throw RunFailure(e.description) }
            throw RunFailure("key server stopped: \(error)")
        }
        let byStatus = keyMetrics.requestsByStatus
        let total = byStatus.values.reduce(0, +)
        let detail = byStatus.keys.sorted().map { "\($0): \(byStatus[$0] ?? 0)" }.joined(separator: ", ")
        distribution.stop()
        let d = distributor.statistics
        print("keyserver stopped after \(String(format: "%.1f", Date().timeIntervalSince(started))) s: \(total) requests" + (detail.isEmpty ? "" : " (\(detail))")
              + "; MSK messages sent: \(d.sentByReason.values.reduce(0, +)) (\(d.retransmissions) retransmissions), verified: \(d.verified), given up: \(d.gaveUp.values.reduce(0, +))")
    }
}

/// The outcome of the async server, awaited by the synchronous command.
private final class BlockingResult: @unchecked Sendable {
    private let done = DispatchSemaphore(value: 0)
    private var error: (any Error)?
    func finish(_ e: (any Error)?) { error = e; done.signal() }
    func wait() -> (any Error)? { done.wait(); return error }
}
