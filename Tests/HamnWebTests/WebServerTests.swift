import Foundation
import HamnWeb
import Logging
import Synchronization
import TestSupport
import Testing
import TimelineRendering

/// The listener on its own, with stand-in sources: routes, read-only, hardening.
@Suite("the web view's HTTP listener", .serialized, .timeLimit(.minutes(1)))
struct WebServerTests {
    /// A service stand-in: its state is what `snapshot` answers; counts the visits.
    final class FakeService: Sendable {
        let state = Mutex("{\"status\":{\"node\":\"n1\"},\"history\":{\"events\":[]}}")
        let visits = Atomic<Int>(0)

        var sources: WebSources {
            WebSources(
                snapshot: {
                    self.visits.add(1, ordering: .relaxed)
                    return self.state.withLock { $0 }
                },
                timeline: { run, event in
                    guard run == 1, event == 7 else { return nil }
                    return Timeline(
                        title: "event 7", status: "completed", nodes: ["n1", "n2"],
                        segments: [.init(index: 0, start: 0, end: 1), .init(index: 1, start: 1, end: 2)],
                        barriers: [.init(segment: 0, time: 1, participants: ["n1", "n2"])], end: 2)
                },
                metricsExposition: WebSources.minimalExposition)
        }
    }

    static func start(
        _ service: FakeService, limits: WebLimits = WebLimits(), port: Int = 0
    ) async throws -> (WebServer, Int) {
        let server = try await WebServer.start(
            address: "127.0.0.1", port: port, sources: service.sources, limits: limits,
            logger: Logger(label: "test"))
        let port = try #require(Int(server.url.split(separator: ":").last!.dropLast()))
        #expect(server.url == "http://127.0.0.1:\(port)/")
        return (server, port)
    }

    @Test(
        "the page, its script and style, the state, /metrics, a timeline; all from the binary, nothing from elsewhere")
    func routes() async throws {
        let (server, port) = try await Self.start(FakeService())
        defer { server.stop() }
        let page = try fetch(port, "/")
        #expect(statusCode(page) == 200)
        #expect(header(page, "content-type") == "text/html; charset=utf-8")
        #expect(page.contains("<ul id=\"members\">") && page.contains("<table id=\"history\">"))
        #expect(header(page, "content-security-policy")?.hasPrefix("default-src 'self';") == true)
        #expect(header(page, "x-content-type-options") == "nosniff")
        for path in ["/", "/app.js", "/app.css"] {
            let body = try fetch(port, path)
            #expect(statusCode(body) == 200, "\(path)")
            // The only absolute URL is the SVG namespace, a name that is never loaded.
            let urls = body.components(separatedBy: "://").count - 1
            let namespaces = body.components(separatedBy: "http://www.w3.org/2000/svg").count - 1
            #expect(urls == namespaces, "\(path) names something outside the binary")
        }
        let state = try fetch(port, "/state")
        #expect(state.hasSuffix("\r\n\r\n{\"status\":{\"node\":\"n1\"},\"history\":{\"events\":[]}}"))
        let metrics = try fetch(port, "/metrics")
        #expect(header(metrics, "content-type") == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.hasSuffix("# TYPE hamn_up gauge\nhamn_up 1\n"))
        let timeline = try fetch(port, "/timeline/1/7")
        #expect(header(timeline, "content-type") == "image/svg+xml")
        #expect(timeline.contains("<g class=\"lane\" data-node=\"n2\""))
        #expect(statusCode(try fetch(port, "/timeline/1/8")) == 404)
        #expect(try fetch(port, "/timeline/1/8").hasSuffix("no event 8 of run 1 in the journal\n"))
    }

    @Test("unknown paths 404; every method but GET and HEAD 405, with Allow")
    func readOnly() async throws {
        let service = FakeService()
        let (server, port) = try await Self.start(service)
        defer { server.stop() }
        for path in ["/nothing", "/state/x", "/timeline/x/7", "/../etc/passwd"] {
            #expect(statusCode(try fetch(port, path)) == 404, "\(path)")
        }
        for method in ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"] {
            let answer = try fetch(port, "/state", method: method, headers: "Content-Length: 0\r\n")
            #expect(statusCode(answer) == 405, "\(method)")
            #expect(header(answer, "allow") == "GET, HEAD", "\(method)")
        }
        #expect(service.visits.load(ordering: .relaxed) == 0, "a refused request asked the service nothing")
    }

    @Test("huge headers are refused by NIO's limit (80 KiB), and the listener goes on")
    func hugeHeaders() async throws {
        let (server, port) = try await Self.start(FakeService())
        defer { server.stop() }
        let huge = "X-Huge: " + String(repeating: "a", count: 200 * 1024) + "\r\n"
        let answer = try fetch(port, "/state", headers: huge)
        #expect(statusCode(answer) == 431 || statusCode(answer) == 400 || answer.isEmpty, "\(answer.prefix(200))")
        #expect(!answer.contains("\"status\""))
        #expect(statusCode(try fetch(port, "/state")) == 200)
    }

    @Test("a client that sends half a request holds nothing: others are served, and it is closed when idle")
    func slowClient() async throws {
        var limits = WebLimits()
        limits.idleTimeout = .milliseconds(300)
        let service = FakeService()
        let (server, port) = try await Self.start(service, limits: limits)
        defer { server.stop() }
        let slow = try RawConnection(port: port)
        slow.send("GET /state HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        // Served while the slow client waits.
        #expect(statusCode(try fetch(port, "/state")) == 200)
        #expect(slow.closedByServer(), "an idle half request is closed")
        // One that sends nothing at all, too.
        let silent = try RawConnection(port: port)
        #expect(silent.closedByServer())
    }

    @Test("at most `connections` at once: more wait for a place, and are served once the idle ones are closed")
    func connectionCap() async throws {
        var limits = WebLimits()
        limits.idleTimeout = .milliseconds(300)
        limits.connections = 2
        let (server, port) = try await Self.start(FakeService(), limits: limits)
        defer { server.stop() }
        let holders = try (0..<2).map { _ in try RawConnection(port: port) }
        for holder in holders { holder.send("GET / HTTP/1.1\r\n") }
        #expect(statusCode(try fetch(port, "/state")) == 200)
        for holder in holders { #expect(holder.closedByServer()) }
    }

    @Test("/events: the state at once, then each change, as server-sent events")
    func liveUpdates() async throws {
        var limits = WebLimits()
        limits.pollInterval = .milliseconds(20)
        let service = FakeService()
        let (server, port) = try await Self.start(service, limits: limits)
        defer { server.stop() }
        let stream = try RawConnection(port: port)
        stream.send("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        let first = stream.read(until: "\n\n")
        #expect(header(first, "content-type") == "text/event-stream")
        // Chunked: each event in a chunk of its own.
        #expect(first.hasSuffix("\r\ndata: {\"status\":{\"node\":\"n1\"},\"history\":{\"events\":[]}}\n\n\r\n"))
        service.state.withLock { $0 = "{\"changed\":1}" }
        let second = stream.read(until: "\n\n")
        #expect(second == "15\r\ndata: {\"changed\":1}\n\n\r\n", "\(second)")
    }

    @Test(
        "the listener answers at SCHED_IDLE and nice 19: /metrics rendered, the state asked for and the feed polled on its own threads, never at the service's priority"
    )
    func lowPriority() async throws {
        let seen = Mutex<[String: Int32]>([:])
        // The calling thread's nice value, or -1 when its policy is not SCHED_IDLE (5): `who` and
        // pid 0 are the calling thread on Linux.
        let nice: @Sendable (String) -> Void = { route in
            let value =
                sched_getscheduler(0) == WebThreads.idlePolicy
                ? getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) : -1
            seen.withLock { $0[route] = value }
        }
        let sources = WebSources(
            snapshot: {
                nice("snapshot")
                return "{}"
            },
            timeline: { _, _ in nil },
            metricsExposition: {
                nice("metrics")
                return WebSources.minimalExposition()
            })
        var limits = WebLimits()
        limits.pollInterval = .milliseconds(20)
        let server = try await WebServer.start(
            address: "127.0.0.1", port: 0, sources: sources, limits: limits, logger: Logger(label: "test"))
        defer { server.stop() }
        let port = try #require(Int(server.url.split(separator: ":").last!.dropLast()))
        #expect(statusCode(try fetch(port, "/metrics")) == 200)
        #expect(statusCode(try fetch(port, "/state")) == 200)
        #expect(seen.withLock { $0 } == ["snapshot": 19, "metrics": 19])
        seen.withLock { $0 = [:] }
        let stream = try RawConnection(port: port)
        stream.send("GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        #expect(stream.read(until: "\n\n").hasSuffix("data: {}\n\n\r\n"))
        #expect(seen.withLock { $0 } == ["snapshot": 19])
        // The kernel's view of the listener's threads: fields 19 (nice) and 41 (policy) of
        // /proc/self/task/TID/stat.
        var threads: [String: [Int]] = [:]
        var policies: [String: [Int]] = [:]
        for tid in try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task") {
            guard let stat = try? String(contentsOfFile: "/proc/self/task/\(tid)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { continue }
            let fields = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            let name = String(stat[stat.index(after: open)..<close])
            threads[name, default: []].append(Int(fields[16]) ?? -100)
            policies[name, default: []].append(Int(fields[38]) ?? -100)
        }
        #expect(threads["hamn-web"] == [19], "\(threads)")
        #expect(threads["hamn-web-io"] == [19], "\(threads)")
        #expect(policies["hamn-web"] == [5], "\(policies)")
        #expect(policies["hamn-web-io"] == [5], "\(policies)")
    }

    @Test("a port in use: start throws, naming the address and why")
    func portInUse() async throws {
        let (server, port) = try await Self.start(FakeService())
        defer { server.stop() }
        do {
            _ = try await Self.start(FakeService(), port: port)
            Issue.record("a second listener bound the same port")
        } catch {
            #expect("\(error)".hasPrefix("cannot listen on 127.0.0.1:\(port): "))
            #expect("\(error)".contains("Address already in use"), "\(error)")
        }
    }
}
