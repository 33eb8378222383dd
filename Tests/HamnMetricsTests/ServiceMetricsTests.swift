import ClusterTransport
import Foundation
import HamnConfiguration
import HamnMetrics
import HamnService
import Logging
import RulesEngine
import Synchronization
import TestSupport
import Testing

/// n1 and n2 on one `LoopbackHub`, each a real `NodeService` on its own thread with its own
/// SQLite journal and its own metrics, synchronised; their rules written from `.rp` texts.
final class MetricsCluster: Sendable {
    let directory: String
    let services: [NodeService]
    let transports: [LoopbackTransport]
    private let runs: [Task<Void, Never>]

    init(programs: [(name: String, text: String)]) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "hamn-metrics-\(UUID().uuidString)"
        ).path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        var rules = ""
        for (name, text) in programs {
            let path = directory + "/\(name).rp"
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            rules += [name, "0", path, "2", "0", "", "", "", ""].joined(separator: "\n") + "\n"
        }
        try Data(rules.utf8).write(to: URL(fileURLWithPath: directory + "/rules.hacmprd"))
        let nodes = [ClusterNode(name: "n1", number: 1), ClusterNode(name: "n2", number: 2)]
        let hub = LoopbackHub()
        var services: [NodeService] = []
        var transports: [LoopbackTransport] = []
        for node in nodes {
            let configuration = ServiceConfiguration(
                node: node, nodes: nodes, rules: directory + "/rules.hacmprd",
                journal: directory + "/\(node.name).db", socket: directory + "/\(node.name).sock")
            let (book, report, catalogue) = ServiceRunner.loadRules(configuration)
            guard let book else { throw RulesRefused(summary: report.summary) }
            let transport = await hub.join(node)
            services.append(
                NodeService(
                    configuration: configuration, rules: book, catalogue: catalogue, transport: transport,
                    journal: try Journal(path: configuration.journal), logger: Logger(label: "metrics-\(node.name)"),
                    loop: try EventLoopThread(name: "metrics-\(node.name)")))
            transports.append(transport)
        }
        self.services = services
        self.transports = transports
        runs = services.map { service in Task { await service.run() } }
        try await waitUntil("both services synchronised with both members") {
            for service in services {
                let status = await service.handle(.status()).text ?? ""
                guard status.contains("members: n1 n2"), !status.contains("waiting for the cluster's state") else {
                    return false
                }
            }
            return true
        }
    }

    /// Node `index`'s exposition, as `/metrics` serves it.
    func exposition(_ index: Int) -> String { services[index].metrics.exposition() }

    /// Waits until node `index`'s exposition has `line`.
    func waitForLine(_ index: Int, _ line: String) async throws {
        // The async wait: the services' threads go on meanwhile, no thread of the pool is blocked.
        try await waitUntil("n\(index + 1)'s exposition has \(line)", observed: { () async in self.exposition(index) })
        {
            () async in self.exposition(index).split(separator: "\n").contains { $0 == line }
        }
    }

    func end() async {
        for transport in transports { await transport.leave() }
        for run in runs { await run.value }
        for service in services { await service.closeJournal() }
        try? FileManager.default.removeItem(atPath: directory)
    }
}

struct RulesRefused: Error {
    var summary: String
}

@Suite("a service's metrics", .serialized, .timeLimit(.minutes(1)))
struct ServiceMetricsTests {
    /// An event of two segments on both nodes (a barrier between), and one whose command fails.
    static let programs = [
        (name: "APP_MOVE", text: "all \"/bin/true\" 0 NULL\nbarrier\nall \"/bin/true\" 0 NULL\n"),
        (name: "APP_FAIL", text: "event \"/bin/false\" 0 NULL\n"),
    ]

    @Test(
        "two services run an event with a barrier: each node's exposition counts it, observes its duration, its segments, its barrier waits and the journal's commits; queue, members and quorum are the service's"
    )
    func eventWithBarrier() async throws {
        let cluster = try await MetricsCluster(programs: Self.programs)
        let answer = await cluster.services[0].handle(.trigger(event: "APP_MOVE", state: 0, node: nil))
        #expect(answer.text == "raised APP_MOVE state 0 on n1", "\(answer)")
        for index in 0..<2 {
            try await cluster.waitForLine(index, #"hamn_events_total{event="APP_MOVE",outcome="completed"} 1"#)
            let text = cluster.exposition(index)
            #expect(count(text, "hamn_event_duration_seconds", event: "APP_MOVE") == 1)
            #expect(count(text, "hamn_segment_duration_seconds", event: "APP_MOVE") == 2)
            #expect(count(text, "hamn_barrier_wait_seconds", event: "APP_MOVE") == 2)
            #expect(lines(text, "hamn_queue_length") == ["hamn_queue_length 0.0"])
            #expect(lines(text, "hamn_members") == ["hamn_members 2.0"])
            #expect(lines(text, "hamn_quorate") == ["hamn_quorate 1.0"])
            #expect(lines(text, "hamn_coordinator_quorate") == ["hamn_coordinator_quorate 1.0"])
            let commits = lines(text, "hamn_journal_commit_seconds_count ").first.flatMap {
                Int($0.split(separator: " ")[1])
            }
            #expect((commits ?? 0) > 0, "\(text)")
            // The event's duration is the sum of its segments' (one clock, the segments end to end).
            let sums = ["hamn_event_duration_seconds", "hamn_segment_duration_seconds"].map { histogram in
                totals(text, histogram, event: "APP_MOVE").first.flatMap { Double($0.split(separator: " ")[1]) } ?? -1
            }
            #expect(sums[0] > 0 && abs(sums[0] - sums[1]) < 1e-9, "\(sums)")
        }
        await cluster.end()
    }

    @Test("a failed command holds the event: hamn_event_held 1 until resume skips the rest, then 0 and outcome failed")
    func heldUntilResume() async throws {
        let cluster = try await MetricsCluster(programs: Self.programs)
        _ = await cluster.services[0].handle(.trigger(event: "APP_FAIL", state: 0, node: nil))
        try await cluster.waitForLine(1, #"hamn_event_held{event="APP_FAIL"} 1.0"#)
        #expect(lines(cluster.exposition(1), "hamn_events_total") == [])
        let resumed = await cluster.services[1].handle(.resume(cancelQueued: false))
        #expect(resumed.text != nil, "\(resumed)")
        for index in 0..<2 {
            try await cluster.waitForLine(index, #"hamn_events_total{event="APP_FAIL",outcome="failed"} 1"#)
            #expect(lines(cluster.exposition(index), "hamn_event_held") == [#"hamn_event_held{event="APP_FAIL"} 0.0"#])
        }
        await cluster.end()
    }
}

/// Answers its samples as scripted, in order (a batch or an error each), and sleeps from the
/// one after the last on (until cancelled).
private final class ScriptedSampler: InstanceReportingSampler {
    let variable: String
    let calls = Mutex(0)
    private let answers: [Result<SampleBatch, SamplerError>]

    init(_ variable: String, _ answers: [Result<SampleBatch, SamplerError>]) {
        self.variable = variable
        self.answers = answers
    }

    /// Instance `Name=name` of `variable` with `value`.
    static func named(_ variable: String, _ name: String, _ value: Double) -> SampleObservation {
        SampleObservation(variable: variable, instance: ["Name": name], value: .number(value))
    }

    func sampleBatch(node: ClusterNode) async throws(SamplerError) -> SampleBatch {
        let call = calls.withLock { value -> Int in
            value += 1
            return value
        }
        guard call <= answers.count else {
            try? await Task.sleep(for: .seconds(3600))
            throw SamplerError("cancelled")
        }
        switch answers[call - 1] {
        case .success(let batch): return batch
        case .failure(let error): throw error
        }
    }

    /// A scheduler of this sampler alone, every 5 ms, into `metrics`. A deadline of an hour: the
    /// sample left sleeping is not a failure.
    func scheduler(_ metrics: HamnMetrics) -> MonitorScheduler {
        MonitorScheduler(
            entries: [
                MonitorPlan.Entry(
                    variable: variable, interval: .milliseconds(5), target: .node, sampler: self,
                    deadline: .seconds(3600))
            ],
            node: ClusterNode(name: "n1", number: 1), metrics: metrics)
    }
}

@Suite("the monitors' metrics", .timeLimit(.minutes(1)))
struct MonitorMetricsTests {
    @Test(
        "the scheduler counts every sample and every failed one (not once per streak), and sets the instances' values")
    func samplesAndFailures() async throws {
        // Fails its first two samples, reports a problem with one instance on its third,
        // answers on its fourth.
        let variable = "TEST.scripted"
        let sampler = ScriptedSampler(
            variable,
            [
                .failure(SamplerError("broken 1")), .failure(SamplerError("broken 2")),
                .success(
                    SampleBatch(
                        observations: [ScriptedSampler.named(variable, "a", 3)],
                        problems: [SampleProblem(instance: "Name=b", message: "no b")])),
                .success(SampleBatch(observations: [ScriptedSampler.named(variable, "a", 4)])),
            ])
        let metrics = HamnMetrics(node: "n1")
        let run = Task { await sampler.scheduler(metrics).run { _ in } }
        try await waitUntil("the fifth sample started") { () async in sampler.calls.withLock { $0 } >= 5 }
        run.cancel()
        await run.value
        let text = metrics.exposition()
        #expect(
            Set(lines(text, "hamn_monitor_")) == [
                #"hamn_monitor_samples_total{variable="TEST.scripted"} 4"#,
                #"hamn_monitor_failures_total{variable="TEST.scripted"} 3"#,
            ])
        #expect(
            lines(text, "hamn_variable_value") == [
                #"hamn_variable_value{variable="TEST.scripted",instance="Name=a",field=""} 4.0"#
            ])
    }

    /// Reports instances a and b on its first sample, a alone on its second.
    private static func shrinking(_ variable: String) -> ScriptedSampler {
        ScriptedSampler(
            variable,
            [
                .success(
                    SampleBatch(
                        observations: [
                            ScriptedSampler.named(variable, "a", 1), ScriptedSampler.named(variable, "b", 7),
                        ])),
                .success(SampleBatch(observations: [ScriptedSampler.named(variable, "a", 2)])),
            ])
    }

    @Test(
        "an instance the sampler stops reporting loses its series; after a reload, a variable no longer sampled loses all of its"
    )
    func instancesGo() async throws {
        let metrics = HamnMetrics(node: "n1")
        let shrinking = Self.shrinking("TEST.shrinking")
        let run = Task { await shrinking.scheduler(metrics).run { _ in } }
        try await waitUntil("the third sample started") { () async in shrinking.calls.withLock { $0 } >= 3 }
        #expect(
            lines(metrics.exposition(), "hamn_variable_value") == [
                #"hamn_variable_value{variable="TEST.shrinking",instance="Name=a",field=""} 2.0"#
            ])
        // The reload: the monitors start again, with another variable only.
        run.cancel()
        await run.value
        let other = Self.shrinking("TEST.other")
        let again = Task { await other.scheduler(metrics).run { _ in } }
        try await waitUntil("the other's third sample started") { () async in other.calls.withLock { $0 } >= 3 }
        again.cancel()
        await again.value
        #expect(
            lines(metrics.exposition(), "hamn_variable_value") == [
                #"hamn_variable_value{variable="TEST.other",instance="Name=a",field=""} 2.0"#
            ])
    }
}
