import Foundation

extension Journal: EventJournal {
    public func close() throws {
        try close(at: Date())
    }

    public func historyReport(limit: Int) throws -> (text: String, json: String) {
        let events = try history(limit: limit)
        var lines: [String] = []
        for event in events {
            let started = event.startedAt.map { " started " + JournalText.stamp($0, timeZone: .current) } ?? ""
            lines.append(
                "run \(event.run) event \(event.id): \(event.name) state \(event.state) node \(event.node.name)"
                    + " \(event.status)\(started)\(event.displayName.map { " (\($0))" } ?? "")")
            if let failure = event.failure {
                lines.append("    failed on \(failure.node.name) in segment \(failure.segment)")
            }
            for command in event.commands {
                let duration = String(format: "%.2f", command.duration)
                lines.append(
                    "    \(command.node.name) segment \(command.segment): \"\(command.command)\" \(command.termination)"
                        + "\(command.accepted ? "" : " (not the expected status)") in \(duration) s")
            }
        }
        if lines.isEmpty { lines.append("no events yet") }
        // Names and commands may hold anything: each line is one line on a terminal.
        return (lines.map(TerminalText.line).joined(separator: "\n"), try Self.historyJSON(events))
    }

    /// The history without each event's commands and barrier passages, which are neither read
    /// nor encoded: an event of 100 barriers has hundreds of commands, and encoding them at
    /// every commit cost the web view most of its CPU in `hamn-bench cluster`.
    public func viewHistoryJSON(limit: Int) throws -> String {
        try Self.historyJSON(history(limit: limit, steps: false))
    }

    private static func historyJSON(_ events: [JournalEvent]) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(["events": events]), as: UTF8.self)
    }

    public func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine] {
        try rowID.map { try log(after: $0, limit: limit) } ?? lastLog(limit: limit)
    }
}
