import Foundation

extension Timeline {
    /// The timeline as lines for a terminal (`history EVENT`): each segment with its commands,
    /// who waited at its barrier and when it was passed; then failures, holds, resumes and
    /// departures. Times from the event's start.
    public var summary: String {
        var lines = [
            title + (displayName.map { " \u{201C}\($0)\u{201D}" } ?? "")
                + ": \(status), \(XMLText.duration(end)); nodes \(nodes.joined(separator: " "))"
        ]
        for segment in segments {
            lines.append(
                "segment \(segment.index): \(XMLText.duration(segment.start)) to \(XMLText.duration(segment.end))")
            for run in commands where run.segment == segment.index {
                lines.append(
                    "    \(XMLText.duration(run.start)) \(run.node) line \(run.line) \"\(run.command)\" \(run.result) "
                        + "in \(XMLText.duration(run.end - run.start))")
            }
            let waited = waits.filter { $0.segment == segment.index }.map {
                "\($0.node) waited \(XMLText.duration($0.end - $0.start))"
            }
            for barrier in barriers where barrier.segment == segment.index {
                lines.append(
                    "    barrier \(barrier.segment) passed at \(XMLText.duration(barrier.time))"
                        + (waited.isEmpty ? "" : "; " + waited.joined(separator: ", ")))
            }
        }
        for mark in marks {
            switch mark {
            case .failed(let node, let segment, let time):
                lines.append("\(XMLText.duration(time)): FAILED on \(node) in segment \(segment)")
            case .held(let start, let end):
                lines.append("\(XMLText.duration(start)): held for \(XMLText.duration(end - start))")
            case .resume(let mode, let time):
                lines.append("\(XMLText.duration(time)): resume\(mode == "skip" ? "" : " --" + mode)")
            case .left(let node, let time):
                lines.append("\(XMLText.duration(time)): \(node) left the cluster")
            }
        }
        if commands.isEmpty { lines.append("no command ran") }
        return lines.joined(separator: "\n")
    }

    /// The timeline as JSON: what the control socket sends and `Timeline(json:)` reads back.
    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    public init(json: String) throws {
        self = try JSONDecoder().decode(Timeline.self, from: Data(json.utf8))
    }
}
