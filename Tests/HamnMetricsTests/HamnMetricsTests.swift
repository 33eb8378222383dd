import HamnMetrics
import Metrics
import RecoveryPrograms
import Synchronization
import Testing

@testable import RulesEngine

private let n1 = ClusterNode(name: "n1", number: 1)
private let n2 = ClusterNode(name: "n2", number: 2)

private func event(_ id: Int, _ name: String) -> ClusterEvent {
    ClusterEvent(id: id, name: name, state: 0, node: n1, resource: nil, priority: 0, arrival: id)
}

private func command(_ eventID: Int, _ node: ClusterNode, segment: Int) -> JournalEntry {
    .commandFinished(
        eventID: eventID, node: node, segment: segment,
        result: CommandResult(
            command: "/bin/true", line: 1, termination: .exited(0), accepted: true, duration: 0.1, outputTail: ""))
}

/// The exposition's lines (not its comments) that start with `prefix`, in its order.
func lines(_ exposition: String, _ prefix: String) -> [String] {
    exposition.split(separator: "\n").map(String.init).filter { $0.hasPrefix(prefix) }
}

/// A histogram's `_sum` and `_count` lines for `event` (its buckets left out).
func totals(_ exposition: String, _ histogram: String, event: String) -> [String] {
    lines(exposition, histogram + "_").filter { !$0.contains("_bucket") && $0.contains(#"{event="\#(event)"}"#) }
}

/// The count of a histogram's bucket `le` for `event`; nil when it has none.
func bucket(_ exposition: String, _ histogram: String, event: String, le: String) -> Int? {
    lines(exposition, histogram + #"_bucket{event="\#(event)",le="\#(le)"} "#).first.flatMap {
        Int($0.split(separator: " ")[1])
    }
}

/// The value of a histogram's `_count` for `event`; nil when it has none.
func count(_ exposition: String, _ histogram: String, event: String) -> Int? {
    lines(exposition, histogram + #"_count{event="\#(event)"} "#).first.flatMap { Int($0.split(separator: " ")[1]) }
}

@Suite("the metrics module: what the exposition says after given observations")
struct HamnMetricsTests {
    @Test("an event of two segments: its count by outcome, its duration, each segment's and this node's barrier waits")
    func eventTimings() {
        let metrics = HamnMetrics(node: "n1")
        let app = event(1, "APP_DOWN")
        metrics.record([.started(app, displayName: "app down", participants: [n1, n2])], at: 10)
        // Segment 0: n1's commands end at 10.75, n2's at 11: the barrier passes at 11.
        metrics.record([command(1, n1, segment: 0)], at: 10.75)
        metrics.record(
            [command(1, n2, segment: 0), .barrierPassed(eventID: 1, index: 0, participants: [n1, n2])], at: 11)
        // Segment 1: n1 runs nothing; the event ends (the last barrier) at 13.
        metrics.record([command(1, n2, segment: 1), .finished(app, outcome: .completed)], at: 13)
        let text = metrics.exposition()

        #expect(lines(text, "hamn_events_total") == [#"hamn_events_total{event="APP_DOWN",outcome="completed"} 1"#])
        #expect(
            totals(text, "hamn_event_duration_seconds", event: "APP_DOWN") == [
                #"hamn_event_duration_seconds_sum{event="APP_DOWN"} 3.0"#,
                #"hamn_event_duration_seconds_count{event="APP_DOWN"} 1"#,
            ])
        #expect(bucket(text, "hamn_event_duration_seconds", event: "APP_DOWN", le: "2.5") == 0)
        #expect(bucket(text, "hamn_event_duration_seconds", event: "APP_DOWN", le: "5.0") == 1)
        // Segments of 1 s and 2 s.
        #expect(
            totals(text, "hamn_segment_duration_seconds", event: "APP_DOWN") == [
                #"hamn_segment_duration_seconds_sum{event="APP_DOWN"} 3.0"#,
                #"hamn_segment_duration_seconds_count{event="APP_DOWN"} 2"#,
            ])
        #expect(bucket(text, "hamn_segment_duration_seconds", event: "APP_DOWN", le: "0.5") == 0)
        #expect(bucket(text, "hamn_segment_duration_seconds", event: "APP_DOWN", le: "1.0") == 1)
        #expect(bucket(text, "hamn_segment_duration_seconds", event: "APP_DOWN", le: "2.5") == 2)
        // Waits: 0.25 s after its commands of segment 0, the whole 2 s of segment 1 (none there).
        #expect(
            totals(text, "hamn_barrier_wait_seconds", event: "APP_DOWN") == [
                #"hamn_barrier_wait_seconds_sum{event="APP_DOWN"} 2.25"#,
                #"hamn_barrier_wait_seconds_count{event="APP_DOWN"} 2"#,
            ])
        #expect(bucket(text, "hamn_barrier_wait_seconds", event: "APP_DOWN", le: "0.25") == 1)
        #expect(text.contains("# TYPE hamn_barrier_wait_seconds histogram\n"))
        #expect(text.contains("# TYPE hamn_events_total counter\n"))
    }

    @Test(
        "a failed command holds the event (gauge 1); retry releases it; skip ends it failed (gauge 0, outcome failed)")
    func heldEvent() {
        let metrics = HamnMetrics(node: "n1")
        let app = event(4, "APP_DOWN")
        metrics.record([.started(app, displayName: "app down", participants: [n1])], at: 0)
        metrics.record([.failed(app, node: n1, segment: 0)], at: 1)
        #expect(lines(metrics.exposition(), "hamn_event_held") == [#"hamn_event_held{event="APP_DOWN"} 1.0"#])
        metrics.record(
            [.resumed(ResumeEntry(mode: .retry, cancelQueued: false, user: nil, node: n1, event: app))], at: 2)
        #expect(lines(metrics.exposition(), "hamn_event_held") == [#"hamn_event_held{event="APP_DOWN"} 0.0"#])
        metrics.record([.failed(app, node: n1, segment: 0)], at: 3)
        #expect(lines(metrics.exposition(), "hamn_event_held") == [#"hamn_event_held{event="APP_DOWN"} 1.0"#])
        metrics.record(
            [
                .resumed(ResumeEntry(mode: .skip, cancelQueued: false, user: nil, node: n1, event: app)),
                .finished(app, outcome: .failed),
            ], at: 4)
        let text = metrics.exposition()
        #expect(lines(text, "hamn_event_held") == [#"hamn_event_held{event="APP_DOWN"} 0.0"#])
        #expect(lines(text, "hamn_events_total") == [#"hamn_events_total{event="APP_DOWN",outcome="failed"} 1"#])
        // A failed event's last segment did not pass its barrier: no segment is observed.
        #expect(count(text, "hamn_segment_duration_seconds", event: "APP_DOWN") == 0)
        #expect(count(text, "hamn_event_duration_seconds", event: "APP_DOWN") == 1)
    }

    @Test("fencing outcomes by fenced node and outcome; a fencer that gave up counts as gave_up")
    func fencing() {
        let metrics = HamnMetrics(node: "n1")
        metrics.record(
            [
                .fence(.outcome(node: "n2", .failed(reason: "timeout"), by: n1, attempt: 1)),
                .fence(.outcome(node: "n2", .failed(reason: "timeout"), by: n1, attempt: 2)),
                .fence(.gaveUp(node: n2, failures: 2)),
                .fence(.outcome(node: "n2", .confirmed, by: n1, attempt: 0)),
                .fence(.outcome(node: "n3", .fenced, by: n1, attempt: 1)),
            ], at: 0)
        #expect(
            Set(lines(metrics.exposition(), "hamn_fence_outcomes_total")) == [
                #"hamn_fence_outcomes_total{node="n2",outcome="failed"} 2"#,
                #"hamn_fence_outcomes_total{node="n2",outcome="gave_up"} 1"#,
                #"hamn_fence_outcomes_total{node="n2",outcome="confirmed"} 1"#,
                #"hamn_fence_outcomes_total{node="n3",outcome="fenced"} 1"#,
            ])
    }

    @Test("monitor samples and failures by variable; each instance's number (each numeric field) as a gauge")
    func monitors() {
        let metrics = HamnMetrics(node: "n1")
        metrics.monitorSampled(
            variable: "ProcessStatus",
            observations: [
                SampleObservation(
                    variable: "ProcessStatus", instance: ["ProgName": "nfsd", "NodeNum": "1"], value: .number(3)),
                SampleObservation(
                    variable: "ProcessStatus", instance: ["ProgName": "sshd", "NodeNum": "1"], value: .string("up")),
            ])
        metrics.monitorSampled(variable: "ProcessStatus", failed: true)
        metrics.monitorSampled(
            variable: "Paging",
            observations: [
                SampleObservation(
                    variable: "Paging", instance: [:],
                    value: .fields([.init("Used", .number(42.5)), .init("Name", .string("swap"))]))
            ])
        let text = metrics.exposition()
        #expect(
            Set(lines(text, "hamn_monitor_")) == [
                #"hamn_monitor_samples_total{variable="ProcessStatus"} 2"#,
                #"hamn_monitor_failures_total{variable="ProcessStatus"} 1"#,
                #"hamn_monitor_samples_total{variable="Paging"} 1"#,
                #"hamn_monitor_failures_total{variable="Paging"} 0"#,
            ])
        // Numbers only: the string value and the string field make no series.
        #expect(
            Set(lines(text, "hamn_variable_value")) == [
                #"hamn_variable_value{variable="ProcessStatus",instance="NodeNum=1;ProgName=nfsd",field=""} 3.0"#,
                #"hamn_variable_value{variable="Paging",instance="",field="Used"} 42.5"#,
            ])
    }

    @Test(
        "an instance the monitor no longer reports loses its series (a field too); a failed sample keeps them; a variable no longer monitored loses all"
    )
    func instancesGo() {
        let metrics = HamnMetrics(node: "n1")
        func observation(_ name: String, _ value: Double) -> SampleObservation {
            SampleObservation(variable: "FS.%totused", instance: ["Name": name], value: .number(value))
        }
        metrics.monitorSampled(variable: "FS.%totused", observations: [observation("/a", 10), observation("/b", 20)])
        metrics.monitorSampled(
            variable: "Paging",
            observations: [
                SampleObservation(
                    variable: "Paging", instance: [:],
                    value: .fields([.init("Used", .number(1)), .init("Free", .number(2))]))
            ])
        #expect(
            Set(lines(metrics.exposition(), "hamn_variable_value{variable=\"FS")) == [
                #"hamn_variable_value{variable="FS.%totused",instance="Name=/a",field=""} 10.0"#,
                #"hamn_variable_value{variable="FS.%totused",instance="Name=/b",field=""} 20.0"#,
            ])
        // /b unmounted: the next batch has /a only.
        metrics.monitorSampled(variable: "FS.%totused", observations: [observation("/a", 11)])
        #expect(
            lines(metrics.exposition(), "hamn_variable_value{variable=\"FS") == [
                #"hamn_variable_value{variable="FS.%totused",instance="Name=/a",field=""} 11.0"#
            ])
        // A sample that failed as a whole says nothing of the instances: /a is kept.
        metrics.monitorSampled(variable: "FS.%totused", failed: true)
        #expect(
            lines(metrics.exposition(), "hamn_variable_value{variable=\"FS") == [
                #"hamn_variable_value{variable="FS.%totused",instance="Name=/a",field=""} 11.0"#
            ])
        // A field that is no longer a number goes; the other stays.
        metrics.monitorSampled(
            variable: "Paging",
            observations: [
                SampleObservation(
                    variable: "Paging", instance: [:],
                    value: .fields([.init("Used", .number(3)), .init("Free", .string("?"))]))
            ])
        #expect(
            lines(metrics.exposition(), "hamn_variable_value{variable=\"Paging") == [
                #"hamn_variable_value{variable="Paging",instance="",field="Used"} 3.0"#
            ])
        // /b back: a series again.
        metrics.monitorSampled(variable: "FS.%totused", observations: [observation("/a", 12), observation("/b", 5)])
        #expect(
            Set(lines(metrics.exposition(), "hamn_variable_value{variable=\"FS")) == [
                #"hamn_variable_value{variable="FS.%totused",instance="Name=/a",field=""} 12.0"#,
                #"hamn_variable_value{variable="FS.%totused",instance="Name=/b",field=""} 5.0"#,
            ])
        // Reloaded rules that watch Paging only: FS.%totused's series go.
        metrics.monitoring(variables: ["Paging"])
        // A sample of the monitors before the reload, ending after it, makes no series.
        metrics.monitorSampled(variable: "FS.%totused", observations: [observation("/a", 13)])
        #expect(
            lines(metrics.exposition(), "hamn_variable_value") == [
                #"hamn_variable_value{variable="Paging",instance="",field="Used"} 3.0"#
            ])
        // No variable at all: no series, and no family left in the exposition.
        metrics.monitoring(variables: [])
        #expect(!metrics.exposition().contains("hamn_variable_value"))
        // The samples' counters stay (counters do not go back).
        #expect(
            lines(metrics.exposition(), "hamn_monitor_samples_total{variable=\"FS") == [
                #"hamn_monitor_samples_total{variable="FS.%totused"} 5"#
            ])
    }

    @Test(
        "queue, members and the coordinator's quorum as set after a delivery; journal commits; dropped messages and the transport's quorum flag followed at each scrape"
    )
    func stateAndScrape() {
        let metrics = HamnMetrics(node: "n1")
        metrics.setState(queue: 2, members: 3, coordinatorQuorate: false)
        metrics.journalCommitted(seconds: 0.003)
        let dropped = Dropped()
        metrics.followDroppedMessages { dropped.count }
        dropped.count = 3
        var text = metrics.exposition()
        #expect(lines(text, "hamn_queue_length") == ["hamn_queue_length 2.0"])
        #expect(lines(text, "hamn_members") == ["hamn_members 3.0"])
        // Nothing follows the transport's flag yet: 1 as at start; the coordinator's is as set.
        #expect(lines(text, "hamn_quorate") == ["hamn_quorate 1.0"])
        #expect(lines(text, "hamn_coordinator_quorate") == ["hamn_coordinator_quorate 0.0"])
        #expect(lines(text, "hamn_journal_commit_seconds_count") == ["hamn_journal_commit_seconds_count 1"])
        #expect(
            lines(text, #"hamn_journal_commit_seconds_bucket{le="0.0025"}"#) == [
                #"hamn_journal_commit_seconds_bucket{le="0.0025"} 0"#
            ])
        #expect(
            lines(text, #"hamn_journal_commit_seconds_bucket{le="0.005"}"#) == [
                #"hamn_journal_commit_seconds_bucket{le="0.005"} 1"#
            ])
        #expect(lines(text, "hamn_wire_messages_dropped_total") == ["hamn_wire_messages_dropped_total 3"])
        dropped.count = 5
        text = metrics.exposition()
        #expect(lines(text, "hamn_wire_messages_dropped_total") == ["hamn_wire_messages_dropped_total 5"])
        #expect(
            lines(metrics.exposition(), "hamn_wire_messages_dropped_total") == ["hamn_wire_messages_dropped_total 5"])
        let flag = Mutex(false)
        metrics.followQuorum { flag.withLock { $0 } }
        #expect(lines(metrics.exposition(), "hamn_quorate") == ["hamn_quorate 0.0"])
        flag.withLock { $0 = true }
        #expect(lines(metrics.exposition(), "hamn_quorate") == ["hamn_quorate 1.0"])
        #expect(lines(metrics.exposition(), "hamn_coordinator_quorate") == ["hamn_coordinator_quorate 0.0"])
    }

    @Test("each service's registry is its own: swift-metrics through its factory lands there, not in another's")
    func registryPerService() {
        let one = HamnMetrics(node: "n1")
        let other = HamnMetrics(node: "n2")
        Counter(label: "hamn_test_total", dimensions: [("kind", "a")], factory: one.factory).increment(by: 2)
        one.setState(queue: 1, members: 1, coordinatorQuorate: true)
        #expect(lines(one.exposition(), "hamn_test_total") == [#"hamn_test_total{kind="a"} 2"#])
        #expect(lines(other.exposition(), "hamn_test_total") == [])
        #expect(lines(other.exposition(), "hamn_queue_length") == ["hamn_queue_length 0.0"])
    }
}

/// A count another component keeps (the transport's), set by the test.
private final class Dropped: Sendable {
    private let value = Mutex(0)
    var count: Int {
        get { value.withLock { $0 } }
        set { value.withLock { $0 = newValue } }
    }
}
