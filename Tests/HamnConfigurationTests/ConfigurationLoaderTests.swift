import Foundation
import HamnConfiguration
import RulesEngine
import RulesParser
import Testing

@Suite("configuration")
struct ConfigurationLoaderTests {
    let defaults = ConfigurationLoader.Defaults(
        hostName: "host", rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil, stateDirectory: "/var/lib/h",
        runtimeDirectory: "/run/h", corosyncConf: "/nonexistent/corosync.conf")

    @Test("the socket's directory: never a fixed name in /tmp for a user without XDG_RUNTIME_DIR")
    func runtimeDirectory() {
        typealias Defaults = ConfigurationLoader.Defaults
        #expect(
            Defaults.runtimeDirectory(user: 0, runtimeDirectory: "/run/user/0", stateDirectory: "/s", ownsRunUser: true)
                == "/run/hamn-events")
        #expect(
            Defaults.runtimeDirectory(user: 1000, runtimeDirectory: "/x", stateDirectory: "/s", ownsRunUser: true)
                == "/x/hamn-events")
        #expect(
            Defaults.runtimeDirectory(user: 1000, runtimeDirectory: nil, stateDirectory: "/s", ownsRunUser: true)
                == "/run/user/1000/hamn-events")
        #expect(
            Defaults.runtimeDirectory(
                user: 1000, runtimeDirectory: nil, stateDirectory: "/home/u/.local/state/hamn-events",
                ownsRunUser: false)
                == "/home/u/.local/state/hamn-events/run")
    }

    @Test("no file: the embedded default")
    func embedded() throws {
        let configuration = try ConfigurationLoader.parse("", file: "c.yaml", defaults: defaults)
        #expect(configuration.node == ClusterNode(name: "host", number: 1))
        #expect(configuration.nodes == [configuration.node])
        #expect(configuration.journal == "/var/lib/h/journal.sqlite")
        #expect(configuration.socket == "/run/h/control.sock")
        #expect(configuration.configTooLong == 360)
        #expect(configuration.queueLimit == 1000)
        #expect(configuration.realtime)
        #expect(configuration.stopMode == .graceful && configuration.stopTimeout == 300)
    }

    @Test("every key read, and configured variables typed for the rules")
    func full() throws {
        let configuration = try ConfigurationLoader.parse(
            """
            node: b
            nodes: [a, b]
            event_scripts: /etc/hamn/events
            priorities: {db2_paging: 15}
            timeouts: {default: 30m, db2_paging: 10s}
            config_too_long: 2m
            queue_limit: 50
            networks: [eth1]
            transport: corosync
            corosync: {group: site-a, form_timeout: 2s, realtime: false}
            stop: {mode: takeover, timeout: 10m}
            variables:
              - name: Site.Queue.Depth
                command: /usr/local/sbin/queue-depth
                interval: 30s
              - name: Site.App
                command: /usr/local/sbin/app
                parser: fields
                fields: {Status: string, Clients: number}
                instance: [App, NodeNum]
            """, file: "c.yaml", defaults: defaults)
        #expect(configuration.node == ClusterNode(name: "b", number: 2))
        #expect(configuration.eventScripts == "/etc/hamn/events")
        #expect(configuration.priorities == ["db2_paging": 15])
        #expect(configuration.defaultTimeout == 1800 && configuration.timeouts == ["db2_paging": 10])
        #expect(configuration.configTooLong == 120)
        #expect(configuration.queueLimit == 50)
        #expect(configuration.networks == ["eth1"])
        #expect(configuration.transport == .corosync && configuration.corosyncGroup == "site-a")
        #expect(configuration.formTimeout == 2 && configuration.realtime == false)
        #expect(configuration.stopMode == .takeover && configuration.stopTimeout == 600)
        let variables = configuration.resourceVariables
        #expect(variables.map(\.name) == ["Site.Queue.Depth", "Site.App"])
        try #require(variables.count == 2)
        #expect(variables[0].kind == .scalar(.number))
        #expect(variables[1].kind == .structured([.init("Status", .string), .init("Clients", .number)]))
        #expect(variables[1].instanceElements == ["App", "NodeNum"])
    }

    @Test("fencing: devices per node, attempts, and the warning a Corosync cluster without them gets")
    func fencing() throws {
        let text = """
            nodes: [aixmn1, aixmn2]
            node: aixmn2
            transport: corosync
            fencing:
              attempts: 5
              join_window: 45s
              devices:
                aixmn1:
                  agent: /usr/sbin/fence_ipmilan
                  options: {ip: 10.0.0.11, username: admin, lanplus: 1}
                  password_file: /etc/hamn/fence/aixmn1.pass
                  timeout: 90s
                  delay: 10s
                aixmn2: {agent: /usr/sbin/fence_ipmilan, options: {ip: 10.0.0.12}, action: off, delay_max: 5s}
            """
        let configuration = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
        guard case .devices(let devices, let attempts, _) = configuration.fencing else {
            Issue.record("no devices: \(configuration.fencing)")
            return
        }
        #expect(attempts == 5)
        let first = try #require(devices["aixmn1"])
        #expect(first.agent == "/usr/sbin/fence_ipmilan" && first.action == "reboot")
        #expect(first.options == ["ip": "10.0.0.11", "username": "admin", "lanplus": "1"])
        #expect(first.passwordFile == "/etc/hamn/fence/aixmn1.pass" && first.timeout == 90 && first.delay == 10)
        #expect(devices["aixmn2"]?.action == "off" && devices["aixmn2"]?.delayMax == 5)
        #expect(
            configuration.fencingPolicy
                == FencingPolicy(enabled: true, attempts: 5, nodes: configuration.nodes, window: 45))
        #expect(configuration.fencingWarning == nil)

        let unprotected = try ConfigurationLoader.parse("transport: corosync\n", file: "c.yaml", defaults: defaults)
        #expect(unprotected.fencingPolicy == .none)
        #expect(unprotected.fencingWarning?.hasPrefix("no fence devices: a node that fails is taken over") == true)
        let accepted = try ConfigurationLoader.parse(
            "transport: corosync\nfencing: none\n", file: "c.yaml", defaults: defaults)
        #expect(accepted.fencing == .none && accepted.fencingWarning == nil)
        // The embedded single-node default needs nothing and says nothing.
        #expect(try ConfigurationLoader.parse("", file: "c.yaml", defaults: defaults).fencingWarning == nil)
    }

    @Test("no_quorum_policy: freeze by default, stop with its delay; errors at their line and column")
    func noQuorumPolicy() throws {
        #expect(try ConfigurationLoader.parse("", file: "c.yaml", defaults: defaults).noQuorumPolicy == .freeze)
        let stop = try ConfigurationLoader.parse("no_quorum_policy: stop\n", file: "c.yaml", defaults: defaults)
        #expect(stop.noQuorumPolicy == .stop(delay: 5))
        let delayed = try ConfigurationLoader.parse(
            "no_quorum_policy:\n  action: stop\n  delay: 30s\n", file: "c.yaml", defaults: defaults)
        #expect(delayed.noQuorumPolicy == .stop(delay: 30))
        for (text, expected) in [
            (
                "no_quorum_policy: ignore\n",
                "c.yaml:1:19: error: no_quorum_policy: expected freeze (run nothing new without quorum) or stop (run TE_QUORUM_LOST), not 'ignore'"
            ),
            (
                "no_quorum_policy:\n  action: stop\n  delay: 2h\n",
                "c.yaml:3:10: error: no_quorum_policy.delay: the delay must be from 0s to 1h (3600s)"
            ),
            (
                "no_quorum_policy:\n  delay: 5s\n",
                "c.yaml:2:3: error: no_quorum_policy: missing key 'action' (freeze or stop)"
            ),
            (
                "no_quorum_policy:\n  action: stop\n  after: 5s\n",
                "c.yaml:3:3: error: no_quorum_policy: unknown key 'after' (expected one of: action, delay)"
            ),
        ] {
            #expect(throws: (any Error).self) {
                try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
            }
            do {
                _ = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
            } catch {
                #expect(error.description == expected)
            }
        }
    }

    @Test("http: on by default at 127.0.0.1:9665; address, port, enabled; errors at their line and column")
    func http() throws {
        #expect(
            try ConfigurationLoader.parse("", file: "c.yaml", defaults: defaults).http
                == ServiceConfiguration.HTTP(address: "127.0.0.1", port: 9665))
        let set = try ConfigurationLoader.parse(
            "http:\n  address: '::1'\n  port: 0\n", file: "c.yaml", defaults: defaults)
        #expect(set.http == ServiceConfiguration.HTTP(address: "::1", port: 0))
        #expect(
            try ConfigurationLoader.parse("http: {enabled: false}\n", file: "c.yaml", defaults: defaults).http == nil)
        for (text, expected) in [
            (
                "http:\n  port: 70000\n",
                "c.yaml:2:9: error: http.port: a port from 0 to 65535, not 70000"
            ),
            (
                "http:\n  address: example.org\n",
                "c.yaml:2:12: error: http.address: an IPv4 or IPv6 address (127.0.0.1, ::1, 0.0.0.0), not 'example.org'"
            ),
            (
                "http: {listen: 1}\n",
                "c.yaml:1:8: error: http: unknown key 'listen' (expected one of: address, enabled, port)"
            ),
        ] {
            do {
                _ = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
                Issue.record("accepted: \(text)")
            } catch {
                #expect(error.description == expected)
            }
        }
    }

    @Test("watchdog: a stand-in owned by this user and writable by it only; what is refused, and why, at file:line:col")
    func watchdog() throws {
        let directory = NSTemporaryDirectory() + "hamn-wd-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let file = directory + "/feed"
        FileManager.default.createFile(atPath: file, contents: nil)
        chmod(file, 0o600)
        let fifo = directory + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        let shared = directory + "/shared"
        FileManager.default.createFile(atPath: shared, contents: nil)
        chmod(shared, 0o622)
        let link = directory + "/link"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: file)

        let configuration = try ConfigurationLoader.parse(
            "watchdog:\n  device: \(file)\n  timeout: 8s\n", file: "c.yaml", defaults: defaults)
        #expect(configuration.watchdog == .init(device: file, timeout: 8))
        #expect(configuration.watchdog?.interval == 2)
        #expect(
            try ConfigurationLoader.parse("watchdog: {device: \(fifo)}\n", file: "c.yaml", defaults: defaults).watchdog
                == .init(device: fifo, timeout: 10))
        #expect(try ConfigurationLoader.parse("", file: "c.yaml", defaults: defaults).watchdog == nil)
        let column = 11  // after "  device: "
        for (text, expected) in [
            (
                "watchdog:\n  device: \(shared)\n",
                "c.yaml:2:\(column): error: watchdog.device: others can write \(shared): a stand-in watchdog must be writable by its owner only"
            ),
            (
                "watchdog:\n  device: \(link)\n",
                "c.yaml:2:\(column): error: watchdog.device: \(link) is a symbolic link: name the watchdog device itself"
            ),
            (
                "watchdog:\n  device: \(directory)\n",
                "c.yaml:2:\(column): error: watchdog.device: \(directory) is not a watchdog: expected /dev/watchdog[N] (a character device), or a FIFO or regular file as a stand-in"
            ),
            (
                "watchdog:\n  device: /dev/null\n",
                "c.yaml:2:\(column): error: watchdog.device: /dev/null is a character device but not a watchdog (only /dev/watchdog and /dev/watchdogN are fed)"
            ),
            (
                "watchdog:\n  device: \(directory)/missing\n",
                "c.yaml:2:\(column): error: watchdog.device: cannot use the watchdog device \(directory)/missing: No such file or directory"
            ),
            (
                "watchdog:\n  device: dev/watchdog\n",
                "c.yaml:2:\(column): error: watchdog.device: the watchdog device's absolute path, e.g. /dev/watchdog"
            ),
            (
                "watchdog:\n  device: \(file)\n  timeout: 1s\n",
                "c.yaml:3:12: error: watchdog.timeout: the timeout must be from 2s to 1h"
            ),
            ("watchdog:\n  timeout: 10s\n", "c.yaml:2:3: error: watchdog: missing key 'device' (e.g. /dev/watchdog)"),
        ] {
            do {
                _ = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
                Issue.record("no error for \(text)")
            } catch {
                #expect(error.description == expected)
            }
        }
    }

    @Test(
        "unknown keys and wrong types name the key and the line",
        arguments: [
            ("speed: 3\n", "c.yaml:1:1: error: unknown key 'speed'"),
            ("config_too_long: soon\n", "c.yaml:1:18: error: config_too_long: expected a duration"),
            ("queue_limit: 0\n", "c.yaml:1:14: error: queue_limit: must be 1 to 1000000"),
            ("queue_limit: many\n", "c.yaml:1:14: error: queue_limit: expected a whole number"),
            (
                "variables:\n  - name: A\n    command: /bin/a\n    parser: xml\n",
                "c.yaml:4:13: error: variables[0].parser: expected one of"
            ),
            (
                "variables:\n  - name: A\n    command: relative\n",
                "c.yaml:2:5: error: variables[0]: variable A: command must start with an absolute path"
            ),
            ("node: z\nnodes: [a, b]\n", "c.yaml:1:7: error: node: this node, 'z', is not among the nodes"),
            ("transport: carrier-pigeon\n", "c.yaml:1:12: error: transport: expected local or corosync"),
            ("corosync:\n  realtime: sometimes\n", "c.yaml:2:13: error: corosync.realtime: expected"),
            (
                "stop:\n  mode: gentle\n",
                "c.yaml:2:9: error: stop.mode: expected graceful (TE_FAIL_NODE state 1) or takeover (state 2), not 'gentle'"
            ),
            ("stop:\n  mode: forced\n", "c.yaml:2:9: error: stop.mode: forced is for ha-cmd FORCE only"),
            ("stop:\n  timeout: 0s\n", "c.yaml:2:12: error: stop.timeout: must be above 0 and at most 1d (86400s)"),
            ("stop:\n  timeout: 2d\n", "c.yaml:2:12: error: stop.timeout: must be above 0 and at most 1d (86400s)"),
            ("stop:\n  mode: graceful\n  timeout: -5s\n", "c.yaml:3:12: error: stop.timeout: expected a duration"),
            ("stop:\n  grace: 5m\n", "c.yaml:2:3: error: stop: unknown key 'grace'"),
            ("stop: graceful\n", "c.yaml:1:7: error: stop: expected"),
            ("fencing: maybe\n", "c.yaml:1:10: error: fencing: expected none, or a mapping with devices"),
            (
                "fencing:\n  attempts: 2\n",
                "c.yaml:2:3: error: fencing: no devices: give a fence device per node, or write fencing: none"
            ),
            (
                "nodes: [a, b]\nnode: a\nfencing:\n  devices:\n    c: {agent: /usr/sbin/fence_x}\n",
                "c.yaml:5:8: error: fencing.devices.c: 'c' is not among the nodes (a, b)"
            ),
            (
                "nodes: [a]\nnode: a\nfencing:\n  devices:\n    a: {agent: fence_x}\n",
                "c.yaml:5:16: error: fencing.devices.a.agent: the agent's absolute path"
            ),
            (
                "nodes: [a]\nnode: a\nfencing:\n  devices:\n    a: {agent: /f, options: {password: s3cret}}\n",
                "c.yaml:5:40: error: fencing.devices.a.options.password: no password in the configuration: put it in password_file"
            ),
            (
                "nodes: [a]\nnode: a\nfencing:\n  devices:\n    a: {agent: /f, options: {\"ip\\nport\": 1}}\n",
                "c.yaml:5:42: error: fencing.devices.a.options.ip\nport: option names are letters"
            ),
            (
                "nodes: [a]\nnode: a\nfencing:\n  devices:\n    a: {agent: /f, action: on}\n",
                "c.yaml:5:28: error: fencing.devices.a.action: reboot or off"
            ),
            (
                "nodes: [a]\nnode: a\nfencing:\n  devices:\n    a: {agent: /f, options: {ip: \"1\\naction=on\"}}\n",
                "c.yaml:5:34: error: fencing.devices.a.options.ip: a value on one line"
            ),
        ])
    func errors(_ text: String, _ expected: String) {
        do {
            _ = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
            Issue.record("no error for \(text)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }
}

/// The configurations shipped with the samples: they load, and every node has a fence device
/// (the xCAT HAMN document's section 8 step 2: the failed node is powered off at its BMC first).
@Suite("shipped samples' hamn.yaml")
struct SampleConfigurationTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test(
        "each loads, transport corosync, a fence_ipmilan device per node with a password file",
        arguments: ["samples/xcat-hamn/etc/hamn/hamn.yaml", "samples/db2/etc/hamn/hamn.yaml"])
    func fencesEveryNode(_ path: String) throws {
        let text = try String(contentsOfFile: Self.repository + "/" + path, encoding: .utf8)
        let configuration = try ConfigurationLoader.parse(
            text, file: path,
            defaults: .init(
                hostName: "host", rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil, stateDirectory: "/var/lib/h",
                runtimeDirectory: "/run/h", corosyncConf: "/nonexistent/corosync.conf"))
        #expect(configuration.transport == .corosync)
        #expect(configuration.fencingWarning == nil)
        guard case .devices(let devices, let attempts, _) = configuration.fencing else {
            Issue.record("\(path): no fence devices")
            return
        }
        #expect(attempts == 3)
        #expect(Set(devices.keys) == Set(configuration.nodes.map(\.name)))
        for (name, device) in devices {
            #expect(device.agent == "/usr/sbin/fence_ipmilan", "\(name)")
            #expect(device.options["lanplus"] == "1" && device.options["username"] == "admin", "\(name)")
            #expect(device.options["ip"]?.hasPrefix("10.0.1.") == true, "\(name)")
            #expect(device.passwordFile?.hasPrefix("/etc/hamn/fence/") == true, "\(name)")
        }
        if path.contains("xcat") {
            // The two-node pair: the primary's device has the delay, so the primary wins a 1|1 split.
            #expect(devices["aixmn1"]?.delay == 15 && devices["aixmn2"]?.delay == 0)
        }
    }
}
