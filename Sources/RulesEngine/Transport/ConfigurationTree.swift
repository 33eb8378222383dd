import Foundation

/// The rules tree that `hamn-events sync` sends through the cluster (README, "sync"): every
/// regular file under the rules file's directory, by its path relative to that directory,
/// with its permission bits and its contents. Reading it from disk and writing it are
/// `ConfigurationTreeFiles`'s (HamnConfiguration); this is the value on the wire.
public struct ConfigurationTree: Sendable, Hashable, Codable {
    public struct File: Sendable, Hashable, Codable {
        /// Relative to the tree's directory: no leading `/`, no `.` or `..` component.
        public var path: String
        /// The permission bits (`0o644`, `0o755`): never setuid, setgid or writable by others.
        public var mode: UInt32
        public var contents: Data

        public init(path: String, mode: UInt32, contents: Data) {
            self.path = path
            self.mode = mode
            self.contents = contents
        }
    }

    /// Sorted by path.
    public var files: [File]

    public init(files: [File]) {
        self.files = files.sorted { $0.path < $1.path }
    }

    /// The most file contents a tree may hold: 512 KiB. The tree goes in one CPG message, at most
    /// 1,047,552 bytes with corosync 3.1.7 (`cpg_max_atomic_msgsize_get`), and its JSON carries
    /// the contents in base64 (4 bytes for 3), with room left for paths and the envelope.
    public static let sizeLimit = 512 * 1024

    /// The bytes of all the files' contents.
    public var size: Int { files.reduce(0) { $0 + $1.contents.count } }

    /// One SHA-256 over every file's path, mode and contents' SHA-256, in hex: equal on two
    /// nodes exactly when their trees are.
    public var digest: String {
        var bytes: [UInt8] = []
        for file in files {
            bytes += Array(file.path.utf8) + [0] + Array(String(file.mode, radix: 8).utf8) + [0]
            bytes += Array(sha256Hex(file.contents).utf8) + [10]
        }
        return sha256Hex(bytes)
    }

    /// Why `path` cannot be a file of a tree (absolute, empty, `.` or `..` components), or nil.
    public static func pathProblem(_ path: String) -> String? {
        guard !path.isEmpty, !path.hasPrefix("/") else { return "not a relative path" }
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !parts.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            return "a path with an empty, '.' or '..' component"
        }
        return nil
    }
}
