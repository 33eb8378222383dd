import Foundation
import GRDB
import RulesParser
import TimelineRendering

extension Journal {
    /// The timeline of event `id` of run `run` (nil: the newest run that has an event `id`),
    /// or nil when the journal has no such event.
    public func timeline(event id: Int, run: Int64?) throws(JournalError) -> Timeline? {
        try read("the timeline of event \(id)") { reader in
            let key: EventKey?
            if let run {
                key = EventKey(run: run, id: id)
            } else {
                key = try Int64.fetchOne(
                    reader.db, sql: "SELECT run FROM event WHERE id = ? ORDER BY run DESC LIMIT 1", arguments: [id]
                ).map { EventKey(run: $0, id: id) }
            }
            guard let key, let event = try reader.events([key]).first else { return nil }
            let lines = try Row.fetchAll(
                reader.db,
                sql: """
                    SELECT id, run, time, kind, node, event_id, text FROM log
                    WHERE run = ? AND event_id = ? AND kind IN ('failed', 'resume') ORDER BY id
                    """,
                arguments: [key.run, key.id]
            ).map(JournalReader.logLine)
            return JournalTimeline.build(event, log: lines)
        }
    }
}

/// An event of the journal as a `Timeline`: its commands (each from its end on the node that
/// ran it, less its duration), barrier passages, departures, and from the event log its
/// failures and resumes. Whether a command met its expected status is journaled with its
/// result (`accepted`), so the rules need not be read again.
enum JournalTimeline {
    static func build(_ event: JournalEvent, log: [JournalLogLine]) -> Timeline {
        let commandTimes = event.commands.map { ($0.endedAt ?? $0.finishedAt).timeIntervalSince1970 - $0.duration }
        let origin =
            (event.startedAt ?? event.queuedAt)?.timeIntervalSince1970 ?? commandTimes.min() ?? 0
        var builder = TimelineBuilder(
            title: "\(event.name) \(event.state) (node \(event.node.name), event \(event.id), run \(event.run))",
            displayName: event.displayName == event.name ? nil : event.displayName,
            nodes: event.participants.map(\.node.name), origin: origin)
        for command in event.commands {
            let end = (command.endedAt ?? command.finishedAt).timeIntervalSince1970
            builder.command(
                node: command.node.name, segment: command.segment, line: command.line, command: command.command,
                program: CommandStep.program(of: command.command), start: end - command.duration, end: end,
                outcome: outcome(command),
                result: command.termination + (command.accepted ? "" : " (not the expected status)"))
        }
        for barrier in event.barriers {
            builder.barrier(
                segment: barrier.index, at: barrier.passedAt.timeIntervalSince1970,
                participants: barrier.participants.map(\.name))
        }
        for participant in event.participants {
            if let left = participant.leftAt {
                builder.left(node: participant.node.name, at: left.timeIntervalSince1970)
            }
        }
        for line in log {
            let time = line.time.timeIntervalSince1970
            switch line.kind {
            case "failed":
                builder.failed(node: line.node ?? event.node.name, segment: segment(in: line.text), at: time)
            case "resume":
                builder.resumed(mode: mode(of: line.text), at: time)
            default:
                break
            }
        }
        return builder.build(status: event.status, end: event.finishedAt?.timeIntervalSince1970)
    }

    /// From the journaled termination's description (`Termination.description`).
    static func outcome(_ command: JournalCommand) -> Timeline.Outcome {
        Timeline.Outcome(
            accepted: command.accepted, timedOut: command.termination == "timed out",
            couldNotStart: command.termination.hasPrefix("could not start"))
    }

    /// `EVENT FAILED: ... in segment 1: held until resume` (JournalText.failed).
    static func segment(in text: String) -> Int {
        guard let range = text.range(of: " in segment ") else { return 0 }
        return Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
    }

    /// `RESUME --retry by alice on n1: ...` (ResumeEntry.description): the mode's raw value.
    static func mode(of text: String) -> String {
        if text.hasPrefix("RESUME --retry") { return "retry" }
        if text.hasPrefix("RESUME --continue") { return "continue" }
        return "skip"
    }
}
