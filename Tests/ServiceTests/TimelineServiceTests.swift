import Foundation
import TestSupport
import Testing

/// `history EVENT` on the real service: the timeline of an event that ran, as text, JSON and a
/// standalone HTML page; and `simulate --format html`.
@Suite("event timeline on the service", .serialized, .timeLimit(.minutes(1)))
struct TimelineServiceTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    @Test("history EVENT --format html draws the event that ran: its lane, bars and barrier")
    func historyHTML() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([
            ("work", 0, "all \"/bin/touch \(out)/first\" 0 NULL\nbarrier\nall \"/bin/echo '<&>'\" 0 NULL\n", nil)
        ])
        try harness.start()
        try harness.cli(["trigger", "work"])
        #expect(
            harness.eventually {
                (try? harness.cli(["history"]))?.out.contains("event 1: work state 0 node n1 completed") == true
            }, "\((try? harness.cli(["history"]))?.out ?? "")")

        let html = try harness.cli(["history", "1", "--format", "html"])
        #expect(html.status == 0, "\(html.err)")
        #expect(html.out.hasPrefix("<!DOCTYPE html>\n"))
        #expect(html.out.contains("<h1>hamn-events: work 0 (node n1, event 1, run "))
        #expect(html.out.contains("<g class=\"lane\" data-node=\"n1\">"))
        #expect(
            html.out.contains(
                "<g class=\"bar ok\" data-node=\"n1\" data-segment=\"0\" data-line=\"1\" data-program=\"touch\">"))
        #expect(
            html.out.contains(
                "<g class=\"bar ok\" data-node=\"n1\" data-segment=\"1\" data-line=\"3\" data-program=\"echo\">"))
        #expect(html.out.contains("<g class=\"barrier\" data-segment=\"0\">"))
        #expect(html.out.contains("/bin/echo &#39;&lt;&amp;&gt;&#39;"))
        #expect(!html.out.contains("<&>"))

        let text = try harness.cli(["history", "1"])
        #expect(text.status == 0, "\(text.err)")
        let lines = text.out.split(separator: "\n").map(String.init)
        #expect(lines.first?.hasPrefix("work 0 (node n1, event 1, run ") == true)
        #expect(lines.first?.contains("completed") == true)
        #expect(lines.contains { $0.hasPrefix("segment 0: 0 ms to ") })
        #expect(lines.contains { $0.contains(" n1 line 1 \"/bin/touch \(out)/first\" exit 0 in ") })
        #expect(lines.contains { $0.hasPrefix("    barrier 0 passed at ") })

        let json = try harness.cli(["history", "1", "--format", "json"])
        #expect(json.status == 0)
        let object = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [String: Any]
        #expect(object?["nodes"] as? [String] == ["n1"])
        #expect((object?["commands"] as? [Any])?.count == 2)

        let missing = try harness.cli(["history", "7", "--format", "html"])
        #expect(missing.status == 1)
        #expect(missing.err == "hamn-events: no event 7 in the journal (see history)\n")
        #expect(missing.out == "")
        let usage = try harness.cli(["history", "--format", "html"])
        #expect(usage.status == 2)
        #expect(usage.err.contains("--format html and --run show one event's timeline: give its EVENT id"))
    }

    @Test("simulate --format html: a page with each event's timeline, the failure and the resume marked")
    func simulateHTML() throws {
        let scenario = Self.repository.appendingPathComponent("scenarios/failure-resume.yaml").path
        let run = try runTool(ServiceHarness.binary, ["simulate", scenario, "--format", "html"])
        #expect(run.status == 0, "\(run.err)")
        let page = run.out
        #expect(page.hasPrefix("<!DOCTYPE html>\n"))
        #expect(page.components(separatedBy: "<section class=\"event\">").count == 4, "three events")
        #expect(page.contains("<h2>db2_proc_restart 0 (node n2, event 1)"))
        for node in ["n1", "n2", "n3"] { #expect(page.contains("<g class=\"lane\" data-node=\"\(node)\">")) }
        #expect(
            page.contains(
                "<g class=\"bar failed\" data-node=\"n2\" data-segment=\"0\" data-line=\"")
                && page.contains("data-program=\"db2_start_partition\">"))
        #expect(page.contains("<g class=\"mark failed\" data-node=\"n2\" data-segment=\"0\">"))
        #expect(page.contains("<g class=\"mark resume\" data-mode=\"skip\">"))
        #expect(page.contains("<g class=\"held\"><rect"))
    }
}
