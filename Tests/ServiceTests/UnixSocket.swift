import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The tests' raw access to Unix stream sockets: a client that sends bytes of its choosing (or
/// none) on the control socket, a listener that stands in for a service.
enum UnixSocket {
    /// A stream socket connected to `path`; `sendTimeout` bounds a connect and sends that wait.
    static func connect(_ path: String, sendTimeout: Double? = nil) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServiceError("socket: \(String(cString: strerror(errno)))") }
        if let sendTimeout {
            var timeout = timeval(
                tv_sec: Int(sendTimeout), tv_usec: Int(sendTimeout.truncatingRemainder(dividingBy: 1) * 1e6))
            setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }
        let connected = withAddress(path) { Glibc.connect(fd, $0, $1) }
        guard connected == 0 else {
            let code = errno
            close(fd)
            throw ServiceError("connect \(path): \(String(cString: strerror(code)))")
        }
        return fd
    }

    /// A stream socket listening at `path`.
    static func listen(at path: String, backlog: Int32) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ServiceError("socket: \(String(cString: strerror(errno)))") }
        guard withAddress(path, { bind(fd, $0, $1) }) == 0, Glibc.listen(fd, backlog) == 0 else {
            let code = errno
            close(fd)
            throw ServiceError("cannot listen at \(path): \(String(cString: strerror(code)))")
        }
        return fd
    }

    private static func withAddress(_ path: String, _ body: (UnsafePointer<sockaddr>, socklen_t) -> Int32) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            errno = ENAMETOOLONG
            return -1
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
    }
}
