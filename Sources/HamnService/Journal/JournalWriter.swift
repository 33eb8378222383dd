import Foundation
import GRDB
import RecoveryPrograms
import RulesEngine

/// Writes one journal entry inside the caller's transaction.
struct JournalWriter {
    let db: Database
    /// The current run; `append` may start a new one (see `Journal`'s "Runs").
    var run: Int64
    /// Seconds since 1970 (a batch of writes sets it for each).
    var time: Double
    let pid: Int32
    let host: String

    // MARK: Runs

    /// Starts a run: notes the runs that ended without `close()`, and marks the events they
    /// left unfinished `interrupted`.
    static func openRun(_ db: Database, time: Double, pid: Int32, host: String) throws -> (
        run: Int64, interrupted: [EventKey]
    ) {
        let crashed = try Int64.fetchAll(
            db, sql: "SELECT run FROM run WHERE ended_at IS NULL AND crash_noticed_at IS NULL ORDER BY run")
        var writer = JournalWriter(db: db, run: 0, time: time, pid: pid, host: host)
        writer.run = try writer.insertRun()
        for run in crashed {
            try writer.execute(sql: "UPDATE run SET crash_noticed_at = ? WHERE run = ?", arguments: [time, run])
            try writer.log("run", text: "RUN \(run) ENDED WITHOUT A SHUTDOWN: the service was killed or crashed")
        }
        try writer.log("run", text: "RUN \(writer.run) START: pid \(pid) on \(host)")
        let interrupted = try writer.interruptUnfinished(sql: "run < ?", arguments: [writer.run])
        return (writer.run, interrupted)
    }

    private func insertRun() throws -> Int64 {
        try execute(
            sql: "INSERT INTO run (started_at, pid, host) VALUES (?, ?, ?)", arguments: [time, pid, host])
        return db.lastInsertedRowID
    }

    /// Ends the current run: its unfinished events are interrupted.
    mutating func endRun(reason: String) throws {
        _ = try interruptUnfinished(sql: "run = ?", arguments: [run])
        try execute(sql: "UPDATE run SET ended_at = ?, end_reason = ? WHERE run = ?", arguments: [time, reason, run])
        try log("run", text: "RUN \(run) END: \(reason)")
    }

    /// A new cluster history (or, as a guard, an event id seen twice in one): a new run, so
    /// that `(run, id)` stays unique.
    private mutating func startNewRun(reason: String) throws {
        try endRun(reason: reason)
        run = try insertRun()
        try log("run", text: "RUN \(run) START: pid \(pid) on \(host), \(reason)")
    }

    /// Marks the events matching `sql` that have no outcome `interrupted`, each with its line.
    private func interruptUnfinished(sql condition: String, arguments: StatementArguments) throws -> [EventKey] {
        let rows = try Row.fetchAll(
            db,
            sql:
                "SELECT run, id, name, state, node, started_at FROM event WHERE outcome IS NULL AND \(condition) ORDER BY run, id",
            arguments: arguments)
        var keys: [EventKey] = []
        for row in rows {
            let key = EventKey(run: row["run"], id: row["id"])
            let started: Double? = row["started_at"]
            let line = try log(
                "finished", node: row["node"], eventID: key.run == run ? key.id : nil,
                text: JournalText.interrupted(
                    name: row["name"], state: row["state"], node: row["node"], run: key.run, id: key.id,
                    started: started != nil))
            try execute(
                sql:
                    "UPDATE event SET outcome = 'interrupted', finished_at = ?, finished_log = ? WHERE run = ? AND id = ?",
                arguments: [time, line, key.run, key.id])
            keys.append(key)
        }
        return keys
    }

    // MARK: Entries

    /// A predicate instance armed or disarmed, with its line in the event log.
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String) throws {
        try execute(
            sql: """
                INSERT INTO arming (run, time, "trigger", state, instance, armed, value)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [run, time, trigger, state, instance, armed, value])
        try log(
            "arming",
            text: JournalText.arming(trigger: trigger, state: state, instance: instance, armed: armed, value: value))
    }

    static func kind(of entry: JournalEntry) -> String {
        switch entry {
        case .membership: "a membership change"
        case .unmatched: "an unmatched request"
        case .queued: "a queued event"
        case .started: "an event start"
        case .barrierPassed: "a barrier passage"
        case .commandFinished: "a command result"
        case .participantLeft: "a participant's departure"
        case .failed: "an event failure"
        case .finished: "an event end"
        case .recovery: "a recovery change"
        case .resumed: "a resume"
        case .rearmed: "a re-arming"
        case .stopRequested: "a stop request"
        case .synchronised: "a synchronisation"
        case .quorum: "a quorum change"
        case .waitsForQuorum: "a segment waiting for quorum"
        case .merged: "a heal"
        case .fence: "a fencing step"
        case .quorumLoss: "a quorum loss policy step"
        }
    }

    mutating func append(_ entry: JournalEntry) throws {
        switch entry {
        case .membership(let change):
            try execute(
                sql: """
                    INSERT INTO membership (run, time, view, members, joined, "left") VALUES (?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    run, time, change.view, try JournalJSON.nodes(change.members), try JournalJSON.nodes(change.joined),
                    try JournalJSON.nodes(change.left),
                ])
            try log("membership", text: JournalText.membership(change))

        case .unmatched(let request):
            try log("unmatched", node: request.node.name, text: JournalText.unmatched(request))

        // An id seen again within one cluster history should not happen (a history's ids only
        // grow): kept apart in a new run rather than lost to the key, as a guard.
        case .queued(let event):
            if try eventState(event.id) != nil {
                try startNewRun(reason: try idSeenAgain(event.id, "queued"))
            }
            try insertEvent(event, queuedAt: time)
            try log("queued", node: event.node.name, eventID: event.id, text: JournalText.queued(event))

        case .started(let event, let displayName, let participants):
            if let existing = try eventState(event.id) {
                if existing.started || existing.finished {
                    try startNewRun(
                        reason: try idSeenAgain(event.id, "started"))
                    try insertEvent(event, startedAt: time, displayName: displayName)
                } else {
                    try execute(
                        sql: "UPDATE event SET started_at = ?, display_name = ? WHERE run = ? AND id = ?",
                        arguments: [time, displayName, run, event.id])
                }
            } else {
                try insertEvent(event, startedAt: time, displayName: displayName)
            }
            for node in participants {
                try execute(
                    sql: "INSERT OR REPLACE INTO participant (run, event_id, node, node_number) VALUES (?, ?, ?, ?)",
                    arguments: [run, event.id, node.name, node.number])
            }
            try log(
                "start", node: event.node.name, eventID: event.id,
                text: JournalText.started(event, displayName: displayName, participants: participants))

        case .barrierPassed(let eventID, let index, let participants):
            try execute(
                sql: """
                    INSERT INTO barrier (run, event_id, barrier_index, passed_at, participants) VALUES (?, ?, ?, ?, ?)
                    """,
                arguments: [run, eventID, index, time, try JournalJSON.nodes(participants)])
            try log(
                "barrier", eventID: eventID,
                text: JournalText.barrier(try reference(eventID), index: index, participants: participants))

        case .commandFinished(let eventID, let node, let segment, let result):
            var status: Int32?
            var signal: Int32?
            var reason: String?
            let termination: String
            switch result.termination {
            case .exited(let value):
                termination = "exited"
                status = value
            case .signaled(let value):
                termination = "signaled"
                signal = value
            case .timedOut:
                termination = "timedOut"
            case .couldNotStart(let why):
                termination = "couldNotStart"
                reason = why
            }
            try execute(
                sql: """
                    INSERT INTO command (run, event_id, node, node_number, segment, line, command, termination,
                        exit_status, signal, reason, accepted, duration, output_tail, finished_at, ended_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    run, eventID, node.name, node.number, segment, result.line, result.command, termination,
                    status, signal, reason, result.accepted, result.duration, result.outputTail, time, result.endedAt,
                ])
            try log(
                "command", node: node.name, eventID: eventID,
                text: JournalText.command(eventID: eventID, node: node, segment: segment, result: result))

        case .participantLeft(let eventID, let node):
            try execute(
                sql: """
                    UPDATE participant SET left_at = ?
                    WHERE run = ? AND event_id = ? AND node = ? AND left_at IS NULL
                    """,
                arguments: [time, run, eventID, node.name])
            try log(
                "participant", node: node.name, eventID: eventID,
                text: JournalText.participantLeft(try reference(eventID), node: node))

        case .failed(let event, let node, let segment):
            if try eventState(event.id) == nil { try insertEvent(event) }
            try execute(
                sql: """
                    UPDATE event SET failure_node = ?, failure_node_number = ?, failure_segment = ?, failed_at = ?
                    WHERE run = ? AND id = ? AND failure_node IS NULL
                    """,
                arguments: [node.name, node.number, segment, time, run, event.id])
            try log(
                "failed", node: node.name, eventID: event.id,
                text: JournalText.failed(event, node: node, segment: segment))

        case .finished(let event, let outcome):
            if let existing = try eventState(event.id) {
                if existing.finished {
                    try startNewRun(
                        reason: try idSeenAgain(event.id, "ended"))
                    try insertEvent(event)
                }
            } else {
                try insertEvent(event)
            }
            let line = try log(
                "finished", node: event.node.name, eventID: event.id,
                text: JournalText.finished(event, outcome: outcome))
            try execute(
                sql: "UPDATE event SET outcome = ?, finished_at = ?, finished_log = ? WHERE run = ? AND id = ?",
                arguments: [outcome.rawValue, time, line, run, event.id])

        case .recovery(let enabled, let nodes):
            try log("recovery", text: JournalText.recovery(enabled: enabled, nodes: nodes))

        case .resumed(let resume):
            if let event = resume.event, resume.mode != .skip {
                // Running again: the failure columns hold the failure it is held for, if any.
                try execute(
                    sql: """
                        UPDATE event SET failure_node = NULL, failure_node_number = NULL, failure_segment = NULL,
                            failed_at = NULL
                        WHERE run = ? AND id = ?
                        """,
                    arguments: [run, event.id])
            }
            try log("resume", node: resume.node.name, eventID: resume.event?.id, text: resume.description)

        case .rearmed(let node, let instances):
            try log("arming", node: node, text: JournalText.rearmed(node: node, instances: instances))

        case .stopRequested(let node, let mode):
            try log("stop", node: node, text: JournalText.stopRequested(node: node, mode: mode))

        case .synchronised(let view):
            // The coordinator starts a cluster history: a new epoch, in a run of its own.
            let epoch =
                try Int64.fetchOne(db.cachedStatement(sql: "SELECT COALESCE(MAX(epoch), 0) + 1 FROM run")) ?? 1
            if let current = try self.epoch() {
                try startNewRun(
                    reason: "event ids restart (cluster epoch \(current) ended: the node joined a cluster anew at view "
                        + "\(view), epoch \(epoch))")
            }
            try execute(sql: "UPDATE run SET epoch = ? WHERE run = ?", arguments: [epoch, run])
            try log("synchronised", text: JournalText.synchronised(view: view))

        case .quorum(let quorate, let waiting):
            try log("quorum", text: JournalText.quorum(quorate, waiting: waiting))

        case .waitsForQuorum(let eventID, let name, let segment):
            try log(
                "quorum", eventID: eventID,
                text: JournalText.waitsForQuorum(eventID: eventID, name: name, segment: segment))

        case .merged(let alive):
            try log("membership", text: JournalText.merged(alive: alive))

        case .quorumLoss(let loss):
            try log("quorum", text: loss.description)

        case .fence(let fence):
            if case .waits(let eventID, _, _, _) = fence {
                try log("fence", eventID: eventID, text: fence.description)
            } else {
                try log("fence", text: fence.description)
            }
        }
    }

    // MARK: Helpers

    /// Why a new run starts when event `id` was `what` again within the current epoch.
    private func idSeenAgain(_ id: Int, _ what: String) throws -> String {
        "event ids restart (event \(id) \(what) again in cluster epoch \(try epoch().map(String.init) ?? "none"))"
    }

    /// The cluster epoch of the current run; nil before its first `synchronised`.
    private func epoch() throws -> Int64? {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT epoch FROM run WHERE run = ?"), arguments: [run])
    }

    /// Whether the event `id` of this run has a row, has started, has ended.
    private func eventState(_ id: Int) throws -> (started: Bool, finished: Bool)? {
        guard
            let row = try Row.fetchOne(
                db.cachedStatement(sql: "SELECT started_at, outcome FROM event WHERE run = ? AND id = ?"),
                arguments: [run, id])
        else { return nil }
        let started: Double? = row["started_at"]
        let outcome: String? = row["outcome"]
        return (started != nil, outcome != nil)
    }

    /// `db2_paging 0 (event 7)`, from the event's row if there is one.
    private func reference(_ id: Int) throws -> String {
        let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT name, state FROM event WHERE run = ? AND id = ?"), arguments: [run, id])
        return JournalText.eventRef(name: row?["name"], state: row?["state"], id: id)
    }

    private func insertEvent(
        _ event: ClusterEvent, queuedAt: Double? = nil, startedAt: Double? = nil, displayName: String? = nil
    ) throws {
        try execute(
            sql: """
                INSERT INTO event (run, id, name, state, node, node_number, priority, arrival,
                    rv_variable, rv_instance, rv_value, display_name, queued_at, started_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                run, event.id, event.name, event.state, event.node.name, event.node.number, event.priority,
                event.arrival, event.resource?.variable, event.resource?.instance, event.resource?.value,
                displayName, queuedAt, startedAt,
            ])
    }

    /// Runs `sql` through the connection's statement cache: an entry costs no SQL compilation.
    func execute(sql: String, arguments: StatementArguments) throws {
        try db.cachedStatement(sql: sql).execute(arguments: arguments)
    }

    /// Adds a line to the event log; returns its row id.
    @discardableResult
    func log(_ kind: String, node: String? = nil, eventID: Int? = nil, text: String) throws -> Int64 {
        try execute(
            sql: "INSERT INTO log (run, time, kind, node, event_id, text) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [run, time, kind, node, eventID, text])
        return db.lastInsertedRowID
    }
}

/// Node lists as JSON arrays of `{"name", "number"}`.
enum JournalJSON {
    static func nodes(_ nodes: [ClusterNode]) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return String(decoding: try encoder.encode(nodes), as: UTF8.self)
    }

    static func nodes(from text: String) throws -> [ClusterNode] {
        try JSONDecoder().decode([ClusterNode].self, from: Data(text.utf8))
    }
}
