import ArgumentParser
import RulesValidation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `hamn-bench service`: the release `hamn-events run` as an administrator leaves it running,
/// measured from outside.
///
/// - Idle: a service with DEFINITIONS Event Management definitions over MONITORS monitored
///   instances of built-in variables, all sampled every second, none of whose predicates can
///   become true. After it has settled, its resident memory (`VmRSS`, `VmHWM` from
///   `/proc/PID/status`) and its CPU time (`utime + stime` from `/proc/PID/stat`, every thread
///   of the service) over a window of SECONDS.
/// - Latency: a second service with the same load plus one administrator-defined variable,
///   `Bench.Latency`, sampled every INTERVAL by a bash script that alternates a value that makes
///   `X > 1000` true (writing its CLOCK_REALTIME stamp to a file just before it prints the
///   value) and one that rearms it. The definition's recovery program is one command, a tiny C
///   program compiled at run time with /usr/bin/cc (statically linked when the C library allows
///   it), whose first statement takes its CLOCK_REALTIME stamp. Latency = recovery command start
///   - sample stamp, paired by the sequence number carried in the value (`HAMN_RV_VALUE`).
///   It includes the sample command's exit, the service reaping it and parsing its output, the
///   predicate, the raise through the loopback transport, the DISARMED arming commit (written
///   after the raise is yielded, but by the same actor the raise comes back to), the
///   coordinator, the EVENT QUEUED + EVENT START commit (one transaction), starting the command
///   (directly: its text has no shell syntax, so no `/bin/sh -c`) and the stamp's exec up to its
///   first statement; not the sampling interval, nor any shell's or interpreter's start-up.
struct ServiceBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "service",
        abstract: "Measure `hamn-events run`: sample-to-recovery latency, idle memory and CPU.",
        discussion: """
            Idle: DEFINITIONS definitions over MONITORS built-in monitored instances at 1 s \
            (4 node-wide variables, a few file systems, then process counts and file ages half \
            and half), predicates that cannot fire; VmRSS and VmHWM, and utime+stime over \
            --idle-seconds after --settle-seconds. Targets: < 50 MB, < 2% of one core.

            Latency: the same load plus a command variable sampled every --interval that makes \
            `X > 1000` true every other sample, FIRINGS times (plus --warmup firings left out). \
            Latency = the recovery command's first statement (a C stamp program built with \
            /usr/bin/cc, CLOCK_REALTIME) - the sample command's stamp written just before it \
            prints the value. It excludes the sampling interval and includes the sample \
            command's exit, the service reaping it and parsing its output, predicate \
            evaluation, the raise through the loopback transport, the coordinator, the EVENT \
            QUEUED + START journal commit (one transaction, waited for; the arming record is \
            committed off this path), starting the command (directly, no shell) and the stamp's exec. Target: p99 < 5 ms.
            """
    )

    enum Phase: String, ExpressibleByArgument, CaseIterable {
        case all, idle, latency
    }

    @Option(help: "all, idle or latency.")
    var phase: Phase = .all

    @Option(help: "Event Management definitions of the load (spread evenly over the monitored instances).")
    var definitions = 1_000

    @Option(help: "Monitored instances of built-in variables, each sampled every second.")
    var monitors = 100

    @Option(help: "Seconds the service runs before the idle window.")
    var settleSeconds = 10.0

    @Option(help: "Seconds of the idle window.")
    var idleSeconds = 30.0

    @Option(help: "Measured firings of the latency predicate.")
    var firings = 200

    @Option(help: "Firings at the start of the latency run that are left out of the figures.")
    var warmup = 5

    @Option(help: "Sampling interval of the latency variable, in seconds (the service's minimum is 0.1).")
    var interval = 0.1

    @Option(
        help: ArgumentHelp(
            "Put the latency run's journal in DIR (e.g. /dev/shm, where fsync costs nothing) instead of the scratch directory.",
            valueName: "dir"))
    var journalDir: String?

    @Option(help: "The hamn-events binary (default: the one beside hamn-bench, same build).")
    var binary: String?

    @Option(help: "Generate into DIR and keep the files (rules, configuration, logs, stamps).")
    var keep: String?

    @Option(help: "text or json.")
    var format: ReportFormat = .text

    static let targetRSSBytes = 50_000_000
    static let targetCPUPercent = 2.0
    static let targetP99Milliseconds = 5.0

    func validate() throws {
        guard definitions >= 1 else { throw ValidationError("--definitions must be at least 1") }
        guard monitors >= 8 else { throw ValidationError("--monitors must be at least 8") }
        guard firings >= 1, warmup >= 0 else { throw ValidationError("--firings >= 1 and --warmup >= 0") }
        guard interval >= 0.1 else { throw ValidationError("--interval: the service samples at most every 0.1 s") }
        guard idleSeconds > 0, settleSeconds >= 0 else { throw ValidationError("--idle-seconds must be above 0") }
    }

    func run() throws {
        let executable = try locateHamnEvents(binary)
        let directory = try ScratchDirectory.create(keep: keep)
        defer { if keep == nil { ScratchDirectory.remove(directory) } }
        guard access("/bin/bash", X_OK) == 0 else { throw BenchError("/bin/bash is needed for the stamps") }

        let load = try ServiceLoad.generate(in: directory, definitions: definitions, monitors: monitors)
        progress(
            "load: \(load.definitions) definitions over \(load.instanceCount) monitored instances: \(load.summary)")
        let machine = MachineContext.now()
        var report = ServiceReport(
            executable: executable, load: load, machineBefore: machine, machineAfter: machine, idle: nil,
            latency: nil)

        if phase != .latency {
            report.idle = try measureIdle(executable, load, directory)
        }
        if phase != .idle {
            report.latency = try measureLatency(executable, load, directory)
        }
        report.machineAfter = MachineContext.now()
        switch format {
        case .text: print(report.text(), terminator: "")
        case .json: print(report.json())
        }
    }

    // MARK: Idle

    private func measureIdle(_ executable: String, _ load: ServiceLoad, _ directory: String) throws -> IdleFigures {
        let run = directory + "/idle"
        let configuration = try load.writeService(in: run, extraVariables: "", extraRules: "")
        let service = try ServiceProcess.start(executable, configuration: configuration, log: run + "/service.log")
        defer { service.stop() }
        try service.waitUntilUp(timeout: 60)
        progress("idle: service \(service.pid) up; settling \(settleSeconds.fixed(0)) s")
        sleepSeconds(settleSeconds)
        let check = try service.statusCheck()
        if check.instances != load.definitions || !check.monitorFailures.isEmpty {
            printError(
                "hamn-bench: warning: the service tracks \(check.instances) (definition, instance) pairs, expected "
                    + "\(load.definitions); monitor failures: \(check.monitorFailures)")
        }
        progress("idle: measuring for \(idleSeconds.fixed(0)) s")
        let loadBefore = MachineContext.now()
        let before = try ProcessFigures.read(service.pid)
        let wallBefore = ChildProcess.monotonicSeconds()
        var peakRSS = before.rssBytes
        let deadline = wallBefore + idleSeconds
        while ChildProcess.monotonicSeconds() < deadline {
            sleepSeconds(min(1, deadline - ChildProcess.monotonicSeconds()))
            if let now = try? ProcessFigures.read(service.pid) { peakRSS = max(peakRSS, now.rssBytes) }
        }
        let after = try ProcessFigures.read(service.pid)
        let wall = ChildProcess.monotonicSeconds() - wallBefore
        let loadAfter = MachineContext.now()
        let checkAfter = try service.statusCheck()
        let figures = IdleFigures(
            seconds: wall, userSeconds: after.userSeconds - before.userSeconds,
            systemSeconds: after.systemSeconds - before.systemSeconds, rssBytes: after.rssBytes,
            peakRSSDuringWindow: peakRSS, hwmBytes: after.hwmBytes, threads: after.threads,
            trackedPairs: checkAfter.instances, monitorFailures: checkAfter.monitorFailures.count,
            loadBefore: loadBefore.loadAverage, loadAfter: loadAfter.loadAverage)
        progress(
            "idle: \(figures.cpuPercent.fixed(2))% of one core, VmRSS \(mebibytes(figures.rssBytes)), "
                + "VmHWM \(mebibytes(figures.hwmBytes))")
        return figures
    }

    // MARK: Latency

    private func measureLatency(_ executable: String, _ load: ServiceLoad, _ directory: String) throws
        -> LatencyFigures
    {
        let run = directory + "/latency"
        try makeDirectory(run)
        let total = firings + warmup
        let samples = run + "/samples"
        let starts = run + "/starts"
        let state = run + "/sample-state"
        let sampler = run + "/bin/sample"
        try makeDirectory(run + "/bin")
        let stamp = try LatencyStamp.build(in: run + "/bin")
        progress("latency: recovery command \(stamp.path) (C, \(stamp.linkage))")
        // A kept directory may hold an earlier run's stamps and journal.
        for path in [samples, starts, state, run + "/bin/baseline.out"] { unlink(path) }
        for suffix in ["", "-wal", "-shm"] { unlink(run + "/state/journal.sqlite" + suffix) }
        try writeFile(
            sampler,
            """
            #!/bin/bash
            # Bench.Latency: odd samples make X > 1000 true (value 1000000 + firing number), even
            # ones rearm it (0). The stamp is written just before the value is printed.
            LC_ALL=C
            read -r n < \(state) 2>/dev/null || n=0
            n=$((n + 1))
            echo "$n" > \(state)
            if (( n % 2 == 1 && n <= 2 * \(total) )); then
                k=$(( (n + 1) / 2 ))
                echo "$k $EPOCHREALTIME" >> \(samples)
                echo $((1000000 + k))
            else
                echo 0
            fi

            """, mode: 0o755)
        let command = "\(stamp.path) \(starts)"
        if !LatencyStamp.isPlain(command) {
            printError(
                "hamn-bench: warning: \(command) has characters a shell interprets: hamn-events runs it through "
                    + "/bin/sh -c, which the figures then include")
        }
        let program = run + "/latency.rp"
        try writeFile(program, "all \"\(command)\" 0 NULL\n")
        let variables = """
              - name: Bench.Latency
                command: \(sampler)
                interval: \(interval)s
                timeout: 5s
                parser: number

            """
        let rules = "bench_latency\n0\n\(program)\n2\n0\nBench.Latency\nNodeNum=*\nX > 1000\nX < 1000\n"
        var journal = run + "/state/journal.sqlite"
        if let journalDir {
            let base = String(run.split(separator: "/").dropLast().last ?? "hamn-bench")
            try makeDirectory(journalDir + "/" + base)
            journal = journalDir + "/" + base + "/journal.sqlite"
        }
        defer {
            if journalDir != nil, keep == nil {
                for suffix in ["", "-wal", "-shm"] { unlink(journal + suffix) }
                rmdir(String(journal[..<journal.lastIndex(of: "/")!]))
            }
        }
        let configuration = try load.writeService(
            in: run, extraVariables: variables, extraRules: rules, journal: journal)
        let service = try ServiceProcess.start(executable, configuration: configuration, log: run + "/service.log")
        defer { service.stop() }
        try service.waitUntilUp(timeout: 60)
        let expected = Double(total) * 2 * interval
        progress("latency: service \(service.pid) up; \(total) firings, about \(expected.fixed(0)) s")
        let loadBefore = MachineContext.now()
        let deadline = ChildProcess.monotonicSeconds() + expected * 3 + 30
        var last = -1
        var lastReport = ChildProcess.monotonicSeconds()
        while true {
            let done = readText(starts).split(separator: "\n").count
            if done >= total { break }
            guard service.isRunning else {
                throw BenchError(
                    "the service exited during the latency run; see \(run)/service.log (rerun with --keep DIR)")
            }
            if ChildProcess.monotonicSeconds() > deadline {
                throw BenchError(
                    "only \(done) of \(total) firings reached the recovery command in time (--keep DIR to look)")
            }
            if done != last, ChildProcess.monotonicSeconds() - lastReport > 10 {
                progress("latency: \(done)/\(total)")
                lastReport = ChildProcess.monotonicSeconds()
                last = done
            }
            sleepSeconds(0.25)
        }
        let loadAfter = MachineContext.now()
        let sampled = Self.stamps(readText(samples), offset: 0)
        let started = Self.stamps(readText(starts), offset: 1_000_000)
        var latencies: [Double] = []
        var missing = 0
        for firing in (warmup + 1)...total {
            guard let sample = sampled[firing], let start = started[firing] else {
                missing += 1
                continue
            }
            latencies.append(Double(start - sample) / 1000)
        }
        guard !latencies.isEmpty else { throw BenchError("no firing could be paired with its sample") }
        service.stop()
        let stages = Self.stages(journal: journal, samples: sampled, starts: started, firings: (warmup + 1)...total)
        let baseline = try Self.startupBaseline(stamp: stamp.path, output: run + "/bin/baseline.out", runs: 50)
        progress(
            "latency: p50 \(percentile(latencies, 0.5).fixed(2)) ms, p99 \(percentile(latencies, 0.99).fixed(2)) ms; "
                + "stamp start-up alone p50 \(percentile(baseline, 0.5).fixed(2)) ms")
        return LatencyFigures(
            interval: interval, warmup: warmup, milliseconds: latencies, missing: missing,
            startupMilliseconds: baseline, stages: stages, journal: journal, loadBefore: loadBefore.loadAverage,
            loadAfter: loadAfter.loadAverage)
    }

    /// `NUMBER SECONDS.MICROSECONDS` lines, by NUMBER - offset, in microseconds since the epoch.
    private static func stamps(_ text: String, offset: Int) -> [Int: Int64] {
        var out: [Int: Int64] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let number = Double(parts[0]) else { continue }
            let time = parts[1].split(separator: ".")
            guard time.count == 2, let seconds = Int64(time[0]), let micros = Int64(time[1]), time[1].count == 6 else {
                continue
            }
            out[Int(number) - offset] = seconds * 1_000_000 + micros
        }
        return out
    }

    /// The latency cut at the journal's time stamps (each taken just before the entry is written,
    /// so a stage includes the commit of the entry before it): the DISARMED arming record (the
    /// predicate was evaluated), EVENT QUEUED (the raise came back through the transport) and
    /// EVENT START (0 when, as now, the service journals QUEUED and START in one transaction).
    /// Read with the sqlite3 command line; empty when it is not there.
    private static func stages(journal: String, samples: [Int: Int64], starts: [Int: Int64], firings: ClosedRange<Int>)
        -> [(name: String, milliseconds: [Double])]
    {
        let candidates: [String] = ["/usr/bin/sqlite3", "/bin/sqlite3", "/usr/local/bin/sqlite3"]
        let sqlite = candidates.first { access($0, X_OK) == 0 }
        guard let sqlite else { return [] }
        let out = journal + ".stages"
        let query = """
            SELECT 'arming', value, printf('%.6f', time) FROM arming WHERE "trigger" = 'bench_latency' AND armed = 0;
            SELECT kind, text, printf('%.6f', time) FROM log
                WHERE kind IN ('queued', 'start') AND text LIKE '%Bench.Latency%';
            """
        guard
            (try? ChildProcess.run(sqlite, ["-separator", " ", journal, query], stdout: out, stderr: out + ".err"))?
                .status == 0
        else { return [] }
        var times: [String: [Int: Int64]] = [:]
        for line in readText(out).split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count >= 2, let value = Double(parts[parts.count - 2].filter { $0 != "]" }) else { continue }
            let time = parts[parts.count - 1].split(separator: ".")
            guard time.count == 2, let seconds = Int64(time[0]), let micros = Int64(time[1]) else { continue }
            times[String(parts[0]), default: [:]][Int(value) - 1_000_000] = seconds * 1_000_000 + micros
        }
        unlink(out)
        unlink(out + ".err")
        let points: [(String, [Int: Int64])] = [
            ("sample stamp -> predicate fired (DISARMED record)", samples), ("-> EVENT QUEUED", times["arming"] ?? [:]),
            ("-> EVENT START", times["queued"] ?? [:]),
            ("-> recovery command's first statement", times["start"] ?? [:]),
        ]
        let ends: [[Int: Int64]] = [times["arming"] ?? [:], times["queued"] ?? [:], times["start"] ?? [:], starts]
        var result: [(name: String, milliseconds: [Double])] = []
        for (index, (name, from)) in points.enumerated() {
            let values = firings.compactMap { firing -> Double? in
                guard let a = from[firing], let b = ends[index][firing] else { return nil }
                return Double(b - a) / 1000
            }
            if values.isEmpty { return [] }
            result.append((name, values))
        }
        return result
    }

    /// What the recovery command's own start-up costs, measured without the service: from
    /// just before `posix_spawn(STAMP, [STAMP, OUTPUT])` to the stamp's first statement, in
    /// milliseconds.
    private static func startupBaseline(stamp: String, output: String, runs: Int) throws -> [Double] {
        var before: [Int: Int64] = [:]
        for index in 1...runs {
            let (status, spawnedAt) = try spawnAndWait(
                stamp, [output], extraEnvironment: ["HAMN_RV_VALUE=\(index)"])
            before[index] = spawnedAt
            guard status == 0 else { throw BenchError("\(stamp) exited with status \(status)") }
        }
        let after = stamps(readText(output), offset: 0)
        return (1...runs).compactMap { index in
            guard let start = before[index], let end = after[index] else { return nil }
            return Double(end - start) / 1000
        }
    }
}

// MARK: - The recovery command

/// The latency run's recovery command: a C program whose first statement takes its
/// CLOCK_REALTIME stamp, then appends "HAMN_RV_VALUE SECONDS.MICROSECONDS" to the file named
/// by its argument. Built at run time with /usr/bin/cc, statically linked when the C library
/// allows it (no dynamic loader before the stamp), dynamically otherwise.
private enum LatencyStamp {
    static func build(in directory: String) throws -> (path: String, linkage: String) {
        guard access("/usr/bin/cc", X_OK) == 0 else {
            throw BenchError("/usr/bin/cc is needed to build the stamp program")
        }
        let source = directory + "/stamp.c"
        let binary = directory + "/stamp"
        try writeFile(
            source,
            """
            #include <fcntl.h>
            #include <stdio.h>
            #include <stdlib.h>
            #include <time.h>
            #include <unistd.h>
            int main(int argc, char **argv) {
                struct timespec now;
                clock_gettime(CLOCK_REALTIME, &now);
                if (argc < 2) return 2;
                const char *value = getenv("HAMN_RV_VALUE");
                char line[256];
                int n = snprintf(line, sizeof line, "%s %lld.%06ld\\n", value ? value : "?", (long long)now.tv_sec,
                                 now.tv_nsec / 1000);
                int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
                if (fd < 0 || write(fd, line, n) != n) return 1;
                return close(fd) != 0;
            }

            """)
        unlink(binary)
        let log = directory + "/cc.log"
        for (flags, linkage) in [(["-O2", "-static"], "static"), (["-O2"], "dynamic")] {
            let result = try ChildProcess.run("/usr/bin/cc", flags + ["-o", binary, source], stdout: log, stderr: log)
            if result.status == 0, access(binary, X_OK) == 0 { return (binary, linkage) }
        }
        throw BenchError("cc \(source) failed: \(readText(log).suffix(2000))")
    }

    /// Whether hamn-events runs `command` directly (no shell syntax: SegmentExecutor.plainWords).
    static func isPlain(_ command: String) -> Bool {
        let safe = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./,:=+@%")
        let words = command.split(separator: " ", omittingEmptySubsequences: false)
        return words.allSatisfy { !$0.isEmpty && $0.allSatisfy { safe.contains($0) } } && !words[0].contains("=")
    }
}

// MARK: - The load

/// The idle load: the monitored instances, the definitions over them, one `.rp` file.
struct ServiceLoad {
    enum Kind: String {
        case node = "node-wide"
        case fileSystem = "file system"
        case processCount = "process count"
        case fileAge = "file age"
    }

    struct Instance {
        var kind: Kind
        var variable: String
        var vector: String
    }

    let directory: String
    let instances: [Instance]
    let definitions: Int
    let rulesText: String
    let fileSystems: [String]

    var instanceCount: Int { instances.count }

    func count(_ kind: Kind) -> Int { instances.filter { $0.kind == kind }.count }

    var summary: String {
        "\(count(.node)) node-wide (paging space used and free, real memory free, CPU idle), "
            + "\(count(.fileSystem)) file systems (\(fileSystems.joined(separator: " "))), "
            + "\(count(.processCount)) process counts (programs not running, user root), "
            + "\(count(.fileAge)) file ages"
    }

    static func generate(in directory: String, definitions: Int, monitors: Int) throws -> ServiceLoad {
        let ages = directory + "/ages"
        try makeDirectory(ages)
        var instances: [Instance] = [
            Instance(kind: .node, variable: "IBM.PSSP.aixos.PagSp.%totalused", vector: "NodeNum=*"),
            Instance(kind: .node, variable: "IBM.PSSP.aixos.PagSp.%totalfree", vector: "NodeNum=*"),
            Instance(kind: .node, variable: "IBM.PSSP.aixos.Mem.Real.%free", vector: "NodeNum=*"),
            Instance(kind: .node, variable: "IBM.PSSP.aixos.CPU.glidle", vector: "NodeNum=*"),
        ]
        // File systems by path, as rules name them; statvfs works on any directory.
        let fileSystems = ["/", "/var", "/tmp", "/usr", "/home", "/opt", "/dev/shm"].filter { path in
            var info = stat()
            return stat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR
        }.prefix(6)
        for path in fileSystems {
            instances.append(
                Instance(kind: .fileSystem, variable: "IBM.PSSP.aixos.FS.%totused", vector: "NodeNum=*;Name=\(path)"))
        }
        let rest = monitors - instances.count
        let programs = (rest + 1) / 2
        for index in 1...max(1, programs) where index <= programs {
            instances.append(
                Instance(
                    kind: .processCount, variable: "IBM.PSSP.Prog.pcount",
                    vector: "ProgName=bench_prog_\(pad(index));UserName=root;NodeNum=*"))
        }
        for index in 1...max(1, rest - programs) where index <= rest - programs {
            let path = ages + "/file_\(pad(index))"
            try writeFile(path, "")
            instances.append(Instance(kind: .fileAge, variable: "HAMN.File.Age", vector: "Name=\(path);NodeNum=*"))
        }

        let program = directory + "/never.rp"
        try writeFile(program, "all \"/bin/true\" 0 NULL\n")
        var rules = "# generated by hamn-bench service: \(definitions) definitions, none can fire\n"
        var perKind: [String: Int] = [:]
        for index in 0..<definitions {
            let instance = instances[index % instances.count]
            let round = index / instances.count
            let (predicate, rearm) = predicates(instance.kind, round)
            let stem = instance.variable.split(separator: ".").last.map(String.init) ?? "x"
            let ordinal = perKind[instance.variable, default: 0] + 1
            perKind[instance.variable] = ordinal
            let name =
                "bench_" + stem.filter { $0.isLetter || $0.isNumber }.lowercased() + "_" + pad(ordinal)
            rules +=
                [name, "0", program, "2", "0", instance.variable, instance.vector, predicate, rearm]
                .joined(separator: "\n") + "\n"
        }
        return ServiceLoad(
            directory: directory, instances: instances, definitions: definitions, rulesText: rules,
            fileSystems: Array(fileSystems))
    }

    /// Predicates no sample can make true (percentages stay in 0...100, process counts of
    /// programs that do not run stay 0, the files are fresh), varied as real rules are.
    private static func predicates(_ kind: Kind, _ round: Int) -> (String, String) {
        let list: [String]
        let rearm: String
        switch kind {
        case .node, .fileSystem:
            list = [
                "X > 100.5", "X < -1", "X > 101 && X@P > 101", "X IN {101, 102, 103}", "X > 110 __QUAL_COUNT(3, 5)",
                "(X - X@P) > 200", "X * 2 > 250", "X >= 0x70", "!(X <= 105)", "X > 120 || X < -5",
            ]
            rearm = "X < 50"
        case .processCount:
            list = [
                "X@0 > 100000", "X.CurPIDCount < 0", "X@0 < X@1 - 100000", "X.CurPIDList =~ \"^x\"",
                "X.PrevPIDCount > 100000 && X@0 == 0", "X@0 IN {100001, 100002}",
                "X.CurPIDCount > 99999 __QUAL_COUNT(2, 3)", "X@2 LIKE \"x%\"", "X@0 - X@1 > 100000",
                "X@0 < -1 || X@1 < -1",
            ]
            rearm = "X.CurPIDCount >= 0"
        case .fileAge:
            list = [
                "X > 86400", "X >= 172800 __QUAL_COUNT(2, 2)", "X / 60 > 1440", "X > 1.5e6", "X < -10",
                "X > 90000 && X@P > 90000", "X IN {-1, -2}", "X - X@P > 86400", "X > 0x20000", "!(X < 100000)",
            ]
            rearm = "X < 600"
        }
        return (list[round % list.count], rearm)
    }

    /// Writes `DIR/hamn.yaml`, `DIR/rules.hacmprd` (the load plus `extraRules`) and the state
    /// and run directories; returns the configuration's path.
    func writeService(in run: String, extraVariables: String, extraRules: String, journal: String? = nil) throws
        -> String
    {
        try makeDirectory(run)
        try makeDirectory(run + "/state")
        let rules = run + "/rules.hacmprd"
        try writeFile(rules, rulesText + extraRules)
        var configuration = """
            node: n1
            transport: local
            rules: \(rules)
            journal: \(journal ?? run + "/state/journal.sqlite")
            socket: \(run)/run/control.sock
            http: {port: 0}
            default_interval: 1s

            """
        if !extraVariables.isEmpty { configuration += "variables:\n" + extraVariables }
        let path = run + "/hamn.yaml"
        try writeFile(path, configuration)
        return path
    }

    static func pad(_ value: Int) -> String {
        let digits = String(value)
        return digits.count >= 3 ? digits : String(repeating: "0", count: 3 - digits.count) + digits
    }
}

// MARK: - The service process

/// `hamn-events run --config FILE`, started with posix_spawn, its output in a log file.
final class ServiceProcess {
    let executable: String
    let configuration: String
    let log: String
    let pid: pid_t
    private var reaped = false

    private init(executable: String, configuration: String, log: String, pid: pid_t) {
        self.executable = executable
        self.configuration = configuration
        self.log = log
        self.pid = pid
    }

    static func start(_ executable: String, configuration: String, log: String) throws -> ServiceProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] =
            ([executable, "run", "--config", configuration] as [String]).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }
        var pid = pid_t()
        let spawned = argv.withUnsafeBufferPointer {
            posix_spawn(&pid, executable, &actions, nil, $0.baseAddress!, environ)
        }
        guard spawned == 0 else { throw BenchError("cannot run \(executable): \(String(cString: strerror(spawned)))") }
        return ServiceProcess(executable: executable, configuration: configuration, log: log, pid: pid)
    }

    var isRunning: Bool {
        guard !reaped else { return false }
        var status: Int32 = 0
        let result = waitpid(pid, &status, WNOHANG)
        if result == pid { reaped = true }
        return result == 0
    }

    /// Up when `hamn-events status` answers 0.
    func waitUntilUp(timeout: Double) throws {
        let deadline = ChildProcess.monotonicSeconds() + timeout
        while ChildProcess.monotonicSeconds() < deadline {
            guard isRunning else {
                throw BenchError("the service exited at start:\n" + readText(log).suffix(3000))
            }
            if (try? status(json: false).status) == 0 { return }
            sleepSeconds(0.1)
        }
        throw BenchError("the service did not answer `status` within \(timeout.fixed(0)) s; see \(log)")
    }

    func status(json: Bool) throws -> (status: Int32, out: String) {
        let out = log + ".status"
        let run = try ChildProcess.run(
            executable, ["status", "--config", configuration] + (json ? ["--format", "json"] : []), stdout: out,
            stderr: out + ".err")
        return (run.status, readText(out))
    }

    /// How many (definition, instance) pairs the service tracks, and its failing monitors.
    func statusCheck() throws -> (instances: Int, monitorFailures: String) {
        let text = try status(json: false).out
        var instances = 0
        var failures: [String] = []
        var inInstances = false
        for line in text.split(separator: "\n") {
            if line == "instances:" {
                inInstances = true
            } else if inInstances, line.hasPrefix("  ") {
                instances += 1
            } else {
                inInstances = false
            }
            if line.hasPrefix("monitor failing:") { failures.append(String(line)) }
        }
        return (instances, failures.joined(separator: "; "))
    }

    /// SIGTERM, then SIGKILL after 10 s.
    func stop() {
        guard !reaped else { return }
        kill(pid, SIGTERM)
        let deadline = ChildProcess.monotonicSeconds() + 10
        var status: Int32 = 0
        while ChildProcess.monotonicSeconds() < deadline {
            if waitpid(pid, &status, WNOHANG) == pid {
                reaped = true
                return
            }
            sleepSeconds(0.05)
        }
        kill(pid, SIGKILL)
        waitpid(pid, &status, 0)
        reaped = true
    }
}

/// What `/proc/PID/stat` and `/proc/PID/status` say about a process now.
struct ProcessFigures {
    var userSeconds: Double
    var systemSeconds: Double
    var rssBytes: Int
    var hwmBytes: Int
    var threads: Int

    static func read(_ pid: pid_t) throws -> ProcessFigures {
        let stat = readText("/proc/\(pid)/stat")
        guard let close = stat.lastIndex(of: ")") else { throw BenchError("cannot read /proc/\(pid)/stat") }
        // Fields from 3 (state) on; utime and stime are fields 14 and 15.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else {
            throw BenchError("cannot parse /proc/\(pid)/stat")
        }
        var figures = ProcessFigures(
            userSeconds: user / ticks, systemSeconds: system / ticks, rssBytes: 0, hwmBytes: 0, threads: 0)
        for line in readText("/proc/\(pid)/status").split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard parts.count >= 2, let value = Int(parts[1]) else { continue }
            switch parts[0] {
            case "VmRSS:": figures.rssBytes = value * 1024
            case "VmHWM:": figures.hwmBytes = value * 1024
            case "Threads:": figures.threads = value
            default: break
            }
        }
        return figures
    }
}

/// The machine the figures were taken on.
struct MachineContext {
    var cpus: Int
    var loadAverage: String

    static func now() -> MachineContext {
        let load = readText("/proc/loadavg").split(separator: " ").prefix(3).joined(separator: " ")
        return MachineContext(cpus: Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))), loadAverage: load)
    }
}

// MARK: - Figures and the report

struct IdleFigures {
    var seconds: Double
    var userSeconds: Double
    var systemSeconds: Double
    var rssBytes: Int
    var peakRSSDuringWindow: Int
    var hwmBytes: Int
    var threads: Int
    var trackedPairs: Int
    var monitorFailures: Int
    var loadBefore: String
    var loadAfter: String

    var cpuPercent: Double { (userSeconds + systemSeconds) / seconds * 100 }
}

struct LatencyFigures {
    var interval: Double
    var warmup: Int
    var milliseconds: [Double]
    var missing: Int
    var startupMilliseconds: [Double]
    /// Where the time goes, from the journal's own time stamps (empty without sqlite3).
    var stages: [(name: String, milliseconds: [Double])]
    var journal: String
    var loadBefore: String
    var loadAfter: String
}

struct ServiceReport {
    var executable: String
    var load: ServiceLoad
    var machineBefore: MachineContext
    var machineAfter: MachineContext
    var idle: IdleFigures?
    var latency: LatencyFigures?

    func text() -> String {
        func line(_ label: String, _ text: String) -> String {
            label + String(repeating: " ", count: max(1, 16 - label.count)) + text + "\n"
        }
        func met(_ ok: Bool) -> String { ok ? "met" : "NOT met" }
        var out = line("binary:", executable)
        out += line("machine:", "\(machineBefore.cpus) CPUs, load average \(machineBefore.loadAverage) at start")
        out += line(
            "load:", "\(load.definitions) definitions over \(load.instanceCount) monitored instances, sampled every 1 s"
        )
        out += line("", load.summary)
        if let idle {
            out += line(
                "idle window:", "\(idle.seconds.fixed(1)) s, load average \(idle.loadBefore) -> \(idle.loadAfter)")
            out += line(
                "idle CPU:",
                "\(idle.cpuPercent.fixed(2))% of one core (utime \(idle.userSeconds.fixed(2)) s + stime "
                    + "\(idle.systemSeconds.fixed(2)) s); target < \(ServiceBenchmark.targetCPUPercent.fixed(0))%: "
                    + met(idle.cpuPercent < ServiceBenchmark.targetCPUPercent))
            out += line(
                "memory:",
                "VmRSS \(megabytes(idle.rssBytes)) (peak in window \(megabytes(idle.peakRSSDuringWindow))), VmHWM "
                    + "\(megabytes(idle.hwmBytes)); target < 50 MB: "
                    + met(max(idle.rssBytes, idle.hwmBytes) < ServiceBenchmark.targetRSSBytes))
            out += line(
                "",
                "\(idle.threads) threads; \(idle.trackedPairs) (definition, instance) pairs tracked, "
                    + "\(idle.monitorFailures) monitor failures")
        }
        if let latency {
            let ms = latency.milliseconds
            out += line(
                "latency:",
                "\(ms.count) firings (after \(latency.warmup) warm-up), sample interval \(latency.interval) s, "
                    + "\(latency.missing) missing; load average \(latency.loadBefore) -> \(latency.loadAfter)")
            out += line(
                "",
                "p50 \(percentile(ms, 0.5).fixed(2)) ms, p90 \(percentile(ms, 0.9).fixed(2)) ms, p99 "
                    + "\(percentile(ms, 0.99).fixed(2)) ms, min \(ms.min()!.fixed(2)), max \(ms.max()!.fixed(2)) ms; "
                    + "target p99 < \(ServiceBenchmark.targetP99Milliseconds.fixed(0)) ms: "
                    + met(percentile(ms, 0.99) < ServiceBenchmark.targetP99Milliseconds))
            for (name, values) in latency.stages {
                out += line(
                    "",
                    "  \(name): p50 \(percentile(values, 0.5).fixed(2)) ms, p99 \(percentile(values, 0.99).fixed(2)) ms"
                )
            }
            let startup = latency.startupMilliseconds
            if !startup.isEmpty {
                out += line(
                    "of which:",
                    "the stamp command's own start-up (posix_spawn and exec to its first statement, \(startup.count) runs without "
                        + "the service): p50 \(percentile(startup, 0.5).fixed(2)) ms, p99 "
                        + "\(percentile(startup, 0.99).fixed(2)) ms")
            }
            out += line(
                "includes:",
                "from the sample command's stamp (just before it prints the value) to the recovery "
                    + "command's first statement: the sample command's exit, reaping and parsing it, the predicate, "
                    + "the raise through the loopback transport, the coordinator, the event's journal commit "
                    + "(QUEUED + START, one transaction, waited for; the arming record is committed off this path), starting the command directly (no "
                    + "shell) and the C stamp's exec; not the sampling interval")
        }
        return out
    }

    func json() -> String {
        var parts = [
            "\"benchmark\": \"service\"", "\"binary\": \(JSON.string(executable))",
            "\"cpus\": \(machineBefore.cpus)", "\"loadAverageStart\": \(JSON.string(machineBefore.loadAverage))",
            "\"loadAverageEnd\": \(JSON.string(machineAfter.loadAverage))",
            "\"definitions\": \(load.definitions)", "\"monitoredInstances\": \(load.instanceCount)",
            "\"instances\": {\"nodeWide\": \(load.count(.node)), \"fileSystems\": \(load.count(.fileSystem)), "
                + "\"processCounts\": \(load.count(.processCount)), \"fileAges\": \(load.count(.fileAge))}",
        ]
        if let idle {
            parts.append(
                "\"idle\": {\"seconds\": \(idle.seconds.fixed(3)), \"userSeconds\": \(idle.userSeconds.fixed(3)), "
                    + "\"systemSeconds\": \(idle.systemSeconds.fixed(3)), \"cpuPercentOfOneCore\": "
                    + "\(idle.cpuPercent.fixed(3)), \"vmRSSBytes\": \(idle.rssBytes), \"peakVmRSSBytesInWindow\": "
                    + "\(idle.peakRSSDuringWindow), \"vmHWMBytes\": \(idle.hwmBytes), \"threads\": \(idle.threads), "
                    + "\"trackedPairs\": \(idle.trackedPairs), \"monitorFailures\": \(idle.monitorFailures), "
                    + "\"loadAverageBefore\": \(JSON.string(idle.loadBefore)), "
                    + "\"loadAverageAfter\": \(JSON.string(idle.loadAfter)), "
                    + "\"cpuMet\": \(idle.cpuPercent < ServiceBenchmark.targetCPUPercent), "
                    + "\"memoryMet\": \(max(idle.rssBytes, idle.hwmBytes) < ServiceBenchmark.targetRSSBytes)}")
        }
        if let latency {
            let ms = latency.milliseconds
            let startup = latency.startupMilliseconds
            let stages = latency.stages.map {
                "{\"stage\": \(JSON.string($0.name)), \"p50Milliseconds\": \(percentile($0.milliseconds, 0.5).fixed(3)), "
                    + "\"p99Milliseconds\": \(percentile($0.milliseconds, 0.99).fixed(3))}"
            }.joined(separator: ", ")
            parts.append(
                "\"latency\": {\"firings\": \(ms.count), \"warmup\": \(latency.warmup), \"missing\": \(latency.missing), "
                    + "\"intervalSeconds\": \(latency.interval), "
                    + "\"p50Milliseconds\": \(percentile(ms, 0.5).fixed(3)), "
                    + "\"p90Milliseconds\": \(percentile(ms, 0.9).fixed(3)), "
                    + "\"p99Milliseconds\": \(percentile(ms, 0.99).fixed(3)), "
                    + "\"minMilliseconds\": \(ms.min()!.fixed(3)), \"maxMilliseconds\": \(ms.max()!.fixed(3)), "
                    + "\"startupP50Milliseconds\": \(startup.isEmpty ? "null" : percentile(startup, 0.5).fixed(3)), "
                    + "\"startupP99Milliseconds\": \(startup.isEmpty ? "null" : percentile(startup, 0.99).fixed(3)), "
                    + "\"stages\": [\(stages)], "
                    + "\"loadAverageBefore\": \(JSON.string(latency.loadBefore)), "
                    + "\"loadAverageAfter\": \(JSON.string(latency.loadAfter)), "
                    + "\"met\": \(percentile(ms, 0.99) < ServiceBenchmark.targetP99Milliseconds)}")
        }
        parts.append(
            "\"targets\": {\"vmRSSBytes\": \(ServiceBenchmark.targetRSSBytes), \"cpuPercent\": "
                + "\(ServiceBenchmark.targetCPUPercent.fixed(0)), \"p99Milliseconds\": "
                + "\(ServiceBenchmark.targetP99Milliseconds.fixed(0))}")
        return "{" + parts.joined(separator: ", ") + "}"
    }
}

// MARK: - Helpers

/// Nearest rank: the smallest value with at least `p` of the values at or below it.
func percentile(_ values: [Double], _ p: Double) -> Double {
    let sorted = values.sorted()
    let rank = Int((p * Double(sorted.count)).rounded(.up))
    return sorted[min(max(rank, 1), sorted.count) - 1]
}

private func megabytes(_ bytes: Int) -> String {
    (Double(bytes) / 1e6).fixed(1) + " MB (" + (Double(bytes) / 1024 / 1024).fixed(1) + " MiB)"
}

private func mebibytes(_ bytes: Int) -> String {
    (Double(bytes) / 1024 / 1024).fixed(1) + " MiB"
}

/// `--binary`, or `hamn-events` beside this executable.
private func locateHamnEvents(_ binary: String?) throws -> String {
    var path = binary ?? ""
    if binary == nil {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw BenchError("cannot tell where hamn-bench is; give --binary PATH") }
        let me = String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        path = String(me[..<me.lastIndex(of: "/")!]) + "/hamn-events"
    }
    guard access(path, X_OK) == 0 else {
        throw BenchError(
            "\(path) is not an executable: build it (swift build -c release --product hamn-events) or give --binary")
    }
    return path
}

private func makeDirectory(_ path: String) throws {
    if mkdir(path, 0o755) != 0, errno != EEXIST {
        throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))")
    }
    chmod(path, 0o755)
}

private func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
    var writer = try FileWriter(path: path, mode: mode)
    try writer.write(text)
    try writer.close()
}

private func sleepSeconds(_ seconds: Double) {
    guard seconds > 0 else { return }
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0, errno == EINTR { request = remaining }
}

private func realtimeMicroseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return Int64(now.tv_sec) * 1_000_000 + Int64(now.tv_nsec) / 1000
}

/// Runs `executable` with this process's environment plus `extraEnvironment`, output to
/// /dev/null; its exit status, and the CLOCK_REALTIME microseconds just before posix_spawn.
private func spawnAndWait(_ executable: String, _ arguments: [String], extraEnvironment: [String]) throws
    -> (Int32, Int64)
{
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
    let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
    var environment: [String] = []
    var index = 0
    while let entry = environ[index] {
        environment.append(String(cString: entry))
        index += 1
    }
    let envp: [UnsafeMutablePointer<CChar>?] = (environment + extraEnvironment).map { strdup($0) } + [nil]
    defer {
        for arg in argv { free(arg) }
        for entry in envp { free(entry) }
    }
    var pid = pid_t()
    let spawnedAt = realtimeMicroseconds()
    let spawned = argv.withUnsafeBufferPointer { argvBuffer in
        envp.withUnsafeBufferPointer {
            posix_spawn(&pid, executable, &actions, nil, argvBuffer.baseAddress!, $0.baseAddress!)
        }
    }
    guard spawned == 0 else { throw BenchError("cannot run \(executable): \(String(cString: strerror(spawned)))") }
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0, errno == EINTR {}
    return ((status >> 8) & 0xFF, spawnedAt)
}
