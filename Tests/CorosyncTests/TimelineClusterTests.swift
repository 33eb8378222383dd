import Foundation
import TestSupport
import Testing

/// `history EVENT --format html` on three engines: the event's timeline has one lane per node,
/// a bar for each command each node ran in each segment, and the barrier between them.
@Suite(
    "event timeline on corosync", .serialized,
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct TimelineClusterTests {
    @Test("three engines, an event with a barrier: lanes, bars per command per node, the barrier line")
    func threeLanes() throws {
        try withCluster(corosyncNodes: 1, nodes: ["n1", "n2", "n3"]) { cluster in
            let rules = try cluster.writeRules([
                (
                    "ping", 0,
                    """
                    event "STEP ping-event 0.5" 0 NULL
                    other "STEP ping-other 0.2" 0 NULL
                    barrier
                    all "STEP ping-all" 0 NULL
                    """
                )
            ])
            for name in ["n1", "n2", "n3"] { try cluster.startEngine(name, corosyncNode: 1, rules: rules) }
            #expect(
                cluster.eventually(60) { ["n1", "n2", "n3"].allSatisfy { cluster.members($0) == ["n1", "n2", "n3"] } })
            try cluster.cli("n1", ["trigger", "ping", "--node", "n2"])
            #expect(cluster.eventually(30) { !cluster.journal("n1", kind: "finished", containing: "ping 0").isEmpty })

            let history = try cluster.cli("n1", ["history", "--format", "json"])
            let events = (try JSONSerialization.jsonObject(with: Data(history.out.utf8)) as? [String: Any])?["events"]
            let ping = try #require((events as? [[String: Any]])?.first { $0["name"] as? String == "ping" })
            let id = try #require(ping["id"] as? Int)
            let page = try cluster.cli("n1", ["history", String(id), "--format", "html"])
            #expect(page.status == 0, "\(page.err)")
            let html = page.out
            func count(_ text: String) -> Int { html.components(separatedBy: text).count - 1 }
            for node in ["n1", "n2", "n3"] {
                #expect(count("<g class=\"lane\" data-node=\"\(node)\">") == 1, "\(node)")
                #expect(count("<g class=\"bar ok\" data-node=\"\(node)\" data-segment=\"0\"") == 1, "\(node)")
                #expect(
                    count(
                        "<g class=\"bar ok\" data-node=\"\(node)\" data-segment=\"1\" data-line=\"4\" data-program=\"step\">"
                    )
                        == 1, "\(node)")
            }
            #expect(count("data-segment=\"0\" data-line=\"1\" data-program=\"step\">") == 1, "the event node's line")
            #expect(count("data-segment=\"0\" data-line=\"2\" data-program=\"step\">") == 2, "the other nodes' line")
            #expect(count("<g class=\"barrier\" data-segment=\"0\">") == 1)
            #expect(count("<g class=\"barrier\" data-segment=\"1\">") == 0, "the last segment ends the event")
            // n1 and n3 ran 0.2 s against n2's 0.5 s: they waited at barrier 0.
            for node in ["n1", "n3"] {
                #expect(count("<g class=\"wait\" data-node=\"\(node)\" data-segment=\"0\">") == 1, "\(node)")
            }
        }
    }
}
