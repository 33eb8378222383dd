import Foundation
import TestSupport
import Testing

/// Debian's `prometheus` package ships promtool (scripts/setup installs it). Without it the
/// tests are skipped on a developer's machine, and fail under CI (`CI` set).
private let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first {
    FileManager.default.isExecutableFile(atPath: $0)
}
private let runsPromtool = promtool != nil || ProcessInfo.processInfo.environment["CI"] != nil

/// samples/prometheus, from this file's place in the tree.
private let samples = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().appendingPathComponent("samples/prometheus").path

/// promtool with `arguments` in `directory`; `input`, when given, on its standard input.
private func runPromtool(_ arguments: [String], in directory: String = samples, input: String? = nil) throws -> (
    status: Int32, out: String, err: String
)? {
    guard let promtool else {
        Issue.record("promtool is not installed (Debian's prometheus package; scripts/setup installs it)")
        return nil
    }
    var inputPath = "/dev/null"
    if let input {
        inputPath =
            FileManager.default.temporaryDirectory.appendingPathComponent("hamn-metrics-\(UUID().uuidString)")
            .path
        try Data(input.utf8).write(to: URL(fileURLWithPath: inputPath))
    }
    defer { if input != nil { try? FileManager.default.removeItem(atPath: inputPath) } }
    let script = #"cd "$1" && input="$2" && shift 2 && exec "$@" < "$input""#
    return try runTool("/bin/sh", ["-c", script, "sh", directory, inputPath, promtool] + arguments)
}

@Suite("promtool's checks", .serialized, .enabled(if: runsPromtool), .timeLimit(.minutes(1)))
struct PromtoolTests {
    @Test("promtool check metrics passes the exposition of two services that ran events, one held and resumed")
    func checkMetrics() async throws {
        let cluster = try await MetricsCluster(programs: ServiceMetricsTests.programs)
        _ = await cluster.services[0].handle(.trigger(event: "APP_MOVE", state: 0, node: nil))
        try await cluster.waitForLine(0, #"hamn_events_total{event="APP_MOVE",outcome="completed"} 1"#)
        _ = await cluster.services[0].handle(.trigger(event: "APP_FAIL", state: 0, node: nil))
        try await cluster.waitForLine(0, #"hamn_event_held{event="APP_FAIL"} 1.0"#)
        _ = await cluster.services[0].handle(.resume(cancelQueued: false))
        try await cluster.waitForLine(0, #"hamn_events_total{event="APP_FAIL",outcome="failed"} 1"#)
        let exposition = cluster.exposition(0)
        await cluster.end()
        for family in [
            "hamn_events_total", "hamn_event_duration_seconds", "hamn_segment_duration_seconds",
            "hamn_barrier_wait_seconds", "hamn_event_held", "hamn_queue_length", "hamn_members", "hamn_quorate",
            "hamn_coordinator_quorate",
            "hamn_journal_commit_seconds", "hamn_wire_messages_dropped_total",
        ] {
            #expect(exposition.contains("# TYPE \(family) "), "\(family) missing from:\n\(exposition)")
        }
        guard let result = try runPromtool(["check", "metrics"], input: exposition) else { return }
        #expect(result.status == 0, "\(result.out)\(result.err)\n\(exposition)")
        #expect(result.out + result.err == "", "promtool's remarks: \(result.out)\(result.err)")
    }

    @Test("promtool check metrics fails a name against the conventions (the check can fail)")
    func checkMetricsCanFail() throws {
        guard
            let result = try runPromtool(
                ["check", "metrics"], input: "# HELP hamn_events Events.\n# TYPE hamn_events counter\nhamn_events 1\n")
        else { return }
        #expect(result.status != 0)
        #expect(result.out + result.err == "hamn_events counter metrics should have \"_total\" suffix\n")
    }

    @Test("promtool check config and check rules pass samples/prometheus")
    func checkRules() throws {
        guard let rules = try runPromtool(["check", "rules", "alerts.yml"]) else { return }
        #expect(rules.status == 0, "\(rules)")
        #expect(rules.out.contains("SUCCESS: 5 rules found"), "\(rules)")
        guard let config = try runPromtool(["check", "config", "prometheus.yml"]) else { return }
        #expect(config.status == 0, "\(config)")
    }

    @Test("promtool test rules passes alerts_test.yml: quorum lost, event held, fence failed, monitor failing")
    func testRules() throws {
        guard let result = try runPromtool(["test", "rules", "alerts_test.yml"]) else { return }
        #expect(result.status == 0, "\(result)")
        #expect(result.out.contains("SUCCESS"), "\(result)")
    }
}
