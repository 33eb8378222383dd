import Foundation
import HamnConfiguration
import RulesEngine
import Testing

/// The cluster-wide file (`cluster.yaml` beside the rules file, carried by `sync`): read after
/// `hamn.yaml`, it may set the keys every node must agree on only, and none that `hamn.yaml`
/// sets too (README, "sync").
@Suite("cluster-wide file")
struct ClusterFileTests {
    /// A directory with `hamn.yaml` and `rules/` (the rules tree); removed at the end.
    final class Directory {
        let root: String
        var rules: String { root + "/rules" }
        var configuration: String { root + "/hamn.yaml" }
        var cluster: String { rules + "/cluster.yaml" }

        init() throws {
            var template = Array((NSTemporaryDirectory() + "hamn-cluster-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            root = String(cString: made)
            try FileManager.default.createDirectory(atPath: rules, withIntermediateDirectories: true)
        }

        deinit { try? FileManager.default.removeItem(atPath: root) }

        func write(_ path: String, _ text: String) throws {
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        }

        var defaults: ConfigurationLoader.Defaults {
            ConfigurationLoader.Defaults(
                hostName: "a", rules: rules + "/rules.hacmprd", rulesRoot: nil, stateDirectory: "/var/lib/h",
                runtimeDirectory: "/run/h", corosyncConf: "/nonexistent/corosync.conf")
        }

        /// `hamn.yaml` (`text`) parsed as `run` reads it.
        func parse(_ text: String) throws -> ServiceConfiguration {
            try ConfigurationLoader.parse(text, file: configuration, defaults: defaults)
        }

        /// The error `hamn.yaml` (`text`) is refused with, with the cluster file as it is.
        func error(_ text: String) -> String? {
            do {
                _ = try parse(text)
                return nil
            } catch {
                return "\(error)"
            }
        }
    }

    @Test(
        "the keys every node must agree on, read from cluster.yaml beside the rules; fencing checked against hamn.yaml's nodes"
    )
    func clusterKeysRead() throws {
        let directory = try Directory()
        try directory.write(
            directory.cluster,
            """
            priorities: {db2_paging: 15}
            timeouts: {default: 30m, db2_paging: 10s}
            config_too_long: 2m
            no_quorum_policy: stop
            fencing:
              devices:
                a: {agent: /usr/sbin/fence_a}
                b: {agent: /usr/sbin/fence_b}
            """)
        let configuration = try directory.parse("nodes: [a, b]\nqueue_limit: 50\n")
        #expect(configuration.clusterFile == directory.cluster)
        #expect(configuration.priorities == ["db2_paging": 15])
        #expect(configuration.defaultTimeout == 1800 && configuration.timeouts == ["db2_paging": 10])
        #expect(configuration.configTooLong == 120)
        #expect(configuration.noQuorumPolicy == .stop(delay: NoQuorumPolicy.defaultStopDelay))
        #expect(configuration.queueLimit == 50)
        guard case .devices(let devices, _, _) = configuration.fencing else {
            Issue.record("fencing: \(configuration.fencing)")
            return
        }
        #expect(devices.keys.sorted() == ["a", "b"])
        // A device for a node hamn.yaml does not name: an error in cluster.yaml, at its line.
        try directory.write(directory.cluster, "fencing:\n  devices:\n    c: {agent: /usr/sbin/fence_c}\n")
        #expect(
            directory.error("nodes: [a, b]\n")
                == "\(directory.cluster):3:8: error: fencing.devices.c: 'c' is not among the nodes (a, b)")
        // An empty hamn.yaml: the cluster file is read all the same.
        try directory.write(directory.cluster, "config_too_long: 90s\n")
        #expect(try directory.parse("").configTooLong == 90)
    }

    @Test("no cluster.yaml: hamn.yaml alone, as before")
    func absent() throws {
        let directory = try Directory()
        let text = "priorities: {x: 3}\nconfig_too_long: 10s\n"
        let configuration = try directory.parse(text)
        #expect(configuration.clusterFile == nil)
        #expect(configuration.priorities == ["x": 3] && configuration.configTooLong == 10)
        // An empty one sets nothing.
        try directory.write(directory.cluster, "")
        let empty = try directory.parse(text)
        #expect(empty.clusterFile == directory.cluster)
        #expect(empty.priorities == ["x": 3] && empty.configTooLong == 10)
    }

    @Test("a key set in both files: an error naming both places")
    func conflict() throws {
        let directory = try Directory()
        try directory.write(directory.cluster, "# every node\ntimeouts: {x: 5s}\n  \npriorities:\n  x: 4\n")
        #expect(
            directory.error("queue_limit: 5\npriorities: {x: 3}\n")
                == "\(directory.cluster):4:1: error: priorities is set here and in \(directory.configuration):2:1: a key every node must agree on is set in one of them (here, for the whole cluster)"
        )
    }

    @Test("a node's own key, or an unknown key, in cluster.yaml: an error at its place")
    func nodeSpecificKey() throws {
        let directory = try Directory()
        for (key, value) in [
            ("journal", "/var/lib/x.sqlite"), ("node", "a"), ("transport", "corosync"), ("corosync", "{group: g}"),
            ("socket", "/run/x.sock"), ("rules", "/etc/r"), ("nodes", "[a, b]"), ("stop", "{mode: takeover}"),
        ] {
            try directory.write(directory.cluster, "priorities: {x: 1}\n\(key): \(value)\n")
            #expect(
                directory.error("queue_limit: 5\n")
                    == "\(directory.cluster):2:1: error: \(key) is this node's own: set it in each node's configuration, not in cluster.yaml (it holds: config_too_long, fencing, no_quorum_policy, priorities, timeouts)"
            )
        }
        try directory.write(directory.cluster, "prioritys: {x: 1}\n")
        #expect(
            directory.error("")
                == "\(directory.cluster):1:1: error: unknown key 'prioritys' (a cluster-wide file holds: config_too_long, fencing, no_quorum_policy, priorities, timeouts)"
        )
        // A wrong value: at its place in cluster.yaml.
        try directory.write(directory.cluster, "config_too_long: 0\n")
        #expect(directory.error("") == "\(directory.cluster):1:18: error: config_too_long: must be above 0")
        try directory.write(directory.cluster, "- a\n")
        #expect(directory.error("") == "\(directory.cluster):1:1: error: expected a mapping of keys")
    }

    @Test("a reload: the cluster file's keys taken up, a restart key named where cluster.yaml sets it")
    func reload() throws {
        let directory = try Directory()
        let source = ConfigurationSource(path: directory.configuration, defaults: directory.defaults)
        try directory.write(directory.configuration, "queue_limit: 5\n")
        let running = try source.load().get().configuration
        try directory.write(directory.cluster, "priorities: {x: 2}\n\nno_quorum_policy: stop\n")
        let loaded = try source.load().get()
        let reload = ConfigurationReload(from: running, to: loaded.configuration)
        #expect(reload.applied == ["priorities"])
        #expect(reload.needsRestart == ["no_quorum_policy"])
        #expect(reload.configuration.priorities == ["x": 2])
        #expect(reload.configuration.clusterFile == directory.cluster)
        #expect(loaded.position("no_quorum_policy") == "\(directory.cluster):3:19")
        #expect(loaded.position("journal") == "\(directory.configuration):1:1")
        // A conflict: the whole load refused, naming both files.
        try directory.write(directory.configuration, "queue_limit: 5\nno_quorum_policy: freeze\n")
        guard case .failure(let error) = source.load() else {
            Issue.record("loaded with a conflict")
            return
        }
        #expect(
            "\(error)".hasPrefix(
                "\(directory.cluster):3:1: error: no_quorum_policy is set here and in \(directory.configuration):2:1:"))
    }

    @Test("the cluster keys are keys of the file, and the file beside the rules is cluster.yaml")
    func keys() {
        #expect(ConfigurationLoader.clusterKeys.isSubset(of: ConfigurationLoader.keys))
        #expect(
            ConfigurationLoader.clusterFile(rules: "/etc/hamn/rules/rules.hacmprd") == "/etc/hamn/rules/cluster.yaml")
        #expect(ConfigurationLoader.clusterFile(rules: "rules.hacmprd") == "cluster.yaml")
    }
}
