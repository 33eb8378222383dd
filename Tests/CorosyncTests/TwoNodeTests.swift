import Foundation
import TestSupport
import Testing

// Issue 12, part 4 and acceptance (c): two-node clusters. Two corosyncs in network namespaces
// with votequorum's `two_node: 1` and `wait_for_all: 1` (`ns-cluster up 2 --two-node`, the
// quorum section of samples/corosync-two-node.conf). A 1|1 split leaves both sides quorate: both
// try to fence the other, and the `delay` of one device decides. The stand-in fence agent
// really pulls the power: `ns-cluster poweroff` kills every process in the target's namespace
// (corosync, the engine, its commands and the fence agent it may have started itself). It
// records what it read and when it started and ended; the takeover's command records its times.

/// One run of the stand-in agent: when it started, when it had done its action (nil: it never
/// got there, it was killed first), and the `key=value` lines it read.
private struct TwoNodeAgentRun: CustomStringConvertible {
    var start: Int64
    var end: Int64?
    var input: [String: String]
    var description: String {
        "agent \(input.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }) \(start)...\(end.map(String.init) ?? "killed")"
    }
}

/// One device of the two.
private struct TwoNodeDevice {
    var delay: String?
    var delayMax: String?
    /// nil: the default (`reboot`).
    var action: String?
    /// The stand-in agent sleeps this long before it acts (a slow power switch).
    var pause: Int = 0
}

private final class TwoNodeSetup: @unchecked Sendable {
    let cluster: EngineCluster
    let rules: String
    var agent: String { cluster.binDirectory + "/fence-two-node" }
    var recordDirectory: String { cluster.outputDirectory + "/fence" }
    /// The agent writes here the outlets it rebooted (the test, as the power switch, turns them
    /// back on: `ns-cluster start` needs /run/netns, which the agent's mount namespace lacks).
    var rebootDirectory: String { cluster.outputDirectory + "/reboot" }

    init(_ cluster: EngineCluster) throws {
        self.cluster = cluster
        rules = try cluster.writeRules([("TE_FAIL_NODE", 0, "other \"STEP takeover\" 0 NULL\n")])
        for directory in [recordDirectory, rebootDirectory] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        }
        var outlets = ""
        for namespace in 1...2 {
            outlets += "\(namespace)) \(cluster.powerOffEverythingCommand(corosyncNode: namespace)) ;;\n"
        }
        try cluster.write(
            agent,
            """
            #!/bin/sh
            # A stand-in fence agent (TwoNodeTests.swift): key=value lines on stdin; pulls the
            # power of the namespace its plug names.
            start=$(date +%s%N)
            input=$(cat)
            value() { printf '%s\\n' "$input" | sed -n "s/^$1=//p"; }
            plug=$(value plug)
            action=$(value action)
            pause=$(value pause)
            file=\(recordDirectory)/$start.$$
            { echo "start=$start"; printf '%s\\n' "$input"; } >"$file.tmp"
            mv "$file.tmp" "$file.start"
            [ -n "$pause" ] && [ "$pause" != 0 ] && sleep "$pause"
            case "$action" in
            off | reboot) ;;
            *) echo "stand-in agent: action '$action' not supported" >&2; exit 1 ;;
            esac
            case "$plug" in
            \(outlets)*) echo "stand-in agent: no outlet '$plug'" >&2; exit 1 ;;
            esac >>\(recordDirectory)/power.log 2>&1
            [ "$action" = reboot ] && touch \(rebootDirectory)/$plug
            date +%s%N >"$file.end"
            echo "outlet $plug $action"
            """, mode: 0o755)
    }

    /// The `fencing:` key of both nodes: device n1 fences namespace 1, n2 namespace 2.
    func yaml(n1: TwoNodeDevice, n2: TwoNodeDevice) -> String {
        var lines = ["fencing:", "  attempts: 1", "  devices:"]
        for (name, device, plug) in [("n1", n1, 1), ("n2", n2, 2)] {
            lines += ["    \(name):", "      agent: \(agent)", "      timeout: 20s"]
            if let action = device.action { lines.append("      action: \(action)") }
            if let delay = device.delay { lines.append("      delay: \(delay)") }
            if let delayMax = device.delayMax { lines.append("      delay_max: \(delayMax)") }
            lines += ["      options:", "        plug: \"\(plug)\"", "        pause: \"\(device.pause)\""]
        }
        return lines.joined(separator: "\n")
    }

    /// Every run of the agent, in the order they started.
    func runs() -> [TwoNodeAgentRun] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: recordDirectory)) ?? []
        return names.filter { $0.hasSuffix(".start") }.compactMap { name -> TwoNodeAgentRun? in
            let base = recordDirectory + "/" + String(name.dropLast(".start".count))
            guard let data = FileManager.default.contents(atPath: base + ".start") else { return nil }
            var input: [String: String] = [:]
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                input[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            guard let start = input.removeValue(forKey: "start").flatMap({ Int64($0) }) else { return nil }
            let end = FileManager.default.contents(atPath: base + ".end").flatMap {
                Int64(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return TwoNodeAgentRun(start: start, end: end, input: input)
        }.sorted { $0.start < $1.start }
    }

    /// Starts n1 then n2, each in its own namespace, the second once the first has settled.
    func start(_ extra: String) throws {
        try cluster.startEngine("n1", corosyncNode: 1, rules: rules, extra: extra)
        try waitUntil("n1 alone settled", timeout: .seconds(60)) { twoNodeSettled(cluster, ["n1"]) }
        try cluster.startEngine("n2", corosyncNode: 2, rules: rules, extra: extra)
        try waitUntil("n1 and n2 settled", timeout: .seconds(60), observed: { self.observed() }) {
            twoNodeSettled(cluster, ["n1", "n2"])
        }
    }

    /// The takeover commands recorded so far (on whichever node), in the order they started.
    func takeovers() -> [EngineStep] {
        cluster.steps().filter { $0.event == "TE_FAIL_NODE" }.sorted { $0.start < $1.start }
    }

    /// The processes in namespace `k` now (through /proc, as `ns-cluster poweroff` finds them).
    func processes(inNamespace k: Int) -> [String] {
        guard
            let id = FileManager.default.contents(atPath: cluster.clusterDirectory + "/node\(k)/netns.id").map({
                String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            }), !id.isEmpty,
            let entries = try? FileManager.default.contentsOfDirectory(atPath: "/proc")
        else { return ["(no netns.id)"] }
        return entries.filter { $0.allSatisfy(\.isNumber) }.filter {
            (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/\($0)/ns/net")) == id
        }
    }

    func observed() -> String {
        let statuses = ["n1", "n2"].map { node in
            "\(node): \((try? cluster.cli(node, ["status"]))?.out ?? "(no answer)")"
        }
        return (statuses + ["runs: \(runs())", "takeovers: \(takeovers())"]).joined(separator: "\n")
    }
}

/// Members `nodes` on each of them, synchronised, nothing running, nothing queued.
private func twoNodeSettled(_ cluster: EngineCluster, _ nodes: [String]) -> Bool {
    nodes.allSatisfy { node in
        guard let status = cluster.status(node) else { return false }
        return status["members"] as? [String] == nodes.sorted() && status["synchronised"] as? Bool == true
            && (status["running"] as? [Any])?.isEmpty == true && (status["queue"] as? [Any])?.isEmpty == true
    }
}

private func nanoseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

private func since(_ from: Int64, _ to: Int64) -> Double { Double(to - from) / 1e9 }

@Suite(
    "Two-node clusters: two_node, a 1|1 split, the fence race (issue 12)", .serialized,
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct TwoNodeTests {
    /// Splits the two nodes 20 times. n1's device has a delay of 10 s (Pacemaker's
    /// `pcmk_delay_base` on the node that is to win): n2, which fences n1 with it, is powered off
    /// by n1 while it waits; n1 takes over. Then the loser's power and link come back, its
    /// engine restarts (as systemd would), and both are in again. The delay only has to exceed
    /// the time n1's agent takes to power n2 off (once 6.8 s on a loaded machine, when the
    /// stand-in still forked a readlink per process); it costs the rounds nothing.
    @Test(
        "(c) 1|1 split 20 times: both sides keep quorum, both try to fence, the delay decides: exactly one survivor and one takeover each time",
        .timeLimit(.minutes(10)))
    func repeatedSplits() throws {
        try withCluster(corosyncNodes: 2, nodes: ["n1", "n2"], twoNode: true) { cluster in
            let setup = try TwoNodeSetup(cluster)
            try setup.start(
                setup.yaml(n1: TwoNodeDevice(delay: "10s", action: "off"), n2: TwoNodeDevice(action: "off")))
            let rounds = 20
            var figures: [String] = []
            let began = nanoseconds()
            for round in 1...rounds {
                let mark = nanoseconds()
                try cluster.link(2, up: false)
                try waitUntil(
                    "round \(round): n2 fenced and taken over", timeout: .seconds(30), observed: setup.observed
                ) {
                    setup.takeovers().count == round && cluster.engineExitStatus("n2") != nil
                        && setup.runs().filter { $0.end != nil }.count == round
                }
                // n2 is off: nothing of it runs any more, its own fence agent included.
                try waitUntil("round \(round): namespace 2 empty", timeout: .seconds(5)) {
                    setup.processes(inNamespace: 2).isEmpty
                }
                #expect(cluster.corosyncRunning(1) == true && cluster.engineExitStatus("n1") == nil)
                // One agent run that completed, by n1 against n2, before the takeover's command.
                let runs = setup.runs().filter { $0.start > mark }
                let completed = runs.filter { $0.end != nil }
                try #require(completed.count == 1, "round \(round): \(runs)")
                #expect(completed[0].input["nodename"] == "n2" && completed[0].input["plug"] == "2", "\(runs)")
                #expect(completed[0].input["action"] == "off", "\(runs)")
                // n2 may have started its agent against n1 only after its delay: never, it was off.
                #expect(!runs.contains { $0.input["nodename"] == "n1" }, "round \(round): \(runs)")
                let takeover = setup.takeovers().filter { $0.start > mark }
                try #require(takeover.count == 1, "round \(round): \(takeover)")
                #expect(takeover[0].node == "n1" && takeover[0].eventNode == "n2", "round \(round): \(takeover)")
                #expect(completed[0].end! < takeover[0].start, "round \(round): \(completed[0]) \(takeover[0])")
                // Both sides kept quorum and tried: n2 had its own fence of n1 pending (journaled
                // before it was powered off), which never ran.
                let n2Tried = cluster.journalLines("n2").filter {
                    $0.text.hasPrefix(
                        "FENCE NEEDED: n1 left without a graceful stop; its takeover waits for a fence by n2")
                }
                #expect(
                    n2Tried.count == round, "round \(round): n2's journal: \(cluster.journalLines("n2").map(\.text))")
                let fenced = nanoseconds()

                // Power and link back; n2's engine starts again and joins n1's cluster.
                try cluster.link(2, up: true)
                try cluster.startCorosync(2)
                try cluster.waitCorosync(members: 2)
                try cluster.restartEngine("n2")
                try waitUntil("round \(round): both in again", timeout: .seconds(60), observed: setup.observed) {
                    twoNodeSettled(cluster, ["n1", "n2"])
                }
                figures.append(
                    String(
                        format: "%.1f/%.1f/%.1f", since(mark, completed[0].start), since(mark, takeover[0].start),
                        since(fenced, nanoseconds())))
            }
            // Over all the rounds: one takeover per round, all on n1, of n2; n1 never left.
            let takeovers = setup.takeovers()
            #expect(takeovers.count == rounds, "\(takeovers)")
            #expect(takeovers.allSatisfy { $0.node == "n1" && $0.eventNode == "n2" }, "\(takeovers)")
            #expect(!cluster.journalLines("n1").contains { $0.text.hasPrefix("FENCE FAILED") })
            print(
                "two-node (c): \(rounds) splits in \(String(format: "%.0f s", since(began, nanoseconds()))); per round link down → agent / takeover, back in: \(figures.joined(separator: " "))"
            )
        }
    }

    /// n2's device: delay 2 s plus up to 1 s (`delay_max`). n1's device has no delay, but the
    /// power switch behind it is slow (6 s): n2 starts its agent against n1 at once, and that
    /// agent is still at work in n2's namespace when n1 pulls n2's power; it must die with n2.
    @Test(
        "delay and delay_max are honoured; a loser's own agent, already running, dies with its node",
        .timeLimit(.minutes(3)))
    func delayIsHonoured() throws {
        try withCluster(corosyncNodes: 2, nodes: ["n1", "n2"], twoNode: true) { cluster in
            let setup = try TwoNodeSetup(cluster)
            try setup.start(
                setup.yaml(
                    n1: TwoNodeDevice(action: "off", pause: 6),
                    n2: TwoNodeDevice(delay: "2s", delayMax: "1s", action: "off")))
            let mark = nanoseconds()
            try cluster.link(2, up: false)
            try waitUntil("n2 fenced and taken over", timeout: .seconds(30), observed: setup.observed) {
                setup.takeovers().count == 1 && cluster.engineExitStatus("n2") != nil
            }
            try waitUntil("namespace 2 empty", timeout: .seconds(5)) { setup.processes(inNamespace: 2).isEmpty }
            let runs = setup.runs()
            // n1's agent against n2 (done), and n2's against n1 (started at once, killed mid-way).
            let byN1 = runs.filter { $0.input["nodename"] == "n2" }
            let byN2 = runs.filter { $0.input["nodename"] == "n1" }
            try #require(byN1.count == 1 && byN1[0].end != nil, "\(runs)")
            try #require(byN2.count == 1, "n2 never started its agent: \(runs)")
            #expect(byN2[0].end == nil, "n2's agent got to power n1 off: \(runs)")
            #expect(cluster.corosyncRunning(1) == true && cluster.engineExitStatus("n1") == nil)

            // n1 ran its agent delay + [0, delay_max] after it decided to (its journal's line).
            let decided = cluster.journalLines("n1").first { $0.text.hasPrefix("fencing n2, attempt 1: ") }
            let decidedAt = try #require(decided, "\(cluster.journalLines("n1").map(\.text))").time
            let waited = Double(byN1[0].start) / 1e9 - decidedAt
            #expect(waited >= 2.0 && waited <= 3.5, "n1's agent started \(waited) s after it decided to fence")
            // n2 decided too, and started at once (no delay on n1's device).
            let n2Decided = cluster.journalLines("n2").first { $0.text.hasPrefix("fencing n1, attempt 1: ") }
            let n2DecidedAt = try #require(n2Decided, "\(cluster.journalLines("n2").map(\.text))").time
            #expect(Double(byN2[0].start) / 1e9 - n2DecidedAt < 1.0, "\(byN2[0]) decided \(n2DecidedAt)")

            let takeover = setup.takeovers()[0]
            #expect(takeover.node == "n1" && takeover.eventNode == "n2" && byN1[0].end! < takeover.start)
            // n2's agent would have pulled n1's power 6 s after it started: n1 is still up then.
            try waitUntil("n1 settled after n2's agent's 6 s", timeout: .seconds(20)) {
                nanoseconds() > byN2[0].start + 7_000_000_000 && twoNodeSettled(cluster, ["n1"])
            }
            #expect(cluster.corosyncRunning(1) == true && cluster.engineExitStatus("n1") == nil)
            print(
                "two-node delay: link down → n1 decided \(String(format: "%.2f", decidedAt - Double(mark) / 1e9)) s, its agent \(String(format: "%.2f", waited)) s later (delay 2 s, delay_max 1 s); n2's agent killed mid-way"
            )
        }
    }

    /// n2's device: a delay of 8 s. During it the administrator pulls n2's plug and confirms
    /// it down on n1: the takeover runs at once, and when the delay is over n1 runs no agent.
    @Test(
        "a fence confirmed while its delay runs: the takeover goes on at the confirm, and no agent runs after the delay",
        .timeLimit(.minutes(3)))
    func confirmedDuringDelay() throws {
        try withCluster(corosyncNodes: 2, nodes: ["n1", "n2"], twoNode: true) { cluster in
            let setup = try TwoNodeSetup(cluster)
            try setup.start(
                setup.yaml(
                    n1: TwoNodeDevice(delay: "60s", action: "off"), n2: TwoNodeDevice(delay: "8s", action: "off")))
            try cluster.link(2, up: false)
            try waitUntil("n1 decided to fence n2", timeout: .seconds(20), observed: setup.observed) {
                cluster.journalLines("n1").contains { $0.text.hasPrefix("fencing n2, attempt 1: ") }
            }
            // The administrator makes sure n2 is down (its power pulled), then says so.
            let pulled = try runTool(EngineCluster.script, ["poweroff", cluster.clusterDirectory, "2"])
            try #require(pulled.status == 0, "\(pulled)")
            let confirm = try cluster.cli("n1", ["fence", "confirm", "n2"])
            #expect(
                confirm.status == 0 && confirm.out.contains("n2 confirmed down: its takeover may run"), "\(confirm)")
            try waitUntil("the takeover of n2", timeout: .seconds(10), observed: setup.observed) {
                setup.takeovers().count == 1
            }
            // The delay ends: n1 sees the fence was settled and runs nothing.
            try waitUntil("n1's delay over", timeout: .seconds(20), observed: setup.observed) {
                cluster.journalLines("n1").contains {
                    $0.text == "fencing n2, attempt 1: not needed any more, the agent is not run"
                }
            }
            #expect(setup.runs().isEmpty, "\(setup.runs())")
            #expect(setup.takeovers().map(\.node) == ["n1"], "\(setup.takeovers())")
            // The next fence of n2 runs its agent again (nothing left marked as running).
            try cluster.link(2, up: true)
            try cluster.startCorosync(2)
            try cluster.waitCorosync(members: 2)
            try cluster.restartEngine("n2")
            try waitUntil("both in again", timeout: .seconds(60), observed: setup.observed) {
                twoNodeSettled(cluster, ["n1", "n2"])
            }
            cluster.killEngine("n2")
            try waitUntil("n2 fenced by its agent this time", timeout: .seconds(30), observed: setup.observed) {
                setup.runs().filter { $0.input["nodename"] == "n2" && $0.end != nil }.count == 1
                    && setup.takeovers().count == 2
            }
        }
    }

    /// n1's device: the default action (reboot); n2's a delay of 3 s, so n2 wins. n1 is rebooted:
    /// its corosync comes back while the link is still cut, without quorum (wait_for_all), and
    /// its engine waits for quorum before it joins. Once the link is back it joins n2's cluster;
    /// n2, which holds the takeover, goes on (a cluster founded by n1 alone would have won the
    /// merge rule's tie, the lower node number, and stopped n2's engine).
    @Test(
        "the default action is reboot: the fenced node comes back, waits for quorum (wait_for_all), and rejoins the survivor's cluster",
        .timeLimit(.minutes(3)))
    func rebootAndRejoin() throws {
        try withCluster(corosyncNodes: 2, nodes: ["n1", "n2"], twoNode: true) { cluster in
            let setup = try TwoNodeSetup(cluster)
            try setup.start(setup.yaml(n1: TwoNodeDevice(), n2: TwoNodeDevice(delay: "3s", action: "off")))
            try cluster.link(1, up: false)
            try waitUntil("n1 fenced and taken over", timeout: .seconds(30), observed: setup.observed) {
                setup.takeovers().count == 1 && cluster.engineExitStatus("n1") != nil
                    && FileManager.default.fileExists(atPath: setup.rebootDirectory + "/1")
            }
            let runs = setup.runs()
            try #require(runs.count == 1, "\(runs)")
            #expect(runs[0].input["action"] == "reboot" && runs[0].input["nodename"] == "n1", "\(runs)")
            let takeover = setup.takeovers()[0]
            #expect(takeover.node == "n2" && takeover.eventNode == "n1" && runs[0].end! < takeover.start)

            // The power switch turns n1 back on; its link is still cut. Its engine starts at boot.
            try cluster.startCorosync(1)
            try waitUntil("n1's corosync answers, without quorum", timeout: .seconds(20)) {
                cluster.corosyncQuorate(1) == false
            }
            try cluster.restartEngine("n1", waitForSocket: false)
            try waitUntil("n1 waits for quorum", timeout: .seconds(20), observed: { cluster.engineLog("n1") }) {
                cluster.engineLog("n1").contains(
                    "waiting for quorum before joining the cluster: corosync's wait_for_all (two_node)")
            }
            #expect(cluster.engineExitStatus("n1") == nil)
            #expect(cluster.status("n1") == nil, "n1 answers before it joined")
            try cluster.link(1, up: true)
            try waitUntil("n1 and n2 in again", timeout: .seconds(60), observed: setup.observed) {
                twoNodeSettled(cluster, ["n1", "n2"])
            }
            // n2 never stopped: no merge, the same engine that took over.
            #expect(cluster.engineExitStatus("n2") == nil)
            #expect(
                !cluster.journalLines("n2").contains { $0.text.contains("merged with a larger one") },
                "\(cluster.journalLines("n2").map(\.text))")
            #expect(
                !cluster.journalLines("n1").contains { $0.text.contains("merged") },
                "\(cluster.journalLines("n1").map(\.text))")
            #expect(setup.takeovers().count == 1, "\(setup.takeovers())")
            #expect(setup.runs().count == 1, "\(setup.runs())")
        }
    }
}
