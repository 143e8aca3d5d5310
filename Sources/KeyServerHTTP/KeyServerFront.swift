import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdCore
import KeyServer
import Logging
import NIOCore
import NIOHTTPTypes
import NIOPosix

/// Bounds of the HTTP front (DESIGN.md §8: request sizes and times bounded, slow clients cut).
public struct KeyServerLimits: Sendable, Equatable {
    /// Largest request body read (bytes); a longer one is refused with 413 after reading at
    /// most this much, and the connection is closed. Defaults to the core's limit.
    public var maximumBodyBytes: Int
    /// A connection that sends no complete HTTP part for this long (request line and headers
    /// included) is closed; also the keep-alive idle time.
    public var idleTimeout: TimeAmount
    /// A request whose body has not fully arrived this long after its headers is cut.
    public var requestTimeout: TimeAmount
    /// Header block limits (NIO's HTTP decoder).
    public var maximumHeaderBytes: Int
    public var maximumHeaderFields: Int
    /// Open connections per listener at most; further ones wait in the backlog.
    public var maximumConnections: Int

    public init(maximumBodyBytes: Int = KeyServerModule.maximumBodyBytes, idleTimeout: TimeAmount = .seconds(15),
                requestTimeout: TimeAmount = .seconds(10), maximumHeaderBytes: Int = 16 * 1024, maximumHeaderFields: Int = 100,
                maximumConnections: Int = 1024) {
        self.maximumBodyBytes = maximumBodyBytes; self.idleTimeout = idleTimeout; self.requestTimeout = requestTimeout
        self.maximumHeaderBytes = maximumHeaderBytes; self.maximumHeaderFields = maximumHeaderFields
        self.maximumConnections = maximumConnections
    }
}

/// The request context: Hummingbird's core storage and the TCP peer (the UE address for MSK
/// pushes, TS 33.246 6.3.1; the SCF address checked for `authorize`).
public struct KeyServerRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: NIOCore.SocketAddress?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }
}

/// The HTTP front of the Key Request function: every request — any method, any path — goes
/// to the pure `KeyRequestHandler`, so 404 (unknown path or request type), 405 (+ Allow: POST),
/// 501 and 503 come from one place. The front itself only refuses bodies over the limit (413)
/// and bodies that could not be read (400), and adds Content-Length.
public final class KeyServerFront: Sendable {
    public let handler: KeyRequestHandler
    public let metrics: KeyServerMetrics
    public let limits: KeyServerLimits
    let logger: Logger
    /// The handler's state calls block (SQLite); they run here, not on the event loops or the
    /// cooperative pool.
    let threadPool: NIOThreadPool

    public init(handler: KeyRequestHandler, metrics: KeyServerMetrics, limits: KeyServerLimits, logger: Logger,
                threadPool: NIOThreadPool = .singleton) {
        self.handler = handler; self.metrics = metrics; self.limits = limits; self.logger = logger; self.threadPool = threadPool
    }

    public func respond(to request: Request, remote: NIOCore.SocketAddress?, listener: String) async -> Response {
        let started = ContinuousClock.now
        let source = remote?.ipAddress ?? "unknown"
        let target = request.head.path ?? ""
        var log = logger
        log[metadataKey: "listener"] = "\(listener)"
        log[metadataKey: "peer"] = "\(source)"
        log[metadataKey: "method"] = "\(request.method.rawValue)"
        log[metadataKey: "target"] = "\(target.prefix(200))"

        // The body, bounded: a declared length over the limit is refused before reading it;
        // an undeclared (chunked) one as soon as the limit is passed. Either way the connection
        // closes after the answer (the rest of the body is never read).
        let limit = limits.maximumBodyBytes
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            return refuse(413, "body of \(declared) bytes declared, limit \(limit)", metricsReason: "too_large", log: log, started: started)
        }
        var body: [UInt8] = []
        do {
            for try await chunk in request.body {
                guard body.count + chunk.readableBytes <= limit else {
                    return refuse(413, "body over the limit of \(limit) bytes", metricsReason: "too_large", log: log, started: started)
                }
                body.append(contentsOf: chunk.readableBytesView)
            }
        } catch {
            return refuse(400, "body could not be read: \(error)", metricsReason: "read_error", log: log, started: started)
        }

        var headers = HTTPHeaderFields()
        for field in request.headers { headers.add(field.name.rawName, field.value) }
        let keyRequest = KeyServerRequest(method: request.method.rawValue, target: target, headers: headers, body: body,
                                          sourceAddress: source, now: Date())
        let handler = self.handler
        let outcome: KeyServerOutcome
        do {
            outcome = try await threadPool.runIfActive {
                var random = SystemRandomNumberGenerator()
                return handler.handleAndApply(keyRequest, random: &random)
            }
        } catch {
            // The pool is shutting down: the process is stopping.
            var r = refuse(503, "thread pool inactive (stopping)", metricsReason: nil, log: log, started: started)
            r.headers[.retryAfter] = String(handler.configuration.retryAfterSeconds)
            return r
        }

        let status = outcome.response.status
        let failure = status == 401 ? KeyServerMetrics.digestFailureLabel(outcome.reason) : nil
        metrics.record(type: outcome.requestType, status: status, digestFailure: failure, effects: outcome.effects,
                       seconds: seconds(since: started))
        log[metadataKey: "status"] = "\(status)"
        if let t = outcome.requestType { log[metadataKey: "type"] = "\(t.rawValue)" }
        switch status {
        case 200..<300: log.info("request", metadata: ["reason": "\(outcome.reason)"])
        case 401 where failure == nil: log.debug("challenge", metadata: ["reason": "\(outcome.reason)"])
        case 500...: log.warning("request failed", metadata: ["reason": "\(outcome.reason)"])
        default: log.notice("request refused", metadata: ["reason": "\(outcome.reason)"])
        }

        var fields = HTTPFields()
        for f in outcome.response.headers.fields {
            guard let name = HTTPField.Name(f.name) else { continue }
            fields.append(HTTPField(name: name, value: f.value))
        }
        fields[.contentLength] = String(outcome.response.body.count)
        return Response(status: Self.status(status), headers: fields, body: ResponseBody(byteBuffer: ByteBuffer(bytes: outcome.response.body)))
    }

    /// An answer of the front itself (the handler never saw the request); closes the connection.
    private func refuse(_ status: Int, _ reason: String, metricsReason: String?, log: Logger, started: ContinuousClock.Instant) -> Response {
        if let m = metricsReason { metrics.bodyRefused(m) }
        metrics.record(type: nil, status: status, digestFailure: nil, effects: [], seconds: seconds(since: started))
        log.notice("request refused", metadata: ["status": "\(status)", "reason": "\(reason)"])
        return Response(status: Self.status(status), headers: [.contentLength: "0", .connection: "close"], body: ResponseBody())
    }

    private func seconds(since start: ContinuousClock.Instant) -> Double {
        let d = ContinuousClock.now - start
        return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
    }

    static func status(_ code: Int) -> HTTPResponse.Status {
        let phrase: String
        switch code {
        case 200: phrase = "OK"
        case 400: phrase = "Bad Request"
        case 401: phrase = "Unauthorized"
        case 403: phrase = "Forbidden"
        case 404: phrase = "Not Found"
        case 405: phrase = "Method Not Allowed"
        case 413: phrase = "Content Too Large"
        case 500: phrase = "Internal Server Error"
        case 501: phrase = "Not Implemented"
        case 503: phrase = "Service Unavailable"
        case 504: phrase = "Gateway Timeout"
        case 505: phrase = "HTTP Version Not Supported"
        default: phrase = ""
        }
        return HTTPResponse.Status(code: code, reasonPhrase: phrase)
    }
}

/// Hands every request to the front.
struct KeyServerResponder: HTTPResponder {
    typealias Context = KeyServerRequestContext
    let front: KeyServerFront
    let listener: String

    func respond(to request: Request, context: KeyServerRequestContext) async throws -> Response {
        await front.respond(to: request, remote: context.remoteAddress, listener: listener)
    }
}

/// Per connection, after HTTP decoding: cuts a request whose body does not arrive within
/// `requestTimeout` of its headers (slow clients), and closes the connection once a response
/// carrying `Connection: close` has been written (the front's refusals: the rest of an
/// over-long body is then never read).
final class KeyServerConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let requestTimeout: TimeAmount
    private var deadline: Scheduled<Void>?
    private var closeAfterResponse = false

    init(requestTimeout: TimeAmount) { self.requestTimeout = requestTimeout }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            deadline?.cancel()
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: requestTimeout) {
                context.close(promise: nil)
            }
        case .end:
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case let .head(head):
            if head.headerFields[.connection]?.lowercased() == "close" { closeAfterResponse = true }
            context.write(data, promise: promise)
        case .body:
            context.write(data, promise: promise)
        case .end:
            guard closeAfterResponse else { context.write(data, promise: promise); return }
            let written = promise ?? context.eventLoop.makePromise()
            context.writeAndFlush(data, promise: written)
            written.futureResult.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
    }
}
