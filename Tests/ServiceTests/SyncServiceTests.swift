import Foundation
import TestSupport
import Testing

/// `hamn-events sync` on a one-node service (local transport): the tree written as a new
/// generation and reloaded through the cluster's order, the next event runs the new command;
/// `--rollback`; refusals before anything is sent (README, "sync"). The corosync cluster's
/// part (three nodes, a node that refuses, crypto) is Tests/CorosyncTests.
@Suite("sync", .serialized, .timeLimit(.minutes(1)))
struct SyncServiceTests {
    func link(_ harness: ServiceHarness) -> String? {
        try? FileManager.default.destinationOfSymbolicLink(atPath: harness.root + "/etc")
    }

    @Test("a changed .rp: written as a new generation, reloaded, the next event runs it; --rollback goes back")
    func changesRecoveryProgram() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([("one", 0, "all \"/bin/touch \(out)/old\" 0 NULL\n", nil)])
        try harness.start()
        // Nothing synced before: no way back yet.
        let early = try harness.cli(["sync", "--rollback"])
        #expect(
            early.err
                == "hamn-events: sync --rollback: not taken by n1:\nn1: kept its old rules: \(harness.root)/etc.previous.tree: no tree synced before the last one to go back to\n"
        )
        #expect(early.status == 1)
        // The tree as it is, synced first: the one to go back to.
        #expect(try harness.cli(["sync"]).status == 0)
        #expect(link(harness) == "etc.gen-1")
        // Changed on disk only: without sync the service keeps what it loaded.
        try harness.write(harness.root + "/etc/one_0.rp", "all \"/bin/touch \(out)/new\" 0 NULL\n")
        let synced = try harness.cli(["sync"])
        #expect(synced.status == 0, "\(synced.err)")
        #expect(synced.out.hasPrefix("n1: took the tree "), "\(synced.out)")
        #expect(link(harness) == "etc.gen-2")
        #expect(FileManager.default.fileExists(atPath: harness.root + "/etc.gen-0/one_0.rp"), "the first tree kept")
        try harness.waitForOutput("rules reloaded: 1 definitions (sync from n1)")
        let digest = synced.out.dropFirst("n1: took the tree ".count).prefix(12)
        try harness.waitForStatus("rules tree: \(digest), the same on every member")
        #expect(try harness.cli(["trigger", "one"]).status == 0)
        #expect(harness.eventually { harness.read("new") != nil }, "the new command ran")
        #expect(harness.read("old") == nil)

        let back = try harness.cli(["sync", "--rollback"])
        #expect(back.status == 0, "\(back.err)")
        #expect(link(harness) == "etc.gen-3")
        try harness.waitForOutput("rules reloaded: 1 definitions (sync --rollback from n1)")
        #expect(try harness.cli(["trigger", "one"]).status == 0)
        #expect(harness.eventually { harness.read("old") != nil }, "the old command ran again")
    }

    @Test("refused before sending: a group-writable file, rules with errors; the tree stays as it was")
    func refusals() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("one", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        try harness.start()
        try harness.write(harness.root + "/etc/notes", "x\n", mode: 0o664)
        let writable = try harness.cli(["sync"])
        #expect(writable.status == 1)
        #expect(
            writable.err
                == "hamn-events: sync refused, nothing sent:\n\(harness.root)/etc/notes: writable by group or others (mode 0664)\n"
        )
        chmod(harness.root + "/etc/notes", 0o644)
        try harness.write(harness.root + "/etc/one_0.rp", "all \"/bin/true\" 0 NULL\nnowhere \"/bin/true\" 0 NULL\n")
        let broken = try harness.cli(["sync"])
        #expect(broken.status == 1)
        #expect(broken.err.contains("\(harness.root)/etc/one_0.rp:2:"), "\(broken.err)")
        #expect(link(harness) == nil, "nothing written")
    }

    @Test("a .rp file outside the rules file's directory: refused at its line in the rules file")
    func programOutsideTree() throws {
        let harness = try ServiceHarness(definitions: [])
        let outside = harness.root + "/bin/one_0.rp"
        try harness.write(outside, "all \"/bin/true\" 0 NULL\n")
        try harness.write(harness.rulesPath, "one\n0\n\(outside)\n2\n0\n\n\n\n\n")
        try harness.start()
        let refused = try harness.cli(["sync"])
        #expect(refused.status == 1)
        #expect(
            refused.err
                == "hamn-events: sync refused, nothing sent:\n\(harness.rulesPath):3:1: recovery program \(outside) is outside the tree \(harness.root)/etc: sync sends the files under it only\n"
        )
    }
}

/// The tree's `cluster.yaml` (the keys every node must agree on) travels with it and is in
/// force after the sync; one that conflicts with a node's `hamn.yaml` is refused there.
extension SyncServiceTests {
    @Test("cluster.yaml in the tree: its timeouts and priorities are in force after the sync")
    func clusterFile() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("slow", 0, "all \"/bin/sleep 30\" 0 NULL\n", nil)])
        try harness.start()
        try harness.write(harness.root + "/etc/cluster.yaml", "priorities: {slow: 7}\ntimeouts: {slow: 1s}\n")
        let synced = try harness.cli(["sync"])
        #expect(synced.status == 0, "\(synced.err)")
        try harness.waitForOutput("configuration reloaded: priorities, timeouts (sync from n1)")
        #expect(try harness.cli(["trigger", "slow"]).status == 0)
        // Without the synced timeout the command would sleep 30 s.
        try harness.waitForFailure(of: "slow state 0")
    }

    @Test("cluster.yaml setting a key hamn.yaml sets too: refused by the node asked, nothing sent")
    func clusterFileConflictRefusedFirst() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("one", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        try harness.start()
        try harness.write(harness.root + "/etc/cluster.yaml", "config_too_long: 100s\n")
        let refused = try harness.cli(["sync"])
        #expect(refused.status == 1)
        #expect(
            refused.err
                == "hamn-events: sync refused, nothing sent:\n\(harness.root)/etc/cluster.yaml:1:1: error: config_too_long is set here and in \(harness.configPath):5:1: a key every node must agree on is set in one of them (here, for the whole cluster)\n"
        )
        #expect(link(harness) == nil, "nothing written")
        // The commands find the socket from hamn.yaml alone: the conflict does not lock them out.
        let status = try runTool(ServiceHarness.binary, ["status", "--config", harness.configPath])
        #expect(status.status == 0 && status.out.hasPrefix("node n1 (1)"), "\(status.err)")
        let viaConfig = try runTool(ServiceHarness.binary, ["sync", "--config", harness.configPath])
        #expect(viaConfig.err == refused.err)
    }

    @Test("a tree whose cluster.yaml conflicts with the node's hamn.yaml: the node keeps its old tree and says why")
    func clusterFileConflictOnTheNode() throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "queue_limit: 1000")
        try harness.writeRules([("one", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        try harness.start()
        // Tree 1 sets priorities in cluster.yaml; tree 2 has no cluster.yaml.
        try harness.write(harness.root + "/etc/cluster.yaml", "priorities: {one: 7}\n")
        #expect(try harness.cli(["sync"]).status == 0)
        try harness.waitForOutput("configuration reloaded: priorities (sync from n1)")
        #expect(unlink(harness.root + "/etc/cluster.yaml") == 0)
        #expect(try harness.cli(["sync"]).status == 0)
        #expect(link(harness) == "etc.gen-2")
        // hamn.yaml sets priorities now (taken up by SIGHUP: no conflict with tree 2).
        let text = try String(contentsOfFile: harness.configPath, encoding: .utf8)
        try harness.write(
            harness.configPath,
            text.replacingOccurrences(of: "queue_limit: 1000", with: "queue_limit: 1000\npriorities: {one: 3}"))
        harness.signal(SIGHUP)
        try harness.waitForOutput("configuration reloaded: priorities (SIGHUP)")
        // Back to tree 1 (--rollback sends no files: only the node checks it): its cluster.yaml
        // sets priorities too, so the node keeps tree 2.
        let back = try harness.cli(["sync", "--rollback"])
        #expect(back.status == 1)
        #expect(
            back.err
                == "hamn-events: sync --rollback: not taken by n1:\nn1: kept its old rules: \(harness.root)/etc/cluster.yaml:1:1: error: priorities is set here and in \(harness.configPath):7:1: a key every node must agree on is set in one of them (here, for the whole cluster); the configuration with this tree: the old tree stays\n"
        )
        #expect(link(harness) == "etc.gen-2")
        #expect(!FileManager.default.fileExists(atPath: harness.root + "/etc/cluster.yaml"))
        try harness.waitForOutput("rules tree not taken, the old one stays: ")
    }
}
