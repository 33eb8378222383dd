import RecoveryPrograms
import RulesParser
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

/// Runs one segment of a recovery program on this node: the commands between two barriers,
/// all started together and run in parallel (SPEC sections 3 and 7).
///
/// Each command is run as `/bin/sh -c COMMAND` through swift-subprocess, or, when its text has
/// no shell syntax at all, directly, as make does (see "Direct execution" below):
///
/// - in a new session (`setsid`), so the shell leads a process group of its own and a timeout
///   or a cancellation can kill the shell *and everything it started* with one
///   `kill(-pgid, SIGKILL)`;
/// - with standard input from `/dev/null`, and standard output and standard error merged into
///   one pipe that is read as it is written; only the last ``outputTailBytes`` bytes are kept,
///   so a command that prints gigabytes neither blocks on a full pipe nor grows memory;
/// - with the event only in its environment (``environment(for:event:)``): the caller's
///   dictionary (`HAMN_EVENT`, `HAMN_EVENT_STATE`, `HAMN_EVENT_ID`, ...) merged over
///   ``baseEnvironment``. Nothing is ever spliced into the command text;
/// - a relative command (a bundled event script such as `node_up_local arg`) gets
///   ``eventScriptDirectory`` prepended to `PATH`, so it is found there (by the shell, or by
///   the same search when it runs directly); an absolute command runs as given.
///
/// Direct execution. A command made only of plain words (``plainWords(_:)``: ASCII letters,
/// digits and `_ - . / , : = + @ %`, words separated by single spaces; so no quote, `$`, glob,
/// redirection, `;`, `&`, `|`, backslash, `~`, `#`, tab or newline), whose first word is neither
/// an assignment (`VAR=...`) nor a shell reserved word or builtin (``shellWords``), means the
/// same to every shell as its words do to `execve`. Such a command runs without the shell:
/// argv = its words (argv[0] as written), the program found as the shell would find it (an
/// absolute first word as is; a bare name in `PATH` of the command's environment, so a
/// bundled event script in ``eventScriptDirectory``; a relative path with a slash, or a `PATH`
/// with an empty or relative entry, is left to the shell), and `PWD` set as `sh` exports it.
/// Everything else (session, process group, environment, output, timeout, cancellation,
/// results) is the same; the program's argv[0] is what the shell would pass, but its parent is
/// this process and it leads the process group itself (through `sh`, which forks for the
/// command, both were the shell). Whenever the direct start
/// is not certain to behave as the shell would, the shell runs the command as before: a
/// program that is not found or not executable (the shell's exit 127 or 126 with its
/// message), a file the kernel refuses to execute (`ENOEXEC`, a script without `#!`, which
/// `sh` runs itself), any other failure to start it directly.
///
/// Errors: nothing here throws. Every outcome is a ``CommandResult``:
///
/// - A non-zero exit code is a normal result, not a thrown error: `.exited(status)`, with
///   ``CommandResult/accepted`` computed from the step's ``ExpectedStatus``.
/// - A command ended by a signal (`kill -TERM $$`) is `.signaled(signal)`, never accepted.
/// - A command still running when its ``timeout`` expires is `.timedOut`, never accepted; its
///   whole process group was killed with `SIGKILL`.
/// - A command that cannot be started (the shell cannot be executed, an environment name
///   with `=`, a value with a NUL byte, the task already cancelled) is `.couldNotStart(why)`.
///   A command *word* that does not exist is not in this class: the shell starts and exits
///   with 127 ("not found") or 126 ("not executable"), an ordinary `.exited` result.
///
/// Cancellation: cancelling the task that called ``run(_:environment:)`` kills the process
/// group of every command whose shell is still running (`SIGKILL`), waits for the shells to
/// end and returns their results, typically `.signaled(9)` and not accepted; commands not yet
/// started are `.couldNotStart("cancelled ...")`. Callers that cancel should discard the
/// results. A command whose shell already exited is not touched: background processes it
/// left behind (a daemon it started) keep running, after normal completion as after
/// cancellation. Only a timeout kills the group of a shell that is still running.
public struct SegmentExecutor: Sendable {
    /// The directory of the bundled event scripts, prepended to `PATH` for relative commands.
    public var eventScriptDirectory: String?
    /// How long one command may run; nil for no limit.
    public var timeout: Duration?
    /// How many bytes of each command's output (standard output and standard error
    /// interleaved as written) are kept in ``CommandResult/outputTail``.
    public var outputTailBytes: Int
    /// The environment every command starts from (the service's own by default). The event
    /// dictionary passed to ``run(_:environment:)`` is merged over it.
    public var baseEnvironment: [String: String]
    /// The shell that runs each command with `-c`.
    public var shellPath: String
    /// The working directory of the commands; nil to inherit this process's.
    public var workingDirectory: String?

    /// `PATH` when neither the base environment nor the event gives one.
    public static let defaultPath = "/usr/sbin:/usr/bin:/sbin:/bin"

    public init(
        eventScriptDirectory: String? = nil,
        timeout: Duration? = nil,
        outputTailBytes: Int = 4096,
        baseEnvironment: [String: String] = SegmentExecutor.processEnvironment(),
        shellPath: String = "/bin/sh",
        workingDirectory: String? = nil
    ) {
        self.eventScriptDirectory = eventScriptDirectory
        self.timeout = timeout
        self.outputTailBytes = max(0, outputTailBytes)
        self.baseEnvironment = baseEnvironment
        self.shellPath = shellPath
        self.workingDirectory = workingDirectory
    }

    /// Starts all `commands` together, waits for all of them to end, and returns one result
    /// per command, in the order given. Never throws: see the type's documentation for how
    /// exit codes, signals, timeouts, start failures and cancellation are reported.
    ///
    /// - Parameters:
    ///   - commands: one node's commands of one segment (``NodePlan/segments``).
    ///   - environment: the event's variables, merged over ``baseEnvironment``.
    public func run(_ commands: [CommandStep], environment: [String: String]) async -> [CommandResult] {
        guard !commands.isEmpty else { return [] }
        // One command (the usual segment): no child task to hop through.
        if commands.count == 1 { return [await run(commands[0], environment: environment)] }
        return await withTaskGroup(of: (Int, CommandResult).self, returning: [CommandResult].self) { group in
            for (index, command) in commands.enumerated() {
                group.addTask { (index, await self.run(command, environment: environment)) }
            }
            var results = [CommandResult?](repeating: nil, count: commands.count)
            for await (index, result) in group {
                results[index] = result
            }
            return results.map { $0! }
        }
    }

    /// CLOCK_REALTIME in seconds since 1970.
    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    /// Runs one command to its end. Never throws; see ``run(_:environment:)``.
    public func run(_ step: CommandStep, environment: [String: String]) async -> CommandResult {
        let clock = ContinuousClock()
        let start = clock.now
        func result(_ termination: Termination, _ output: String) -> CommandResult {
            let elapsed = start.duration(to: clock.now).components
            return CommandResult(
                command: step.command,
                line: step.line,
                termination: termination,
                accepted: CommandResult.accepts(step.expected, termination),
                duration: Double(elapsed.seconds) + Double(elapsed.attoseconds) / 1e18,
                outputTail: output,
                endedAt: Self.wallClock()
            )
        }

        if Task.isCancelled {
            return result(.couldNotStart("cancelled before it started"), "")
        }

        var options = PlatformOptions()
        options.createSession = true
        let merged = self.environment(for: step, event: environment)
        func configuration(_ launch: Launch) -> Configuration {
            var variables = merged
            let executable: String
            let arguments: Arguments
            switch launch {
            case .shell:
                executable = shellPath
                arguments = ["-c", step.command]
            case .direct(let path, let words):
                executable = path
                arguments = Arguments(executablePathOverride: words[0], remainingValues: Array(words.dropFirst()))
                // What `sh` exports to the programs it runs.
                if let pwd = Self.shellPWD(inherited: merged["PWD"], directory: workingDirectory) {
                    variables["PWD"] = pwd
                }
            }
            var subprocessEnvironment: [Environment.Key: String] = [:]
            for (name, value) in variables {
                guard let key = Environment.Key(rawValue: name) else { continue }
                subprocessEnvironment[key] = value
            }
            return Configuration(
                executable: .path(FilePath(executable)),
                arguments: arguments,
                environment: .custom(subprocessEnvironment),
                workingDirectory: workingDirectory.map { FilePath($0) },
                platformOptions: options
            )
        }

        var launch = self.launch(for: step, environment: merged)
        while true {
            let attempt = await run(configuration(launch))
            // The program never started (ENOEXEC, removed since it was found, ...): the shell
            // runs the command and reports whatever it reports.
            if case .notStarted = attempt, launch != .shell, !Task.isCancelled {
                launch = .shell
                continue
            }
            switch attempt {
            case .finished(let termination, let output):
                return result(termination, output)
            case .lostTrack(let error):
                return result(.couldNotStart("lost track of the process after it started: \(error)"), "")
            case .notStarted(let error):
                return result(.couldNotStart(Task.isCancelled ? "cancelled before it started" : "\(error)"), "")
            }
        }
    }

    private enum Attempt {
        case finished(Termination, String)
        case notStarted(any Error)
        case lostTrack(any Error)
    }

    /// Starts one process and supervises it to its end.
    private func run(_ configuration: Configuration) async -> Attempt {
        let timeout = self.timeout
        let tailLimit = outputTailBytes
        let started = Mutex(false)
        do {
            let execution = try await Subprocess.run(
                configuration,
                input: .none,
                output: .sequence,
                error: .combinedWithOutput
            ) { execution -> Supervision in
                started.withLock { $0 = true }
                return await Self.supervise(
                    execution.processIdentifier.value,
                    output: execution.standardOutput,
                    timeout: timeout,
                    tailLimit: tailLimit
                )
            }
            let supervision = execution.closureResult
            let termination: Termination
            if supervision.timedOut {
                termination = .timedOut
            } else {
                switch execution.terminationStatus {
                case .exited(let status): termination = .exited(status)
                case .signaled(let signal): termination = .signaled(signal)
                }
            }
            return .finished(termination, supervision.output)
        } catch {
            return started.withLock({ $0 }) ? .lostTrack(error) : .notStarted(error)
        }
    }

    // MARK: Direct execution

    /// How a command is started.
    enum Launch: Sendable, Equatable {
        /// `shellPath -c COMMAND`.
        case shell
        /// `execve(path, words)`: `words[0]` as written in the command.
        case direct(path: String, words: [String])
    }

    /// How `step` is started, given the environment it runs with (``environment(for:event:)``):
    /// directly when its text is plain words (``plainWords(_:)``) whose program is found as the
    /// shell would find it, otherwise through the shell.
    func launch(for step: CommandStep, environment: [String: String]) -> Launch {
        guard let words = Self.plainWords(step.command) else { return .shell }
        let program = words[0]
        if program.contains("/") {
            // Relative to the working directory: left to the shell.
            guard program.hasPrefix("/"), Self.isExecutableFile(program) else { return .shell }
            return .direct(path: program, words: words)
        }
        guard !Self.shellWords.contains(program) else { return .shell }
        // `sh`'s search: the first regular, executable file in PATH order. An empty or relative
        // entry (the working directory) is left to the shell.
        let path = environment["PATH"] ?? Self.defaultPath
        for directory in path.split(separator: ":", omittingEmptySubsequences: false) {
            guard directory.hasPrefix("/") else { return .shell }
            let candidate = directory.hasSuffix("/") ? "\(directory)\(program)" : "\(directory)/\(program)"
            if Self.isExecutableFile(candidate) { return .direct(path: candidate, words: words) }
        }
        return .shell // not found: the shell's exit 127 and its message
    }

    /// The words of a command that has no shell syntax at all, nil otherwise: only ASCII
    /// letters, digits and `_ - . / , : = + @ %`, words separated by single spaces, no space
    /// first or last, and a first word without `=` (not an assignment).
    public static func plainWords(_ command: String) -> [String]? {
        let bytes = Array(command.utf8)
        guard let first = bytes.first, let last = bytes.last, first != 0x20, last != 0x20 else { return nil }
        var previous: UInt8 = 0
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                break
            case UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "/"), UInt8(ascii: ","),
                UInt8(ascii: ":"), UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "@"), UInt8(ascii: "%"):
                break
            case 0x20:
                guard previous != 0x20 else { return nil }
            default:
                return nil
            }
            previous = byte
        }
        let words = command.split(separator: " ").map(String.init)
        guard let program = words.first, !program.contains("=") else { return nil }
        return words
    }

    /// The first words that mean something else to a shell than a program in `PATH`: reserved
    /// words and the builtins of `dash` and `bash` (a builtin such as `echo`, `kill` or `test`
    /// differs from the program of the same name). A command starting with one runs through
    /// the shell.
    public static let shellWords: Set<String> = [
        // reserved words
        "case", "coproc", "do", "done", "elif", "else", "esac", "fi", "for", "function", "if", "in", "select",
        "then", "time", "until", "while",
        // special and regular builtins (POSIX, dash, bash)
        ".", ":", "alias", "bg", "bind", "break", "builtin", "caller", "cd", "chdir", "command", "compgen",
        "complete", "compopt", "continue", "declare", "dirs", "disown", "echo", "enable", "eval", "exec",
        "exit", "export", "false", "fc", "fg", "getopts", "hash", "help", "history", "jobs", "kill", "let",
        "local", "login", "logout", "mapfile", "newgrp", "popd", "printf", "pushd", "pwd", "read", "readarray",
        "readonly", "return", "set", "shift", "shopt", "source", "suspend", "test", "times", "trap", "true",
        "type", "typeset", "ulimit", "umask", "unalias", "unset", "wait",
    ]

    /// Whether `path` is a regular file this process may execute (what `sh` looks for).
    static func isExecutableFile(_ path: String) -> Bool {
        var info = stat()
        guard stat(path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        return access(path, X_OK) == 0
    }

    /// `PWD` as `sh` exports it to a command it runs in `directory` (nil: this process's
    /// working directory): the inherited value when it is an absolute name of that directory,
    /// otherwise its physical path.
    static func shellPWD(inherited: String?, directory: String?) -> String? {
        var here = stat()
        guard stat(directory ?? ".", &here) == 0 else { return inherited }
        if let inherited, inherited.hasPrefix("/") {
            var named = stat()
            if stat(inherited, &named) == 0, named.st_dev == here.st_dev, named.st_ino == here.st_ino {
                return inherited
            }
        }
        guard let resolved = realpath(directory ?? ".", nil) else { return inherited }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    /// The environment a command runs with: ``baseEnvironment``, the event's variables over it,
    /// `PATH` kept (``defaultPath`` when neither has one), and for a relative command
    /// ``eventScriptDirectory`` prepended to `PATH`.
    public func environment(for step: CommandStep, event: [String: String]) -> [String: String] {
        var merged = baseEnvironment.merging(event) { _, new in new }
        let path = merged["PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? Self.defaultPath
        if let directory = eventScriptDirectory, !directory.isEmpty, Self.isRelative(step) {
            merged["PATH"] = "\(directory):\(path)"
        } else {
            merged["PATH"] = path
        }
        return merged
    }

    /// Whether the command starts a relative program (a bundled event script) rather than an
    /// absolute path.
    public static func isRelative(_ step: CommandStep) -> Bool {
        guard let program = step.program, !program.isEmpty else { return false }
        return !program.hasPrefix("/")
    }

    /// This process's environment, read from `environ`.
    public static func processEnvironment() -> [String: String] {
        var result: [String: String] = [:]
        let start: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = environ
        guard var entry = start else { return result }
        while let pointer = entry.pointee {
            let text = String(cString: pointer)
            if let equals = text.firstIndex(of: "=") {
                let name = String(text[..<equals])
                if result[name] == nil {
                    result[name] = String(text[text.index(after: equals)...])
                }
            }
            entry += 1
        }
        return result
    }
}

// MARK: - Supervising one running command

/// What the supervision of one running command found.
struct Supervision: Sendable {
    var output: String
    var timedOut: Bool
}

extension SegmentExecutor {
    /// Runs while the shell `pid` runs, inside swift-subprocess's body closure, so the shell is
    /// not reaped yet and `pid` is still its process group id: a `kill(-pid, ...)` from here
    /// cannot reach a recycled pid. Reads the merged output to its end, keeping the tail;
    /// kills the group on timeout or task cancellation; returns only once the shell exited.
    static func supervise(
        _ pid: pid_t,
        output: SubprocessOutputSequence,
        timeout: Duration?,
        tailLimit: Int
    ) async -> Supervision {
        let group = ProcessGroupKiller(leader: pid)
        let tail = await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self, returning: OutputTail.self) { tasks in
                if let timeout {
                    tasks.addTask {
                        do {
                            try await Task.sleep(for: timeout)
                        } catch {
                            return // the command ended first, or we were cancelled
                        }
                        group.kill(becauseOfTimeout: true)
                    }
                }
                var tail = OutputTail(limit: tailLimit)
                do {
                    // Ends at end of file (every writer closed), or when the shell exits while
                    // something it left in the background still holds the pipe open:
                    // swift-subprocess then cancels the read instead of waiting for that EOF.
                    for try await chunk in output {
                        chunk.withUnsafeBytes { tail.append($0) }
                    }
                } catch {
                    tail.append(Array("\n[hamn-events: reading the output failed: \(error)]\n".utf8))
                }
                // The output can end before the shell does (`exec >&-`): the timeout still
                // applies until it has exited.
                await group.waitForLeaderExit()
                tasks.cancelAll()
                return tail
            }
        } onCancel: {
            group.kill(becauseOfTimeout: false)
        }
        return Supervision(output: tail.text, timedOut: group.finish())
    }
}

/// Kills a command's process group, at most while its leader (the shell) has not exited.
final class ProcessGroupKiller: Sendable {
    let leader: pid_t
    private struct State {
        var timedOut = false
        var finished = false
    }
    private let state = Mutex(State())

    init(leader: pid_t) {
        self.leader = leader
    }

    /// Sends `SIGKILL` to the whole process group, unless the shell has already exited (its
    /// background children are then left alone) or supervision has finished.
    func kill(becauseOfTimeout: Bool) {
        state.withLock { state in
            guard !state.finished, !leaderHasExited() else { return }
            if becauseOfTimeout { state.timedOut = true }
            _ = killProcessGroup(leader)
        }
    }

    /// Ends supervision: no kill is sent after this. Returns whether the timeout fired.
    func finish() -> Bool {
        state.withLock { state in
            state.finished = true
            return state.timedOut
        }
    }

    /// Whether the shell has exited (it is a zombie, or gone). Does not reap it:
    /// swift-subprocess does that after the body closure returns.
    func leaderHasExited() -> Bool {
        var info = siginfo_t()
        while true {
            if waitid(P_PID, id_t(leader), &info, WEXITED | WNOHANG | WNOWAIT) == 0 {
                return info._sifields._sigchld.si_pid != 0
            }
            if errno != EINTR { return true } // ECHILD: not our child any more
        }
    }

    /// Returns once the shell has exited. Polls (the output normally ends with the shell, so
    /// this is one or two checks); keeps polling even when the task is cancelled, because the
    /// cancellation handler has just killed the group and the shell is about to go.
    func waitForLeaderExit() async {
        var delay = 1
        while !leaderHasExited() {
            await Self.sleepIgnoringCancellation(milliseconds: delay)
            delay = min(delay * 2, 25)
        }
    }

    private static func sleepIgnoringCancellation(milliseconds: Int) async {
        if !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(milliseconds))
        } else {
            // Task.sleep returns at once in a cancelled task; sleep in one that is not.
            await Task.detached { try? await Task.sleep(for: .milliseconds(milliseconds)) }.value
        }
    }
}

private func killProcessGroup(_ pgid: pid_t) -> Bool {
    kill(-pgid, SIGKILL) == 0
}
