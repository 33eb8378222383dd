#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where a benchmark writes its input: a directory the user names with `--keep` (created if
/// needed, left in place), or a fresh temporary one, removed with everything in it afterwards.
enum ScratchDirectory {
    /// An absolute path either way, since rules files name their `.rp` files by absolute path.
    static func create(keep: String?) throws(BenchError) -> String {
        var path: String
        if let keep {
            if mkdir(keep, 0o755) != 0, errno != EEXIST {
                throw BenchError("cannot create \(keep): \(String(cString: strerror(errno)))")
            }
            path = keep
        } else {
            let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
            var template = Array((base + "/hamn-bench.XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else {
                throw BenchError("cannot create a temporary directory in \(base): \(String(cString: strerror(errno)))")
            }
            path = String(cString: made)
        }
        guard let real = realpath(path, nil) else {
            throw BenchError("\(path): \(String(cString: strerror(errno)))")
        }
        defer { free(real) }
        return String(cString: real)
    }

    /// Removes `path` and everything under it (symbolic links are removed, not followed).
    static func remove(_ path: String) {
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
                }
                if name == "." || name == ".." { continue }
                let child = path + "/" + name
                var info = stat()
                if lstat(child, &info) == 0, info.st_mode & S_IFMT == S_IFDIR {
                    remove(child)
                } else {
                    unlink(child)
                }
            }
            closedir(directory)
        }
        rmdir(path)
    }
}
