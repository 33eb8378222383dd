import Foundation
import RulesValidation
import Testing

/// The DB2 UDB EEE sample's scripts (samples/db2/usr/local/sbin), run for real with stand-ins
/// for db2, db2start, db2stop, db2gcf, wall, pgrep, systemctl, su, ssh, scp and hamn-events.
@Suite("DB2 sample: rc.db2pe, db2_paging_action, db2_proc_restart, net_down, db2_inst_ha", .timeLimit(.minutes(1)))
struct DB2SampleTests {
    /// Node n1 with partitions 0 and 1, node n2 with partition 2, database SAMPLE (with parms
    /// files), TESTDB (without) and a remote one in the database directory.
    final class Node {
        let box: Sandbox

        init(nodes: String = "0 n1 0\n1 n1 1\n2 n2 0\n", extra: String = "") throws {
            box = try Sandbox()
            let root = box.root
            try box.standIns(["db2start", "db2stop", "wall", "ssh", "scp"])
            try box.standIn(
                "db2",
                #"[ "$*" = "list db directory" ] && cat "$HOME/dbdir"; exit 0"#)
            // db2gcf -s -p N: down when N is listed in $HOME/down.
            try box.standIn("db2gcf", #"[ "$1" = -s ] && grep -qx "$3" "$HOME/down" && exit 1; exit 0"#)
            try box.standIn("pgrep", #"grep -qx "$2" "$HOME/running""#)
            try box.standIn("systemctl", #"exit "$(cat "$HOME/systemctl-status" 2>/dev/null || echo 0)""#)
            try box.standIn("su", #"exec sh -c "$4""#)
            try box.write(root + "/down", "")
            try box.write(root + "/running", "")
            try box.write(root + "/db2nodes.cfg", nodes)
            try box.write(
                root + "/dbdir",
                """

                 System Database Directory

                 Number of entries in the directory = 3

                Database 1 entry:

                 Database alias                       = SAMPLE
                 Database name                        = SAMPLE
                 Local database directory             = /home/db2inst1
                 Directory entry type                 = Indirect

                Database 2 entry:

                 Database alias                       = TESTDB
                 Database name                        = TESTDB
                 Local database directory             = /home/db2inst1
                 Directory entry type                 = Indirect

                Database 3 entry:

                 Database alias                       = REMOTEDB
                 Database name                        = REMOTEDB
                 Node name                            = NODE9
                 Directory entry type                 = Remote

                """)
            try FileManager.default.createDirectory(atPath: root + "/parms", withIntermediateDirectories: true)
            try box.write(root + "/parms/reg.parms.SAMPLE", "# regular\nBUFFPAGE 50000\n\nSORTHEAP 2048\n")
            try box.write(root + "/parms/failover.parms.SAMPLE", "BUFFPAGE 20000\nSORTHEAP 1024\n")
            try box.write(root + "/parms/reg.parms.REMOTEDB", "BUFFPAGE 1\n")
            try box.write(
                root + "/db2.conf",
                """
                DB2INSTANCE=db2inst1
                DB2_RUN_AS=
                DB2NODES_CFG=\(root)/db2nodes.cfg
                PARTITIONS="n1:0,1 n2:2"
                PARMS_DIR=\(root)/parms
                PAGING_MEMINFO=\(root)/meminfo
                NET_SYSFS=\(root)/sys
                NET_DOWN_INTERFACE=sw0
                NET_DOWN_WAIT=100
                NET_DOWN_LOG=\(root)/net_down.log
                NODES="1:n1 2:n2"
                \(extra)

                """)
        }

        func run(_ script: String, _ arguments: [String] = [], _ environment: [String: String] = [:]) throws
            -> Sandbox.Result
        {
            try box.run(
                Repo.db2Bin + "/" + script, arguments,
                environment: [
                    "HAMN_FUNCTIONS": Repo.functions, "HAMN_DB2_CONF": box.root + "/db2.conf", "HAMN_LOCAL_NODE": "n1",
                    "HAMN_SOCKET": "/run/test/control.sock",
                ].merging(environment) { _, new in new })
        }
    }

    static let reg0 = "db2 update db cfg for SAMPLE dbpartitionnum 0 using BUFFPAGE 50000 SORTHEAP 2048"
    static let reg1 = "db2 update db cfg for SAMPLE dbpartitionnum 1 using BUFFPAGE 50000 SORTHEAP 2048"

    @Test(
        "rc.db2pe start applies reg.parms to the databases of the directory that have one, then starts the home partitions"
    )
    func start() throws {
        let node = try Node()
        try node.box.write(node.box.root + "/down", "0\n1\n")
        let result = try node.run("rc.db2pe", ["start"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "db2 list db directory",
                Self.reg0,
                Self.reg1,
                "db2gcf -s -p 0 -i db2inst1",
                "db2start dbpartitionnum 0",
                "db2gcf -s -p 1 -i db2inst1",
                "db2start dbpartitionnum 1",
            ])
        #expect(
            result.logLines.contains(
                "rc.db2pe: no \(node.box.root)/parms/reg.parms.TESTDB: the configuration of TESTDB is left as it is"))
        #expect(!result.err.contains("REMOTEDB"), "a remote database is not this instance's")
    }

    @Test("rc.db2pe start moves a home partition back from the node that had taken it over")
    func startMovesBack() throws {
        let node = try Node(nodes: "0 n1 0\n1 n1 1\n2 n1 2\n")
        let result = try node.run("rc.db2pe", ["start"], ["HAMN_LOCAL_NODE": "n2"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "db2 list db directory",
                "db2 update db cfg for SAMPLE dbpartitionnum 2 using BUFFPAGE 50000 SORTHEAP 2048",
                "db2start dbpartitionnum 2 restart hostname n2 port 0 netname n2",
            ])
    }

    @Test("rc.db2pe stop leaves failover.parms and stops the partitions running here")
    func stop() throws {
        let node = try Node()
        try node.box.write(node.box.root + "/down", "1\n")
        let result = try node.run("rc.db2pe", ["stop"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "db2 list db directory",
                "db2 update db cfg for SAMPLE dbpartitionnum 0 using BUFFPAGE 20000 SORTHEAP 1024",
                "db2 update db cfg for SAMPLE dbpartitionnum 1 using BUFFPAGE 20000 SORTHEAP 1024",
                "db2gcf -s -p 0 -i db2inst1",
                "db2stop force dbpartitionnum 0",
                "db2gcf -s -p 1 -i db2inst1",
            ])
        #expect(result.logLines.contains("rc.db2pe: partition 1 is not running here"))
    }

    @Test(
        "rc.db2pe takeover: stops its own partitions, failover.parms for both nodes', starts its own and the failed node's here"
    )
    func mutualTakeover() throws {
        let node = try Node(extra: "NETNAMES=\"n1:n1-sw n2:n2-sw\"")
        let result = try node.run("rc.db2pe", ["takeover", "n2"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "db2gcf -s -p 0 -i db2inst1",
                "db2stop force dbpartitionnum 0",
                "db2gcf -s -p 1 -i db2inst1",
                "db2stop force dbpartitionnum 1",
                "db2 list db directory",
                "db2 update db cfg for SAMPLE dbpartitionnum 0 using BUFFPAGE 20000 SORTHEAP 1024",
                "db2 update db cfg for SAMPLE dbpartitionnum 1 using BUFFPAGE 20000 SORTHEAP 1024",
                "db2 update db cfg for SAMPLE dbpartitionnum 2 using BUFFPAGE 20000 SORTHEAP 1024",
                "db2start dbpartitionnum 0",
                "db2start dbpartitionnum 1",
                "db2start dbpartitionnum 2 restart hostname n1 port 2 netname n1-sw",
            ])
    }

    @Test("rc.db2pe reintegrate: gives the returning node's partition back and restarts only its own, with reg.parms")
    func reintegrate() throws {
        let node = try Node(nodes: "0 n1 0\n1 n1 1\n2 n1 2\n")
        let result = try node.run("rc.db2pe", ["reintegrate", "n2"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "db2gcf -s -p 2 -i db2inst1",
                "db2stop force dbpartitionnum 2",
                "db2gcf -s -p 0 -i db2inst1",
                "db2stop force dbpartitionnum 0",
                "db2gcf -s -p 1 -i db2inst1",
                "db2stop force dbpartitionnum 1",
                "db2 list db directory",
                Self.reg0,
                Self.reg1,
                "db2start dbpartitionnum 0",
                "db2start dbpartitionnum 1",
            ])
    }

    @Test("as a resource group's application server, rc.db2pe takes over or reintegrates depending on the group's home")
    func autoModes() throws {
        let node = try Node(extra: "DATABASES=\"NONE\"")
        let start = try node.run("rc.db2pe", ["auto-start"], ["HAMN_RG_HOME": "n2"])
        #expect(start.status == 0, "\(start.err)")
        #expect(
            node.box.commands == [
                "db2gcf -s -p 0 -i db2inst1", "db2stop force dbpartitionnum 0", "db2gcf -s -p 1 -i db2inst1",
                "db2stop force dbpartitionnum 1", "db2start dbpartitionnum 0", "db2start dbpartitionnum 1",
                "db2start dbpartitionnum 2 restart hostname n1 port 2 netname n1",
            ])
        try node.box.clearLog()
        let stop = try node.run("rc.db2pe", ["auto-stop"], ["HAMN_RG_HOME": "n1"])
        #expect(stop.status == 0, "\(stop.err)")
        #expect(
            node.box.commands == [
                "db2gcf -s -p 0 -i db2inst1", "db2stop force dbpartitionnum 0", "db2gcf -s -p 1 -i db2inst1",
                "db2stop force dbpartitionnum 1",
            ])
    }

    @Test("DB2 commands run as the instance owner through su - when DB2_RUN_AS is set")
    func switchUser() throws {
        let node = try Node(extra: "DB2_RUN_AS=db2inst1")
        try node.box.write(node.box.root + "/down", "0\n")
        let result = try node.run("rc.db2pe", ["start", "0"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "su - db2inst1 -c 'db2 list db directory'",
                "db2 list db directory",
                "su - db2inst1 -c '\(Self.reg0)'",
                Self.reg0,
                "su - db2inst1 -c 'db2gcf -s -p 0 -i db2inst1'",
                "db2gcf -s -p 0 -i db2inst1",
                "su - db2inst1 -c 'db2start dbpartitionnum 0'",
                "db2start dbpartitionnum 0",
            ])
    }

    @Test("rc.db2pe nfs restarts what is not running, and fails when the restart does")
    func nfs() throws {
        let node = try Node()
        try node.box.write(node.box.root + "/running", "automount\n")
        let result = try node.run("rc.db2pe", ["nfs"])
        #expect(result.status == 0, "\(result.err)")
        #expect(node.box.commands == ["pgrep -x nfsd", "systemctl restart nfs-server", "pgrep -x automount"])
        #expect(result.logLines.contains("rc.db2pe: nfsd is not running: restarting nfs-server"))

        try node.box.clearLog()
        try node.box.write(node.box.root + "/running", "")
        try node.box.write(node.box.root + "/systemctl-status", "1")
        let failed = try node.run("rc.db2pe", ["nfs"])
        #expect(failed.status == 1)
        #expect(
            node.box.commands == [
                "pgrep -x nfsd", "systemctl restart nfs-server", "pgrep -x automount", "systemctl restart autofs",
            ])
    }

    @Test(
        "db2_paging_action: the event node's value over 70 sends a wall message, over 90 also restarts its partitions")
    func paging() throws {
        let node = try Node()
        let event = ["HAMN_EVENT": "db2_paging", "HAMN_EVENT_NODE": "n1", "HAMN_RV_VALUE": "75"]
        let warn = try node.run("db2_paging_action", [], event)
        #expect(warn.status == 0, "\(warn.err)")
        #expect(node.box.commands == ["wall 'hamn-events: paging space on n1 is 75 percent used (over 70)'"])

        try node.box.clearLog()
        let restart = try node.run("db2_paging_action", [], event.merging(["HAMN_RV_VALUE": "90.5"]) { _, new in new })
        #expect(restart.status == 0, "\(restart.err)")
        #expect(
            node.box.commands == [
                "wall 'hamn-events: paging space on n1 is 90.5 percent used (over 90): restarting the DB2 partitions of n1'",
                "db2gcf -s -p 0 -i db2inst1",
                "db2stop force dbpartitionnum 0",
                "db2gcf -s -p 1 -i db2inst1",
                "db2stop force dbpartitionnum 1",
                "db2start dbpartitionnum 0",
                "db2start dbpartitionnum 1",
            ])
    }

    @Test("db2_paging_action on the other nodes reads their own paging space from /proc/meminfo")
    func pagingOtherNodes() throws {
        let node = try Node()
        let event = ["HAMN_EVENT": "db2_paging", "HAMN_EVENT_NODE": "n2", "HAMN_RV_VALUE": "95"]
        try node.box.write(
            node.box.root + "/meminfo", "MemTotal: 8000000 kB\nSwapTotal: 1000000 kB\nSwapFree: 180000 kB\n")
        let warn = try node.run("db2_paging_action", [], event)
        #expect(warn.status == 0, "\(warn.err)")
        #expect(node.box.commands == ["wall 'hamn-events: paging space on n1 is 82 percent used (over 70)'"])

        try node.box.clearLog()
        try node.box.write(node.box.root + "/meminfo", "SwapTotal: 0 kB\nSwapFree: 0 kB\n")
        let none = try node.run("db2_paging_action", [], event)
        #expect(none.status == 0)
        #expect(node.box.commands == [])
        #expect(none.logLines.contains("db2_paging_action: below 70 percent: nothing to do"))

        let garbage = try node.run("db2_paging_action", [], ["HAMN_EVENT_NODE": "n1", "HAMN_RV_VALUE": "75; reboot"])
        #expect(garbage.status == 1)
        #expect(node.box.commands == [])
    }

    @Test("db2_proc_restart restarts the partition that is down on the event node, and nothing elsewhere")
    func procRestart() throws {
        let node = try Node()
        try node.box.write(node.box.root + "/down", "1\n")
        let event = [
            "HAMN_EVENT": "db2_proc_restart", "HAMN_EVENT_NODE": "n1",
            "HAMN_RV_VALUE": "CurPIDCount=1;PrevPIDCount=2;CurPIDList=4101",
        ]
        let result = try node.run("db2_proc_restart", [], event)
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                "db2gcf -s -p 0 -i db2inst1", "db2gcf -s -p 1 -i db2inst1", "db2start dbpartitionnum 1",
            ])
        #expect(result.logLines.last == "db2_proc_restart: restarted: 1")

        try node.box.clearLog()
        let elsewhere = try node.run("db2_proc_restart", [], event.merging(["HAMN_LOCAL_NODE": "n2"]) { _, new in new })
        #expect(elsewhere.status == 0)
        #expect(node.box.commands == [])
    }

    /// net_down's world: the switch interface sw0 down; hamn-events wait-event answers with
    /// the statuses listed in $HOME/wait (one per call), and can bring the link up.
    func netDownNode(wait: [String], waitSeconds: Int = 100) throws -> Node {
        let node = try Node(extra: "NET_DOWN_WAIT=\(waitSeconds)")
        try FileManager.default.createDirectory(atPath: node.box.root + "/sys/sw0", withIntermediateDirectories: true)
        try node.box.write(node.box.root + "/sys/sw0/operstate", "down\n")
        try node.box.write(node.box.root + "/wait", wait.joined(separator: "\n") + "\n")
        try node.box.standIn(
            "hamn-events",
            #"""
            [ "$1" = wait-event ] || exit 0
            answer=$(head -n 1 "$HOME/wait"); sed -i 1d "$HOME/wait"
            case $answer in
            up) echo up >"$HOME/sys/sw0/operstate"; exit 0 ;;
            *) exit "$answer" ;;
            esac
            """#)
        return node
    }

    static let waitCommand = "hamn-events wait-event --socket /run/test/control.sock network_up_complete --timeout"

    @Test("net_down --wait: no network_up_complete in time, so cluster services stop here with takeover")
    func netDownTimeout() throws {
        let node = try netDownNode(wait: ["1"])
        let result = try node.run("net_down", ["--wait", "sw0"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == [
                Self.waitCommand + " 100", "hamn-events ha-cmd --socket /run/test/control.sock n1 TAKE",
            ])
        #expect(
            result.logLines.contains(
                "net_down: sw0 still down after 100 s: stopping cluster services on n1 with takeover"))
    }

    @Test("net_down --wait: network_up_complete with the link up again means no recovery")
    func netDownBack() throws {
        let node = try netDownNode(wait: ["up"])
        let result = try node.run("net_down", ["--wait", "sw0"])
        #expect(result.status == 0, "\(result.err)")
        #expect(node.box.commands == [Self.waitCommand + " 100"])
        #expect(result.logLines.contains("net_down: network_up_complete: sw0 is up again on n1: no recovery"))
    }

    @Test("net_down --wait: a network_up_complete while this link is still down keeps waiting for the time left")
    func netDownOtherNetwork() throws {
        let node = try netDownNode(wait: ["0", "up"])
        let result = try node.run("net_down", ["--wait", "sw0"])
        #expect(result.status == 0, "\(result.err)")
        let commands = node.box.commands
        #expect(commands.count == 2)
        #expect(commands.first == Self.waitCommand + " 100")
        #expect(commands.last == Self.waitCommand + " 100" || commands.last == Self.waitCommand + " 99")
        #expect(!commands.contains { $0.contains("ha-cmd") })
    }

    @Test(
        "net_down from network_down: another interface, or a link already up, is left alone; a dry run says what it would do"
    )
    func netDownChecks() throws {
        let node = try netDownNode(wait: ["1"])
        let event = [
            "HAMN_EVENT": "TE_FAIL_NETWORK", "HAMN_EVENT_NODE": "n1", "HAMN_RV_INSTANCE": "Interface=eth0;NodeNum=1",
        ]
        let other = try node.run("net_down", [], event)
        #expect(other.status == 0)
        #expect(other.logLines.contains("net_down: eth0 is not the switch network (sw0): nothing to do"))

        let dry = try node.run(
            "net_down", [],
            event.merging(["HAMN_RV_INSTANCE": "Interface=sw0;NodeNum=1", "HAMN_DRY_RUN": "1"]) { _, new in new })
        #expect(dry.status == 0)
        #expect(
            dry.out
                == "net_down: would wait up to 100 s for network_up_complete, then run: hamn-events ha-cmd n1 TAKE\n")

        try node.box.write(node.box.root + "/sys/sw0/operstate", "up\n")
        let up = try node.run(
            "net_down", [], event.merging(["HAMN_RV_INSTANCE": "Interface=sw0;NodeNum=1"]) { _, new in new })
        #expect(up.status == 0)
        #expect(up.logLines.contains("net_down: sw0 is up again: nothing to do"))
        #expect(node.box.commands == [])
    }

    @Test("net_down from network_down returns at once and waits in the background, then stops cluster services")
    func netDownBackground() throws {
        let node = try netDownNode(wait: ["1"], waitSeconds: 1)
        let event = [
            "HAMN_EVENT": "TE_FAIL_NETWORK", "HAMN_EVENT_NODE": "n1", "HAMN_RV_INSTANCE": "Interface=sw0;NodeNum=1",
        ]
        let result = try node.run("net_down", [], event)
        #expect(result.status == 0, "\(result.err)")
        #expect(node.box.eventually { node.box.commands.count == 2 })
        #expect(
            node.box.commands == [
                Self.waitCommand + " 1", "hamn-events ha-cmd --socket /run/test/control.sock n1 TAKE",
            ])
        #expect(
            node.box.eventually {
                node.box.read(node.box.root + "/net_down.log")?.contains(
                    "net_down: sw0 still down after 1 s: stopping cluster services on n1 with takeover") == true
            })
    }

    static let sample = repositoryRoot + "/samples/db2"

    static func installCommands(_ node: String, database: String) -> [String] {
        let s = sample
        return [
            "ssh -o BatchMode=yes \(node) mkdir -p /usr/local/sbin /usr/local/lib/hamn-db2 /etc/hamn/db2 /etc/hamn/hooks/network_down",
            "scp -p \(s)/usr/local/sbin/rc.db2pe \(s)/usr/local/sbin/db2_paging_action \(s)/usr/local/sbin/db2_proc_restart \(s)/usr/local/sbin/net_down \(s)/usr/local/sbin/db2_inst_ha \(node):/usr/local/sbin/",
            "scp -p \(s)/usr/local/lib/hamn-db2/db2_functions \(node):/usr/local/lib/hamn-db2/",
            "scp -p \(s)/etc/hamn/db2/rules.hacmprd \(s)/etc/hamn/db2/db2_nfs.rp \(s)/etc/hamn/db2/db2_paging.rp \(s)/etc/hamn/db2/db2_proc_restart.rp \(s)/etc/hamn/db2/db2.conf \(node):/etc/hamn/db2/",
            "scp -p \(s)/etc/hamn/db2/reg.parms.SAMPLE \(node):/etc/hamn/db2/reg.parms.\(database)",
            "scp -p \(s)/etc/hamn/db2/failover.parms.SAMPLE \(node):/etc/hamn/db2/failover.parms.\(database)",
            "scp -p \(s)/etc/hamn/hooks/network_down/50-db2-net_down \(node):/etc/hamn/hooks/network_down/",
            "ssh -o BatchMode=yes \(node) /usr/local/sbin/db2_inst_ha --merge /etc/hamn/rules.hacmprd /etc/hamn/db2/rules.hacmprd",
        ]
    }

    @Test(
        "db2_inst_ha puts the scripts, rules and renamed parms files on each node of a numbered range, then merges the rules there"
    )
    func install() throws {
        let node = try Node()
        // Run from the checkout as the README says: it finds the shipped rules' hamn_functions.
        let result = try node.box.run(Repo.db2Bin + "/db2_inst_ha", [Self.sample, "1-2", "PRODDB"])
        #expect(result.status == 0, "\(result.err)")
        #expect(
            node.box.commands == Self.installCommands("aixmn1", database: "PRODDB")
                + Self.installCommands("aixmn2", database: "PRODDB"))
        #expect(result.logLines.last == "db2_inst_ha: installed on aixmn1 aixmn2 ")

        // A node that cannot be reached does not stop the others, and the exit status says so.
        try node.box.clearLog()
        try node.box.standIn("ssh", #"[ "$3" = aixmn1 ] && exit 255; exit 0"#)
        let partial = try node.box.run(
            Repo.db2Bin + "/db2_inst_ha", [Self.sample, "aixmn1,aixmn2", "PRODDB"],
            environment: ["HAMN_FUNCTIONS": Repo.functions])
        #expect(partial.status == 1)
        #expect(
            node.box.commands == [Self.installCommands("aixmn1", database: "PRODDB")[0]]
                + Self.installCommands("aixmn2", database: "PRODDB"))
        #expect(partial.logLines.last == "db2_inst_ha: error: not installed on: aixmn1")
    }

    @Test(
        "db2_inst_ha --merge adds the DB2 definitions once (again: replaced, not doubled), validated, and reloads the service"
    )
    func merge() throws {
        let node = try Node()
        let etc = node.box.root + "/etc/hamn"
        // The node's tree: the shipped rules, and the DB2 files db2_inst_ha copied.
        for (source, target) in [
            (repositoryRoot + "/rules/etc/hamn", etc), (Self.sample + "/etc/hamn/db2", etc + "/db2"),
        ] {
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            #expect(try node.box.run("/bin/cp", ["-a", source + "/.", target + "/"]).status == 0)
        }
        let rules = etc + "/rules.hacmprd"
        let shipped = try #require(node.box.read(rules))
        try node.box.standIn("systemctl", #"exit 0"#)
        try node.box.standIn("hamn-events", #"exit 0"#)
        let environment = ["HAMN_FUNCTIONS": Repo.functions]
        for _ in 0..<2 {
            try node.box.clearLog()
            let result = try node.box.run(
                Repo.db2Bin + "/db2_inst_ha", ["--merge", rules, etc + "/db2/rules.hacmprd"], environment: environment)
            #expect(result.status == 0, "\(result.err)")
            let commands = node.box.commands
            #expect(commands.count == 3)
            #expect(commands.first?.hasPrefix("hamn-events validate \(rules).new.") == true)
            #expect(
                commands.dropFirst() == ["systemctl is-active --quiet hamn-events", "systemctl reload hamn-events"])
        }
        let merged = try #require(node.box.read(rules))
        let addition = try #require(node.box.read(etc + "/db2/rules.hacmprd"))
        #expect(
            merged
                == shipped
                + "##### hamn-events DB2 sample: begin (db2_inst_ha --merge; do not edit down to the end line)\n"
                + addition + "##### hamn-events DB2 sample: end\n")
        #expect(node.box.read(rules + ".bak") == merged, "the copy kept before the second merge")
        // The merged rules are what the service will load: shipped events and DB2 events, clean.
        let report = Validator(options: .init(root: node.box.root)).validate([rules])
        #expect(report.diagnostics.map(\.message) == [])
        #expect(report.definitions == 15)

        // Rules that do not validate are not installed.
        try node.box.clearLog()
        try node.box.standIn("hamn-events", #"exit 1"#)
        let refused = try node.box.run(
            Repo.db2Bin + "/db2_inst_ha", ["--merge", rules, etc + "/db2/rules.hacmprd"], environment: environment)
        #expect(refused.status == 1)
        #expect(node.box.commands.count == 1)
        #expect(node.box.read(rules) == merged)
        #expect(try FileManager.default.contentsOfDirectory(atPath: etc).filter { $0.contains(".new.") } == [])
    }
}
