import Foundation
import RulesEngine
import Testing

/// The phases kept as enums, each with one transition: a stopping node's (`StopPhase.next`).
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
}
