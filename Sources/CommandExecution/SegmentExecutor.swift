import RecoveryPrograms
import RulesParser

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
/// Each command is run as `/bin/sh -c COMMAND`, or, when its text has no shell syntax at all,
/// directly, as make does (see "Direct execution" below), by ``ProcessLauncher``:
///
/// - in a new session (`setsid`), so the shell leads a process group of its own and a timeout
///   or a cancellation can kill the shell *and everything it started* with one
///   `kill(-pgid, SIGKILL)` (``ProcessSupervisor``);
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
/// argv = its words (argv[0] as written), the program (``RulesParser/CommandStep/program``)
/// found as the shell would find it (``ProgramLookup``: an absolute first word as is; a bare
/// name in `PATH` of the command's environment, so a bundled event script in
/// ``eventScriptDirectory``; a relative path with a slash, or a `PATH` with an empty or
/// relative entry, is left to the shell), and `PWD` set as `sh` exports it.
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
///   So is a command whose program does not exist or is not executable, or that the shell
///   itself reports as not found or not executable (its exit 127 or 126 and its message,
///   kept in the output tail; ``notStarted(_:_:output:environment:)``): never accepted, even
///   with the expected status `x`.
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
    /// Checked again just before each command starts, with the path of its program (an
    /// absolute one as written, a bundled script in ``eventScriptDirectory``): why the program
    /// must not run (others can replace it, R020), or nil. A refused command is
    /// `.couldNotStart("refused: ...")`, never accepted, so its event fails with the reason.
    public var pathCheck: (@Sendable (String) -> String?)?

    /// `PATH` when neither the base environment nor the event gives one.
    public static let defaultPath = ProgramLookup.defaultPath

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
        if let pathCheck, let program = programPath(step), let problem = pathCheck(program) {
            return result(.couldNotStart("refused: \(program) \(problem)"), "")
        }

        let merged = self.environment(for: step, event: environment)
        func launcher(_ launch: Launch) -> ProcessLauncher {
            var variables = merged
            let program: ProcessLauncher.Program
            switch launch {
            case .shell:
                program = .shell(command: step.command, shellPath: shellPath)
            case .direct(let path, let words):
                program = .executable(path: path, arguments: words)
                // What `sh` exports to the programs it runs.
                if let pwd = Self.shellPWD(inherited: merged["PWD"], directory: workingDirectory) {
                    variables["PWD"] = pwd
                }
            }
            return ProcessLauncher(
                program, environment: variables, workingDirectory: workingDirectory,
                output: .merged(tail: outputTailBytes), timeout: timeout)
        }

        var launch = self.launch(for: step, environment: merged)
        while true {
            let outcome = await launcher(launch).run()
            // The program never started (ENOEXEC, removed since it was found, ...): the shell
            // runs the command and reports whatever it reports.
            if outcome.startError != nil, launch != .shell, !Task.isCancelled {
                launch = .shell
                continue
            }
            let output = outcome.output.text
            if let why = Self.notStarted(step, outcome.termination, output: output, environment: merged) {
                return result(.couldNotStart(why), output)
            }
            return result(outcome.termination, output)
        }
    }

    /// Why a command that the shell ran with exit 127 or 126 never started (SPEC section 3: a
    /// command that cannot be started fails its event, whatever its expected status, `x`
    /// included): its program is missing or not an executable file (looked up as the shell
    /// does, ``ProgramLookup``), or the shell's own last line says that a command it was given
    /// was not found or cannot be executed (`/bin/sh: 1: NAME: not found`; a script's own
    /// messages start with the script's name, and a script that exits 127 itself ran). Nil
    /// for every other outcome.
    static func notStarted(
        _ step: CommandStep, _ termination: Termination, output: String, environment: [String: String]
    ) -> String? {
        guard case .exited(let status) = termination, status == 127 || status == 126 else { return nil }
        let shellLine =
            output.split(separator: "\n").last.map { String($0.drop { $0 == " " }) } ?? ""
        if let program = step.program, !program.isEmpty, !shellWords.contains(program),
            !program.contains(where: { "$`'\"\\*?[(){}<>|;&~".contains($0) }),
            ProgramLookup.locate(program, path: environment["PATH"]) == .notFound
        {
            let what = status == 127 ? "not found" : "not executable"
            return "\(program): \(what) (exit \(status)\(shellLine.isEmpty ? "" : ": " + shellLine))"
        }
        let fromShell = shellLine.hasPrefix("sh: ") || shellLine.hasPrefix("/bin/sh: ") || shellLine.hasPrefix("bash: ")
        let cannot =
            status == 127
            ? shellLine.hasSuffix(": not found") || shellLine.hasSuffix(": command not found")
            : shellLine.hasSuffix(": Permission denied") || shellLine.contains("cannot execute")
        guard fromShell, cannot else { return nil }
        return "\(shellLine) (exit \(status))"
    }

    /// The file `step` starts, for ``pathCheck``: an absolute program as written, a bare name
    /// in ``eventScriptDirectory`` (the only relative commands the validator accepts, P006).
    func programPath(_ step: CommandStep) -> String? {
        guard let program = step.program, !program.isEmpty else { return nil }
        if program.hasPrefix("/") { return program }
        guard !program.contains("/"), let directory = eventScriptDirectory else { return nil }
        return directory + "/" + program
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
        // Plain words have no quotes or assignments, so their first word is the step's program.
        guard let words = Self.plainWords(step.command), let program = step.program, program == words[0] else {
            return .shell
        }
        guard !Self.shellWords.contains(program) else { return .shell }
        switch ProgramLookup.locate(program, path: environment["PATH"]) {
        case .file(let path): return .direct(path: path, words: words)
        // Not found, not executable: the shell's 127 or 126 and its message. Relative to the
        // working directory: the shell's.
        case .notFound, .dependsOnWorkingDirectory: return .shell
        }
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
