import Foundation
import RulesEngine

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The rules tree of `hamn-events sync` on disk (README, "sync"): read from the rules file's
/// directory (ROOT) with its refusals, and written on each node as a new generation.
///
/// Layout once a tree was written: ROOT is a symbolic link to `ROOT.gen-N` (N counts up); the
/// first write keeps the real directory ROOT was as `ROOT.gen-0`. A write makes the next
/// generation, fsyncs its files and directories, then renames a new link over ROOT (atomic: a
/// reader sees the old tree or the new one, never a mix). The tree in force and the one before
/// are kept as `ROOT.last.tree` and `ROOT.previous.tree` (JSON, mode 0600) for `sync --rollback`.
public enum ConfigurationTreeFiles {
    /// Why a tree is not read: one line per problem, `PATH: why`.
    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var problems: [String]
        public var description: String { problems.joined(separator: "\n") }
        public init(_ problems: [String]) { self.problems = problems }
    }

    /// The tree under `root`: every regular file, depth first, names sorted. Refused: anything
    /// but regular files and directories (a symbolic link, a device, a FIFO, a socket), a
    /// setuid or setgid file, a file or directory writable by group or others or not owned by
    /// `owner` (root), one of `forbidden` (the configuration file, fence password files: each
    /// node keeps its own) inside the tree, and a tree over `ConfigurationTree.sizeLimit`.
    public static func read(
        root: String, forbidden: [(path: String, what: String)] = [], owner: UInt32 = 0
    ) -> Result<ConfigurationTree, Refusal> {
        let root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        guard let real = realPath(root) else {
            return .failure(Refusal(["\(root): \(String(cString: strerror(errno)))"]))
        }
        var problems: [String] = []
        for (path, what) in forbidden {
            if let resolved = realPath(path), resolved.hasPrefix(real + "/") {
                problems.append("\(path): \(what) is inside the rules tree \(root): each node keeps its own")
            }
        }
        var files: [ConfigurationTree.File] = []
        var size = 0
        func walk(_ directory: String, relative: String) {
            guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else {
                problems.append("\(directory): cannot be read: \(String(cString: strerror(errno)))")
                return
            }
            for name in names.sorted() {
                let path = directory + "/" + name
                let shown = root + "/" + relative + name
                var status = stat()
                guard lstat(path, &status) == 0 else {
                    problems.append("\(shown): \(String(cString: strerror(errno)))")
                    continue
                }
                let type = status.st_mode & S_IFMT
                let permissions = UInt32(status.st_mode & 0o7777)
                if type != S_IFREG && type != S_IFDIR {
                    let kind = type == S_IFLNK ? "a symbolic link" : "not a regular file or directory"
                    problems.append("\(shown): \(kind): sync takes regular files only")
                    continue
                }
                if permissions & 0o6000 != 0 {
                    problems.append("\(shown): setuid or setgid (mode \(octal(permissions))): refused")
                    continue
                }
                if permissions & 0o022 != 0 {
                    problems.append("\(shown): writable by group or others (mode \(octal(permissions)))")
                    continue
                }
                if status.st_uid != owner {
                    problems.append("\(shown): owned by uid \(status.st_uid), not \(owner)")
                    continue
                }
                if type == S_IFDIR {
                    walk(path, relative: relative + name + "/")
                    continue
                }
                guard let contents = FileManager.default.contents(atPath: path) else {
                    problems.append("\(shown): cannot be read")
                    continue
                }
                size += contents.count
                files.append(ConfigurationTree.File(path: relative + name, mode: permissions, contents: contents))
            }
        }
        walk(real, relative: "")
        if size > ConfigurationTree.sizeLimit {
            problems.append(
                "\(root): the tree's files are \(size) bytes, more than sync's limit of \(ConfigurationTree.sizeLimit) (it goes in one corosync message)"
            )
        }
        return problems.isEmpty ? .success(ConfigurationTree(files: files)) : .failure(Refusal(problems))
    }

    /// A tree written and linked as ROOT, not yet kept as the last one (`keep`), or taken back (`revert`).
    public struct Staged: Sendable {
        public var root: String
        /// What ROOT linked to before (`NAME.gen-N`, relative to ROOT's directory).
        public var previousTarget: String
        /// What it links to now.
        public var target: String
    }

    public struct WriteError: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Writes `tree` as ROOT's next generation and links ROOT to it (see the type's comment).
    public static func stage(_ tree: ConfigurationTree, root: String) throws(WriteError) -> Staged {
        let root = root.count > 1 && root.hasSuffix("/") ? String(root.dropLast()) : root
        let (parent, name) = split(root)
        var status = stat()
        guard lstat(root, &status) == 0 else { throw failure(root, "cannot be read") }
        if status.st_mode & S_IFMT == S_IFDIR {
            // The first write: the real directory becomes generation 0, behind a link.
            let zero = name + ".gen-0"
            guard rename(root, parent + "/" + zero) == 0 else { throw failure(root, "cannot be renamed") }
            guard symlink(zero, root) == 0 else { throw failure(root, "cannot be linked to \(zero)") }
            syncDirectory(parent)
        }
        guard let previous = linkTarget(root) else { throw failure(root, "cannot be read as a link") }
        let numbers = ((try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []).compactMap {
            $0.hasPrefix(name + ".gen-") ? Int($0.dropFirst(name.count + 5)) : nil
        }
        let target = name + ".gen-\((numbers.max() ?? 0) + 1)"
        let directory = parent + "/" + target
        try? FileManager.default.removeItem(atPath: directory)
        guard mkdir(directory, 0o755) == 0 else { throw failure(directory, "cannot be made") }
        var made: Set<String> = [directory]
        for file in tree.files {
            if let problem = ConfigurationTree.pathProblem(file.path) {
                throw WriteError(description: "\(file.path): \(problem)")
            }
            let parts = file.path.split(separator: "/").map(String.init)
            var at = directory
            for part in parts.dropLast() {
                at += "/" + part
                if made.insert(at).inserted, mkdir(at, 0o755) != 0 { throw failure(at, "cannot be made") }
            }
            try write(file, to: directory + "/" + file.path)
        }
        for made in made.sorted(by: >) { syncDirectory(made) }
        try link(root, to: target)
        return Staged(root: root, previousTarget: previous, target: target)
    }

    /// Links ROOT back to what it linked to before `staged`, and removes the staged generation.
    public static func revert(_ staged: Staged) throws(WriteError) {
        try link(staged.root, to: staged.previousTarget)
        try? FileManager.default.removeItem(atPath: split(staged.root).parent + "/" + staged.target)
    }

    /// Keeps `tree` as the last tree and `replaced` (the last one before, if known) as the
    /// previous; removes generations older than the previous one (generation 0 stays).
    public static func keep(_ staged: Staged, tree: ConfigurationTree, replaced: ConfigurationTree?) {
        let (parent, name) = split(staged.root)
        if let replaced { saveTree(replaced, at: staged.root + ".previous.tree") }
        saveTree(tree, at: staged.root + ".last.tree")
        let kept: Set<String> = [staged.target, staged.previousTarget, name + ".gen-0"]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: parent)) ?? []
        where entry.hasPrefix(name + ".gen-") && !kept.contains(entry) {
            try? FileManager.default.removeItem(atPath: parent + "/" + entry)
        }
    }

    /// The tree kept as `ROOT.last.tree` or `ROOT.previous.tree`; nil when there is none.
    public static func savedTree(root: String, which: Saved) -> ConfigurationTree? {
        guard let data = FileManager.default.contents(atPath: root + which.suffix) else { return nil }
        return try? JSONDecoder().decode(ConfigurationTree.self, from: data)
    }

    public enum Saved: Sendable {
        case last, previous
        var suffix: String { self == .last ? ".last.tree" : ".previous.tree" }
    }

    private static func saveTree(_ tree: ConfigurationTree, at path: String) {
        guard let data = try? JSONEncoder().encode(tree) else { return }
        let temporary = path + ".new"
        unlink(temporary)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { return }
        let written = data.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        fsync(descriptor)
        close(descriptor)
        if written == data.count { rename(temporary, path) } else { unlink(temporary) }
    }

    private static func write(_ file: ConfigurationTree.File, to path: String) throws(WriteError) {
        let descriptor = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure(path, "cannot be created") }
        defer { close(descriptor) }
        var offset = 0
        while offset < file.contents.count {
            let count = file.contents.withUnsafeBytes {
                Glibc.write(descriptor, $0.baseAddress! + offset, $0.count - offset)
            }
            guard count > 0 else { throw failure(path, "cannot be written") }
            offset += count
        }
        guard fchmod(descriptor, mode_t(file.mode & 0o755)) == 0, fsync(descriptor) == 0 else {
            throw failure(path, "cannot be written")
        }
    }

    /// Renames a new link to `target` over `root`, then fsyncs the directory.
    private static func link(_ root: String, to target: String) throws(WriteError) {
        let temporary = root + ".link-new"
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw failure(temporary, "cannot be made") }
        guard rename(temporary, root) == 0 else { throw failure(root, "cannot be replaced") }
        syncDirectory(split(root).parent)
    }

    private static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func syncDirectory(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        fsync(descriptor)
        close(descriptor)
    }

    /// `path` with every link resolved (realpath(3)), nil when it does not exist.
    package static func realPath(_ path: String) -> String? {
        guard let resolved = realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    private static func split(_ path: String) -> (parent: String, name: String) {
        guard let slash = path.lastIndex(of: "/") else { return (".", path) }
        let parent = String(path[..<slash])
        return (parent.isEmpty ? "/" : parent, String(path[path.index(after: slash)...]))
    }

    private static func failure(_ path: String, _ what: String) -> WriteError {
        WriteError(description: "\(path): \(what): \(String(cString: strerror(errno)))")
    }

    private static func octal(_ mode: UInt32) -> String {
        let digits = String(mode, radix: 8)
        return String(repeating: "0", count: max(0, 4 - digits.count)) + digits
    }
}
