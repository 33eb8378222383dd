import Foundation
import TestSupport
import Testing

/// Issue 16, findings 1, 2, 13 and 15, on the real service: bounded durations, the control
/// socket under too many clients, slow clients and a low descriptor limit, many commands and
/// command variables at that limit, `timeouts: 0`, and control characters on the terminal.
@Suite("hardening: durations, limits, connections, terminal text", .serialized, .timeLimit(.minutes(2)))
struct LimitsHardeningTests {
    // MARK: Finding 1: durations

    @Test("a duration beyond a year: validate --config names its line and column, run refuses it without crashing")
    func durationBeyondAYear() throws {
        let harness = try ServiceHarness(
            definitions: [("work", 0, "all \"/bin/true\" 0 NULL\n", nil)],
            extraConfiguration: "networks: [lo]\nnetwork_interval: 1e19")
        let error = "\(harness.configPath):7:19: error: network_interval: '1e19' is longer than the longest duration"
        let validate = try harness.cli(["validate", "--config", harness.configPath, harness.rulesPath])
        #expect(validate.status == 2)
        #expect(validate.err.contains(error), "\(validate.err)")
        let run = try runTool("/usr/bin/timeout", ["20", ServiceHarness.binary, "run", "--config", harness.configPath])
        #expect(run.status == 2, "refused, not a crash (132 is SIGILL): \(run.err)")
        #expect(run.err.contains(error), "\(run.err)")
    }

    @Test("wait-event --timeout beyond a year exits 2 with the reason; the service answers on")
    func waitEventTimeoutBeyondAYear() throws {
        let harness = try ServiceHarness(definitions: [("x", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        try harness.start()
        for timeout in ["1e19", "1e8", "366d"] {
            // Bounded: a command line that took 1e8 s would wait three years.
            let cli = try runTool(
                "/usr/bin/timeout",
                [
                    "-s", "KILL", "10", ServiceHarness.binary, "wait-event", "--socket", harness.socketPath, "x",
                    "--timeout", timeout,
                ])
            #expect(cli.status == 2, "\(cli)")
            #expect(
                cli.err.contains("--timeout: '\(timeout)' is longer than the longest duration accepted, 365d"),
                "\(cli.err)")
        }
        // The same request sent by hand gets its refusal at once (no wait of three years).
        for timeout in ["1e19", "1e8", "1e300"] {
            let answer = try RawClient(harness.socketPath).request(
                "{\"wait_event\":{\"name\":\"x\",\"timeout\":\(timeout)}}", within: 5)
            #expect(answer.contains("\"code\":\"malformed-request\""), "\(timeout): \(answer)")
            #expect(answer.contains("not a number of seconds from 0 to 31536000 (365d)"), "\(timeout): \(answer)")
        }
        #expect(try harness.boundedCLI(["status"]).status == 0)
    }

    // MARK: Finding 13: timeouts: 0

    @Test("timeouts: 0 is no timeout: a command of a second runs to its end")
    func zeroTimeoutIsNone() throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "timeouts: {default: 0}")
        let out = harness.outputDirectory
        try harness.writeRules([
            ("slow", 0, "all \"/bin/sleep 1\" 0 NULL\nall \"/bin/touch \(out)/done\" 0 NULL\n", nil)
        ])
        try harness.start()
        #expect(try harness.boundedCLI(["trigger", "slow"]).status == 0)
        try waitUntil("the event to end", observed: { harness.boundedStatus }) {
            let history = (try? harness.boundedCLI(["history"]))?.out ?? ""
            return history.contains("slow state 0") && !history.contains("running")
        }
        let history = try harness.boundedCLI(["history"]).out
        #expect(history.contains("\"/bin/sleep 1\" exit 0"), "\(history)")
        #expect(history.contains("completed") && !history.contains("failed"), "\(history)")
        #expect(harness.read("done") != nil)
    }

    // MARK: Finding 15: control characters

    @Test("control characters in an event name are escaped in status, history and mon")
    func controlCharactersEscaped() throws {
        let name = "bad\u{1b}]0;pwned\u{07}\u{1b}[31m"
        let shown = "bad\\x1b]0;pwned\\x07\\x1b[31m"
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([
            (name, 0, "all \"/bin/sleep 1\" 0 NULL\nall \"/bin/touch \(out)/done\" 0 NULL\n", nil)
        ])
        try harness.start()
        let mon = try MonProcess(socket: harness.socketPath)
        #expect(try harness.boundedCLI(["trigger", name]).status == 0)
        try harness.waitForStatus("running: event 1 \(shown) state 0")
        #expect(!harness.boundedStatus.contains("\u{1b}"))
        #expect(harness.eventually { harness.read("done") != nil })
        try waitUntil("history to show the event completed", observed: { harness.boundedStatus }) {
            (try? harness.boundedCLI(["history"]))?.out.contains("\(shown) state 0 node n1 completed") == true
        }
        #expect(harness.eventually { mon.text.contains("EVENT COMPLETED: \(shown) 0") }, "\(mon.text)")
        for (what, text) in [("history", try harness.boundedCLI(["history"]).out), ("mon", mon.text)] {
            #expect(!text.contains("\u{1b}") && !text.contains("\u{07}"), "\(what) passed a control character")
        }
        // The service escapes its lines itself: a client other than this command line gets
        // them escaped too.
        let raw = try RawClient(harness.socketPath).request("{\"history\":{\"limit\":5}}", within: 5)
        let answer = try JSONSerialization.jsonObject(with: Data(raw.utf8)) as? [String: [String: String]]
        let text = try #require(answer?["report"]?["text"], "\(raw)")
        #expect(text.contains(shown) && !text.contains("\u{1b}"), "\(text)")
    }

    // MARK: Finding 2: connections, deadlines, descriptors

    @Test("connections over the limit are refused with an error; the listener serves on once they go")
    func connectionLimit() throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "control_connections: 8")
        try harness.start()
        try waitUntil("the start's connections to close") { harness.openControlConnections == 0 }
        // Eight waiters for an event that never comes: served, and held for as long as they wait.
        let held = try (0..<8).map { _ in try RawClient(harness.socketPath) }
        for client in held { client.send(Array("{\"wait_event\":{\"name\":\"never\"}}\n".utf8)) }
        // Once the eight are served, a ninth is refused at once.
        var extra = ""
        try waitUntil(
            "a ninth connection to be refused",
            observed: { "\(extra); held: \(held.map { $0.read(within: 0.01) + ($0.closedByPeer ? " (closed)" : "") })" }
        ) {
            extra = (try? RawClient(harness.socketPath).read(within: 2)) ?? ""
            return extra.contains("\"code\":\"busy\"")
        }
        #expect(extra.contains("too many control connections (8 served at once)"), "\(extra)")
        let status = try harness.boundedCLI(["status"])
        #expect(status.status == 1 && status.err.contains("too many control connections"), "\(status)")
        withExtendedLifetime(held) {}
        for client in held { client.close() }
        try waitUntil("status to answer again") { (try? harness.boundedCLI(["status"]))?.status == 0 }
    }

    @Test("a client that sends a byte a second is dropped at the request deadline (5 s)")
    func slowClientDropped() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.start()
        let client = try RawClient(harness.socketPath)
        let start = ContinuousClock.now
        let request = Array("{\"status\":{}}".utf8)
        var answer = ""
        for byte in request.dropLast() {
            // The service's answer (and the end of the connection) shows as readable.
            answer = client.read(within: 1)
            if !answer.isEmpty || client.closedByPeer { break }
            _ = client.send([byte])
        }
        if answer.isEmpty { answer = client.read(within: 5) }
        let elapsed = ContinuousClock.now - start
        #expect(answer.contains("no whole request line within 5"), "\(answer)")
        #expect(elapsed < .seconds(8), "dropped after \(elapsed), while it still sent")
        #expect(try harness.boundedCLI(["status"]).status == 0)
    }

    @Test("at 256 descriptors, 300 clients at once: refused or served, and status answers once they go")
    func manyClientsAtALowLimit() throws {
        let harness = try ServiceHarness(definitions: [])
        harness.launcher = ["/usr/bin/prlimit", "--nofile=256:256"]
        try harness.start()
        let clients = RawClient.many(300, harness.socketPath)
        Thread.sleep(forTimeInterval: 0.5)  // not a wait for something: the clients hold on a while
        for client in clients { client.close() }
        try waitUntil("status to answer again", timeout: .seconds(20), observed: { harness.stderrText }) {
            (try? harness.boundedCLI(["status"]))?.status == 0
        }
        #expect(harness.process?.isRunning == true)
    }

    @Test("out of descriptors (EMFILE), the listener refuses, backs off and serves on")
    func listenerSurvivesEMFILE() throws {
        // A connection limit above what 128 descriptors allow, so that accept itself fails.
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "control_connections: 1000")
        harness.launcher = ["/usr/bin/prlimit", "--nofile=128:128"]
        try harness.start()
        let clients = RawClient.many(200, harness.socketPath)
        try harness.waitForOutput("control socket: cannot accept a connection: Too many open files")
        let refused = clients.map { $0.read(within: 0.05) }.filter { $0.contains("out of file descriptors") }
        for client in clients { client.close() }
        // The served ones end at the request deadline (5 s); then descriptors are free.
        try waitUntil("status to answer again", timeout: .seconds(30), observed: { harness.stderrText }) {
            (try? harness.boundedCLI(["status"]))?.status == 0
        }
        try harness.waitForOutput("control socket: accepting connections again")
        #expect(!refused.isEmpty, "some client was told why it was refused")
    }

    @Test("at 256 descriptors, 400 commands in one segment all run and the event completes")
    func manyCommandsAtALowLimit() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        // Each lasts a while, so that all 400 would hold their descriptors at once.
        let step = try harness.script("step", "sleep 0.3\ntouch \"$1\"")
        let program = (0..<400).map { "all \"\(step) \(out)/c\($0)\" 0 NULL" }.joined(separator: "\n") + "\n"
        try harness.writeRules([("wide", 0, program, nil)])
        harness.launcher = ["/usr/bin/prlimit", "--nofile=256:256"]
        try harness.start()
        #expect(try harness.boundedCLI(["trigger", "wide"]).status == 0)
        try waitUntil("the event to complete", timeout: .seconds(60), observed: { harness.boundedStatus }) {
            (try? harness.boundedCLI(["history"]))?.out.contains("wide state 0 node n1 completed") == true
        }
        let files = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasPrefix("c") }
        #expect(files.count == 400)
        let history = try harness.boundedCLI(["history"]).out
        #expect(history.components(separatedBy: "\" exit 0 in").count - 1 == 400)
        #expect(!history.contains("could not start"), "\(history.prefix(2000))")
    }

    @Test("at 256 descriptors, 300 command variables are all sampled and the service answers")
    func manyVariablesAtALowLimit() throws {
        let count = 300
        // Each sample takes a while, so that all 300 would hold their descriptors at once.
        let sampleDirectory = NSTemporaryDirectory() + "hamn-var-\(getpid())"
        try FileManager.default.createDirectory(atPath: sampleDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: sampleDirectory) }
        let sample = sampleDirectory + "/sample"
        try Data("#!/bin/sh\nsleep 0.2\necho 7\n".utf8).write(to: URL(fileURLWithPath: sample))
        chmod(sampleDirectory, 0o755)
        chmod(sample, 0o755)
        let variables = (0..<count).map { "  - {name: Site.V\($0), command: \(sample), interval: 2s}" }
        let harness = try ServiceHarness(
            definitions: (0..<count).map {
                ("v\($0)", 0, "all \"/bin/true\" 0 NULL\n", ["Site.V\($0)", "NodeNum=*", "X > 100", ""])
            },
            extraConfiguration: "variables:\n" + variables.joined(separator: "\n"))
        harness.launcher = ["/usr/bin/prlimit", "--nofile=256:256"]
        try harness.start()
        try waitUntil(
            "every variable to have a sample", timeout: .seconds(60),
            observed: { String(harness.boundedStatus.suffix(500)) }
        ) {
            harness.boundedStatus.components(separatedBy: ": armed, last 7").count - 1 == count
        }
        #expect(!harness.boundedStatus.contains("monitor failing"), "\(harness.boundedStatus.suffix(2000))")
    }
}

extension ServiceHarness {
    /// `cli`, ended after 10 s: a service whose listener died would leave it waiting for ever.
    func boundedCLI(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try runTool(
            "/usr/bin/timeout",
            ["-s", "KILL", "10", Self.binary, arguments[0], "--socket", socketPath] + arguments.dropFirst())
    }

    var boundedStatus: String { (try? boundedCLI(["status"]))?.out ?? "" }
}

/// A client of the control socket written by hand: requests the command line would never send,
/// and clients that hold their connection or write slowly.
final class RawClient {
    let fd: Int32
    private(set) var closedByPeer = false

    init(_ path: String, connectTimeout: Double = 5) throws {
        fd = try UnixSocket.connect(path, sendTimeout: connectTimeout)
    }

    deinit { close() }

    /// Up to `count` clients, connected one after the other; stops after three in a row that
    /// cannot connect within 0.2 s (a listener that does not accept leaves them waiting).
    static func many(_ count: Int, _ path: String) -> [RawClient] {
        var clients: [RawClient] = []
        var failures = 0
        while clients.count < count, failures < 3 {
            if let client = try? RawClient(path, connectTimeout: 0.2) {
                clients.append(client)
                failures = 0
            } else {
                failures += 1
            }
        }
        return clients
    }

    private var isClosed = false

    func close() {
        guard !isClosed else { return }
        isClosed = true
        Glibc.close(fd)
    }

    @discardableResult
    func send(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) } == bytes.count
    }

    /// Sends `line` and a newline, then reads the answer until the service closes.
    func request(_ line: String, within seconds: Double) throws -> String {
        guard send(Array((line + "\n").utf8)) else { throw ServiceError("send: \(errno)") }
        return read(within: seconds)
    }

    /// What arrives within `seconds` (until the peer closes, or the time is up).
    func read(within seconds: Double) -> String {
        var data = [UInt8]()
        let end = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var buffer = [UInt8](repeating: 0, count: 65536)
        while !closedByPeer {
            let left = ContinuousClock.now.duration(to: end)
            guard left > .zero else { break }
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ms = Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000 + 1)
            guard poll(&entry, 1, ms) > 0 else { break }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 {
                closedByPeer = true
                break
            }
            data += buffer[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }
}
