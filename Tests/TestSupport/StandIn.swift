/// The text of a stand-in for the program `name` (DB2, xCAT and system tools cannot run here):
/// it appends one line to `log`, its name and arguments (those with blanks or shell
/// metacharacters quoted), then runs `body`. Tests assert the lines the scripts made.
public func standInScript(_ name: String, log: String, body: String = "exit 0") -> String {
    """
    #!/bin/sh
    line=\(name)
    for a in "$@"; do
        case $a in
        '' | *[!A-Za-z0-9_./:=@%+,-]*) line="$line '$a'" ;;
        *) line="$line $a" ;;
        esac
    done
    printf '%s\\n' "$line" >>"\(log)"
    \(body)

    """
}

/// What the xCAT sample's failover (samples/xcat-hamn, seed section 8) asks of DB2, the network
/// and xCAT on the standby aixmn2 taking over from aixmn1, in order, with the sample's settings.
public let xcatFailoverCommands = [
    "db2pd -d XCATDB -hadr",
    "db2 takeover hadr on database XCATDB by force",
    "db2 stop hadr on database XCATDB",
    "db2 connect reset",
    "db2 force applications all",
    "db2 terminate",
    "db2stop",
    "ip -o addr show dev eth1",
    "ip addr add 9.114.47.103/26 dev eth1",
    "arping -U -c 3 -I eth1 9.114.47.103",
    "hostnamectl set-hostname aixmn1",
    "db2gcf -u -p 0 -i xcatdb",
    "systemctl start xcatd",
    "makedns -n",
    "makedhcp -n",
    "makedhcp -a",
    "makeconservercf",
    "wall 'hamn-events: aixmn2 is now the xCAT management node (9.114.47.103/26): check the OS deployment setup (section 8.8)'",
]

/// `db2pd -d xcatdb -hadr` of DB2 9.7, as the xCAT document shows it, on a healthy standby
/// (Standby, Peer, Connected).
public let db2pdStandbyPeer = """

    Database Partition 0 -- Database XCATDB -- Active -- Up 0 days 01:17:11

    HADR Information:
    Role    State                SyncMode HeartBeatsMissed   LogGapRunAvg (bytes)
    Standby Peer                 Nearsync 0                  0

    ConnectStatus ConnectTime                           Timeout
    Connected     Thu Aug  5 20:33:00 2010 (1281011580) 3

    """
