import Foundation
import TestSupport
import Testing

/// The shipped samples end to end on the real service (`hamn-events run`, loopback transport):
/// the samples' own rules and recovery programs, their scripts from this repository, a real
/// monitor sampling a real source, and stand-ins for DB2 and xCAT on the service's PATH that
/// record the commands the scripts issue.
@Suite("samples end to end on the service", .serialized, .timeLimit(.minutes(1)))
struct SampleEndToEndTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path
    static let functions = repository + "/rules/etc/hamn/events/hamn_functions"
    static let db2Bin = repository + "/samples/db2/usr/local/sbin/"
    static let xcatBin = repository + "/samples/xcat-hamn/usr/local/sbin/"

    @Test("paging: a paging sample over 90 raises db2_paging; the DB2 partitions of the node are stopped and restarted")
    func paging() throws {
        let service = try SampleService(node: "aixmn1")
        try service.installDB2Rules()
        try service.writeDB2Configuration()
        try service.standIns(["wall", "db2stop", "db2start"])
        try service.standIn("db2gcf", "exit 0")
        let paging = service.root + "/paging"
        try service.write(paging, "40\n")
        try service.start(
            configuration: """
                variables:
                  - name: IBM.PSSP.aixos.PagSp.%totalused
                    command: /bin/cat \(paging)
                    interval: 0.2s
                """,
            environment: ["HAMN_DB2_CONF": service.root + "/etc/db2.conf"])
        // Sampled at 40 and still armed: nothing ran.
        try service.harness.waitForStatus("db2_paging state 0 NodeNum=1: armed, last 40", timeout: .seconds(20))
        #expect(service.commands == [])
        try service.write(paging, "95\n")
        let expected = [
            "wall 'hamn-events: paging space on aixmn1 is 95 percent used (over 90): restarting the DB2 partitions of aixmn1'",
            "db2gcf -s -p 0 -i db2inst1",
            "db2stop force dbpartitionnum 0",
            "db2gcf -s -p 1 -i db2inst1",
            "db2stop force dbpartitionnum 1",
            "db2start dbpartitionnum 0",
            "db2start dbpartitionnum 1",
        ]
        service.expectRan(expected, event: "db2_paging", within: 20)
    }

    @Test("process death: a db2sysc process dies, db2_proc_restart restarts the partition that is down")
    func processDeath() throws {
        let service = try SampleService(node: "aixmn1")
        try service.installDB2Rules()
        try service.writeDB2Configuration()
        try service.standIn("db2start")
        // Partition 0 is down (its db2sysc is the one that dies), partition 1 is up.
        try service.standIn("db2gcf", #"[ "$1 $2 $3" = "-s -p 0" ] && exit 1; exit 0"#)
        // A real process named db2sysc, of this user.
        let program = service.root + "/proc/db2sysc"
        try FileManager.default.createDirectory(atPath: service.root + "/proc", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "/bin/sleep", toPath: program)
        let db2sysc = Process()
        db2sysc.executableURL = URL(fileURLWithPath: program)
        db2sysc.arguments = ["600"]
        try db2sysc.run()
        defer {
            if db2sysc.isRunning { kill(db2sysc.processIdentifier, SIGKILL) }
            db2sysc.waitUntilExit()
        }
        try service.start(
            configuration: """
                monitors:
                  - {variable: IBM.PSSP.Prog.pcount, interval: 0.2s}
                """,
            environment: ["HAMN_DB2_CONF": service.root + "/etc/db2.conf"])
        let user = String(cString: getpwuid(geteuid())!.pointee.pw_name)
        let seen =
            "db2_proc_restart state 0 NodeNum=1;ProgName=db2sysc;UserName=\(user): armed, last CurPIDCount=1;PrevPIDCount=1;CurPIDList=\(db2sysc.processIdentifier)"
        #expect(service.eventually(20) { service.status.contains(seen) }, "\(service.status)")
        #expect(service.commands == [])
        kill(db2sysc.processIdentifier, SIGKILL)
        db2sysc.waitUntilExit()
        let expected = ["db2gcf -s -p 0 -i db2inst1", "db2start dbpartitionnum 0", "db2gcf -s -p 1 -i db2inst1"]
        service.expectRan(expected, event: "db2_proc_restart", within: 20)
    }

    @Test(
        "HADR: db2pd turning from Peer/Connected to catch-up/Disconnected raises xcat_hadr, which notifies with the values"
    )
    func hadr() throws {
        let service = try SampleService(node: "aixmn2")
        try service.installXcatRules()
        try service.writeXcatConfiguration()
        try service.standIn("wall")
        let hadr = service.root + "/hadr"
        try service.write(hadr, db2pdStandbyPeer)
        let monitor = service.root + "/mon/db2pd"
        try FileManager.default.createDirectory(atPath: service.root + "/mon", withIntermediateDirectories: true)
        try service.write(
            monitor, "#!/bin/sh\n[ \"$1 $2 $3\" = \"-d XCATDB -hadr\" ] || exit 2\ncat \(hadr)\n", mode: 0o755)
        try service.start(
            configuration: """
                monitors:
                  - {variable: HAMN.DB2.HADR, interval: 0.2s, command: \(monitor)}
                """,
            environment: ["HAMN_XCAT_CONF": service.root + "/etc/xcat-hamn.conf"])
        #expect(
            service.eventually(20) {
                service.status.contains(
                    "xcat_hadr state 0 Database=XCATDB;NodeNum=1: armed, last Role=Standby;State=Peer;SyncMode=Nearsync;ConnectStatus=Connected;HeartBeatsMissed=0;LogGap=0"
                )
            }, "\(service.status)")
        #expect(service.commands == [])
        try service.write(
            hadr,
            "HADR_ROLE = STANDBY\nHADR_SYNCMODE = NEARSYNC\nHADR_STATE = REMOTE_CATCHUP_PENDING\nHADR_CONNECT_STATUS = DISCONNECTED\nHEARTBEAT_MISSED = 3\nHADR_LOG_GAP(bytes) = 1024\n"
        )
        let expected =
            "wall 'hamn-events: DB2 HADR of XCATDB on aixmn2 is not Primary/Standby, Peer, Connected: Role=Standby;State=RemoteCatchupPending;SyncMode=Nearsync;ConnectStatus=Disconnected;HeartBeatsMissed=3;LogGap=1024'"
        #expect(service.eventually(20) { !service.commands.isEmpty }, "\(service.output)")
        // The behaviour under test: three more samples (every 0.2 s) of the same values notify
        // no more.
        Thread.sleep(forTimeInterval: 0.6)
        #expect(service.commands == [expected], "once, not at every sample")
    }

    @Test(
        "failover: the xcat_failover recovery program runs the six steps on the standby, DB2 and xCAT commands in order"
    )
    func failover() throws {
        let service = try SampleService(node: "aixmn2")
        try service.installXcatRules()
        try service.writeXcatConfiguration()
        try service.standIns([
            "db2", "db2stop", "db2gcf", "arping", "hostnamectl", "systemctl", "makedns", "makedhcp", "makeconservercf",
            "wall",
        ])
        try service.standIn("db2pd", "printf 'HADR_ROLE = STANDBY\\nHADR_STATE = PEER\\n'")
        try service.standIn("ip", "exit 0")
        // The HADR monitor reads a healthy pair (its own program, not the recording stand-in).
        let monitor = service.root + "/mon/db2pd"
        try FileManager.default.createDirectory(atPath: service.root + "/mon", withIntermediateDirectories: true)
        try service.write(
            monitor,
            "#!/bin/sh\nprintf 'HADR_ROLE = STANDBY\\nHADR_STATE = PEER\\nHADR_CONNECT_STATUS = CONNECTED\\n'\n",
            mode: 0o755)
        try service.start(
            configuration: """
                monitors:
                  - {variable: HAMN.DB2.HADR, interval: 1s, command: \(monitor)}
                """,
            environment: ["HAMN_XCAT_CONF": service.root + "/etc/xcat-hamn.conf"])
        let trigger = try service.harness.cli(["trigger", "xcat_failover", "--node", "aixmn2"])
        #expect(trigger.status == 0, "\(trigger.err)")
        let expected = xcatFailoverCommands
        service.expectRan(expected, event: "xcat_failover", within: 30)
        let history = try service.harness.cli(["history", "--format", "json"])
        for step in [
            "xcat_hadr_takeover", "xcat_db2_stop", "xcat_takeover_address", "xcat_db2_update_config",
            "xcat_xcatd_start", "xcat_network_services",
        ] {
            #expect(history.out.contains(Self.xcatBin + step), "\(step) is journaled")
        }
    }

    @Test(
        "net_down on the service: network_up_complete in time means no recovery; none means ha-cmd TAKE and the node leaves"
    )
    func netDown() throws {
        let service = try SampleService(node: "aixmn1")
        try service.writeDB2Configuration(
            extra: "NET_SYSFS=\(service.root)/sys\nNET_DOWN_INTERFACE=sw0\nNET_DOWN_WAIT=60\n")
        try service.standIns(["wall"])
        try FileManager.default.createDirectory(atPath: service.root + "/sys/sw0", withIntermediateDirectories: true)
        try service.write(service.root + "/sys/sw0/operstate", "down\n")
        try service.write(service.root + "/etc/resources.conf", "RESOURCE_GROUPS=\"\"\nNOTIFY_COMMAND=\"wall\"\n")
        // The shipped rules, run in place.
        try service.start(
            configuration: """
                rules: \(Self.repository)/rules/etc/hamn/rules.hacmprd
                rules_root: \(Self.repository)/rules
                """,
            environment: [
                "HAMN_DB2_CONF": service.root + "/etc/db2.conf", "HAMN_RESOURCES": service.root + "/etc/resources.conf",
                "HAMN_GROUP_STATE": service.root + "/groups", "HAMN_HOOKS": service.root + "/hooks",
            ])
        let environment = service.environment.merging([
            "HAMN_DB2_CONF": service.root + "/etc/db2.conf", "HAMN_LOCAL_NODE": "aixmn1",
        ]) { _, new in new }

        // The network comes back: network_up_complete completes, the link is up, no recovery.
        // (Raised until the waiter sees one: it may not be waiting yet when the first completes.)
        let waiting = try service.spawn(Self.db2Bin + "net_down", ["--wait", "sw0"], environment: environment)
        #expect(service.eventually(20) { waiting.err.contains("waiting up to 60 s for network_up_complete") })
        try service.write(service.root + "/sys/sw0/operstate", "up\n")
        for _ in 0..<20 where waiting.process.isRunning {
            #expect(try service.harness.cli(["trigger", "network_up_complete"]).status == 0)
            _ = service.eventually(2) { !waiting.process.isRunning }
        }
        #expect(!waiting.process.isRunning)
        #expect(waiting.process.terminationStatus == 0)
        #expect(
            waiting.err.contains("net_down: network_up_complete: sw0 is up again on aixmn1: no recovery"),
            "\(waiting.err)")
        #expect(service.process?.isRunning == true)

        // It does not: after NET_DOWN_WAIT, ha-cmd TAKE stops cluster services here (the
        // shipped node_down_takeover runs; its complete step notifies) and the node leaves.
        try service.write(service.root + "/sys/sw0/operstate", "down\n")
        let configuration = try #require(service.read(service.root + "/etc/db2.conf"))
        try service.write(service.root + "/etc/db2.conf", configuration + "NET_DOWN_WAIT=1\n")
        let late = try service.spawn(Self.db2Bin + "net_down", ["--wait", "sw0"], environment: environment)
        #expect(service.eventually(20) { !late.process.isRunning })
        #expect(late.process.terminationStatus == 0, "\(late.err)")
        #expect(
            late.err.contains("net_down: sw0 still down after 1 s: stopping cluster services on aixmn1 with takeover"))
        #expect(service.eventually(20) { service.process?.isRunning == false }, "the node left: \(service.output)")
        #expect(service.commands == ["wall 'hamn-events: cluster services stopped on aixmn1 (with takeover)'"])
    }
}

/// The service of ServiceHarness's tree, started with an environment of our own: PATH is the
/// stand-ins then a few safe tools, so the sample scripts it runs reach only the stand-ins.
final class SampleService: @unchecked Sendable {
    let harness: ServiceHarness
    let node: String
    private(set) var process: Process?
    private var spawned: [Process] = []
    private let lock = NSLock()
    private var outputText = ""

    var root: String { harness.root }
    var standInDirectory: String { root + "/standins" }
    var safeDirectory: String { root + "/safe" }
    var logPath: String { root + "/out/commands" }

    static let safeTools = [
        "sh", "cat", "awk", "sed", "grep", "tr", "cut", "sort", "head", "tail", "wc", "date", "mkdir", "rm", "mv", "cp",
        "chmod", "touch", "stat", "id", "uname", "sleep", "setsid", "env", "basename", "dirname",
    ]

    init(node: String) throws {
        self.node = node
        harness = try ServiceHarness(definitions: [])
        for directory in [standInDirectory, safeDirectory] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o755)
        }
        for tool in Self.safeTools {
            guard
                let path = ["/usr/bin/", "/bin/"].map({ $0 + tool }).first(where: {
                    FileManager.default.isExecutableFile(atPath: $0)
                })
            else { continue }
            try FileManager.default.createSymbolicLink(atPath: safeDirectory + "/" + tool, withDestinationPath: path)
        }
        try write(logPath, "")
    }

    deinit {
        for child in spawned + [process].compactMap({ $0 }) where child.isRunning {
            kill(child.processIdentifier, SIGKILL)
            child.waitUntilExit()
        }
    }

    func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try harness.write(path, text, mode: mode)
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A stand-in on the service's PATH: records `name ARGS` (an argument quoted when it holds
    /// anything but letters, digits and _./:=@%+,-), then runs `body`.
    func standIn(_ name: String, _ body: String = "exit 0") throws {
        try write(standInDirectory + "/" + name, standInScript(name, log: logPath, body: body), mode: 0o755)
    }

    func standIns(_ names: [String]) throws {
        for name in names { try standIn(name) }
    }

    var commands: [String] {
        (read(logPath) ?? "").split(separator: "\n").map(String.init)
    }

    var environment: [String: String] {
        [
            "PATH": standInDirectory + ":" + safeDirectory, "HOME": root, "HAMN_SYSLOG": "0",
            "HAMN_FUNCTIONS": SampleEndToEndTests.functions, "HAMN_SOCKET": harness.socketPath,
            "HAMN_EVENTS_BIN": ServiceHarness.binary,
        ]
    }

    /// A sample's rules and .rp files, copied into the tree with their paths made to point at
    /// it (`etcPrefix` → tree/etc/) and their commands at this repository's scripts.
    private func installRules(_ rules: String, programs: [String], etcPrefix: String, binPrefix: String) throws {
        func rewrite(_ text: String) -> String {
            text.replacingOccurrences(of: etcPrefix, with: root + "/etc/")
                .replacingOccurrences(of: "/usr/local/sbin/", with: binPrefix)
                .replacingOccurrences(
                    of: "UserName=db2inst1", with: "UserName=\(String(cString: getpwuid(geteuid())!.pointee.pw_name))"
                )
                .replacingOccurrences(of: "/var/lib/hamn-xcat/", with: root + "/stamp/")
        }
        try write(harness.rulesPath, rewrite(try String(contentsOfFile: rules, encoding: .utf8)))
        let directory =
            URL(fileURLWithPath: rules).deletingLastPathComponent().path + "/"
            + (etcPrefix.hasSuffix("xcat/") ? "xcat/" : "")
        for program in programs {
            try write(
                root + "/etc/" + program, rewrite(try String(contentsOfFile: directory + program, encoding: .utf8)))
        }
    }

    func installDB2Rules() throws {
        try installRules(
            SampleEndToEndTests.repository + "/samples/db2/etc/hamn/db2/rules.hacmprd",
            programs: ["db2_paging.rp", "db2_proc_restart.rp", "db2_nfs.rp"], etcPrefix: "/etc/hamn/db2/",
            binPrefix: SampleEndToEndTests.db2Bin)
    }

    func installXcatRules() throws {
        try installRules(
            SampleEndToEndTests.repository + "/samples/xcat-hamn/etc/hamn/rules.hacmprd",
            programs: ["failover.rp", "takeover.rp", "failover_manual.rp", "notify_other.rp", "notify.rp"],
            etcPrefix: "/etc/hamn/xcat/", binPrefix: SampleEndToEndTests.xcatBin)
    }

    /// Node aixmn1 with partitions 0 and 1 (db2nodes.cfg), DB2 commands as the scripts' user.
    func writeDB2Configuration(extra: String = "") throws {
        try write(root + "/etc/db2nodes.cfg", "0 aixmn1 0\n1 aixmn1 1\n2 aixmn2 0\n")
        try write(
            root + "/etc/db2.conf",
            """
            DB2INSTANCE=db2inst1
            DB2_RUN_AS=
            DB2NODES_CFG=\(root)/etc/db2nodes.cfg
            PARTITIONS="aixmn1:0,1 aixmn2:2"
            DATABASES="SAMPLE"
            PARMS_DIR=\(root)/etc
            \(extra)
            """)
    }

    func writeXcatConfiguration() throws {
        try write(
            root + "/etc/xcat-hamn.conf",
            """
            XCAT_NODES="aixmn1 aixmn2"
            XCAT_DATABASE=XCATDB
            DB2INSTANCE=xcatdb
            DB2_RUN_AS=
            XCAT_ADDRESS="9.114.47.103/26"
            XCAT_INTERFACE=eth1
            XCAT_HOSTNAME=aixmn1
            XCAT_PATH=
            XCAT_STATE_DIR=\(root)/xcat-state
            NOTIFY_COMMAND="wall"

            """)
    }

    /// Starts `hamn-events run` on this tree's configuration plus `configuration`, with the
    /// stand-in environment plus `environment`.
    func start(configuration: String, environment extra: [String: String]) throws {
        var text = """
            node: \(node)
            rules: \(harness.rulesPath)
            journal: \(harness.journalPath)
            socket: \(harness.socketPath)
            config_too_long: 300s
            http: {port: 0}

            """
        if configuration.hasPrefix("rules:") {
            text = text.replacingOccurrences(of: "rules: \(harness.rulesPath)\n", with: "")
        }
        try write(harness.configPath, text + configuration + "\n")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
        process.arguments = ["run", "--config", harness.configPath]
        process.environment = environment.merging(extra) { _, new in new }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard !data.isEmpty, let self else { return }
            self.lock.lock()
            self.outputText += String(decoding: data, as: UTF8.self)
            self.lock.unlock()
        }
        try process.run()
        self.process = process
        try waitUntil("the service to answer `status`", poll: .milliseconds(50), observed: { self.output }) {
            guard process.isRunning else { throw ServiceError("the service exited while starting:\n\(self.output)") }
            return (try? harness.cli(["status"]))?.status == 0
        }
    }

    var output: String {
        lock.lock()
        defer { lock.unlock() }
        return outputText
    }

    var status: String { (try? harness.cli(["status"]))?.out ?? "" }
    var history: String { (try? harness.cli(["history"]))?.out ?? "" }

    /// The stand-ins recorded exactly `expected`, and `event` completed (its own history line).
    func expectRan(
        _ expected: [String], event: String, within seconds: Double, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(eventually(seconds) { commands.count >= expected.count }, "\(output)", sourceLocation: sourceLocation)
        #expect(commands == expected, sourceLocation: sourceLocation)
        #expect(
            eventually {
                history.split(separator: "\n").contains {
                    $0.contains(": \(event) state ") && $0.contains(" completed ")
                }
            }, "\(history)", sourceLocation: sourceLocation)
    }

    func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        holdsWithin(.seconds(seconds), poll: .milliseconds(50), condition)
    }

    /// A process of ours, its standard error collected.
    final class Child: @unchecked Sendable {
        let process = Process()
        private let lock = NSLock()
        private var text = ""
        var err: String {
            lock.lock()
            defer { lock.unlock() }
            return text
        }
        fileprivate func append(_ data: Data) {
            lock.lock()
            text += String(decoding: data, as: UTF8.self)
            lock.unlock()
        }
    }

    func spawn(_ path: String, _ arguments: [String], environment: [String: String]) throws -> Child {
        let child = Child()
        child.process.executableURL = URL(fileURLWithPath: path)
        child.process.arguments = arguments
        child.process.environment = environment
        child.process.standardOutput = FileHandle.nullDevice
        let pipe = Pipe()
        child.process.standardError = pipe
        pipe.fileHandleForReading.readabilityHandler = { handle in
            let data = handle.availableData
            if !data.isEmpty { child.append(data) }
        }
        try child.process.run()
        spawned.append(child.process)
        return child
    }
}
