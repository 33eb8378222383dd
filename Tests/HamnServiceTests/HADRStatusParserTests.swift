import HamnService
import RulesEngine
import Testing

/// The texts of the xCAT HAMN document, section 5.1.8, as the document shows them.
private enum Seed {
    /// `db2 GET SNAPSHOT FOR DB ON XCATDB`, "HADR Status": its lines as the document prints
    /// them (the two code blocks and their wrapped lines included).
    static let snapshot = """
        ```
        db2 GET SNAPSHOT FOR DB ON XCATDB

        HADR Status
        ```

        ```

        Role = Primary
        State = Peer
        Synchronization mode = Nearsync
        Connection status = Connected, 08/05/2010
        20:33:00.412948
        Peer window end = 08/05/2010 21:03:07.000000
        (1281013387)
        Peer window (seconds) = 120
        Heartbeats missed = 0
        Local host = 9.114.47.103
        Local service = DB2_HADR_1
        Remote host = 9.114.47.104
        Remote service = DB2_HADR_2
        Remote instance = xcatdb
        timeout(seconds) = 3
        Primary log position(file, page, LSN) = S0000002.LOG, 18,
        000000000FA18D7C
        Standby log position(file, page, LSN) = S0000002.LOG, 18,
        000000000FA18D7C
        Log gap running average(bytes) = 0

        ```
        """

    /// `db2pd -d xcatdb -hadr` as the document renders it: markdown tables.
    static let db2pdTables = """
        **db2pd -d xcatdb -hadr**

        Database Partition 0 -- Database XCATDB -- Active -- Up 0 days 01:17:11

        HADR Information:

        |         |       |          |                  |
        |---------|-------|----------|------------------|
        | Role    | State | SyncMode | HeartBeatsMissed |
        | Primary | Peer  | Nearsync | 0                |

        |               |                                      |         |
        |---------------|--------------------------------------|---------|
        | ConnectStatus | ConnectTime                          | Timeout |
        | Connected     | Thu Aug 5 20:33:00 2010 (1281011580) | 3       |

        |                                      |            |
        |--------------------------------------|------------|
        | PeerWindowEnd                        | PeerWindow |
        | Thu Aug 5 21:52:07 2010 (1281016327) | 120        |

        |              |              |
        |--------------|--------------|
        | LocalHost    | LocalService |
        | 9.114.47.103 | DB2_HADR_1   |

        |                |               |
        |----------------|---------------|
        | RemoteHost     | RemoteService |
        | RemoteInstance | DB2_HADR_2    |
        | 9.114.47.104   |               |
        | xcatdb         |               |

        |              |           |                    |
        |--------------|-----------|--------------------|
        | PrimaryFile  | PrimaryPg | PrimaryLSN         |
        | S0000002.LOG | 66        | 0x000000000FA4869D |

        |              |           |                    |
        |--------------|-----------|--------------------|
        | StandByFile  | StandByPg | StandByLSN         |
        | S0000002.LOG | 66        | 0x000000000FA4869D |
        """
}

/// The same status as DB2 itself prints it.
private enum Real {
    /// `db2 get snapshot for db on xcatdb`: the end of the output, indented and aligned.
    static let snapshot = """

                    Database Snapshot

        Database name                              = XCATDB
        Database path                              = /var/lib/db2/xcatdb/NODE0000/SQL00001/
        Input database alias                       = XCATDB
        Database status                            = Active
        Catalog database partition number          = 0

        HADR Status
          Role                   = Standby
          State                  = Remote catchup pending
          Synchronization mode   = Nearsync
          Connection status      = Disconnected, 08/05/2010 20:41:12.004125
          Heartbeats missed      = 2
          Local host             = 9.114.47.104
          Local service          = DB2_HADR_2
          Remote host            = 9.114.47.103
          Remote service         = DB2_HADR_1
          Remote instance        = xcatdb
          timeout(seconds)       = 3
          Primary log position(file, page, LSN) = S0000002.LOG, 18, 000000000FA18D7C
          Standby log position(file, page, LSN) = S0000002.LOG, 18, 000000000FA18D7C
          Log gap running average(bytes) = 4096

        """

    /// `db2pd -d xcatdb -hadr` on DB2 9.7: whitespace-aligned columns.
    static let db2pd97 = """

        Database Partition 0 -- Database XCATDB -- Active -- Up 0 days 01:17:11

        HADR Information:
        Role    State                SyncMode HeartBeatsMissed   LogGapRunAvg (bytes)
        Primary Peer                 Nearsync 0                  0

        ConnectStatus ConnectTime                           Timeout
        Connected     Thu Aug  5 20:33:00 2010 (1281011580) 3

        PeerWindowEnd                         PeerWindow
        Thu Aug  5 21:52:07 2010 (1281016327) 120

        LocalHost                                LocalService
        9.114.47.103                             DB2_HADR_1

        RemoteHost                               RemoteService      RemoteInstance
        9.114.47.104                             DB2_HADR_2         xcatdb

        PrimaryFile  PrimaryPg  PrimaryLSN
        S0000002.LOG 66         0x000000000FA4869D

        StandByFile  StandByPg  StandByLSN
        S0000002.LOG 66         0x000000000FA4869D

        """

    /// DB2 9.7, a standby whose primary is gone: values with spaces cut at the columns.
    static let db2pd97Catchup = """
        Database Partition 0 -- Database XCATDB -- Standby -- Up 0 days 00:02:41

        HADR Information:
        Role    State                SyncMode HeartBeatsMissed   LogGapRunAvg (bytes)
        Standby RemoteCatchupPending Nearsync 0                  0

        ConnectStatus ConnectTime                           Timeout
        Disconnected  Thu Aug  5 22:10:01 2010 (1281017401) 3
        """

    /// `db2pd -db HADRDB -hadr` on DB2 10.1 and later (IBM's documented layout), a primary
    /// with two standbys: one block each.
    static let db2pd10 = """

        Database Member 0 -- Database HADRDB -- Active -- Up 0 days 00:23:17 -- Date 06/08/2011 13:57:23

                                    HADR_ROLE = PRIMARY
                                  REPLAY_TYPE = PHYSICAL
                                HADR_SYNCMODE = NEARSYNC
                                   STANDBY_ID = 1
                                LOG_STREAM_ID = 0
                                   HADR_STATE = REMOTE_CATCHUP_PENDING
                                   HADR_FLAGS =
                          PRIMARY_MEMBER_HOST = hostP.ibm.com
                             PRIMARY_INSTANCE = db2inst
                               PRIMARY_MEMBER = 0
                          STANDBY_MEMBER_HOST = hostS1.ibm.com
                             STANDBY_INSTANCE = db2inst
                               STANDBY_MEMBER = 0
                          HADR_CONNECT_STATUS = DISCONNECTED
                     HADR_CONNECT_STATUS_TIME = 06/08/2011 13:38:10.199479 (1307565490)
                  HEARTBEAT_INTERVAL(seconds) = 25
                             HEARTBEAT_MISSED = 3
                           HEARTBEAT_EXPECTED = 21
                        HADR_TIMEOUT(seconds) = 100
                TIME_SINCE_LAST_RECV(seconds) = 3
                     PEER_WAIT_LIMIT(seconds) = 0
                   LOG_HADR_WAIT_CUR(seconds) = 0.000
            LOG_HADR_WAIT_RECENT_AVG(seconds) = 0.000705
           LOG_HADR_WAIT_ACCUMULATED(seconds) = 0.705
                          LOG_HADR_WAIT_COUNT = 1000
        SOCK_SEND_BUF_REQUESTED,ACTUAL(bytes) = 0, 16384
        SOCK_RECV_BUF_REQUESTED,ACTUAL(bytes) = 0, 87380
                    PRIMARY_LOG_FILE,PAGE,POS = S0000009.LOG, 1, 49262315
                    STANDBY_LOG_FILE,PAGE,POS = S0000009.LOG, 1, 49262315
                          HADR_LOG_GAP(bytes) = 1024
             STANDBY_REPLAY_LOG_FILE,PAGE,POS = S0000009.LOG, 1, 49262315
               STANDBY_RECV_REPLAY_GAP(bytes) = 0
                             PRIMARY_LOG_TIME = 06/08/2011 13:49:19.000000 (1307566159)
                             STANDBY_LOG_TIME = 06/08/2011 13:49:19.000000 (1307566159)
                      STANDBY_REPLAY_LOG_TIME = 06/08/2011 13:49:19.000000 (1307566159)
                 STANDBY_RECV_BUF_SIZE(pages) = 16
                     STANDBY_RECV_BUF_PERCENT = 0
                   STANDBY_SPOOL_LIMIT(pages) = 0
                        STANDBY_SPOOL_PERCENT = NULL
                         PEER_WINDOW(seconds) = 0
                     READS_ON_STANDBY_ENABLED = Y

                                    HADR_ROLE = PRIMARY
                                  REPLAY_TYPE = PHYSICAL
                                HADR_SYNCMODE = SUPERASYNC
                                   STANDBY_ID = 2
                                   HADR_STATE = REMOTE_CATCHUP
                          HADR_CONNECT_STATUS = CONNECTED
                             HEARTBEAT_MISSED = 0
                          HADR_LOG_GAP(bytes) = 0

        """
}

private func fields(_ value: SampleValue) -> [String: SampleValue.Scalar] {
    guard case .fields(let fields) = value else { return [:] }
    return Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
}

private func names(_ value: SampleValue) -> [String] {
    guard case .fields(let fields) = value else { return [] }
    return fields.map(\.name)
}

@Suite("HADR status parser")
struct HADRStatusParserTests {
    @Test("the seed's snapshot text, code fences and wrapped lines included")
    func seedSnapshot() throws {
        let status = try HADRStatusParser.parse(Seed.snapshot)
        #expect(status.layout == .snapshot)
        #expect(status.role == "Primary")
        #expect(status.state == "Peer")
        #expect(status.syncMode == "Nearsync")
        #expect(status.connectStatus == "Connected")
        #expect(status.heartBeatsMissed == 0)
        #expect(status.logGap == 0)
        #expect(names(status.value) == ["Role", "State", "SyncMode", "ConnectStatus", "HeartBeatsMissed", "LogGap"])
        #expect(
            status.value.description
                == "Role=Primary;State=Peer;SyncMode=Nearsync;ConnectStatus=Connected;HeartBeatsMissed=0;LogGap=0")
    }

    @Test("the seed's db2pd text as markdown tables")
    func seedTables() throws {
        let status = try HADRStatusParser.parse(Seed.db2pdTables)
        #expect(status.layout == .db2pdColumns)
        #expect(status.role == "Primary")
        #expect(status.state == "Peer")
        #expect(status.syncMode == "Nearsync")
        #expect(status.connectStatus == "Connected")
        #expect(status.heartBeatsMissed == 0)
        #expect(status.logGap == nil)  // the document's table lost that column: left out
        #expect(names(status.value) == ["Role", "State", "SyncMode", "ConnectStatus", "HeartBeatsMissed"])
    }

    @Test("a real snapshot: indented, the HADR section after others, words normalised")
    func realSnapshot() throws {
        let status = try HADRStatusParser.parse(Real.snapshot)
        #expect(status.layout == .snapshot)
        #expect(status.role == "Standby")
        #expect(status.state == "RemoteCatchupPending")
        #expect(status.connectStatus == "Disconnected")
        #expect(status.heartBeatsMissed == 2)
        #expect(status.logGap == 4096)
    }

    @Test("db2pd 9.7 whitespace-aligned columns")
    func realDb2pd97() throws {
        let status = try HADRStatusParser.parse(Real.db2pd97)
        #expect(status.layout == .db2pdColumns)
        #expect(
            status
                == HADRStatusParser.Status(
                    layout: .db2pdColumns, role: "Primary", state: "Peer", syncMode: "Nearsync",
                    connectStatus: "Connected",
                    heartBeatsMissed: 0, logGap: 0))
        let catchup = try HADRStatusParser.parse(Real.db2pd97Catchup)
        #expect(catchup.role == "Standby")
        #expect(catchup.state == "RemoteCatchupPending")
        #expect(catchup.connectStatus == "Disconnected")
    }

    @Test("db2pd 10+ key = value: first standby's block, words normalised")
    func db2pd10() throws {
        let status = try HADRStatusParser.parse(Real.db2pd10)
        #expect(status.layout == .db2pdKeyValue)
        #expect(status.role == "Primary")
        #expect(status.state == "RemoteCatchupPending")
        #expect(status.syncMode == "Nearsync")
        #expect(status.connectStatus == "Disconnected")
        #expect(status.heartBeatsMissed == 3)
        #expect(status.logGap == 1024)
        let value = fields(status.value)
        #expect(value["Role"] == .string("Primary"))
        #expect(value["LogGap"] == .number(1024))
    }

    @Test("every layout gives the same fields for the same state")
    func sameFields() throws {
        let peer10 = """
            HADR_ROLE = PRIMARY
            HADR_SYNCMODE = NEARSYNC
            HADR_STATE = PEER
            HADR_CONNECT_STATUS = CONNECTED
            HEARTBEAT_MISSED = 0
            HADR_LOG_GAP(bytes) = 0
            """
        let values = try [Seed.snapshot, Real.db2pd97, peer10].map { try HADRStatusParser.parse($0).value }
        #expect(values[0] == values[1])
        #expect(values[1] == values[2])
    }

    @Test(
        "normalisation to the older layouts' capitalisation",
        arguments: [
            ("PRIMARY", "Primary"), ("STANDBY", "Standby"), ("STANDARD", "Standard"), ("PEER", "Peer"),
            ("REMOTE_CATCHUP_PENDING", "RemoteCatchupPending"), ("Remote catchup pending", "RemoteCatchupPending"),
            ("RemoteCatchupPending", "RemoteCatchupPending"), ("DISCONNECTED_PEER", "DisconnectedPeer"),
            ("CONNECTED", "Connected"), ("DISCONNECTED", "Disconnected"), ("NEARSYNC", "Nearsync"),
            ("SUPERASYNC", "Superasync"), ("Nearsync", "Nearsync"), ("local catchup", "LocalCatchup"),
        ])
    func normalise(_ input: String, _ expected: String) {
        #expect(HADRStatusParser.normalise(input) == expected)
    }

    @Test("garbage, an empty output and a db2pd error are clear errors")
    func garbage() {
        #expect(throws: HADRStatusParser.ParseError.self) { try HADRStatusParser.parse("") }
        #expect(throws: HADRStatusParser.ParseError.self) {
            try HADRStatusParser.parse("\u{0}\u{7}%%%\nrandom words here\n")
        }
        do {
            _ = try HADRStatusParser.parse(
                "\nDatabase XCATDB not activated on database member 0 or this database name cannot be found in the local database directory.\n"
            )
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("no HADR status"))
            #expect(error.message.contains("Database XCATDB not activated"))
        }
        // A snapshot of a database without its HADR lines.
        #expect(throws: HADRStatusParser.ParseError.self) {
            try HADRStatusParser.parse("Database name = XCATDB\nDatabase status = Active\n")
        }
        // A role with a heartbeat count that is no number.
        #expect(throws: HADRStatusParser.ParseError.self) {
            try HADRStatusParser.parse("HADR_ROLE = PRIMARY\nHEARTBEAT_MISSED = lots\n")
        }
    }
}
