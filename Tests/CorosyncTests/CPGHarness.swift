import CPGTestSupport
import CorosyncTransport
import Foundation
import RulesEngine
import Synchronization
import Testing

// The CPG tests' harness. Each test brings up its own one-node corosync cluster in a network
// namespace (`scripts/ns-cluster up 1 DIR --prefix hamnt<random>`) and takes it down again
// whatever happens; the host's own corosync, if any, is never touched.
//
// Getting into the namespace: the test process itself stays in the host's namespaces. A
// connection is opened on a short-lived thread of its own that first calls setns(2) into the
// node's network namespace (a thread's network namespace is its own, so no other thread, and no
// Swift task, is affected); libqb's abstract Unix socket to corosync is made there, and the
// connection keeps working from any thread afterwards. A second member of the group has to be
// another process (CPG tells members apart by node id and pid, and corosync refuses a second
// join of one group from one pid): the `cpg-peer` executable (Tests/CPGPeer), built beside this
// test binary and started with `ns-cluster exec` in the namespace, a member commanded over the
// group itself that logs what it sees to a file.

enum CPGHarness {
    static var repository: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().path
    }

    static var script: String { repository + "/scripts/ns-cluster" }

    /// Root, corosync and the script: what the tests need.
    static var available: Bool {
        getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/sbin/corosync")
            && FileManager.default.isExecutableFile(atPath: script)
    }

    // Glibc functions Swift's Glibc module leaves out (they need _GNU_SOURCE), found by dlsym.
    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    static let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET
    static var setns: SetNS? { dlsym(nil, "setns").map { unsafeBitCast($0, to: SetNS.self) } }
    static var addCloseFrom: AddCloseFrom? {
        dlsym(nil, "posix_spawn_file_actions_addclosefrom_np").map { unsafeBitCast($0, to: AddCloseFrom.self) }
    }

    /// This test binary, to start as a peer.
    static var binary: String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        return count > 0
            ? String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self) : CommandLine.arguments[0]
    }

    /// The `cpg-peer` executable, built beside the test binary (`swift build --build-tests`).
    static var peerBinary: String {
        URL(fileURLWithPath: binary).deletingLastPathComponent().appendingPathComponent("cpg-peer").path
    }
}

struct CPGHarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Starts a process with posix_spawn (no Foundation.Process, no pipes): standard output and
/// error go to `output`, every other descriptor is closed in the child.
func cpgSpawn(_ arguments: [String], output: String, environment extra: [String: String] = [:]) throws -> pid_t {
    var environment = ProcessInfo.processInfo.environment
    for (key, value) in extra { environment[key] = value }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    if let closeFrom = CPGHarness.addCloseFrom { _ = closeFrom(&actions, 3) }
    var pid: pid_t = 0
    let result = posix_spawn(&pid, arguments[0], &actions, nil, argv, envp)
    guard result == 0 else {
        throw CPGHarnessError("posix_spawn \(arguments[0]): \(String(cString: strerror(result)))")
    }
    return pid
}

/// Waits for `pid` for at most `seconds`; its exit status, or nil when it still runs.
func cpgWait(_ pid: pid_t, seconds: Double) async -> Int32? {
    let deadline = Date().addingTimeInterval(seconds)
    while true {
        var status: Int32 = 0
        let done = waitpid(pid, &status, WNOHANG)
        if done == pid { return status }
        if done < 0 { return -1 }
        if Date() >= deadline { return nil }
        try? await Task.sleep(nanoseconds: 20_000_000)
    }
}

/// Runs a command to its end: (exit status, standard output and error).
@discardableResult
func cpgRun(_ arguments: [String], seconds: Double = 120) async throws -> (status: Int32, output: String) {
    let output = NSTemporaryDirectory() + "cpg-run-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
    defer { unlink(output) }
    let pid = try cpgSpawn(arguments, output: output)
    guard let status = await cpgWait(pid, seconds: seconds) else {
        kill(pid, SIGKILL)
        _ = await cpgWait(pid, seconds: 5)
        throw CPGHarnessError("\(arguments.joined(separator: " ")) did not end in \(seconds) s")
    }
    let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
    return ((status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f), text)
}

/// The events of a connection, gathered by a task of their own.
final class CPGRecorder: Sendable {
    let connection: CPGConnection
    private let state = Mutex<(events: [CPGEvent], ended: Bool)>(([], false))

    init(_ connection: CPGConnection) {
        self.connection = connection
        let stream = connection.events
        Task { [self] in
            for await event in stream { state.withLock { $0.events.append(event) } }
            state.withLock { $0.ended = true }
        }
    }

    var events: [CPGEvent] { state.withLock { $0.events } }
    var ended: Bool { state.withLock { $0.ended } }

    /// The log lines, without votequorum's (they interleave with the group's at will).
    var lines: [String] { events.filter { if case .quorum = $0 { false } else { true } }.map(cpgLine) }

    /// Waits until `condition` holds on the events, for at most `seconds`.
    func wait(_ seconds: Double = 10, _ condition: ([CPGEvent]) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if condition(events) { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return condition(events)
    }

    func waitForEnd(_ seconds: Double = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if ended { return true }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return ended
    }

    /// The messages received: (sender, bytes).
    var messages: [(CPGAddress, [UInt8])] {
        events.compactMap { if case .message(let from, let bytes) = $0 { (from, bytes) } else { nil } }
    }

    var configurations: [(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress])] {
        events.compactMap {
            if case .configuration(let members, let joined, let left) = $0 { (members, joined, left) } else { nil }
        }
    }
}

/// A corosync cluster of network namespaces (one node unless told), for one test.
final class CPGTestCluster: Sendable {
    let directory: String
    let prefix: String
    private let peers = Mutex<[pid_t]>([])

    private init(directory: String, prefix: String) {
        self.directory = directory
        self.prefix = prefix
    }

    /// Node `node`'s network namespace.
    func namespace(_ node: Int = 1) -> String { "\(prefix)-node\(node)" }

    static func up(nodes: Int = 1) async throws -> CPGTestCluster {
        var template = Array((NSTemporaryDirectory() + "hamn-cpgt-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CPGHarnessError("mkdtemp failed") }
        let directory = String(cString: made)
        let prefix = "hamnt" + String(format: "%04x", UInt16.random(in: 0...UInt16.max))
        let cluster = CPGTestCluster(directory: directory, prefix: prefix)
        let result: (status: Int32, output: String)
        do {
            result = try await cpgRun([CPGHarness.script, "up", "\(nodes)", directory + "/cluster", "--prefix", prefix])
        } catch {
            await cluster.tearDown()
            throw error
        }
        guard result.status == 0 else {
            await cluster.tearDown()
            throw CPGHarnessError("ns-cluster up failed (\(result.status)):\n\(result.output)")
        }
        return cluster
    }

    /// Kills the peers, takes the cluster down, removes the directory.
    func tearDown() async {
        for pid in peers.withLock({ $0 }) {
            kill(pid, SIGKILL)
            _ = await cpgWait(pid, seconds: 5)
        }
        let corosyncs = SharedMemoryLeft.corosyncPids(directory + "/cluster")
        _ = try? await cpgRun([CPGHarness.script, "down", directory + "/cluster"])
        // Nothing of this cluster's corosync (and the peers connected to it) in /dev/shm.
        let left = SharedMemoryLeft.entries(of: corosyncs)
        #expect(left.isEmpty, "left in /dev/shm by corosyncs \(corosyncs): \(left)")
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Connects to node `node`'s corosync, from a thread in its network namespace.
    func connect(group: String, trackQuorum: Bool = true, node: Int = 1) async throws -> CPGConnection {
        try await Self.inNamespace(namespace(node)) { try CPGConnection(group: group, trackQuorum: trackQuorum) }
    }

    /// Runs `body` on a new thread that first enters network namespace `name`.
    static func inNamespace<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, Error>) in
            let thread = Thread {
                let fd = open("/run/netns/\(name)", O_RDONLY | O_CLOEXEC)
                guard fd >= 0 else {
                    continuation.resume(
                        throwing: CPGHarnessError("open /run/netns/\(name): \(String(cString: strerror(errno)))"))
                    return
                }
                defer { close(fd) }
                guard let setns = CPGHarness.setns, setns(fd, CPGHarness.cloneNewNet) == 0 else {
                    continuation.resume(throwing: CPGHarnessError("setns \(name): \(String(cString: strerror(errno)))"))
                    return
                }
                continuation.resume(with: Result { try body() })
            }
            thread.start()
        }
    }

    /// `ns-cluster ARGS…` on this cluster.
    @discardableResult
    func script(_ command: String, _ arguments: [String] = []) async throws -> String {
        let result = try await cpgRun([CPGHarness.script, command, directory + "/cluster"] + arguments)
        guard result.status == 0 else { throw CPGHarnessError("ns-cluster \(command) failed: \(result.output)") }
        return result.output
    }

    /// Starts a peer member in node `node`'s namespace: the `cpg-peer` executable.
    func startPeer(group: String, name: String, node: Int = 1) throws -> CPGPeer {
        let log = directory + "/\(name).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        let pid = try cpgSpawn(
            [
                CPGHarness.script, "exec", directory + "/cluster", "\(node)",
                CPGHarness.peerBinary,
            ],
            output: directory + "/\(name).out",
            environment: [CPGPeerEnvironment.group: group, CPGPeerEnvironment.log: log])
        peers.withLock { $0.append(pid) }
        return CPGPeer(pid: pid, node: UInt32(node), log: log, output: directory + "/\(name).out")
    }
}

/// A peer process: its pid (also its CPG pid: `ns-cluster exec` execs all the way down) and log.
struct CPGPeer: Sendable {
    let pid: pid_t
    let node: UInt32
    let log: String
    let output: String

    var address: CPGAddress { CPGAddress(nodeID: node, pid: UInt32(pid)) }

    /// Its log lines, without votequorum's and the final "end".
    var lines: [String] {
        allLines.filter { !$0.hasPrefix("q ") && $0 != "end" && !$0.hasPrefix("peer ") }
    }

    var allLines: [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    var ended: Bool { allLines.last == "end" }

    var diagnostics: String {
        "---- \(log)\n\(allLines.joined(separator: "\n"))\n---- \(output)\n\((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")"
    }

    func waitForLine(_ seconds: Double = 20, _ condition: (String) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if allLines.contains(where: condition) { return true }
            try? await Task.sleep(nanoseconds: 20_000_000)
        }
        return allLines.contains(where: condition)
    }

    /// Waits for the process to end; its exit status (nil: still running after `seconds`).
    func wait(_ seconds: Double = 20) async -> Int32? {
        await cpgWait(pid, seconds: seconds)
    }
}

/// Commands to peers travel in the group: "peer:<pid or *> <command>".
func cpgCommand(_ target: String, _ command: String) -> [UInt8] {
    Array("peer:\(target) \(command)".utf8)
}

/// Runs `body` with a fresh cluster (one node unless told), taking it down whatever happens.
func withCPGCluster(nodes: Int = 1, _ body: (CPGTestCluster) async throws -> Void) async throws {
    let cluster = try await CPGTestCluster.up(nodes: nodes)
    do {
        try await body(cluster)
    } catch {
        await cluster.tearDown()
        throw error
    }
    await cluster.tearDown()
}
