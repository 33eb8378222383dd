import Foundation
import GRDB
import RecoveryPrograms
import RulesEngine

extension Journal {
    /// The newest `limit` events, newest first (by run, then id), with their participants and,
    /// unless `steps` is false, their commands and barrier passages (two queries more per event).
    public func history(limit: Int, steps: Bool = true) throws(JournalError) -> [JournalEvent] {
        try read("the history") { reader in
            try reader.events(
                sql: "ORDER BY run DESC, id DESC LIMIT ?", arguments: [max(0, limit)], steps: steps)
        }
    }

    /// The event `id` of run `run`, or nil.
    public func event(run: Int64, id: Int) throws(JournalError) -> JournalEvent? {
        try read("event \(id) of run \(run)") { reader in
            try reader.events([EventKey(run: run, id: id)]).first
        }
    }

    /// The event log's lines after row `rowID` (0: from the start), oldest first, at most
    /// `limit`: what `mon` prints, then asks again with the last row id it printed.
    /// `node`: only the lines about that node.
    public func log(after rowID: Int64, limit: Int, node: String? = nil) throws(JournalError) -> [JournalLogLine] {
        try read("the event log") { reader in
            var sql = "SELECT id, run, time, kind, node, event_id, text FROM log WHERE id > ?"
            var arguments: StatementArguments = [rowID]
            if let node {
                sql += " AND node = ?"
                _ = arguments.append(contentsOf: [node])
            }
            sql += " ORDER BY id LIMIT ?"
            _ = arguments.append(contentsOf: [max(0, limit)])
            return try Row.fetchAll(reader.db, sql: sql, arguments: arguments).map(JournalReader.logLine)
        }
    }

    /// The newest `limit` lines of the event log, oldest first: where `mon` starts.
    public func lastLog(limit: Int, node: String? = nil) throws(JournalError) -> [JournalLogLine] {
        try read("the event log") { reader in
            var sql = "SELECT id, run, time, kind, node, event_id, text FROM log"
            var arguments: StatementArguments = []
            if let node {
                sql += " WHERE node = ?"
                _ = arguments.append(contentsOf: [node])
            }
            sql += " ORDER BY id DESC LIMIT ?"
            _ = arguments.append(contentsOf: [max(0, limit)])
            return try Row.fetchAll(reader.db, sql: sql, arguments: arguments).map(JournalReader.logLine).reversed()
        }
    }

    /// The row id of the newest line of the event log (0 when empty): `wait-event` takes it
    /// before it starts waiting, then polls `completed(name:afterLogRow:)`.
    public func lastLogRowID() throws(JournalError) -> Int64 {
        try read("the event log") { reader in
            try Int64.fetchOne(reader.db, sql: "SELECT MAX(id) FROM log") ?? 0
        }
    }

    /// The first event named `name` that completed after the log row `rowID` (its
    /// `EVENT COMPLETED` line comes after that row), or nil: what `wait-event NAME` polls.
    public func completed(name: String, afterLogRow rowID: Int64) throws(JournalError) -> JournalEvent? {
        try read("the completions of \(name)") { reader in
            try reader.events(
                sql: "WHERE name = ? AND outcome = 'completed' AND finished_log > ? ORDER BY finished_log LIMIT 1",
                arguments: [name, rowID]
            ).first
        }
    }

    /// The last event named `name` that ended with `outcome` (by default: completed), after
    /// `after` if given, or nil.
    public func lastFinished(
        name: String, after: Date? = nil, outcome: EventOutcome = .completed
    ) throws(JournalError) -> JournalEvent? {
        try read("the last \(name)") { reader in
            try reader.events(
                sql: "WHERE name = ? AND outcome = ? AND finished_at > ? ORDER BY finished_log DESC LIMIT 1",
                arguments: [name, outcome.rawValue, after?.timeIntervalSince1970 ?? -Double.greatestFiniteMagnitude]
            ).first
        }
    }

    /// The newest `limit` runs, newest first. A run with no `endedAt` that is not the current one
    /// is `crashed`.
    public func runs(limit: Int = 100) throws(JournalError) -> [JournalRun] {
        let current = run
        return try read("the runs") { reader in
            try Row.fetchAll(
                reader.db,
                sql:
                    "SELECT run, started_at, ended_at, end_reason, pid, host, epoch FROM run ORDER BY run DESC LIMIT ?",
                arguments: [max(0, limit)]
            ).map { row in
                let run: Int64 = row["run"]
                let ended: Double? = row["ended_at"]
                return JournalRun(
                    run: run, startedAt: Date(timeIntervalSince1970: row["started_at"]),
                    endedAt: ended.map(Date.init(timeIntervalSince1970:)), endReason: row["end_reason"],
                    pid: row["pid"], host: row["host"], crashed: ended == nil && run != current, epoch: row["epoch"])
            }
        }
    }

    /// The newest `limit` arming changes, newest first.
    public func armingChanges(limit: Int) throws(JournalError) -> [JournalArmingChange] {
        try read("the arming changes") { reader in
            try Row.fetchAll(
                reader.db,
                sql: """
                    SELECT id, run, time, "trigger", state, instance, armed, value FROM arming ORDER BY id DESC LIMIT ?
                    """,
                arguments: [max(0, limit)]
            ).map { row in
                JournalArmingChange(
                    rowID: row["id"], run: row["run"], time: Date(timeIntervalSince1970: row["time"]),
                    trigger: row["trigger"], state: row["state"], instance: row["instance"], armed: row["armed"],
                    value: row["value"])
            }
        }
    }

    /// The newest `limit` membership changes, newest first.
    public func membershipChanges(limit: Int) throws(JournalError) -> [JournalMembershipChange] {
        try read("the membership changes") { reader in
            try Row.fetchAll(
                reader.db,
                sql: """
                    SELECT id, run, time, view, members, joined, "left" FROM membership ORDER BY id DESC LIMIT ?
                    """,
                arguments: [max(0, limit)]
            ).map { row in
                JournalMembershipChange(
                    rowID: row["id"], run: row["run"], time: Date(timeIntervalSince1970: row["time"]),
                    view: row["view"], members: try JournalJSON.nodes(from: row["members"]),
                    joined: try JournalJSON.nodes(from: row["joined"]), left: try JournalJSON.nodes(from: row["left"]))
            }
        }
    }

    /// `PRAGMA integrity_check`: `["ok"]` when the database is sound, else one line per problem.
    public func integrityCheck() throws(JournalError) -> [String] {
        try read("the integrity check") { reader in
            try String.fetchAll(reader.db, sql: "PRAGMA integrity_check")
        }
    }
}

/// Reads events with everything that belongs to them.
struct JournalReader {
    let db: Database

    func events(_ keys: [EventKey]) throws -> [JournalEvent] {
        try keys.compactMap { key in
            try events(sql: "WHERE run = ? AND id = ?", arguments: [key.run, key.id]).first
        }
    }

    /// The events selected by `clause` (a WHERE, ORDER BY and LIMIT over `event`); without
    /// their commands and barrier passages when `steps` is false.
    func events(sql clause: String, arguments: StatementArguments, steps: Bool = true) throws -> [JournalEvent] {
        try Row.fetchAll(db, sql: "SELECT * FROM event \(clause)", arguments: arguments).map { row in
            let run: Int64 = row["run"]
            let id: Int = row["id"]
            let variable: String? = row["rv_variable"]
            let failureNode: String? = row["failure_node"]
            let outcome: String? = row["outcome"]
            return JournalEvent(
                run: run, id: id, name: row["name"], state: row["state"],
                node: ClusterNode(name: row["node"], number: row["node_number"]),
                displayName: row["display_name"], priority: row["priority"], arrival: row["arrival"],
                resource: variable.map {
                    ResourceObservation(variable: $0, instance: row["rv_instance"] ?? "", value: row["rv_value"] ?? "")
                },
                outcome: outcome.flatMap(EventOutcome.init(rawValue:)),
                queuedAt: Self.date(row["queued_at"]), startedAt: Self.date(row["started_at"]),
                finishedAt: Self.date(row["finished_at"]),
                participants: try participants(run: run, id: id),
                failure: failureNode.map { name in
                    JournalFailure(
                        node: ClusterNode(name: name, number: row["failure_node_number"] ?? 0),
                        segment: row["failure_segment"] ?? 0,
                        at: Date(timeIntervalSince1970: row["failed_at"] ?? 0))
                },
                commands: steps ? try commands(run: run, id: id) : [],
                barriers: steps ? try barriers(run: run, id: id) : [])
        }
    }

    private func participants(run: Int64, id: Int) throws -> [JournalParticipant] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT node, node_number, left_at FROM participant WHERE run = ? AND event_id = ?
                ORDER BY node_number, node
                """,
            arguments: [run, id]
        ).map { row in
            JournalParticipant(
                node: ClusterNode(name: row["node"], number: row["node_number"]), leftAt: Self.date(row["left_at"]))
        }
    }

    private func commands(run: Int64, id: Int) throws -> [JournalCommand] {
        try Row.fetchAll(
            db, sql: "SELECT * FROM command WHERE run = ? AND event_id = ? ORDER BY id", arguments: [run, id]
        ).map { row in
            let kind: String = row["termination"]
            let status: Int32? = row["exit_status"]
            let signal: Int32? = row["signal"]
            let termination: Termination =
                switch kind {
                case "exited": .exited(status ?? 0)
                case "signaled": .signaled(signal ?? 0)
                case "timedOut": .timedOut
                default: .couldNotStart(row["reason"] ?? "")
                }
            return JournalCommand(
                node: ClusterNode(name: row["node"], number: row["node_number"]), segment: row["segment"],
                command: row["command"], line: row["line"], termination: termination.description, exitStatus: status,
                signal: signal, accepted: row["accepted"], duration: row["duration"], outputTail: row["output_tail"],
                finishedAt: Date(timeIntervalSince1970: row["finished_at"]), endedAt: Self.date(row["ended_at"]))
        }
    }

    private func barriers(run: Int64, id: Int) throws -> [JournalBarrier] {
        try Row.fetchAll(
            db,
            sql:
                "SELECT barrier_index, passed_at, participants FROM barrier WHERE run = ? AND event_id = ? ORDER BY id",
            arguments: [run, id]
        ).map { row in
            JournalBarrier(
                index: row["barrier_index"], passedAt: Date(timeIntervalSince1970: row["passed_at"]),
                participants: try JournalJSON.nodes(from: row["participants"]))
        }
    }

    static func logLine(_ row: Row) -> JournalLogLine {
        JournalLogLine(
            rowID: row["id"], run: row["run"], time: Date(timeIntervalSince1970: row["time"]), kind: row["kind"],
            node: row["node"], eventID: row["event_id"], text: row["text"])
    }

    static func date(_ seconds: Double?) -> Date? {
        seconds.map(Date.init(timeIntervalSince1970:))
    }
}
