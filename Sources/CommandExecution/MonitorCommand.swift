import RecoveryPrograms
import Subprocess
import Synchronization

#if canImport(System)
    import System
#else
    import SystemPackage
#endif

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Runs the program of a command-based sampler (`db2pd -d DB -hadr`, an administrator's
/// `/bin/sh -c COMMAND`) the way ``SegmentExecutor`` runs recovery commands:
///
/// - as an argument vector (no shell is added here: an administrator's command is given as
///   `["/bin/sh", "-c", command]`, `db2pd` as `[db2pd, "-d", database, "-hadr"]`);
/// - in a new session, so the program leads a process group of its own;
/// - standard input from `/dev/null`; standard output kept (its first ``outputLimit`` bytes)
///   and standard error kept (its last 2 KiB, for messages), read as they are written;
/// - with a timeout: when it expires the whole process group is killed with `SIGKILL`;
/// - cancelling the calling task kills the group too;
/// - when the program exits, whatever it left running in its process group is killed as well
///   (a monitor runs every interval: it must not leave processes behind). A process that left
///   the group (`setsid`) is not touched.
package struct MonitorCommand: Sendable {
    package var arguments: [String]
    package var timeout: Duration
    package var environment: [String: String]
    package var outputLimit: Int = 256 * 1024

    package init(arguments: [String], timeout: Duration, environment: [String: String], outputLimit: Int = 256 * 1024) {
        self.arguments = arguments
        self.timeout = timeout
        self.environment = environment
        self.outputLimit = outputLimit
    }

    package struct Result: Sendable {
        package var termination: Termination
        package var output: String
        /// More than ``MonitorCommand/outputLimit`` bytes were written; the rest was dropped.
        package var outputTruncated: Bool
        package var errorTail: String
    }

    package func run() async -> Result {
        guard let program = arguments.first else {
            return Result(termination: .couldNotStart("no program"), output: "", outputTruncated: false, errorTail: "")
        }
        if Task.isCancelled {
            return Result(termination: .couldNotStart("cancelled"), output: "", outputTruncated: false, errorTail: "")
        }
        var options = PlatformOptions()
        options.createSession = true
        var subprocessEnvironment: [Environment.Key: String] = [:]
        for (name, value) in environment {
            guard let key = Environment.Key(rawValue: name) else { continue }
            subprocessEnvironment[key] = value
        }
        let configuration = Configuration(
            executable: .path(FilePath(program)),
            arguments: Arguments(Array(arguments.dropFirst())),
            environment: .custom(subprocessEnvironment),
            platformOptions: options
        )
        let timeout = self.timeout
        let outputLimit = self.outputLimit
        do {
            let execution = try await Subprocess.run(
                configuration, input: .none, output: .sequence, error: .sequence
            ) { execution -> Captured in
                await Self.supervise(
                    execution.processIdentifier.value, output: execution.standardOutput,
                    error: execution.standardError, timeout: timeout, outputLimit: outputLimit)
            }
            let captured = execution.closureResult
            let termination: Termination
            if captured.timedOut {
                termination = .timedOut
            } else {
                switch execution.terminationStatus {
                case .exited(let status): termination = .exited(status)
                case .signaled(let signal): termination = .signaled(signal)
                }
            }
            return Result(
                termination: termination, output: String(decoding: captured.output, as: UTF8.self),
                outputTruncated: captured.truncated, errorTail: String(decoding: captured.error, as: UTF8.self))
        } catch {
            return Result(
                termination: .couldNotStart(Task.isCancelled ? "cancelled" : "\(error)"), output: "",
                outputTruncated: false, errorTail: "")
        }
    }

    /// The process's environment with `PATH` set (``SegmentExecutor/defaultPath`` when unset).
    package static func defaultEnvironment() -> [String: String] {
        var environment = SegmentExecutor.processEnvironment()
        if environment["PATH"]?.isEmpty ?? true { environment["PATH"] = SegmentExecutor.defaultPath }
        return environment
    }

    /// Where a program name is found: itself when it holds a `/`, else the first executable
    /// `PATH` entry of that name.
    package static func locate(_ program: String, path: String?) -> String? {
        if program.contains("/") { return access(program, X_OK) == 0 ? program : nil }
        let directories = (path ?? SegmentExecutor.defaultPath).split(separator: ":").map(String.init)
        for directory in directories where !directory.isEmpty {
            let candidate = directory.hasSuffix("/") ? directory + program : directory + "/" + program
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 {
                return candidate
            }
        }
        return nil
    }

    // MARK: - Supervision

    private struct Captured: Sendable {
        var output: [UInt8]
        var truncated: Bool
        var error: [UInt8]
        var timedOut: Bool
    }

    private enum Piece: Sendable {
        case output([UInt8], truncated: Bool)
        case error([UInt8])
        case timer
    }

    /// Runs inside swift-subprocess's body closure, while the program is not reaped yet, so
    /// `pid` is still its process group id.
    private static func supervise(
        _ pid: pid_t, output: SubprocessOutputSequence, error: SubprocessOutputSequence, timeout: Duration,
        outputLimit: Int
    ) async -> Captured {
        let group = GroupKiller(leader: pid)
        let captured = await withTaskCancellationHandler {
            await withTaskGroup(of: Piece.self, returning: Captured.self) { tasks in
                tasks.addTask {
                    do {
                        try await Task.sleep(for: timeout)
                    } catch {
                        return .timer
                    }
                    group.kill(timedOut: true)
                    return .timer
                }
                tasks.addTask {
                    var bytes: [UInt8] = []
                    var truncated = false
                    do {
                        for try await chunk in output {
                            chunk.withUnsafeBytes { raw in
                                let room = outputLimit - bytes.count
                                if raw.count > room { truncated = true }
                                if room > 0 { bytes.append(contentsOf: raw.prefix(room)) }
                            }
                        }
                    } catch {}
                    return .output(bytes, truncated: truncated)
                }
                tasks.addTask {
                    var bytes: [UInt8] = []
                    do {
                        for try await chunk in error {
                            chunk.withUnsafeBytes { bytes.append(contentsOf: $0) }
                            if bytes.count > 4096 { bytes.removeFirst(bytes.count - 2048) }
                        }
                    } catch {}
                    return .error(Array(bytes.suffix(2048)))
                }
                var result = Captured(output: [], truncated: false, error: [], timedOut: false)
                var readersLeft = 2
                while readersLeft > 0, let piece = await tasks.next() {
                    switch piece {
                    case .output(let bytes, let truncated):
                        result.output = bytes
                        result.truncated = truncated
                        readersLeft -= 1
                    case .error(let bytes):
                        result.error = bytes
                        readersLeft -= 1
                    case .timer:
                        break
                    }
                }
                await group.waitForLeaderExit()
                tasks.cancelAll()
                return result
            }
        } onCancel: {
            group.kill(timedOut: false)
        }
        // The program has exited but is not reaped: its pid is still the group id. Kill what
        // it left behind in its group.
        group.killLeftovers()
        var result = captured
        result.timedOut = group.finish()
        return result
    }
}

/// Kills a command's process group while its leader is not reaped.
private final class GroupKiller: Sendable {
    let leader: pid_t
    private struct State {
        var timedOut = false
        var finished = false
    }
    private let state = Mutex(State())

    init(leader: pid_t) {
        self.leader = leader
    }

    func kill(timedOut: Bool) {
        state.withLock { state in
            guard !state.finished else { return }
            if timedOut, !leaderHasExited() { state.timedOut = true }
            killGroup(leader)
        }
    }

    func killLeftovers() {
        state.withLock { state in
            guard !state.finished else { return }
            killGroup(leader)
        }
    }

    func finish() -> Bool {
        state.withLock { state in
            state.finished = true
            return state.timedOut
        }
    }

    func leaderHasExited() -> Bool {
        var info = siginfo_t()
        while true {
            if waitid(P_PID, id_t(leader), &info, WEXITED | WNOHANG | WNOWAIT) == 0 {
                return info._sifields._sigchld.si_pid != 0
            }
            if errno != EINTR { return true }
        }
    }

    func waitForLeaderExit() async {
        var delay = 1
        while !leaderHasExited() {
            if !Task.isCancelled {
                try? await Task.sleep(for: .milliseconds(delay))
            } else {
                await Task.detached { [delay] in try? await Task.sleep(for: .milliseconds(delay)) }.value
            }
            delay = min(delay * 2, 25)
        }
    }
}

private func killGroup(_ pgid: pid_t) {
    _ = kill(-pgid, SIGKILL)
}
