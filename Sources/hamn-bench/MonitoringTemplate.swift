import RulesEngine

/// How the benchmark writes Event Management definitions (rules fields 6 to 9) for one built-in
/// resource variable: the instance vectors, predicates and rearm predicates an administrator
/// would write for it (SPEC sections 4 and 5), with thresholds drawn at random so that the
/// file is not the same few lines over and over.
struct MonitoringTemplate: Sendable {
    typealias Text = @Sendable (inout SeededGenerator) -> String

    var variable: String
    /// The stem of the generated event names, e.g. `paging_high`.
    var eventStem: String
    var instances: [Text]
    var predicates: [Text]
    /// Never the same expression as a predicate: that would be R022.
    var rearms: [Text]

    /// One template per built-in variable, in the proportions a cluster's rules file has them.
    static let all: [MonitoringTemplate] = [
        paging(used: true), paging(used: false), memory, fileSystem, cpu, processCount, hadr, fileAge,
    ]

    // MARK: Scalar percentages

    /// Predicates for a percentage that is bad when high: arithmetic, hex, lists, previous
    /// values, word operators and both qualifiers.
    private static let highPercentage: [Text] = [
        { "X > \($0.int(60...98))" },
        { rng in
            let n = rng.int(60...98)
            return "X >= \(n) && X@P < \(n)"
        },
        { "X * 100 / 128 > \($0.int(40...90))" },
        { "(X - X@P) > \($0.int(5...30)) || X > \($0.int(80...98)) __QUAL_COUNT(3, 5)" },
        { _ in "X IN {90, 95, 99, 100}" },
        { "X NOT IN {0, 1, 2} && X > \($0.int(50...90))" },
        { "X > 0x\($0.hex(0x30...0x62))" },
        { "X > \($0.int(70...95)) && __QUAL_COUNT(\($0.int(2...3)), 5)" },
        { rng in
            let n = rng.int(60...95)
            return "X >= \(n) AND X@P >= \(n) OR X == 100"
        },
        { "!(X < \($0.int(50...95)))" },
        { "X % 10 == 0 && X << 1 > \($0.int(100...190))" },
        { "X >= \($0.int(60...95)).5" },
        { "X > \($0.int(60...95)) __QUAL_RATE(3, \($0.int(30...300)))" },
        { "(X & 0xFF) >> 1 >= \($0.int(30...49)) | X > 99" },
        { "-X < -\($0.int(60...95))" },
    ]

    private static let lowPercentage: [Text] = [
        { "X < \($0.int(2...20))" },
        { rng in
            let n = rng.int(2...20)
            return "X <= \(n) && X@P > \(n)"
        },
        { "X < \($0.int(5...15)) __QUAL_COUNT(2, 4)" },
        { _ in "X IN {0, 1, 2, 3}" },
        { "X / 2 < \($0.int(2...10)) AND X >= 0" },
    ]

    private static let highRearm: [Text] = [
        { "X < \($0.int(30...59))" },
        { "X <= \($0.int(30...59)) __QUAL_COUNT(2, 3)" },
        { rng in
            let n = rng.int(30...59)
            return "X < \(n) && X@P < \(n)"
        },
        { "~X != 0 && X < \($0.int(30...59))" },
        { "X <> 100 AND X < 0x\($0.hex(0x20...0x3B))" },
    ]

    private static let lowRearm: [Text] = [
        { "X > \($0.int(25...60))" },
        { "X >= \($0.int(25...60)) __QUAL_COUNT(3, 3)" },
        { _ in "X NOT IN {0, 1, 2, 3, 4, 5}" },
    ]

    private static let eachNode: [Text] = [
        { _ in "NodeNum=*" },
        { "NodeNum=\($0.int(1...64))" },
    ]

    private static func paging(used: Bool) -> MonitoringTemplate {
        MonitoringTemplate(
            variable: used ? "IBM.PSSP.aixos.PagSp.%totalused" : "IBM.PSSP.aixos.PagSp.%totalfree",
            eventStem: used ? "paging_high" : "paging_low", instances: eachNode,
            predicates: used ? highPercentage : lowPercentage, rearms: used ? highRearm : lowRearm)
    }

    private static let memory = MonitoringTemplate(
        variable: "IBM.PSSP.aixos.Mem.Real.%free", eventStem: "memory_low", instances: eachNode,
        predicates: lowPercentage, rearms: lowRearm)

    private static let cpu = MonitoringTemplate(
        variable: "IBM.PSSP.aixos.CPU.glidle", eventStem: "cpu_busy", instances: eachNode,
        predicates: lowPercentage, rearms: lowRearm)

    private static let fileSystem = MonitoringTemplate(
        variable: "IBM.PSSP.aixos.FS.%totused", eventStem: "fs_full",
        instances: [
            { _ in "NodeNum=*;Name=/var" },
            { "Name=/tmp;NodeNum=\($0.int(1...64))" },
            { _ in "NodeNum=*;Name=/install" },
            { _ in "Name=/etc/xcat;NodeNum=*" },
            { _ in "NodeNum=*;Name=/db2home" },
        ],
        predicates: highPercentage, rearms: highRearm)

    // MARK: Structured values

    private static let processCount = MonitoringTemplate(
        variable: "IBM.PSSP.Prog.pcount", eventStem: "process_died",
        instances: [
            { _ in "ProgName=nfsd;UserName=root;NodeNum=*" },
            { _ in "ProgName=db2sysc;UserName=db2inst1;NodeNum=*" },
            { "ProgName=xcatd;UserName=root;NodeNum=\($0.int(1...64))" },
            { _ in "ProgName=rpc.mountd;UserName=root;NodeNum=*" },
            { _ in "ProgName=dhcpd;UserName=root;NodeNum=*" },
        ],
        predicates: [
            { _ in "X@0 < X@1" },
            { _ in "X@0 == 0" },
            { "X.CurPIDCount < \($0.int(2...16))" },
            { "X@0 < X@1 && X@0 < \($0.int(2...16))" },
            { _ in "X.CurPIDList !~ \"^[0-9 ]+$\"" },
            { _ in "X@2 LIKE \"\" || X@0 >< {4, 8, 16}" },
            { _ in "X.CurPIDCount < X.PrevPIDCount __QUAL_COUNT(2, 3)" },
        ],
        rearms: [
            { "X@0 >= \($0.int(1...16))" },
            { _ in "X@0 == X@1 && X@0 > 0" },
            { _ in "X.CurPIDCount > 0" },
            { _ in "X@2 =~ \"^[0-9]+( [0-9]+)*$\"" },
        ])

    private static let hadr = MonitoringTemplate(
        variable: "HAMN.DB2.HADR", eventStem: "hadr_not_peer",
        instances: [
            { _ in "Database=XCATDB;NodeNum=*" },
            { "Database=SAMPLE;NodeNum=\($0.int(1...8))" },
            { _ in "NodeNum=*;Database=BLUDB" },
        ],
        predicates: [
            { _ in "X.Role != \"Primary\" && X.Role != \"Standby\" || X.State != \"Peer\"" },
            { _ in "X.State !~ \"^(Peer|RemoteCatchup)$\"" },
            { _ in "X.SyncMode LIKE \"NEAR%\" && X.State <> \"Peer\"" },
            { _ in "X.ConnectStatus NOT LIKE \"Conn%\"" },
            { _ in "X.ConnectStatus ?= \"Disconn_cted\"" },
            { "X.HeartBeatsMissed > \($0.int(1...5)) || X.LogGap >= 0x\($0.hex(0x100...0xFFFF))" },
            { _ in "X.State NOT IN {\"Peer\", \"RemoteCatchup\"}" },
            { "X@3 == \"Disconnected\" OR X@4 > \($0.int(1...5))" },
            { "X.LogGap > \($0.int(1000...100000)) __QUAL_COUNT(3, 5)" },
            { _ in "X.State = \"DisconnectedPeer\" AND X.HeartBeatsMissed@P >= 1" },
        ],
        rearms: [
            { _ in "X.State == \"Peer\"" },
            { "X.ConnectStatus = \"Connected\" && X.LogGap < \($0.int(100...1000))" },
            { _ in "X.State |< {\"Peer\", \"RemoteCatchup\"}" },
            { _ in "X.Role IN {\"Primary\", \"Standby\"} AND X.State =~ \"^Peer$\"" },
        ])

    private static let fileAge = MonitoringTemplate(
        variable: "HAMN.File.Age", eventStem: "sync_stale",
        instances: [
            { _ in "Name=/etc/xcat/.sync-stamp;NodeNum=*" },
            { "Name=/install/.rsync-stamp;NodeNum=\($0.int(1...64))" },
            { _ in "NodeNum=*;Name=/var/lib/hamn/heartbeat" },
        ],
        predicates: [
            { "X > \($0.int(600...7200))" },
            { "X >= \($0.int(3600...86400)) __QUAL_COUNT(2, 2)" },
            { "X / 60 > \($0.int(10...120))" },
            { "X > 1.5e\($0.int(3...4))" },
        ],
        rearms: [
            { "X < \($0.int(60...599))" },
            { "X <= \($0.int(60...599)) AND X@P > X" },
        ])
}
