import Foundation
import TestSupport
import Testing

/// SIGHUP takes up the live keys of a changed `hamn.yaml`, names the others as needing a
/// restart, and refuses a configuration with errors whole (README, "Reloading").
@Suite("configuration reload", .serialized, .timeLimit(.minutes(1)))
struct ConfigurationReloadServiceTests {
    func edit(_ harness: ServiceHarness, _ old: String, _ new: String) throws {
        let text = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        #expect(text.contains(old))
        try harness.write(harness.configPath, text.replacingOccurrences(of: old, with: new))
    }

    @Test("a command variable's new command: sampled from the reload on, the event raised with its value")
    func variableCommand() throws {
        let root = NSTemporaryDirectory() + "hamn-reload-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        let (low, high) = (root + "/low", root + "/high")
        try Data("40\n".utf8).write(to: URL(fileURLWithPath: low))
        try Data("85\n".utf8).write(to: URL(fileURLWithPath: high))
        let harness = try ServiceHarness.paging(from: low).harness
        try harness.start()
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: armed, last 40")
        try edit(harness, "/bin/cat \(low)", "/bin/cat \(high)")
        harness.signal(SIGHUP)
        try harness.waitForOutput("configuration reloaded: variables (SIGHUP)")
        #expect(harness.eventually { harness.read("paged") == "85\n" }, "the new command's value raised the event")
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: disarmed, last 85")
        #expect(harness.eventually { harness.serviceNotes.contains("configuration reloaded: variables (SIGHUP)") })
    }

    @Test("a variable's new interval: used from the reload on")
    func variableInterval() throws {
        let (harness, paging) = try ServiceHarness.paging(interval: "1h")
        try harness.start()
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: armed, last 40")
        try edit(harness, "interval: 1h", "interval: 0.2s")
        harness.signal(SIGHUP)
        try harness.waitForOutput("configuration reloaded: variables (SIGHUP)")
        // The monitors restart with the reload and sample at once; the next value is seen only
        // if the interval is the new one (the old one is an hour).
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: armed, last 40")
        try harness.write(paging, "85\n")
        #expect(harness.eventually { harness.read("paged") == "85\n" }, "sampled again within seconds")
    }

    @Test(
        "a configured variable removed: its hamn_variable_value series leaves /metrics at the reload; the one still sampled stays"
    )
    func variableRemovedFromMetrics() throws {
        let (harness, _) = try ServiceHarness.paging()
        // A second configured variable, sampled whether rules use it or not, in the same list.
        let extra = "\n  - name: Site.Queue.Depth\n    command: /bin/echo 7\n    interval: 0.2s"
        try edit(harness, "\nhttp:", extra + "\nhttp:")
        try harness.start()
        let port = try WebViewServiceTests.port(harness)
        func series() throws -> [String] {
            try fetch(port, "/metrics").split(separator: "\n").map(String.init).filter {
                $0.hasPrefix("hamn_variable_value{")
            }.sorted()
        }
        let paging =
            #"hamn_variable_value{variable="IBM.PSSP.aixos.PagSp.%totalused",instance="NodeNum=1",field=""} 40.0"#
        let depth = #"hamn_variable_value{variable="Site.Queue.Depth",instance="NodeNum=1",field=""} 7.0"#
        try waitUntil("/metrics has both variables' series", observed: { "\((try? series()) ?? [])" }) {
            try series() == [paging, depth]
        }
        try edit(harness, extra, "")
        harness.signal(SIGHUP)
        try harness.waitForOutput("configuration reloaded: variables (SIGHUP)")
        try waitUntil("/metrics has the paging variable's series only", observed: { "\((try? series()) ?? [])" }) {
            try series() == [paging]
        }
    }

    @Test("an event's new command timeout: the next event's command is killed after it")
    func commandTimeout() throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "timeouts: {slow: 0}")
        try harness.writeRules([("slow", 0, "all \"/bin/sleep 30\" 0 NULL\n", nil)])
        try harness.start()
        try edit(harness, "timeouts: {slow: 0}", "timeouts: {slow: 1s}")
        harness.signal(SIGHUP)
        try harness.waitForOutput("configuration reloaded: timeouts (SIGHUP)")
        #expect(try harness.cli(["trigger", "slow"]).status == 0)
        // Without the new timeout the command would sleep 30 s.
        try harness.waitForFailure(of: "slow state 0")
    }

    @Test("node: changed: needs a restart, named at its file:line:col; the service keeps its name")
    func nodeNeedsRestart() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([("one", 0, "all \"/bin/sh -c 'echo $HAMN_LOCAL_NODE > \(out)/one'\" 0 NULL\n", nil)])
        try harness.start()
        try edit(harness, "node: n1", "node: n2")
        harness.signal(SIGHUP)
        let line = "\(harness.configPath):1:7: node changed: needs a restart, the old value stays (SIGHUP)"
        try harness.waitForOutput(line)
        #expect(harness.eventually { harness.serviceNotes.contains(line) }, "the journal has it too")
        #expect(!harness.stderrText.contains("configuration reloaded:"), "nothing live changed")
        try harness.waitForStatus("node n1 (1)")
        #expect(try harness.cli(["trigger", "one"]).status == 0)
        #expect(harness.eventually { harness.read("one") == "n1\n" }, "commands still run as n1")
    }

    @Test("a hamn.yaml with an error: refused whole with its file:line:col; the old configuration and rules stay")
    func brokenConfiguration() throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "queue_limit: 1000")
        let out = harness.outputDirectory
        try harness.writeRules([("one", 0, "all \"/bin/touch \(out)/one\" 0 NULL\n", nil)])
        try harness.start()
        // Line 6: a queue limit out of range; and new rules, which must not be taken up with it.
        try edit(harness, "queue_limit: 1000", "queue_limit: 0")
        try harness.writeRules([("two", 0, "all \"/bin/touch \(out)/two\" 0 NULL\n", nil)])
        harness.signal(SIGHUP)
        let error = "configuration not reloaded, the old one and the old rules stay: \(harness.configPath):6:14: error:"
        try harness.waitForOutput(error)
        #expect(harness.eventually { harness.serviceNotes.contains(error) }, "the journal has it too")
        #expect(!harness.stderrText.contains("rules reloaded"))
        // The old rules still run.
        #expect(try harness.cli(["trigger", "one"]).status == 0)
        #expect(harness.eventually { harness.read("one") != nil })
        // The new rules were not taken up: `two` has no rule (the answer comes once it is journaled).
        #expect(try harness.cli(["trigger", "two"]).status == 0)
        let unmatched = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT text FROM log WHERE kind = 'unmatched';"]
        ).out
        #expect(unmatched.contains("two"), "\(unmatched)")
        // Mended: both are taken up.
        try edit(harness, "queue_limit: 0", "queue_limit: 5")
        harness.signal(SIGHUP)
        try harness.waitForOutput("configuration reloaded: queue_limit (SIGHUP)")
        #expect(try harness.cli(["trigger", "two"]).status == 0)
        #expect(harness.eventually { harness.read("two") != nil })
    }
}
