import Foundation
import TestSupport
import Testing

/// The xCAT HA management node sample's scripts (samples/xcat-hamn/usr/local/sbin), run for
/// real with stand-ins for db2, db2pd, db2stop, db2gcf, ip, arping, hostnamectl, systemctl,
/// makedns, makedhcp, makeconservercf, rsync and wall.
@Suite("xCAT HAMN sample: the failover steps, release, notify, sync", .timeLimit(.minutes(1)))
struct XcatSampleTests {
    final class Node {
        let box: Sandbox
        var state: String { box.root + "/state" }

        init(hadr: String = db2pdStandbyPeer, addresses: String = "") throws {
            box = try Sandbox()
            let root = box.root
            try box.standIns([
                "db2", "arping", "hostnamectl", "systemctl", "makedns", "makedhcp", "makeconservercf", "wall", "rsync",
            ])
            try box.standIn("db2pd", #"cat "$HOME/hadr""#)
            try box.standIn("db2stop", #"exit "$(cat "$HOME/db2stop-status" 2>/dev/null || echo 0)""#)
            try box.standIn("db2gcf", #"[ "$1" = -s ] && exit "$(cat "$HOME/db2-down" 2>/dev/null || echo 0)"; exit 0"#)
            try box.standIn("ip", #"[ "$1 $2 $3" = "-o addr show" ] && cat "$HOME/addresses"; exit 0"#)
            try box.write(root + "/hadr", hadr)
            try box.write(root + "/addresses", addresses)
            for file in ["ca", "hosts"] {
                try FileManager.default.createDirectory(atPath: root + "/data", withIntermediateDirectories: true)
                try box.write(root + "/data/" + file, file + "\n")
            }
            try box.write(
                root + "/xcat-hamn.conf",
                """
                XCAT_NODES="aixmn1 aixmn2"
                XCAT_DATABASE=XCATDB
                DB2INSTANCE=xcatdb
                DB2_RUN_AS=
                XCAT_ADDRESS="9.114.47.103/26"
                XCAT_INTERFACE=eth1
                XCAT_HOSTNAME=aixmn1
                XCAT_PATH=
                XCATD_START="systemctl start xcatd"
                XCAT_RELEASE_SERVICES="xcatd isc-dhcp-server"
                XCAT_SYNC_PATHS="\(root)/data/ca \(root)/data/hosts \(root)/data/missing"
                XCAT_SYNC_STAMP=\(root)/stamp/sync.stamp
                XCAT_STATE_DIR=\(root)/state
                NOTIFY_COMMAND="wall"

                """)
        }

        func run(_ script: String, _ environment: [String: String]) throws -> Sandbox.Result {
            try box.run(
                Repo.xcatBin + "/" + script,
                environment: ["HAMN_FUNCTIONS": Repo.functions, "HAMN_XCAT_CONF": box.root + "/xcat-hamn.conf"].merging(
                    environment
                ) { _, new in new })
        }
    }

    static let steps = [
        "xcat_hadr_takeover", "xcat_db2_stop", "xcat_takeover_address", "xcat_db2_update_config", "xcat_xcatd_start",
        "xcat_network_services",
    ]

    static let crash = [
        "HAMN_EVENT": "TE_FAIL_NODE", "HAMN_EVENT_STATE": "0", "HAMN_EVENT_NODE": "aixmn1", "HAMN_LOCAL_NODE": "aixmn2",
        "HAMN_MEMBERS": "aixmn2", "HAMN_EVENT_ID": "12",
    ]

    @Test("the failover steps on the standby, in the .rp's order, issue the commands of section 8 in order")
    func failover() throws {
        let node = try Node()
        for step in Self.steps {
            let result = try node.run(step, Self.crash)
            #expect(result.status == 0, "\(step): \(result.err)")
        }
        #expect(node.box.commands == xcatFailoverCommands)
        #expect(node.box.read(node.state + "/failover") == nil, "the failover is over")
    }

    @Test(
        "when the database is already the HADR primary here, the node that left was the standby: no step does anything")
    func survivorIsPrimary() throws {
        let node = try Node(
            hadr: "HADR_ROLE = PRIMARY\nHADR_STATE = DISCONNECTED\nHADR_CONNECT_STATUS = DISCONNECTED\n")
        for step in Self.steps {
            let result = try node.run(step, Self.crash)
            #expect(result.status == 0, "\(step): \(result.err)")
        }
        #expect(node.box.commands == ["db2pd -d XCATDB -hadr"])
    }

    @Test("the HADR role is read from the three db2pd and snapshot layouts; unreadable output stops the failover")
    func roleLayouts() throws {
        let layouts = [
            "HADR_ROLE = STANDBY\nREPLAY_TYPE = PHYSICAL\nHADR_STATE = PEER\n",
            "HADR Status\n Role                   = Standby\n State                  = Peer\n",
            "| Role    | State | SyncMode | HeartBeatsMissed |\n|---------|-------|----------|------------------|\n| Standby | Peer  | Nearsync | 0                |\n",
        ]
        for layout in layouts {
            let node = try Node(hadr: layout)
            let result = try node.run("xcat_hadr_takeover", Self.crash)
            #expect(result.status == 0, "\(layout): \(result.err)")
            #expect(
                node.box.commands == ["db2pd -d XCATDB -hadr", "db2 takeover hadr on database XCATDB by force"],
                "\(layout)")
        }
        let broken = try Node(hadr: "SQL1032N  No start database manager command was issued.\n")
        let result = try broken.run("xcat_hadr_takeover", Self.crash)
        #expect(result.status == 1)
        #expect(broken.box.commands == ["db2pd -d XCATDB -hadr"])
        #expect(result.err.contains("the HADR role of XCATDB on aixmn2 is '' (db2pd -d XCATDB -hadr): no failover"))
    }

    @Test("a step of another event than the takeover's does nothing")
    func otherEvent() throws {
        let node = try Node()
        #expect(try node.run("xcat_hadr_takeover", Self.crash).status == 0)
        try node.box.clearLog()
        let later = try node.run("xcat_xcatd_start", Self.crash.merging(["HAMN_EVENT_ID": "13"]) { _, new in new })
        #expect(later.status == 0)
        #expect(node.box.commands == [])
        #expect(
            later.logLines.contains(
                "xcat_xcatd_start: no failover in progress on aixmn2 (xcat_hadr_takeover did not take over): nothing to do"
            ))
    }

    @Test("db2stop failing is accepted when DB2 is down after all, and fails the step when it is still up")
    func db2stopFails() throws {
        let node = try Node()
        try node.box.write(node.box.root + "/db2stop-status", "1")
        #expect(try node.run("xcat_hadr_takeover", Self.crash).status == 0)
        try node.box.write(node.box.root + "/db2-down", "1")
        let down = try node.run("xcat_db2_stop", Self.crash)
        #expect(down.status == 0, "\(down.err)")
        #expect(Array(node.box.commands.suffix(2)) == ["db2stop", "db2gcf -s -p 0 -i xcatdb"])
        #expect(down.logLines.last == "xcat_db2_stop: DB2 was already stopped")
        try node.box.write(node.box.root + "/db2-down", "0")
        let up = try node.run("xcat_db2_stop", Self.crash)
        #expect(up.status == 1)
        #expect(up.logLines.last == "xcat_db2_stop: error: db2stop failed and DB2 is still up")
    }

    @Test("by hand with HAMN_DRY_RUN=1 the failover prints every command and runs only the queries")
    func dryRun() throws {
        let node = try Node()
        var out = ""
        for step in Self.steps {
            let result = try node.run(step, ["HAMN_DRY_RUN": "1", "HAMN_LOCAL_NODE": "aixmn2"])
            #expect(result.status == 0, "\(step): \(result.err)")
            out += result.out
        }
        #expect(node.box.commands == ["db2pd -d XCATDB -hadr", "ip -o addr show dev eth1"])
        let expected = zip(
            [
                "xcat_hadr_takeover", "xcat_db2_stop", "xcat_db2_stop", "xcat_db2_stop", "xcat_db2_stop",
                "xcat_db2_stop",
                "xcat_takeover_address", "xcat_takeover_address", "xcat_takeover_address", "xcat_db2_update_config",
                "xcat_xcatd_start", "xcat_network_services", "xcat_network_services", "xcat_network_services",
                "xcat_network_services", "xcat_network_services",
            ], xcatFailoverCommands.filter { $0 != "db2pd -d XCATDB -hadr" && $0 != "ip -o addr show dev eth1" }
        ).map { "\($0): would run: \($1)\n" }.joined()
        #expect(out == expected)
    }

    @Test("xcat_release_primary hands over on the node holding the address, and does nothing on the standby")
    func release() throws {
        let event = [
            "HAMN_EVENT": "TE_FAIL_NODE", "HAMN_EVENT_STATE": "2", "HAMN_EVENT_NODE": "aixmn1",
            "HAMN_LOCAL_NODE": "aixmn1",
        ]
        let primary = try Node(addresses: "3: eth1    inet 9.114.47.103/26 brd 9.114.47.127 scope global eth1\n")
        let result = try primary.run("xcat_release_primary", event)
        #expect(result.status == 0, "\(result.err)")
        #expect(
            primary.box.commands == [
                "ip -o addr show dev eth1", "systemctl stop xcatd", "systemctl stop isc-dhcp-server",
                "db2 deactivate database XCATDB", "ip addr del 9.114.47.103/26 dev eth1",
            ])
        let standby = try Node(addresses: "3: eth1    inet 9.114.47.104/26 scope global eth1\n")
        #expect(try standby.run("xcat_release_primary", event).status == 0)
        #expect(standby.box.commands == ["ip -o addr show dev eth1"])
    }

    @Test("xcat_notify tells of an unhealthy HADR and of stale files with the values that raised the event")
    func notify() throws {
        let node = try Node()
        // Without HAMN_FUNCTIONS, from the checkout: the shipped rules' hamn_functions.
        let hadr = try node.box.run(
            Repo.xcatBin + "/xcat_notify",
            environment: [
                "HAMN_XCAT_CONF": node.box.root + "/xcat-hamn.conf",
                "HAMN_EVENT": "xcat_hadr", "HAMN_EVENT_NODE": "aixmn2", "HAMN_RV_INSTANCE": "Database=XCATDB;NodeNum=2",
                "HAMN_RV_VALUE": "Role=Standby;State=RemoteCatchupPending;ConnectStatus=Connected",
            ])
        #expect(hadr.status == 0, "\(hadr.err)")
        let stale = try node.run(
            "xcat_notify",
            [
                "HAMN_EVENT": "xcat_sync_stale", "HAMN_EVENT_NODE": "aixmn2",
                "HAMN_RV_INSTANCE": "Name=/var/lib/hamn-xcat/sync.stamp;NodeNum=2", "HAMN_RV_VALUE": "90061",
            ])
        #expect(stale.status == 0, "\(stale.err)")
        #expect(
            node.box.commands == [
                "wall 'hamn-events: DB2 HADR of XCATDB on aixmn2 is not Primary/Standby, Peer, Connected: Role=Standby;State=RemoteCatchupPending;ConnectStatus=Connected'",
                "wall 'hamn-events: the files synchronised to aixmn2 are stale: 90061 s since the last sync (/var/lib/hamn-xcat/sync.stamp); check xcat_sync'",
            ])
    }

    @Test(
        "xcat_sync copies what exists to the other node, then writes and copies the stamp; a failed copy leaves the stamp"
    )
    func sync() throws {
        let node = try Node(addresses: "3: eth1    inet 9.114.47.103/26 scope global eth1\n")
        let root = node.box.root
        let result = try node.run("xcat_sync", ["HAMN_LOCAL_NODE": "aixmn1"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "ip -o addr show dev eth1",
                "rsync -azR \(root)/data/ca aixmn2:/",
                "rsync -azR \(root)/data/hosts aixmn2:/",
                "rsync -azR \(root)/stamp/sync.stamp aixmn2:/",
            ])
        #expect(FileManager.default.fileExists(atPath: root + "/stamp/sync.stamp"))
        #expect(result.logLines.contains("xcat_sync: \(root)/data/missing does not exist: skipped"))

        try FileManager.default.removeItem(atPath: root + "/stamp/sync.stamp")
        try node.box.clearLog()
        try node.box.standIn("rsync", #"case $2 in */hosts) exit 23 ;; esac"#)
        let failed = try node.run("xcat_sync", ["HAMN_LOCAL_NODE": "aixmn1"])
        #expect(failed.status == 1)
        #expect(
            node.box.commands == [
                "ip -o addr show dev eth1", "rsync -azR \(root)/data/ca aixmn2:/",
                "rsync -azR \(root)/data/hosts aixmn2:/",
            ])
        #expect(!FileManager.default.fileExists(atPath: root + "/stamp/sync.stamp"))

        let standby = try Node()
        #expect(try standby.run("xcat_sync", ["HAMN_LOCAL_NODE": "aixmn2"]).status == 0)
        #expect(standby.box.commands == ["ip -o addr show dev eth1"])
    }
}
