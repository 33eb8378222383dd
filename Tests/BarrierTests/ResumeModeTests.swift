import Foundation
import HamnYAML
import RecoveryPrograms
import RulesEngine
import RulesParser
import Testing

/// `resume`'s three modes and the re-arm when recovery comes back on, as coordinator
/// transitions: the same deliveries to two nodes, and the exact effects each returns.
@Suite("resume modes and re-arm")
struct ResumeModeTests {
    static let (n1, n2) = (ClusterNode(name: "n1", number: 1), ClusterNode(name: "n2", number: 2))
    /// Lines 1 and 2 in segment 0, line 4 in segment 1.
    static let program = """
        all "/bin/step-a" 0 NULL
        all "/bin/step-b" 0 NULL
        barrier
        all "/bin/after" 0 NULL
        """
    static let rules = ruleBook([("work", 0, program)])

    /// Both nodes' coordinators, and what each did at the last delivery.
    struct Pair {
        var nodes = [
            Coordinator(local: n1, rules: rules, initialMembers: [n1, n2]),
            Coordinator(local: n2, rules: rules, initialMembers: [n1, n2]),
        ]

        /// Delivers to both; returns (n1's effects, n2's effects).
        mutating func deliver(_ delivery: Delivery) -> ([Effect], [Effect]) {
            (nodes[0].apply(delivery, now: 0), nodes[1].apply(delivery, now: 0))
        }
    }

    static func result(_ command: String, line: Int, status: Int32) -> CommandResult {
        CommandResult(
            command: command, line: line, termination: .exited(status), accepted: status == 0, duration: 0,
            outputTail: "")
    }

    static func step(_ command: String, line: Int) -> CommandStep {
        CommandStep(relationship: .all, command: command, expected: .exactly(0), line: line, column: 6)
    }

    /// `work` raised on n1; n1's step-b exits 3, n2's segment succeeds: the event is held.
    static func held() -> (Pair, ClusterEvent) {
        var pair = Pair()
        let request = EventRequest(name: "work", node: n1)
        _ = pair.deliver(.message(from: n1, .raise(request)))
        let event = pair.nodes[0].state.current!.event
        _ = pair.deliver(
            .message(
                from: n1,
                .segmentDone(
                    eventID: 1, segment: 0,
                    results: [result("/bin/step-a", line: 1, status: 0), result("/bin/step-b", line: 2, status: 3)])))
        _ = pair.deliver(
            .message(
                from: n2,
                .segmentDone(
                    eventID: 1, segment: 0,
                    results: [result("/bin/step-a", line: 1, status: 0), result("/bin/step-b", line: 2, status: 0)])))
        return (pair, event)
    }

    static func entry(_ mode: ResumeMode, _ event: ClusterEvent, failedOn: [ClusterNode] = [n1]) -> ResumeEntry {
        ResumeEntry(
            mode: mode, cancelQueued: false, user: "alice", node: n2, event: event, segment: 0, failedOn: failedOn)
    }

    @Test("held: the failure and the failed lines of each node are in the replicated state")
    func heldState() {
        let (pair, _) = Self.held()
        for coordinator in pair.nodes {
            let current = coordinator.state.current
            #expect(current?.failure?.node == Self.n1 && current?.failure?.segment == 0)
            #expect(current?.failedSteps == [.init(node: Self.n1, lines: [2])])
            #expect(current?.reached == ["n2"])
        }
    }

    @Test("retry: the failed command alone runs again on the node where it failed; success passes the barrier")
    func retrySucceeds() throws {
        var (pair, event) = Self.held()
        let (first, second) = pair.deliver(.message(from: Self.n2, .resume(.retry, cancelQueued: false, user: "alice")))
        let run = try #require(pair.nodes[0].state.current)
        let retry = SegmentRun(
            event: event, segment: 0, commands: [Self.step("/bin/step-b", line: 2)],
            environment: pair.nodes[0].environment(for: run))
        #expect(first == [.journal(.resumed(Self.entry(.retry, event))), .runSegment(retry)])
        #expect(second == [.journal(.resumed(Self.entry(.retry, event)))])
        #expect(run.failure == nil && run.failedSteps == nil && run.segment == 0)
        // It succeeds now: the barrier passes and segment 1 starts on both.
        let ok = Self.result("/bin/step-b", line: 2, status: 0)
        let (after1, after2) = pair.deliver(
            .message(from: Self.n1, .segmentDone(eventID: 1, segment: 0, results: [ok])))
        var next = run
        next.segment = 1
        let commandDone = Effect.journal(.commandFinished(eventID: 1, node: Self.n1, segment: 0, result: ok))
        let barrier = Effect.journal(.barrierPassed(eventID: 1, index: 0, participants: [Self.n1, Self.n2]))
        #expect(
            after1 == [
                commandDone, barrier,
                .runSegment(
                    SegmentRun(
                        event: event, segment: 1, commands: [Self.step("/bin/after", line: 4)],
                        environment: pair.nodes[0].environment(for: next))),
            ])
        #expect(
            after2 == [
                commandDone, barrier,
                .runSegment(
                    SegmentRun(
                        event: event, segment: 1, commands: [Self.step("/bin/after", line: 4)],
                        environment: pair.nodes[1].environment(for: next))),
            ])
    }

    @Test("retry that fails again: the event is held again, and TE_EVENT_ERROR is raised again")
    func retryFailsAgain() {
        var (pair, event) = Self.held()
        _ = pair.deliver(.message(from: Self.n2, .resume(.retry, cancelQueued: false, user: "alice")))
        let failed = Self.result("/bin/step-b", line: 2, status: 3)
        let (effects, _) = pair.deliver(
            .message(from: Self.n1, .segmentDone(eventID: 1, segment: 0, results: [failed])))
        #expect(
            effects == [
                .journal(.commandFinished(eventID: 1, node: Self.n1, segment: 0, result: failed)),
                .journal(.failed(event, node: Self.n1, segment: 0)),
                .journal(.unmatched(EventRequest(name: "TE_EVENT_ERROR", node: Self.n1))),
            ])
        #expect(pair.nodes[0].state.current?.failure?.node == Self.n1)
        #expect(pair.nodes[1].state.current?.failedSteps == [.init(node: Self.n1, lines: [2])])
    }

    @Test("continue: the failed node counts as having finished the segment; the next one starts everywhere")
    func continueGoesOn() throws {
        var (pair, event) = Self.held()
        let (first, second) = pair.deliver(
            .message(from: Self.n2, .resume(.continue, cancelQueued: false, user: "alice")))
        let run = try #require(pair.nodes[0].state.current)
        #expect(run.segment == 1 && run.failure == nil && run.reached == [])
        let barrier = Effect.journal(.barrierPassed(eventID: 1, index: 0, participants: [Self.n1, Self.n2]))
        let after = [Self.step("/bin/after", line: 4)]
        #expect(
            first == [
                .journal(.resumed(Self.entry(.continue, event))), barrier,
                .runSegment(
                    SegmentRun(
                        event: event, segment: 1, commands: after, environment: pair.nodes[0].environment(for: run))),
            ])
        #expect(
            second == [
                .journal(.resumed(Self.entry(.continue, event))), barrier,
                .runSegment(
                    SegmentRun(
                        event: event, segment: 1, commands: after, environment: pair.nodes[1].environment(for: run))),
            ])
        // The last segment done: the event completes.
        let done = Self.result("/bin/after", line: 4, status: 0)
        _ = pair.deliver(.message(from: Self.n1, .segmentDone(eventID: 1, segment: 1, results: [done])))
        let (end, _) = pair.deliver(.message(from: Self.n2, .segmentDone(eventID: 1, segment: 1, results: [done])))
        #expect(end.contains(.journal(.finished(event, outcome: .completed))))
    }

    @Test("plain resume keeps HACMP's meaning: the event ends failed, nothing more of it runs")
    func plainSkips() {
        var (pair, event) = Self.held()
        let (first, second) = pair.deliver(.message(from: Self.n2, .resume(cancelQueued: false, user: "alice")))
        let expected: [Effect] = [
            .journal(.resumed(Self.entry(.skip, event))), .journal(.finished(event, outcome: .failed)),
        ]
        #expect(first == expected)
        #expect(second == expected)
        #expect(pair.nodes[0].state.current == nil)
    }

    @Test("a resume with nothing held says who asked")
    func nothingHeld() {
        var pair = Pair()
        let (effects, _) = pair.deliver(.message(from: Self.n1, .resume(.retry, cancelQueued: false, user: "bob")))
        let entry = ResumeEntry(mode: .retry, cancelQueued: false, user: "bob", node: Self.n1)
        #expect(effects == [.journal(.resumed(entry))])
        #expect(entry.description == "RESUME --retry by bob on n1: no failed event to resume")
    }

    @Test("the resume message: plain is the old JSON, an old message reads as plain, modes round-trip")
    func wire() throws {
        let plain = WireFormat.encode(.cluster(.resume(.skip, cancelQueued: true, user: nil)))
        #expect(
            String(decoding: plain.dropFirst(6), as: UTF8.self)
                == #"{"cluster":{"_0":{"resume":{"cancelQueued":true}}}}"#)
        let old = Array("HAMN".utf8) + [2, 0] + Array(#"{"cluster":{"_0":{"resume":{"cancelQueued":false}}}}"#.utf8)
        #expect(try WireFormat.decode(old) == .cluster(.resume(cancelQueued: false, mode: nil, user: nil)))
        for mode in ResumeMode.allCases {
            let message = WireMessage.cluster(.resume(mode, cancelQueued: false, user: "alice"))
            #expect(try WireFormat.decode(WireFormat.encode(message)) == message)
        }
    }

    // MARK: Re-arm

    static let paging = ruleBook([("db2_paging", 0, "all \"/bin/page\" 0 NULL\n")])

    static func pagingRequest(_ instance: String = "NodeNum=2") -> EventRequest {
        EventRequest(
            name: "db2_paging", node: n2,
            resource: ResourceObservation(
                variable: "IBM.PSSP.aixos.PagSp.%totalused", instance: instance, value: "85"))
    }

    @Test("recovery on: the node's instances whose events were suppressed are re-armed there, journaled everywhere")
    func rearmOnRecovery() {
        var pair = Pair()
        pair.nodes = [
            Coordinator(local: Self.n1, rules: Self.paging, initialMembers: [Self.n1, Self.n2]),
            Coordinator(local: Self.n2, rules: Self.paging, initialMembers: [Self.n1, Self.n2]),
        ]
        _ = pair.deliver(.message(from: Self.n1, .recovery(enabled: false, nodes: ["n2"])))
        _ = pair.deliver(.message(from: Self.n2, .raise(Self.pagingRequest())))
        _ = pair.deliver(.message(from: Self.n2, .raise(Self.pagingRequest())))  // again: recorded once
        // A trigger by hand has no instance to re-arm.
        _ = pair.deliver(.message(from: Self.n1, .raise(EventRequest(name: "db2_paging", node: Self.n2))))
        let instance = SuppressedInstance(name: "db2_paging", state: 0, instance: "NodeNum=2")
        #expect(pair.nodes[0].state.suppressed == ["n2": [instance]])
        let (first, second) = pair.deliver(.message(from: Self.n1, .recovery(enabled: true, nodes: ["n1", "n2"])))
        let journal: [Effect] = [
            .journal(.recovery(enabled: true, nodes: ["n1", "n2"])),
            .journal(.rearmed(node: "n2", instances: [instance])),
        ]
        #expect(first == journal)
        #expect(second == journal + [.rearm([instance])])
        #expect(pair.nodes[1].state.suppressed.isEmpty)
        // Once: a second `recovery on` has nothing to re-arm.
        let (again, _) = pair.deliver(.message(from: Self.n1, .recovery(enabled: true, nodes: ["n2"])))
        #expect(again == [.journal(.recovery(enabled: true, nodes: ["n2"]))])
    }

    @Test("a node that leaves takes its suppressed instances with it; the snapshot carries them")
    func rearmRecordLifetime() throws {
        var coordinator = Coordinator(local: Self.n1, rules: Self.paging, initialMembers: [Self.n1, Self.n2])
        _ = coordinator.apply(.message(from: Self.n1, .recovery(enabled: false, nodes: ["n2"])), now: 0)
        _ = coordinator.apply(.message(from: Self.n2, .raise(Self.pagingRequest())), now: 0)
        let state = coordinator.state
        let object = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as? [String: Any])
        #expect(object["suppressed"] != nil)
        #expect(try JSONDecoder().decode(ReplicatedState.self, from: JSONEncoder().encode(state)) == state)
        let empty = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(ReplicatedState())) as? [String: Any])
        #expect(empty["suppressed"] == nil, "left out when empty: the snapshot engines before it send")
        _ = coordinator.apply(
            .membership(MembershipChange(view: 2, members: [Self.n1], joined: [], left: [Self.n2])), now: 0)
        #expect(coordinator.state.suppressed.isEmpty)
    }

    // MARK: Scenarios

    @Test("scenario faults name the resume mode; a command's status may be one per run")
    func scenarioSyntax() throws {
        let text = """
            rules: r
            nodes: [a]
            commands:
              - {command: /bin/x, status: [4, 4, 0]}
            faults:
              - {at: 1s, resume: true}
              - {at: 2s, resume: retry}
              - {at: 3s, resume: continue}
              - {at: 4s, resume: {mode: retry, cancel_queued: true}}
            """
        let scenario = try ScenarioParser.parse(text, file: "x.yaml")
        let modes = scenario.faults.map { timed -> String in
            if case .resume(let mode, let cancel) = timed.fault {
                "\(mode.rawValue)\(cancel ? "+cancel" : "")"
            } else {
                "?"
            }
        }
        #expect(modes == ["skip", "retry", "continue", "retry+cancel"])
        let rule = try #require(scenario.commands.first)
        #expect((1...5).map { rule.status(ofRun: $0) } == [4, 4, 0, 0, 0])
        for (fault, message) in [
            ("{at: 1s, resume: again}", "x.yaml:4:22: error: faults[0].resume: the mode is skip, retry or continue"),
            ("{at: 1s, resume: false}", "x.yaml:4:22: error: faults[0].resume: true, retry, continue"),
            ("{at: 1s, resume: {mode: x}}", "x.yaml:4:29: error: faults[0].resume.mode: the mode is skip"),
        ] {
            #expect(throws: YAMLError.self) {
                try ScenarioParser.parse("rules: r\nnodes: [a]\nfaults:\n  - \(fault)\n", file: "x.yaml")
            }
            do {
                _ = try ScenarioParser.parse("rules: r\nnodes: [a]\nfaults:\n  - \(fault)\n", file: "x.yaml")
            } catch {
                #expect(error.description.hasPrefix(message), "\(error.description)")
            }
        }
    }
}
