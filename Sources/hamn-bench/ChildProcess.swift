#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What one run of a child process cost.
struct ChildRun {
    /// The exit status, or 128 + the signal that ended it (as shells report it).
    var status: Int32
    var signal: Int32?
    var wallSeconds: Double
    /// User plus system CPU time: less disturbed than wall time when the machine is busy.
    var cpuSeconds: Double
    /// The child's peak resident set, in bytes.
    var peakRSSBytes: Int
}

/// Runs a program the way a user would, and measures it: posix_spawn, then wait4, whose
/// rusage is that of this child alone (getrusage(RUSAGE_CHILDREN) would mix in every earlier
/// run).
enum ChildProcess {
    /// `executable` with `arguments`, standard input from /dev/null and standard output and
    /// error written to the given files.
    static func run(_ executable: String, _ arguments: [String], stdout: String, stderr: String) throws(BenchError)
        -> ChildRun
    {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, stdout, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, stderr, O_WRONLY | O_CREAT | O_TRUNC, 0o644)

        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for arg in argv { free(arg) } }

        var pid = pid_t()
        let start = monotonicSeconds()
        let spawned = argv.withUnsafeBufferPointer { argvBuffer in
            posix_spawn(&pid, executable, &actions, nil, argvBuffer.baseAddress!, environ)
        }
        guard spawned == 0 else {
            throw BenchError("cannot run \(executable): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        var usage = rusage()
        while wait4(pid, &status, 0, &usage) < 0 {
            guard errno == EINTR else { throw BenchError("wait4: \(String(cString: strerror(errno)))") }
        }
        let wall = monotonicSeconds() - start

        // WIFEXITED / WEXITSTATUS / WTERMSIG are macros, which Swift does not import.
        let termination = status & 0x7F
        #if os(Linux)
            let rssBytes = Int(usage.ru_maxrss) * 1024  // KiB on Linux
        #else
            let rssBytes = Int(usage.ru_maxrss)  // bytes on Darwin
        #endif
        let cpu = seconds(usage.ru_utime) + seconds(usage.ru_stime)
        if termination == 0 {
            return ChildRun(
                status: (status >> 8) & 0xFF, signal: nil, wallSeconds: wall, cpuSeconds: cpu, peakRSSBytes: rssBytes)
        }
        return ChildRun(
            status: 128 + termination, signal: termination, wallSeconds: wall, cpuSeconds: cpu, peakRSSBytes: rssBytes)
    }

    private static func seconds(_ time: timeval) -> Double {
        Double(time.tv_sec) + Double(time.tv_usec) / 1e6
    }

    static func monotonicSeconds() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }
}
