import RecoveryPrograms
import RulesEngine
import RulesParser
import Testing

/// One scripted test per rule of SPEC section 7.
@Suite("coordinator rules")
struct CoordinatorRuleTests {
    static let twoSegments = """
        event "local" 0 NULL
        other "remote" 0 NULL
        barrier
        all "complete" 0 NULL
        """

    @Test("one event at a time, in the same order on every node, priority then arrival")
    func orderAndPriority() {
        let rules = ruleBook([
            ("user_a", 0, Self.twoSegments), ("user_b", 0, Self.twoSegments),
            ("TE_JOIN_NODE", 0, Self.twoSegments), ("TE_FAIL_NODE", 0, Self.twoSegments),
        ])
        var sim = ClusterSimulation(nodes: nodes(4), rules: rules, oracle: oracle(["local": (0, 5)]))
        sim.trigger("user_a", on: "n1", at: 0)
        // While user_a runs: another user event, then a crash and a join arrive.
        sim.trigger("user_b", on: "n2", at: 1)
        sim.schedule(at: 2, .crash("n4"))
        sim.schedule(at: 3, .join(ClusterNode(name: "n4", number: 4)))
        sim.run()
        let expected = [
            "user_a@n1:completed", "TE_FAIL_NODE@n4:completed", "TE_JOIN_NODE@n4:completed", "user_b@n2:completed",
        ]
        for name in ["n1", "n2", "n3"] {
            #expect(sim.processed(by: name) == expected, "\(name)")
        }
        // The rejoined n4 took part from its TE_JOIN_NODE on and saw the same order from there.
        #expect(sim.processed(by: "n4").suffix(2) == ["TE_JOIN_NODE@n4:completed", "user_b@n2:completed"])
        // Never two events at once: each starts after the previous finished.
        var running: Int?
        for entry in sim.journal(of: "n1") {
            switch entry {
            case .started(let event, _, _):
                #expect(running == nil, "event \(event.id) started while \(running ?? 0) ran")
                running = event.id
            case .finished(let event, _):
                if running == event.id { running = nil }
            default: break
            }
        }
    }

    @Test("a barrier releases only when every participant has reached it")
    func barrier() {
        let rules = ruleBook([("work", 0, Self.twoSegments)])
        // The event node's command takes 10 s; the others' 1 s.
        var sim = ClusterSimulation(
            nodes: nodes(3), rules: rules, oracle: oracle(["local": (0, 10), "remote": (0, 1)]))
        sim.trigger("work", on: "n2", at: 0)
        sim.run()
        #expect(sim.segmentStarts("work", segment: 0) == ["n1": 0, "n2": 0, "n3": 0])
        #expect(sim.segmentStarts("work", segment: 1) == ["n1": 10, "n2": 10, "n3": 10])
        #expect(
            sim.commandsRun() == [
                "n1 0 remote", "n2 0 local", "n3 0 remote", "n1 1 complete", "n2 1 complete", "n3 1 complete",
            ])
        #expect(sim.processed() == ["work@n2:completed"])
    }

    @Test("a node crash during an event: it completes with the survivors, then TE_FAIL_NODE runs")
    func crashDuringEvent() {
        let rules = ruleBook([
            ("work", 0, Self.twoSegments),
            (
                "TE_FAIL_NODE", 0,
                "event \"failed_local\" 0 NULL\nother \"takeover\" 0 NULL\nbarrier\nall \"done\" 0 NULL\n"
            ),
        ])
        var sim = ClusterSimulation(nodes: nodes(3), rules: rules, oracle: oracle(["n3:remote": (0, 30)]))
        sim.trigger("work", on: "n1", at: 0)
        sim.schedule(at: 5, .crash("n3"))  // n3 is still in segment 0
        sim.run()
        #expect(sim.processed() == ["work@n1:completed", "TE_FAIL_NODE@n3:completed"])
        // Segment 1 of work started at 5 s, when n3 left, on the two survivors only.
        #expect(sim.segmentStarts("work", segment: 1) == ["n1": 5, "n2": 5])
        // TE_FAIL_NODE: the event node is n3, which is gone, so only the `other` and `all` lines run.
        #expect(sim.commandsRun(for: "TE_FAIL_NODE") == ["n1 0 takeover", "n2 0 takeover", "n1 1 done", "n2 1 done"])
        #expect(sim.journal(of: "n1").contains(.participantLeft(eventID: 1, node: sim.node("n3"))))
    }

    @Test("a failed command holds the event; the others wait; resume skips the rest and moves on")
    func failureAndResume() {
        let rules = ruleBook([
            ("work", 0, Self.twoSegments), ("next", 0, "all \"next_step\" 0 NULL\n"),
            ("TE_EVENT_ERROR", 0, "event \"notify_admin\" 0 NULL\n"),
            ("TE_CONFIG_TOO_LONG", 0, "event \"warn_slow\" 0 NULL\n"),
        ])
        var sim = ClusterSimulation(
            nodes: nodes(3), rules: rules, configTooLong: 60, oracle: oracle(["n2:local": (1, 2)]))
        sim.trigger("work", on: "n2", at: 0)
        sim.trigger("next", on: "n1", at: 1)
        sim.schedule(at: 200, .multicast(from: "n3", .resume(cancelQueued: false)))
        sim.run(until: 300)
        #expect(
            sim.processed() == [
                "work@n2:failed", "TE_EVENT_ERROR@n2:completed", "TE_CONFIG_TOO_LONG@n2:completed",
                "TE_CONFIG_TOO_LONG@n2:completed", "TE_CONFIG_TOO_LONG@n2:completed", "next@n1:completed",
            ])
        // Nobody ran segment 1 of the failed event: the others waited at the barrier until resume.
        #expect(sim.segmentStarts("work", segment: 1).isEmpty)
        #expect(!sim.commandsRun().contains { $0.hasSuffix(" complete") })
        #expect(sim.segmentStarts("next", segment: 0) == ["n1": 200, "n2": 200, "n3": 200])
        // TE_EVENT_ERROR ran at once on the failing node, beside the held event.
        #expect(sim.segmentStarts("TE_EVENT_ERROR", segment: 0) == ["n1": 2, "n2": 2, "n3": 2])
        #expect(sim.commandsRun(for: "TE_EVENT_ERROR") == ["n2 0 notify_admin"])
        // config_too_long every 60 s from the start, from the node that is stuck.
        let warnings = sim.trace.filter {
            if case .journal(.started(let event, _, _)) = $0.kind {
                event.name == "TE_CONFIG_TOO_LONG" && $0.node.name == "n1"
            } else {
                false
            }
        }.map(\.time)
        #expect(warnings == [60, 120, 180])
    }

    @Test("resume --cancel-queued drops the queue")
    func cancelQueued() {
        let rules = ruleBook([
            ("work", 0, Self.twoSegments), ("a", 0, "all \"a\" 0 NULL\n"), ("b", 0, "all \"b\" 0 NULL\n"),
        ])
        var sim = ClusterSimulation(nodes: nodes(2), rules: rules, oracle: oracle(["local": (2, 0)]))
        sim.trigger("work", on: "n1", at: 0)
        sim.trigger("a", on: "n1", at: 1)
        sim.trigger("b", on: "n2", at: 2)
        sim.schedule(at: 10, .multicast(from: "n2", .resume(cancelQueued: true)))
        sim.run()
        #expect(sim.processed() == ["work@n1:failed", "a@n1:skipped", "b@n2:skipped"])
        #expect(!sim.commandsRun().contains { $0.hasSuffix(" a") || $0.hasSuffix(" b") })
    }

    @Test("events of a node with recovery off are suppressed")
    func recoveryOff() {
        let rules = ruleBook([("work", 0, Self.twoSegments)])
        var sim = ClusterSimulation(nodes: nodes(2), rules: rules)
        sim.schedule(at: 0, .multicast(from: "n1", .recovery(enabled: false, nodes: ["n2"])))
        sim.trigger("work", on: "n2", at: 1)
        sim.trigger("work", on: "n1", at: 2)
        sim.schedule(at: 3, .multicast(from: "n1", .recovery(enabled: true, nodes: ["n2"])))
        sim.trigger("work", on: "n2", at: 4)
        sim.run()
        #expect(sim.processed() == ["work@n2:suppressed", "work@n1:completed", "work@n2:completed"])
    }

    @Test("a graceful stop with takeover: state 2, the stopping node takes part, then leaves quietly")
    func stopWithTakeover() {
        let rules = ruleBook([
            ("TE_FAIL_NODE", 2, "event \"release\" 0 NULL\nbarrier\nother \"acquire\" 0 NULL\n"),
            ("TE_FAIL_NODE", 0, "all \"crash_recovery\" 0 NULL\n"),
        ])
        var sim = ClusterSimulation(nodes: nodes(3), rules: rules, oracle: oracle(["release": (0, 4)]))
        sim.schedule(at: 0, .stop("n2", .takeover))
        sim.run()
        #expect(sim.processed() == ["TE_FAIL_NODE/2@n2:completed"])
        #expect(sim.commandsRun() == ["n2 0 release", "n1 1 acquire", "n3 1 acquire"])
        #expect(sim.coordinators["n2"] == nil)
        #expect(sim.coordinators["n1"]?.state.members.map(\.name) == ["n1", "n3"])
    }

    @Test("a stopping node that leaves before its stop event ends (killed mid-release) is taken over as a crash")
    func leftBeforeStopEnded() {
        let rules = ruleBook([
            ("TE_FAIL_NODE", 1, "event \"release\" 0 NULL\nbarrier\nother \"after_release\" 0 NULL\n"),
            ("TE_FAIL_NODE", 0, "other \"crash_recovery\" 0 NULL\n"),
        ])
        // n2's release takes 10 s; it is killed at 5, before it released anything.
        var sim = ClusterSimulation(nodes: nodes(3), rules: rules, oracle: oracle(["release": (0, 10)]))
        sim.schedule(at: 0, .stop("n2", .graceful))
        sim.schedule(at: 5, .crash("n2"))
        sim.run()
        #expect(sim.processed() == ["TE_FAIL_NODE/1@n2:completed", "TE_FAIL_NODE@n2:completed"])
        #expect(
            sim.commandsRun() == [
                "n2 0 release", "n1 1 after_release", "n3 1 after_release", "n1 0 crash_recovery",
                "n3 0 crash_recovery",
            ])
    }

    @Test("a joining node gets the cluster's state and takes part in its own TE_JOIN_NODE")
    func joinSynchronises() {
        let rules = ruleBook([
            ("work", 0, "all \"step1\" 0 NULL\nbarrier\nall \"step2\" 0 NULL\n"),
            ("TE_JOIN_NODE", 0, "event \"node_up_local\" 0 NULL\nother \"node_up_remote\" 0 NULL\n"),
        ])
        var sim = ClusterSimulation(
            nodes: nodes(3), members: Array(nodes(3).prefix(2)), rules: rules, oracle: oracle(["step1": (0, 10)]))
        sim.trigger("work", on: "n1", at: 0)
        sim.schedule(at: 2, .join(ClusterNode(name: "n3", number: 3)))
        sim.trigger("work", on: "n2", at: 3)
        sim.run()
        let expected = ["work@n1:completed", "TE_JOIN_NODE@n3:completed", "work@n2:completed"]
        #expect(sim.processed(by: "n1") == expected)
        // n3 learnt of the first event from the state it was sent, and saw it complete.
        #expect(sim.processed(by: "n3") == expected)
        #expect(
            sim.commandsRun(for: "TE_JOIN_NODE") == [
                "n1 0 node_up_remote", "n2 0 node_up_remote", "n3 0 node_up_local",
            ])
        // The first work event ran without n3 (not a member at its start); the second with it.
        #expect(sim.segmentStarts("work", segment: 1).keys.sorted() == ["n1", "n2"])
        #expect(sim.coordinators.values.allSatisfy { $0.state == sim.coordinators["n1"]!.state })
    }

    @Test("commands get the event in their environment")
    func environment() throws {
        let rules = ruleBook([("work", 3, Self.twoSegments)])
        var sim = ClusterSimulation(nodes: nodes(2), rules: rules)
        sim.trigger("work", state: 3, on: "n2", at: 0)
        sim.run()
        let run = try #require(
            sim.trace.compactMap { entry -> SegmentRun? in
                if case .segmentStarted(let run) = entry.kind, entry.node.name == "n1" { run } else { nil }
            }.first)
        #expect(run.environment["HAMN_EVENT"] == "work")
        #expect(run.environment["HAMN_EVENT_STATE"] == "3")
        #expect(run.environment["HAMN_EVENT_ID"] == "1")
        #expect(run.environment["HAMN_EVENT_NODE"] == "n2")
        #expect(run.environment["HAMN_EVENT_NODE_NUMBER"] == "2")
        #expect(run.environment["HAMN_LOCAL_NODE"] == "n1")
        #expect(run.environment["HAMN_LOCAL_NODE_NUMBER"] == "1")
        #expect(run.environment["HAMN_MEMBERS"] == "n1 n2")
    }

    @Test("an event that matches no rule is journaled and not run")
    func unmatched() {
        var sim = ClusterSimulation(nodes: nodes(2), rules: ruleBook([]))
        sim.trigger("nothing", on: "n1", at: 0)
        sim.run()
        #expect(sim.processed().isEmpty)
        #expect(sim.journal(of: "n2").contains(.unmatched(EventRequest(name: "nothing", node: sim.node("n1")))))
    }
}
