import Foundation
import RecoveryPrograms
import Testing
import TimelineRendering

@testable import HamnService
@testable import RulesEngine

/// An event of the journal read back as a timeline (`history EVENT`): lanes from its
/// participants, bars from the commands' ends less their durations, barriers, waits, the
/// failure, the hold and the resume from the event log, the departure.
@Suite("journal timeline")
struct JournalTimelineTests {
    @Test("a failed, resumed and completed event")
    func resumed() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        let event = clusterEvent(1)
        try journal.append(.queued(event), at: at(2))
        try journal.append(.started(event, displayName: "DB2 <paging>", participants: [n1, n2, n3]), at: at(3))
        try journal.append(
            .commandFinished(eventID: 1, node: n1, segment: 0, result: result("/bin/stop db2", line: 3)), at: at(4))
        try journal.append(
            .commandFinished(eventID: 1, node: n2, segment: 0, result: result("/bin/stop db2", line: 3, duration: 1.5)),
            at: at(4.5))
        try journal.append(.participantLeft(eventID: 1, node: n3), at: at(4.75))
        try journal.append(.barrierPassed(eventID: 1, index: 0, participants: [n1, n2]), at: at(5))
        try journal.append(
            .commandFinished(
                eventID: 1, node: n2, segment: 1,
                result: result("FOO=1 mount /db2", line: 5, .exited(32), accepted: false)),
            at: at(6))
        try journal.append(.failed(event, node: n2, segment: 1), at: at(6))
        try journal.append(
            .resumed(
                ResumeEntry(
                    mode: .retry, cancelQueued: false, user: "root", node: n1, event: event, segment: 1, failedOn: [n2])
            ),
            at: at(8))
        try journal.append(
            .commandFinished(
                eventID: 1, node: n2, segment: 1, result: result("FOO=1 mount /db2", line: 5, duration: 0.5)),
            at: at(9))
        try journal.append(.barrierPassed(eventID: 1, index: 1, participants: [n1, n2]), at: at(9.5))
        try journal.append(.finished(event, outcome: .completed), at: at(10))

        let timeline = try #require(try journal.timeline(event: 1, run: nil))
        #expect(timeline.title == "db2_paging 0 (node n2, event 1, run \(journal.run))")
        #expect(timeline.displayName == "DB2 <paging>")
        #expect(timeline.status == "completed")
        #expect(timeline.nodes == ["n1", "n2", "n3"])
        #expect(timeline.end == 7)
        #expect(
            timeline.commands.map {
                "\($0.node) \($0.segment) \($0.line) \($0.program) \($0.start)-\($0.end) \($0.outcome)"
            }
                == [
                    "n2 0 3 stop 0.0-1.5 ok", "n1 0 3 stop 0.75-1.0 ok", "n2 1 5 mount 2.75-3.0 failed",
                    "n2 1 5 mount 5.5-6.0 ok",
                ])
        #expect(timeline.commands[2].result == "exit 32 (not the expected status)")
        #expect(timeline.segments == [.init(index: 0, start: 0, end: 2), .init(index: 1, start: 2, end: 6.5)])
        #expect(
            timeline.barriers.map { "\($0.segment) \($0.time) \($0.participants)" } == [
                "0 2.0 [\"n1\", \"n2\"]", "1 6.5 [\"n1\", \"n2\"]",
            ])
        #expect(
            timeline.waits == [
                .init(node: "n1", segment: 0, start: 1, end: 2), .init(node: "n2", segment: 0, start: 1.5, end: 2),
                .init(node: "n1", segment: 1, start: 2, end: 6.5), .init(node: "n2", segment: 1, start: 6, end: 6.5),
            ])
        #expect(
            timeline.marks == [
                .held(start: 3, end: 5), .failed(node: "n2", segment: 1, time: 3), .resume(mode: "retry", time: 5),
                .left(node: "n3", time: 1.75),
            ])
        #expect(try journal.timeline(event: 1, run: journal.run) == timeline)
        #expect(try journal.timeline(event: 2, run: nil) == nil)
        #expect(try journal.timeline(event: 1, run: journal.run + 1) == nil)
        // What the control socket sends reads back the same.
        #expect(try Timeline(json: timeline.json()) == timeline)
        try journal.close()
    }

    @Test("a command is placed by its end on the node that ran it, when journaled")
    func nodeClock() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        let event = clusterEvent(1)
        try journal.append(.started(event, displayName: "x", participants: [n1]), at: at(1))
        var ended = result("/bin/true", duration: 0.5)
        ended.endedAt = at(2).timeIntervalSince1970
        try journal.append(.commandFinished(eventID: 1, node: n1, segment: 0, result: ended), at: at(3))
        let timeline = try #require(try journal.timeline(event: 1, run: nil))
        #expect(timeline.commands.map { "\($0.start)-\($0.end)" } == ["0.5-1.0"])
        #expect(timeline.status == "running")
        #expect(timeline.end == 1)
        try journal.close()
    }
}
