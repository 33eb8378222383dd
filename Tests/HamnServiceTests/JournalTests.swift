import Foundation
import RecoveryPrograms
import Testing

@testable import HamnService
@testable import RulesEngine

#if canImport(Glibc)
    import Glibc
#endif

/// A fresh directory under the temporary directory, removed by `remove()`. (This file's helpers
/// serve JournalTimelineTests too.)
struct Scratch {
    let url: URL

    init() {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("journal-tests-\(UUID().uuidString)")
        try? FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func path(_ components: String...) -> String {
        components.reduce(url) { $0.appendingPathComponent($1) }.path
    }

    func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

let n1 = ClusterNode(name: "n1", number: 1)
let n2 = ClusterNode(name: "n2", number: 2)
let n3 = ClusterNode(name: "n3", number: 3)

func clusterEvent(
    _ id: Int, _ name: String = "db2_paging", state: Int = 0, node: ClusterNode = n2,
    resource: ResourceObservation? = nil, priority: Int = 5
) -> ClusterEvent {
    ClusterEvent(id: id, name: name, state: state, node: node, resource: resource, priority: priority, arrival: id)
}

func result(
    _ command: String, line: Int = 1, _ termination: Termination = .exited(0), accepted: Bool = true,
    duration: Double = 0.25, output: String = ""
) -> CommandResult {
    CommandResult(
        command: command, line: line, termination: termination, accepted: accepted, duration: duration,
        outputTail: output)
}

private func fileMode(_ path: String) -> mode_t? {
    var info = stat()
    guard stat(path, &info) == 0 else { return nil }
    return info.st_mode & 0o7777
}

/// A time line for entries: `at(3)` is 3 s after an arbitrary instant.
let origin = Date(timeIntervalSince1970: 1_700_000_000)
func at(_ seconds: Double) -> Date { origin.addingTimeInterval(seconds) }

@Suite("journal")
struct JournalTests {
    @Test("a whole event lifecycle is read back by history")
    func lifecycle() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        let paging = ResourceObservation(
            variable: "IBM.PSSP.aixos.PagSp.%totalused", instance: "NodeNum=2", value: "75")
        let event = clusterEvent(1, resource: paging)
        try journal.append(
            .membership(MembershipChange(view: 1, members: [n1, n2, n3], joined: [n1, n2, n3], left: [])), at: at(1))
        try journal.append(.queued(event), at: at(2))
        try journal.append(.started(event, displayName: "DB2 paging", participants: [n1, n2, n3]), at: at(3))
        try journal.append(
            .commandFinished(eventID: 1, node: n1, segment: 0, result: result("/bin/stop db2", line: 3)), at: at(4))
        try journal.append(
            .commandFinished(
                eventID: 1, node: n2, segment: 0,
                result: result("/bin/stop db2", line: 3, .exited(0), duration: 1.5, output: "stopped\n")), at: at(4.5))
        try journal.append(.participantLeft(eventID: 1, node: n3), at: at(4.7))
        try journal.append(.barrierPassed(eventID: 1, index: 0, participants: [n1, n2]), at: at(5))
        try journal.append(
            .commandFinished(
                eventID: 1, node: n2, segment: 1,
                result: result("/bin/start db2", line: 5, .signaled(9), accepted: false)),
            at: at(6))
        try journal.append(.failed(event, node: n2, segment: 1), at: at(6))
        let held = try #require(try journal.event(run: journal.run, id: 1))
        #expect(held.status == "held")
        #expect(held.outcome == nil)
        try journal.append(.finished(event, outcome: .failed), at: at(7))

        // The web view's history: the same event, without its commands and barriers.
        let full = try journal.historyReport(limit: 10).json
        let view = try journal.viewHistoryJSON(limit: 10)
        #expect(full.contains(#""command":"/bin/stop db2""#) && full.contains(#""barriers":[{"#))
        #expect(view.contains(#""commands":[]"#) && view.contains(#""barriers":[]"#))
        #expect(view.contains(#""name":"db2_paging""#) && view.contains(#""outcome":"failed""#))

        let history = try journal.history(limit: 10)
        #expect(history.count == 1)
        let read = try #require(history.first)
        #expect(read.run == journal.run)
        #expect(read.id == 1)
        #expect(read.name == "db2_paging")
        #expect(read.state == 0)
        #expect(read.node == n2)
        #expect(read.displayName == "DB2 paging")
        #expect(read.priority == 5)
        #expect(read.resource == paging)
        #expect(read.outcome == .failed)
        #expect(read.queuedAt == at(2))
        #expect(read.startedAt == at(3))
        #expect(read.finishedAt == at(7))
        #expect(read.participants.map(\.node) == [n1, n2, n3])
        #expect(read.participants.map(\.leftAt) == [nil, nil, at(4.7)])
        #expect(read.failure == JournalFailure(node: n2, segment: 1, at: at(6)))
        #expect(read.barriers == [JournalBarrier(index: 0, passedAt: at(5), participants: [n1, n2])])
        try #require(read.commands.count == 3)
        #expect(read.commands[1].node == n2)
        #expect(read.commands[1].segment == 0)
        #expect(read.commands[1].line == 3)
        #expect(read.commands[1].command == "/bin/stop db2")
        #expect(read.commands[1].termination == "exit 0")
        #expect(read.commands[1].exitStatus == 0)
        #expect(read.commands[1].accepted)
        #expect(read.commands[1].duration == 1.5)
        #expect(read.commands[1].outputTail == "stopped\n")
        #expect(read.commands[2].termination == "signal 9")
        #expect(read.commands[2].exitStatus == nil)
        #expect(read.commands[2].signal == 9)
        #expect(!read.commands[2].accepted)
        #expect(try journal.event(run: journal.run, id: 1) == read)

        let lines = try journal.log(after: 0, limit: 100).filter { $0.kind != "run" }
        #expect(
            lines.map(\.text) == [
                "MEMBERSHIP: view 1: n1 n2 n3 joined; members n1 n2 n3",
                "EVENT QUEUED: db2_paging 0 (node n2, event 1) priority 5 [IBM.PSSP.aixos.PagSp.%totalused NodeNum=2 = 75]",
                "EVENT START: db2_paging 0 (node n2, event 1) \"DB2 paging\", participants n1 n2 n3 [IBM.PSSP.aixos.PagSp.%totalused NodeNum=2 = 75]",
                "COMMAND: n1 event 1 segment 0 line 3 \"/bin/stop db2\" exit 0 (0.25 s)",
                "COMMAND: n2 event 1 segment 0 line 3 \"/bin/stop db2\" exit 0 (1.50 s)",
                "EVENT PARTICIPANT LEFT: n3 left during db2_paging 0 (event 1): dropped from its barriers",
                "EVENT BARRIER: db2_paging 0 (event 1) barrier 0 passed by n1 n2",
                "COMMAND: n2 event 1 segment 1 line 5 \"/bin/start db2\" signal 9 (0.25 s): NOT THE EXPECTED STATUS",
                "EVENT FAILED: db2_paging 0 (node n2, event 1) on n2 in segment 1: held until resume",
                "EVENT FAILED: db2_paging 0 (node n2, event 1): ended failed, the rest is skipped",
            ])
        #expect(
            lines.map(\.kind) == [
                "membership", "queued", "start", "command", "command", "participant", "barrier", "command", "failed",
                "finished",
            ])
        try #require(lines.count == 10)
        #expect(lines[3].node == "n1")
        #expect(lines[3].eventID == 1)
        #expect(lines[0].node == nil)
        let utc = try #require(TimeZone(identifier: "UTC"))
        #expect(lines[2].formatted(timeZone: utc) == "Nov 14 22:13:23 " + lines[2].text)

        let membership = try journal.membershipChanges(limit: 5)
        #expect(membership.count == 1)
        #expect(membership.first?.members == [n1, n2, n3])
        #expect(membership.first?.joined == [n1, n2, n3])
        #expect(membership.first?.left == [])

        // Codable, for `history --format json`.
        let decoded = try JSONDecoder().decode(JournalEvent.self, from: JSONEncoder().encode(read))
        #expect(decoded == read)
        try journal.close()
    }

    @Test("a suppressed event gets its row although it was never queued or started")
    func suppressed() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        try journal.append(.recovery(enabled: false, nodes: ["n2"]), at: at(1))
        try journal.append(.finished(clusterEvent(1), outcome: .suppressed), at: at(2))
        try journal.append(.unmatched(EventRequest(name: "no_such_event", node: n1)), at: at(3))
        let event = try #require(try journal.history(limit: 5).first)
        #expect(event.outcome == .suppressed)
        #expect(event.status == "suppressed")
        #expect(event.queuedAt == nil)
        #expect(event.startedAt == nil)
        #expect(event.finishedAt == at(2))
        #expect(event.displayName == nil)
        #expect(event.participants.isEmpty)
        let texts = try journal.log(after: 0, limit: 10).filter { $0.kind != "run" }.map(\.text)
        #expect(
            texts == [
                "RECOVERY OFF: n2",
                "EVENT SUPPRESSED: db2_paging 0 (node n2, event 1): recovery is off for n2, not run",
                "EVENT UNMATCHED: no_such_event 0 (node n1): no rule, not run",
            ])
        try journal.close()
    }

    @Test("events a crashed run left queued or running are interrupted when the journal is reopened")
    func interruptedAfterCrash() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let path = scratch.path("journal.db")
        var firstRun: Int64 = 0
        do {
            let journal = try Journal(path: path, now: at(0))
            firstRun = journal.run
            try journal.append(.queued(clusterEvent(1)), at: at(1))
            try journal.append(.started(clusterEvent(1), displayName: "paging", participants: [n1, n2]), at: at(2))
            try journal.append(.queued(clusterEvent(2, "node_down")), at: at(3))
            try journal.append(.finished(clusterEvent(3, "other"), outcome: .suppressed), at: at(4))
            // No close(): the service was killed.
        }
        let reopened = try Journal(path: path, now: at(100))
        #expect(reopened.run > firstRun)
        #expect(reopened.interrupted.map(\.id) == [1, 2])
        #expect(reopened.interrupted.allSatisfy { $0.outcome == .interrupted && $0.finishedAt == at(100) })
        #expect(reopened.interrupted.first?.run == firstRun)
        #expect(reopened.interrupted.first?.startedAt == at(2))
        #expect(try reopened.event(run: firstRun, id: 3)?.outcome == .suppressed)

        let runs = try reopened.runs()
        #expect(runs.map(\.run) == [reopened.run, firstRun])
        try #require(runs.count == 2)
        #expect(runs[1].crashed)
        #expect(runs[1].endedAt == nil)
        #expect(!runs[0].crashed)

        let lines = try reopened.log(after: 0, limit: 100).filter { $0.run == reopened.run }.map(\.text)
        #expect(lines.contains("RUN \(firstRun) ENDED WITHOUT A SHUTDOWN: the service was killed or crashed"))
        #expect(
            lines.contains(
                "EVENT INTERRUPTED: db2_paging 0 (node n2, event 1, run \(firstRun)): the service stopped while it ran")
        )
        #expect(
            lines.contains(
                "EVENT INTERRUPTED: node_down 0 (node n2, event 2, run \(firstRun)): the service stopped while it was queued"
            ))

        // The same ids in the new run are new events.
        try reopened.append(.queued(clusterEvent(1)), at: at(101))
        #expect(try reopened.event(run: reopened.run, id: 1)?.outcome == nil)
        #expect(try reopened.event(run: firstRun, id: 1)?.outcome == .interrupted)
        try reopened.close(at: at(102))

        // A clean shutdown is an end; the crash is noted once.
        let third = try Journal(path: path, now: at(200))
        #expect(third.interrupted.isEmpty)
        // close() interrupted what the run left queued.
        #expect(try third.event(run: reopened.run, id: 1)?.outcome == .interrupted)
        let afterClose = try third.runs()
        try #require(afterClose.count == 3)
        #expect(afterClose[1].endedAt == at(102))
        #expect(afterClose[1].endReason == "shutdown")
        #expect(!afterClose[1].crashed)
        #expect(afterClose[2].crashed)
        #expect(try third.log(after: 0, limit: 100).filter { $0.text.contains("WITHOUT A SHUTDOWN") }.count == 1)
        try third.close()
    }

    @Test("close records the end; afterwards everything throws a JournalError")
    func closing() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"))
        try journal.close()
        try journal.close()  // nothing more
        #expect(throws: JournalError.self) {
            try journal.append(
                .resumed(ResumeEntry(mode: .skip, cancelQueued: false, user: "root", node: n2)), at: Date())
        }
        #expect(throws: JournalError.self) { try journal.history(limit: 1) }
    }

    @Test("integrity check, arming changes and notes")
    func integrityArmingNotes() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        try journal.recordArming(
            trigger: "db2_paging", state: 0, instance: "NodeNum=2", armed: false, value: "75", at: at(1))
        try journal.recordArming(
            trigger: "db2_paging", state: 0, instance: "NodeNum=2", armed: true, value: "50", at: at(2))
        let row = try journal.note("monitor pagingspace failed: no such file", kind: "monitor", node: "n1", at: at(3))
        try journal.append(.stopRequested(node: "n2", mode: .takeover), at: at(4))
        try journal.append(.resumed(ResumeEntry(mode: .skip, cancelQueued: false, user: "root", node: n2)), at: at(5))
        try journal.append(.synchronised(view: 3), at: at(6))
        #expect(try journal.integrityCheck() == ["ok"])
        let arming = try journal.armingChanges(limit: 10)
        #expect(arming.map(\.armed) == [true, false])
        #expect(arming.map(\.value) == ["50", "75"])
        #expect(arming.first?.trigger == "db2_paging")
        #expect(arming.first?.instance == "NodeNum=2")
        let lines = try journal.log(after: 0, limit: 100)
        #expect(
            lines.filter { $0.kind != "run" }.map(\.text) == [
                "DISARMED: db2_paging 0 NodeNum=2 value 75",
                "ARMED: db2_paging 0 NodeNum=2 value 50",
                "monitor pagingspace failed: no such file",
                "STOP CLUSTER SERVICES: n2 (takeover)",
                "RESUME by root on n2: no failed event to resume",
                "SYNCHRONISED: has the cluster's state as of view 3",
            ])
        #expect(try journal.log(after: 0, limit: 100, node: "n1").map(\.rowID) == [row])
        // Following: after a row, in order, at most `limit`.
        let all = lines.map(\.rowID)
        try #require(all.count >= 4)
        #expect(try journal.log(after: all[1], limit: 2).map(\.rowID) == Array(all[2..<4]))
        #expect(try journal.lastLog(limit: 2).map(\.rowID) == Array(all.suffix(2)))
        #expect(try journal.lastLogRowID() == all.last)
        try journal.close()
    }

    @Test("write(_:): writes of every kind in one transaction, in order, each at its own time; all or none")
    func writeSeveral() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        let event = clusterEvent(1)
        try journal.write([])  // nothing, no transaction
        let before = try journal.lastLogRowID()
        try journal.write([
            TimedJournalWrite(
                .arming(trigger: "db2_paging", state: 0, instance: "NodeNum=1", armed: false, value: "91"), at: at(2)),
            TimedJournalWrite(.entry(.queued(event)), at: at(3)),
            TimedJournalWrite(.entry(.started(event, displayName: "DB2 paging", participants: [n1, n2])), at: at(3)),
            TimedJournalWrite(.note("a note", kind: "service"), at: at(4)),
        ])
        let lines = try journal.log(after: before, limit: 10)
        #expect(lines.map(\.kind) == ["arming", "queued", "start", "service"])
        #expect(lines.map(\.time) == [at(2), at(3), at(3), at(4)])
        let read = try #require(try journal.event(run: journal.run, id: 1))
        #expect(read.queuedAt == at(3) && read.startedAt == at(3))
        #expect(read.participants.map(\.node) == [n1, n2])

        // A refused entry (a NaN duration is stored as NULL in a NOT NULL column) takes the
        // whole transaction with it: the writes before it are not written either.
        let last = try journal.lastLogRowID()
        #expect(throws: JournalError.self) {
            try journal.write([
                TimedJournalWrite(.entry(.barrierPassed(eventID: 1, index: 0, participants: [n1, n2])), at: at(5)),
                TimedJournalWrite(.note("before the refused one", kind: "service"), at: at(5)),
                TimedJournalWrite(
                    .entry(
                        .commandFinished(eventID: 1, node: n1, segment: 0, result: result("/bin/x", duration: .nan))),
                    at: at(5)),
            ])
        }
        #expect(try journal.lastLogRowID() == last)
        #expect(try journal.event(run: journal.run, id: 1)?.barriers == [])
        // Through the protocol, as the service's writer calls it.
        let service: any EventJournal = journal
        try service.write([TimedJournalWrite(.entry(.finished(event, outcome: .completed)), at: at(6))])
        #expect(try journal.event(run: journal.run, id: 1)?.outcome == .completed)
        #expect(try journal.integrityCheck() == ["ok"])
        try journal.close()
        #expect(throws: JournalError.self) {
            try journal.write([
                TimedJournalWrite(
                    .entry(.resumed(ResumeEntry(mode: .skip, cancelQueued: false, user: "root", node: n2))), at: at(7))
            ])
        }
    }

    @Test("progress alone (results, barriers, arming) commits with synchronous NORMAL; anything else with FULL")
    func synchronousPerTransaction() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        func synchronous() throws -> Int? {
            try journal.pool.writeWithoutTransaction { try Int.fetchOne($0, sql: "PRAGMA synchronous") }
        }
        let event = clusterEvent(1)
        #expect(try synchronous() == 2)
        try journal.write([
            TimedJournalWrite(.entry(.queued(event)), at: at(1)),
            TimedJournalWrite(.entry(.started(event, displayName: "paging", participants: [n1, n2])), at: at(1)),
        ])
        #expect(try synchronous() == 2)
        try journal.write([
            TimedJournalWrite(
                .entry(.commandFinished(eventID: 1, node: n1, segment: 0, result: result("/bin/true"))), at: at(2)),
            TimedJournalWrite(
                .entry(.commandFinished(eventID: 1, node: n2, segment: 0, result: result("/bin/true"))), at: at(2)),
            TimedJournalWrite(.entry(.barrierPassed(eventID: 1, index: 0, participants: [n1, n2])), at: at(2)),
            TimedJournalWrite(
                .arming(trigger: "db2_paging", state: 0, instance: "NodeNum=1", armed: true, value: "12"), at: at(2)),
        ])
        #expect(try synchronous() == 1)
        // One durable write among progress makes the whole transaction FULL.
        try journal.write([
            TimedJournalWrite(.entry(.barrierPassed(eventID: 1, index: 1, participants: [n1, n2])), at: at(3)),
            TimedJournalWrite(.note("quorum lost", kind: "quorum"), at: at(3)),
        ])
        #expect(try synchronous() == 2)
        try journal.write([
            TimedJournalWrite(.entry(.barrierPassed(eventID: 1, index: 2, participants: [n1])), at: at(4))
        ])
        #expect(try synchronous() == 1)
        try journal.append(.finished(event, outcome: .completed), at: at(5))
        #expect(try synchronous() == 2)
        #expect(try journal.event(run: journal.run, id: 1)?.barriers.count == 3)
        try journal.close()
    }

    @Test("wait-event: the first completion after a log row")
    func waitEvent() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        let up = clusterEvent(1, "network_up_complete")
        try journal.append(.queued(up), at: at(1))
        try journal.append(.finished(up, outcome: .completed), at: at(2))
        let mark = try journal.lastLogRowID()
        #expect(try journal.completed(name: "network_up_complete", afterLogRow: mark) == nil)
        #expect(try journal.completed(name: "network_up_complete", afterLogRow: 0)?.id == 1)
        let failed = clusterEvent(2, "network_up_complete")
        try journal.append(.queued(failed), at: at(3))
        try journal.append(.finished(failed, outcome: .failed), at: at(4))
        #expect(try journal.completed(name: "network_up_complete", afterLogRow: mark) == nil)
        let again = clusterEvent(3, "network_up_complete")
        try journal.append(.queued(again), at: at(5))
        try journal.append(.started(again, displayName: "up", participants: [n1]), at: at(6))
        #expect(try journal.completed(name: "network_up_complete", afterLogRow: mark) == nil)
        try journal.append(.finished(again, outcome: .completed), at: at(7))
        #expect(try journal.completed(name: "network_up_complete", afterLogRow: mark)?.id == 3)
        #expect(try journal.lastFinished(name: "network_up_complete")?.id == 3)
        #expect(try journal.lastFinished(name: "network_up_complete", after: at(7)) == nil)
        #expect(try journal.lastFinished(name: "network_up_complete", after: at(3))?.id == 3)
        #expect(try journal.lastFinished(name: "network_up_complete", outcome: .failed)?.id == 2)
        try journal.close()
    }

    @Test("a cluster formed anew while the service runs starts a new run: ids stay unique")
    func idsRestart() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"), now: at(0))
        let first = journal.run
        try journal.append(.synchronised(view: 1), at: at(1))
        #expect(journal.run == first)
        try journal.append(.queued(clusterEvent(1, "node_up")), at: at(2))
        try journal.append(.started(clusterEvent(1, "node_up"), displayName: "up", participants: [n1]), at: at(3))
        try journal.append(.synchronised(view: 1), at: at(4))
        let second = journal.run
        #expect(second > first)
        try journal.append(.queued(clusterEvent(1, "node_up")), at: at(5))
        #expect(try journal.event(run: first, id: 1)?.outcome == .interrupted)
        #expect(try journal.event(run: second, id: 1)?.queuedAt == at(5))
        // Without a `synchronised` between them, a reused id is noticed too.
        try journal.append(.finished(clusterEvent(1, "node_up"), outcome: .completed), at: at(6))
        try journal.append(.queued(clusterEvent(1, "node_up")), at: at(7))
        #expect(journal.run > second)
        #expect(try journal.event(run: second, id: 1)?.outcome == .completed)
        #expect(try journal.runs().count == 3)
        #expect(
            try journal.runs().dropFirst().allSatisfy {
                !$0.crashed && $0.endReason?.contains("event ids restart") == true
            })
        try journal.close()
    }

    @Test("each synchronised starts a cluster epoch, numbered across runs; a second one in a run starts a new run")
    func clusterEpochs() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let path = scratch.path("journal.db")
        var journal = try Journal(path: path, now: at(0))
        #expect(try journal.runs().map(\.epoch) == [nil])
        try journal.append(.synchronised(view: 1), at: at(1))
        #expect(try journal.runs().map(\.epoch) == [1])
        // No event in between: still a history of its own (the old guess needed an event).
        try journal.append(.synchronised(view: 4), at: at(2))
        #expect(try journal.runs().map(\.epoch) == [2, 1])
        #expect(try journal.runs().first?.endReason == nil)
        #expect(try journal.runs().last?.endReason?.contains("cluster epoch 1 ended") == true)
        try journal.close()
        // A new service run continues the numbering.
        journal = try Journal(path: path, now: at(10))
        #expect(try journal.runs().first?.epoch == nil)
        try journal.append(.synchronised(view: 1), at: at(11))
        try journal.append(.queued(clusterEvent(1, "node_up")), at: at(12))
        #expect(try journal.runs().map(\.epoch) == [3, 2, 1])
        try journal.close()
    }

    @Test("what a kill leaves (the database and its WAL, never checkpointed) holds every appended entry")
    func crashCopy() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let path = scratch.path("live", "journal.db")
        let journal = try Journal(path: path, now: at(0))
        var appended = 0
        for id in 1...300 {
            let event = clusterEvent(id)
            try journal.append(.queued(event), at: at(Double(id)))
            try journal.append(.started(event, displayName: "paging", participants: [n1, n2]), at: at(Double(id)))
            try journal.append(
                .commandFinished(
                    eventID: id, node: n1, segment: 0,
                    result: result("/bin/true", output: String(repeating: "x", count: 200))),
                at: at(Double(id)))
            appended += 3
            if id < 300 {
                try journal.append(.finished(event, outcome: .completed), at: at(Double(id)))
                appended += 1
            }
        }
        // The journal is still open: copy what is on disk now, as a SIGKILL would leave it.
        let walSize = try FileManager.default.attributesOfItem(atPath: path + "-wal")[.size] as? Int ?? 0
        #expect(walSize > 0)
        let copy = scratch.path("copy", "journal.db")
        try FileManager.default.createDirectory(atPath: scratch.path("copy"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: path, toPath: copy)
        try FileManager.default.copyItem(atPath: path + "-wal", toPath: copy + "-wal")
        let logged = try journal.lastLogRowID()

        let recovered = try Journal(path: copy, now: at(1000))
        #expect(try recovered.integrityCheck() == ["ok"])
        let events = try recovered.history(limit: 1000)
        #expect(events.count == 300)
        #expect(events.allSatisfy { $0.commands.count == 1 && $0.participants.count == 2 })
        #expect(events.filter { $0.outcome == .completed }.count == 299)
        #expect(recovered.interrupted.map(\.id) == [300])
        // Every line appended before the copy, then the new run's.
        let lines = try recovered.log(after: 0, limit: 10_000)
        #expect(lines.filter { $0.rowID <= logged }.count == Int(logged))
        #expect(lines.filter { $0.run == journal.run && $0.kind != "run" }.count == appended)
        try recovered.close()
        try journal.close()
    }

    /// The SIGKILL case for real: this test binary is started again as a child that runs only
    /// `sigkillChild`, which appends in a tight loop and acknowledges every append that returned
    /// in a file; the child is killed with SIGKILL in the middle of it.
    @Test(
        "SIGKILL while appending loses nothing already appended",
        .enabled(if: FileManager.default.fileExists(atPath: "/proc/self/exe")), .timeLimit(.minutes(2)))
    func sigkill() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let path = scratch.path("journal.db")
        let acks = scratch.path("acks")
        let executable = try FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = ["--testing-library", "swift-testing", "--filter", "JournalTests/sigkillChild"]
        child.environment = ProcessInfo.processInfo.environment.merging(
            ["HAMN_JOURNAL_SIGKILL_CHILD": path, "HAMN_JOURNAL_SIGKILL_ACKS": acks]) { $1 }
        child.standardOutput = FileHandle.nullDevice
        child.standardError = FileHandle.nullDevice
        try child.run()
        func acknowledged() -> [Int] {
            ((try? String(contentsOfFile: acks, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { Int($0) }
        }
        let deadline = Date().addingTimeInterval(60)
        while acknowledged().count < 400 && child.isRunning && Date() < deadline {
            usleep(20_000)
        }
        let running = child.isRunning
        kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
        try #require(running, "the child stopped by itself before the kill")
        #expect(child.terminationReason == .uncaughtSignal)
        #expect(child.terminationStatus == SIGKILL)

        let acked = acknowledged()
        #expect(acked == Array(1...acked.count))
        let journal = try Journal(path: path)
        #expect(try journal.integrityCheck() == ["ok"])
        let runs = try journal.runs()
        try #require(runs.count == 2)
        #expect(runs[1].crashed)
        // Entry n of the child is the n-th line of its run that is not a `run` line.
        let lines = try journal.log(after: 0, limit: 1_000_000).filter { $0.run == runs[1].run && $0.kind != "run" }
        #expect(lines.count >= acked.count)
        #expect(lines.count <= acked.count + 1)  // one more may have committed before its acknowledgement
        let events = try journal.history(limit: 1_000_000).filter { $0.run == runs[1].run }
        let entries = events.reduce(0) {
            $0 + 1 + ($1.startedAt == nil ? 0 : 1) + $1.commands.count + ($1.outcome == .completed ? 1 : 0)
        }
        #expect(entries == lines.count)
        print("journal: child killed after \(acked.count) acknowledged appends; \(lines.count) entries recovered")
        try journal.close()
    }

    /// The child of `sigkill`; does nothing unless started by it.
    @Test("(child of the SIGKILL test: appends until killed)")
    func sigkillChild() throws {
        let environment = ProcessInfo.processInfo.environment
        guard let path = environment["HAMN_JOURNAL_SIGKILL_CHILD"], let acks = environment["HAMN_JOURNAL_SIGKILL_ACKS"]
        else {
            return
        }
        let journal = try Journal(path: path)
        let descriptor = open(acks, O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0o600)
        try #require(descriptor >= 0)
        var count = 0
        func acknowledge() {
            count += 1
            let line = Array("\(count)\n".utf8)
            _ = line.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        }
        var id = 0
        while true {
            id += 1
            let event = clusterEvent(id)
            try journal.append(.queued(event), at: Date())
            acknowledge()
            try journal.append(.started(event, displayName: "paging", participants: [n1, n2]), at: Date())
            acknowledge()
            try journal.append(
                .commandFinished(eventID: id, node: n1, segment: 0, result: result("/bin/true")), at: Date())
            acknowledge()
            try journal.append(.finished(event, outcome: .completed), at: Date())
            acknowledge()
        }
    }

    @Test("the directory is created with mode 0700, the database has mode 0600")
    func filesAndModes() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let path = scratch.path("var", "lib", "hamn-events", "journal.db")
        let journal = try Journal(path: path)
        try journal.append(.resumed(ResumeEntry(mode: .skip, cancelQueued: false, user: "root", node: n2)), at: Date())
        #expect(fileMode(scratch.path("var")) == 0o700)
        #expect(fileMode(scratch.path("var", "lib", "hamn-events")) == 0o700)
        #expect(fileMode(path) == 0o600)
        #expect(fileMode(path + "-wal") == 0o600)
        #expect(fileMode(path + "-shm") == 0o600)
        try journal.close()
        #expect(fileMode(path) == 0o600)

        // An older journal with a wider mode is narrowed.
        #expect(chmod(path, 0o644) == 0)
        let reopened = try Journal(path: path)
        #expect(fileMode(path) == 0o600)
        try reopened.close()
    }

    @Test("what cannot be opened is a clear JournalError")
    func unopenable() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let directory = scratch.path("a-directory")
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let isDirectory = #expect(throws: JournalError.self) { try Journal(path: directory) }
        #expect(isDirectory?.message == "cannot open the journal at \(directory): it is a directory")

        let text = scratch.path("notes.txt")
        try String(repeating: "not a database\n", count: 100).write(toFile: text, atomically: false, encoding: .utf8)
        let notSQLite = #expect(throws: JournalError.self) { try Journal(path: text) }
        #expect(notSQLite?.message == "cannot open the journal at \(text): the file is not an SQLite database")

        let underFile = scratch.path("notes.txt", "journal.db")
        let notDirectory = #expect(throws: JournalError.self) { try Journal(path: underFile) }
        #expect(notDirectory?.message.contains("is not a directory") == true)

        #expect(throws: JournalError.self) { try Journal(path: "") }
    }

    @Test("one journal at a time: a second opener is refused until the first closes")
    func exclusive() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let path = scratch.path("journal.db")
        let first = try Journal(path: path)
        let refused = #expect(throws: JournalError.self) { try Journal(path: path) }
        #expect(
            refused?.message
                == "cannot open the journal at \(path): it is in use by another journal (process \(getpid()))")
        #expect(try first.runs().count == 1)
        #expect(fileMode(path + ".lock") == 0o600)
        try first.close()
        let second = try Journal(path: path)
        #expect(try second.runs().count == 2)
        #expect(try second.runs().allSatisfy { !$0.crashed })
        try second.close()
    }

    @Test("a journal written by a newer version is refused, not written")
    func newerSchema() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let path = scratch.path("journal.db")
        let journal = try Journal(path: path)
        try journal.pool.write { db in
            try db.execute(sql: "INSERT INTO grdb_migrations (identifier) VALUES ('v99')")
        }
        try journal.close()
        let error = #expect(throws: JournalError.self) { try Journal(path: path) }
        #expect(error?.message.contains("newer version") == true)
    }

    @Test("appending 10,000 entries, one transaction each, with synchronous = FULL (prints the time)")
    func appendSpeed() throws {
        let scratch = Scratch()
        defer { scratch.remove() }
        let journal = try Journal(path: scratch.path("journal.db"))
        let clock = ContinuousClock()
        var latencies: [Duration] = []
        latencies.reserveCapacity(10_000)
        func timed(_ entry: JournalEntry) throws {
            let before = clock.now
            try journal.append(entry, at: Date())
            latencies.append(clock.now - before)
        }
        let start = clock.now
        var id = 0
        while latencies.count < 10_000 {
            id += 1
            let event = clusterEvent(id)
            try timed(.queued(event))
            try timed(.started(event, displayName: "paging", participants: [n1, n2]))
            try timed(.commandFinished(eventID: id, node: n1, segment: 0, result: result("/bin/true")))
            try timed(.commandFinished(eventID: id, node: n2, segment: 0, result: result("/bin/true")))
            try timed(.finished(event, outcome: .completed))
        }
        func seconds(_ duration: Duration) -> Double {
            Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
        }
        let total = seconds(clock.now - start)
        let sorted = latencies.map(seconds).sorted()
        func ms(_ value: Double) -> String { String(format: "%.2f ms", value * 1000) }
        print(
            "journal: \(latencies.count) entries appended in \(String(format: "%.2f", total)) s "
                + "(\(String(format: "%.0f", Double(latencies.count) / total)) entries/s, synchronous = FULL); "
                + "per append p50 \(ms(sorted[sorted.count / 2])), p99 \(ms(sorted[sorted.count * 99 / 100])), "
                + "max \(ms(sorted.last ?? 0))")
        #expect(try journal.history(limit: 3).count == 3)
        try journal.close()
    }
}
