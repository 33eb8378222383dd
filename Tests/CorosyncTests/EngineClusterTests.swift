import CorosyncTransport
import Foundation
import RulesEngine
import TestSupport
import Testing

/// Rules shared by the engine tests: `ping` (a segment with event and other lines, a barrier,
/// an all line), `slow` (node n3 sleeps 30 s in the first segment), and `TE_FAIL_NODE` with
/// event, other and all lines.
private func standardRules(_ cluster: EngineCluster) throws -> String {
    try cluster.write(
        cluster.binDirectory + "/napper",
        """
        #!/bin/sh
        # napper WORD NODE: 30 s on NODE, 0.2 s elsewhere.
        if [ "$HAMN_LOCAL_NODE" = "$2" ]; then exec \(cluster.binDirectory)/step "$1" 30; fi
        exec \(cluster.binDirectory)/step "$1" 0.2
        """, mode: 0o755)
    let napper = cluster.binDirectory + "/napper"
    return try cluster.writeRules([
        (
            "ping", 0,
            """
            event "STEP ping-event 0.5" 0 NULL
            other "STEP ping-other 0.5" 0 NULL
            barrier
            all "STEP ping-all" 0 NULL
            """
        ),
        (
            "slow", 0,
            """
            event "\(napper) slow-event n3" 0 NULL
            other "\(napper) slow-other n3" 0 NULL
            barrier
            all "STEP slow-all" 0 NULL
            """
        ),
        (
            "TE_FAIL_NODE", 0,
            """
            event "STEP fail-event" 0 NULL
            other "STEP fail-other" 0 NULL
            barrier
            all "STEP fail-all" 0 NULL
            """
        ),
    ])
}

/// The words each node recorded, in the order it ran them.
private func words(_ steps: [EngineStep], _ node: String) -> [String] {
    steps.filter { $0.node == node }.sorted { $0.start < $1.start }.map(\.word)
}

private func waitForMembers(_ cluster: EngineCluster, _ nodes: [String], expected: [String]) -> Bool {
    cluster.eventually(60) { nodes.allSatisfy { cluster.members($0) == expected } }
}

/// kill -9 of n3 while n1 and n2 wait for it at the barrier of `slow`: the survivors pass the
/// barrier, finish `slow`, then run `TE_FAIL_NODE` for n3 with only its other and all lines.
private func killMidBarrier(_ cluster: EngineCluster, kill: () throws -> Void) throws -> (
    killed: Date, steps: [EngineStep]
) {
    try cluster.cli("n1", ["trigger", "slow", "--node", "n1"])
    #expect(
        cluster.eventually(30) {
            let steps = cluster.steps().filter { $0.event == "slow" }
            return Set(steps.map(\.node)) == ["n1", "n2"]
        })
    // n3 is in its 30 s sleep; n1 and n2 wait at the barrier.
    let waiting = cluster.status("n1")?["running"] as? [[String: Any]]
    #expect(waiting?.first?["waiting_for"] as? [String] == ["n3"])
    let killed = Date()
    try kill()
    #expect(
        cluster.eventually(60) {
            cluster.steps().filter { $0.word == "fail-all" }.count == 2
        }, "survivors did not run TE_FAIL_NODE:\n\(cluster.engineLog("n1"))")
    let steps = cluster.steps().filter { $0.event == "slow" || $0.event == "TE_FAIL_NODE" }
    #expect(words(steps, "n1") == ["slow-event", "slow-all", "fail-other", "fail-all"])
    #expect(words(steps, "n2") == ["slow-other", "slow-all", "fail-other", "fail-all"])
    #expect(steps.filter { $0.event == "TE_FAIL_NODE" }.allSatisfy { $0.eventNode == "n3" })
    #expect(steps.filter { $0.node == "n3" }.map(\.word).isEmpty)
    return (killed, steps)
}

@Suite(
    "Engines on corosync", .serialized,
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct EngineClusterTests {
    @Test("three engines on one corosync: commands per node, parallel segments, a barrier, a killed engine")
    func threeEnginesOneCorosync() throws {
        try withCluster(corosyncNodes: 1, nodes: ["n1", "n2", "n3"]) { cluster in
            let rules = try standardRules(cluster)
            for name in ["n1", "n2", "n3"] { try cluster.startEngine(name, corosyncNode: 1, rules: rules) }
            #expect(waitForMembers(cluster, ["n1", "n2", "n3"], expected: ["n1", "n2", "n3"]))

            try cluster.cli("n1", ["trigger", "ping", "--node", "n2"])
            #expect(cluster.eventually(30) { cluster.steps().filter { $0.word == "ping-all" }.count == 3 })
            let steps = cluster.steps().filter { $0.event == "ping" }
            #expect(words(steps, "n1") == ["ping-other", "ping-all"])
            #expect(words(steps, "n2") == ["ping-event", "ping-all"])
            #expect(words(steps, "n3") == ["ping-other", "ping-all"])
            let first = steps.filter { $0.word != "ping-all" }
            let second = steps.filter { $0.word == "ping-all" }
            // Parallel: the three 0.5 s commands of the first segment overlap.
            #expect(first.map(\.start).max()! < first.map(\.end).min()!)
            // The barrier: no node starts the second segment before every node ended the first.
            #expect(second.map(\.start).min()! > first.map(\.end).max()!)
            // The service's thread is real-time (SCHED_RR 1: these tests run as root); the
            // commands it starts are not.
            for name in ["n1", "n2", "n3"] {
                let thread = cluster.serviceThread(name)
                #expect(thread?.policy == 2 && thread?.priority == 1, "\(name): \(String(describing: thread))")
            }
            #expect(steps.allSatisfy { $0.policy == 0 }, "\(steps.map(\.policy))")
            for name in ["n1", "n2", "n3"] {
                let history = try cluster.cli(name, ["history"])
                #expect(history.out.contains("ping"), "\(name): \(history.out)")
            }

            _ = try killMidBarrier(cluster) { cluster.killEngine("n3") }
            #expect(cluster.members("n1") == ["n1", "n2"])
        }
    }

    @Test("garbage from a raw CPG client in the group is dropped with a warning; the engines go on")
    func garbageFromRawClient() async throws {
        let cluster = try EngineCluster(corosyncNodes: 1, nodes: ["n1", "n2"])
        defer { cluster.tearDown() }
        let rules = try standardRules(cluster)
        try cluster.startEngine("n1", corosyncNode: 1, rules: rules)
        try cluster.startEngine("n2", corosyncNode: 1, rules: rules)
        #expect(waitForMembers(cluster, ["n1", "n2"], expected: ["n1", "n2"]))
        let namespace = try runTool(EngineCluster.script, ["netns", cluster.clusterDirectory, "1"]).out
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let group = cluster.group
        let raw = try await CPGTestCluster.inNamespace(namespace) {
            try CPGConnection(group: group, trackQuorum: false)
        }
        defer { raw.close() }
        var random = SystemRandomNumberGenerator()
        let garbage: [[UInt8]] = [
            [],
            [0xFF, 0x00, 0x13],
            Array("HAMN".utf8) + [99] + Array("{}".utf8),
            Array("HAMN".utf8) + [2, 0] + Array("{\"cluster\":{\"_0\":".utf8),
            // A binary segmentDone that claims 2^32-1 results and ends.
            Array("HAMN".utf8) + [2, 1] + [UInt8](repeating: 0, count: 16) + [0xFF, 0xFF, 0xFF, 0xFF],
            (0..<65_536).map { _ in UInt8.random(in: 0...255, using: &random) },
            // Well formed, from a process that never announced itself as an engine.
            WireFormat.encode(.cluster(.resume(cancelQueued: true))),
        ]
        for bytes in garbage { try await raw.multicast(bytes) }
        let address = raw.local.description
        #expect(
            cluster.eventually(20) {
                ["n1", "n2"].allSatisfy { node in
                    cluster.engineLog(node).components(separatedBy: "dropped a message from group member \(address)")
                        .count - 1
                        == garbage.count
                }
            }, "\(cluster.engineLog("n1"))")
        #expect(cluster.engineLog("n1").contains("message format version 99; this engine speaks versions 2 and 3"))
        // Still a cluster of two engines that runs events.
        #expect(cluster.members("n1") == ["n1", "n2"])
        try cluster.cli("n2", ["trigger", "ping", "--node", "n1"])
        #expect(cluster.eventually(30) { cluster.steps().filter { $0.word == "ping-all" }.count == 2 })
        #expect(words(cluster.steps(), "n1") == ["ping-event", "ping-all"])
        #expect(words(cluster.steps(), "n2") == ["ping-other", "ping-all"])
    }

    @Test("SIGHUP on one node reloads the rules on every node, at one place in the order")
    func clusterReload() throws {
        try withCluster(corosyncNodes: 1, nodes: ["n1", "n2"]) { cluster in
            let rules = try standardRules(cluster)
            for name in ["n1", "n2"] { try cluster.startEngine(name, corosyncNode: 1, rules: rules) }
            #expect(waitForMembers(cluster, ["n1", "n2"], expected: ["n1", "n2"]))
            // The administrator puts the new ping on both nodes (here one file), then sends
            // SIGHUP to n1 only.
            try cluster.write(cluster.root + "/etc/ping_0.rp", "all \"\(cluster.binDirectory)/step ping-new\" 0 NULL\n")
            let pid = try #require(cluster.enginePID("n1"))
            kill(pid, SIGHUP)
            let journal = { (node: String) in cluster.journal(node, containing: "rules reloaded") }
            #expect(cluster.eventually(10) { !journal("n2").isEmpty }, "\(cluster.engineLog("n2"))")
            #expect(journal("n1") == ["rules reloaded: 3 definitions (SIGHUP)"])
            #expect(journal("n2") == ["rules reloaded: 3 definitions (requested by n1)"])
            try cluster.cli("n2", ["trigger", "ping"])
            #expect(cluster.eventually(30) { cluster.steps().filter { $0.word == "ping-new" }.count == 2 })
            #expect(cluster.steps().filter { $0.event == "ping" }.map(\.word).sorted() == ["ping-new", "ping-new"])
        }
    }

    @Test(
        "SIGHUP on one node takes up every node's changed hamn.yaml at one place in the order; a node whose file has an error keeps its old configuration and rules"
    )
    func clusterConfigurationReload() throws {
        try withCluster(corosyncNodes: 1, nodes: ["n1", "n2", "n3"]) { cluster in
            let rules = try cluster.writeRules([("ping", 0, "all \"STEP ping-old\" 0 NULL\n")])
            // New rules in another directory: the configuration's `rules:` (a live key) names them.
            let other = cluster.root + "/etc2"
            try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
            chmod(other, 0o755)
            let newRules = try cluster.writeRules([("ping", 0, "all \"STEP ping-new\" 0 NULL\n")], rpDirectory: other)
            for name in ["n1", "n2", "n3"] {
                try cluster.startEngine(name, corosyncNode: 1, rules: rules, extra: "queue_limit: 1000")
            }
            #expect(waitForMembers(cluster, ["n1", "n2", "n3"], expected: ["n1", "n2", "n3"]))
            let digest = { (node: String) in
                (try? cluster.cli(node, ["status"]))?.out.contains("WARNING") == true
            }
            // n1 and n2 get the new rules path and queue limit; n3's file gets an error.
            var errorLine = 0
            for name in ["n1", "n2", "n3"] {
                let path = cluster.configuration(name)
                let text = try String(contentsOfFile: path, encoding: .utf8)
                errorLine =
                    1
                    + (text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex {
                        $0.hasPrefix("queue_limit")
                    } ?? -2)
                try cluster.write(
                    path,
                    text.replacingOccurrences(of: "rules: \(rules)", with: "rules: \(newRules)")
                        .replacingOccurrences(
                            of: "queue_limit: 1000", with: name == "n3" ? "queue_limit: x" : "queue_limit: 10"))
            }
            let pid = try #require(cluster.enginePID("n1"))
            kill(pid, SIGHUP)
            let journal = { (node: String) in cluster.journal(node, containing: "reloaded") }
            #expect(
                cluster.eventually(10) { !journal("n2").isEmpty && !journal("n3").isEmpty },
                "\(cluster.engineLog("n2"))")
            #expect(
                journal("n1") == [
                    "rules reloaded: 1 definitions (SIGHUP)", "configuration reloaded: rules, queue_limit (SIGHUP)",
                ])
            #expect(
                journal("n2") == [
                    "rules reloaded: 1 definitions (requested by n1)",
                    "configuration reloaded: rules, queue_limit (requested by n1)",
                ])
            let refusal = journal("n3")
            #expect(refusal.count == 1)
            #expect(
                refusal.first?.hasPrefix(
                    "configuration not reloaded, the old one and the old rules stay: \(cluster.configuration("n3")):\(errorLine):14: error:"
                ) == true, "\(refusal)")
            #expect(refusal.first?.hasSuffix("(requested by n1)") == true, "\(refusal)")
            // n3 kept its rules: its digest differs, and its part of the next ping is the old one.
            #expect(cluster.eventually(10) { digest("n1") && digest("n3") })
            try cluster.cli("n2", ["trigger", "ping"])
            #expect(cluster.eventually(30) { cluster.steps().filter { $0.event == "ping" }.count == 3 })
            #expect(
                Set(cluster.steps().filter { $0.event == "ping" }.map { "\($0.node) \($0.word)" }) == [
                    "n1 ping-new", "n2 ping-new", "n3 ping-old",
                ])
        }
    }

    @Test("corosync killed under the engines: each journals the loss, runs nothing more and exits 1")
    func corosyncLost() throws {
        try withCluster(corosyncNodes: 1, nodes: ["n1", "n2"]) { cluster in
            let rules = try standardRules(cluster)
            try cluster.startEngine("n1", corosyncNode: 1, rules: rules)
            try cluster.startEngine("n2", corosyncNode: 1, rules: rules)
            #expect(waitForMembers(cluster, ["n1", "n2"], expected: ["n1", "n2"]))
            try cluster.killCorosync(1)
            #expect(
                cluster.eventually(30) { ["n1", "n2"].allSatisfy { cluster.engineExitStatus($0) != nil } },
                "\(cluster.engineLog("n1"))")
            for name in ["n1", "n2"] {
                #expect(cluster.engineExitStatus(name) == 1, "\(name): \(cluster.engineLog(name))")
                let journal = cluster.journal(name, kind: "service").joined(separator: "\n")
                #expect(journal.contains("the connection to corosync is lost"), "\(name): \(journal)")
                #expect(cluster.engineLog(name).contains("this node runs nothing until it is restarted"))
            }
            #expect(cluster.steps().isEmpty)
        }
    }

    @Test("status shows every engine; a differing .rp file is named in a warning on both sides")
    func configurationDigests() throws {
        try withCluster(corosyncNodes: 1, nodes: ["n1", "n2"]) { cluster in
            let rules = try standardRules(cluster)
            try cluster.startEngine("n1", corosyncNode: 1, rules: rules)
            // n2's rules are a copy with one .rp file changed.
            let other = cluster.root + "/etc2"
            try FileManager.default.createDirectory(atPath: other, withIntermediateDirectories: true)
            chmod(other, 0o755)
            let copy = try cluster.writeRules(
                [("ping", 0, "all \"STEP ping-all\" 0 NULL\n")], rpDirectory: other)
            try cluster.startEngine("n2", corosyncNode: 1, rules: copy)
            #expect(waitForMembers(cluster, ["n1", "n2"], expected: ["n1", "n2"]))
            #expect(
                cluster.eventually(10) {
                    (try? cluster.cli("n1", ["status"]))?.out.contains("WARNING: configuration of n2 differs") == true
                })
            let status = try cluster.cli("n1", ["status"]).out
            #expect(status.contains("engine n1 (1) at corosync"))
            #expect(status.contains("engine n2 (2) at corosync"))
            #expect(status.contains("quorum: yes"))
            let json = cluster.status("n2")
            let differences = json?["configuration_differences"] as? [String]
            #expect(differences?.count == 1)
            #expect(differences?.first?.hasPrefix("configuration of n1 differs from n2's: ") == true)
            #expect(differences?.first?.contains(cluster.root + "/etc/slow_0.rp") == true)
        }
    }
}

@Suite(
    "A three-node cluster of network namespaces", .serialized,
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct NamespaceClusterTests {
    @Test("kill -9 of a node's corosync and engine mid-event: the survivors finish it, then TE_FAIL_NODE")
    func nodeFailure() throws {
        try withCluster(corosyncNodes: 3, nodes: ["n1", "n2", "n3"]) { cluster in
            let rules = try standardRules(cluster)
            for (index, name) in ["n1", "n2", "n3"].enumerated() {
                try cluster.startEngine(name, corosyncNode: index + 1, rules: rules)
            }
            #expect(waitForMembers(cluster, ["n1", "n2", "n3"], expected: ["n1", "n2", "n3"]))
            let (killed, steps) = try killMidBarrier(cluster) {
                try cluster.killCorosync(3)
                cluster.killEngine("n3")
            }
            let firstFail = steps.filter { $0.event == "TE_FAIL_NODE" }.map(\.start).min()!
            let seconds = Double(firstFail) / 1e9 - killed.timeIntervalSince1970
            print("failover: kill -9 to the first TE_FAIL_NODE command: \(String(format: "%.2f", seconds)) s")
        }
    }

    @Test("a partition 2|1: only the two-node side runs recovery; the lone node says it has no quorum")
    func partition() throws {
        try withCluster(corosyncNodes: 3, nodes: ["n1", "n2", "n3"]) { cluster in
            let rules = try standardRules(cluster)
            for (index, name) in ["n1", "n2", "n3"].enumerated() {
                try cluster.startEngine(name, corosyncNode: index + 1, rules: rules)
            }
            #expect(waitForMembers(cluster, ["n1", "n2", "n3"], expected: ["n1", "n2", "n3"]))
            try cluster.link(3, up: false)
            #expect(cluster.eventually(60) { cluster.steps().filter { $0.word == "fail-all" }.count == 2 })
            // n3 saw n1 and n2 leave: their TE_FAIL_NODE events queue, and the first one's
            // segment waits for quorum (events run one at a time).
            #expect(
                cluster.eventually(30) {
                    (try? cluster.cli("n3", ["status"]))?.out.contains(
                        "quorum: NO: no recovery program runs, 1 segment(s) waiting") == true
                }, "\((try? cluster.cli("n3", ["status"]))?.out ?? "")")
            // Time for n3 to have run something if it were going to.
            Thread.sleep(forTimeInterval: 2)
            let steps = cluster.steps()
            #expect(words(steps, "n1") == ["fail-other", "fail-all"])
            #expect(words(steps, "n2") == ["fail-other", "fail-all"])
            #expect(steps.filter { $0.node == "n3" }.isEmpty)
            #expect(steps.allSatisfy { $0.eventNode == "n3" })
            // The journal says so, for each segment that waits.
            let lines = cluster.journal("n3", kind: "quorum")
            let journal = lines.joined(separator: "\n")
            #expect(
                lines.first == "quorum lost: this partition runs no recovery program until it is back", "\(journal)")
            #expect(
                lines.filter {
                    $0.hasPrefix("no quorum: event ") && $0.hasSuffix("TE_FAIL_NODE segment 0 waits for quorum")
                }.count == 1, "\(journal)")
            #expect(cluster.status("n3")?["quorate"] as? Bool == false)
            #expect(cluster.status("n1")?["quorate"] as? Bool == true)
        }
    }
}
