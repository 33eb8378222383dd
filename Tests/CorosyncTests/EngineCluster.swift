import Foundation
import TestSupport
import Testing

/// Engines (`hamn-events run`, transport corosync) on a cluster of corosync nodes in network
/// namespaces made by `scripts/ns-cluster` for this test, in a temporary directory. Everything
/// it starts is stopped and removed by `tearDown()`, which every test calls through `withCluster`.
final class EngineCluster: @unchecked Sendable {
    let root: String
    let corosyncNodes: Int
    let group: String
    let nodeNames: [String]
    private var engines: [String: Process] = [:]
    private var logs: [String: FileHandle] = [:]
    /// The corosync namespace each engine was started in, for `restartEngine`.
    private var namespaces: [String: Int] = [:]
    /// Variables added to an engine's environment (`HAMN_TEST_WIRE_MAX`), kept for `restartEngine`.
    private var environments: [String: [String: String]] = [:]

    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    static var script: String { repository + "/scripts/ns-cluster" }

    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["HAMN_EVENTS_BIN"] { return explicit }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "hamn-events"
        ).path
    }

    var clusterDirectory: String { root + "/cluster" }
    var outputDirectory: String { root + "/out" }
    var binDirectory: String { root + "/bin" }

    /// - Parameters:
    ///   - corosyncNodes: namespaces, one corosync each.
    ///   - nodes: the engines' node names (numbers from 1), all in the configuration.
    ///   - twoNode: votequorum's `two_node: 1` (`ns-cluster up --two-node`; 2 corosync nodes).
    ///   - upArguments: more arguments for `ns-cluster up` (`--conf FILE --authkey KEY`).
    init(corosyncNodes: Int, nodes: [String], twoNode: Bool = false, upArguments: [String] = []) throws {
        var template = Array((NSTemporaryDirectory() + "hamn-cpg-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw EngineClusterError("mkdtemp failed") }
        root = String(cString: made)
        chmod(root, 0o755)
        self.corosyncNodes = corosyncNodes
        nodeNames = nodes
        group = "hamn-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        for directory in ["etc", "etc/events", "bin", "out", "cluster"] {
            try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            chmod(root + "/" + directory, 0o755)
        }
        // A command step: records node, word, start and end (ns) to out/steps, sleeping $2 s
        // between, and its scheduling policy (field 41 of /proc/PID/stat: 0 SCHED_OTHER, 2 SCHED_RR).
        try write(
            binDirectory + "/step",
            """
            #!/bin/sh
            start=$(date +%s%N)
            [ -n "$2" ] && sleep "$2"
            end=$(date +%s%N)
            policy=$(awk '{print $41}' /proc/$$/stat)
            echo "$HAMN_LOCAL_NODE $1 $HAMN_EVENT $HAMN_EVENT_NODE $start $end $policy" >> \(outputDirectory)/steps
            """, mode: 0o755)
        let prefix = "ht\(UInt32.random(in: 0..<0xFFFF))"
        let up = try runTool(
            Self.script,
            ["up", "\(corosyncNodes)", clusterDirectory, "--prefix", prefix] + (twoNode ? ["--two-node"] : [])
                + upArguments)
        guard up.status == 0 else {
            tearDown()
            throw EngineClusterError("ns-cluster up failed (\(up.status)):\n\(up.out)\n\(up.err)")
        }
    }

    func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    /// `definitions`: (event name, state, .rp text); the .rp files go in etc/.
    func writeRules(_ definitions: [(String, Int, String)], rpDirectory: String? = nil) throws -> String {
        let directory = rpDirectory ?? root + "/etc"
        var text = ""
        for (name, state, program) in definitions {
            let rp = directory + "/\(name)_\(state).rp"
            try write(rp, program.replacingOccurrences(of: "STEP", with: binDirectory + "/step"))
            text += [name, "\(state)", rp, "2", "0", "", "", "", ""].joined(separator: "\n") + "\n"
        }
        let rules = directory + "/rules.hacmprd"
        try write(rules, text)
        return rules
    }

    func socket(_ node: String) -> String { socketOverrides[node] ?? root + "/\(node).sock" }
    /// Sockets of engines started with `startEngine(_:corosyncNode:configuration:socket:)`.
    private var socketOverrides: [String: String] = [:]
    func configuration(_ node: String) -> String { root + "/\(node).yaml" }

    /// Starts node `name`'s engine in corosync namespace `corosyncNode` (1-based).
    func startEngine(
        _ name: String, corosyncNode: Int, rules: String, extra: String = "", environment: [String: String] = [:]
    ) throws {
        namespaces[name] = corosyncNode
        environments[name] = environment
        let nodes = nodeNames.enumerated().map { "  - {name: \($0.element), number: \($0.offset + 1)}" }.joined(
            separator: "\n")
        try write(
            configuration(name),
            """
            node: \(name)
            nodes:
            \(nodes)
            transport: corosync
            corosync:
              group: \(group)
              form_timeout: 3s
            rules: \(rules)
            journal: \(root)/\(name).sqlite
            socket: \(socket(name))
            config_too_long: 300s
            http: {port: 0}
            \(extra)
            """)
        _ = FileManager.default.createFile(atPath: root + "/\(name).log", contents: nil)
        try launch(name, corosyncNode: corosyncNode)
    }

    /// Starts an engine in corosync namespace `corosyncNode` with the configuration file
    /// `configuration` as it is (several engines may share one); `socket` is where its control
    /// socket is seen from here (`name` is the test's name for it).
    func startEngine(_ name: String, corosyncNode: Int, configuration file: String, socket: String) throws {
        namespaces[name] = corosyncNode
        socketOverrides[name] = socket
        _ = FileManager.default.createFile(atPath: root + "/\(name).log", contents: nil)
        try launch(name, corosyncNode: corosyncNode, configuration: file)
    }

    /// Starts again an engine that has ended (as systemd's `Restart=on-failure` would): the same
    /// configuration and journal; its log goes on in the same file after a `---- restarted` line.
    /// Without `waitForSocket`, returns once the process runs (an engine that waits for quorum
    /// before it joins has no control socket yet). `environment` replaces the variables it was
    /// started with.
    func restartEngine(_ name: String, waitForSocket: Bool = true, environment: [String: String]? = nil) throws {
        if let environment { environments[name] = environment }
        guard let corosyncNode = namespaces[name] else { throw EngineClusterError("engine \(name) was never started") }
        guard engineExitStatus(name) != nil else { throw EngineClusterError("engine \(name) is still running") }
        try? logs[name]?.close()
        logs[name] = nil
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: root + "/\(name).log"))
        handle.seekToEndOfFile()
        handle.write(Data("---- restarted\n".utf8))
        try? handle.close()
        try launch(name, corosyncNode: corosyncNode, waitForSocket: waitForSocket)
    }

    /// Runs `hamn-events run` for `name` (its configuration written), its output appended to its
    /// log, and waits for its control socket to answer.
    private func launch(
        _ name: String, corosyncNode: Int, configuration file: String? = nil, waitForSocket: Bool = true
    ) throws {
        let process = Process()
        if let extra = environments[name], !extra.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(extra) { $1 }
        }
        process.executableURL = URL(fileURLWithPath: Self.script)
        process.arguments = [
            "exec", clusterDirectory, "\(corosyncNode)", Self.binary, "run", "--config", file ?? configuration(name),
        ]
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: root + "/\(name).log"))
        log.seekToEndOfFile()
        process.standardOutput = log
        process.standardError = log
        try process.run()
        engines[name] = process
        logs[name] = log
        guard waitForSocket else { return }
        // An engine that exits (a configuration it refuses) is not waited for.
        guard eventually(30, { !process.isRunning || (try? cli(name, ["status"]))?.status == 0 }), process.isRunning
        else {
            throw EngineClusterError("engine \(name) did not come up:\n\(engineLog(name))")
        }
    }

    func engineLog(_ name: String) -> String {
        (FileManager.default.contents(atPath: root + "/\(name).log")).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// The engine's pid (the `hamn-events run` process inside the namespace).
    func enginePID(_ name: String) -> Int32? {
        guard let result = try? runTool("/usr/bin/pgrep", ["-f", "run --config \(configuration(name))"]) else {
            return nil
        }
        return result.out.split(separator: "\n").compactMap { Int32($0) }.filter { pid in
            // The hamn-events process itself, not the wrappers that started it.
            (try? String(contentsOfFile: "/proc/\(pid)/comm", encoding: .utf8))?.hasPrefix("hamn-events") == true
        }.first
    }

    /// The engine's service thread (named `hamn-service`): its scheduling policy and real-time
    /// priority (fields 41 and 40 of its /proc stat).
    func serviceThread(_ name: String) -> (policy: Int, priority: Int)? {
        guard let pid = enginePID(name),
            let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task")
        else { return nil }
        for task in tasks {
            let base = "/proc/\(pid)/task/\(task)"
            guard (try? String(contentsOfFile: base + "/comm", encoding: .utf8)) == "hamn-service\n",
                let stat = try? String(contentsOfFile: base + "/stat", encoding: .utf8)
            else { continue }
            // After the command name in parentheses, fields 3 on.
            let fields = stat[stat.index(after: stat.lastIndex(of: ")")!)...].split(separator: " ")
            guard fields.count >= 39, let priority = Int(fields[37]), let policy = Int(fields[38]) else { return nil }
            return (policy, priority)
        }
        return nil
    }

    /// The engine's exit status once it has ended (through `ns-cluster exec`, which execs it).
    func engineExitStatus(_ name: String) -> Int32? {
        guard let process = engines[name], !process.isRunning else { return nil }
        return process.terminationStatus
    }

    func killEngine(_ name: String) {
        if let pid = enginePID(name) { kill(pid, SIGKILL) }
    }

    /// kill -9 of several engines at one instant, as far as any of them can tell: each is stopped
    /// (SIGSTOP) first, so none of them sees another leave and reacts; then each is killed. Returns
    /// when all of them have ended.
    func killEnginesTogether(_ names: [String]) throws {
        let pids = names.compactMap { enginePID($0) }
        for pid in pids { kill(pid, SIGSTOP) }
        let stopped = eventually(10) {
            pids.allSatisfy { pid in
                guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                    let close = stat.lastIndex(of: ")")
                else { return true }
                return stat[stat.index(close, offsetBy: 2)] == "T"
            }
        }
        for pid in pids { kill(pid, SIGKILL) }
        guard stopped, eventually(10, { names.allSatisfy { engineExitStatus($0) != nil } }) else {
            throw EngineClusterError("engines \(names) did not end after SIGSTOP and SIGKILL")
        }
    }

    /// Sends `signal` to the engine's process; false when it does not run.
    @discardableResult
    func signalEngine(_ name: String, _ signal: Int32) -> Bool {
        guard let pid = enginePID(name) else { return false }
        return kill(pid, signal) == 0
    }

    /// A shell command line that does to corosync namespace `corosyncNode` what pulling its
    /// power would: kill -9 of every engine started there (waiting, 5 s at most, until none is
    /// left) and of its corosync (`ns-cluster kill`, which waits too). For stand-in fence agents,
    /// which run as root in another node's namespace (the pid namespace and the file system are
    /// shared); call it once the engines it is to kill have been started.
    func powerOffCommand(corosyncNode: Int) -> String {
        var parts: [String] = []
        for name in namespaces.filter({ $0.value == corosyncNode }).keys.sorted() {
            // The pattern of `enginePID`; quoted for sh (the paths have no quote in them).
            let pattern = "run --config \(configuration(name))"
            parts.append("pkill -9 -f '\(pattern)'")
            parts.append(
                "i=0; while pgrep -f '\(pattern)' >/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done")
        }
        parts.append("'\(Self.script)' kill '\(clusterDirectory)' \(corosyncNode) || true")
        return parts.joined(separator: "\n")
    }

    /// A shell command line that pulls the power of corosync namespace `corosyncNode`:
    /// `ns-cluster poweroff`, kill -9 of every process in that namespace (its corosync, engines,
    /// their commands and the fence agents they started), until none is left.
    func powerOffEverythingCommand(corosyncNode: Int) -> String {
        "'\(Self.script)' poweroff '\(clusterDirectory)' \(corosyncNode)"
    }

    func startCorosync(_ node: Int) throws {
        let result = try runTool(Self.script, ["start", clusterDirectory, "\(node)"])
        guard result.status == 0 else { throw EngineClusterError("ns-cluster start: \(result.err)") }
    }

    /// `corosync-quorumtool -s` on node `corosyncNode`: nil when its corosync does not answer,
    /// else whether it is quorate.
    func corosyncQuorate(_ corosyncNode: Int) -> Bool? {
        guard
            let result = try? runTool(
                Self.script, ["exec", clusterDirectory, "\(corosyncNode)", "corosync-quorumtool", "-s"])
        else { return nil }
        switch result.status {
        case 0: return true
        case 2: return false
        default: return nil
        }
    }

    /// `ns-cluster wait`: every running corosync reports `members` members.
    func waitCorosync(members: Int, seconds: Int = 30) throws {
        let result = try runTool(Self.script, ["wait", clusterDirectory, "\(members)", "\(seconds)"])
        guard result.status == 0 else { throw EngineClusterError("ns-cluster wait: \(result.err)") }
    }

    /// What `ns-cluster status` says of node `corosyncNode`'s corosync: whether it runs.
    func corosyncRunning(_ corosyncNode: Int) -> Bool? {
        guard let result = try? runTool(Self.script, ["status", clusterDirectory]), result.status == 0 else {
            return nil
        }
        guard let line = result.out.split(separator: "\n").first(where: { $0.hasPrefix("node\(corosyncNode) ") }) else {
            return nil
        }
        return line.contains("corosync pid")
    }

    func killCorosync(_ node: Int) throws {
        let result = try runTool(Self.script, ["kill", clusterDirectory, "\(node)"])
        guard result.status == 0 else { throw EngineClusterError("ns-cluster kill: \(result.err)") }
    }

    func link(_ node: Int, up: Bool) throws {
        let result = try runTool(Self.script, ["link", clusterDirectory, "\(node)", up ? "up" : "down"])
        guard result.status == 0 else { throw EngineClusterError("ns-cluster link: \(result.err)") }
    }

    @discardableResult
    func cli(_ node: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try runTool(Self.binary, [arguments[0], "--socket", socket(node)] + arguments.dropFirst())
    }

    func status(_ node: String) -> [String: Any]? {
        guard let result = try? cli(node, ["status", "--format", "json"]), result.status == 0 else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(result.out.utf8))) as? [String: Any]
    }

    func members(_ node: String) -> [String]? {
        status(node)?["members"] as? [String]
    }

    /// The texts of `node`'s journal lines, in order: those of `kind` when given, those containing
    /// `containing` when given (both when both are).
    func journal(_ node: String, kind: String? = nil, containing: String? = nil) -> [String] {
        journalLines(node, kind: kind, containing: containing).map(\.text)
    }

    /// `journal`'s lines with their times (seconds since 1970).
    func journalLines(_ node: String, kind: String? = nil, containing: String? = nil) -> [(time: Double, text: String)]
    {
        let quoted = { (text: String) in "'" + text.replacingOccurrences(of: "'", with: "''") + "'" }
        let conditions = [kind.map { "kind = \(quoted($0))" }, containing.map { "instr(text, \(quoted($0))) > 0" }]
            .compactMap { $0 }
        let filter = conditions.isEmpty ? "" : "WHERE " + conditions.joined(separator: " AND ") + " "
        let result = try? runTool(
            "/usr/bin/sqlite3",
            ["-separator", "\t", root + "/\(node).sqlite", "SELECT time, text FROM log \(filter)ORDER BY id"])
        return (result?.out ?? "").split(separator: "\n").compactMap { line in
            guard let tab = line.firstIndex(of: "\t"), let time = Double(line[..<tab]) else { return nil }
            return (time, String(line[line.index(after: tab)...]))
        }
    }

    /// The recorded steps: (node, word, event, event node, start ns, end ns, scheduling policy).
    func steps() -> [EngineStep] {
        guard let text = FileManager.default.contents(atPath: outputDirectory + "/steps") else { return [] }
        return String(decoding: text, as: UTF8.self).split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ").map(String.init)
            guard fields.count == 7, let start = Int64(fields[4]), let end = Int64(fields[5]),
                let policy = Int(fields[6])
            else { return nil }
            return EngineStep(
                node: fields[0], word: fields[1], event: fields[2], eventNode: fields[3], start: start, end: end,
                policy: policy)
        }
    }

    func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition() { return true }
            Thread.sleep(forTimeInterval: 0.1)
        }
        return condition()
    }

    func tearDown() {
        for name in engines.keys { killEngine(name) }
        for process in engines.values where process.isRunning {
            kill(process.processIdentifier, SIGKILL)
        }
        engines = [:]
        // Commands left running by killed engines (step sleeps) are in this tree's bin.
        _ = try? runTool("/usr/bin/pkill", ["-9", "-f", binDirectory + "/step"])
        let corosyncs = SharedMemoryLeft.corosyncPids(clusterDirectory)
        _ = try? runTool(Self.script, ["down", clusterDirectory])
        // Nothing of this cluster's corosyncs (and the engines connected to them) in /dev/shm.
        let left = SharedMemoryLeft.entries(of: corosyncs)
        #expect(left.isEmpty, "left in /dev/shm by corosyncs \(corosyncs): \(left)")
        for log in logs.values { try? log.close() }
        try? FileManager.default.removeItem(atPath: root)
    }
}

struct EngineStep: Equatable, CustomStringConvertible {
    var node: String
    var word: String
    var event: String
    var eventNode: String
    var start: Int64
    var end: Int64
    /// The command's scheduling policy: 0, SCHED_OTHER, always (the service's thread is real-time, its commands not).
    var policy: Int
    var description: String { "\(node) \(word) \(event)@\(eventNode)" }
}

struct EngineClusterError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A new directory with `hamn-events cluster setup`'s files (corosync.conf, authkey, hamn.yaml)
/// for ns-cluster's nodes 1 to `nodes` (nodeK at 127.77.0.K); the caller removes it.
func clusterSetupFiles(nodes: Int) throws -> String {
    var template = Array((NSTemporaryDirectory() + "hamn-setup-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw EngineClusterError("mkdtemp failed") }
    let setup = String(cString: made)
    let written = try runTool(
        EngineCluster.binary, ["cluster", "setup", "--output", setup] + (1...nodes).map { "node\($0)=127.77.0.\($0)" })
    guard written.status == 0 else {
        try? FileManager.default.removeItem(atPath: setup)
        throw EngineClusterError("cluster setup failed (\(written.status)): \(written.err)")
    }
    return setup
}

/// Runs `body` with a cluster, tearing it down whatever happens.
func withCluster(
    corosyncNodes: Int, nodes: [String], twoNode: Bool = false, upArguments: [String] = [],
    _ body: (EngineCluster) throws -> Void
) throws {
    let cluster = try EngineCluster(
        corosyncNodes: corosyncNodes, nodes: nodes, twoNode: twoNode, upArguments: upArguments)
    defer { cluster.tearDown() }
    do {
        try body(cluster)
    } catch {
        for name in nodes { print("---- \(name)'s log\n\(cluster.engineLog(name))") }
        throw error
    }
}

/// Whether this machine can run the namespace tests (root, ip, corosync).
var namespaceClustersAvailable: Bool {
    getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/corosync")
        && FileManager.default.isExecutableFile(atPath: EngineCluster.script)
}
