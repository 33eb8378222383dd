#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Writes a generated file in large chunks and gives it an explicit mode, whatever the umask:
/// the validator reports files that group or others can write (R020), and the corpus must
/// validate clean.
struct FileWriter {
    let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private(set) var bytesWritten = 0

    private static let chunk = 1 << 20

    init(path: String, mode: mode_t = 0o644) throws(BenchError) {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw BenchError("cannot create \(path): \(String(cString: strerror(errno)))") }
        guard fchmod(fd, mode) == 0 else {
            let why = String(cString: strerror(errno))
            closeDescriptor(fd)
            throw BenchError("cannot chmod \(path): \(why)")
        }
        buffer.reserveCapacity(Self.chunk + 4096)
    }

    mutating func write(_ text: String) throws(BenchError) {
        buffer.append(contentsOf: text.utf8)
        if buffer.count >= Self.chunk { try flush() }
    }

    mutating func flush() throws(BenchError) {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { writeBytes(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw BenchError("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
        bytesWritten += buffer.count
        buffer.removeAll(keepingCapacity: true)
    }

    /// Flushes and closes; the writer must not be used afterwards.
    mutating func close() throws(BenchError) {
        try flush()
        guard closeDescriptor(fd) == 0 else {
            throw BenchError("cannot close \(path): \(String(cString: strerror(errno)))")
        }
    }
}

// `write(2)` and `close(2)`, named apart from the writer's own methods.
private func writeBytes(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    write(fd, buffer, count)
}

@discardableResult
private func closeDescriptor(_ fd: Int32) -> Int32 {
    close(fd)
}

/// A benchmark that cannot go on: printed and exit status 1.
struct BenchError: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
