import Foundation
import TestSupport
import Testing

/// `hamn-events status --all` on a 3-node namespace cluster (issue 15, item 4): the question
/// goes through corosync, every node answers with its instances; a node whose engine is stopped
/// (SIGSTOP: still a member, not answering) is named after the wait.
@Suite(
    "status --all", .serialized, .timeLimit(.minutes(3)),
    .enabled(if: namespaceClustersAvailable, "needs root, ip and corosync"))
struct StatusAllTests {
    @Test("every node's instances, from node 1; a stopped engine named as not answering")
    func everyNode() throws {
        let names = ["node1", "node2", "node3"]
        try withCluster(corosyncNodes: 3, nodes: names) { cluster in
            // One monitored rule; each node samples its own file (node K: 40 + K).
            let rp = cluster.root + "/etc/db2_paging_0.rp"
            try cluster.write(rp, "all \"/bin/true\" 0 NULL\n")
            let rules = cluster.root + "/etc/rules.hacmprd"
            try cluster.write(
                rules, "db2_paging\n0\n\(rp)\n2\n0\nIBM.PSSP.aixos.PagSp.%totalused\nNodeNum=*\nX > 70\nX < 60\n")
            for (k, name) in names.enumerated() {
                let paging = cluster.root + "/\(name).paging"
                try cluster.write(paging, "\(41 + k)\n")
                try cluster.startEngine(
                    name, corosyncNode: k + 1, rules: rules,
                    extra: """
                        fencing: none
                        variables:
                          - {name: IBM.PSSP.aixos.PagSp.%totalused, command: /bin/cat \(paging), interval: 0.2s}
                        """)
            }
            #expect(cluster.eventually(60) { names.allSatisfy { cluster.members($0) == names } })
            for (k, name) in names.enumerated() {
                #expect(
                    cluster.eventually(10) {
                        ((try? cluster.cli(name, ["status"]))?.out ?? "").contains(
                            "db2_paging state 0 NodeNum=\(k + 1): armed, last \(41 + k)")
                    }, "\(cluster.engineLog(name))")
            }
            let all = try cluster.cli("node1", ["status", "--all"])
            #expect(all.status == 0, "\(all.err)")
            #expect(
                all.out
                    == """
                    node1: instances:
                      db2_paging state 0 NodeNum=1: armed, last 41
                    node2: instances:
                      db2_paging state 0 NodeNum=2: armed, last 42
                    node3: instances:
                      db2_paging state 0 NodeNum=3: armed, last 43

                    """)

            // node3's engine stopped: still a member of the group, it does not answer.
            #expect(cluster.signalEngine("node3", SIGSTOP))
            var continued = false
            defer { if !continued { _ = cluster.signalEngine("node3", SIGCONT) } }
            let silent = try cluster.cli("node2", ["status", "--all"])
            #expect(silent.status == 0, "\(silent.err)")
            #expect(silent.out.hasPrefix("node1: instances:\n"), "\(silent.out)")
            #expect(
                silent.out.hasSuffix(
                    "node3: NO ANSWER within 5 s (an engine from before status --all drops the question)\n"),
                "\(silent.out)")

            // After the fault: node3 runs again, answers the old question late (dropped: nobody
            // waits for it any more), and the next `status --all` has every node again.
            #expect(cluster.signalEngine("node3", SIGCONT))
            continued = true
            let again = try cluster.cli("node2", ["status", "--all"])
            #expect(again.status == 0, "\(again.err)")
            #expect(again.out == all.out, "\(again.out)")
        }
    }
}
