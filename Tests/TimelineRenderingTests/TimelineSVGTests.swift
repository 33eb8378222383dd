import Foundation
import FoundationXML
import Testing
import TimelineRendering

/// The picture's structure, read back from the SVG as XML: lanes, bars, barriers, waits and
/// marks with the data attributes a test or a browser check selects them by.
@Suite struct TimelineSVGTests {
    /// Two nodes, two segments: n1 runs a 1 ms and a 30 s command, n2 one of 2 s and waits at
    /// barrier 0; in segment 1 n2's command fails, the event is held, resumed with --retry, and
    /// the retry succeeds.
    static func sample() -> Timeline {
        var builder = TimelineBuilder(
            title: "db2_takeover 0 (node n2, event 7)", displayName: "DB2 takeover", nodes: ["n1", "n2"],
            origin: 1000)
        builder.command(
            node: "n1", segment: 0, line: 3, command: "/usr/bin/true", program: "/usr/bin/true", start: 1000,
            end: 1000.001, outcome: .ok,
            result: "exit 0")
        builder.command(
            node: "n1", segment: 0, line: 4, command: "/opt/db2/db2stop force", program: "/opt/db2/db2stop",
            start: 1000.001, end: 1030,
            outcome: .ok, result: "exit 0")
        builder.command(
            node: "n2", segment: 0, line: 3, command: "/usr/bin/true", program: "/usr/bin/true", start: 1000, end: 1002,
            outcome: .ok,
            result: "exit 0")
        builder.barrier(segment: 0, at: 1030.5, participants: ["n1", "n2"])
        builder.command(
            node: "n2", segment: 1, line: 9, command: "mount /db2", program: "mount", start: 1030.5, end: 1031,
            outcome: .failed,
            result: "exit 32")
        builder.failed(node: "n2", segment: 1, at: 1031)
        builder.resumed(mode: "retry", at: 1040)
        builder.command(
            node: "n2", segment: 1, line: 9, command: "mount /db2", program: "mount", start: 1040, end: 1041,
            outcome: .ok,
            result: "exit 0")
        builder.barrier(segment: 1, at: 1041.25, participants: ["n1", "n2"])
        return builder.build(status: "completed", end: 1041.5)
    }

    static func document(_ timeline: Timeline) throws -> XMLDocument {
        try XMLDocument(xmlString: TimelineSVG.render(timeline), options: [])
    }

    /// The `g` elements whose class list holds every one of `classes`.
    static func groups(_ document: XMLDocument, _ classes: String...) throws -> [XMLElement] {
        let tests = classes.map { "contains(concat(' ', @class, ' '), ' \($0) ')" }.joined(separator: " and ")
        return try document.nodes(forXPath: "//*[local-name()='g'][\(tests)]").compactMap { $0 as? XMLElement }
    }

    /// The first child element named `name` (in the SVG namespace).
    static func child(_ element: XMLElement, _ name: String) throws -> XMLElement? {
        try element.nodes(forXPath: "*[local-name()='\(name)']").first as? XMLElement
    }

    /// (FoundationXML's `attribute(forName:)` finds no attribute of an element in a default
    /// namespace: looked up by name among them.)
    static func attribute(_ element: XMLElement?, _ name: String) -> String? {
        element?.attributes?.first { $0.name == name }?.stringValue
    }

    @Test func lanesBarsAndBarriers() throws {
        let document = try Self.document(Self.sample())
        #expect(try Self.groups(document, "lane").map { Self.attribute($0, "data-node") } == ["n1", "n2"])
        let bars = try Self.groups(document, "bar").filter { Self.attribute($0, "data-node") != nil }
        #expect(
            bars.map {
                [
                    Self.attribute($0, "class"), Self.attribute($0, "data-node"), Self.attribute($0, "data-segment"),
                    Self.attribute($0, "data-line"), Self.attribute($0, "data-program"),
                ].map { $0 ?? "-" }.joined(separator: " ")
            } == [
                "bar ok n1 0 3 true", "bar ok n1 0 4 db2stop", "bar ok n2 0 3 true", "bar failed n2 1 9 mount",
                "bar ok n2 1 9 mount",
            ])
        // Bars sit in their node's lane and are labelled with their program.
        let lane2 = try Self.groups(document, "lane")[1]
        #expect(
            try lane2.nodes(forXPath: "*[local-name()='g']").compactMap {
                Self.attribute($0 as? XMLElement, "data-line")
            }
                == ["3", "9", "9"])
        #expect(try Self.child(bars[3], "text")?.stringValue == "mount")
        #expect(try Self.groups(document, "barrier").compactMap { Self.attribute($0, "data-segment") } == ["0", "1"])
    }

    /// The 1 ms command is drawn at the minimum width, the 30 s one in proportion.
    @Test func minimumBarWidth() throws {
        let document = try Self.document(Self.sample())
        let widths = try Self.groups(document, "bar").filter { Self.attribute($0, "data-node") == "n1" }.map {
            Double(Self.attribute(try? Self.child($0, "rect"), "width") ?? "") ?? -1
        }
        #expect(widths.count == 2)
        #expect(widths[0] == TimelineSVG.Layout().minimumBar)
        #expect(widths[1] > 500)
    }

    @Test func waitsFailuresAndResume() throws {
        let timeline = Self.sample()
        #expect(
            timeline.waits == [
                .init(node: "n1", segment: 0, start: 30, end: 30.5), .init(node: "n2", segment: 0, start: 2, end: 30.5),
                .init(node: "n1", segment: 1, start: 30.5, end: 41.25),
                .init(node: "n2", segment: 1, start: 41, end: 41.25),
            ])
        #expect(
            timeline.segments == [.init(index: 0, start: 0, end: 30.5), .init(index: 1, start: 30.5, end: 41.25)])
        let document = try Self.document(timeline)
        #expect(
            try Self.groups(document, "wait").compactMap { wait in
                Self.attribute(wait, "data-node").map { "\($0) \(Self.attribute(wait, "data-segment") ?? "")" }
            } == ["n1 0", "n1 1", "n2 0", "n2 1"])
        let failed = try Self.groups(document, "mark", "failed")
        #expect(
            failed.map { "\(Self.attribute($0, "data-node") ?? "") \(Self.attribute($0, "data-segment") ?? "")" } == [
                "n2 1"
            ])
        #expect(try Self.groups(document, "mark", "resume").map { Self.attribute($0, "data-mode") } == ["retry"])
        #expect(try Self.groups(document, "mark", "resume").first?.stringValue?.contains("resume --retry") == true)
        #expect(timeline.marks.contains(.held(start: 31, end: 40)))
        #expect(try Self.groups(document, "held").count == 2)  // the hold, and the legend's swatch
    }

    /// A retry that fails again at the same instant is held anew, until the next resume.
    @Test func holdsAcrossRetries() throws {
        var builder = TimelineBuilder(title: "t 0", nodes: ["n1"], origin: 0)
        builder.failed(node: "n1", segment: 0, at: 60)
        builder.resumed(mode: "retry", at: 120)
        builder.failed(node: "n1", segment: 0, at: 120)
        builder.resumed(mode: "continue", at: 240)
        builder.failed(node: "n1", segment: 1, at: 250)
        let timeline = builder.build(status: "held", end: 300)
        #expect(
            timeline.marks.filter { if case .held = $0 { true } else { false } } == [
                .held(start: 60, end: 120), .held(start: 120, end: 240), .held(start: 250, end: 300),
            ])
        let svg = TimelineSVG.render(timeline)
        #expect(svg.contains(">1 min</text>"))
        #expect(svg.contains(">resume --continue</text>"))
    }

    @Test func leftNode() throws {
        var builder = TimelineBuilder(title: "t 0 (node n1, event 1)", nodes: ["n1", "n2"], origin: 0)
        builder.command(
            node: "n1", segment: 0, line: 2, command: "sleep 5", program: "sleep", start: 0, end: 5, outcome: .ok,
            result: "exit 0")
        builder.command(
            node: "n2", segment: 0, line: 2, command: "sleep 5", program: "sleep", start: 0, end: 2, outcome: .running,
            result: "no result: the node left")
        builder.left(node: "n2", at: 2)
        builder.barrier(segment: 0, at: 5, participants: ["n1"])
        let document = try Self.document(builder.build(status: "completed"))
        #expect(try Self.groups(document, "left").map { Self.attribute($0, "data-node") } == ["n2"])
        #expect(try Self.groups(document, "bar", "running").count == 2)  // the bar and the legend's
        #expect(try Self.groups(document, "wait").filter { Self.attribute($0, "data-node") == "n2" }.isEmpty)
    }

    /// Names and commands with XML's special characters come out as text, and the SVG parses.
    @Test func escaping() throws {
        var builder = TimelineBuilder(title: "ev<&>\"' 0", displayName: "a & b", nodes: ["n<1>"], origin: 0)
        builder.command(
            node: "n<1>", segment: 0, line: 1, command: "/bin/echo '<x>' && \"y\" \u{1B}[31m", program: "/bin/echo",
            start: 0, end: 1,
            outcome: .ok, result: "exit 0")
        let timeline = builder.build(status: "completed")
        let svg = TimelineSVG.render(timeline)
        #expect(!svg.contains("<x>"))
        #expect(!svg.contains("\u{1B}"))
        let document = try XMLDocument(xmlString: svg, options: [])
        #expect(try Self.groups(document, "lane").map { Self.attribute($0, "data-node") } == ["n<1>"])
        let title = try document.nodes(forXPath: "//*[local-name()='text'][@class='title']").first?.stringValue
        #expect(title == "ev<&>\"' 0 \u{201C}a & b\u{201D}: completed, 1 s")
        let bar = try #require(try Self.groups(document, "bar").first)
        let tooltip = try Self.child(bar, "title")?.stringValue
        #expect(tooltip?.hasPrefix("n<1> segment 0 line 1: /bin/echo '<x>' && \"y\" \u{FFFD}[31m") == true)
        let html = TimelineHTML.render([timeline], title: "<script>")
        #expect(!html.contains("<script>"))
        #expect(html.contains("<title>&lt;script&gt;</title>"))
    }

    /// An event with nothing known yet (queued, or suppressed) and one with one node.
    @Test func emptyAndOneNode() throws {
        let empty = TimelineBuilder(title: "e 0", nodes: [], origin: 5).build(status: "queued")
        #expect(empty.segments.isEmpty && empty.end == 0)
        let document = try Self.document(empty)
        #expect(try Self.groups(document, "lane").isEmpty)
        #expect(try Self.groups(document, "barrier").count == 1)  // the legend's

        var one = TimelineBuilder(title: "e 0", nodes: ["n1"], origin: 5)
        one.command(
            node: "n1", segment: 0, line: 1, command: "x", program: "x", start: 5, end: 6, outcome: .timedOut,
            result: "timed out")
        let single = try Self.document(one.build(status: "running"))
        #expect(try Self.groups(single, "lane").count == 1)
        #expect(try Self.groups(single, "bar", "timedOut").count == 2)
        #expect(try Self.groups(single, "barrier").count == 1)
    }

    /// The HTML page: one section per event, the SVG inline, a table row per command, no
    /// external resource.
    @Test func page() throws {
        let html = TimelineHTML.render([Self.sample(), Self.sample()], title: "scenario.yaml")
        #expect(html.hasPrefix("<!DOCTYPE html>\n"))
        #expect(html.components(separatedBy: "<section class=\"event\">").count == 3)
        #expect(html.components(separatedBy: "<svg ").count == 3)
        #expect(html.components(separatedBy: "<tr class=").count == 11)
        // Nothing fetched: the only address is each SVG's namespace.
        #expect(html.components(separatedBy: "http").count == 3)
        #expect(!html.contains("<script"))
        #expect(!html.contains("src="))
        #expect(TimelineHTML.render([], title: "none").contains("<p>No event ran.</p>"))
    }
}
