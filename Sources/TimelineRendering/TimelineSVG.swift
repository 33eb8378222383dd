/// Draws a `Timeline` as one SVG document: one lane per node, each command a bar from its
/// start to its end coloured by outcome and labelled with its program, segments as bands with
/// each barrier a line across all lanes, the time a node waited at a barrier as a dashed line,
/// failures, holds, resumes and departures marked. Self-contained (its style inside), so a
/// browser, `rsvg-convert` or an HTML page shows it alike.
///
/// Stable classes for tests and scripts: `g.lane[data-node]`,
/// `g.bar.<outcome>[data-node][data-segment][data-line][data-program]`, `g.barrier[data-segment]`,
/// `g.wait[data-node][data-segment]`, `g.mark.failed[data-node][data-segment]`,
/// `g.mark.resume[data-mode]`, `g.held`, `g.left[data-node]`.
public enum TimelineSVG {
    /// The drawing's geometry. A bar is at least `minimumBar` wide, so a 1 ms command next to a
    /// 30 s one is still seen (and its tooltip found).
    public struct Layout: Sendable {
        public var width = 1000.0
        public var laneLabelWidth = 120.0
        public var rightMargin = 24.0
        public var rowHeight = 22.0
        public var barHeight = 16.0
        public var minimumBar = 3.0
        /// An estimate of a label character's width at the drawing's font size.
        public var characterWidth = 6.4
        public init() {}
    }

    static let style = """
        .timeline text { font-family: sans-serif; font-size: 11px; fill: #222; }
        .timeline .title { font-size: 14px; font-weight: bold; }
        .timeline .axis line { stroke: #999; }
        .timeline .axis text, .timeline .segment text { fill: #555; }
        .timeline .segment rect { fill: #f4f6fa; }
        .timeline .segment.odd rect { fill: #e8ecf3; }
        .timeline .lane > rect { fill: none; stroke: #d0d4dc; }
        .timeline .lane > text { font-weight: bold; }
        .timeline .bar rect { stroke: #333; stroke-width: 0.5; }
        .timeline .bar.ok rect { fill: #8fd18f; }
        .timeline .bar.failed rect { fill: #f08080; }
        .timeline .bar.timedOut rect { fill: #f5b041; }
        .timeline .bar.couldNotStart rect { fill: #c39bd3; }
        .timeline .bar.running rect { fill: #d5d8dc; stroke-dasharray: 3 2; }
        .timeline .wait line { stroke: #777; stroke-width: 2; stroke-dasharray: 4 3; }
        .timeline .wait text { fill: #555; font-size: 10px; }
        .timeline .barrier line { stroke: #1f3a93; stroke-width: 2; }
        .timeline .barrier text { fill: #1f3a93; }
        .timeline .held rect { fill: #f08080; fill-opacity: 0.15; stroke: #c0392b; stroke-dasharray: 2 2; }
        .timeline .held text { fill: #c0392b; }
        .timeline .mark.failed path { fill: #c0392b; }
        .timeline .mark.failed text { fill: #c0392b; font-weight: bold; }
        .timeline .mark.resume line { stroke: #8e44ad; stroke-width: 2; stroke-dasharray: 6 3; }
        .timeline .mark.resume text { fill: #8e44ad; font-weight: bold; }
        .timeline .left rect { fill: #555; fill-opacity: 0.18; }
        .timeline .left line { stroke: #000; stroke-width: 2; }
        """

    public static func render(_ timeline: Timeline, layout: Layout = Layout()) -> String {
        Drawing(timeline: timeline, layout: layout).svg()
    }
}

/// One rendering: the scale, the lanes' rows, the elements in drawing order.
private struct Drawing {
    let timeline: Timeline
    let layout: Layout
    typealias Layout = TimelineSVG.Layout

    let plotLeft: Double
    let plotWidth: Double
    let span: Double
    /// Title, then segment labels and barrier labels, then the time axis.
    let lanesTop = 78.0
    /// Room at the top of a lane for its FAILED marks.
    let markRoom = 12.0
    /// Per node: its commands with their row in the lane, and whether the label goes to the
    /// left of the bar's end (it would pass the drawing's right edge).
    var rows: [String: [(run: Timeline.CommandRun, row: Int, labelLeft: Bool)]] = [:]
    var laneTop: [String: Double] = [:]
    var laneHeight: [String: Double] = [:]
    var lanesBottom = 0.0

    init(timeline: Timeline, layout: Layout) {
        self.timeline = timeline
        self.layout = layout
        plotLeft = layout.laneLabelWidth
        plotWidth = max(100, layout.width - layout.laneLabelWidth - layout.rightMargin)
        span = max(timeline.end, 0.001)
        var y = lanesTop
        for node in timeline.nodes {
            // Each bar with its label takes the first row where nothing drawn yet reaches it.
            var ends: [Double] = []
            var placed: [(run: Timeline.CommandRun, row: Int, labelLeft: Bool)] = []
            for run in timeline.commands where run.node == node {
                let from = x(run.start)
                let label = labelWidth(run.program)
                let labelLeft = from + label > layout.width - 2
                let low = labelLeft ? min(from, from + barWidth(run) - label) : from
                let reach = from + max(barWidth(run), labelLeft ? 0 : label)
                // Half a pixel: a bar that starts where the last one ended shares its row.
                let row = ends.firstIndex { $0 <= low + 0.5 } ?? ends.count
                if row == ends.count { ends.append(reach) } else { ends[row] = reach }
                placed.append((run, row, labelLeft))
            }
            rows[node] = placed
            // Room above the bars for the failure marks, below them for the wait lines.
            let height = markRoom + Double(max(1, ends.count)) * layout.rowHeight + 14
            laneTop[node] = y
            laneHeight[node] = height
            y += height
        }
        lanesBottom = y
    }

    func x(_ time: Double) -> Double { plotLeft + min(max(0, time), span) / span * plotWidth }

    func barWidth(_ run: Timeline.CommandRun) -> Double { max(layout.minimumBar, x(run.end) - x(run.start)) }

    func labelWidth(_ text: String) -> Double { Double(text.count) * layout.characterWidth + 6 }

    func n(_ value: Double) -> String { XMLText.number(value) }

    func e(_ text: String) -> String { XMLText.escape(text) }

    func svg() -> String {
        let legendTop = lanesBottom + 40
        let height = legendTop + 54
        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="\(n(layout.width))" \
            height="\(n(height))" viewBox="0 0 \(n(layout.width)) \(n(height))">
            <style>\(TimelineSVG.style)</style>
            <rect x="0" y="0" width="\(n(layout.width))" height="\(n(height))" fill="#ffffff"/>
            <text class="title" x="8" y="18">\(e(heading))</text>

            """
        out += segments()
        out += axis()
        out += lanes()
        out += held()
        out += barriers()
        out += resumes()
        out += legend(top: legendTop)
        out += "</svg>\n"
        return out
    }

    var heading: String {
        var text = timeline.title
        if let name = timeline.displayName { text += " \u{201C}\(name)\u{201D}" }
        return text + ": \(timeline.status), \(XMLText.duration(timeline.end))"
    }

    func segments() -> String {
        var out = ""
        for segment in timeline.segments {
            let left = x(segment.start)
            let width = max(1, x(segment.end) - left)
            out += """
                <g class="segment\(segment.index % 2 == 1 ? " odd" : "")" data-segment="\(segment.index)">\
                <rect x="\(n(left))" y="30" width="\(n(width))" height="\(n(lanesBottom - 30))"/>\
                <text x="\(n(left + 4))" y="42">\(width > 60 ? "segment " : "")\(segment.index)</text>\
                <title>segment \(segment.index): \(XMLText.duration(segment.start)) to \
                \(XMLText.duration(segment.end))</title></g>

                """
        }
        return out
    }

    func axis() -> String {
        let steps = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]
        let step = steps.first { span / $0 <= 10 } ?? (span / 10).rounded(.up)
        var out = "<g class=\"axis\"><line x1=\"\(n(plotLeft))\" y1=\"\(n(lanesTop - 6))\" "
        out += "x2=\"\(n(plotLeft + plotWidth))\" y2=\"\(n(lanesTop - 6))\"/>"
        var tick = 0.0
        while tick <= span + step / 1000 {
            let at = x(tick)
            out += "<line x1=\"\(n(at))\" y1=\"\(n(lanesTop - 10))\" x2=\"\(n(at))\" y2=\"\(n(lanesTop - 2))\"/>"
            let anchor = at > layout.width - 40 ? "end" : "middle"
            out += "<text x=\"\(n(at))\" y=\"\(n(lanesTop - 14))\" text-anchor=\"\(anchor)\">"
            out += "\(tick == 0 ? "0" : XMLText.duration(tick))</text>"
            tick += step
        }
        out += "</g>\n"
        return out
    }

    func lanes() -> String {
        var out = ""
        for node in timeline.nodes {
            let top = laneTop[node]!
            let height = laneHeight[node]!
            out += "<g class=\"lane\" data-node=\"\(e(node))\">"
            out += "<rect x=\"0\" y=\"\(n(top))\" width=\"\(n(layout.width))\" height=\"\(n(height))\"/>"
            out += "<text x=\"8\" y=\"\(n(top + markRoom + layout.rowHeight / 2 + 4))\">\(e(node))</text>\n"
            for departure in timeline.marks {
                guard case .left(let who, let time) = departure, who == node else { continue }
                let at = x(time)
                out += "<g class=\"left\" data-node=\"\(e(node))\">"
                out += "<rect x=\"\(n(at))\" y=\"\(n(top))\" width=\"\(n(max(0, plotLeft + plotWidth - at)))\" "
                out += "height=\"\(n(height))\"/><line x1=\"\(n(at))\" y1=\"\(n(top))\" x2=\"\(n(at))\" "
                let right = at + 100 > layout.width
                out += "y2=\"\(n(top + height))\"/><text x=\"\(n(right ? at - 4 : at + 4))\" "
                out += "y=\"\(n(top + height - 4))\"\(right ? " text-anchor=\"end\"" : "")>"
                out += "left the cluster</text><title>\(e(node)) left the cluster at "
                out += "\(XMLText.duration(time))</title></g>\n"
            }
            for (run, row, labelLeft) in rows[node] ?? [] {
                let left = x(run.start)
                let y = top + markRoom + Double(row) * layout.rowHeight + (layout.rowHeight - layout.barHeight) / 2
                out += "<g class=\"bar \(run.outcome.rawValue)\" data-node=\"\(e(node))\" "
                out += "data-segment=\"\(run.segment)\" data-line=\"\(run.line)\" data-program=\"\(e(run.program))\">"
                out += "<rect x=\"\(n(left))\" y=\"\(n(y))\" width=\"\(n(barWidth(run)))\" "
                out += "height=\"\(n(layout.barHeight))\" rx=\"2\"/>"
                out +=
                    labelLeft
                    ? "<text x=\"\(n(left + barWidth(run) - 3))\" y=\"\(n(y + layout.barHeight - 4))\" text-anchor=\"end\">"
                    : "<text x=\"\(n(left + 3))\" y=\"\(n(y + layout.barHeight - 4))\">"
                out += "\(e(run.program))</text>"
                out += "<title>\(e(node)) segment \(run.segment) line \(run.line): \(e(run.command))\n"
                out += "\(e(run.result)), \(XMLText.duration(run.end - run.start)) "
                out += "(\(XMLText.duration(run.start)) to \(XMLText.duration(run.end)))</title></g>\n"
            }
            for wait in timeline.waits where wait.node == node {
                let from = x(wait.start)
                let to = x(wait.end)
                let y = top + height - 10
                out += "<g class=\"wait\" data-node=\"\(e(node))\" data-segment=\"\(wait.segment)\">"
                out += "<line x1=\"\(n(from))\" y1=\"\(n(y))\" x2=\"\(n(max(to, from + 2)))\" y2=\"\(n(y))\"/>"
                let label = "waits \(XMLText.duration(wait.end - wait.start))"
                if to - from > labelWidth(label) {
                    out += "<text x=\"\(n(from + 4))\" y=\"\(n(y - 3))\">\(label)</text>"
                }
                out += "<title>\(e(node)) waited \(XMLText.duration(wait.end - wait.start)) at barrier "
                out += "\(wait.segment)</title></g>\n"
            }
            for mark in timeline.marks {
                guard case .failed(let who, let segment, let time) = mark, who == node else { continue }
                let at = x(time)
                out += "<g class=\"mark failed\" data-node=\"\(e(node))\" data-segment=\"\(segment)\">"
                out +=
                    "<path d=\"M \(n(at - 6)) \(n(top + 1)) L \(n(at + 6)) \(n(top + 1)) L \(n(at)) \(n(top + 11)) Z\"/>"
                out += "<text x=\"\(n(at + 8))\" y=\"\(n(top + 10))\">FAILED</text>"
                out += "<title>\(e(node)): a command failed its expected status in segment \(segment) at "
                out += "\(XMLText.duration(time)): the event is held</title></g>\n"
            }
            out += "</g>\n"
        }
        return out
    }

    func held() -> String {
        var out = ""
        for mark in timeline.marks {
            guard case .held(let start, let end) = mark else { continue }
            let left = x(start)
            let width = max(2, x(end) - left)
            out += "<g class=\"held\"><rect x=\"\(n(left))\" y=\"\(n(lanesTop))\" width=\"\(n(width))\" "
            out += "height=\"\(n(lanesBottom - lanesTop))\"/>"
            if width > 110 {
                out += "<text x=\"\(n(left + 4))\" y=\"\(n(lanesBottom + 12))\">held until resume</text>"
            }
            out += "<title>held after a failure, \(XMLText.duration(end - start))</title></g>\n"
        }
        return out
    }

    func barriers() -> String {
        var out = ""
        for barrier in timeline.barriers {
            let at = x(barrier.time)
            out += "<g class=\"barrier\" data-segment=\"\(barrier.segment)\">"
            out += "<line x1=\"\(n(at))\" y1=\"46\" x2=\"\(n(at))\" y2=\"\(n(lanesBottom))\"/>"
            out += "<text x=\"\(n(at - 3))\" y=\"56\" text-anchor=\"end\">barrier \(barrier.segment)</text>"
            out += "<title>barrier \(barrier.segment) passed at \(XMLText.duration(barrier.time)) by "
            out += "\(e(barrier.participants.joined(separator: " ")))</title></g>\n"
        }
        return out
    }

    func resumes() -> String {
        var out = ""
        for mark in timeline.marks {
            guard case .resume(let mode, let time) = mark else { continue }
            let at = x(time)
            let label = mode == "skip" ? "resume" : "resume --\(mode)"
            out += "<g class=\"mark resume\" data-mode=\"\(e(mode))\">"
            out += "<line x1=\"\(n(at))\" y1=\"\(n(lanesTop))\" x2=\"\(n(at))\" y2=\"\(n(lanesBottom + 16))\"/>"
            let right = at + 4 + labelWidth(label) > layout.width
            out += "<text x=\"\(n(right ? at - 4 : at + 4))\" y=\"\(n(lanesBottom + 26))\""
            out += "\(right ? " text-anchor=\"end\"" : "")>\(e(label))</text>"
            out += "<title>\(e(label)) at \(XMLText.duration(time))</title></g>\n"
        }
        return out
    }

    func legend(top: Double) -> String {
        var out = "<g class=\"legend\">"
        var left = 8.0
        var y = top
        func item(_ swatch: (Double, Double) -> String, _ label: String) {
            out += swatch(left, y) + "<text x=\"\(n(left + 18))\" y=\"\(n(y + 11))\">\(label)</text>"
            left += 18 + labelWidth(label) + 10
        }
        for outcome in Timeline.Outcome.allCases {
            item(
                { x, y in
                    "<g class=\"bar \(outcome.rawValue)\"><rect x=\"\(n(x))\" y=\"\(n(y + 1))\" width=\"14\" height=\"12\"/></g>"
                }, outcome.label)
        }
        // The marks on a second row. Their swatches are drawn with plain attributes, not the
        // marks' classes, so that selecting `g.mark.resume` finds the event's resumes only.
        y += 18
        left = 8
        item(
            { x, y in
                "<g class=\"wait\"><line x1=\"\(n(x))\" y1=\"\(n(y + 7))\" x2=\"\(n(x + 14))\" y2=\"\(n(y + 7))\"/></g>"
            }, "waits at a barrier")
        item(
            { x, y in
                "<g class=\"barrier\"><line x1=\"\(n(x + 7))\" y1=\"\(n(y))\" x2=\"\(n(x + 7))\" y2=\"\(n(y + 14))\"/></g>"
            }, "barrier")
        item(
            { x, y in "<g class=\"held\"><rect x=\"\(n(x))\" y=\"\(n(y + 1))\" width=\"14\" height=\"12\"/></g>" },
            "held after a failure")
        item(
            { x, y in
                "<path d=\"M \(n(x + 1)) \(n(y + 2)) L \(n(x + 13)) \(n(y + 2)) L \(n(x + 7)) \(n(y + 12)) Z\" fill=\"#c0392b\"/>"
            }, "a command failed: FAILED")
        item(
            { x, y in
                "<line x1=\"\(n(x + 7))\" y1=\"\(n(y))\" x2=\"\(n(x + 7))\" y2=\"\(n(y + 14))\" stroke=\"#8e44ad\" "
                    + "stroke-width=\"2\" stroke-dasharray=\"4 2\"/>"
            }, "resume (its mode)")
        item(
            { x, y in
                "<rect x=\"\(n(x))\" y=\"\(n(y + 1))\" width=\"14\" height=\"12\" fill=\"#555\" fill-opacity=\"0.18\" "
                    + "stroke=\"#000\"/>"
            }, "left the cluster")
        y += 18
        out += "<text x=\"8\" y=\"\(n(y + 11))\">times from the event's start; "
        out += "a bar is at least \(n(layout.minimumBar)) px wide</text>"
        out += "</g>\n"
        return out
    }
}
