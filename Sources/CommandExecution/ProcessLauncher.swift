import RecoveryPrograms

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Starts one process and supervises it to its end: the one way this package starts a
/// process (recovery commands through ``SegmentExecutor``, command variables and db2pd through
/// ``MonitorCommand``; fence agents next).
///
/// - `posix_spawn` from the calling task, no thread hop: in a new session (so the child leads
///   a process group of its own and has no controlling terminal), every signal at its default
///   action and none blocked, every descriptor but 0, 1 and 2 closed
///   (`posix_spawn_file_actions_addclosefrom_np(3)`; our own pipes are close-on-exec too).
/// - Standard input: `/dev/null`, or ``standardInput``'s bytes through a pipe that is closed
///   after them (a fence agent reads its `key=value` lines to end of file).
/// - Standard output and standard error: one pipe whose tail is kept, or two pipes (the head of
///   standard output, the tail of standard error); see ``Output``. Read as written, in bounded
///   memory, by the supervisor; reading stops when the process exits (what it left in the
///   background may hold the pipe open forever).
/// - ``timeout`` and cancellation of the calling task end the whole process group: `SIGTERM`,
///   then `SIGKILL` after ``killGrace``; with no grace (the default, as before this type)
///   `SIGKILL` at once. Only while the leader has not exited: a finished command's
///   background processes are left alone unless ``killGroupOnExit``.
/// - One thread, ``ProcessSupervisor``, waits for every child: it reads the pipes, writes
///   standard input, fires timeouts, sends the group signals and reaps, so a group is only
///   ever signalled while its leader is unreaped and its id cannot have been reused.
///
/// Errors: nothing throws. A non-zero exit is a normal result, `.exited(status)`; a signal
/// `.signaled(n)`; a timeout `.timedOut` (whatever the process did on being killed); a process
/// that could not be started `.couldNotStart(why)` with ``Outcome/startError`` set (the
/// errno of `posix_spawn`, so a caller may try otherwise, as ``SegmentExecutor`` falls back to
/// the shell on `ENOEXEC`).
package struct ProcessLauncher: Sendable {
    package enum Program: Sendable, Equatable {
        /// `execve(path, arguments)`; `arguments[0]` is argv[0].
        case executable(path: String, arguments: [String])
        /// `shellPath -c command`.
        case shell(command: String, shellPath: String)
    }

    package enum Output: Sendable, Equatable {
        /// Standard output and standard error into one pipe, interleaved as written; its last
        /// `tail` bytes kept (``OutputTail``).
        case merged(tail: Int)
        /// Standard output's first `head` bytes (``CapturedOutput/truncated`` says whether more
        /// came); standard error's last `errorTail` bytes.
        case separate(head: Int, errorTail: Int)
    }

    package var program: Program
    /// The whole environment of the process (nothing is inherited).
    package var environment: [String: String]
    /// nil: this process's working directory.
    package var workingDirectory: String?
    /// nil: standard input is `/dev/null`.
    package var standardInput: [UInt8]?
    package var output: Output
    /// nil: no limit.
    package var timeout: Duration?
    /// Between `SIGTERM` and `SIGKILL` to the group on a timeout or cancellation; nil: `SIGKILL` at once.
    package var killGrace: Duration?
    /// When the leader exits, `SIGKILL` what it left running in its process group (a monitor
    /// runs every interval and must not leave processes behind).
    package var killGroupOnExit: Bool

    package init(
        _ program: Program, environment: [String: String], workingDirectory: String? = nil,
        standardInput: [UInt8]? = nil, output: Output = .merged(tail: 4096), timeout: Duration? = nil,
        killGrace: Duration? = nil, killGroupOnExit: Bool = false
    ) {
        self.program = program
        self.environment = environment
        self.workingDirectory = workingDirectory
        self.standardInput = standardInput
        self.output = output
        self.timeout = timeout
        self.killGrace = killGrace
        self.killGroupOnExit = killGroupOnExit
    }

    package struct Outcome: Sendable {
        package var termination: Termination
        /// Why the process could not be started; nil once it was.
        package var startError: SpawnError?
        /// Standard output (with standard error, when merged).
        package var output: CapturedOutput
        /// Standard error, when separate.
        package var errorOutput: CapturedOutput
    }

    /// Starts the process, waits for it and returns how it ended. Never throws.
    package func run() async -> Outcome {
        if Task.isCancelled {
            return Self.notStarted(SpawnError(ECANCELED, "cancelled before it started"))
        }
        // A slot of the descriptor budget (LaunchSlots), held until the child is reaped.
        guard await LaunchSlots.shared.acquire() else {
            return Self.notStarted(SpawnError(ECANCELED, "cancelled while it waited for free file descriptors"))
        }
        defer { LaunchSlots.shared.release() }
        let child: SupervisedChild
        switch spawn() {
        case .failure(let error): return Self.notStarted(error)
        case .success(let spawned): child = spawned
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                child.continuation = continuation
                ProcessSupervisor.shared.supervise(child)
            }
        } onCancel: {
            child.requestCancellation()
        }
    }

    static func notStarted(_ error: SpawnError) -> Outcome {
        Outcome(
            termination: .couldNotStart(error.code == ECANCELED ? error.call : error.description), startError: error,
            output: CapturedOutput(), errorOutput: CapturedOutput())
    }

    // MARK: Spawning

    /// `posix_spawn` with the pipes, attributes and file actions; the parent's ends of the
    /// pipes made non-blocking for the supervisor.
    private func spawn() -> Result<SupervisedChild, SpawnError> {
        let path: String
        let arguments: [String]
        switch program {
        case .executable(let executable, let argv):
            path = executable
            arguments = argv.isEmpty ? [executable] : argv
        case .shell(let command, let shellPath):
            path = shellPath
            arguments = [shellPath, "-c", command]
        }
        var entries: [String] = []
        entries.reserveCapacity(environment.count)
        for (name, value) in environment {
            guard !name.isEmpty, !name.utf8.contains(UInt8(ascii: "=")), !name.utf8.contains(0) else {
                return .failure(SpawnError(EINVAL, "environment name \(name.debugDescription)"))
            }
            guard !value.utf8.contains(0) else {
                return .failure(SpawnError(EINVAL, "environment value of \(name) holds a NUL byte"))
            }
            entries.append("\(name)=\(value)")
        }
        guard !arguments.contains(where: { $0.utf8.contains(0) }), !path.utf8.contains(0) else {
            return .failure(SpawnError(EINVAL, "an argument holds a NUL byte"))
        }
        if workingDirectory != nil, GNUExtensions.addChdir == nil {
            return .failure(SpawnError(ENOSYS, "posix_spawn_file_actions_addchdir_np"))
        }

        // Our ends and the child's; closed on every path out.
        var opened: [Int32] = []
        func closeAll() { for fd in opened { close(fd) } }
        func makePipe() -> (read: Int32, write: Int32)? {
            guard case .success(let ends) = GNUExtensions.closeOnExecPipe() else { return nil }
            opened += [ends.read, ends.write]
            return ends
        }
        guard let out = makePipe() else {
            closeAll()
            return .failure(SpawnError(errno, "pipe"))
        }
        var err: (read: Int32, write: Int32)?
        if case .separate = output {
            guard let ends = makePipe() else {
                closeAll()
                return .failure(SpawnError(errno, "pipe"))
            }
            err = ends
        }
        var input: (read: Int32, write: Int32)?
        if standardInput != nil {
            guard let ends = makePipe() else {
                closeAll()
                return .failure(SpawnError(errno, "pipe"))
            }
            input = ends
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let input {
            posix_spawn_file_actions_adddup2(&actions, input.read, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, out.write, 1)
        posix_spawn_file_actions_adddup2(&actions, err?.write ?? out.write, 2)
        if let workingDirectory, let addChdir = GNUExtensions.addChdir {
            _ = addChdir(&actions, workingDirectory)
        }
        if let addClosefrom = GNUExtensions.addClosefrom {
            _ = addClosefrom(&actions, 3)
        }

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(
            &attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | GNUExtensions.spawnSetSession))

        var pid: pid_t = 0
        let spawned = withCStrings(arguments) { argv in
            withCStrings(entries) { envp in
                posix_spawn(&pid, path, &actions, &attributes, argv, envp)
            }
        }
        guard spawned == 0 else {
            closeAll()
            return .failure(SpawnError(spawned, "posix_spawn \(path)"))
        }
        // The child has its copies; ours of its ends go.
        close(out.write)
        if let err { close(err.write) }
        if let input { close(input.read) }
        for fd in [out.read, err?.read, input?.write].compactMap({ $0 }) {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        let pidfd = GNUExtensions.pidfdOpen.map { $0(pid, 0) } ?? -1
        let child = SupervisedChild(
            pid: pid, pidfd: pidfd, output: out.read, error: err?.read, input: input?.write,
            inputBytes: standardInput ?? [], capture: output, timeout: timeout, killGrace: killGrace,
            killGroupOnExit: killGroupOnExit)
        return .success(child)
    }
}

/// What a process wrote to one of its outputs, as kept.
package struct CapturedOutput: Sendable, Equatable {
    package var bytes: [UInt8] = []
    /// Bytes were dropped (beyond the head, or before the tail).
    package var truncated = false
    /// The bytes as text. A UTF-8 sequence cut at the front of a tail is dropped rather than
    /// shown as a replacement character; other invalid UTF-8 is repaired.
    package var text: String = ""

    package init() {}

    init(head bytes: [UInt8], truncated: Bool) {
        self.bytes = bytes
        self.truncated = truncated
        self.text = String(decoding: bytes, as: UTF8.self)
    }

    init(tail: OutputTail) {
        self.bytes = Array(tail.kept)
        self.truncated = tail.truncated
        self.text = tail.text
    }
}

/// NUL-terminated copies of `strings` in a NULL-terminated array, for the duration of `body`.
private func withCStrings<R>(
    _ strings: [String], _ body: (UnsafePointer<UnsafeMutablePointer<CChar>?>) -> R
) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for pointer in pointers { free(pointer) } }
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
