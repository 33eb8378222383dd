import HamnConfiguration

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The directory that holds the control socket, created and checked as tmux checks its own:
/// whoever can write that directory can put a socket of theirs in its place, capture the
/// operator's requests and forge the service's answers.
///
/// - The service's default directory (``ConfigurationLoader/Defaults/runtimeDirectory(user:runtimeDirectory:stateDirectory:ownsRunUser:)``)
///   is private: a directory, not a symbolic link, owned by the service's user, mode 0700.
/// - The directory of a configured `socket:` may be shared (`/run`): a directory, not a
///   symbolic link, owned by the service's user or root, writable by nobody else.
///
/// A missing directory is created with mode 0700 (its missing parents too). The service checks
/// before it binds, the command line before it connects; both refuse with the reason.
public enum RuntimeDirectory {
    /// Why `directory` must not hold the control socket of `user`, or nil.
    public static func problem(_ directory: String, user: uid_t, isPrivate: Bool) -> String? {
        var info = stat()
        guard lstat(directory, &info) == 0 else {
            return "cannot examine it: \(String(cString: strerror(errno)))"
        }
        let type = info.st_mode & S_IFMT
        if type == S_IFLNK { return "is a symbolic link: the service's directory must be a directory of its own" }
        guard type == S_IFDIR else { return "is not a directory" }
        let mode = String(info.st_mode & 0o7777, radix: 8)
        if isPrivate {
            guard info.st_uid == user else {
                return
                    "is owned by uid \(info.st_uid), not by uid \(user): another user may have created it to capture requests; remove it"
            }
            guard info.st_mode & 0o077 == 0 else { return "has mode \(mode), not 0700: chmod 700 \(directory)" }
            return nil
        }
        guard info.st_uid == user || info.st_uid == 0 else {
            return
                "is owned by uid \(info.st_uid), not by root or uid \(user): another user could replace the socket in it"
        }
        guard info.st_mode & 0o022 == 0 else {
            return
                "is writable by group or others (mode \(mode)): they could replace the socket; chmod go-w \(directory)"
        }
        return nil
    }

    /// Whether `directory` is this process's default runtime directory (checked as private).
    public static func isDefault(_ directory: String) -> Bool {
        directory == ConfigurationLoader.Defaults.runtimeDirectoryForThisProcess()
    }

    /// The service's side: creates `directory` (mode 0700) when it is missing, then checks it.
    public static func prepare(_ directory: String, user: uid_t = geteuid()) throws(ControlSocketError) {
        var components: [String] = []
        var missing = directory
        var info = stat()
        while !missing.isEmpty, missing != "/", lstat(missing, &info) != 0, errno == ENOENT {
            components.append(missing)
            missing = parent(missing)
        }
        for created in components.reversed() where mkdir(created, 0o700) != 0 && errno != EEXIST {
            throw ControlSocketError(
                message: "cannot create \(created): \(String(cString: strerror(errno)))", serviceDown: false)
        }
        if let problem = problem(directory, user: user, isPrivate: isDefault(directory)) {
            throw ControlSocketError(
                message: "refusing the control socket's directory \(directory): it \(problem)", serviceDown: false)
        }
    }

    /// The command line's side: the socket's directory, and the socket when it is there, must
    /// be what the service would have made, before a request goes to it.
    public static func checkBeforeConnecting(_ socketPath: String, user: uid_t = geteuid()) throws(ControlSocketError) {
        let directory = parent(socketPath)
        var info = stat()
        guard lstat(directory, &info) == 0 else { return }  // connect says the service is not running
        if let problem = problem(directory, user: user, isPrivate: isDefault(directory)) {
            throw ControlSocketError(
                message: "refusing to talk to \(socketPath): its directory \(directory) \(problem)", serviceDown: false)
        }
        guard lstat(socketPath, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else {
            throw ControlSocketError(
                message: "refusing to talk to \(socketPath): it is not a socket", serviceDown: false)
        }
        guard info.st_uid == user || info.st_uid == 0 else {
            throw ControlSocketError(
                message:
                    "refusing to talk to \(socketPath): it is owned by uid \(info.st_uid), not by root or uid \(user)",
                serviceDown: false)
        }
    }

    static func parent(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
