import Foundation
import TestSupport
import Testing

// Issue 12, acceptance (a), (b), (d): fencing before takeover on three-node clusters of network
// namespaces, with a stand-in fence agent that really "powers the target off" (kill -9 of the
// engine and corosync of the namespace its `plug` option names) and records what it was given
// and when. The takeover (`TE_FAIL_NODE` state 0) records each command's start and end through
// `step`; the tests compare those times with the agent's.

/// What a run of the stand-in agent records: the time it started and the time it had done what
/// it does (ns, wall clock, as `step` records them), and the `key=value` lines it read.
private struct AgentRecord: CustomStringConvertible {
    var start: Int64
    var end: Int64
    var input: [String: String]
    var description: String {
        "agent \(input.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }) \(start)...\(end)"
    }
}

/// How the stand-in agent behaves.
enum StandInAgent: String, CustomStringConvertible, CaseIterable, Sendable {
    /// Powers the outlet `plug` off (kills that namespace's engines and corosync), exit 0.
    case powersOff
    /// Records its run, says the outlet does not answer, exit 1.
    case fails
    /// Records its run, then sleeps 30 s (the device's timeout is 2 s).
    case hangs
    /// The configured agent does not exist.
    case missing
    /// Fails as `fails` while `FenceSetup.brokenFlag` exists (the power switch does not
    /// answer), then powers off as `powersOff` (the switch was repaired).
    case repaired
    var description: String { rawValue }
}

private let password = "stand-in-secret-7"

private final class FenceSetup: @unchecked Sendable {
    let cluster: EngineCluster
    let kind: StandInAgent
    let rules: String
    var agent: String { cluster.binDirectory + "/fence-\(kind)" }
    var recordDirectory: String { cluster.outputDirectory + "/fence" }
    var passwordFile: String { cluster.root + "/fence-password" }
    var brokenFlag: String { cluster.outputDirectory + "/switch-broken" }

    init(_ cluster: EngineCluster, kind: StandInAgent) throws {
        self.cluster = cluster
        self.kind = kind
        try FileManager.default.createDirectory(
            atPath: cluster.outputDirectory + "/fence", withIntermediateDirectories: true)
        try cluster.write(cluster.root + "/fence-password", password + "\n", mode: 0o600)
        rules = try cluster.writeRules([
            (
                "TE_FAIL_NODE", 0,
                """
                event "STEP fail-event" 0 NULL
                other "STEP fail-other" 0 NULL
                barrier
                all "STEP fail-all" 0 NULL
                """
            ),
            ("TE_EVENT_ERROR", 0, "all \"STEP event-error\" 0 NULL\n"),
        ])
    }

    /// The `fencing:` key every node gets: a device per node, its plug the node's namespace.
    func yaml(_ placement: [(String, Int)], attempts: Int, timeout: String) -> String {
        var lines = ["fencing:", "  attempts: \(attempts)", "  devices:"]
        for (name, namespace) in placement {
            lines += [
                "    \(name):", "      agent: \(agent)", "      action: off", "      timeout: \(timeout)",
                "      password_file: \(passwordFile)", "      options:", "        plug: \"\(namespace)\"",
                "        login: admin",
            ]
        }
        let text = lines.joined(separator: "\n")
        return text
    }

    /// Writes the agent (once the engines it may kill run: `powerOffCommand` needs them).
    func writeAgent(namespaces: Int) throws {
        guard kind != .missing else { return }
        var outlets = ""
        for namespace in 1...namespaces {
            outlets += "\(namespace))\n\(cluster.powerOffCommand(corosyncNode: namespace))\n;;\n"
        }
        let action: String
        switch kind {
        case .powersOff, .repaired:
            action = """
                if [ -e \(brokenFlag) ]; then
                    record
                    echo "stand-in agent: outlet $plug does not answer" >&2
                    exit 1
                fi
                case "$plug" in
                \(outlets)*) echo "stand-in agent: no outlet '$plug'" >&2; exit 1 ;;
                esac >>\(recordDirectory)/power.log 2>&1
                record
                echo "outlet $plug off"
                exit 0
                """
        case .fails:
            action = """
                record
                echo "stand-in agent: outlet $plug does not answer" >&2
                exit 1
                """
        case .hangs, .missing:
            action = """
                record
                sleep 30
                exit 0
                """
        }
        try cluster.write(
            agent,
            """
            #!/bin/sh
            # A stand-in fence agent (FencingTests.swift): key=value lines on stdin.
            start=$(date +%s%N)
            input=$(cat)
            plug=$(printf '%s\\n' "$input" | sed -n 's/^plug=//p')
            record() {
                end=$(date +%s%N)
                file=\(recordDirectory)/$end.$$
                { echo "start=$start"; echo "end=$end"; printf '%s\\n' "$input"; } >"$file.tmp"
                mv "$file.tmp" "$file"
            }
            \(action)
            """, mode: 0o755)
    }

    /// Every run of the agent, in the order they started.
    func records() -> [AgentRecord] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: recordDirectory)) ?? []
        return names.filter { !$0.hasSuffix(".tmp") && !$0.hasSuffix(".log") }.compactMap { name -> AgentRecord? in
            guard let data = FileManager.default.contents(atPath: recordDirectory + "/" + name) else { return nil }
            var input: [String: String] = [:]
            for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
                guard let equals = line.firstIndex(of: "=") else { continue }
                input[String(line[..<equals])] = String(line[line.index(after: equals)...])
            }
            guard let start = input.removeValue(forKey: "start").flatMap({ Int64($0) }),
                let end = input.removeValue(forKey: "end").flatMap({ Int64($0) })
            else { return nil }
            return AgentRecord(start: start, end: end, input: input)
        }.sorted { $0.start < $1.start }
    }
}

private func nowNS() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

/// Members `nodes` on each of them, synchronised, nothing running, nothing queued.
private func settled(_ cluster: EngineCluster, _ nodes: [String]) -> Bool {
    nodes.allSatisfy { node in
        guard let status = cluster.status(node) else { return false }
        return status["members"] as? [String] == nodes.sorted() && status["synchronised"] as? Bool == true
            && (status["running"] as? [Any])?.isEmpty == true && (status["queue"] as? [Any])?.isEmpty == true
    }
}

/// Starts the engines one after the other, each once the cluster before it has settled: the
/// first of `placement` founds the cluster.
private func start(_ setup: FenceSetup, _ placement: [(String, Int)], extra: String) throws {
    var started: [String] = []
    for (name, namespace) in placement {
        try setup.cluster.startEngine(name, corosyncNode: namespace, rules: setup.rules, extra: extra)
        started.append(name)
        try #require(
            setup.cluster.eventually(60) { settled(setup.cluster, started) }, "\(started) did not settle")
    }
    // Joins ran no command (no TE_JOIN_NODE rule), nothing was fenced.
    #expect(setup.cluster.steps().isEmpty, "\(setup.cluster.steps())")
}

private func statusText(_ cluster: EngineCluster, _ node: String) -> String {
    (try? cluster.cli(node, ["status"]))?.out ?? ""
}

/// The words `node` ran for `event`, in the order they started.
private func words(_ steps: [EngineStep], _ node: String, event: String) -> [String] {
    steps.filter { $0.node == node && $0.event == event }.sorted { $0.start < $1.start }.map(\.word)
}

private func seconds(_ from: Int64, _ to: Int64) -> String { String(format: "%.2f s", Double(to - from) / 1e9) }

/// The takeover of `lost` on `survivors` (each: other line, barrier, all line), and nothing of
/// it anywhere else; returns when it has run.
private func expectTakeover(_ cluster: EngineCluster, of lost: String, on survivors: [String], all: [String]) throws
    -> [EngineStep]
{
    try #require(
        cluster.eventually(30) {
            cluster.steps().filter { $0.event == "TE_FAIL_NODE" && $0.word == "fail-all" }.count == survivors.count
                && settled(cluster, survivors)
        }, "the takeover of \(lost) did not run on \(survivors): \(cluster.steps())")
    let takeover = cluster.steps().filter { $0.event == "TE_FAIL_NODE" }
    for node in all {
        let expected = survivors.contains(node) ? ["fail-other", "fail-all"] : []
        #expect(words(takeover, node, event: "TE_FAIL_NODE") == expected, "\(node): \(takeover)")
    }
    #expect(takeover.allSatisfy { $0.eventNode == lost }, "\(takeover)")
    return takeover
}

/// What a successful fence of `target` (namespace `plug`) by `fencer` left: one run of the agent
/// with the device's lines, the target's engine and corosync gone, the journal's lines on the
/// survivors, the password nowhere but in the agent's input.
private func expectFenced(
    _ setup: FenceSetup, target: String, plug: Int, fencer: String, survivors: [String], takeover: [EngineStep]
) throws -> AgentRecord {
    let cluster = setup.cluster
    let records = setup.records()
    try #require(records.count == 1, "the agent ran \(records.count) times: \(records)")
    let record = records[0]
    #expect(
        record.input == [
            "action": "off", "nodename": target, "plug": "\(plug)", "login": "admin", "password": password,
        ],
        "\(record)")
    // Powered off before any command of its takeover started, on any node.
    let firstCommand = takeover.map(\.start).min() ?? 0
    #expect(
        record.end < firstCommand,
        "the agent ended at \(record.end), the takeover's first command started at \(firstCommand)")
    #expect(cluster.eventually(10) { cluster.engineExitStatus(target) != nil }, "\(target)'s engine still runs")
    #expect(cluster.corosyncRunning(plug) == false, "namespace \(plug)'s corosync still runs")
    for node in survivors {
        let lines = cluster.journal(node, kind: "fence")
        #expect(
            lines.contains {
                $0.hasPrefix(
                    "FENCE NEEDED: \(target) left without a graceful stop; its takeover waits for a fence by \(fencer)")
            },
            "\(node): \(lines)")
        #expect(lines.contains("FENCED: \(target) by \(fencer) (attempt 1); its takeover may run"), "\(node): \(lines)")
        #expect(
            lines.contains { $0.hasSuffix("TE_FAIL_NODE segment 0 waits for the fence of \(target)") },
            "\(node): \(lines)")
        #expect(!lines.contains { $0.hasPrefix("FENCE FAILED") }, "\(node): \(lines)")
        // The options and the password reach the agent only.
        #expect(!cluster.engineLog(node).contains(password))
        #expect(!cluster.journal(node).contains { $0.contains(password) })
    }
    #expect(
        cluster.engineLog(fencer).contains("FENCED: \(target) by \(fencer)"),
        "\(cluster.engineLog(fencer).suffix(2000))")
    // Nothing waits any more.
    #expect(survivors.allSatisfy { (cluster.status($0)?["fencing"] as? [Any])?.isEmpty == true })
    return record
}

@Suite(
    "Fencing before takeover on corosync (issue 12)", .serialized, .timeLimit(.minutes(2)),
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct FencingTests {
    @Test(
        "(a) partition 2|1, the founder isolated: the fencer powers it off before any takeover command; the takeover runs on the two survivors only"
    )
    func partitionFencesTheIsolatedNode() throws {
        try withCluster(corosyncNodes: 3, nodes: ["n1", "n2", "n3"]) { cluster in
            let setup = try FenceSetup(cluster, kind: .powersOff)
            let placement = [("n1", 1), ("n2", 2), ("n3", 3)]
            try start(setup, placement, extra: setup.yaml(placement, attempts: 2, timeout: "20s"))
            try setup.writeAgent(namespaces: 3)
            let mark = nowNS()
            try cluster.link(1, up: false)
            defer { try? cluster.link(1, up: true) }
            let takeover = try expectTakeover(cluster, of: "n1", on: ["n2", "n3"], all: ["n1", "n2", "n3"])
            let record = try expectFenced(
                setup, target: "n1", plug: 1, fencer: "n2", survivors: ["n2", "n3"], takeover: takeover)
            // The isolated node ran nothing at all (it had no quorum, then no power).
            #expect(cluster.steps().filter { $0.node == "n1" }.isEmpty, "\(cluster.steps())")
            #expect(
                !cluster.journal("n1", kind: "fence").contains { $0.hasPrefix("FENCED") },
                "\(cluster.journal("n1", kind: "fence"))")

            // The heal: nothing of n1 comes back; the two go on as they were.
            try cluster.link(1, up: true)
            #expect(cluster.eventually(10) { settled(cluster, ["n2", "n3"]) })
            #expect(cluster.steps().filter { $0.event == "TE_FAIL_NODE" }.count == 4)
            let first = takeover.map(\.start).min()!
            print(
                "fencing (a): link down → agent started \(seconds(mark, record.start)), powered off \(seconds(mark, record.end)), first takeover command \(seconds(mark, first))"
            )
        }
    }

    @Test(
        "(b) engine killed, its node alive: fenced (corosync powered off too) before the takeover's first command; n3 founded the cluster"
    )
    func killedEngineIsFencedFirst() throws {
        try withCluster(corosyncNodes: 3, nodes: ["n1", "n2", "n3"]) { cluster in
            let setup = try FenceSetup(cluster, kind: .powersOff)
            // n3 joins first, n1 last; the fencer is still the lowest-numbered survivor.
            let placement = [("n3", 3), ("n2", 2), ("n1", 1)]
            try start(setup, placement, extra: setup.yaml(placement, attempts: 2, timeout: "20s"))
            try setup.writeAgent(namespaces: 3)
            // Only the engine: n2's corosync (the node) goes on until the agent powers it off.
            try #require(cluster.corosyncRunning(2) == true)
            let mark = nowNS()
            cluster.killEngine("n2")
            let takeover = try expectTakeover(cluster, of: "n2", on: ["n1", "n3"], all: ["n1", "n2", "n3"])
            let record = try expectFenced(
                setup, target: "n2", plug: 2, fencer: "n1", survivors: ["n1", "n3"], takeover: takeover)
            print(
                "fencing (b): kill -9 of the engine → agent started \(seconds(mark, record.start)), powered off \(seconds(mark, record.end)), first takeover command \(seconds(mark, takeover.map(\.start).min()!))"
            )
        }
    }

    @Test(
        "(d) an agent that fails, hangs past its timeout, or is missing: the takeover waits, status and journal say why, fence confirm releases it",
        arguments: [StandInAgent.fails, .hangs, .missing])
    func failedFenceWaitsForConfirm(kind: StandInAgent) throws {
        try withCluster(corosyncNodes: 3, nodes: ["n1", "n2", "n3"]) { cluster in
            let setup = try FenceSetup(cluster, kind: kind)
            let placement = [("n1", 1), ("n2", 2), ("n3", 3)]
            try start(setup, placement, extra: setup.yaml(placement, attempts: 2, timeout: "2s"))
            try setup.writeAgent(namespaces: 3)
            // n3 crashes (corosync and engine); its agent cannot make sure it is down.
            let mark = nowNS()
            try cluster.killCorosync(3)
            cluster.killEngine("n3")

            // Two attempts (5 s apart), then the takeover waits for an administrator.
            let waits = "; takeover waits: hamn-events fence n3, or fence confirm n3 once it is down"
            try #require(
                cluster.eventually(40) {
                    ["n1", "n2"].allSatisfy { node in
                        let fences = cluster.status(node)?["fencing"] as? [[String: Any]]
                        return fences?.count == 1 && fences?.first?["failures"] as? Int == 2
                    }
                }, "no second failure: \(statusText(cluster, "n1"))\n\(cluster.journal("n1", kind: "fence"))")
            let gaveUp = nowNS()
            let reason: String
            switch kind {
            case .fails: reason = "exit 1: stand-in agent: outlet 3 does not answer"
            case .hangs: reason = "timed out"
            case .missing: reason = "could not start: "
            case .powersOff, .repaired: reason = "?"
            }
            for node in ["n1", "n2"] {
                let text = statusText(cluster, node)
                let line = text.split(separator: "\n").first { $0.hasPrefix("fencing n3:") }.map(String.init) ?? ""
                #expect(line.hasPrefix("fencing n3: by n1, failed 2 times (last: \(reason)"), "\(node): \(text)")
                #expect(line.hasSuffix(waits), "\(node): \(text)")
                let fence = (cluster.status(node)?["fencing"] as? [[String: Any]])?.first
                #expect(fence?["fencer"] as? String == "n1")
                #expect(fence?["waits_for_administrator"] as? Bool == true)
            }
            // Each failure was journaled on both survivors, and raised TE_EVENT_ERROR there.
            #expect(
                cluster.eventually(10) {
                    ["n1", "n2"].allSatisfy { node in
                        let failed = cluster.journal(node, kind: "fence").filter {
                            $0.hasPrefix("FENCE FAILED: n3 by n1 (attempt ")
                        }
                        return failed.count == 2 && failed.allSatisfy { $0.contains("): \(reason)") }
                    }
                }, "\(cluster.journal("n1", kind: "fence"))\n\(cluster.journal("n2", kind: "fence"))")
            for node in ["n1", "n2"] {
                #expect(
                    cluster.journal(node, kind: "fence").contains {
                        $0.hasPrefix("fencing n3: failed 2 times, takeover waits")
                    },
                    "\(cluster.journal(node, kind: "fence"))")
            }
            #expect(
                cluster.engineLog("n1").contains("FENCE FAILED: n3 by n1 (attempt 2)"),
                "\(cluster.engineLog("n1").suffix(3000))")
            #expect(
                cluster.eventually(20) {
                    ["n1", "n2"].allSatisfy {
                        words(cluster.steps(), $0, event: "TE_EVENT_ERROR") == ["event-error", "event-error"]
                    }
                }, "\(cluster.steps())")
            // The agent ran twice (the missing one never), the second 5 s or more after the first ended.
            let records = setup.records()
            if kind == .missing {
                #expect(records.isEmpty, "\(records)")
            } else {
                #expect(records.count == 2, "\(records)")
                #expect(records.allSatisfy { $0.input["nodename"] == "n3" && $0.input["plug"] == "3" }, "\(records)")
                if records.count == 2 {
                    // The hanging agent's record is written at its start, before its 2 s.
                    let firstEnded = records[0].end + (kind == .hangs ? 2_000_000_000 : 0)
                    #expect(records[1].start - firstEnded >= 4_900_000_000, "\(records)")
                }
            }
            // No takeover command ran anywhere, though n3 went long ago.
            #expect(cluster.steps().filter { $0.event == "TE_FAIL_NODE" }.isEmpty, "\(cluster.steps())")
            // The takeover waits queued: it starts, with the members there are then, once n3 is down.
            let queue = cluster.status("n1")?["queue"] as? [[String: Any]]
            #expect(queue?.first?["name"] as? String == "TE_FAIL_NODE", "\(statusText(cluster, "n1"))")
            #expect((cluster.status("n1")?["running"] as? [Any])?.isEmpty ?? true, "\(statusText(cluster, "n1"))")

            // The administrator made sure n3 is down, on n2 (not the fencer).
            let confirmed = nowNS()
            let confirm = try cluster.cli("n2", ["fence", "confirm", "n3"])
            #expect(confirm.status == 0, "\(confirm)")
            #expect(confirm.out.contains("n3 confirmed down: its takeover may run"), "\(confirm)")
            let takeover = try expectTakeover(cluster, of: "n3", on: ["n1", "n2"], all: ["n1", "n2", "n3"])
            #expect(takeover.allSatisfy { $0.start > confirmed }, "\(takeover) before the confirm at \(confirmed)")
            for node in ["n1", "n2"] {
                #expect(
                    cluster.journal(node, kind: "fence").contains(
                        "FENCE CONFIRMED: an administrator on n2 made sure n3 is down; its takeover may run"),
                    "\(cluster.journal(node, kind: "fence"))")
                #expect(!statusText(cluster, node).contains("fencing n3"), "\(statusText(cluster, node))")
            }
            // Confirming again: nothing waits for it any more.
            let again = try cluster.cli("n1", ["fence", "confirm", "n3"])
            #expect(again.status == 0 && again.out.contains("no takeover was waiting for it"), "\(again)")
            print(
                "fencing (d), agent \(kind): crash → second failure seen \(seconds(mark, gaveUp)); confirm → first takeover command \(seconds(confirmed, takeover.map(\.start).min()!))"
            )
        }
    }

    @Test(
        "fence by hand: an engine dies, its node lives on, its switch does not answer; the takeover waits with the node up until hamn-events fence powers it off"
    )
    func fenceByHandAfterFailures() throws {
        try withCluster(corosyncNodes: 3, nodes: ["n1", "n2", "n3"]) { cluster in
            let setup = try FenceSetup(cluster, kind: .repaired)
            // n2 founds the cluster, n3 joins last.
            let placement = [("n2", 2), ("n1", 1), ("n3", 3)]
            try start(setup, placement, extra: setup.yaml(placement, attempts: 2, timeout: "10s"))
            try setup.writeAgent(namespaces: 3)
            try cluster.write(setup.brokenFlag, "")
            cluster.killEngine("n3")
            try #require(
                cluster.eventually(40) {
                    ["n1", "n2"].allSatisfy { node in
                        (cluster.status(node)?["fencing"] as? [[String: Any]])?.first?["failures"] as? Int == 2
                    }
                }, "no second failure: \(statusText(cluster, "n1"))\n\(cluster.journal("n1", kind: "fence"))")
            // The node is up all this time, and nothing of its takeover ran.
            #expect(cluster.corosyncRunning(3) == true)
            #expect(cluster.steps().filter { $0.event == "TE_FAIL_NODE" }.isEmpty, "\(cluster.steps())")
            #expect(setup.records().count == 2, "\(setup.records())")

            // The switch repaired, the administrator fences n3 by hand on n2 (not the fencer).
            try FileManager.default.removeItem(atPath: setup.brokenFlag)
            let fence = try cluster.cli("n2", ["fence", "n3"])
            #expect(fence.status == 0, "\(fence)")
            #expect(fence.out.contains("n3 fenced (off); its takeover may run"), "\(fence)")
            let takeover = try expectTakeover(cluster, of: "n3", on: ["n1", "n2"], all: ["n1", "n2", "n3"])
            let records = setup.records()
            try #require(records.count == 3, "\(records)")
            #expect(
                records[2].input == [
                    "action": "off", "nodename": "n3", "plug": "3", "login": "admin", "password": password,
                ],
                "\(records[2])")
            #expect(records[2].end < takeover.map(\.start).min()!, "\(records[2]) \(takeover)")
            #expect(cluster.corosyncRunning(3) == false)
            for node in ["n1", "n2"] {
                let lines = cluster.journal(node, kind: "fence")
                #expect(lines.contains("FENCED: n3 by n2 (by hand); its takeover may run"), "\(node): \(lines)")
                #expect(
                    lines.filter { $0.hasPrefix("FENCE FAILED: n3 by n1 (attempt ") }.count == 2, "\(node): \(lines)")
                #expect(!statusText(cluster, node).contains("fencing n3"), "\(statusText(cluster, node))")
            }
        }
    }

    @Test(
        "transport corosync without fencing: the engine warns 'no fence devices' at start; fencing: none and devices do not"
    )
    func warningWithoutFencing() throws {
        try withCluster(corosyncNodes: 1, nodes: ["n1", "n2", "n3"]) { cluster in
            let setup = try FenceSetup(cluster, kind: .powersOff)
            try cluster.startEngine("n1", corosyncNode: 1, rules: setup.rules, extra: "")
            try cluster.startEngine("n2", corosyncNode: 1, rules: setup.rules, extra: "fencing: none")
            try cluster.startEngine(
                "n3", corosyncNode: 1, rules: setup.rules,
                extra: setup.yaml([("n1", 1), ("n2", 1), ("n3", 1)], attempts: 1, timeout: "5s"))
            let warning = "no fence devices: a node that fails is taken over without making sure it is down"
            #expect(cluster.eventually(10) { cluster.engineLog("n1").contains(warning) }, "\(cluster.engineLog("n1"))")
            #expect(
                cluster.journal("n1", kind: "fence").contains { $0.hasPrefix("WARNING: \(warning)") },
                "\(cluster.journal("n1", kind: "fence"))")
            #expect(statusText(cluster, "n1").contains("WARNING: \(warning)"), "\(statusText(cluster, "n1"))")
            for node in ["n2", "n3"] {
                #expect(!cluster.engineLog(node).contains("no fence devices"), "\(node): \(cluster.engineLog(node))")
                #expect(!cluster.journal(node).contains { $0.contains("no fence devices") }, "\(node)")
                #expect(
                    !statusText(cluster, node).contains("no fence devices"), "\(node): \(statusText(cluster, node))")
            }
        }
    }
}
