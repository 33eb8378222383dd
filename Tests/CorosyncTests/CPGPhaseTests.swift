import Testing

@testable import CorosyncTransport

/// `CPGPhase.next`, without corosync: every (phase, event) pair.
@Suite("CPG connection phases")
struct CPGPhaseTests {
    static let phases: [CPGPhase] = [.open, .leaving(deadline: 5), .left, .lost(reason: "gone"), .closing, .closed]
    static let events: [CPGPhase.Event] = [
        .leave(deadline: 7), .leaveTookEffect, .lost(reason: "hup"), .close, .finalized,
    ]

    /// The phase each applied event leads to; every pair not listed is ignored.
    static func expected(_ phase: CPGPhase, _ event: CPGPhase.Event) -> CPGPhase? {
        switch (phase, event) {
        case (.open, .leave(let deadline)): .leaving(deadline: deadline)
        case (.open, .lost(let reason)), (.leaving, .lost(let reason)): .lost(reason: reason)
        case (.open, .close), (.leaving, .close): .closing
        case (.leaving, .leaveTookEffect): .left
        case (.left, .close), (.lost, .close): .closed
        case (.closing, .lost), (.closing, .finalized): .closed
        default: nil
        }
    }

    @Test("each transition, and every other pair ignored")
    func transitions() {
        for phase in Self.phases {
            for event in Self.events {
                var next = phase
                let applied = next.next(event)
                let expected = Self.expected(phase, event)
                #expect(applied == (expected != nil), "\(phase) on \(event)")
                #expect(next == (expected ?? phase), "\(phase) on \(event)")
            }
        }
    }

    @Test("what each phase allows: the stream, dispatch, sending")
    func properties() {
        #expect(Self.phases.map(\.streamOpen) == [true, true, false, false, true, false])
        #expect(Self.phases.map(\.dispatches) == [true, true, false, false, false, false])
        #expect(Self.phases.map(\.leaveDeadline) == [nil, 5, nil, nil, nil, nil])
        #expect(Self.phases.map(\.sendError) == [nil, .left, .left, .lost(reason: "gone"), .closed, .closed])
    }

    /// Applies `events` in turn: whether each applied.
    private func run(_ phase: inout CPGPhase, _ events: CPGPhase.Event...) -> [Bool] {
        events.map { phase.next($0) }
    }

    @Test("a close, a leave and a loss: the stream ends once on each path")
    func paths() {
        // Leave, then the change that shows it, then close: the stream ended at the change.
        var phase = CPGPhase.open
        #expect(run(&phase, .leave(deadline: 1), .leave(deadline: 2), .leaveTookEffect) == [true, false, true])
        #expect(!phase.streamOpen)
        #expect(run(&phase, .close, .finalized) == [true, false])
        #expect(phase == .closed)
        // Close while open: the stream ends when the handles are finalized.
        phase = .open
        #expect(run(&phase, .close) == [true])
        #expect(phase.streamOpen && !phase.dispatches)
        #expect(run(&phase, .close, .leave(deadline: 1), .finalized) == [false, false, true])
        #expect(phase == .closed)
        // Lost while leaving: sending says lost, not left; a second loss is ignored.
        phase = .leaving(deadline: 1)
        #expect(run(&phase, .lost(reason: "cpg_dispatch: CS_ERR_LIBRARY"), .lost(reason: "again")) == [true, false])
        #expect(phase.sendError == .lost(reason: "cpg_dispatch: CS_ERR_LIBRARY"))
    }
}
