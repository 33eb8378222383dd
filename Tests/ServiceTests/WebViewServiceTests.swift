import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The web view on the real service: `status` names its URL, a port in use is a warning and
/// not a failure, and clients that hold connections never hold the service.
@Suite("the web view on the service", .serialized, .timeLimit(.minutes(1)))
struct WebViewServiceTests {
    /// The port of the URL `status` prints (`web view: http://127.0.0.1:PORT/ (...)`).
    static func port(_ harness: ServiceHarness) throws -> Int {
        let line = try #require(harness.status.split(separator: "\n").first { $0.hasPrefix("web view: http://") })
        let address = line.dropFirst("web view: http://127.0.0.1:".count)
        return try #require(Int(address.prefix { $0.isNumber }))
    }

    @Test("/metrics serves the service's own metrics: an event triggered from the command line is counted there")
    func metrics() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("work", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        try harness.start()
        let port = try Self.port(harness)
        #expect(try harness.cli(["trigger", "work"]).status == 0)
        let line = #"hamn_events_total{event="work",outcome="completed"} 1"#
        try waitUntil("/metrics counts the event", observed: { (try? fetch(port, "/metrics")) ?? "" }) {
            try fetch(port, "/metrics").contains("\n" + line + "\n")
        }
        let answer = try fetch(port, "/metrics")
        #expect(statusCode(answer) == 200)
        #expect(answer.contains("\nhamn_members 1.0\n") && answer.contains("\nhamn_quorate 1.0\n"), "\(answer)")
    }

    @Test("status prints the view's URL (text and JSON); the page and the state come from the service")
    func url() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.start()
        let port = try Self.port(harness)
        #expect(
            harness.status.contains(
                "web view: http://127.0.0.1:\(port)/ (read-only; metrics at http://127.0.0.1:\(port)/metrics)"))
        let json = try harness.cli(["status", "--format", "json"])
        let object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        let web = object?["web"] as? [String: Any]
        #expect(web?["listening"] as? Bool == true)
        #expect(web?["url"] as? String == "http://127.0.0.1:\(port)/")
        #expect(statusCode(try fetch(port, "/")) == 200)
        let state = try fetch(port, "/state")
        #expect(state.contains("{\"status\":{") && state.contains("\"node\":\"n1\""))
        #expect(state.contains("\"history\":{\"events\":["))
        #expect(harness.stderrText.contains("web view: http://127.0.0.1:\(port)/ (read-only)"))
    }

    @Test("http: {enabled: false}: no listener, and status says it is off")
    func off() throws {
        let harness = try ServiceHarness(definitions: [], http: "{enabled: false}")
        try harness.start()
        #expect(harness.status.contains("web view: off (http: enabled: false)"))
    }

    @Test("a port in use: the service runs, warns in its log and journal, and status says why")
    func portInUse() throws {
        // A listener of this test holds a port.
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        try #require(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let harness = try ServiceHarness(definitions: [], http: "{address: 127.0.0.1, port: \(port)}")
        try harness.start()
        let why = "cannot listen on 127.0.0.1:\(port): "
        #expect(harness.status.contains("web view: NOT listening: \(why)"), "\(harness.status)")
        #expect(harness.status.contains("Address already in use"))
        #expect(harness.stderrText.contains("web view not listening: \(why)"))
        #expect(harness.serviceNotes.contains("WARNING: web view not listening: \(why)"), "\(harness.serviceNotes)")
    }

    @Test(
        "clients that send half a request, or read nothing, never delay the service: an event with a barrier runs to its end meanwhile"
    )
    func slowClientsDoNotStallTheService() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([
            (
                "work", 0, "all \"/bin/touch \(out)/first\" 0 NULL\nbarrier\nall \"/bin/touch \(out)/second\" 0 NULL\n",
                nil
            )
        ])
        try harness.start()
        let port = try Self.port(harness)
        // More than the listener serves at once (32): half requests, and live streams never read.
        var held: [RawConnection] = []
        for index in 0..<40 {
            let connection = try RawConnection(port: port)
            connection.send(index % 4 == 0 ? "GET /events HTTP/1.1\r\nHost: x\r\n\r\n" : "GET /state HTTP/1.1\r\nHo")
            held.append(connection)
        }
        try harness.cli(["trigger", "work"])
        #expect(
            harness.eventually {
                (try? harness.cli(["history"]))?.out.contains("event 1: work state 0 node n1 completed") == true
            }, "\((try? harness.cli(["history"]))?.out ?? "")")
        #expect(harness.read("first") != nil && harness.read("second") != nil)
        #expect(harness.status.contains("running: nothing"))
        // And the view itself still answers others.
        #expect(held.count == 40)
    }

    @Test(
        "slow clients do not delay the service's thread: a variable sampled every 100 ms keeps its schedule while 40 connections stall the listener"
    )
    func slowClientsDoNotDelayTheServiceThread() throws {
        // Each sample is reported to the service's actor and the next one waits for that
        // (MonitorScheduler): a service's thread held by a client would stretch the gaps.
        let (harness, paging) = try ServiceHarness.paging(interval: "0.1s")
        let ticks = harness.outputDirectory + "/ticks"
        let tick = try harness.script("tick", "date +%s.%N >> \(ticks)\nexec /bin/cat \(paging)")
        let configuration = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        try harness.write(harness.configPath, configuration.replacingOccurrences(of: "/bin/cat \(paging)", with: tick))
        try harness.start()
        let port = try Self.port(harness)
        func stamps() -> [Double] {
            (harness.read("ticks") ?? "").split(separator: "\n").compactMap { Double($0) }
        }
        try waitUntil("the variable is sampled", observed: { "\(stamps().count) samples" }) { stamps().count >= 5 }
        let before = stamps().count
        // Half requests, and live streams never read (the state changes at every sample, so the
        // listener's writes to them back up), more than the listener serves at once (32).
        var held: [RawConnection] = []
        for index in 0..<40 {
            let connection = try RawConnection(port: port)
            connection.send(index % 4 == 0 ? "GET /events HTTP/1.1\r\nHost: x\r\n\r\n" : "GET /state HTTP/1.1\r\nHo")
            held.append(connection)
        }
        // And one client that sends its request a byte at a time.
        let trickle = try RawConnection(port: port)
        for byte in "GET /metrics HTTP/1.1\r\nHost: x\r\n".utf8.prefix(20) {
            trickle.send(String(UnicodeScalar(byte)))
            usleep(100_000)
        }
        let during = Array(stamps().dropFirst(before))
        let gaps = zip(during.dropFirst(), during).map { $0 - $1 }
        // 2 s at one sample per 100 ms: 20. The bound is a stall's, not a benchmark's: a service's
        // thread waiting on a client would wait for its 10 s idle time-out.
        #expect(during.count >= 10, "\(during.count) samples in 2 s")
        #expect((gaps.max() ?? 0) < 1.0, "gaps between samples: \(gaps)")
        #expect(held.count == 40)
    }

    @Test("status JSON keeps each instance's recent samples, oldest first (the view's sparkline)")
    func recentSamples() throws {
        let (harness, paging) = try ServiceHarness.paging()
        try harness.start()
        func recent() -> [Double] {
            guard let json = try? harness.cli(["status", "--format", "json"]),
                let object = try? JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any],
                let instances = object["instances"] as? [[String: Any]]
            else { return [] }
            return instances.first?["recent"] as? [Double] ?? []
        }
        #expect(harness.eventually { recent().first == 40 })
        try harness.write(paging, "55\n")
        #expect(harness.eventually { recent().last == 55 }, "\(recent())")
        let values = recent()
        #expect(values.count <= 30)
        #expect(values.drop { $0 == 40 }.allSatisfy { $0 == 55 }, "oldest first: \(values)")
    }
}
