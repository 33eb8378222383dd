import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Why the control socket could not be used.
public struct ControlSocketError: Error, Sendable, CustomStringConvertible {
    public var message: String
    /// The service is not running (no socket, or nobody listening).
    public var serviceDown: Bool

    public var description: String { message }
}

/// Writes response lines to one client; a client that stops reading gets dropped after 5 s
/// instead of stalling the service.
public final class ControlConnection: Sendable {
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }

    /// Sends one response; false when the client has gone away.
    @discardableResult
    public func send(_ response: ControlResponse) -> Bool {
        guard var data = try? JSONEncoder.control.encode(response) else { return false }
        data.append(0x0A)
        return data.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.send(fd, buffer.baseAddress! + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }

    /// Whether the client has closed its end (for streams such as `mon`).
    public var isClosed: Bool {
        var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&pollfd, 1, 0) > 0 else { return false }
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) <= 0
    }
}

/// The service's end of the control socket: a Unix stream socket of mode 0600 in a directory
/// of mode 0700, whose clients must be root or the service's own user (checked with
/// SO_PEERCRED on every connection).
public final class ControlServer: Sendable {
    public typealias Handler = @Sendable (ControlRequest, ControlConnection) async -> Void

    public let path: String
    private let listener: Int32
    private let allowedUID: uid_t

    /// Binds the socket; fails when another service already listens there.
    public init(path: String) throws(ControlSocketError) {
        self.path = path
        allowedUID = geteuid()
        let directory = (path as NSString).deletingLastPathComponent
        if mkdir(directory, 0o700) != 0, errno != EEXIST {
            throw ControlSocketError(message: "cannot create \(directory): \(String(cString: strerror(errno)))", serviceDown: false)
        }
        if (try? ControlClient.connect(path)).map({ close($0) }) != nil {
            throw ControlSocketError(message: "another hamn-events service already listens on \(path)", serviceDown: false)
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlSocketError(message: "socket: \(String(cString: strerror(errno)))", serviceDown: false) }
        var address = try ControlClient.address(path)
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        umask(previous)
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 64) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw ControlSocketError(message: "cannot listen on \(path): \(why)", serviceDown: false)
        }
        listener = fd
    }

    /// Accepts clients until `stop()`, on a thread of its own; each request is handled in a task.
    public func start(_ handler: @escaping Handler) {
        let listener = self.listener
        let allowedUID = self.allowedUID
        let thread = Thread {
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    if errno == EINTR || errno == ECONNABORTED { continue }
                    return  // the listener was closed
                }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                var credentials = PeerCredentials()
                var length = socklen_t(MemoryLayout<PeerCredentials>.size)
                guard getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
                    credentials.uid == 0 || credentials.uid == allowedUID
                else {
                    ControlConnection(fd: client).send(.failure("permission denied: the control socket is for root", exitCode: 1))
                    close(client)
                    continue
                }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                // Reading the one request line may wait for a slow client: not on the task pool.
                Thread.detachNewThread {
                    let connection = ControlConnection(fd: client)
                    guard let line = ControlClient.readLine(client, limit: 65536),
                        let request = try? JSONDecoder.control.decode(ControlRequest.self, from: line)
                    else {
                        connection.send(.failure("malformed request", exitCode: 2))
                        close(client)
                        return
                    }
                    Task {
                        await handler(request, connection)
                        close(client)
                    }
                }
            }
        }
        thread.name = "hamn-events control"
        thread.start()
    }

    /// Stops accepting and removes the socket file.
    public func stop() {
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
    }
}

/// Linux's `struct ucred`, which Glibc's module map leaves out (it needs _GNU_SOURCE).
private struct PeerCredentials {
    var pid: Int32 = 0
    var uid: UInt32 = 0
    var gid: UInt32 = 0
}

/// The command line's end: one request, then the response lines.
public enum ControlClient {
    /// Sends `request` and calls `onResponse` with each response line until the service closes
    /// the connection or `onResponse` returns false.
    public static func send(
        _ request: ControlRequest, to path: String, onResponse: (ControlResponse) -> Bool
    ) throws(ControlSocketError) {
        let fd = try connect(path)
        defer { close(fd) }
        guard var data = try? JSONEncoder.control.encode(request) else {
            throw ControlSocketError(message: "cannot encode the request", serviceDown: false)
        }
        data.append(0x0A)
        _ = data.withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        while let line = readLine(fd, limit: 64 << 20) {
            guard let response = try? JSONDecoder.control.decode(ControlResponse.self, from: line) else {
                throw ControlSocketError(message: "the service sent a malformed answer", serviceDown: false)
            }
            if !onResponse(response) { return }
        }
    }

    static func connect(_ path: String) throws(ControlSocketError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw ControlSocketError(message: "socket: \(String(cString: strerror(errno)))", serviceDown: false) }
        var address = try address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let code = errno
            close(fd)
            let down = code == ENOENT || code == ECONNREFUSED
            throw ControlSocketError(
                message: down
                    ? "the hamn-events service is not running (no service listens on \(path))"
                    : "cannot reach the service at \(path): \(String(cString: strerror(code)))",
                serviceDown: down)
        }
        return fd
    }

    static func address(_ path: String) throws(ControlSocketError) -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard bytes.count < capacity else {
            throw ControlSocketError(message: "socket path too long (\(bytes.count) bytes, at most \(capacity - 1)): \(path)", serviceDown: false)
        }
        withUnsafeMutableBytes(of: &address.sun_path) { buffer in
            buffer.copyBytes(from: bytes)
            buffer[bytes.count] = 0
        }
        return address
    }

    /// Reads up to a newline; nil at end of stream, on error, or past `limit`.
    static func readLine(_ fd: Int32, limit: Int) -> Data? {
        var line = Data()
        var byte: UInt8 = 0
        while true {
            let n = recv(fd, &byte, 1, 0)
            if n < 0, errno == EINTR { continue }
            guard n == 1 else { return line.isEmpty ? nil : line }
            if byte == 0x0A { return line }
            line.append(byte)
            if line.count > limit { return nil }
        }
    }
}

extension JSONEncoder {
    static var control: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        return encoder
    }
}

extension JSONDecoder {
    static var control: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}
