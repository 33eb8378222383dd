import HamnService
import RulesEngine
import Testing

@Suite("monitor parsers")
struct MonitorParserTests {
    static let memInfo = """
        MemTotal:       16318480 kB
        MemFree:         1234567 kB
        MemAvailable:    4079620 kB
        Buffers:          200000 kB
        Cached:          3000000 kB
        SwapCached:            0 kB
        SwapTotal:       2097148 kB
        SwapFree:        1572861 kB
        HugePages_Total:       0
        """

    @Test("/proc/meminfo: swap used and free, available memory")
    func memInfo() {
        let values = ProcParsers.memInfo(Self.memInfo)
        #expect(values["MemTotal"] == 16_318_480)
        #expect(values["HugePages_Total"] == 0)
        let swap = ProcParsers.swapPercent(memInfo: values)
        #expect(swap?.used == 25)
        #expect(swap?.free == 75)
        #expect(ProcParsers.memoryFreePercent(memInfo: values) == 25)
    }

    @Test("no swap: 0 % used, 100 % free; an old kernel without MemAvailable")
    func noSwap() throws {
        let values = ProcParsers.memInfo(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 100 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
        let swap = try #require(ProcParsers.swapPercent(memInfo: values))
        #expect(swap == (used: 0, free: 100))
        #expect(ProcParsers.memoryFreePercent(memInfo: values) == 25)
        #expect(ProcParsers.swapPercent(memInfo: ProcParsers.memInfo("MemTotal: 5 kB\n")) == nil)
        #expect(ProcParsers.memoryFreePercent(memInfo: [:]) == nil)
    }

    @Test("/proc/stat pairs: idle + iowait over all ticks")
    func cpu() throws {
        let first = try #require(
            ProcParsers.cpuTimes(
                "cpu  100 0 100 700 100 0 0 0 50 0\ncpu0 50 0 50 350 50 0 0 0 25 0\nintr 12345\n"))
        #expect(first == ProcParsers.CPUTimes(total: 1000, idle: 800))
        let second = try #require(ProcParsers.cpuTimes("cpu  150 0 150 1500 200 0 0 0 90 0\n"))
        // 1000 more ticks, 900 of them idle or waiting.
        #expect(ProcParsers.idlePercent(from: first, to: second) == 90)
        #expect(ProcParsers.idlePercent(from: second, to: second) == nil)
        // iowait going backwards does not give a negative idle.
        let backwards = ProcParsers.CPUTimes(total: 2100, idle: 700)
        #expect(ProcParsers.idlePercent(from: second, to: backwards) == 0)
        #expect(ProcParsers.cpuTimes("intr 1 2 3\n") == nil)
    }

    @Test("/proc/self/mounts: escapes, pseudo file systems, mounted over")
    func mounts() {
        let text = """
            overlay / overlay rw,relatime,lowerdir=/a,upperdir=/b 0 0
            proc /proc proc rw,nosuid 0 0
            tmpfs /dev tmpfs rw,nosuid 0 0
            devpts /dev/pts devpts rw 0 0
            sysfs /sys sysfs ro 0 0
            cgroup /sys/fs/cgroup cgroup2 ro 0 0
            /dev/sda1 /var ext4 rw 0 0
            /dev/sdb1 /srv/my\\040data xfs rw 0 0
            /dev/loop3 /snap/core/1 squashfs ro 0 0
            nfs:/export /home nfs4 rw 0 0
            /dev/sdc1 /mnt ext4 rw 0 0
            tmpfs /mnt tmpfs rw 0 0
            """
        let parsed = ProcParsers.mounts(text)
        #expect(parsed.count == 12)
        #expect(parsed[7] == ProcParsers.Mount(device: "/dev/sdb1", mountPoint: "/srv/my data", type: "xfs"))
        // /mnt is a tmpfs now (mounted over the ext4): skipped.
        #expect(ProcParsers.realMountPoints(parsed) == ["/", "/var", "/srv/my data", "/home"])
    }

    @Test("df's percent used")
    func fileSystemPercent() {
        // used 60, available 20 (10 reserved for root): 60 / 80.
        #expect(ProcParsers.fileSystemUsedPercent(blocks: 100, free: 40, available: 20) == 75)
        #expect(ProcParsers.fileSystemUsedPercent(blocks: 0, free: 0, available: 0) == nil)
        #expect(ProcParsers.fileSystemUsedPercent(blocks: 3, free: 2, available: 2) == 33.33)
    }

    @Test("/proc/<pid>/stat: a command name with spaces and parentheses")
    func processStat() {
        let odd = ProcParsers.processStat(
            "4242 (my (odd) prog)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0\n")
        #expect(odd == ProcParsers.ProcessStat(pid: 4242, command: "my (odd) prog)", state: "S"))
        #expect(odd?.isLive == true)
        let zombie = ProcParsers.processStat("77 (nfsd) Z 2 0 0 0 -1")
        #expect(zombie?.command == "nfsd")
        #expect(zombie?.isLive == false)
        #expect(ProcParsers.processStat("garbage") == nil)
        #expect(ProcParsers.processStat("12 (x)") == nil)
    }

    @Test("/proc/<pid>/status: the real uid")
    func status() {
        let text =
            "Name:\tdb2sysc\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t1200\nUid:\t1001\t0\t0\t0\nGid:\t100\t100\t100\t100\n"
        #expect(ProcParsers.realUserID(status: text) == 1001)
        #expect(ProcParsers.realUserID(status: "Name:\tx\n") == nil)
    }

    @Test("program matching: comm cut to 15 bytes, argv[0]'s base name")
    func programMatching() {
        #expect(ProcParsers.commandName(of: "averyveryverylongdaemon") == "averyveryverylo")
        #expect(
            ProcParsers.processMatches(
                program: "averyveryverylongdaemon", command: "averyveryverylo", argumentZero: nil))
        #expect(ProcParsers.processMatches(program: "nfsd", command: "nfsd", argumentZero: nil))
        #expect(ProcParsers.processMatches(program: "db2sysc", command: "db2sysc 0", argumentZero: "db2sysc"))
        #expect(!ProcParsers.processMatches(program: "nfsd", command: "nfsd4", argumentZero: "nfsd4"))
        #expect(ProcParsers.argumentZeroBaseName(cmdline: Array("/opt/ibm/db2/bin/db2sysc\0-x\0".utf8)) == "db2sysc")
        #expect(ProcParsers.argumentZeroBaseName(cmdline: Array("xcatd: SSL listener\0".utf8)) == "xcatd: SSL listener")
        #expect(ProcParsers.argumentZeroBaseName(cmdline: []) == nil)
    }

    @Test("command output: number")
    func numberOutput() throws {
        #expect(try CommandOutputParser.parse("42\n", parser: .number) == .number(42))
        #expect(try CommandOutputParser.parse("  -3.5e2 ", parser: .number) == .number(-350))
        #expect(try CommandOutputParser.parse("0x1F", parser: .number) == .number(31))
        for garbage in ["", "42 files", "1\n2", "nan", "inf", "abc", "--1"] {
            #expect(throws: SamplerError.self, "\(garbage)") { try CommandOutputParser.parse(garbage, parser: .number) }
        }
    }

    @Test("command output: string and fields")
    func fieldsOutput() throws {
        #expect(try CommandOutputParser.parse("  hello world \n", parser: .string) == .string("hello world"))
        let text = "# counters\nqueued = 12\nstate = running\n\nlabel = \"007\"\nqueued = 13\n"
        #expect(
            try CommandOutputParser.parse(text, parser: .fields)
                == .fields([
                    .init("queued", .number(13)), .init("state", .string("running")), .init("label", .string("007")),
                ]))
        // Declared fields: only those, in their order, with their types.
        let declared = try CommandOutputParser.parse(
            text, parser: .fields,
            fields: [
                (name: "state", isNumber: false), (name: "queued", isNumber: true), (name: "gone", isNumber: true),
            ])
        #expect(declared == .fields([.init("state", .string("running")), .init("queued", .number(13))]))
        #expect(throws: SamplerError.self) {
            try CommandOutputParser.parse(text, parser: .fields, fields: [(name: "state", isNumber: true)])
        }
        #expect(throws: SamplerError.self) { try CommandOutputParser.parse("just words\n", parser: .fields) }
        #expect(throws: SamplerError.self) { try CommandOutputParser.parse("bad key = 1\n", parser: .fields) }
        #expect(throws: SamplerError.self) { try CommandOutputParser.parse("\n# nothing\n", parser: .fields) }
    }

    @Test("command output: db2-hadr")
    func hadrOutput() throws {
        let value = try CommandOutputParser.parse("HADR_ROLE = STANDBY\nHADR_STATE = PEER\n", parser: .db2Hadr)
        #expect(value == .fields([.init("Role", .string("Standby")), .init("State", .string("Peer"))]))
        #expect(throws: SamplerError.self) { try CommandOutputParser.parse("oops", parser: .db2Hadr) }
    }
}
