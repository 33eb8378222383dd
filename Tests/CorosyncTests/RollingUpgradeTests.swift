import Foundation
import TestSupport
import Testing

/// `ping` (a barrier between two segments), `flaky` (the event node's `test -e MARKER` fails
/// until the marker exists; then `flaky-all` everywhere), `TE_FAIL_NODE` states 0 (a crash) and
/// 2 (`ha-cmd NODE TAKE`).
private func upgradeRules(_ cluster: EngineCluster, marker: String) throws -> String {
    try cluster.writeRules([
        (
            "ping", 0,
            """
            event "STEP ping-event 0.3" 0 NULL
            other "STEP ping-other 0.3" 0 NULL
            barrier
            all "STEP ping-all" 0 NULL
            """
        ),
        (
            "flaky", 0,
            """
            event "/usr/bin/test -e \(marker)" 0 NULL
            barrier
            all "STEP flaky-all" 0 NULL
            """
        ),
        (
            "TE_FAIL_NODE", 0,
            """
            other "STEP fail-other" 0 NULL
            barrier
            all "STEP fail-all" 0 NULL
            """
        ),
        (
            "TE_FAIL_NODE", 2,
            """
            event "STEP take-event" 0 NULL
            other "STEP take-other" 0 NULL
            barrier
            all "STEP take-all" 0 NULL
            """
        ),
    ])
}

/// The words each node recorded for `event`, in the order it ran them.
private func words(_ cluster: EngineCluster, _ node: String, event: String) -> [String] {
    cluster.steps().filter { $0.node == node && $0.event == event }.sorted { $0.start < $1.start }.map(\.word)
}

/// Rolling upgrades (README, "Rolling upgrade"): one engine limited to wire version 2
/// (`HAMN_TEST_WIRE_MAX=2`, an engine of the build before version 3) beside two current ones.
/// The cluster speaks 2: events with barriers and a failover run, `resume --retry` is refused;
/// the old node leaves with `ha-cmd NODE TAKE`, and every node journals the switch to 3 at that
/// change; started again without the limit (upgraded), it joins at 3, and `resume --retry` goes
/// through.
@Suite(
    "Rolling upgrade", .serialized,
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct RollingUpgradeTests {
    @Test(
        "a mixed cluster speaks wire 2 through events, a refusal and a failover; 3 once the old node is upgraded",
        arguments: [true, false])
    func mixedThenUpgraded(oldJoinsFirst: Bool) throws {
        let nodes = ["n1", "n2", "n3"]
        // The old engine is the first to join (n1) or the last (n3); n2 is always current.
        let old = oldJoinsFirst ? "n1" : "n3"
        let victim = oldJoinsFirst ? "n3" : "n1"
        try withCluster(corosyncNodes: 1, nodes: nodes) { cluster in
            let marker = cluster.root + "/flaky-ok"
            let rules = try upgradeRules(cluster, marker: marker)
            for name in nodes {
                try cluster.startEngine(
                    name, corosyncNode: 1, rules: rules,
                    environment: name == old ? ["HAMN_TEST_WIRE_MAX": "2"] : [:])
                #expect(cluster.eventually(60) { cluster.members(name)?.contains(name) == true })
            }
            #expect(cluster.eventually(60) { nodes.allSatisfy { cluster.members($0) == nodes } })
            for name in nodes {
                let status = cluster.status(name)
                #expect(status?["wire_version"] as? Int == 2, "\(name): \(String(describing: status))")
                let engines = status?["engines"] as? [[String: Any]] ?? []
                #expect(engines.count == 3)
                for engine in engines {
                    let wire = (engine["wire"] as? [Any])?.compactMap { $0 as? Int }
                    #expect(wire == ((engine["node"] as? String) == old ? [2] : [2, 3]), "\(name): \(engine)")
                }
                #expect(
                    cluster.journal(name, containing: "wire version").last?.hasPrefix("wire version 2 agreed") == true)
            }

            // Events with barriers while mixed.
            try cluster.cli("n1", ["trigger", "ping", "--node", "n2"])
            #expect(cluster.eventually(30) { cluster.steps().filter { $0.word == "ping-all" }.count == 3 })
            #expect(words(cluster, "n2", event: "ping") == ["ping-event", "ping-all"])
            #expect(words(cluster, old, event: "ping") == ["ping-other", "ping-all"])

            // resume's modes are wire 3: refused, on the old node and on a current one.
            try cluster.cli("n2", ["trigger", "flaky", "--node", "n2"])
            let failed = {
                ((cluster.status("n2")?["running"] as? [[String: Any]])?.first?["failed_on"] as? String) == "n2"
            }
            #expect(cluster.eventually(30, failed))
            for name in ["n2", old] {
                let refused = try cluster.cli(name, ["resume", "--retry"])
                #expect(refused.status == 1)
                #expect(
                    refused.err
                        == "hamn-events: not every member speaks wire 3 (node \(old) speaks 2): upgrade every node first\n",
                    "\(name): \(refused)")
            }
            #expect(try cluster.cli("n2", ["resume"]).status == 0)
            #expect(cluster.eventually(30) { (cluster.status("n2")?["running"] as? [Any])?.isEmpty == true })
            #expect(words(cluster, "n2", event: "flaky") == [])

            // A failover while mixed: a current engine killed, the survivors take over.
            cluster.killEngine(victim)
            #expect(
                cluster.eventually(60) { cluster.steps().filter { $0.word == "fail-all" }.count == 2 },
                "\(cluster.engineLog("n2"))")
            #expect(words(cluster, old, event: "TE_FAIL_NODE") == ["fail-other", "fail-all"])
            #expect(cluster.eventually(30) { cluster.engineExitStatus(victim) != nil })
            try cluster.restartEngine(victim)
            #expect(cluster.eventually(60) { nodes.allSatisfy { cluster.members($0) == nodes } })
            #expect(nodes.allSatisfy { cluster.status($0)?["wire_version"] as? Int == 2 })

            // The upgrade: the old node hands over and leaves; the switch to 3 comes with its leaving.
            let others = nodes.filter { $0 != old }
            #expect(try cluster.cli(old, ["ha-cmd", old, "TAKE"]).status == 0)
            #expect(cluster.eventually(60) { cluster.engineExitStatus(old) == 0 }, "\(cluster.engineLog(old))")
            #expect(words(cluster, old, event: "TE_FAIL_NODE").suffix(2) == ["take-event", "take-all"])
            let switched = "wire version 3 agreed (members \(others.joined(separator: " ")))"
            for name in others {
                #expect(
                    cluster.eventually(30) { cluster.journal(name, containing: "wire version").last == switched },
                    "\(name): \(cluster.journal(name, containing: "wire version"))")
                #expect(cluster.status(name)?["wire_version"] as? Int == 3)
            }
            try cluster.restartEngine(old, environment: [:])
            #expect(cluster.eventually(60) { nodes.allSatisfy { cluster.members($0) == nodes } })
            for name in nodes {
                #expect(
                    cluster.eventually(30) {
                        cluster.journal(name, containing: "wire version").last
                            == "wire version 3 agreed (members n1 n2 n3)"
                    }, "\(name): \(cluster.journal(name, containing: "wire version"))")
                #expect(cluster.status(name)?["wire_version"] as? Int == 3)
            }

            // resume --retry now goes through: the failed command runs again and passes.
            try cluster.cli("n2", ["trigger", "flaky", "--node", "n2"])
            #expect(cluster.eventually(30, failed))
            try cluster.write(marker, "")
            let retried = try cluster.cli(old, ["resume", "--retry"])
            #expect(retried.status == 0, "\(retried)")
            #expect(cluster.eventually(30) { cluster.steps().filter { $0.word == "flaky-all" }.count == 3 })
        }
    }
}
