import ClusterTransport
import Foundation
import HamnConfiguration
import Logging
import RulesEngine
import Synchronization
import TestSupport
import Testing

@testable import HamnService

/// SIGTERM (docs/decisions.md, "Stopping a node"): through the cluster when there is one, at
/// once otherwise; a second signal or the timeout falls back to the stop at once. The real
/// service on the local transport (a node alone), and `StopSignals` driving two services of an
/// in-process cluster (the multi-node stop on corosync is in CorosyncTests).
@Suite("stopping a node", .serialized, .timeLimit(.minutes(1)))
struct StopTests {
    /// TE_FAIL_NODE for each state: each node's part appends "NODE kind STATE" to `log`.
    private static func failNodeRules(log: String, release: String = "") -> [(String, Int, String, [String]?)] {
        let append = "echo $HAMN_LOCAL_NODE"
        return [
            ("TE_FAIL_NODE", 0, "other \"/bin/sh -c '\(append) takeover 0 >> \(log)'\" 0 NULL\n", nil),
            (
                "TE_FAIL_NODE", 1,
                "event \"/bin/sh -c '\(release)\(append) release 1 >> \(log)'\" 0 NULL\nbarrier\nother \"/bin/sh -c '\(append) after 1 >> \(log)'\" 0 NULL\n",
                nil
            ),
            (
                "TE_FAIL_NODE", 2,
                "event \"/bin/sh -c '\(release)\(append) release 2 >> \(log)'\" 0 NULL\nbarrier\nother \"/bin/sh -c '\(append) acquire 2 >> \(log)'\" 0 NULL\n",
                nil
            ),
        ]
    }

    // MARK: The service, alone

    @Test("a node alone stops at once on SIGTERM: exit 0, the journal says why, no TE_FAIL_NODE")
    func aloneStopsAtOnce() throws {
        let harness = try ServiceHarness(definitions: [])
        let log = harness.outputDirectory + "/log"
        try harness.writeRules(Self.failNodeRules(log: log))
        try harness.start()
        let started = Date()
        harness.signal(SIGTERM)
        #expect(harness.waitForExit(seconds: 10) == 0, "\(harness.stderrText)")
        #expect(Date().timeIntervalSince(started) < 5, "at once, not after the stop timeout")
        let notes = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT text FROM log WHERE kind = 'service';"])
        #expect(notes.out.contains("SIGTERM: stopping at once: this node is alone in the cluster"), "\(notes.out)")
        #expect(!notes.out.contains("stopping through the cluster"), "\(notes.out)")
        let events = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT count(*) FROM event WHERE name = 'TE_FAIL_NODE';"])
        #expect(events.out == "0\n", "\(events)")
        #expect(harness.read("log") == nil)
        let run = try runTool("/usr/bin/sqlite3", [harness.journalPath, "SELECT end_reason FROM run;"])
        #expect(run.out == "shutdown\n", "\(run)")
    }

    @Test("more signals while stopping at once neither kill the service nor hang it: the segment finishes, exit 0")
    func signalsWhileStoppingAtOnce() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([
            ("slow", 0, "all \"/bin/sh -c 'sleep 1.5; touch \(out)/finished'\" 0 NULL\n", nil)
        ])
        try harness.start()
        try harness.cli(["trigger", "slow"])
        // The segment runs (its command takes 1.5 s) when the signals come.
        try harness.waitForStatus("running: event 1 slow state 0 node n1")
        harness.signal(SIGTERM)
        // The others come while it stops at once.
        try harness.waitForOutput("SIGTERM: stopping at once")
        harness.signal(SIGTERM)
        harness.signal(SIGINT)
        #expect(harness.waitForExit(seconds: 10) == 0, "\(harness.stderrText)")
        #expect(harness.read("finished") != nil, "the running segment finished")
        #expect(harness.stderrText.contains("already stopping at once"), "\(harness.stderrText)")
        let notes = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT count(*) FROM log WHERE text LIKE '%stopping at once%';"])
        #expect(notes.out == "1\n", "journaled once: \(notes)")
    }

    @Test("SIGINT is a stop too")
    func sigint() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.start()
        harness.signal(SIGINT)
        #expect(harness.waitForExit(seconds: 10) == 0, "\(harness.stderrText)")
        let notes = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT text FROM log WHERE kind = 'service';"])
        #expect(notes.out.contains("SIGINT: stopping at once: this node is alone in the cluster"), "\(notes.out)")
    }

    @Test(
        "validate --config refuses a bad stop key with its line",
        arguments: [
            ("stop:\n  timeout: 0s\n", ":7:12: error: stop.timeout: must be above 0 and at most 1d (86400s)"),
            ("stop:\n  timeout: 3d\n", ":7:12: error: stop.timeout: must be above 0 and at most 1d (86400s)"),
            ("stop: {mode: forced}\n", ":6:14: error: stop.mode: forced is for ha-cmd FORCE only"),
        ])
    func validateRefuses(_ extra: String, _ expected: String) throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: extra)
        let result = try harness.cli(["validate", harness.rulesPath, "--config", harness.configPath])
        #expect(result.status == 2, "\(result)")
        #expect(result.err.contains(harness.configPath + expected), "\(result.err)")
    }

    @Test("validate --config takes good stop keys")
    func validateTakes() throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "stop: {mode: takeover, timeout: 1d}\n")
        let result = try harness.cli(["validate", harness.rulesPath, "--config", harness.configPath])
        #expect(result.status == 0, "\(result)")
    }

    // MARK: Two services in process

    @Test(
        "the first signal stops the node through the cluster: its release, then the peer's part of state 1; no takeover"
    )
    func throughTheCluster() async throws {
        let cluster = try await Pair(rules: { Self.failNodeRules(log: $0) })
        defer { cluster.remove() }
        let signals = cluster.stopSignals(timeout: 60)
        signals.send("SIGTERM")
        #expect(await cluster.eventually(15) { cluster.n1Ended }, "n1 left the cluster: \(cluster.n1Notes)")
        #expect(await cluster.eventually(5) { cluster.log.contains("n2 after 1") }, "\(cluster.log)")
        #expect(cluster.log == "n1 release 1\nn2 after 1\n")
        #expect(
            cluster.n1Notes.contains {
                $0.hasPrefix(
                    "stopping through the cluster: TE_FAIL_NODE state 1 (graceful); a second SIGTERM stops at once")
            })
        #expect(!cluster.n1Notes.contains { $0.contains("stopping at once") }, "\(cluster.n1Notes)")
        #expect(cluster.n2Finished.contains("TE_FAIL_NODE/1@n1:completed"), "\(cluster.n2Finished)")
        // The behaviour under test is that nothing more happens: no takeover (state 0) follows
        // n1's leaving within this time.
        try await Task.sleep(for: .milliseconds(300))
        #expect(!cluster.n2Finished.contains { $0.hasPrefix("TE_FAIL_NODE/0") }, "\(cluster.n2Finished)")
        signals.end()
        await cluster.end()
    }

    @Test("stop: {mode: takeover}: TE_FAIL_NODE state 2")
    func takeover() async throws {
        let cluster = try await Pair(rules: { Self.failNodeRules(log: $0) })
        defer { cluster.remove() }
        let signals = cluster.stopSignals(mode: .takeover, timeout: 60)
        signals.send("SIGTERM")
        #expect(await cluster.eventually(15) { cluster.n1Ended }, "\(cluster.n1Notes)")
        #expect(await cluster.eventually(5) { cluster.log == "n1 release 2\nn2 acquire 2\n" }, "\(cluster.log)")
        signals.end()
        await cluster.end()
    }

    @Test("the stop event not ended within the timeout: the node stops at once, its running segment finishes first")
    func timeout() async throws {
        let cluster = try await Pair(rules: { Self.failNodeRules(log: $0, release: "sleep 2; ") })
        defer { cluster.remove() }
        let signals = cluster.stopSignals(timeout: 0.5)
        let started = ContinuousClock.now
        signals.send("SIGTERM")
        #expect(await cluster.eventually(15) { cluster.n1Ended }, "\(cluster.n1Notes)")
        #expect(ContinuousClock.now - started < .seconds(10))
        #expect(
            cluster.n1Notes.contains("stopping at once: the stop through the cluster did not end within 0.5 s"),
            "\(cluster.n1Notes)")
        #expect(cluster.log.hasPrefix("n1 release 1\n"), "the running release finished: \(cluster.log)")
        signals.end()
        await cluster.end()
    }

    @Test("a second signal while stopping through the cluster: the node stops at once")
    func secondSignal() async throws {
        let cluster = try await Pair(rules: { Self.failNodeRules(log: $0, release: "sleep 2; ") })
        defer { cluster.remove() }
        let signals = cluster.stopSignals(timeout: 600)
        signals.send("SIGTERM")
        #expect(
            await cluster.eventually(5) { cluster.n1Notes.contains { $0.hasPrefix("stopping through the cluster") } })
        signals.send("SIGTERM")
        #expect(await cluster.eventually(15) { cluster.n1Ended }, "\(cluster.n1Notes)")
        #expect(
            cluster.n1Notes.contains("stopping at once: a second SIGTERM while stopping through the cluster"),
            "\(cluster.n1Notes)")
        // A third changes nothing and hangs nothing.
        signals.send("SIGINT")
        signals.end()
        await cluster.end()
    }
}

/// The journal's notes and events, in memory.
private final class MemoryJournal: EventJournal {
    let notes = Mutex<[String]>([])
    /// Finished events as `NAME/STATE@NODE:OUTCOME` (state 0 written `/0`).
    let finished = Mutex<[String]>([])

    func append(_ entry: JournalEntry, at time: Date) throws {
        if case .finished(let event, let outcome) = entry {
            finished.withLock { $0.append("\(event.name)/\(event.state)@\(event.node.name):\(outcome.rawValue)") }
        }
    }
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws {
    }
    func note(_ text: String, kind: String, at time: Date) throws {
        notes.withLock { $0.append(text) }
    }
    func historyReport(limit: Int) throws -> (text: String, json: String) { ("", "[]") }
    func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine] { [] }
}

/// n1 and n2 on one `LoopbackHub`, each a `NodeService` on its own thread, synchronised.
private final class Pair: @unchecked Sendable {
    let directory: String
    let logPath: String
    let services: [NodeService]
    let transports: [LoopbackTransport]
    let journals = [MemoryJournal(), MemoryJournal()]
    let loops: [EventLoopThread]
    /// Whether each node's `run()` has returned.
    private let ended = Mutex([false, false])
    private var runs: [Task<Void, Never>] = []

    init(rules: (String) -> [(String, Int, String, [String]?)]) async throws {
        var template = Array((NSTemporaryDirectory() + "hamn-stop-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        directory = String(cString: made)
        chmod(directory, 0o755)
        logPath = directory + "/log"
        var text = ""
        for (name, state, program, _) in rules(logPath) {
            let rp = directory + "/\(name)_\(state).rp"
            try Data(program.utf8).write(to: URL(fileURLWithPath: rp))
            chmod(rp, 0o644)
            text += [name, "\(state)", rp, "2", "0", "", "", "", ""].joined(separator: "\n") + "\n"
        }
        let rulesPath = directory + "/rules.hacmprd"
        try Data(text.utf8).write(to: URL(fileURLWithPath: rulesPath))
        chmod(rulesPath, 0o644)
        let nodes = [ClusterNode(name: "n1", number: 1), ClusterNode(name: "n2", number: 2)]
        let hub = LoopbackHub()
        var services: [NodeService] = []
        var transports: [LoopbackTransport] = []
        var loops: [EventLoopThread] = []
        for (index, node) in nodes.enumerated() {
            let configuration = ServiceConfiguration(
                node: node, nodes: nodes, rules: rulesPath, journal: directory + "/\(node.name).db",
                socket: directory + "/\(node.name).sock")
            let (book, report, catalogue) = ServiceRunner.loadRules(configuration)
            guard let book else { throw ServiceError("rules: \(report.summary)") }
            let transport = await hub.join(node)
            let loop = try EventLoopThread(name: "stop-\(node.name)")
            services.append(
                NodeService(
                    configuration: configuration, rules: book, catalogue: catalogue, transport: transport,
                    journal: journals[index], logger: Logger(label: "stop-test-\(node.name)"), loop: loop))
            transports.append(transport)
            loops.append(loop)
        }
        self.services = services
        self.transports = transports
        self.loops = loops
        for index in 0..<2 {
            let service = services[index]
            runs.append(
                Task { [self] in
                    await service.run()
                    ended.withLock { $0[index] = true }
                })
        }
        // Both synchronised with both members.
        let all = services
        let ready = await eventually(10) {
            for service in all {
                let status = await service.handle(.status()).text ?? ""
                guard status.contains("members: n1 n2"), !status.contains("waiting for the cluster's state") else {
                    return false
                }
            }
            return true
        }
        guard ready else { throw ServiceError("the two services did not synchronise") }
    }

    var n1Ended: Bool { ended.withLock { $0[0] } }
    var n1Notes: [String] { journals[0].notes.withLock { $0 } }
    var n2Finished: [String] { journals[1].finished.withLock { $0 } }
    var log: String {
        FileManager.default.contents(atPath: logPath).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// Signal names for n1's `StopSignals`, handled until `end()`.
    struct Signals {
        let continuation: AsyncStream<String>.Continuation
        let task: Task<Void, Never>
        func send(_ name: String) { continuation.yield(name) }
        func end() { task.cancel() }
    }

    func stopSignals(mode: StopMode = .graceful, timeout: Double) -> Signals {
        let (stream, continuation) = AsyncStream<String>.makeStream()
        let control = StopSignals(
            service: services[0], mode: mode, timeout: timeout, logger: Logger(label: "stop-test"), beforeStopping: {})
        return Signals(continuation: continuation, task: Task { await control.handle(stream) })
    }

    func eventually(_ seconds: Double, _ condition: () async -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if await condition() { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return await condition()
    }

    /// Every node that has not left leaves; their runs end.
    func end() async {
        for (index, transport) in transports.enumerated() where !ended.withLock({ $0[index] }) {
            await transport.leave()
        }
        for run in runs { await run.value }
    }

    func remove() {
        for loop in loops { loop.stop() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}
