import Foundation
import TestSupport
import Testing

/// One hamn.yaml for every node (issue 14, part 2): no `node:` or `nodes:`; each engine takes
/// its name and number from corosync's nodelist, finding its own entry by its address
/// (ns-cluster's node K is nodeid K, `name: nodeK`, at 127.77.0.K in its namespace).
@Suite(
    "one configuration for every node", .serialized, .timeLimit(.minutes(3)),
    .enabled(if: namespaceClustersAvailable, "needs root, ip and corosync"))
struct SharedConfigurationTests {
    @Test(
        "two engines, one file: each is its nodelist entry, they form one cluster, and an event runs on both as itself")
    func oneFile() throws {
        try withCluster(corosyncNodes: 2, nodes: ["node1", "node2"]) { cluster in
            let rules = try cluster.writeRules([("ping", 0, "all \"STEP ping\" 0 NULL\n")])
            let conf = cluster.clusterDirectory + "/node1/corosync.conf"
            let shared = cluster.root + "/hamn.yaml"
            // /run is each namespace's own (ns-cluster binds DIR/nodeK/run): the journal and the
            // default control socket (/run/hamn-events/control.sock) are per node.
            try cluster.write(
                shared,
                """
                transport: corosync
                corosync: {group: \(cluster.group), form_timeout: 3s, conf: \(conf)}
                rules: \(rules)
                journal: /run/hamn-events/journal.sqlite
                config_too_long: 300s
                fencing: none
                """)
            for k in [1, 2] {
                try cluster.startEngine(
                    "node\(k)", corosyncNode: k, configuration: shared,
                    socket: cluster.clusterDirectory + "/node\(k)/run/hamn-events/control.sock")
            }
            for k in [1, 2] {
                let expected =
                    "node node\(k), number \(k): from corosync's nodelist, \(conf):\(nodeLine(conf, k)) (nodeid \(k), ring0_addr 127.77.0.\(k))"
                #expect(cluster.engineLog("node\(k)").contains(expected), "\(cluster.engineLog("node\(k)"))")
            }
            #expect(
                cluster.eventually(60) {
                    ["node1", "node2"].allSatisfy { cluster.members($0) == ["node1", "node2"] }
                },
                "\(String(describing: cluster.members("node1"))) \(String(describing: cluster.members("node2")))")
            let trigger = try cluster.cli("node2", ["trigger", "ping"])
            #expect(trigger.status == 0, "\(trigger.err)")
            #expect(cluster.eventually(30) { cluster.steps().count == 2 })
            #expect(
                Set(cluster.steps().map { "\($0.node) \($0.word) \($0.eventNode)" }) == [
                    "node1 ping node2", "node2 ping node2",
                ])
        }
    }

    @Test(
        "cluster setup's corosync.conf (knet, crypto, votequorum) and authkey start a 3-node cluster; its hamn.yaml serves every engine"
    )
    func clusterSetup() throws {
        let setup = try clusterSetupFiles(nodes: 3)
        defer { try? FileManager.default.removeItem(atPath: setup) }
        let conf = try String(contentsOfFile: setup + "/corosync.conf", encoding: .utf8)
        #expect(conf.contains("crypto_cipher: aes256") && conf.contains("transport: knet"))
        var key = stat()
        #expect(stat(setup + "/authkey", &key) == 0 && key.st_mode & 0o777 == 0o400 && key.st_size == 256)
        try withCluster(
            corosyncNodes: 3, nodes: ["node1", "node2", "node3"],
            upArguments: ["--conf", setup + "/corosync.conf", "--authkey", setup + "/authkey"]
        ) { cluster in
            // ns-cluster ran the file as it is, but for its log and the key's place.
            let running = try String(contentsOfFile: cluster.clusterDirectory + "/node2/corosync.conf", encoding: .utf8)
            #expect(running.contains("crypto_cipher: aes256") && running.contains("keyfile: "))
            let rules = try cluster.writeRules([("ping", 0, "all \"STEP ping\" 0 NULL\n")])
            let yaml = try String(contentsOfFile: setup + "/hamn.yaml", encoding: .utf8)
            let shared = cluster.root + "/hamn.yaml"
            try cluster.write(
                shared,
                yaml + """
                    corosync: {group: \(cluster.group), form_timeout: 3s, conf: \(cluster.clusterDirectory)/node1/corosync.conf}
                    rules: \(rules)
                    journal: /run/hamn-events/journal.sqlite
                    config_too_long: 300s
                    fencing: none
                    """)
            for k in [1, 2, 3] {
                try cluster.startEngine(
                    "node\(k)", corosyncNode: k, configuration: shared,
                    socket: cluster.clusterDirectory + "/node\(k)/run/hamn-events/control.sock")
            }
            let names = ["node1", "node2", "node3"]
            #expect(cluster.eventually(60) { names.allSatisfy { cluster.members($0) == names } })
            let trigger = try cluster.cli("node3", ["trigger", "ping"])
            #expect(trigger.status == 0, "\(trigger.err)")
            #expect(cluster.eventually(30) { cluster.steps().count == 3 })
            #expect(Set(cluster.steps().map { "\($0.node) \($0.word)" }) == ["node1 ping", "node2 ping", "node3 ping"])
        }
    }

    /// The line of node K's `node {` in ns-cluster's corosync.conf.
    private func nodeLine(_ conf: String, _ k: Int) -> Int {
        let lines = ((try? String(contentsOfFile: conf, encoding: .utf8)) ?? "").split(
            separator: "\n", omittingEmptySubsequences: false)
        var seen = 0
        for (index, line) in lines.enumerated() where line.trimmingCharacters(in: .whitespaces) == "node {" {
            seen += 1
            if seen == k { return index + 1 }
        }
        return 0
    }
}
