import Foundation
import HamnConfiguration
import HamnService
import RulesEngine
import Testing

@Suite("monitor samplers", .timeLimit(.minutes(1)))
struct MonitorSamplerTests {
    let node = monitorTestNode

    // MARK: - This machine's /proc

    @Test("paging space and real memory: 0-100 values on this machine, NodeNum set")
    func memory() async throws {
        let used = try await PagingSpaceSampler(.used).sample(node: node)
        let free = try await PagingSpaceSampler(.free).sample(node: node)
        let real = try await RealMemorySampler().sample(node: node)
        for observations in [used, free, real] {
            try #require(observations.count == 1)
            #expect(observations[0].instance == ["NodeNum": "1"])
            let value = try #require(monitorNumber(observations[0].value))
            #expect((0...100).contains(value))
        }
        #expect(used[0].variable == "IBM.PSSP.aixos.PagSp.%totalused")
        #expect(free[0].variable == "IBM.PSSP.aixos.PagSp.%totalfree")
        #expect(real[0].variable == "IBM.PSSP.aixos.Mem.Real.%free")
        let usedPercent = try #require(monitorNumber(used[0].value))
        let freePercent = try #require(monitorNumber(free[0].value))
        #expect(abs(usedPercent + freePercent - 100) < 0.02)
    }

    @Test("CPU idle: a value at the first sample (100 ms baseline), and at the next")
    func cpu() async throws {
        let sampler = CPUIdleSampler()
        let clock = ContinuousClock()
        let started = clock.now
        let first = try await sampler.sample(node: node)
        #expect(started.duration(to: clock.now) >= .milliseconds(100))
        // Not a synchronisation: the next sample is taken some time after the first, as the
        // scheduler takes it (its value is from the change since the first).
        try await Task.sleep(for: .milliseconds(50))
        let second = try await sampler.sample(node: node)
        for observations in [first, second] {
            try #require(observations.count == 1)
            #expect(observations[0].variable == "IBM.PSSP.aixos.CPU.glidle")
            let value = try #require(monitorNumber(observations[0].value))
            #expect((0...100).contains(value))
        }
    }

    @Test("file systems: every real one includes /; a named path; a missing path is a problem")
    func fileSystems() async throws {
        let every = try await FileSystemSampler(everyRealFileSystem: true).sampleBatch(node: node)
        let root = try #require(every.observations.first { $0.instance["Name"] == "/" })
        #expect(root.instance == ["NodeNum": "1", "Name": "/"])
        #expect((0...100).contains(try #require(monitorNumber(root.value))))
        #expect(!every.observations.contains { $0.instance["Name"] == "/proc" || $0.instance["Name"] == "/sys" })

        let named = try await FileSystemSampler(mountPoints: ["/", "/no/such/mount"]).sampleBatch(node: node)
        #expect(named.observations.map { $0.instance["Name"] } == ["/"])
        #expect(named.problems.count == 1)
        #expect(named.problems.first?.instance == "Name=/no/such/mount;NodeNum=1")
        #expect(named.problems.first?.message.contains("No such file") == true)
    }

    @Test("process count: this test process, found by its own command name and user")
    func processCountSelf() async throws {
        let stat = try String(contentsOfFile: "/proc/self/stat", encoding: .utf8)
        let me = try #require(ProcParsers.processStat(stat))
        let user = try #require(getpwuid(getuid())).pointee.pw_name.map { String(cString: $0) } ?? "root"
        let sampler = ProcessCountSampler(programs: [
            .init(name: me.command, user: user), .init(name: me.command), .init(name: "no-such-program-x"),
        ])
        let batch = try await sampler.sampleBatch(node: node)
        #expect(batch.problems.isEmpty)
        try #require(batch.observations.count == 3)
        for observation in batch.observations.prefix(2) {
            let fields = monitorFields(observation.value)
            guard case .number(let count)? = fields["CurPIDCount"], case .string(let list)? = fields["CurPIDList"]
            else {
                Issue.record("unexpected value \(observation.value)")
                continue
            }
            #expect(count >= 1)
            #expect(list.split(separator: ",").contains(Substring(String(getpid()))))
            #expect(fields["PrevPIDCount"] == .number(count))  // first sample: previous = current
        }
        #expect(batch.observations[0].instance == ["ProgName": me.command, "UserName": user, "NodeNum": "1"])
        #expect(batch.observations[1].instance["UserName"] == "*")
        #expect(
            batch.observations[2].value
                == .fields([
                    .init("CurPIDCount", .number(0)), .init("PrevPIDCount", .number(0)),
                    .init("CurPIDList", .string("")),
                ]))
    }

    // MARK: - A /proc of our own

    @Test("process count on a fake /proc: comm, argv[0], users, zombies, previous count")
    func processCountFake() async throws {
        let proc = try MonitorTempDirectory()
        func process(_ pid: Int, _ comm: String, state: String = "S", uid: Int = 0, argv: String = "") throws {
            try proc.write("\(pid)/stat", "\(pid) (\(comm)) \(state) 1 \(pid) \(pid) 0 -1 4194560 0 0 0 0\n")
            try proc.write("\(pid)/status", "Name:\t\(comm)\nState:\t\(state)\nUid:\t\(uid)\t\(uid)\t\(uid)\t\(uid)\n")
            try proc.writeBytes("\(pid)/cmdline", Array(argv.utf8))
        }
        try process(10, "nfsd")
        try process(11, "nfsd")
        try process(12, "nfsd", state: "Z")
        try process(20, "db2sysc 0", uid: 4242, argv: "/home/db2inst1/sqllib/adm/db2sysc\0")
        try process(21, "db2sysc", uid: 0, argv: "db2sysc\0")
        try process(30, "my (odd) prog)", uid: 0)
        try proc.write("self/stat", "not a pid\n")
        try proc.write("meminfo", "MemTotal: 1 kB\n")

        let sampler = ProcessCountSampler(
            programs: [
                .init(name: "nfsd"), .init(name: "db2sysc", user: "4242"), .init(name: "db2sysc", user: "root"),
                .init(name: "db2sysc"), .init(name: "my (odd) prog)", user: "root"),
                .init(name: "nfsd", user: "no-such-user-hamn"),
            ],
            procRoot: proc.path)
        var batch = try await sampler.sampleBatch(node: node)
        func counts(_ batch: SampleBatch) -> [String] {
            batch.observations.map { observation in
                let fields = monitorFields(observation.value)
                return
                    "\(observation.instance["ProgName"]!)/\(observation.instance["UserName"]!): \(fields["CurPIDCount"]!) \(fields["PrevPIDCount"]!) [\(fields["CurPIDList"]!)]"
            }
        }
        #expect(
            counts(batch) == [
                "nfsd/*: 2 2 [10,11]", "db2sysc/4242: 1 1 [20]", "db2sysc/root: 1 1 [21]", "db2sysc/*: 2 2 [20,21]",
                "my (odd) prog)/root: 1 1 [30]",
            ])
        #expect(
            batch.problems == [
                SampleProblem(
                    instance: "NodeNum=1;ProgName=nfsd;UserName=no-such-user-hamn",
                    message: "no user named no-such-user-hamn", notInstalled: true)
            ])

        // One nfsd dies: the previous count is the last sample's.
        try FileManager.default.removeItem(atPath: proc.path + "/11")
        batch = try await sampler.sampleBatch(node: node)
        #expect(counts(batch).first == "nfsd/*: 1 2 [10]")
        batch = try await sampler.sampleBatch(node: node)
        #expect(counts(batch).first == "nfsd/*: 1 1 [10]")
    }

    @Test("fake /proc: swap, memory, CPU, mounts")
    func fakeProc() async throws {
        let proc = try MonitorTempDirectory()
        try proc.write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 600 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n")
        try proc.write("stat", "cpu  100 0 100 800 0 0 0 0 0 0\n")
        try proc.write("self/mounts", "proc /proc proc rw 0 0\n/dev/root / ext4 rw 0 0\ntmpfs /run tmpfs rw 0 0\n")
        #expect(try await PagingSpaceSampler(.used, procRoot: proc.path).sample(node: node).first?.value == .number(0))
        #expect(
            try await PagingSpaceSampler(.free, procRoot: proc.path).sample(node: node).first?.value == .number(100))
        #expect(try await RealMemorySampler(procRoot: proc.path).sample(node: node).first?.value == .number(60))

        let cpu = CPUIdleSampler(procRoot: proc.path, baselineDelay: .milliseconds(1))
        // The counters did not move during the baseline delay: no value, an error.
        await #expect(throws: SamplerError.self) { try await cpu.sample(node: node) }
        try proc.write("stat", "cpu  150 0 150 1500 200 0 0 0 0 0\n")
        #expect(try await cpu.sample(node: node).first?.value == .number(90))

        let fs = try await FileSystemSampler(mountPoints: ["/run"], everyRealFileSystem: true, procRoot: proc.path)
            .sampleBatch(node: node)
        #expect(fs.observations.map { $0.instance["Name"]! } == ["/", "/run"])

        let empty = try MonitorTempDirectory()
        await #expect(throws: SamplerError.self) {
            try await RealMemorySampler(procRoot: empty.path).sample(node: node)
        }
        await #expect(throws: SamplerError.self) {
            try await ProcessCountSampler(programs: [.init(name: "x")], procRoot: empty.path + "/none").sample(
                node: node)
        }
    }

    // MARK: - File age

    @Test("file age: seconds since modification; a missing file is a problem, not a crash")
    func fileAge() async throws {
        let directory = try MonitorTempDirectory()
        let stamp = try directory.write("sync.stamp", "synced\n")
        let old = Date().addingTimeInterval(-125)
        try FileManager.default.setAttributes([.modificationDate: old], ofItemAtPath: stamp)
        let missing = directory.path + "/never-written"
        let sampler = FileAgeSampler(paths: [stamp, missing])
        let batch = try await sampler.sampleBatch(node: node)
        #expect(batch.observations.count == 1)
        #expect(batch.observations.first?.instance == ["Name": stamp, "NodeNum": "1"])
        let age = try #require(batch.observations.first.flatMap { monitorNumber($0.value) })
        #expect((125...127).contains(age))
        #expect(batch.problems.map(\.instance) == ["Name=\(missing);NodeNum=1"])
        // Only a missing file: the plain sample throws.
        await #expect(throws: SamplerError.self) { try await FileAgeSampler(paths: [missing]).sample(node: node) }
    }

    // MARK: - Commands

    @Test("command variable: a number, fields, a string")
    func commandValues() async throws {
        let number = ServiceConfiguration.Variable(name: "APP.queue", command: "echo 42", parser: .number, timeout: 5)
        let observations = try await CommandVariableSampler(number).sample(node: node)
        #expect(
            observations == [SampleObservation(variable: "APP.queue", instance: ["NodeNum": "1"], value: .number(42))])

        let fields = ServiceConfiguration.Variable(
            name: "APP.stats", command: "printf 'depth = 7\\nstate = ok\\n'; echo 'noise' >&2", parser: .fields,
            timeout: 5)
        #expect(
            try await CommandVariableSampler(fields).sample(node: node).first?.value
                == .fields([.init("depth", .number(7)), .init("state", .string("ok"))]))

        let string = ServiceConfiguration.Variable(name: "APP.mode", command: "echo ' active '", parser: .string)
        #expect(try await CommandVariableSampler(string).sample(node: node).first?.value == .string("active"))
    }

    @Test("command variable: garbage, a failing command are errors")
    func commandErrors() async throws {
        let garbage = ServiceConfiguration.Variable(
            name: "APP.x", command: "echo not-a-number", parser: .number, timeout: 5)
        do {
            _ = try await CommandVariableSampler(garbage).sample(node: node)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("not a number"))
        }
        let failing = ServiceConfiguration.Variable(
            name: "APP.x", command: "echo 3; echo broken >&2; exit 3", parser: .number, timeout: 5)
        do {
            _ = try await CommandVariableSampler(failing).sample(node: node)
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("exit 3"))
            #expect(error.message.contains("broken"))
        }
    }

    /// Whether a process is gone (or a zombie: killed, not yet reaped by its new parent).
    private func isGone(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let parsed = ProcParsers.processStat(stat)
        else { return true }
        return !parsed.isLive
    }

    /// Waits up to a second for a process to be gone.
    private func waitGone(_ pid: Int32) async -> Bool {
        for _ in 0..<100 {
            if isGone(pid) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return isGone(pid)
    }

    @Test("command variable: a command that hangs times out within its timeout, its group killed")
    func commandTimeout() async throws {
        let directory = try MonitorTempDirectory()
        let pidFile = directory.path + "/child.pid"
        // The shell and a child it started both hang; the timeout kills the whole group.
        let hanging = ServiceConfiguration.Variable(
            name: "APP.hang", command: "sleep 30 & echo $! > '\(pidFile)'; sleep 30; echo 1", parser: .number,
            timeout: 0.5)
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await CommandVariableSampler(hanging).sample(node: node)
            Issue.record("expected a timeout")
        } catch {
            #expect(error.message.contains("did not end within"))
        }
        #expect(started.duration(to: clock.now) < .seconds(2))
        let child = try #require(
            Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(await waitGone(child))
    }

    @Test("command variable: what the command leaves running in its group is killed when it exits")
    func commandLeftovers() async throws {
        let directory = try MonitorTempDirectory()
        let pidFile = directory.path + "/child.pid"
        let leaving = ServiceConfiguration.Variable(
            name: "APP.leave", command: "sleep 30 & echo $! > '\(pidFile)'; echo 5", parser: .number, timeout: 5)
        let clock = ContinuousClock()
        let started = clock.now
        #expect(try await CommandVariableSampler(leaving).sample(node: node).first?.value == .number(5))
        #expect(started.duration(to: clock.now) < .seconds(2))
        let child = try #require(
            Int32(try String(contentsOfFile: pidFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)))
        #expect(await waitGone(child))
    }

    @Test("HADR sampler: db2pd run without a shell, one instance per database, problems per database")
    func hadr() async throws {
        let directory = try MonitorTempDirectory()
        let db2pd = try directory.write(
            "db2pd",
            """
            #!/bin/sh
            if [ "$1" != "-d" ] || [ "$3" != "-hadr" ] || [ $# -ne 3 ]; then echo "bad arguments: $*" >&2; exit 2; fi
            case "$2" in
            xcatdb)
                printf 'Database Partition 0 -- Database XCATDB -- Active\\n\\nHADR Information:\\n'
                printf 'Role    State                SyncMode HeartBeatsMissed   LogGapRunAvg (bytes)\\n'
                printf 'Primary Peer                 Nearsync 0                  0\\n\\n'
                printf 'ConnectStatus ConnectTime                           Timeout\\n'
                printf 'Connected     Thu Aug  5 20:33:00 2010 (1281011580) 3\\n'
                ;;
            'odd; $(touch pwned) db')
                printf 'HADR_ROLE = STANDBY\\nHADR_STATE = PEER\\nHADR_CONNECT_STATUS = CONNECTED\\n'
                ;;
            *)
                echo "Database $2 not activated on database member 0"; exit 1
                ;;
            esac
            """,
            executable: true)
        let sampler = HADRSampler(
            databases: ["xcatdb", "odd; $(touch pwned) db", "other"], program: db2pd, timeout: .seconds(5))
        let batch = try await sampler.sampleBatch(node: node)
        #expect(batch.observations.map { $0.instance["Database"] } == ["xcatdb", "odd; $(touch pwned) db"])
        try #require(batch.observations.count == 2)
        #expect(batch.observations.allSatisfy { $0.instance["NodeNum"] == "1" && $0.variable == "HAMN.DB2.HADR" })
        #expect(
            batch.observations[0].value.description
                == "Role=Primary;State=Peer;SyncMode=Nearsync;ConnectStatus=Connected;HeartBeatsMissed=0;LogGap=0")
        #expect(monitorFields(batch.observations[1].value)["Role"] == .string("Standby"))
        #expect(batch.problems.count == 1)
        #expect(batch.problems.first?.instance == "Database=other;NodeNum=1")
        #expect(batch.problems.first?.message.contains("not activated") == true)
        #expect(batch.problems.first?.message.contains("exit 1") == true)
        #expect(!FileManager.default.fileExists(atPath: FileManager.default.currentDirectoryPath + "/pwned"))

        // Not on PATH: DB2 is not installed here (info level); a configured path that is not
        // there: a fault (warning).
        let notOnPath = await #expect(throws: SamplerError.self) {
            try await HADRSampler(databases: ["x"], program: "no-such-db2pd-hamn").sample(node: node)
        }
        #expect(notOnPath?.notInstalled == true)
        let configured = await #expect(throws: SamplerError.self) {
            try await HADRSampler(databases: ["x"], program: "/no/such/db2pd-hamn").sample(node: node)
        }
        #expect(configured?.notInstalled == false)
    }

    @Test("HADR sampler: a db2pd that hangs is killed at its timeout")
    func hadrTimeout() async throws {
        let directory = try MonitorTempDirectory()
        let db2pd = try directory.write("db2pd", "#!/bin/sh\nsleep 30\n", executable: true)
        let clock = ContinuousClock()
        let started = clock.now
        let batch = try await HADRSampler(databases: ["xcatdb"], program: db2pd, timeout: .milliseconds(300))
            .sampleBatch(node: node)
        #expect(started.duration(to: clock.now) < .seconds(2))
        #expect(batch.observations.isEmpty)
        #expect(batch.problems.first?.message.contains("did not end within") == true)
    }
}
