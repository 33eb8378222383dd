import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import Synchronization
import TimelineRendering

/// What the web view shows, asked of the service the way the control socket asks it: each
/// closure runs as a task and visits the service's actor only to copy its state (rendering and
/// journal reads happen off its thread). Nothing here can change anything.
public struct WebSources: Sendable {
    /// The page's state as one JSON document (`{"status": ..., "history": ...}`).
    public var snapshot: @Sendable () async -> String
    /// The timeline of event `event` of journal run `run`, or nil.
    public var timeline: @Sendable (_ run: Int64, _ event: Int) async -> Timeline?
    /// `/metrics`: the Prometheus text exposition (format 0.0.4).
    public var metricsExposition: @Sendable () -> String

    public init(
        snapshot: @escaping @Sendable () async -> String,
        timeline: @escaping @Sendable (_ run: Int64, _ event: Int) async -> Timeline?,
        metricsExposition: @escaping @Sendable () -> String
    ) {
        self.snapshot = snapshot
        self.timeline = timeline
        self.metricsExposition = metricsExposition
    }

    /// A valid exposition saying the service is up, for tests of the listener alone (the
    /// service serves its `HamnMetrics.exposition()`).
    public static let minimalExposition: @Sendable () -> String = {
        "# HELP hamn_up Whether the hamn-events service is running.\n# TYPE hamn_up gauge\nhamn_up 1\n"
    }
}

/// The listener's limits (docs/decisions.md, "The web view").
public struct WebLimits: Sendable {
    /// Connections served at once; more wait in the kernel's backlog until one ends.
    public var connections = 32
    /// A connection that sends nothing (a request not sent whole, or nothing after a response)
    /// for this long is closed; a live-update stream in progress is not idle.
    public var idleTimeout: Duration = .seconds(10)
    /// How often the live feed asks the service for its state while someone watches.
    public var pollInterval: Duration = .milliseconds(200)
    /// A comment line on an idle live stream this often, so that proxies keep it open.
    public var heartbeat: Duration = .seconds(15)

    public init() {}
}

/// Why the listener is not listening.
public struct WebServerError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// The HTTP listener (Hummingbird, on two threads of its own at the lowest priority,
/// `WebThreads`, never the service's): `/` the page, `/app.js` and `/app.css` its script and
/// style, `/state` the snapshot once, `/events` the snapshot as server-sent events whenever it
/// changes, `/timeline/RUN/EVENT` an event's timeline (SVG), `/metrics`. GET and HEAD only
/// (others 405), anything else 404.
public final class WebServer: Sendable {
    /// `http://ADDRESS:PORT/`, with the port actually bound.
    public let url: String
    private let task: Task<Void, Never>

    private init(url: String, task: Task<Void, Never>) {
        self.url = url
        self.task = task
    }

    /// Binds `address`:`port` and serves until `stop()`; throws when it cannot bind.
    public static func start(
        address: String, port: Int, sources: WebSources, limits: WebLimits = WebLimits(), logger: Logger
    ) async throws(WebServerError) -> WebServer {
        let feed = SnapshotFeed(snapshot: sources.snapshot, interval: limits.pollInterval, heartbeat: limits.heartbeat)
        let responder = WebResponder(sources: sources, feed: feed)
        let bound = BoundSignal()
        // What the library would log is either ours to say (a port in use) or noise at a stop.
        var quiet = logger
        quiet.logLevel = .critical
        let idle = limits.idleTimeout.components
        let application = Application(
            responder: responder,
            server: .http1(
                configuration: HTTP1Channel.Configuration(
                    idleTimeout: .nanoseconds(idle.seconds * 1_000_000_000 + idle.attoseconds / 1_000_000_000))),
            configuration: ApplicationConfiguration(
                address: .hostname(address, port: port), serverName: nil, backlog: 64,
                availableConnectionsDelegate: MaximumAvailableConnections(limits.connections)),
            onServerRunning: { channel in bound.resume(.success(channel.localAddress?.port ?? port)) },
            eventLoopGroupProvider: .shared(WebThreads.eventLoops),
            logger: quiet)
        // Every connection's task is a child of this one, and prefers its executor (WebThreads).
        let task = Task(executorPreference: WebThreads.tasks) {
            do {
                try await application.run()
                bound.resume(.failure(WebServerError(description: "the listener stopped")))
            } catch {
                bound.resume(.failure(WebServerError(description: "cannot listen on \(address):\(port): \(error)")))
            }
            feed.stop()
        }
        switch await bound.wait() {
        case .success(let actual):
            let host = address.contains(":") ? "[\(address)]" : address
            return WebServer(url: "http://\(host):\(actual)/", task: task)
        case .failure(let error):
            task.cancel()
            throw error
        }
    }

    /// Stops listening (connections in progress are closed).
    public func stop() {
        task.cancel()
    }
}

/// Once-only hand-over of the bind's outcome from the server's task to `start`.
private final class BoundSignal: Sendable {
    private let state = Mutex<(Result<Int, WebServerError>?, CheckedContinuation<Result<Int, WebServerError>, Never>?)>(
        (nil, nil))

    func resume(_ result: Result<Int, WebServerError>) {
        let waiting: CheckedContinuation<Result<Int, WebServerError>, Never>? = state.withLock { state in
            guard state.0 == nil else { return nil }
            state.0 = result
            let waiting = state.1
            state.1 = nil
            return waiting
        }
        waiting?.resume(returning: result)
    }

    func wait() async -> Result<Int, WebServerError> {
        await withCheckedContinuation { continuation in
            let ready: Result<Int, WebServerError>? = state.withLock { state in
                if let result = state.0 { return result }
                state.1 = continuation
                return nil
            }
            if let ready { continuation.resume(returning: ready) }
        }
    }
}

/// The routes. Every answer is built from the sources' copies: nothing here writes.
struct WebResponder: HTTPResponder {
    typealias Context = BasicRequestContext
    let sources: WebSources
    let feed: SnapshotFeed

    func respond(to request: Request, context: Context) async throws -> Response {
        guard request.method == .get || request.method == .head else {
            return Self.text(.methodNotAllowed, "the web view is read-only: GET only\n", extra: [.allow: "GET, HEAD"])
        }
        let path = request.uri.path
        switch path {
        case "/", "/index.html":
            return Self.body(WebAssets.page, type: "text/html; charset=utf-8")
        case "/app.js":
            return Self.body(WebAssets.script, type: "text/javascript; charset=utf-8")
        case "/app.css":
            return Self.body(WebAssets.style, type: "text/css; charset=utf-8")
        case "/state":
            return Self.body(await sources.snapshot(), type: "application/json")
        case "/metrics":
            return Self.body(sources.metricsExposition(), type: "text/plain; version=0.0.4; charset=utf-8")
        case "/events":
            return events()
        default:
            let parts = path.split(separator: "/")
            if parts.count == 3, parts[0] == "timeline", let run = Int64(parts[1]), let event = Int(parts[2]) {
                guard let timeline = await sources.timeline(run, event) else {
                    return Self.text(.notFound, "no event \(event) of run \(run) in the journal\n")
                }
                return Self.body(TimelineSVG.render(timeline), type: "image/svg+xml")
            }
            return Self.text(.notFound, "not found\n")
        }
    }

    /// Server-sent events: the snapshot at once, then each time it changes.
    private func events() -> Response {
        let feed = self.feed
        var headers = Self.common
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-store"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                let (updates, id) = feed.subscribe()
                defer { feed.unsubscribe(id) }
                // The latest only: a client slower than the changes skips the ones between.
                for await next in updates {
                    switch next {
                    case .snapshot(let text): try await writer.write(ByteBuffer(string: "data: \(text)\n\n"))
                    case .heartbeat: try await writer.write(ByteBuffer(string: ": still here\n\n"))
                    }
                }
                try await writer.finish(nil)
            })
    }

    /// Headers every answer carries: nothing from elsewhere may load, nothing may frame the page.
    static let common: HTTPFields = {
        var fields: HTTPFields = [
            .contentSecurityPolicy:
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
        ]
        fields[.init("X-Content-Type-Options")!] = "nosniff"
        return fields
    }()

    static func body(_ text: String, type: String) -> Response {
        var headers = common
        headers[.contentType] = type
        headers[.cacheControl] = "no-store"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    static func text(_ status: HTTPResponse.Status, _ text: String, extra: HTTPFields = [:]) -> Response {
        var headers = common
        headers[.contentType] = "text/plain; charset=utf-8"
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
