import Foundation
import HamnConfiguration
import RulesEngine
import Testing

@Suite("configuration reload")
struct ConfigurationReloadTests {
    let defaults = ConfigurationLoader.Defaults(
        hostName: "host", rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil, stateDirectory: "/var/lib/h",
        runtimeDirectory: "/run/h", corosyncConf: "/nonexistent/corosync.conf")

    func parse(_ text: String) throws -> ServiceConfiguration {
        try ConfigurationLoader.parse(text, file: "hamn.yaml", defaults: defaults)
    }

    /// Each key: the file before, the file after.
    static let live: [(key: String, old: String, new: String)] = [
        ("rules", "rules: /r1/rules.hacmprd", "rules: /r2/rules.hacmprd"),
        ("rules_root", "rules_root: /a", "rules_root: /b"),
        ("event_scripts", "event_scripts: /a", "event_scripts: /b"),
        ("priorities", "priorities: {e: 1}", "priorities: {e: 2}"),
        ("timeouts", "timeouts: {e: 5s}", "timeouts: {e: 6s}"),
        ("timeouts", "timeouts: {default: 5s}", "timeouts: {default: 6s}"),
        ("config_too_long", "config_too_long: 10s", "config_too_long: 20s"),
        ("start_command", "start_command: /bin/a", "start_command: /bin/b"),
        ("networks", "networks: [eth0]", "networks: [eth1]"),
        ("network_interval", "network_interval: 3s", "network_interval: 4s"),
        ("monitors", "monitors: [{variable: X, interval: 5s}]", "monitors: [{variable: X, interval: 6s}]"),
        ("default_interval", "default_interval: 3s", "default_interval: 4s"),
        ("variables", "variables: [{name: V, command: /bin/a}]", "variables: [{name: V, command: /bin/b}]"),
        (
            "variables", "variables: [{name: V, command: /bin/a}]",
            "variables: [{name: V, command: /bin/a, timeout: 3s}]"
        ),
        (
            "fencing", "fencing: {attempts: 2, devices: {host: {agent: /usr/sbin/fence_x}}}",
            "fencing: {attempts: 2, devices: {host: {agent: /usr/sbin/fence_x, delay: 5s}}}"
        ),
        ("fencing", "fencing: none", "fencing: {devices: {host: {agent: /usr/sbin/fence_x}}}"),
        ("queue_limit", "queue_limit: 10", "queue_limit: 20"),
    ]

    static let restart: [(key: String, old: String, new: String)] = [
        ("node", "nodes: [host, b]\nnode: host", "nodes: [host, b]\nnode: b"),
        ("nodes", "nodes: [host, b]", "nodes: [host, c]"),
        ("transport", "transport: local", "transport: corosync"),
        ("journal", "journal: /j1", "journal: /j2"),
        ("socket", "socket: /s1", "socket: /s2"),
        ("control_connections", "control_connections: 5", "control_connections: 6"),
        ("corosync.group", "corosync: {group: g1}", "corosync: {group: g2}"),
        ("corosync.form_timeout", "corosync: {form_timeout: 1s}", "corosync: {form_timeout: 2s}"),
        ("corosync.realtime", "corosync: {realtime: true}", "corosync: {realtime: false}"),
        ("stop.mode", "stop: {mode: graceful}", "stop: {mode: takeover}"),
        ("stop.timeout", "stop: {timeout: 10s}", "stop: {timeout: 20s}"),
        ("no_quorum_policy", "no_quorum_policy: freeze", "no_quorum_policy: stop"),
    ]

    @Test("a live key: taken up, reported as applied, nothing needs a restart", arguments: 0..<live.count)
    func liveKey(_ index: Int) throws {
        let (key, oldText, newText) = Self.live[index]
        let (old, new) = (try parse(oldText), try parse(newText))
        let reload = ConfigurationReload(from: old, to: new)
        #expect(reload.applied == [key])
        #expect(reload.needsRestart == [])
        // The result is the new file: nothing is left to change.
        #expect(ConfigurationReload(from: reload.configuration, to: new).isEmpty)
        #expect(!ConfigurationReload(from: reload.configuration, to: old).isEmpty)
    }

    @Test("a key that needs a restart: named, and the old value stays", arguments: 0..<restart.count)
    func restartKey(_ index: Int) throws {
        let (key, oldText, newText) = Self.restart[index]
        let (old, new) = (try parse(oldText), try parse(newText))
        let reload = ConfigurationReload(from: old, to: new)
        #expect(reload.needsRestart == [key])
        #expect(reload.applied == [])
        // The result is the old configuration.
        #expect(ConfigurationReload(from: reload.configuration, to: old).isEmpty)
    }

    @Test("the watchdog needs a restart (its device was opened at start)")
    func watchdog() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("reload-\(getpid())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for name in ["w1", "w2"] {
            let path = directory.appendingPathComponent(name).path
            #expect(FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]))
        }
        let old = try parse("watchdog: {device: \(directory.path)/w1}")
        let new = try parse("watchdog: {device: \(directory.path)/w2}")
        let reload = ConfigurationReload(from: old, to: new)
        #expect(reload.needsRestart == ["watchdog"])
        #expect(reload.configuration.watchdog == old.watchdog)
    }

    @Test("live and restart keys at once: each in its list, in order; the same file changes nothing")
    func mixed() throws {
        let old = try parse("nodes: [host, b]\nqueue_limit: 10\njournal: /j1\nmonitors: [{variable: X, interval: 5s}]")
        let new = try parse("nodes: [host, c]\nqueue_limit: 20\njournal: /j2\nmonitors: [{variable: X, interval: 6s}]")
        let reload = ConfigurationReload(from: old, to: new)
        #expect(reload.applied == ["monitors", "queue_limit"])
        #expect(reload.needsRestart == ["nodes", "journal"])
        #expect(reload.configuration.queueLimit == 20)
        #expect(reload.configuration.monitors == new.monitors)
        #expect(reload.configuration.journal == "/j1")
        #expect(reload.configuration.nodes == old.nodes)
        #expect(
            ConfigurationReload(
                from: old,
                to: try parse(
                    "nodes: [host, b]\nqueue_limit: 10\njournal: /j1\nmonitors: [{variable: X, interval: 5s}]")
            ).isEmpty)
    }

    @Test("every key of the file is classified (a new key must be added to one list)")
    func everyKeyClassified() {
        let classified = Set(
            (ConfigurationReload.liveKeys + ConfigurationReload.restartKeys).map {
                String($0.split(separator: ".").first!)
            })
        #expect(classified == ConfigurationLoader.keys)
        #expect(Set(ConfigurationReload.liveKeys).isDisjoint(with: ConfigurationReload.restartKeys))
    }

    @Test("a key that needs a restart is named at its value's line and column; a key removed, at the file's start")
    func positions() {
        let text = "queue_limit: 5\ncorosync:\n  group: g2\nnode:   b\n"
        #expect(ConfigurationLoader.position(of: "node", in: text, file: "/e/h.yaml") == "/e/h.yaml:4:9")
        #expect(ConfigurationLoader.position(of: "corosync.group", in: text, file: "/e/h.yaml") == "/e/h.yaml:3:10")
        #expect(ConfigurationLoader.position(of: "journal", in: text, file: "/e/h.yaml") == "/e/h.yaml:1:1")
    }
}
