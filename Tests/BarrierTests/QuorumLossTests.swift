import HamnYAML
import RecoveryPrograms
import RulesParser
import Testing

@testable import RulesEngine

/// `no_quorum_policy` (issue 12, part 5): the rule for when `TE_QUORUM_LOST` runs
/// (`QuorumLossRule`), the coordinator's local event, the simulator's partitions, and the
/// policy's parsing.
@Suite("quorum loss policy")
struct QuorumLossTests {
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
            "TE_QUORUM_LOST", 0,
            """
            event "release-app" 0 NULL
            all "release-ip" 0 NULL
            barrier
            event "released" 0 NULL
            """
        ),
        ("TE_JOIN_NODE", 0, "event \"acquire\" 0 NULL\n"),
        ("slow", 0, "all \"slow-step\" 0 NULL\nbarrier\nall \"after-slow\" 0 NULL\n"),
    ])

    private func node(_ number: Int) -> ClusterNode { ClusterNode(name: "n\(number)", number: number) }

    private func localRuns(_ effects: [Effect]) -> [LocalEventRun] {
        effects.compactMap { if case .runLocalEvent(let run) = $0 { run } else { nil } }
    }

    private func lossEntries(_ effects: [Effect]) -> [QuorumLossEntry] {
        effects.compactMap { if case .journal(.quorumLoss(let entry)) = $0 { entry } else { nil } }
    }

    @Test("the rule: due at loss + delay, not while busy, once per loss; back before it cancels; freeze never")
    func rule() {
        var rule = QuorumLossRule(policy: .stop(delay: 5))
        let change1 = rule.quorumChanged(false, now: 10)
        #expect(change1 == .armed(due: 15))
        #expect(rule.due == 15)
        let ran2 = rule.runsNow(now: 14.9, busy: false)
        #expect(!ran2)
        let ran3 = rule.runsNow(now: 15, busy: true)  // a segment of this node still runs
        #expect(!ran3)
        let ran4 = rule.runsNow(now: 15.5, busy: false)
        #expect(ran4)
        let ran5 = rule.runsNow(now: 16, busy: false)  // once per loss
        #expect(!ran5)
        #expect(rule.due == nil)
        let change6 = rule.quorumChanged(false, now: 17)  // still the same loss
        #expect(change6 == .none)
        let change7 = rule.quorumChanged(true, now: 20)
        #expect(change7 == .backAfterRun)
        // A second loss, healed within the delay: nothing runs.
        let change8 = rule.quorumChanged(false, now: 30)
        #expect(change8 == .armed(due: 35))
        let change9 = rule.quorumChanged(true, now: 34)
        #expect(change9 == .cancelled)
        let ran10 = rule.runsNow(now: 40, busy: false)
        #expect(!ran10)
        #expect(rule.due == nil)
        // Delay 0: at once.
        var immediate = QuorumLossRule(policy: .stop(delay: 0))
        let change11 = immediate.quorumChanged(false, now: 3)
        #expect(change11 == .armed(due: 3))
        let ran12 = immediate.runsNow(now: 3, busy: false)
        #expect(ran12)
        // freeze: never armed, never runs.
        var freeze = QuorumLossRule(policy: .freeze)
        let change13 = freeze.quorumChanged(false, now: 1)
        #expect(change13 == .none)
        #expect(freeze.due == nil)
        let ran14 = freeze.runsNow(now: 1000, busy: false)
        #expect(!ran14)
        let change15 = freeze.quorumChanged(true, now: 1001)
        #expect(change15 == .none)
    }

    @Test("the coordinator runs TE_QUORUM_LOST locally after the delay: its event and all steps, no message")
    func coordinator() throws {
        let all = (1...3).map(node)
        var coordinator = Coordinator(
            local: node(3), rules: Self.rules, noQuorumPolicy: .stop(delay: 5), initialMembers: all)
        let lost = coordinator.apply(.quorum(false), now: 100.1)
        #expect(lossEntries(lost) == [.armed(delay: 5)])
        #expect(
            lossEntries(lost).first?.description
                == "quorum lost: no_quorum_policy stop: TE_QUORUM_LOST runs on this node in 5s unless quorum is back")
        #expect(QuorumLossEntry.armed(delay: 2.5).description.contains(" in 2.5s unless"))
        #expect(localRuns(lost).isEmpty)
        #expect(localRuns(coordinator.apply(.tick, now: 105)).isEmpty)
        let due = coordinator.apply(.tick, now: 105.2)
        let run = try #require(localRuns(due).first)
        #expect(lossEntries(due) == [.started(displayName: "TE_QUORUM_LOST", segments: 2)])
        #expect(run.segments.map { $0.map(\.command) } == [["release-app", "release-ip"], ["released"]])
        #expect(run.environment["HAMN_EVENT"] == "TE_QUORUM_LOST")
        #expect(run.environment["HAMN_EVENT_NODE"] == "n3")
        #expect(run.environment["HAMN_EVENT_ID"] == "0")
        // Nothing for the cluster: no multicast, no cluster event.
        #expect(!due.contains { if case .multicast = $0 { true } else { false } })
        #expect(localRuns(coordinator.apply(.tick, now: 200)).isEmpty)  // once
        // Back, lost again, back within the delay: nothing more runs.
        #expect(lossEntries(coordinator.apply(.quorum(true), now: 300)).isEmpty)
        #expect(lossEntries(coordinator.apply(.quorum(false), now: 400)) == [.armed(delay: 5)])
        #expect(lossEntries(coordinator.apply(.quorum(true), now: 402)) == [.cancelled])
        #expect(localRuns(coordinator.apply(.tick, now: 410)).isEmpty)
    }

    @Test("freeze (the default) never runs it; stop without a rule journals that nothing runs")
    func freezeAndNoRule() {
        let all = (1...3).map(node)
        var frozen = Coordinator(local: node(3), rules: Self.rules, initialMembers: all)
        var effects = frozen.apply(.quorum(false), now: 0)
        effects += frozen.apply(.tick, now: 3600)
        #expect(localRuns(effects).isEmpty)
        #expect(lossEntries(effects).isEmpty)
        var ruleless = Coordinator(
            local: node(3), rules: ruleBook([("TE_JOIN_NODE", 0, "event \"acquire\" 0 NULL\n")]),
            noQuorumPolicy: .stop(delay: 1), initialMembers: all)
        effects = ruleless.apply(.quorum(false), now: 0) + ruleless.apply(.tick, now: 1)
        #expect(localRuns(effects).isEmpty)
        #expect(lossEntries(effects) == [.armed(delay: 1), .noRule])
    }

    @Test("a 2|1 partition under stop: the lone node runs TE_QUORUM_LOST after the delay, the majority does not")
    func partition() {
        var sim = ClusterSimulation(
            nodes: (1...3).map(node), rules: Self.rules, noQuorumPolicy: .stop(delay: 5),
            oracle: oracle(["release-app": (0, 2)]))
        sim.schedule(at: 10, .partition([["n1", "n2"], ["n3"]]))
        sim.run(until: 60)
        #expect(sim.commandsRun(for: "TE_QUORUM_LOST") == ["n3 0 release-app", "n3 0 release-ip", "n3 1 released"])
        // Due at 15; the second segment after the first's longest command (2 s).
        #expect(sim.segmentStarts("TE_QUORUM_LOST", segment: 0) == ["n3": 15])
        #expect(sim.segmentStarts("TE_QUORUM_LOST", segment: 1) == ["n3": 17])
        #expect(sim.journal(of: "n3").contains(.quorumLoss(.finished(completed: true))))
        // The majority took over n3 and ran no TE_QUORUM_LOST.
        #expect(
            sim.commandsRun(for: "TE_FAIL_NODE").sorted() == ["n1 0 take", "n1 1 settle", "n2 0 take", "n2 1 settle"])
        #expect(!sim.journal(of: "n1").contains { if case .quorumLoss = $0 { true } else { false } })
    }

    @Test("a partition healed within the delay runs nothing; a failed command ends it at that segment")
    func healedAndFailed() {
        var healed = ClusterSimulation(
            nodes: (1...3).map(node), rules: Self.rules, noQuorumPolicy: .stop(delay: 30))
        healed.schedule(at: 10, .partition([["n1", "n2"], ["n3"]]))
        healed.schedule(at: 20, .heal)
        healed.run(until: 100)
        #expect(healed.commandsRun(for: "TE_QUORUM_LOST").isEmpty)
        #expect(healed.journal(of: "n3").contains(.quorumLoss(.armed(delay: 30))))

        var failing = ClusterSimulation(
            nodes: (1...3).map(node), rules: Self.rules, noQuorumPolicy: .stop(delay: 0),
            oracle: oracle(["release-ip": (1, 0)]))
        failing.schedule(at: 10, .partition([["n1", "n2"], ["n3"]]))
        failing.run(until: 60)
        #expect(failing.commandsRun(for: "TE_QUORUM_LOST") == ["n3 0 release-app", "n3 0 release-ip"])
        #expect(failing.journal(of: "n3").contains(.quorumLoss(.finished(completed: false))))
    }

    @Test("a segment of this node that runs when quorum is lost ends first; TE_QUORUM_LOST starts after it")
    func waitsForTheRunningSegment() {
        var sim = ClusterSimulation(
            nodes: (1...3).map(node), rules: Self.rules, noQuorumPolicy: .stop(delay: 5),
            oracle: oracle(["n3:slow-step": (0, 20)]))
        sim.trigger("slow", on: "n1", at: 1)
        sim.schedule(at: 10, .partition([["n1", "n2"], ["n3"]]))
        sim.run(until: 100)
        // Due at 15, but n3's slow-step runs until 21.
        #expect(sim.segmentStarts("TE_QUORUM_LOST", segment: 0) == ["n3": 21])
        // n3's next segment of 'slow' waits for quorum: it never runs here.
        #expect(!sim.commandsRun(for: "slow").contains("n3 1 after-slow"))
    }

    @Test("no_quorum_policy parses: freeze, stop, {action, delay}; exact errors at file:line:col")
    func parsing() throws {
        func parse(_ text: String) throws(YAMLError) -> NoQuorumPolicy {
            try NoQuorumPolicy.parse(
                YAMLValue.parse("no_quorum_policy: " + text, file: "hamn.yaml")!.mapping(allowed: nil)[0].value)
        }
        #expect(try parse("freeze") == .freeze)
        #expect(try parse("stop") == .stop(delay: 5))
        #expect(try parse("{action: stop, delay: 30s}") == .stop(delay: 30))
        #expect(try parse("{action: stop, delay: 0s}") == .stop(delay: 0))
        #expect(try parse("{action: freeze}") == .freeze)
        func error(_ text: String) -> String {
            do {
                _ = try parse(text)
                return "no error"
            } catch {
                return error.description
            }
        }
        #expect(
            error("halt")
                == "hamn.yaml:1:19: error: no_quorum_policy: expected freeze (run nothing new without quorum) or stop (run TE_QUORUM_LOST), not 'halt'"
        )
        #expect(
            error("{action: stop, delay: 2h}")
                == "hamn.yaml:1:41: error: no_quorum_policy.delay: the delay must be from 0s to 1h (3600s)")
        #expect(
            error("{delay: 5s}") == "hamn.yaml:1:19: error: no_quorum_policy: missing key 'action' (freeze or stop)")
        #expect(
            error("{action: freeze, delay: 5s}")
                == "hamn.yaml:1:19: error: no_quorum_policy: a delay is for action stop only (freeze runs nothing)")
        #expect(error("{action: stop, wait: 5s}").hasPrefix("hamn.yaml:1:34: "))
    }
}
