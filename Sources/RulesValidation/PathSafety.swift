#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Whether only root and the service's user can change a file the service runs or reads as
/// its rules (R020), as OpenSSH's StrictModes checks a path: the file, and every directory
/// from it up to `/`, on the path as written (symbolic links included, by their owner) and on
/// the path the links lead to. Whoever can write a directory above a file can replace the file.
///
/// One difference from OpenSSH: a directory owned by root with the sticky bit (`/tmp`) is
/// accepted although others can write it, because there nobody but root and an entry's owner
/// can rename or remove the entry, and the entry below it is checked for its owner like every
/// other (docs/decisions.md, R020).
///
/// The validator runs it at load (R020) and the service again before it starts each command.
public struct PathSafety: Sendable {
    /// The user the service runs as: files and directories must belong to it or to root.
    public var trustedUser: UInt32
    public var fileSystem: any FileSystem
    /// What was found of each directory or link already looked at.
    private var verdicts: [String: String?] = [:]

    public init(trustedUser: UInt32 = UInt32(geteuid()), fileSystem: any FileSystem = LocalFileSystem()) {
        self.trustedUser = trustedUser
        self.fileSystem = fileSystem
    }

    /// What is wrong with `path` (its own mode and owner, then each directory above it), to
    /// follow "the file " or "command '/x' "; nil when it is safe or does not exist.
    public mutating func problem(_ path: String) -> String? {
        guard let status = fileSystem.status(path) else { return nil }
        if let own = fileProblem(status) { return own }
        let absolute = path.hasPrefix("/") ? path : currentDirectory() + "/" + path
        if let found = walk(absolute) { return found }
        let real = Self.resolve(absolute, under: nil, fileSystem: fileSystem)
        return real == absolute ? nil : walk(real)
    }

    /// R020's finding for the file itself, nil when only root or the service user can change it.
    public func fileProblem(_ status: FileStatus) -> String? {
        if status.mode & 0o022 != 0 {
            return
                "is writable by \(writers(status.mode)) (mode \(String(status.mode, radix: 8))); it runs as root: chmod go-w"
        }
        if status.owner != 0, status.owner != trustedUser {
            return "is owned by uid \(status.owner), not by root or the service's user (uid \(trustedUser))"
        }
        return nil
    }

    /// The entries of `path` from the file itself up to `/`: links by their owner, directories
    /// by their owner and mode.
    private mutating func walk(_ path: String) -> String? {
        var components = path.split(separator: "/").map(String.init)
        var isFile = true
        while true {
            let entry = "/" + components.joined(separator: "/")
            if let known = verdicts[entry] {
                if let known { return known }
            } else {
                let verdict = entryProblem(entry, isFile: isFile)
                if !isFile { verdicts[entry] = .some(verdict) }
                if let verdict { return verdict }
            }
            guard !components.isEmpty else { return nil }
            components.removeLast()
            isFile = false
        }
    }

    private func entryProblem(_ entry: String, isFile: Bool) -> String? {
        guard let status = fileSystem.linkStatus(entry) else { return nil }
        let trusted = status.owner == 0 || status.owner == trustedUser
        if status.isSymbolicLink {
            guard trusted else {
                return
                    "is reached through the symbolic link \(entry), owned by uid \(status.owner), not by root or the service's user (uid \(trustedUser)): its owner could point it elsewhere"
            }
            return nil
        }
        guard !isFile, status.isDirectory else { return nil }
        guard trusted else {
            return
                "is under \(entry), a directory owned by uid \(status.owner), not by root or the service's user (uid \(trustedUser)): its owner could replace what it holds"
        }
        let sticky = status.mode & 0o1000 != 0 && status.owner == 0
        if status.mode & 0o022 != 0, !sticky {
            return
                "is under \(entry), a directory writable by \(writers(status.mode)) (mode \(String(status.mode, radix: 8))): they could replace what it holds; chmod go-w \(entry)"
        }
        return nil
    }

    private func writers(_ mode: UInt32) -> String {
        mode & 0o002 != 0 ? "others" : "its group"
    }

    private func currentDirectory() -> String {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        guard getcwd(&buffer, buffer.count) != nil else { return "" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// `path` (absolute) looked up as if `root` were `/`, as `openat2`'s `RESOLVE_IN_ROOT`
    /// does: symbolic links are followed, but an absolute target starts again at `root` and
    /// `..` stops there, so nothing outside `root` is reached (`validate --root`: a staged tree
    /// with a link to `/etc/shadow` names the tree's own `etc/shadow`). With no root, the
    /// path with every link resolved. Entries that do not exist are kept as written.
    public static func resolve(_ path: String, under root: String?, fileSystem: any FileSystem) -> String {
        var base = root ?? ""
        while base.hasSuffix("/") { base.removeLast() }
        var done: [String] = []
        var pending = Array(path.split(separator: "/").map(String.init).reversed())
        var links = 0
        while let component = pending.popLast() {
            if component == "." { continue }
            if component == ".." {
                if !done.isEmpty { done.removeLast() }
                continue
            }
            let candidate = base + "/" + (done + [component]).joined(separator: "/")
            // 40 links, as the kernel allows: past them the path is left for open to refuse.
            if links < 40, let target = fileSystem.linkTarget(candidate) {
                links += 1
                if target.hasPrefix("/") { done = [] }
                pending += target.split(separator: "/").map(String.init).reversed()
                continue
            }
            done.append(component)
        }
        return base + "/" + done.joined(separator: "/")
    }
}
