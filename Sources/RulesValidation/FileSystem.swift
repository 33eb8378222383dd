#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What the validator needs to know of a file.
public struct FileStatus: Sendable, Hashable {
    public var isRegularFile: Bool
    public var isDirectory: Bool
    /// Only from ``FileSystem/linkStatus(_:)``: the path is a symbolic link.
    public var isSymbolicLink = false
    /// Permission bits, e.g. 0o755.
    public var mode: UInt32
    public var owner: UInt32
    public var size: Int

    public init(isRegularFile: Bool, isDirectory: Bool = false, mode: UInt32, owner: UInt32, size: Int) {
        self.isRegularFile = isRegularFile
        self.isDirectory = isDirectory
        self.mode = mode
        self.owner = owner
        self.size = size
    }

    public var isExecutable: Bool { isRegularFile && mode & 0o111 != 0 }
}

/// Why a file could not be read as text.
public enum ReadFailure: Error, Sendable, Hashable {
    case cannotRead(String)
    case notRegularFile
    case tooLarge(size: Int, limit: Int)
}

/// The validator's view of the file system, so that tests and the fuzzer can run it on files
/// held in memory. `LocalFileSystem` is the real one.
public protocol FileSystem: Sendable {
    /// The status of the file at `path`, following symbolic links; nil when there is none.
    func status(_ path: String) -> FileStatus?
    /// The whole content of a regular file of at most `limit` bytes.
    func read(_ path: String, limit: Int) throws(ReadFailure) -> [UInt8]
    /// The status of `path` itself, not following a final symbolic link (`lstat`).
    func linkStatus(_ path: String) -> FileStatus?
    /// The target of the symbolic link at `path`; nil when it is none.
    func linkTarget(_ path: String) -> String?
}

extension FileSystem {
    /// Files held in memory have no links.
    public func linkStatus(_ path: String) -> FileStatus? { status(path) }
    public func linkTarget(_ path: String) -> String? { nil }
}

public struct LocalFileSystem: FileSystem {
    public init() {}

    public func status(_ path: String) -> FileStatus? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return FileStatus(info)
    }

    public func linkStatus(_ path: String) -> FileStatus? {
        var info = stat()
        guard lstat(path, &info) == 0 else { return nil }
        return FileStatus(info)
    }

    public func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    public func read(_ path: String, limit: Int) throws(ReadFailure) -> [UInt8] {
        // O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotRead(String(cString: strerror(errno))) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .cannotRead(String(cString: strerror(errno))) }
        let status = FileStatus(info)
        guard status.isRegularFile else { throw .notRegularFile }
        guard status.size <= limit else { throw .tooLarge(size: status.size, limit: limit) }
        var failure: Int32 = 0
        let bytes = [UInt8](unsafeUninitializedCapacity: status.size) { buffer, initialized in
            var filled = 0
            while filled < buffer.count {
                let n = readBytes(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if n < 0 {
                    if errno == EINTR || errno == EAGAIN { continue }
                    failure = errno
                    break
                }
                if n == 0 { break }  // the file shrank while we read it
                filled += n
            }
            initialized = filled
        }
        if failure != 0 { throw .cannotRead(String(cString: strerror(failure))) }
        return bytes
    }
}

extension FileStatus {
    init(_ info: stat) {
        let type = info.st_mode & S_IFMT
        self.init(
            isRegularFile: type == S_IFREG, isDirectory: type == S_IFDIR, mode: UInt32(info.st_mode & 0o7777),
            owner: UInt32(info.st_uid), size: Int(info.st_size))
        isSymbolicLink = type == S_IFLNK
    }
}

/// Files held in memory, for tests and fuzzing.
public struct InMemoryFileSystem: FileSystem {
    public var files: [String: (bytes: [UInt8], mode: UInt32, owner: UInt32)]

    public init(files: [String: (bytes: [UInt8], mode: UInt32, owner: UInt32)] = [:]) {
        self.files = files
    }

    public mutating func add(_ path: String, _ text: String, mode: UInt32 = 0o644, owner: UInt32 = 0) {
        files[path] = (Array(text.utf8), mode, owner)
    }

    public func status(_ path: String) -> FileStatus? {
        if let file = files[path] {
            return FileStatus(isRegularFile: true, mode: file.mode, owner: file.owner, size: file.bytes.count)
        }
        let prefix = path.hasSuffix("/") ? path : path + "/"
        if files.keys.contains(where: { $0.hasPrefix(prefix) }) {
            return FileStatus(isRegularFile: false, isDirectory: true, mode: 0o755, owner: 0, size: 0)
        }
        return nil
    }

    public func read(_ path: String, limit: Int) throws(ReadFailure) -> [UInt8] {
        guard let file = files[path] else {
            throw status(path) == nil ? .cannotRead("No such file or directory") : .notRegularFile
        }
        guard file.bytes.count <= limit else { throw .tooLarge(size: file.bytes.count, limit: limit) }
        return file.bytes
    }
}

/// `read(2)`, named apart from `FileSystem.read`.
private func readBytes(_ fd: Int32, _ buffer: UnsafeMutableRawPointer, _ count: Int) -> Int {
    read(fd, buffer, count)
}
