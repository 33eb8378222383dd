import RecoveryPrograms

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
/// - by ``ProcessLauncher``, as an argument vector (no shell is added here: an administrator's
///   command is given as `["/bin/sh", "-c", command]`, `db2pd` as `[db2pd, "-d", database,
///   "-hadr"]`);
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
        let outcome = await ProcessLauncher(
            .executable(path: program, arguments: arguments), environment: environment,
            output: .separate(head: outputLimit, errorTail: 2048), timeout: timeout, killGroupOnExit: true
        ).run()
        if case .couldNotStart = outcome.termination, Task.isCancelled {
            return Result(termination: .couldNotStart("cancelled"), output: "", outputTruncated: false, errorTail: "")
        }
        return Result(
            termination: outcome.termination, output: outcome.output.text, outputTruncated: outcome.output.truncated,
            errorTail: outcome.errorOutput.text)
    }

    /// The process's environment with `PATH` set (``SegmentExecutor/defaultPath`` when unset).
    package static func defaultEnvironment() -> [String: String] {
        var environment = SegmentExecutor.processEnvironment()
        if environment["PATH"]?.isEmpty ?? true { environment["PATH"] = SegmentExecutor.defaultPath }
        return environment
    }

    /// Where a program name is found (``ProgramLookup``): itself when absolute, else the first
    /// executable `PATH` entry of that name; nil when not found or when the answer would
    /// depend on the service's working directory (a relative name, a relative `PATH` entry).
    package static func locate(_ program: String, path: String?) -> String? {
        guard case .file(let found) = ProgramLookup.locate(program, path: path) else { return nil }
        return found
    }
}
