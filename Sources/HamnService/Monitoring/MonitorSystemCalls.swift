import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// The system calls the samplers make, kept in one place: whole-file reads (for `/proc` and
/// `/sys` files, whose `stat` size is 0), directory listings, `statvfs`, `stat`, user look-ups,
/// and a way to run a call that may block forever (`statvfs` of a hung NFS mount, a read of
/// `/proc/<pid>/cmdline` of a process stuck in the kernel) off Swift's cooperative thread pool.
enum MonitorSystem {
    /// A failed call: what was attempted and `strerror(errno)`.
    struct CallError: Error, Sendable, CustomStringConvertible {
        var errno: Int32
        var description: String
    }

    /// The call's result as a `Result`, for closures handed to ``HungCalls``.
    static func attempt<T>(_ body: () throws(CallError) -> T) -> Result<T, CallError> {
        do {
            return .success(try body())
        } catch {
            return .failure(error)
        }
    }

    static func errorText(_ code: Int32) -> String {
        guard let text = strerror(code) else { return "errno \(code)" }
        return String(cString: text)
    }

    /// Reads a whole file, at most `limit` bytes (the rest is ignored).
    static func readFile(_ path: String, limit: Int = 1 << 20) throws(CallError) -> [UInt8] {
        var fd: Int32
        repeat {
            fd = open(path, O_RDONLY | O_CLOEXEC)
        } while fd < 0 && errno == EINTR
        guard fd >= 0 else {
            let code = errno
            throw CallError(errno: code, description: "cannot open \(path): \(errorText(code))")
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while bytes.count < limit {
            let want = min(chunk.count, limit - bytes.count)
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, want) }
            if count < 0 {
                if errno == EINTR { continue }
                let code = errno
                throw CallError(errno: code, description: "cannot read \(path): \(errorText(code))")
            }
            if count == 0 { break }
            bytes.append(contentsOf: chunk[0..<count])
        }
        return bytes
    }

    static func readText(_ path: String, limit: Int = 1 << 20) throws(CallError) -> String {
        String(decoding: try readFile(path, limit: limit), as: UTF8.self)
    }

    /// The names in a directory, `.` and `..` left out.
    static func listDirectory(_ path: String) throws(CallError) -> [String] {
        guard let directory = opendir(path) else {
            let code = errno
            throw CallError(errno: code, description: "cannot list \(path): \(errorText(code))")
        }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    struct FileSystemBlocks: Sendable, Hashable {
        var blocks: UInt64
        var free: UInt64
        var available: UInt64
    }

    static func fileSystemBlocks(_ path: String) throws(CallError) -> FileSystemBlocks {
        var info = statvfs()
        var result: Int32
        repeat {
            result = statvfs(path, &info)
        } while result != 0 && errno == EINTR
        guard result == 0 else {
            let code = errno
            throw CallError(errno: code, description: "statvfs \(path): \(errorText(code))")
        }
        return FileSystemBlocks(
            blocks: UInt64(info.f_blocks), free: UInt64(info.f_bfree), available: UInt64(info.f_bavail))
    }

    /// A file's modification time, seconds since the epoch (symbolic links followed).
    static func modificationTime(_ path: String) throws(CallError) -> Double {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let code = errno
            throw CallError(errno: code, description: "stat \(path): \(errorText(code))")
        }
        #if canImport(Darwin)
            return Double(info.st_mtimespec.tv_sec) + Double(info.st_mtimespec.tv_nsec) / 1e9
        #else
            return Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        #endif
    }

    /// The wall clock, seconds since the epoch.
    static func now() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }

    /// The uid of a user name (`getpwnam_r`), nil when there is no such user.
    static func userID(named name: String) -> UInt32? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var size = 1024
        while true {
            var buffer = [CChar](repeating: 0, count: size)
            let code = getpwnam_r(name, &entry, &buffer, size, &result)
            if code == ERANGE, size < 1 << 20 {
                size *= 4
                continue
            }
            guard code == 0, result != nil else { return nil }
            return UInt32(entry.pw_uid)
        }
    }

    /// The user name of a uid (`getpwuid_r`), nil when it has none.
    static func userName(of uid: UInt32) -> String? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var size = 1024
        while true {
            var buffer = [CChar](repeating: 0, count: size)
            let code = getpwuid_r(uid_t(uid), &entry, &buffer, size, &result)
            if code == ERANGE, size < 1 << 20 {
                size *= 4
                continue
            }
            guard code == 0, result != nil, let name = entry.pw_name else { return nil }
            return String(cString: name)
        }
    }

    static func currentUserID() -> UInt32 { UInt32(getuid()) }

    /// Runs `work`, which may block in a system call, on a Dispatch thread rather than on the
    /// cooperative pool, so that a call that never returns cannot starve the other tasks.
    /// Returns nil at once when the calling task is cancelled (the work, if it started, runs
    /// on and its result is dropped).
    /// `notStarted` is called when the task was cancelled before `work` was handed over.
    static func offload<T: Sendable>(
        _ work: @escaping @Sendable () -> T, notStarted: @Sendable () -> Void = {}
    ) async -> T? {
        let resume = MonitorResumeOnce<T>()
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
                guard resume.install(continuation) else {
                    notStarted()
                    return
                }
                DispatchQueue.global().async { resume.resume(work()) }
            }
        } onCancel: {
            resume.resume(nil)
        }
    }
}

/// Resumes a continuation exactly once, with the first value given: the work's result, or nil
/// on cancellation. A value given before the continuation is installed is kept for it.
final class MonitorResumeOnce<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T?, Never>?
        /// The first value given, while no continuation was installed.
        var early: T??
        var done = false
    }
    private let state = Mutex(State())

    init() {}

    /// Stores the continuation; false (and resumed at once) when a value came first.
    func install(_ continuation: CheckedContinuation<T?, Never>) -> Bool {
        let early = state.withLock { state -> T?? in
            if let early = state.early {
                state.done = true
                state.early = nil
                return .some(early)
            }
            state.continuation = continuation
            return nil
        }
        if let early {
            continuation.resume(returning: early)
            return false
        }
        return true
    }

    func resume(_ value: T?) {
        let continuation = state.withLock { state -> CheckedContinuation<T?, Never>? in
            guard !state.done else { return nil }
            guard let continuation = state.continuation else {
                if state.early == nil { state.early = .some(value) }
                return nil
            }
            state.done = true
            state.continuation = nil
            return continuation
        }
        continuation?.resume(returning: value)
    }
}

/// Keys (a mount point, a path) whose previous blocking call has not returned yet: a call that
/// hung (a dead NFS server) is not started again, so hung threads do not pile up interval
/// after interval.
final class HungCalls: Sendable {
    enum Outcome<T: Sendable>: Sendable {
        case done(T)
        /// The previous call for this key has not returned yet; not started again.
        case stillBlocked
        /// The call did not return within the time allowed (it may still return later).
        case timedOut
        /// The calling task was cancelled.
        case cancelled
    }

    private let busy = Mutex(Set<String>())

    init() {}

    /// Runs `work` for `key` off the cooperative pool, unless the previous call for `key` is
    /// still blocked; gives up waiting for it after `timeout`.
    func run<T: Sendable>(_ key: String, timeout: Duration, _ work: @escaping @Sendable () -> T) async -> Outcome<T> {
        guard busy.withLock({ $0.insert(key).inserted }) else { return .stillBlocked }
        return await withTaskGroup(of: Outcome<T>?.self, returning: Outcome<T>.self) { group in
            group.addTask { [self] in
                let result = await MonitorSystem.offload(
                    {
                        defer { self.release(key) }
                        return work()
                    },
                    notStarted: { self.release(key) })
                return result.map { .done($0) } ?? .cancelled
            }
            group.addTask {
                do {
                    try await Task.sleep(for: timeout)
                } catch {
                    return nil
                }
                return .timedOut
            }
            var outcome: Outcome<T> = .cancelled
            while let next = await group.next() {
                if let next {
                    outcome = next
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }

    private func release(_ key: String) {
        _ = busy.withLock { $0.remove(key) }
    }
}

/// A value behind a lock, shared by the copies of a sampler (a struct).
final class MonitorLocked<Value: Sendable>: Sendable {
    private let mutex: Mutex<Value>

    init(_ value: Value) {
        mutex = Mutex(value)
    }

    func withLock<R>(_ body: (inout sending Value) -> sending R) -> sending R {
        mutex.withLock(body)
    }
}
