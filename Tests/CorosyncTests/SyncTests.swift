import Foundation
import TestSupport
import Testing

/// `hamn-events sync` on a 3-node namespace cluster made from `cluster setup`'s files (issue 14,
/// part 4): a changed recovery program reaches every node and the next event runs it there; a
/// node whose copy fails validation keeps its old rules and says why; a node started afterwards
/// gets the tree; the tree's cluster.yaml is in force on every node after it; crypto off is refused. Each node has its own rules directory
/// (ROOT/nodeK/rules, `rules_root: ROOT/nodeK`, the rules naming `/rules/ping_0.rp`); /run is
/// each namespace's own, which makes a command that exists on some nodes only.
@Suite(
    "sync", .serialized, .timeLimit(.minutes(4)),
    .enabled(if: namespaceClustersAvailable, "needs root, ip and corosync"))
struct SyncTests {
    func rules(_ cluster: EngineCluster, _ k: Int) -> String { cluster.root + "/node\(k)/rules" }

    /// Node K's rules tree (one event, `ping`, whose program runs `command`) and configuration.
    func prepare(_ cluster: EngineCluster, _ k: Int, command: String, conf: String) throws -> String {
        let directory = rules(cluster, k)
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(cluster.root + "/node\(k)", 0o755)
        chmod(directory, 0o755)
        try cluster.write(directory + "/ping_0.rp", "all \"\(command)\" 0 NULL\n")
        try cluster.write(directory + "/rules.hacmprd", "ping\n0\n/rules/ping_0.rp\n2\n0\n\n\n\n\n")
        let yaml = cluster.root + "/node\(k).yaml"
        try cluster.write(
            yaml,
            """
            transport: corosync
            corosync: {group: \(cluster.group), form_timeout: 3s, conf: \(conf)}
            rules: \(directory)/rules.hacmprd
            rules_root: \(cluster.root)/node\(k)
            journal: \(cluster.root)/node\(k).sqlite
            config_too_long: 300s
            fencing: none
            """)
        return yaml
    }

    func start(_ cluster: EngineCluster, _ k: Int, yaml: String) throws {
        try cluster.startEngine(
            "node\(k)", corosyncNode: k, configuration: yaml,
            socket: cluster.clusterDirectory + "/node\(k)/run/hamn-events/control.sock")
    }

    func ping(_ cluster: EngineCluster, expecting words: [String]) throws {
        let before = cluster.steps().count
        let trigger = try cluster.cli("node1", ["trigger", "ping"])
        #expect(trigger.status == 0, "\(trigger.err)")
        #expect(cluster.eventually(30) { cluster.steps().count == before + words.count })
        #expect(Set(cluster.steps().dropFirst(before).map { "\($0.node) \($0.word)" }) == Set(words))
    }

    @Test(
        "sync from node 1: every node runs the new .rp; a node missing its command keeps its old rules; a late node gets the tree"
    )
    func threeNodes() throws {
        let setup = try clusterSetupFiles(nodes: 3)
        defer { try? FileManager.default.removeItem(atPath: setup) }
        try withCluster(
            corosyncNodes: 3, nodes: ["node1", "node2", "node3"],
            upArguments: ["--conf", setup + "/corosync.conf", "--authkey", setup + "/authkey"]
        ) { cluster in
            let conf = cluster.clusterDirectory + "/node1/corosync.conf"
            let step = cluster.binDirectory + "/step"
            var yamls: [Int: String] = [:]
            for k in [1, 2, 3] { yamls[k] = try prepare(cluster, k, command: "\(step) old", conf: conf) }
            for k in [1, 2] { try start(cluster, k, yaml: yamls[k]!) }
            #expect(
                cluster.eventually(60) { ["node1", "node2"].allSatisfy { cluster.members($0) == ["node1", "node2"] } })
            try ping(cluster, expecting: ["node1 old", "node2 old"])

            // node1's .rp changed, then synced: node2 runs the new command at the next event.
            try cluster.write(rules(cluster, 1) + "/ping_0.rp", "all \"\(step) new\" 0 NULL\n")
            let synced = try cluster.cli("node1", ["sync"])
            #expect(synced.status == 0, "\(synced.err)")
            let lines = synced.out.split(separator: "\n").map(String.init)
            #expect(
                lines.count == 2 && lines[0].hasPrefix("node1: took the tree ")
                    && lines[1].hasPrefix("node2: took the tree "), "\(synced.out)")
            let digest = String(lines[0].suffix(12))
            #expect(
                try String(contentsOfFile: rules(cluster, 2) + "/ping_0.rp", encoding: .utf8)
                    == "all \"\(step) new\" 0 NULL\n")
            try ping(cluster, expecting: ["node1 new", "node2 new"])
            #expect(
                cluster.eventually(10) {
                    ((try? cluster.cli("node2", ["status"]))?.out ?? "").contains(
                        "rules tree: \(digest), the same on every member")
                })

            // node3 starts afterwards with its old tree: it gets node1's.
            try start(cluster, 3, yaml: yamls[3]!)
            let names = ["node1", "node2", "node3"]
            #expect(cluster.eventually(60) { names.allSatisfy { cluster.members($0) == names } })
            #expect(
                cluster.eventually(30) {
                    !cluster.journal("node3", containing: "rules tree \(digest) written").isEmpty
                }, "\(cluster.engineLog("node3"))")
            try ping(cluster, expecting: ["node1 new", "node2 new", "node3 new"])

            // A command in /run on nodes 1 and 2 only: node3's copy fails validation (R020).
            for k in [1, 2] {
                try FileManager.default.createDirectory(
                    atPath: cluster.clusterDirectory + "/node\(k)/run/sync-test", withIntermediateDirectories: true)
                try cluster.write(
                    cluster.clusterDirectory + "/node\(k)/run/sync-test/local", "#!/bin/sh\nexec \(step) local\n",
                    mode: 0o755)
            }
            try cluster.write(rules(cluster, 1) + "/ping_0.rp", "all \"/run/sync-test/local\" 0 NULL\n")
            let partial = try cluster.cli("node1", ["sync"])
            #expect(partial.status == 1)
            #expect(partial.err.hasPrefix("hamn-events: sync: not taken by node3:\n"), "\(partial.err)")
            #expect(partial.err.contains("node3: kept its old rules: "), "\(partial.err)")
            #expect(partial.err.contains("/run/sync-test/local"), "\(partial.err)")
            #expect(!cluster.journal("node3", containing: "rules tree not taken, the old one stays").isEmpty)
            try ping(cluster, expecting: ["node1 local", "node2 local", "node3 new"])

            // The tree's cluster.yaml (the keys every node must agree on) travels with it: a 1 s
            // timeout for ping, in force on all three nodes after the sync. The step sleeps 5 s
            // first, so with the timeout no node records it.
            try cluster.write(rules(cluster, 1) + "/ping_0.rp", "all \"\(step) timed 5\" 0 NULL\n")
            try cluster.write(rules(cluster, 1) + "/cluster.yaml", "timeouts: {ping: 1s}\n")
            let timed = try cluster.cli("node1", ["sync"])
            #expect(timed.status == 0, "\(timed.err)")
            #expect(timed.out.split(separator: "\n").count == 3, "\(timed.out)")
            #expect(
                try String(contentsOfFile: rules(cluster, 3) + "/cluster.yaml", encoding: .utf8)
                    == "timeouts: {ping: 1s}\n")
            for node in names {
                #expect(
                    cluster.eventually(30) {
                        !cluster.journal(node, containing: "configuration reloaded: timeouts (sync from node1)").isEmpty
                    }, "\(node): \(cluster.engineLog(node))")
            }
            let before = cluster.steps().count
            #expect(try cluster.cli("node1", ["trigger", "ping"]).status == 0)
            for node in names {
                #expect(
                    cluster.eventually(30) {
                        cluster.journal(node, kind: "command", containing: "COMMAND: \(node) ").contains {
                            $0.contains("timed 5\" timed out")
                        }
                    }, "\(node): \(cluster.journal(node, kind: "command"))")
            }
            #expect(cluster.steps().count == before, "\(cluster.steps())")
        }
    }
}

extension SyncTests {
    @Test("crypto off (ns-cluster's own corosync.conf: crypto_cipher: none): refused at its line, nothing sent")
    func cryptoOff() throws {
        try withCluster(corosyncNodes: 1, nodes: ["node1"]) { cluster in
            let conf = cluster.clusterDirectory + "/node1/corosync.conf"
            let yaml = try prepare(cluster, 1, command: cluster.binDirectory + "/step old", conf: conf)
            try start(cluster, 1, yaml: yaml)
            #expect(cluster.eventually(60) { cluster.members("node1") == ["node1"] })
            let text = try String(contentsOfFile: conf, encoding: .utf8)
            let line = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex {
                $0.contains("crypto_cipher:")
            }.map { $0 + 1 }
            let refused = try cluster.cli("node1", ["sync"])
            #expect(refused.status == 1)
            #expect(
                refused.err
                    == "hamn-events: sync refused, nothing sent:\n\(conf):\(line ?? 0):20: crypto_cipher: none: sync sends commands that run as root on every node, so corosync must authenticate its traffic\n"
            )
            #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: rules(cluster, 1))) == nil)
        }
    }
}
