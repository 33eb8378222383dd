/// A standalone HTML page of one or more timelines: each picture (`TimelineSVG`) with a table
/// of its commands below. Inline style, no script, no external resource: a file an
/// administrator can attach to an incident report and open anywhere.
public enum TimelineHTML {
    /// `title`: the page's title (e.g. the event, or the scenario's file).
    public static func render(_ timelines: [Timeline], title: String, layout: TimelineSVG.Layout = .init()) -> String {
        var out = """
            <!DOCTYPE html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <title>\(XMLText.escape(title))</title>
            <style>
            body { font-family: sans-serif; margin: 1.5em; color: #222; }
            h1 { font-size: 1.3em; }
            h2 { font-size: 1.1em; margin-top: 2em; }
            table { border-collapse: collapse; font-size: 0.85em; margin-top: 0.8em; }
            th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; vertical-align: top; }
            td.command { font-family: monospace; white-space: pre-wrap; }
            tr.failed td, tr.timedOut td, tr.couldNotStart td { background: #fbe3e3; }
            </style>
            </head>
            <body>
            <h1>\(XMLText.escape(title))</h1>

            """
        if timelines.isEmpty { out += "<p>No event ran.</p>\n" }
        for timeline in timelines {
            out += "<section class=\"event\">\n<h2>\(XMLText.escape(timeline.title))"
            if let name = timeline.displayName { out += " \u{201C}\(XMLText.escape(name))\u{201D}" }
            out += "</h2>\n<p>\(XMLText.escape(timeline.status)), \(XMLText.duration(timeline.end)); nodes "
            out += "\(XMLText.escape(timeline.nodes.joined(separator: " ")))</p>\n"
            out += TimelineSVG.render(timeline, layout: layout)
            out += table(timeline)
            out += "</section>\n"
        }
        out += "</body>\n</html>\n"
        return out
    }

    static func table(_ timeline: Timeline) -> String {
        guard !timeline.commands.isEmpty else { return "<p>No command ran.</p>\n" }
        var out = "<table>\n<tr><th>start</th><th>node</th><th>segment</th><th>line</th><th>command</th>"
        out += "<th>result</th><th>duration</th></tr>\n"
        for run in timeline.commands {
            out += "<tr class=\"\(run.outcome.rawValue)\"><td>\(XMLText.duration(run.start))</td>"
            out += "<td>\(XMLText.escape(run.node))</td><td>\(run.segment)</td><td>\(run.line)</td>"
            out += "<td class=\"command\">\(XMLText.escape(run.command))</td>"
            out += "<td>\(XMLText.escape(run.result))</td><td>\(XMLText.duration(run.end - run.start))</td></tr>\n"
        }
        out += "</table>\n"
        return out
    }
}
