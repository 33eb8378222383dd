import Foundation
import Testing

/// The bundled event scripts of the shipped rules (rules/etc/hamn/events), run for real with
/// stand-ins for ip, mount, umount, mountpoint, arping, wall and hamn-events.
@Suite("shipped rules: the bundled event scripts", .timeLimit(.minutes(1)))
struct ShippedRulesTests {
    /// A sandbox with two resource groups: `web` (n1 first, file systems, an address, an
    /// application server) and `db` (n2 first, an address only).
    final class Node {
        let box: Sandbox
        var state: String { box.root + "/state" }

        init(mounted: [String] = [], addresses: String = "") throws {
            box = try Sandbox()
            try box.standIns(["mount", "umount", "arping", "wall", "hamn-events", "logger", "recorder"])
            try box.standIn("mountpoint", #"grep -qxF -- "$2" "$HOME/mounted""#)
            try box.standIn("ip", #"[ "$1 $2 $3" = "-o addr show" ] && cat "$HOME/addresses"; exit 0"#)
            try box.standIn(
                "app",
                #"echo "HAMN_RG=$HAMN_RG HAMN_RG_HOME=$HAMN_RG_HOME HAMN_RG_NODES=$HAMN_RG_NODES" >>"$HOME/app-env""#)
            try box.write(box.root + "/mounted", mounted.map { $0 + "\n" }.joined())
            try box.write(box.root + "/addresses", addresses)
            try box.write(
                box.root + "/etc/resources.conf",
                """
                RESOURCE_GROUPS="web db"
                web_NODES="n1 n2"
                web_ADDRESS="10.1.0.5/24"
                web_INTERFACE="eth1"
                web_FILESYSTEMS="/srv/web /srv/web/logs"
                web_START="\(box.bin)/app start"
                web_STOP="\(box.bin)/app stop"
                db_NODES="n2 n1"
                db_ADDRESS="10.1.0.6/24"
                db_INTERFACE="eth1"
                NOTIFY_COMMAND="wall"

                """)
        }

        /// Marks GROUP as held here in STATE, as the scripts do.
        func hold(_ group: String, _ value: String) throws {
            try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
            try box.write(state + "/" + group, value + "\n")
        }

        func held(_ group: String) -> String? {
            box.read(state + "/" + group)?.trimmingCharacters(in: .whitespacesAndNewlines)
        }

        func run(_ script: String, _ event: [String: String]) throws -> Sandbox.Result {
            try box.run(
                Repo.events + "/" + script,
                environment: [
                    "HAMN_RESOURCES": box.root + "/etc/resources.conf", "HAMN_GROUP_STATE": state,
                    "HAMN_HOOKS": box.root + "/hooks", "HAMN_SOCKET": "/run/test/control.sock",
                ].merging(event) { _, new in new })
        }
    }

    static func join(_ node: String, local: String, members: String) -> [String: String] {
        [
            "HAMN_EVENT": "TE_JOIN_NODE", "HAMN_EVENT_STATE": "0", "HAMN_EVENT_NODE": node, "HAMN_LOCAL_NODE": local,
            "HAMN_MEMBERS": members, "HAMN_EVENT_ID": "4",
        ]
    }

    static func fail(_ node: String, state: Int, local: String, members: String) -> [String: String] {
        [
            "HAMN_EVENT": "TE_FAIL_NODE", "HAMN_EVENT_STATE": String(state), "HAMN_EVENT_NODE": node,
            "HAMN_LOCAL_NODE": local, "HAMN_MEMBERS": members, "HAMN_EVENT_ID": "5",
        ]
    }

    @Test(
        "node_up_local acquires the groups the joining node comes first for: mounts in order, adds the address, announces it"
    )
    func nodeUpLocal() throws {
        let node = try Node(mounted: ["/srv/web"])
        let result = try node.run("node_up_local", Self.join("n1", local: "n1", members: "n1 n2"))
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "mountpoint -q /srv/web",
                "mountpoint -q /srv/web/logs",
                "mount /srv/web/logs",
                "ip -o addr show dev eth1",
                "ip addr add 10.1.0.5/24 dev eth1",
                "arping -U -c 3 -I eth1 10.1.0.5",
            ])
        #expect(node.held("web") == "acquired")
        #expect(node.held("db") == nil, "db comes to n2 first, a member")
        #expect(result.logLines.contains("node_up_local: /srv/web is already mounted"))
        #expect(result.logLines.contains("node_up_local: adding service address 10.1.0.5/24 to eth1"))
        #expect(result.out == "")
    }

    @Test("a node that starts alone acquires every group it is in the list of (cascading)")
    func firstNodeAlone() throws {
        let node = try Node()
        let result = try node.run("node_up_local", Self.join("n1", local: "n1", members: "n1"))
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "mountpoint -q /srv/web", "mount /srv/web", "mountpoint -q /srv/web/logs", "mount /srv/web/logs",
                "ip -o addr show dev eth1", "ip addr add 10.1.0.5/24 dev eth1", "arping -U -c 3 -I eth1 10.1.0.5",
                "ip -o addr show dev eth1", "ip addr add 10.1.0.6/24 dev eth1", "arping -U -c 3 -I eth1 10.1.0.6",
            ])
        #expect(node.held("web") == "acquired" && node.held("db") == "acquired")
    }

    @Test(
        "node_up_local_complete starts the application servers of the acquired groups, with the group in the environment"
    )
    func nodeUpLocalComplete() throws {
        let node = try Node()
        try node.hold("web", "acquired")
        let result = try node.run("node_up_local_complete", Self.join("n1", local: "n1", members: "n1 n2"))
        #expect(result.status == 0, "\(result.err)")
        #expect(node.box.commands == ["app start"])
        #expect(node.box.read(node.box.root + "/app-env") == "HAMN_RG=web HAMN_RG_HOME=n1 HAMN_RG_NODES=n1 n2\n")
        #expect(node.held("web") == "online")
    }

    @Test(
        "node_up_remote gives back what belongs to the joining node: application stopped, address removed, unmounted in reverse"
    )
    func nodeUpRemote() throws {
        let node = try Node(
            mounted: ["/srv/web", "/srv/web/logs"],
            addresses:
                "3: eth1    inet 10.1.0.5/24 brd 10.1.0.255 scope global eth1\n3: eth1    inet 10.1.0.6/24 scope global secondary eth1\n"
        )
        try node.hold("web", "online")
        try node.hold("db", "online")
        let result = try node.run("node_up_remote", Self.join("n1", local: "n2", members: "n1 n2"))
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "app stop",
                "ip -o addr show dev eth1",
                "ip addr del 10.1.0.5/24 dev eth1",
                "mountpoint -q /srv/web/logs",
                "umount /srv/web/logs",
                "mountpoint -q /srv/web",
                "umount /srv/web",
            ])
        #expect(node.held("web") == nil)
        #expect(node.held("db") == "online", "db is still n2's")
        #expect(result.logLines.contains("node_up_remote: resource group web now belongs to n1"))
    }

    @Test("after a crash the next node takes the group over, then starts its application server")
    func crashTakeover() throws {
        let node = try Node()
        try node.hold("db", "online")
        let event = Self.fail("n1", state: 0, local: "n2", members: "n2 n3")
        let remote = try node.run("node_down_remote", event)
        #expect(remote.status == 0, "\(remote.err)")
        #expect(
            node.box.commands == [
                "mountpoint -q /srv/web", "mount /srv/web", "mountpoint -q /srv/web/logs", "mount /srv/web/logs",
                "ip -o addr show dev eth1", "ip addr add 10.1.0.5/24 dev eth1", "arping -U -c 3 -I eth1 10.1.0.5",
            ])
        try node.box.clearLog()
        let complete = try node.run("node_down_remote_complete", event)
        #expect(complete.status == 0, "\(complete.err)")
        #expect(node.box.commands == ["app start"])
        #expect(node.box.read(node.box.root + "/app-env") == "HAMN_RG=web HAMN_RG_HOME=n1 HAMN_RG_NODES=n1 n2\n")
        #expect(node.held("web") == "online" && node.held("db") == "online")
    }

    @Test("a node that is not next in a group's list takes nothing over")
    func notNext() throws {
        let node = try Node()
        // web is n1's then n2's: n3 is not in its list.
        let result = try node.run("node_down_remote", Self.fail("n1", state: 0, local: "n3", members: "n2 n3"))
        #expect(result.status == 0, "\(result.err)")
        #expect(node.box.commands == [])
        #expect(node.held("web") == nil)
    }

    @Test("a graceful stop releases the stopping node's groups and nobody takes them over")
    func gracefulStop() throws {
        let node = try Node(mounted: ["/srv/web"], addresses: "3: eth1    inet 10.1.0.5/24 scope global eth1\n")
        try node.hold("web", "online")
        let local = try node.run("node_down_local", Self.fail("n1", state: 1, local: "n1", members: "n1 n2"))
        #expect(local.status == 0, "\(local.err)")
        #expect(
            node.box.commands == [
                "app stop", "ip -o addr show dev eth1", "ip addr del 10.1.0.5/24 dev eth1",
                "mountpoint -q /srv/web/logs",
                "mountpoint -q /srv/web", "umount /srv/web",
            ])
        #expect(node.held("web") == nil)

        let other = try Node()
        let remote = try other.run("node_down_remote", Self.fail("n1", state: 1, local: "n2", members: "n1 n2"))
        #expect(remote.status == 0)
        #expect(other.box.commands == [], "no takeover on a graceful stop")
        #expect(
            remote.logLines.contains(
                "node_down_remote: node n1 stops without takeover (state 1): its resource groups stay where they are"))
    }

    @Test("a forced stop leaves the resources as they are, unmanaged, and notifies")
    func forcedStop() throws {
        let node = try Node()
        try node.hold("web", "online")
        let event = Self.fail("n1", state: 3, local: "n1", members: "n1 n2")
        let local = try node.run("node_down_local", event)
        #expect(local.status == 0)
        #expect(node.box.commands == [])
        #expect(node.held("web") == "online")
        #expect(
            local.logLines.contains(
                "node_down_local: forced stop on n1: the resource groups held here stay as they are, unmanaged: web"))
        let complete = try node.run("node_down_local_complete", event)
        #expect(complete.status == 0)
        #expect(
            node.box.commands == [
                "wall 'hamn-events: cluster services stopped on n1 (forced, resources left unmanaged)'"
            ])
    }

    @Test("a failing mount fails the script before the address is touched, and nothing is recorded as held")
    func mountFails() throws {
        let node = try Node()
        try node.box.standIn("mount", "exit 32")
        let result = try node.run("node_up_local", Self.join("n1", local: "n1", members: "n1 n2"))
        #expect(result.status == 1)
        #expect(node.box.commands == ["mountpoint -q /srv/web", "mount /srv/web"])
        #expect(node.held("web") == nil)
        #expect(result.logLines.contains("node_up_local: failed (exit 32): mount /srv/web"))
        #expect(result.logLines.contains("node_up_local: error: resource group web could not be acquired"))
    }

    @Test("HAMN_DRY_RUN=1 prints what would run and only runs the queries")
    func dryRun() throws {
        let node = try Node()
        let result = try node.run(
            "node_up_local",
            Self.join("n1", local: "n1", members: "n1 n2").merging(["HAMN_DRY_RUN": "1"]) { _, new in new })
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == ["mountpoint -q /srv/web", "mountpoint -q /srv/web/logs", "ip -o addr show dev eth1"])
        #expect(
            result.out == """
                node_up_local: would run: mount /srv/web
                node_up_local: would run: mount /srv/web/logs
                node_up_local: would run: ip addr add 10.1.0.5/24 dev eth1
                node_up_local: would run: arping -U -c 3 -I eth1 10.1.0.5

                """)
        #expect(node.held("web") == nil)
    }

    @Test("a resource file that group or others can write is refused before anything runs")
    func unsafeResources() throws {
        let node = try Node()
        chmod(node.box.root + "/etc/resources.conf", 0o664)
        let result = try node.run("node_up_local", Self.join("n1", local: "n1", members: "n1"))
        #expect(result.status == 1)
        #expect(node.box.commands == [])
        #expect(result.err.contains("is writable by group or others (mode 664)"))
    }

    @Test("network_up puts a missing service address back, announces it and raises network_up_complete")
    func networkUp() throws {
        let node = try Node()
        try node.hold("web", "online")
        let result = try node.run(
            "network_up",
            [
                "HAMN_EVENT": "TE_JOIN_NETWORK", "HAMN_EVENT_STATE": "0", "HAMN_EVENT_NODE": "n1",
                "HAMN_LOCAL_NODE": "n1",
                "HAMN_MEMBERS": "n1 n2", "HAMN_RV_INSTANCE": "Interface=eth1;NodeNum=1", "HAMN_RV_VALUE": "up",
            ])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "ip -o addr show dev eth1",
                "ip addr add 10.1.0.5/24 dev eth1",
                "arping -U -c 3 -I eth1 10.1.0.5",
                "hamn-events trigger --socket /run/test/control.sock network_up_complete --node n1",
            ])
    }

    @Test("network_down notifies, raises network_down_complete, then runs its post-event commands in name order")
    func networkDownHooks() throws {
        let node = try Node()
        let hooks = node.box.root + "/hooks/network_down"
        try FileManager.default.createDirectory(atPath: hooks, withIntermediateDirectories: true)
        try node.box.write(hooks + "/20-second", "#!/bin/sh\nrecorder second \"$HAMN_EVENT_NODE\"\n", mode: 0o755)
        try node.box.write(hooks + "/10-first", "#!/bin/sh\nrecorder first \"$HAMN_RV_INSTANCE\"\n", mode: 0o755)
        try node.box.write(hooks + "/README", "not executable: not run\n")
        let event = [
            "HAMN_EVENT": "TE_FAIL_NETWORK", "HAMN_EVENT_STATE": "0", "HAMN_EVENT_NODE": "n2", "HAMN_LOCAL_NODE": "n2",
            "HAMN_MEMBERS": "n1 n2", "HAMN_RV_INSTANCE": "Interface=eth1;NodeNum=2", "HAMN_RV_VALUE": "down",
        ]
        let result = try node.run("network_down", event)
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "wall 'hamn-events: network interface eth1 is down on n2'",
                "hamn-events trigger --socket /run/test/control.sock network_down_complete --node n2",
                "recorder first 'Interface=eth1;NodeNum=2'",
                "recorder second n2",
            ])

        // A hook others could change is refused, and fails the script (the event).
        try node.box.clearLog()
        chmod(hooks + "/10-first", 0o777)
        let refused = try node.run("network_down", event)
        #expect(refused.status == 1)
        #expect(node.box.commands.suffix(1) == ["recorder second n2"])
        #expect(refused.err.contains("10-first is writable by group or others (mode 777)"))
    }

    @Test("event_error and config_too_long notify through the configured command, the message last")
    func notifications() throws {
        let node = try Node()
        try node.box.write(
            node.box.root + "/etc/resources.conf", "RESOURCE_GROUPS=\"\"\nNOTIFY_COMMAND=\"logger -t hamn-alert\"\n")
        let error = try node.run(
            "event_error", ["HAMN_EVENT": "TE_EVENT_ERROR", "HAMN_EVENT_NODE": "n3", "HAMN_LOCAL_NODE": "n3"])
        #expect(error.status == 0, "\(error.err)")
        let late = try node.run(
            "config_too_long", ["HAMN_EVENT": "TE_CONFIG_TOO_LONG", "HAMN_EVENT_NODE": "n2", "HAMN_LOCAL_NODE": "n2"])
        #expect(late.status == 0, "\(late.err)")
        #expect(
            node.box.commands == [
                "logger -t hamn-alert 'hamn-events: a recovery command failed on n3: fix the cause, then run hamn-events resume (hamn-events status shows the command)'",
                "logger -t hamn-alert 'hamn-events: an event has been running longer than config_too_long on n2: see hamn-events status'",
            ])
    }
}
