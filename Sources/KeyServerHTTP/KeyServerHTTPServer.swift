import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import KeyServer
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle

/// One address to listen on, as `host` and `port` (port 0: any free one).
public struct KeyServerEndpoint: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) { self.host = host; self.port = port }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The key server's listeners: HTTP and/or HTTPS for the Key Request function, and an optional
/// Prometheus `/metrics` endpoint. `run` serves until SIGTERM/SIGINT (or `duration`), then
/// drains: no new connections, in-flight requests finish, idle keep-alive connections close.
public final class KeyServerHTTPServer: Sendable {
    public let front: KeyServerFront
    public let http: KeyServerEndpoint?
    public let https: KeyServerEndpoint?
    public let tls: TLSConfiguration?
    public let metricsEndpoint: KeyServerEndpoint?
    let logger: Logger

    /// `tlsFiles`: PEM certificate chain and key for `https` (loaded and checked here).
    public init(front: KeyServerFront, http: KeyServerEndpoint?, https: KeyServerEndpoint?, tlsFiles: (certificate: String, key: String)?,
                metrics: KeyServerEndpoint?, logger: Logger) throws(KeyServerSetupError) {
        guard http != nil || https != nil else { throw .configuration("the key server listens nowhere: set keyServer.listen and/or keyServer.tlsListen") }
        var tls: TLSConfiguration?
        if https != nil {
            guard let files = tlsFiles else { throw .configuration("keyServer.tlsListen needs keyServer.tls (certificate and key)") }
            tls = try KeyServerTLS.serverConfiguration(certificatePath: files.certificate, keyPath: files.key)
        }
        self.front = front; self.http = http; self.https = https; self.tls = tls; self.metricsEndpoint = metrics; self.logger = logger
    }

    private func http1(_ limits: KeyServerLimits) -> HTTPServerBuilder {
        let timeout = limits.requestTimeout
        return .http1(configuration: .init(
            additionalChannelHandlers: [KeyServerConnectionGuard(requestTimeout: timeout)],
            idleTimeout: limits.idleTimeout,
            httpDecoderConfiguration: .init(maxHeaderFieldSize: limits.maximumHeaderBytes, maxHeaderListSize: limits.maximumHeaderBytes,
                                            maxHeaderFieldCount: limits.maximumHeaderFields)))
    }

    /// Runs until a signal (SIGTERM, SIGINT) or `duration` seconds, then drains. `onReady` is
    /// called once every listener is bound, with their actual addresses (name → address).
    public func run(duration: Double?, onReady: @escaping @Sendable ([(String, String)]) -> Void = { _ in }) async throws {
        let limits = front.limits
        let ready = ReadyLatch(expected: [http, https, metricsEndpoint].compactMap { $0 }.count, onReady: onReady)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice) // Hummingbird's own per-connection chatter
        if let http {
            let app = Application(
                responder: KeyServerResponder(front: front, listener: "http"), server: http1(limits),
                configuration: .init(address: .hostname(http.host, port: http.port), serverName: nil, backlog: 256, reuseAddress: true,
                                     availableConnectionsDelegate: MaximumAvailableConnections(limits.maximumConnections)),
                onServerRunning: { channel in ready.bound("http", channel.localAddress) },
                logger: quiet)
            services.append(.init(service: Listener(app: app, name: "keyServer.listen", endpoint: http), serviceName: "http"))
        }
        if let https, let tls {
            let builder: HTTPServerBuilder
            do { builder = try .tls(http1(limits), tlsConfiguration: tls) } catch {
                throw KeyServerSetupError.tls("TLS set-up failed: \(error)")
            }
            let app = Application(
                responder: KeyServerResponder(front: front, listener: "https"), server: builder,
                configuration: .init(address: .hostname(https.host, port: https.port), serverName: nil, backlog: 256, reuseAddress: true,
                                     availableConnectionsDelegate: MaximumAvailableConnections(limits.maximumConnections)),
                onServerRunning: { channel in ready.bound("https", channel.localAddress) },
                logger: quiet)
            services.append(.init(service: Listener(app: app, name: "keyServer.tlsListen", endpoint: https), serviceName: "https"))
        }
        if let m = metricsEndpoint {
            let router = Router()
            let metrics = front.metrics
            router.get("metrics") { _, _ -> Response in
                let body = metrics.exposition()
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
            }
            let app = Application(
                router: router, server: .http1(configuration: .init(idleTimeout: .seconds(30))),
                configuration: .init(address: .hostname(m.host, port: m.port), serverName: nil),
                onServerRunning: { channel in ready.bound("metrics", channel.localAddress) },
                logger: quiet)
            services.append(.init(service: Listener(app: app, name: "--metrics", endpoint: m), serviceName: "metrics"))
        }
        if let duration {
            services.append(.init(service: StopAfter(seconds: duration), successTerminationBehavior: .gracefullyShutdownGroup, serviceName: "duration"))
        }
        var configuration = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: quiet)
        configuration.maximumGracefulShutdownDuration = .seconds(15)
        try await ServiceGroup(configuration: configuration).run()
    }
}

/// Calls `onReady` once `expected` listeners reported their bound address.
final class ReadyLatch: @unchecked Sendable {
    private let lock = NSLock()
    private var bound: [(String, String)] = []
    private let expected: Int
    private let onReady: @Sendable ([(String, String)]) -> Void

    init(expected: Int, onReady: @escaping @Sendable ([(String, String)]) -> Void) {
        self.expected = expected; self.onReady = onReady
    }

    func bound(_ name: String, _ address: NIOCore.SocketAddress?) {
        let text: String
        if let a = address, let ip = a.ipAddress, let port = a.port {
            text = ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
        } else {
            text = "\(address.map { "\($0)" } ?? "?")"
        }
        lock.lock()
        bound.append((name, text))
        let all = bound.count == expected ? bound : nil
        lock.unlock()
        if let all { onReady(all) }
    }
}

/// A listener whose bind failures name the configuration key, the address and the fix.
struct Listener<A: ApplicationProtocol>: Service, CustomStringConvertible {
    let app: A
    let name: String
    let endpoint: KeyServerEndpoint
    var description: String { "\(name) \(endpoint)" }

    func run() async throws {
        do {
            try await app.run()
        } catch let e as IOError {
            switch e.errnoCode {
            case EADDRINUSE:
                throw KeyServerSetupError.listener("\(name) \(endpoint): address already in use (another key server or program listens there): stop it or choose another port")
            case EACCES:
                throw KeyServerSetupError.listener("\(name) \(endpoint): permission denied (ports below 1024 need privileges): choose a port ≥ 1024")
            case EADDRNOTAVAIL:
                throw KeyServerSetupError.listener("\(name) \(endpoint): no such local address on this host: use one of its addresses or 0.0.0.0")
            default:
                throw KeyServerSetupError.listener("\(name) \(endpoint): \(e)")
            }
        }
    }
}

/// `--duration`: returns after `seconds` (the group then shuts down gracefully), or at once
/// when the group shuts down first.
struct StopAfter: Service {
    let seconds: Double
    func run() async throws {
        let ms = Int(seconds * 1000)
        try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(ms)) }
    }
}
