import HamnConfiguration
import RulesEngine
import RulesParser
import Testing

@Suite("configuration")
struct ConfigurationLoaderTests {
    let defaults = ConfigurationLoader.Defaults(
        hostName: "host", rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil, stateDirectory: "/var/lib/h",
        runtimeDirectory: "/run/h")

    @Test("no file: the embedded default")
    func embedded() throws {
        let configuration = try ConfigurationLoader.parse("", file: "c.yaml", defaults: defaults)
        #expect(configuration.node == ClusterNode(name: "host", number: 1))
        #expect(configuration.nodes == [configuration.node])
        #expect(configuration.journal == "/var/lib/h/journal.sqlite")
        #expect(configuration.socket == "/run/h/control.sock")
        #expect(configuration.configTooLong == 360)
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

    @Test("unknown keys and wrong types name the key and the line", arguments: [
        ("speed: 3\n", "c.yaml:1:1: error: unknown key 'speed'"),
        ("config_too_long: soon\n", "c.yaml:1:18: error: config_too_long: expected a duration"),
        ("variables:\n  - name: A\n    command: /bin/a\n    parser: xml\n", "c.yaml:4:13: error: variables[0].parser: expected one of"),
        ("variables:\n  - name: A\n    command: relative\n", "c.yaml:2:5: error: variables[0]: variable A: command must start with an absolute path"),
        ("node: z\nnodes: [a, b]\n", "c.yaml:1:7: error: node: this node, 'z', is not among the nodes"),
        ("transport: carrier-pigeon\n", "c.yaml:1:12: error: transport: expected local or corosync"),
        ("corosync:\n  realtime: sometimes\n", "c.yaml:2:13: error: corosync.realtime: expected"),
        ("stop:\n  mode: gentle\n", "c.yaml:2:9: error: stop.mode: expected graceful (TE_FAIL_NODE state 1) or takeover (state 2), not 'gentle'"),
        ("stop:\n  mode: forced\n", "c.yaml:2:9: error: stop.mode: forced is for ha-cmd FORCE only"),
        ("stop:\n  timeout: 0s\n", "c.yaml:2:12: error: stop.timeout: must be above 0 and at most 1d (86400s)"),
        ("stop:\n  timeout: 2d\n", "c.yaml:2:12: error: stop.timeout: must be above 0 and at most 1d (86400s)"),
        ("stop:\n  mode: graceful\n  timeout: -5s\n", "c.yaml:3:12: error: stop.timeout: expected a duration"),
        ("stop:\n  grace: 5m\n", "c.yaml:2:3: error: stop: unknown key 'grace'"),
        ("stop: graceful\n", "c.yaml:1:7: error: stop: expected"),
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
