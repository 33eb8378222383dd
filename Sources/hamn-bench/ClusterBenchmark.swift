import ArgumentParser
import Foundation

/// `hamn-bench cluster`: the engines on a three-node corosync cluster of network namespaces
/// (`scripts/ns-cluster`), measured from outside through the commands they run.
///
/// - Barrier latency: an event whose recovery program is BARRIERS+1 segments of one `all`
///   command each, a stamp program that appends its node and CLOCK_REALTIME to a file. For
///   barrier i, "all reached" is the latest stamp of segment i across the nodes and "all
///   released" the latest stamp of segment i+1: the figure includes the command's exit, the
///   engine reaping it, the agreed multicast of the results, the coordinator, and starting the
///   next command (`/bin/sh -c`, then the stamp program). The same event on one engine with the
///   in-process transport gives the part that is not the cluster's; the same barrier between
///   raw CPG peers (`hamn-bench cpg-peer`, no engine) gives what the substrate alone takes.
/// - Failover: kill -9 of node 3's corosync and engine, to the first `TE_FAIL_NODE` command on
///   a survivor, beside corosync's own membership time (the survivors' log line "A new
///   membership ... was formed" after the kill).
/// - Failover with fencing: the same kill with a fence device per node, a stand-in agent that
///   powers the namespace node off (kill -9 of its engine and corosync, as FencingTests' agent)
///   and records when it started and ended; the takeover waits for the fence. Reported: kill ->
///   agent started -> agent done (the fence) -> first takeover command; what the engine adds
///   is the whole minus corosync's membership time minus the agent's own time.
/// - `--scrape-rate HZ`: during each barrier-latency run of engines, every engine's web view is
///   under `hamn-bench service`'s scrape load (`ScrapeLoad`: /metrics HZ times a second, the
///   live feed held open and read), from threads that entered that engine's network namespace.
struct ClusterBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Measure barrier latency and failover on a 3-node namespace cluster (root).",
        discussion: """
            Needs root, corosync and scripts/ns-cluster (found from the repository this binary \
            was built in, or --ns-cluster). Runs the release hamn-events beside this binary \
            unless --binary is given. Targets: barrier p99 < 5 ms; the engine adds < 100 ms to \
            corosync's membership time, and < 50 ms besides the fence agent's own time when fencing.
            """
    )

    enum Format: String, ExpressibleByArgument { case text, json }

    @Option(help: "Barriers per event.") var barriers = 100
    @Option(help: "Events run (each with --barriers barriers).") var events = 3
    @Option(help: "Corosync token timeout, ms.") var token = 1000
    @Option(help: "Failovers measured (a fresh cluster each).") var failovers = 2
    @Option(help: "Failovers with fencing measured (a fresh cluster each).") var fencedFailovers = 2
    @Option(help: "The hamn-events binary.") var binary: String?
    @Option(name: .customLong("ns-cluster"), help: "scripts/ns-cluster.") var nsCluster: String?
    @Option(help: "Keep the work directory here.") var keep: String?
    @Flag(help: "Also measure the three engines on one corosync (one namespace).") var oneCorosync = false
    @Option(
        help: ArgumentHelp(
            "During the barrier-latency runs, fetch each engine's /metrics RATE times a second and keep its live "
                + "feed (/events) open and read, from inside the engine's namespace (0: no such load).",
            valueName: "rate"))
    var scrapeRate = 0.0
    @Option(help: "text or json.") var format: Format = .text

    func validate() throws {
        guard scrapeRate >= 0, scrapeRate <= 100 else { throw ValidationError("--scrape-rate: from 0 to 100") }
    }

    func run() throws {
        guard getuid() == 0 else { throw ValidationError("hamn-bench cluster needs root (network namespaces)") }
        let tools = try Tools(binary: binary, nsCluster: nsCluster)
        let root = try ScratchDirectory.create(keep: keep)
        defer { if keep == nil { ScratchDirectory.remove(root) } }
        let stamp = try Stamp.build(in: root)

        progress("barrier latency, one engine, in-process transport (baseline)")
        let baseline = try barrierRun(tools, stamp, root: root + "/local", corosync: false)
        progress("barrier latency, three engines on three corosync namespaces")
        let cluster = try barrierRun(tools, stamp, root: root + "/cluster", corosync: true)
        progress("barrier latency, raw CPG peers (no engine) on three corosync namespaces")
        let floor = try cpgFloor(tools, root: root + "/cpg")
        var shared: BarrierTimes?
        if oneCorosync {
            progress("barrier latency, three engines on one corosync")
            shared = try barrierRun(tools, stamp, root: root + "/shared", corosync: true, corosyncNodes: 1)
        }
        var failoverRuns: [Failover] = []
        for index in 0..<failovers {
            progress("failover \(index + 1) of \(failovers)")
            failoverRuns.append(try failover(tools, stamp, root: root + "/failover\(index)", fencing: false))
        }
        var fencedRuns: [Failover] = []
        for index in 0..<fencedFailovers {
            progress("failover with fencing \(index + 1) of \(fencedFailovers)")
            fencedRuns.append(try failover(tools, stamp, root: root + "/fenced\(index)", fencing: true))
        }
        let report = Report(
            barriers: barriers * events, baseline: Summary(baseline.commandToCommand),
            cluster: Summary(cluster.commandToCommand),
            shared: shared.map { Summary($0.commandToCommand) },
            engineBaseline: Summary(baseline.engine), engineCluster: Summary(cluster.engine),
            engineShared: shared.map { Summary($0.engine) }, cpgFloor: Summary(floor),
            failovers: failoverRuns, fencedFailovers: fencedRuns,
            token: token, load: loadAverage(),
            scrapeLoad: [
                ("three engines, three corosync namespaces", cluster.scrapeLoad),
                ("one engine, in-process transport", baseline.scrapeLoad),
            ].compactMap { name, load in load.map { "\(name): \($0)" } }
                + (shared?.scrapeLoad.map { ["three engines on one corosync: \($0)"] } ?? []),
            scrapeRate: scrapeRate)
        switch format {
        case .text: print(report.text)
        case .json: print(report.json)
        }
    }

    // MARK: Barrier latency

    /// Per barrier: from the last stamp of a segment to the last of the next (command to command),
    /// and, from the journals, from the last participant's command ending to the last
    /// participant passing the barrier (the engine's own part).
    struct BarrierTimes {
        var commandToCommand: [Double] = []
        var engine: [Double] = []
        /// What `--scrape-rate` did meanwhile; nil without it.
        var scrapeLoad: String?
    }

    private func barrierRun(
        _ tools: Tools, _ stamp: String, root: String, corosync: Bool, corosyncNodes: Int = 3
    ) throws -> BarrierTimes {
        let setup = try Setup(root: root, stamp: stamp, barriers: barriers)
        let nodes = corosync ? ["n1", "n2", "n3"] : ["n1"]
        var cluster: NamespaceCluster?
        if corosync {
            cluster = try NamespaceCluster.up(tools, directory: root + "/ns", nodes: corosyncNodes, token: token)
        }
        defer { cluster?.down() }
        var engines: [Engine] = []
        defer { for engine in engines { engine.stop() } }
        for (index, name) in nodes.enumerated() {
            engines.append(
                try Engine.start(
                    tools, setup: setup, name: name, nodes: nodes,
                    corosyncNode: corosync ? min(index + 1, corosyncNodes) : nil,
                    cluster: cluster))
        }
        try waitFor("members \(nodes)", seconds: 60) { engines.allSatisfy { $0.members(tools) == nodes } }
        var loads: [ScrapeLoad] = []
        defer { for load in loads { _ = load.stop() } }
        if scrapeRate > 0 {
            for (index, engine) in engines.enumerated() {
                let namespace = try cluster.map { try $0.namespace(node: min(index + 1, corosyncNodes)) }
                loads.append(try startScrapeLoad(tools, engine, namespace: namespace))
            }
        }
        var times = BarrierTimes()
        for run in 0..<events {
            try? FileManager.default.removeItem(atPath: setup.stamps)
            let result = try tools.cli(engines[0], ["trigger", "bench"])
            guard result.status == 0 else { throw BenchError("trigger: \(result.err)") }
            try waitFor("event \(run + 1) to end", seconds: 300) {
                Stamp.read(setup.stamps).filter { $0.tag == "s\(barriers)" }.count == nodes.count
            }
            let stamps = Stamp.read(setup.stamps)
            for index in 0..<barriers {
                let reached = stamps.filter { $0.tag == "s\(index)" }.map(\.time).max()!
                let released = stamps.filter { $0.tag == "s\(index + 1)" }.map(\.time).max()!
                times.commandToCommand.append(released - reached)
            }
        }
        if !loads.isEmpty {
            let counts = loads.map { $0.stop() }
            loads = []
            let scrapes = counts.map(\.scrapes)
            let summary =
                "/metrics of each of the \(counts.count) engine(s) fetched at \(String(format: "%.1f", scrapeRate))/s "
                + "(\(scrapes.map(String.init).joined(separator: "/")) times, \(counts.map(\.failed).reduce(0, +)) failed, "
                + "\(counts.map(\.metricsBytes).max() ?? 0) bytes at most), each live feed open: "
                + "\(counts.map { String($0.feedMessages) }.joined(separator: "/")) messages read"
            progress("meanwhile: " + summary)
            if let problem = counts.compactMap(\.problem).first {
                throw BenchError("the scrape load could not start: \(problem)")
            }
            guard scrapes.allSatisfy({ $0 > 0 }), counts.allSatisfy({ $0.failed == 0 }) else {
                throw BenchError("the scrape load failed: \(summary) (see the engines' logs, --keep DIR)")
            }
            times.scrapeLoad = summary
        }
        // Each journal has every node's results (with the time each node saw its command end)
        // and its own node's barrier passages.
        var ended: [String: Double] = [:]  // "event segment" -> latest end
        var passed: [String: Double] = [:]  // "event barrier" -> latest passage
        for name in nodes {
            let journal = setup.root + "/\(name).sqlite"
            for row in try sqlite(journal, "SELECT event_id, segment, ended_at FROM command WHERE ended_at IS NOT NULL")
            {
                let key = "\(row[0]) \(row[1])"
                ended[key] = max(ended[key] ?? 0, Double(row[2]) ?? 0)
            }
            for row in try sqlite(journal, "SELECT event_id, barrier_index, passed_at FROM barrier") {
                let key = "\(row[0]) \(row[1])"
                passed[key] = max(passed[key] ?? 0, Double(row[2]) ?? 0)
            }
        }
        for (key, release) in passed {
            if let reach = ended[key] { times.engine.append(release - reach) }
        }
        return times
    }

    /// `--scrape-rate`: the load on `engine`'s web view (its URL from `status --format json`),
    /// from threads in its network namespace when it runs in one.
    private func startScrapeLoad(_ tools: Tools, _ engine: Engine, namespace: String?) throws -> ScrapeLoad {
        let out = try tools.cli(engine, ["status", "--format", "json"]).out
        guard let start = out.range(of: "\"url\":\""),
            let port = ScrapeLoad.loopbackPort(of: String(out[start.upperBound...]))
        else {
            throw BenchError(
                "--scrape-rate: \(engine.name)'s status names no web view on 127.0.0.1: \(out.prefix(300))")
        }
        let load = ScrapeLoad(port: port, rate: scrapeRate, namespace: namespace)
        load.start()
        progress(
            "scraping \(engine.name)'s http://127.0.0.1:\(port)/metrics \(String(format: "%.1f", scrapeRate)) times a second"
                + "\(namespace.map { " in namespace \($0)" } ?? ""), /events open")
        return load
    }

    /// The same barrier with no engine: a `cpg-peer` in each namespace runs /bin/true, multicasts
    /// the round and waits for all three. Per round: the last peer ready (its command ended) to
    /// the last peer released.
    private func cpgFloor(_ tools: Tools, root: String) throws -> [Double] {
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        let cluster = try NamespaceCluster.up(tools, directory: root + "/ns", nodes: 3, token: token)
        defer { cluster.down() }
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let rounds = barriers * events
        var peers: [Process] = []
        for node in 1...3 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tools.nsCluster)
            process.arguments = [
                "exec", cluster.directory, "\(node)", me, "cpg-peer", "--group", "hamn-bench-cpg", "--peers", "3",
                "--rounds", "\(rounds)", "--command", "/bin/true", "--out", root + "/peer\(node)",
            ]
            try process.run()
            peers.append(process)
        }
        for process in peers {
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw BenchError("cpg-peer exited \(process.terminationStatus)")
            }
        }
        var ready = [Double](repeating: 0, count: rounds)
        var released = [Double](repeating: 0, count: rounds)
        for node in 1...3 {
            let text = try String(contentsOfFile: root + "/peer\(node)", encoding: .utf8)
            for line in text.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count == 3, let round = Int(fields[0]), round < rounds,
                    let readyAt = Double(fields[1]), let releasedAt = Double(fields[2])
                else { continue }
                ready[round] = max(ready[round], readyAt)
                released[round] = max(released[round], releasedAt)
            }
        }
        return zip(ready, released).map { $1 - $0 }
    }

    private func sqlite(_ path: String, _ query: String) throws -> [[String]] {
        let result = try runTool("/usr/bin/sqlite3", ["-readonly", path, query])
        guard result.status == 0 else { throw BenchError("sqlite3 \(path): \(result.err)") }
        return result.out.split(separator: "\n").map { $0.split(separator: "|").map(String.init) }
    }

    // MARK: Failover

    struct Failover: Encodable {
        /// kill -9 to the first TE_FAIL_NODE command on a survivor, seconds.
        var failover: Double
        /// kill -9 to the survivors' corosync logging the new membership, seconds.
        var corosyncMembership: Double?
        /// With fencing: kill -9 to the stand-in agent's start and to its end (the node is off), seconds.
        var agentStarted: Double?
        var agentDone: Double?
        /// The agent's own time, seconds.
        var agent: Double? { agentStarted.flatMap { start in agentDone.map { $0 - start } } }
        /// Besides corosync's membership time and the agent's own time.
        var engineAdds: Double? { corosyncMembership.map { failover - $0 - (agent ?? 0) } }
    }

    private func failover(_ tools: Tools, _ stamp: String, root: String, fencing: Bool) throws -> Failover {
        let setup = try Setup(root: root, stamp: stamp, barriers: 1)
        let nodes = ["n1", "n2", "n3"]
        let cluster = try NamespaceCluster.up(tools, directory: root + "/ns", nodes: 3, token: token)
        defer { cluster.down() }
        let fence = fencing ? try FenceAgent.write(tools, setup: setup, cluster: cluster, nodes: nodes) : nil
        var engines: [Engine] = []
        defer { for engine in engines { engine.stop() } }
        for (index, name) in nodes.enumerated() {
            engines.append(
                try Engine.start(
                    tools, setup: setup, name: name, nodes: nodes, corosyncNode: index + 1, cluster: cluster,
                    extra: fence?.yaml ?? "fencing: none"))
        }
        try waitFor("members \(nodes)", seconds: 60) { engines.allSatisfy { $0.members(tools) == nodes } }
        Thread.sleep(forTimeInterval: 1)
        let killed = Date().timeIntervalSince1970
        try cluster.kill(3)
        engines[2].kill()
        try waitFor("TE_FAIL_NODE on a survivor", seconds: 60) { !Stamp.read(setup.failStamps).isEmpty }
        let first = Stamp.read(setup.failStamps).map(\.time).min()!
        let membership = [1, 2].compactMap { cluster.membershipLogged(node: $0, after: killed) }.min()
        var run = Failover(failover: first - killed, corosyncMembership: membership.map { $0 - killed })
        if let fence {
            let runs = fence.runs()
            guard runs.count == 1, let agent = runs.first, agent.plug == "3" else {
                throw BenchError("the fence agent ran \(runs.count) times (\(runs)), not once for node 3")
            }
            guard agent.end <= first else {
                throw BenchError("the takeover's first command started before the fence ended")
            }
            run.agentStarted = agent.start - killed
            run.agentDone = agent.end - killed
        }
        return run
    }

    private func waitFor(_ what: String, seconds: Double, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(seconds)
        while !condition() {
            guard Date() < deadline else { throw BenchError("timed out waiting for \(what)") }
            Thread.sleep(forTimeInterval: 0.02)
        }
    }

    private func progress(_ text: String) {
        FileHandle.standardError.write(Data("hamn-bench cluster: \(text)\n".utf8))
    }

    private func loadAverage() -> String {
        (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3).joined(
            separator: " ") ?? "?"
    }
}

// MARK: - The pieces

private struct Tools {
    var hamnEvents: String
    var nsCluster: String

    init(binary: String?, nsCluster: String?) throws {
        let me = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        let directory = (me as NSString).deletingLastPathComponent
        hamnEvents = binary ?? directory + "/hamn-events"
        guard FileManager.default.isExecutableFile(atPath: hamnEvents) else {
            throw BenchError(
                "\(hamnEvents) is not an executable: swift build -c release --product hamn-events, or --binary")
        }
        // The repository this binary was built in: the nearest directory above it with Package.swift.
        var repository = directory
        while !repository.isEmpty, repository != "/",
            !FileManager.default.fileExists(atPath: repository + "/Package.swift")
        {
            repository = (repository as NSString).deletingLastPathComponent
        }
        self.nsCluster = nsCluster ?? repository + "/scripts/ns-cluster"
        guard FileManager.default.isExecutableFile(atPath: self.nsCluster) else {
            throw BenchError("\(self.nsCluster) not found: give --ns-cluster")
        }
    }

    @discardableResult
    func cli(_ engine: Engine, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try runTool(hamnEvents, [arguments[0], "--socket", engine.socket] + arguments.dropFirst())
    }
}

/// The stamp program: appends "NODE TAG SECONDS.NANOSECONDS" (CLOCK_REALTIME) to a file.
private enum Stamp {
    struct Entry {
        var node: String
        var tag: String
        var time: Double
    }

    static func build(in root: String) throws -> String {
        let source = root + "/stamp.c"
        let binary = root + "/stamp"
        try """
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <string.h>
        #include <time.h>
        #include <unistd.h>
        int main(int argc, char **argv) {
            struct timespec now;
            clock_gettime(CLOCK_REALTIME, &now);
            if (argc < 3) return 2;
            const char *node = getenv("HAMN_LOCAL_NODE");
            char line[256];
            int n = snprintf(line, sizeof line, "%s %s %lld.%09ld\\n", node ? node : "?", argv[2], (long long)now.tv_sec, now.tv_nsec);
            int fd = open(argv[1], O_WRONLY | O_APPEND | O_CREAT, 0644);
            if (fd < 0 || write(fd, line, n) != n) return 1;
            return close(fd);
        }
        """.write(toFile: source, atomically: true, encoding: .utf8)
        let result = try runTool("/usr/bin/cc", ["-O2", "-o", binary, source])
        guard result.status == 0 else { throw BenchError("cc stamp.c: \(result.err)") }
        return binary
    }

    static func read(_ path: String) -> [Entry] {
        guard let data = FileManager.default.contents(atPath: path) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, let time = Double(fields[2]) else { return nil }
            return Entry(node: String(fields[0]), tag: String(fields[1]), time: time)
        }
    }
}

/// The rules: `bench` (segments s0...sB, one stamp each, barriers between) and `TE_FAIL_NODE`
/// (a stamp on the other nodes).
private struct Setup {
    var root: String
    var rules: String
    var stamps: String { root + "/stamps" }
    var failStamps: String { root + "/fail-stamps" }

    init(root: String, stamp: String, barriers: Int) throws {
        self.root = root
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        chmod(root, 0o755)
        let segments = (0...barriers).map { "all \"\(stamp) \(root)/stamps s\($0)\" 0 NULL" }
        try (segments.joined(separator: "\nbarrier\n") + "\n").write(
            toFile: root + "/bench.rp", atomically: true, encoding: .utf8)
        try "other \"\(stamp) \(root)/fail-stamps fail\" 0 NULL\n".write(
            toFile: root + "/fail.rp", atomically: true, encoding: .utf8)
        rules = root + "/rules.hacmprd"
        try """
        bench
        0
        \(root)/bench.rp
        2
        0




        TE_FAIL_NODE
        0
        \(root)/fail.rp
        2
        0




        """.appending("\n").write(toFile: rules, atomically: true, encoding: .utf8)
        for file in ["/bench.rp", "/fail.rp", "/rules.hacmprd"] { chmod(root + file, 0o644) }
    }
}

private final class NamespaceCluster {
    let tools: Tools
    let directory: String

    private init(tools: Tools, directory: String) {
        self.tools = tools
        self.directory = directory
    }

    static func up(_ tools: Tools, directory: String, nodes: Int, token: Int) throws -> NamespaceCluster {
        let cluster = NamespaceCluster(tools: tools, directory: directory)
        let result = try runTool(
            tools.nsCluster, ["up", "\(nodes)", directory, "--token", "\(token)", "--prefix", "hb\(getpid() % 100000)"])
        guard result.status == 0 else {
            cluster.down()
            throw BenchError("ns-cluster up: \(result.err)")
        }
        return cluster
    }

    /// Node `node`'s network namespace (`ns-cluster netns`), for setns(2).
    func namespace(node: Int) throws -> String {
        let result = try runTool(tools.nsCluster, ["netns", directory, "\(node)"])
        let name = result.out.trimmingCharacters(in: .whitespacesAndNewlines)
        guard result.status == 0, !name.isEmpty else { throw BenchError("ns-cluster netns: \(result.err)") }
        return name
    }

    func kill(_ node: Int) throws {
        let result = try runTool(tools.nsCluster, ["kill", directory, "\(node)"])
        guard result.status == 0 else { throw BenchError("ns-cluster kill: \(result.err)") }
    }

    func down() {
        _ = try? runTool(tools.nsCluster, ["down", directory])
    }

    /// When node's corosync logged the first new membership after `time` (seconds since 1970).
    func membershipLogged(node: Int, after time: Double) -> Double? {
        guard let data = FileManager.default.contents(atPath: directory + "/node\(node)/corosync.log") else {
            return nil
        }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyy MMM d HH:mm:ss.SSS"
        let year = Calendar.current.component(.year, from: Date())
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") where line.contains("A new membership")
        {
            // "Nov 23 13:05:54.175 [10882] ..."
            let stamp = line.split(separator: " ", omittingEmptySubsequences: true).prefix(3).joined(separator: " ")
            guard let date = formatter.date(from: "\(year) \(stamp)") else { continue }
            if date.timeIntervalSince1970 > time { return date.timeIntervalSince1970 }
        }
        return nil
    }
}

/// The stand-in fence agent (fence-agents' convention: `key=value` lines on standard input, exit
/// 0 when done): for `plug=N` it powers namespace node N off as FencingTests' agent does (kill -9
/// of that node's engine, then `ns-cluster kill` of its corosync, which may be dead already), and
/// appends "PLUG START END" (CLOCK_REALTIME, seconds) to its log.
private struct FenceAgent {
    struct Run: CustomStringConvertible {
        var plug: String
        var start: Double
        var end: Double
        var description: String { "plug \(plug) \(start)...\(end)" }
    }

    var path: String
    var log: String
    var yaml: String

    static func write(_ tools: Tools, setup: Setup, cluster: NamespaceCluster, nodes: [String]) throws -> FenceAgent {
        let path = setup.root + "/fence-agent"
        let log = setup.root + "/fence-runs"
        var outlets = ""
        for (index, name) in nodes.enumerated() {
            // The engine's process as Engine.kill finds it; the paths have no quote in them.
            outlets += """
                \(index + 1))
                    pkill -9 -f 'run --config \(setup.root)/\(name).yaml'
                    '\(tools.nsCluster)' kill '\(cluster.directory)' \(index + 1) || true
                    ;;

                """
        }
        try """
        #!/bin/sh
        # hamn-bench's stand-in fence agent: powers a namespace node off.
        start=$(date +%s.%N)
        plug=$(sed -n 's/^plug=//p')
        case "$plug" in
        \(outlets)*) echo "no outlet '$plug'" >&2; exit 1 ;;
        esac >/dev/null 2>&1
        echo "$plug $start $(date +%s.%N)" >>\(log)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        var lines = ["fencing:", "  attempts: 1", "  devices:"]
        for (index, name) in nodes.enumerated() {
            lines += [
                "    \(name):", "      agent: \(path)", "      action: off", "      timeout: 30s", "      options:",
                "        plug: \"\(index + 1)\"",
            ]
        }
        return FenceAgent(path: path, log: log, yaml: lines.joined(separator: "\n"))
    }

    /// The agent's runs so far, in the order they ended.
    func runs() -> [Run] {
        guard let data = FileManager.default.contents(atPath: log) else { return [] }
        return String(decoding: data, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard fields.count == 3, let start = Double(fields[1]), let end = Double(fields[2]) else { return nil }
            return Run(plug: String(fields[0]), start: start, end: end)
        }
    }
}

private final class Engine {
    let name: String
    let configuration: String
    let socket: String
    let process: Process

    private init(name: String, configuration: String, socket: String, process: Process) {
        self.name = name
        self.configuration = configuration
        self.socket = socket
        self.process = process
    }

    static func start(
        _ tools: Tools, setup: Setup, name: String, nodes: [String], corosyncNode: Int?, cluster: NamespaceCluster?,
        extra: String = ""
    ) throws -> Engine {
        let configuration = setup.root + "/\(name).yaml"
        let socket = setup.root + "/\(name).sock"
        let list = nodes.enumerated().map { "  - {name: \($0.element), number: \($0.offset + 1)}" }.joined(
            separator: "\n")
        try """
        node: \(name)
        nodes:
        \(list)
        transport: \(corosyncNode == nil ? "local" : "corosync")
        corosync: {group: hamn-bench}
        rules: \(setup.rules)
        journal: \(setup.root)/\(name).sqlite
        socket: \(socket)
        http: {port: 0}
        \(extra)
        """.write(toFile: configuration, atomically: true, encoding: .utf8)
        let process = Process()
        if let corosyncNode, let cluster {
            process.executableURL = URL(fileURLWithPath: tools.nsCluster)
            process.arguments = [
                "exec", cluster.directory, "\(corosyncNode)", tools.hamnEvents, "run", "--config", configuration,
            ]
        } else {
            process.executableURL = URL(fileURLWithPath: tools.hamnEvents)
            process.arguments = ["run", "--config", configuration]
        }
        let log = setup.root + "/\(name).log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        return Engine(name: name, configuration: configuration, socket: socket, process: process)
    }

    func members(_ tools: Tools) -> [String]? {
        guard let result = try? tools.cli(self, ["status", "--format", "json"]), result.status == 0,
            let object = try? JSONSerialization.jsonObject(with: Data(result.out.utf8)) as? [String: Any]
        else { return nil }
        return object["members"] as? [String]
    }

    /// kill -9 of the hamn-events process itself (not the wrappers that started it).
    func kill() {
        guard let result = try? runTool("/usr/bin/pgrep", ["-f", "run --config \(configuration)"]) else { return }
        for pid in result.out.split(separator: "\n").compactMap({ Int32($0) }) {
            if (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("hamn-events") == true {
                Glibc.kill(pid, SIGKILL)
            }
        }
    }

    func stop() {
        kill()
        if process.isRunning { Glibc.kill(process.processIdentifier, SIGKILL) }
    }
}

private struct Summary: Encodable {
    var count: Int
    var p50: Double
    var p99: Double
    var max: Double

    init(_ seconds: [Double]) {
        let sorted = seconds.sorted()
        func at(_ q: Double) -> Double {
            sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int((Double(sorted.count) * q).rounded(.up)) - 1)]
        }
        count = sorted.count
        p50 = at(0.5) * 1000
        p99 = at(0.99) * 1000
        max = (sorted.last ?? 0) * 1000
    }
}

private struct Report: Encodable {
    var barriers: Int
    var baseline: Summary
    var cluster: Summary
    var shared: Summary?
    var engineBaseline: Summary
    var engineCluster: Summary
    var engineShared: Summary?
    var cpgFloor: Summary
    var failovers: [ClusterBenchmark.Failover]
    var fencedFailovers: [ClusterBenchmark.Failover]
    var token: Int
    var load: String
    /// What `--scrape-rate` did during each barrier run (empty without it).
    var scrapeLoad: [String]
    var scrapeRate: Double

    /// The barrier runs' scrape load, in short (the report's end says what it did).
    private var loadTag: String {
        scrapeLoad.isEmpty
            ? "no scrape load"
            : "each engine's /metrics scraped \(String(format: "%.1f", scrapeRate))/s, its /events open"
    }

    var text: String {
        func ms(_ value: Double) -> String { String(format: "%.2f ms", value) }
        var lines = [
            "barrier latency in the engines: last participant's command ended -> last participant passed (\(barriers) barriers; from the journals; \(loadTag))",
            "  three engines, three corosync namespaces:  p50 \(ms(engineCluster.p50))  p99 \(ms(engineCluster.p99))  max \(ms(engineCluster.max))",
            "  one engine, in-process transport:          p50 \(ms(engineBaseline.p50))  p99 \(ms(engineBaseline.p99))  max \(ms(engineBaseline.max))",
        ]
        if let engineShared {
            lines.append(
                "  three engines on one corosync:             p50 \(ms(engineShared.p50))  p99 \(ms(engineShared.p99))  max \(ms(engineShared.max))"
            )
        }
        lines.append(
            "  no engine: raw CPG peers, 3 namespaces:    p50 \(ms(cpgFloor.p50))  p99 \(ms(cpgFloor.p99))  max \(ms(cpgFloor.max))  (each round: /bin/true, multicast, wait for all 3)"
        )
        lines += [
            "command to command across a barrier: last stamp of a segment -> last stamp of the next (adds process exit, reaping and the next start)",
            "  three engines, three corosync namespaces:  p50 \(ms(cluster.p50))  p99 \(ms(cluster.p99))  max \(ms(cluster.max))",
            "  one engine, in-process transport:          p50 \(ms(baseline.p50))  p99 \(ms(baseline.p99))  max \(ms(baseline.max))",
            "  the cluster's part (difference of p99s):   \(ms(cluster.p99 - baseline.p99))",
        ]
        if let shared {
            lines.append(
                "  three engines on one corosync:             p50 \(ms(shared.p50))  p99 \(ms(shared.p99))  max \(ms(shared.max))"
            )
        }
        lines += [
            "failover, kill -9 of node 3 (corosync and engine) -> first TE_FAIL_NODE command on a survivor (token \(token) ms)"
        ]
        for (index, run) in failovers.enumerated() {
            let membership = run.corosyncMembership.map { String(format: "%.3f s", $0) } ?? "not in the log"
            let adds = run.engineAdds.map { String(format: "%.0f ms", $0 * 1000) } ?? "?"
            lines.append(
                "  run \(index + 1): \(String(format: "%.3f s", run.failover)); corosync's membership \(membership); the engine adds \(adds)"
            )
        }
        if !fencedFailovers.isEmpty {
            lines.append(
                "failover with fencing: kill -9 of node 3 -> the stand-in agent powers it off -> first TE_FAIL_NODE command on a survivor"
            )
        }
        for (index, run) in fencedFailovers.enumerated() {
            func s(_ value: Double?) -> String { value.map { String(format: "%.3f s", $0) } ?? "?" }
            func ms(_ value: Double?) -> String { value.map { String(format: "%.0f ms", $0 * 1000) } ?? "?" }
            let adds = run.engineAdds.map { String(format: "%.0f ms", $0 * 1000) } ?? "?"
            lines.append(
                "  run \(index + 1): \(s(run.failover)); corosync's membership \(s(run.corosyncMembership)), agent started \(s(run.agentStarted)), fence done \(s(run.agentDone)) (the agent's own \(ms(run.agent))); the engine adds \(adds): membership -> agent \(ms(run.agentStarted.flatMap { start in run.corosyncMembership.map { start - $0 } })), fence done -> command \(ms(run.agentDone.map { run.failover - $0 }))"
            )
        }
        if scrapeLoad.isEmpty {
            lines.append("scrape load during the barrier runs: none (--scrape-rate not given)")
        } else {
            lines.append(
                "scrape load during the barrier runs (--scrape-rate \(String(format: "%.1f", scrapeRate))), per engine:"
            )
            lines += scrapeLoad.map { "  \($0)" }
        }
        lines.append("load average: \(load)")
        return lines.joined(separator: "\n")
    }

    var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

@discardableResult
private func runTool(_ executable: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    final class Box: @unchecked Sendable { var data = Data() }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    Thread {
        box.data = err.fileHandleForReading.readDataToEndOfFile()
        done.signal()
    }.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    process.waitUntilExit()
    return (
        process.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: box.data, as: UTF8.self)
    )
}
