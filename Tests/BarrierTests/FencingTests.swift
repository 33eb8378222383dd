import Foundation
import RecoveryPrograms
import RulesParser
import Testing

@testable import RulesEngine

/// Fencing before takeover (issue 12), on the coordinator: the fencing rule (`segmentHold`),
/// who fences, retries, an administrator's confirmation, quorum, a fencer that leaves, a heal
/// that shows the node alive. The seeded schedules (RandomisedScheduleTests, odd seeds) check
/// the rule across thousands of schedules.
@Suite("fencing before takeover")
struct FencingTests {
    static let rules = ruleBook([
        (
            "TE_FAIL_NODE", 0,
            """
            other "take" 0 NULL
            barrier
            all "settle" 0 NULL
            """
        ),
        ("TE_FAIL_NODE", 1, "event \"release\" 0 NULL\n"),
        ("TE_EVENT_ERROR", 0, "other \"notify\" 0 NULL\n"),
        ("TE_JOIN_NODE", 0, "event \"acquire\" 0 NULL\n"),
        ("u1", 0, "all \"work\" 0 NULL\n"),
    ])
    static let policy = FencingPolicy(enabled: true, attempts: 3)

    private func coordinators(_ count: Int, fencing: FencingPolicy = policy) -> [Coordinator] {
        let all = nodes(count)
        return all.map { Coordinator(local: $0, rules: Self.rules, fencing: fencing, initialMembers: all) }
    }

    private func left(_ gone: Int, of count: Int, view: Int = 1) -> Delivery {
        let remaining = nodes(count).filter { $0.number != gone }
        return .membership(MembershipChange(view: view, members: remaining, joined: [], left: [node(gone)]))
    }

    private func node(_ number: Int) -> ClusterNode { ClusterNode(name: "n\(number)", number: number) }

    private func commands(_ effects: [Effect]) -> [String] {
        effects.flatMap { effect -> [String] in
            guard case .runSegment(let run) = effect else { return [] }
            return run.commands.map(\.command)
        }
    }

    private func fences(_ effects: [Effect]) -> [FenceRequest] {
        effects.compactMap { if case .fence(let request) = $0 { request } else { nil } }
    }

    /// `node segment command` of every takeover command, with its time.
    private func takeoverCommands(_ sim: ClusterSimulation) -> [(time: Double, line: String)] {
        sim.trace.flatMap { entry -> [(time: Double, line: String)] in
            guard case .segmentStarted(let run) = entry.kind, run.event.name == "TE_FAIL_NODE", run.event.state == 0
            else { return [] }
            return run.commands.map {
                (entry.time, "\(entry.node.name) \(run.segment) \($0.command) for \(run.event.node.name)")
            }
        }
    }

    private func fenceEntries(_ sim: ClusterSimulation, of name: String) -> [String] {
        sim.journal(of: name).compactMap {
            if case .fence(let entry) = $0, !entry.isLocal { entry.description } else { nil }
        }
    }

    @Test(
        "the rule: without quorum nothing starts; while a fence is pending no segment with commands starts, but notifications"
    )
    func rule() {
        let takeover = ClusterEvent(
            id: 1, name: "TE_FAIL_NODE", state: 0, node: node(3), resource: nil, priority: 0, arrival: 1)
        let stop = ClusterEvent(
            id: 2, name: "TE_FAIL_NODE", state: 1, node: node(3), resource: nil, priority: 0, arrival: 2)
        let other = ClusterEvent(id: 3, name: "u1", state: 0, node: node(3), resource: nil, priority: 0, arrival: 3)
        let pending = ["n3": PendingFence(node: node(3), fencer: node(1))]
        #expect(segmentHold(for: takeover, quorate: true, pendingFences: pending) == .fence(node(3)))
        #expect(segmentHold(for: takeover, quorate: true, pendingFences: [:]) == nil)
        #expect(segmentHold(for: takeover, quorate: false, pendingFences: [:]) == .quorum)
        // Any event waits while a node's state is unknown: it may hold what the event starts.
        #expect(segmentHold(for: stop, quorate: true, pendingFences: pending) == .fence(node(3)))
        #expect(segmentHold(for: other, quorate: true, pendingFences: pending) == .fence(node(3)))
        let elsewhere = ClusterEvent(id: 4, name: "u1", state: 0, node: node(1), resource: nil, priority: 0, arrival: 4)
        #expect(segmentHold(for: elsewhere, quorate: true, pendingFences: pending) == .fence(node(3)))
        #expect(segmentHold(for: elsewhere, runsCommands: false, quorate: true, pendingFences: pending) == nil)
        let notification = ClusterEvent(
            id: 5, name: "TE_EVENT_ERROR", state: 0, node: node(3), resource: nil, priority: 0, arrival: 5)
        #expect(segmentHold(for: notification, quorate: true, pendingFences: pending) == nil)
        #expect(segmentHold(for: notification, quorate: false, pendingFences: pending) == .quorum)
    }

    @Test("a crashed node: the lowest member alone runs the agent; the takeover starts on no node before the outcome")
    func fencedBeforeTakeover() throws {
        var (n1, n2) = {
            let all = coordinators(3)
            return (all[0], all[1])
        }()
        let e1 = n1.apply(left(3, of: 3), now: 0)
        let e2 = n2.apply(left(3, of: 3), now: 0)
        #expect(fences(e1) == [FenceRequest(node: node(3), attempt: 1)])
        #expect(fences(e2).isEmpty)
        #expect(commands(e1).isEmpty && commands(e2).isEmpty)
        #expect(e1.contains(.journal(.fence(.needed(node: node(3), fencer: node(1))))))
        #expect(e2.contains(.journal(.fence(.waits(eventID: 1, name: "TE_FAIL_NODE", segment: 0, node: node(3))))))
        // It waits queued: it starts, with the members there are then, once the node is down.
        #expect(n1.state.current == nil && n1.state.queue.count == 1 && n2.state.queue.count == 1)
        // The outcome, at one place in the order: both start their share.
        let outcome = Delivery.message(from: node(1), .fenceOutcome(node: "n3", outcome: .fenced, attempt: 1))
        #expect(commands(n1.apply(outcome, now: 1)) == ["take"])
        #expect(commands(n2.apply(outcome, now: 1)) == ["take"])
        #expect(n1.state.pendingFences.isEmpty && n1.state == n2.state)
    }

    @Test("without fencing configured, the takeover runs at once, as before")
    func noFencing() {
        var n1 = coordinators(3, fencing: .none)[0]
        let effects = n1.apply(left(3, of: 3), now: 0)
        #expect(fences(effects).isEmpty)
        #expect(commands(effects) == ["take"])
    }

    @Test("a graceful stop is not fenced")
    func gracefulStop() {
        var sim = ClusterSimulation(nodes: nodes(3), rules: Self.rules, fencing: Self.policy)
        sim.schedule(at: 1, .stop("n3", .graceful))
        sim.run()
        #expect(fenceEntries(sim, of: "n1").isEmpty)
        #expect(sim.processed(by: "n1") == ["TE_FAIL_NODE/1@n3:completed"])
    }

    @Test("without quorum the fencer waits; quorum back, it fences")
    func fencerWaitsForQuorum() {
        var n1 = coordinators(3)[0]
        _ = n1.apply(.quorum(false), now: 0)
        #expect(fences(n1.apply(left(3, of: 3), now: 0)).isEmpty)
        #expect(fences(n1.apply(.quorum(true), now: 1)) == [FenceRequest(node: node(3), attempt: 1)])
    }

    @Test("the fencer leaves before its outcome: the next lowest member fences; one that joins meanwhile does not")
    func fencerLeaves() {
        var n2 = coordinators(4)[1]
        _ = n2.apply(left(4, of: 4), now: 0)  // n1 is the fencer
        let joined = MembershipChange(
            view: 2, members: nodes(3) + [ClusterNode(name: "n0", number: 0)],
            joined: [ClusterNode(name: "n0", number: 0)], left: [])
        #expect(fences(n2.apply(.membership(joined), now: 1)).isEmpty)
        #expect(n2.state.pendingFences["n4"]?.fencer == node(1))
        let gone = MembershipChange(
            view: 3, members: [ClusterNode(name: "n0", number: 0), node(2), node(3)], joined: [], left: [node(1)])
        let effects = n2.apply(.membership(gone), now: 2)
        // n0 is the lowest member now: the fence is its (n2 does not run it).
        #expect(fences(effects).isEmpty)
        #expect(n2.state.pendingFences["n4"]?.fencer == ClusterNode(name: "n0", number: 0))
        #expect(effects.contains(.journal(.fence(.needed(node: node(4), fencer: ClusterNode(name: "n0", number: 0))))))
    }

    @Test(
        "an agent that fails is retried, each failure raises TE_EVENT_ERROR, and after the last the takeover waits for fence confirm"
    )
    func failingAgentThenConfirm() {
        var sim = ClusterSimulation(
            nodes: nodes(3), rules: Self.rules, fencing: Self.policy,
            fenceOracle: { _, _, _ in .init(succeeds: false, duration: 2) })
        sim.schedule(at: 1, .crash("n3"))
        sim.run(until: 50)
        #expect(takeoverCommands(sim).isEmpty)
        #expect(
            fenceEntries(sim, of: "n2") == [
                "FENCE NEEDED: n3 left without a graceful stop; its takeover waits for a fence by n1",
                "FENCE FAILED: n3 by n1 (attempt 1): the fence agent failed",
                "FENCE FAILED: n3 by n1 (attempt 2): the fence agent failed",
                "FENCE FAILED: n3 by n1 (attempt 3): the fence agent failed",
                "fencing n3: failed 3 times, takeover waits (hamn-events fence n3, or fence confirm n3 once it is down)",
            ])
        #expect(
            sim.processed(by: "n2").filter { $0.hasPrefix("TE_EVENT_ERROR") }
                == Array(repeating: "TE_EVENT_ERROR@n3:completed", count: 3))
        #expect(sim.coordinators["n2"]!.state.pendingFences["n3"]?.failures == 3)
        // The administrator made sure n3 is down.
        sim.schedule(at: 60, .fromAnyMember(.fenceOutcome(node: "n3", outcome: .confirmed, attempt: 0)))
        sim.run()
        #expect(
            takeoverCommands(sim).map(\.line) == [
                "n1 0 take for n3", "n2 0 take for n3", "n1 1 settle for n3", "n2 1 settle for n3",
            ])
        #expect(takeoverCommands(sim).allSatisfy { $0.time >= 60 })
        #expect(
            fenceEntries(sim, of: "n1").last
                == "FENCE CONFIRMED: an administrator on n1 made sure n3 is down; its takeover may run")
    }

    @Test("2|1 split: the isolated node is powered off before any takeover command; it restarts and rejoins")
    func partitionFencesTheLoneNode() throws {
        var sim = ClusterSimulation(
            nodes: nodes(3), rules: Self.rules, fencing: Self.policy,
            fenceOracle: { _, _, _ in .init(succeeds: true, duration: 3) })
        sim.schedule(at: 10, .partition([["n1", "n2"], ["n3"]]))
        sim.schedule(at: 40, .heal)
        sim.run()
        let off = try #require(
            sim.trace.first { $0.node.name == "n3" && { if case .poweredOff = $0.kind { true } else { false } }($0) })
        #expect(off.time == 13)
        let takeovers = takeoverCommands(sim)
        #expect(
            takeovers.map(\.line) == [
                "n1 0 take for n3", "n2 0 take for n3", "n1 1 settle for n3", "n2 1 settle for n3",
            ])
        #expect(takeovers.allSatisfy { $0.time >= off.time })
        // n3 could not fence n1 or n2: no quorum.
        #expect(fenceEntries(sim, of: "n3").allSatisfy { $0.hasPrefix("FENCE NEEDED") })
        // Rebooted after the restart delay, it joins the majority while still split (the heal at 40 finds one cluster).
        #expect(sim.processed(by: "n1") == ["TE_FAIL_NODE@n3:completed", "TE_JOIN_NODE@n3:completed"])
        #expect(Set(sim.coordinators.values.map(\.state)).count == 1)
    }

    @Test(
        "a heal that shows the node alive before its fence: the takeover runs nothing; the node is fenced unless its engine joins within the window"
    )
    func healKeepsNodeOutside() {
        var n1 = coordinators(3)[0]
        _ = n1.apply(left(3, of: 3), now: 0)
        let effects = n1.apply(.merged(alive: [node(3)]), now: 1)
        // The takeover, queued for the fence, is cancelled.
        #expect(
            effects.contains {
                if case .journal(.finished(let event, .cancelled)) = $0 { event.name == "TE_FAIL_NODE" } else { false }
            })
        #expect(commands(effects).isEmpty)
        #expect(n1.state.current == nil && n1.state.queue.isEmpty)
        // n3's engine lost the merge and stops, holding what it held: fenced after the window.
        #expect(
            effects.contains(.journal(.fence(.needed(node: node(3), fencer: node(1), reason: .outside, window: 30)))))
        #expect(n1.state.pendingFences["n3"]?.reason == .outside)
        #expect(fences(effects).isEmpty)  // the fence of n3 that was asked for is still running
        n1.fenceNotRun("n3")
        let user = Delivery.message(from: node(2), .raise(EventRequest(name: "u1", node: node(2))))
        // Another event waits, queued, while n3's state is unknown.
        let held = n1.apply(user, now: 3)
        #expect(commands(held).isEmpty)
        #expect(n1.state.current == nil && n1.state.queue.map(\.name) == ["u1"])
        #expect(held.contains(.journal(.fence(.waits(eventID: 2, name: "u1", segment: 0, node: node(3))))))
        // n3's engine starts again and joins: no fence; what waited runs.
        let back = n1.apply(
            .membership(MembershipChange(view: 2, members: nodes(3), joined: [node(3)], left: [])), now: 4)
        #expect(back.contains(.journal(.fence(.dropped(node: node(3))))))
        #expect(n1.state.pendingFences.isEmpty)
        // u1 starts with the members there are now, n3 among them; then n3's TE_JOIN_NODE.
        #expect(commands(back) == ["work"])
        #expect(n1.state.current?.members == nodes(3))
    }

    @Test("startup fencing: a cluster that forms fences the nodes it does not see, unless they join within the window")
    func startupFencing() {
        let policy = FencingPolicy(enabled: true, attempts: 3, nodes: nodes(3), window: 30)
        var n2 = Coordinator(local: node(2), rules: Self.rules, fencing: policy)
        let formed = n2.apply(
            .membership(MembershipChange(view: 1, members: [node(2)], joined: [node(2)], left: [])), now: 0)
        #expect(
            formed.contains(.journal(.fence(.needed(node: node(1), fencer: node(2), reason: .unseen, window: 30)))))
        #expect(
            formed.contains(.journal(.fence(.needed(node: node(3), fencer: node(2), reason: .unseen, window: 30)))))
        // The window runs: no agent yet, not at 29 s either.
        #expect(fences(formed).isEmpty)
        #expect(n2.nextFenceDue == 30)
        #expect(fences(n2.apply(.tick, now: 29)).isEmpty)
        // Its own TE_JOIN_NODE (acquire) waits for both.
        #expect(commands(formed).isEmpty)
        #expect(formed.contains(.journal(.fence(.waits(eventID: 1, name: "TE_JOIN_NODE", segment: 0, node: node(1))))))
        #expect(n2.state.current == nil)
        // n3 joins in time: no fence for it; n1 is fenced.
        let joined = n2.apply(
            .membership(MembershipChange(view: 2, members: [node(2), node(3)], joined: [node(3)], left: [])), now: 5)
        #expect(joined.contains(.journal(.fence(.dropped(node: node(3))))))
        #expect(commands(joined).isEmpty)
        // The window closes for n1 alone.
        #expect(fences(n2.apply(.tick, now: 30)) == [FenceRequest(node: node(1), attempt: 1)])
        #expect(n2.nextFenceDue == nil)
        let fenced = n2.apply(
            .message(from: node(2), .fenceOutcome(node: "n1", outcome: .fenced, attempt: 1)), now: 31)
        #expect(commands(fenced) == ["acquire"])
        #expect(n2.state.pendingFences.isEmpty)
    }

    @Test("a snapshot from an engine without fencing (no `fencing` key) still decodes")
    func snapshotWithoutFencing() throws {
        var state = ReplicatedState(members: nodes(2))
        state.pendingFences["n3"] = PendingFence(node: node(3), fencer: node(1))
        let withFences = try JSONEncoder().encode(state)
        #expect(try JSONDecoder().decode(ReplicatedState.self, from: withFences) == state)
        var object = try #require(try JSONSerialization.jsonObject(with: withFences) as? [String: Any])
        object["fencing"] = nil
        let old = try JSONSerialization.data(withJSONObject: object)
        #expect(try JSONDecoder().decode(ReplicatedState.self, from: old).pendingFences.isEmpty)
    }
}
