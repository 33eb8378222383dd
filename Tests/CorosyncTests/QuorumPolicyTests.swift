import Foundation
import TestSupport
import Testing

// Issue 12, acceptance (e): `no_quorum_policy: stop` on a three-node cluster of network
// namespaces. The node cut off from the two others loses quorum and, after the policy's delay,
// runs TE_QUORUM_LOST's recovery program alone; the majority takes it over and runs no
// TE_QUORUM_LOST. At the heal the lone node's side loses the merge (its engine exits 1), and
// restarted as systemd would, it rejoins a consistent cluster.

private func nowNS() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

/// Members `nodes` on each of them, synchronised, with quorum, nothing running, nothing queued.
private func settled(_ cluster: EngineCluster, _ nodes: [String]) -> Bool {
    nodes.allSatisfy { node in
        guard let status = cluster.status(node) else { return false }
        return status["members"] as? [String] == nodes.sorted() && status["synchronised"] as? Bool == true
            && status["quorate"] as? Bool == true
            && (status["running"] as? [Any])?.isEmpty == true && (status["queue"] as? [Any])?.isEmpty == true
    }
}

@Suite(
    "no_quorum_policy on corosync (issue 12)", .serialized, .timeLimit(.minutes(3)),
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct QuorumPolicyTests {
    @Test(
        "(e) no_quorum_policy stop, partition 2|1: the lone node runs TE_QUORUM_LOST after the delay, the majority takes it over and does not; after the heal and a restart it is a member again"
    )
    func loneNodeReleases() throws {
        try withCluster(corosyncNodes: 3, nodes: ["n1", "n2", "n3"]) { cluster in
            let rules = try cluster.writeRules([
                ("TE_FAIL_NODE", 0, "other \"STEP takeover\" 0 NULL\n"),
                (
                    "TE_QUORUM_LOST", 0,
                    """
                    event "STEP release-app" 0 NULL
                    barrier
                    all "STEP release-ip" 0 NULL
                    """
                ),
            ])
            let delay = 2.0
            let extra = "fencing: none\nno_quorum_policy: {action: stop, delay: \(Int(delay))s}"
            var started: [String] = []
            for (name, namespace) in [("n1", 1), ("n2", 2), ("n3", 3)] {
                try cluster.startEngine(name, corosyncNode: namespace, rules: rules, extra: extra)
                started.append(name)
                try #require(cluster.eventually(60) { settled(cluster, started) }, "\(started) did not settle")
            }
            #expect(cluster.steps().isEmpty, "\(cluster.steps())")

            let mark = nowNS()
            try cluster.link(3, up: false)
            defer { try? cluster.link(3, up: true) }
            // The lone node: both segments of TE_QUORUM_LOST, in order, as the event node.
            try #require(
                cluster.eventually(30) { cluster.steps().filter { $0.event == "TE_QUORUM_LOST" }.count == 2 },
                "n3 ran no TE_QUORUM_LOST: \(cluster.steps())\n\(cluster.journal("n3", kind: "quorum"))")
            // The majority's takeover of n3.
            try #require(
                cluster.eventually(30) {
                    cluster.steps().filter { $0.event == "TE_FAIL_NODE" }.count == 2 && settled(cluster, ["n1", "n2"])
                }, "\(cluster.steps())")
            // Time for anything more to run if it were going to.
            Thread.sleep(forTimeInterval: 1)
            let steps = cluster.steps()
            let released = steps.filter { $0.event == "TE_QUORUM_LOST" }
            #expect(
                released.map(\.description) == ["n3 release-app TE_QUORUM_LOST@n3", "n3 release-ip TE_QUORUM_LOST@n3"])
            #expect(released[0].end <= released[1].start, "\(released)")
            // Not before the delay from the cut (quorum is lost after the cut, by corosync's token timeout).
            #expect(
                released[0].start - mark >= Int64(delay * 1e9),
                "released \(Double(released[0].start - mark) / 1e9) s after the cut")
            #expect(
                steps.filter { $0.event == "TE_FAIL_NODE" }.map(\.description).sorted() == [
                    "n1 takeover TE_FAIL_NODE@n3", "n2 takeover TE_FAIL_NODE@n3",
                ], "\(steps)")
            #expect(steps.count == 4, "\(steps)")
            let lines = cluster.journal("n3", kind: "quorum")
            for expected in [
                "quorum lost: this partition runs no recovery program until it is back",
                "quorum lost: no_quorum_policy stop: TE_QUORUM_LOST runs on this node in 2s unless quorum is back",
                "TE_QUORUM_LOST (TE_QUORUM_LOST_0) starts on this node: 2 segment(s), releasing its resources",
                "TE_QUORUM_LOST completed on this node",
            ] {
                #expect(lines.contains(expected), "n3: \(lines)")
            }
            #expect(lines.filter { $0.hasPrefix("TE_QUORUM_LOST segment") }.count == 2, "\(lines)")
            for node in ["n1", "n2"] {
                #expect(
                    !cluster.journal(node, kind: "quorum").contains { $0.contains("TE_QUORUM_LOST") },
                    "\(node): \(cluster.journal(node, kind: "quorum"))")
            }
            #expect(cluster.status("n3")?["quorate"] as? Bool == false)

            // The heal: n3's side loses the merge; its engine exits 1 and runs nothing more.
            try cluster.link(3, up: true)
            try #require(cluster.eventually(20) { cluster.engineExitStatus("n3") != nil }, "n3 still runs")
            #expect(cluster.engineExitStatus("n3") == 1)
            #expect(settled(cluster, ["n1", "n2"]))
            // Restarted (systemd): a member again, synchronised, with quorum, nothing running or
            // queued, nothing waiting for quorum; TE_QUORUM_LOST ran once, on n3 only.
            try cluster.restartEngine("n3")
            try #require(
                cluster.eventually(60) { settled(cluster, ["n1", "n2", "n3"]) },
                "n3 did not rejoin: \(cluster.status("n3") ?? [:])")
            #expect(cluster.status("n3")?["waiting_for_quorum"] as? Int == 0, "\(cluster.status("n3") ?? [:])")
            Thread.sleep(forTimeInterval: 1)
            #expect(cluster.steps() == steps, "after the rejoin: \(cluster.steps())")
        }
    }
}
