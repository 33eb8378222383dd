import Foundation
import RulesEngine
import Testing

/// The phases kept as enums, each with one transition: a stopping node's (`StopPhase.next`)
/// and a joining coordinator's (`Coordinator.Phase`).
@Suite("phases")
struct PhaseTests {
    typealias Step = (from: StopPhase?, event: StopPhase.Event, to: StopPhase?, counts: Bool)

    static let stopSteps: [Step] = [
        (nil, .stopRequested(.graceful), .stopping(.graceful), true),
        (.stopping(.graceful), .stopRequested(.takeover), .stopping(.graceful), false),
        (.departing(.graceful), .stopRequested(.forced), .departing(.graceful), false),
        (.stopping(.takeover), .stopEventEnded(state: 2), .departing(.takeover), true),
        (.stopping(.takeover), .stopEventEnded(state: 1), .stopping(.takeover), false),
        (.departing(.takeover), .stopEventEnded(state: 2), .departing(.takeover), true),
        (nil, .stopEventEnded(state: 1), nil, false),
        (.departing(.forced), .left, nil, true),
        (.stopping(.forced), .left, nil, false),
        (nil, .left, nil, false),
    ]

    @Test("a stopping node's transitions", arguments: stopSteps.indices)
    func stopTransitions(_ index: Int) {
        let step = Self.stopSteps[index]
        let (phase, counts) = StopPhase.next(step.from, on: step.event)
        #expect(phase == step.to, "\(step)")
        #expect(counts == step.counts, "\(step)")
    }

    @Test("the snapshot's JSON keeps the two collections stops replaced, and reads them back")
    func snapshotWire() throws {
        var state = ReplicatedState(members: nodes(3))
        state.stops = ["n2": .stopping(.takeover), "n3": .departing(.graceful)]
        let object = try #require(
            try JSONSerialization.jsonObject(with: JSONEncoder().encode(state)) as? [String: Any])
        #expect(object["stops"] == nil)
        #expect(object["stopping"] as? [String: String] == ["n2": "takeover", "n3": "graceful"])
        #expect(object["departing"] as? [String] == ["n3"])
        #expect(try JSONDecoder().decode(ReplicatedState.self, from: JSONEncoder().encode(state)) == state)
        // The shape an engine from before the enum sends.
        let old = """
            {"members":[{"name":"n1","number":1}],"awaitingSnapshot":[],"queue":[],"notifications":[],
             "recoveryOff":["n1"],"stopping":{"n1":"forced","n4":"graceful"},"departing":["n4"],
             "nextEventID":7,"nextArrival":9}
            """
        let decoded = try JSONDecoder().decode(ReplicatedState.self, from: Data(old.utf8))
        #expect(decoded.stops == ["n1": .stopping(.forced), "n4": .departing(.graceful)])
        #expect(decoded.stopping == ["n1": .forced, "n4": .graceful])
        #expect(decoded.nextEventID == 7 && decoded.nextArrival == 9 && decoded.current == nil)
    }

    @Test("a joining coordinator: outside, awaiting the snapshot (holding what comes), synchronised")
    func joining() {
        let (n1, n2, n3) = (
            ClusterNode(name: "n1", number: 1), ClusterNode(name: "n2", number: 2), ClusterNode(name: "n3", number: 3)
        )
        var joiner = Coordinator(local: n3, rules: ruleBook([]))
        #expect(joiner.phase == .outside)
        // A change that does not name it, and messages, change nothing.
        _ = joiner.apply(.membership(.init(view: 1, members: [n1, n2], joined: [n1, n2], left: [])), now: 0)
        _ = joiner.apply(.message(from: n1, .resume(cancelQueued: false)), now: 0)
        #expect(joiner.phase == .outside)
        let admitted = Delivery.membership(.init(view: 2, members: [n1, n2, n3], joined: [n3], left: []))
        #expect(joiner.apply(admitted, now: 0).isEmpty)
        #expect(joiner.phase == .awaitingSnapshot(held: [admitted], holders: ["n1", "n2"]))
        let resume = Delivery.message(from: n2, .resume(cancelQueued: false))
        _ = joiner.apply(resume, now: 0)
        let n1Left = Delivery.membership(.init(view: 3, members: [n2, n3], joined: [], left: [n1]))
        _ = joiner.apply(n1Left, now: 0)
        #expect(joiner.phase == .awaitingSnapshot(held: [admitted, resume, n1Left], holders: ["n2"]))
        #expect(!joiner.isSynchronised)
        var cluster = ReplicatedState(members: [n1, n2, n3])
        cluster.awaitingSnapshot = [n3]
        cluster.nextEventID = 5
        let effects = joiner.apply(.message(from: n2, .snapshot(for: ["n3"], view: 2, state: cluster)), now: 0)
        #expect(effects.first == .journal(.synchronised(view: 2)))
        #expect(joiner.phase == .synchronised && joiner.isSynchronised)
        #expect(joiner.state.members == [n2, n3])

        // Alone: it forms the cluster at once.
        var alone = Coordinator(local: n1, rules: ruleBook([]))
        _ = alone.apply(.membership(.init(view: 1, members: [n1], joined: [n1], left: [])), now: 0)
        #expect(alone.phase == .synchronised)
        // Every holder gone before the snapshot: it starts afresh.
        var orphan = Coordinator(local: n3, rules: ruleBook([]))
        _ = orphan.apply(admitted, now: 0)
        let effectsAfresh = orphan.apply(
            .membership(.init(view: 3, members: [n3], joined: [], left: [n1, n2])), now: 0)
        #expect(effectsAfresh == [.journal(.synchronised(view: 3))])
        #expect(orphan.phase == .synchronised && orphan.state.members == [n3])
    }
}
