#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The glibc calls ``ProcessLauncher`` needs that Swift's `Glibc` module does not import (they
/// are declared under `_GNU_SOURCE`): looked up once by name, as swift-subprocess does for
/// `posix_spawn_file_actions_addclosefrom_np`. All are in glibc 2.36 (Debian 12); a missing
/// one falls back as each property says.
enum GNUExtensions {
    /// `POSIX_SPAWN_SETSID` (`<spawn.h>`, glibc 2.26): the child calls `setsid`, so it leads a
    /// session and a process group of its own and has no controlling terminal.
    static let spawnSetSession: Int32 = 0x80

    typealias AddChdir =
        @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, UnsafePointer<CChar>?) -> Int32
    typealias AddClosefrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    typealias PidfdOpen = @convention(c) (pid_t, UInt32) -> Int32
    typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32

    /// `posix_spawn_file_actions_addchdir_np` (glibc 2.29). Without it a working directory
    /// cannot be set and such a start fails with `ENOSYS`.
    static let addChdir: AddChdir? = symbol("posix_spawn_file_actions_addchdir_np")
    /// `posix_spawn_file_actions_addclosefrom_np` (glibc 2.34). Without it only descriptors
    /// opened close-on-exec stay out of children.
    static let addClosefrom: AddClosefrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
    /// `pidfd_open` (glibc 2.36, Linux 5.3). Without it the supervisor polls for exits.
    static let pidfdOpen: PidfdOpen? = symbol("pidfd_open")
    private static let pipe2Function: Pipe2? = symbol("pipe2")
    typealias SetThreadName = @convention(c) (pthread_t, UnsafePointer<CChar>?) -> Int32
    /// `pthread_setname_np`, for `top -H` and debuggers.
    static let setThreadName: SetThreadName? = symbol("pthread_setname_np")

    private static func symbol<F>(_ name: String) -> F? {
        guard let address = dlsym(nil, name) else { return nil }  // nil: RTLD_DEFAULT
        return unsafeBitCast(address, to: F.self)
    }

    /// A pipe whose two ends are close-on-exec from the start (`pipe2(O_CLOEXEC)`; without
    /// `pipe2`, `pipe` then `FD_CLOEXEC`). Returns (read end, write end), or errno.
    static func closeOnExecPipe() -> Result<(read: Int32, write: Int32), SpawnError> {
        var ends: [Int32] = [-1, -1]
        if let pipe2Function {
            guard pipe2Function(&ends, O_CLOEXEC) == 0 else { return .failure(SpawnError(errno, "pipe2")) }
        } else {
            guard pipe(&ends) == 0 else { return .failure(SpawnError(errno, "pipe")) }
            _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
            _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        }
        return .success((ends[0], ends[1]))
    }
}

/// Why a process could not be started: an errno and the call that returned it.
package struct SpawnError: Error, Sendable, Equatable, CustomStringConvertible {
    package var code: Int32
    package var call: String

    package init(_ code: Int32, _ call: String) {
        self.code = code
        self.call = call
    }

    package var description: String {
        "\(call): \(String(cString: strerror(code)))"
    }
}
