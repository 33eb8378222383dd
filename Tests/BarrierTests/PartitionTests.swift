import RecoveryPrograms
import RulesEngine
import RulesParser
import Testing

/// Partitions and heals on the coordinator (through `ClusterSimulation`, whose group splits and
/// heals as Corosync with votequorum does): a part without quorum runs nothing; at a heal the
/// merge rule keeps one part; no takeover runs for a node that is alive in the merged cluster.
@Suite("partitions and heals")
struct PartitionTests {
    static let rules = ruleBook([
        (
            "TE_FAIL_NODE", 0,
            """
            other "take" 0 NULL
            barrier
            all "settle" 0 NULL
            """
        ),
        (
            "TE_JOIN_NODE", 0,
            """
            event "acquire" 0 NULL
            other "give-back" 0 NULL
            """
        ),
    ])

    /// `node segment command` of every takeover command, with the takeover's event node.
    private func takeovers(_ sim: ClusterSimulation) -> [String] {
        sim.trace.flatMap { entry -> [String] in
            guard case .segmentStarted(let run) = entry.kind, run.event.name == "TE_FAIL_NODE" else { return [] }
            return run.commands.map { "\(entry.node.name) \(run.segment) \($0.command) for \(run.event.node.name)" }
        }
    }

    @Test("2|1 healed: the lone node runs nothing while split, loses the merge, restarts and rejoins")
    func loneNodeHealed() {
        var sim = ClusterSimulation(nodes: nodes(3), rules: Self.rules)
        sim.schedule(at: 10, .partition([["n1", "n2"], ["n3"]]))
        sim.schedule(at: 30, .heal)
        sim.run()
        // The majority took n3 over during the split; n3 (no quorum) took nobody over.
        #expect(takeovers(sim) == ["n1 0 take for n3", "n2 0 take for n3", "n1 1 settle for n3", "n2 1 settle for n3"])
        #expect(sim.journal(of: "n3").contains(.quorum(false, waiting: 0)))
        #expect(sim.journal(of: "n3").contains(.waitsForQuorum(eventID: 1, name: "TE_FAIL_NODE", segment: 0)))
        // n3 lost the merge at 30 and joined afresh at 35.
        #expect(
            sim.trace.contains {
                $0.node.name == "n3" && $0.time == 30 && { if case .lostMerge = $0.kind { true } else { false } }($0)
            })
        #expect(sim.processed(by: "n1") == ["TE_FAIL_NODE@n3:completed", "TE_JOIN_NODE@n3:completed"])
        #expect(sim.processed(by: "n2") == sim.processed(by: "n1"))
        #expect(sim.segmentStarts("TE_JOIN_NODE", segment: 0) == ["n1": 35, "n2": 35, "n3": 35])
        // Nothing of n3's side lingers: after the heal every node has one state.
        #expect(Set(sim.coordinators.values.map(\.state)).count == 1)
        #expect(sim.coordinators.values.allSatisfy { $0.isQuorate && $0.waitingForQuorum.isEmpty })
    }

    @Test("a heal during the takeover's barrier: the takeover of the live node ends at the barrier, cancelled")
    func healDuringBarrier() {
        // n1's take lasts 10 s: the heal at 15 comes while n2 waits at the barrier for n1.
        var sim = ClusterSimulation(
            nodes: nodes(3), rules: Self.rules,
            oracle: { node, _, _, step in
                .init(status: 0, duration: node.name == "n1" && step.command == "take" ? 10 : 0)
            })
        sim.schedule(at: 5, .partition([["n1", "n2"], ["n3"]]))
        sim.schedule(at: 15, .heal)
        sim.run()
        #expect(takeovers(sim) == ["n1 0 take for n3", "n2 0 take for n3"])
        #expect(sim.journal(of: "n1").contains(.merged(alive: [ClusterNode(name: "n3", number: 3)])))
        #expect(sim.processed(by: "n1") == ["TE_FAIL_NODE@n3:cancelled", "TE_JOIN_NODE@n3:completed"])
        // The cancelled takeover ended when n1's take did (15), before n3 came back (20).
        let ended = sim.trace.first {
            if case .journal(.finished(let event, .cancelled)) = $0.kind {
                event.node.name == "n3" && $0.node.name == "n1"
            } else {
                false
            }
        }
        #expect(ended?.time == 15)
    }

    @Test("1|1|1 healed at once: node 1 stays, with no takeover of the live n2 and n3; they rejoin")
    func threeWaySplit() {
        var sim = ClusterSimulation(nodes: nodes(3), rules: Self.rules)
        sim.schedule(at: 10, .partition([["n1"], ["n2"], ["n3"]]))
        sim.schedule(at: 30, .heal)
        sim.run()
        #expect(takeovers(sim).isEmpty)
        let alive = [ClusterNode(name: "n2", number: 2), ClusterNode(name: "n3", number: 3)]
        let n1 = sim.journal(of: "n1")
        let merged = n1.firstIndex(of: .merged(alive: alive))
        let quorum = n1.firstIndex(of: .quorum(true, waiting: 1))
        // The merge is applied before quorum comes back: the waiting takeover never runs.
        #expect(merged != nil && quorum != nil && merged! < quorum!)
        #expect(
            sim.processed(by: "n1") == [
                "TE_FAIL_NODE@n2:cancelled", "TE_FAIL_NODE@n3:cancelled", "TE_JOIN_NODE@n2:completed",
                "TE_JOIN_NODE@n3:completed",
            ])
        #expect(
            sim.trace.filter { if case .lostMerge = $0.kind { true } else { false } }.map(\.node.name) == ["n2", "n3"])
    }

    @Test("2|2 with four: neither half has quorum; at the heal the half with node 1 stays")
    func evenSplit() {
        var sim = ClusterSimulation(nodes: nodes(4), rules: Self.rules)
        sim.schedule(at: 10, .partition([["n3", "n4"], ["n1", "n2"]]))
        sim.schedule(at: 30, .heal)
        sim.run()
        #expect(takeovers(sim).isEmpty)
        #expect(
            sim.trace.filter { if case .lostMerge = $0.kind { true } else { false } }.map(\.node.name) == ["n3", "n4"])
        #expect(
            sim.processed(by: "n2") == [
                "TE_FAIL_NODE@n3:cancelled", "TE_FAIL_NODE@n4:cancelled", "TE_JOIN_NODE@n3:completed",
                "TE_JOIN_NODE@n4:completed",
            ])
    }

    @Test("a second split before the first heals: 3|2 then 2|1|2; the heal keeps the largest part")
    func secondSplit() {
        var sim = ClusterSimulation(nodes: nodes(5), rules: Self.rules)
        sim.schedule(at: 10, .partition([["n1", "n2", "n3"], ["n4", "n5"]]))
        sim.schedule(at: 12, .partition([["n1", "n2"], ["n3"], ["n4", "n5"]]))
        sim.schedule(at: 40, .heal)
        sim.run()
        // Only the three-node part had quorum, and only until the second split: it took n4 and
        // n5 over at 10; after 12 no part has quorum and nobody takes anybody over.
        let late = sim.trace.filter { entry in
            if case .segmentStarted(let run) = entry.kind { entry.time > 10 && !run.commands.isEmpty } else { false }
        }
        #expect(
            late.allSatisfy {
                if case .segmentStarted(let run) = $0.kind { run.event.name == "TE_JOIN_NODE" } else { false }
            })
        #expect(takeovers(sim).filter { $0.hasSuffix("for n4") }.count == 6)
        #expect(!takeovers(sim).contains { $0.hasPrefix("n4 ") || $0.hasPrefix("n5 ") })
        // The tie 2|2 (n1 n2 against n4 n5) goes to the part with node 1.
        #expect(
            sim.trace.filter { if case .lostMerge = $0.kind { true } else { false } }.map(\.node.name).sorted() == [
                "n3", "n4", "n5",
            ])
        #expect(sim.coordinators.keys.sorted() == ["n1", "n2", "n3", "n4", "n5"])
        #expect(Set(sim.coordinators.values.map(\.state)).count == 1)
    }
}
