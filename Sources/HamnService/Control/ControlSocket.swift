import Dispatch
import Foundation
import Synchronization

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

/// One client's connection. Single answers are written with a blocking send of at most 5 s
/// (on the connection's own thread, never the service's); `mon`'s lines go through
/// `MonFeed`, which never waits for the client.
public final class ControlConnection: Sendable {
    let fd: Int32

    init(fd: Int32) {
        self.fd = fd
    }

    /// Sends one answer line; false when the client has gone away or did not take it within
    /// the socket's send timeout.
    @discardableResult
    public func send(_ answer: ControlAnswer) -> Bool {
        guard let line = ControlAnswer.line(answer) else { return false }
        return Self.sendAll(fd, line)
    }

    static func sendAll(_ fd: Int32, _ data: Data) -> Bool {
        data.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress else { return true }
            var offset = 0
            while offset < buffer.count {
                let n = Glibc.send(fd, base + offset, buffer.count - offset, Int32(MSG_NOSIGNAL))
                if n < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += n
            }
            return true
        }
    }
}

extension ControlAnswer {
    /// The answer as one JSON line, newline included.
    static func line(_ answer: ControlAnswer) -> Data? {
        guard var data = try? JSONEncoder.control.encode(answer) else { return nil }
        data.append(0x0A)
        return data
    }
}

/// The service's end of the control socket: a Unix stream socket of mode 0600 in a directory
/// of mode 0700 (or a shared one only root and the service's user can write:
/// ``RuntimeDirectory``), whose clients must be root or the service's own user (checked with
/// SO_PEERCRED on every connection).
///
/// Each connection has a thread of its own, which reads the request line, waits for the
/// answer and writes it (or, for `mon`, follows the event log): a client that is slow to
/// write or to read holds only its own thread, never the service's thread or the task pool.
public final class ControlServer: Sendable {
    /// Answers one request (every request but `mon`); runs as a task.
    /// Answers one request (every request but `mon`) from `peer`; runs as a task.
    public typealias Answer = @Sendable (ControlRequest, ControlPeer) async -> ControlAnswer
    /// Follows the event log for `mon` (lines naming `node`, if given) on the connection's
    /// thread, until the client goes away, is dropped or the service stops.
    public typealias Follow = @Sendable (_ node: String?, _ after: Int64?, ControlConnection) -> Void

    /// Connections served at once by default (PostgreSQL's `max_connections` is 100 too).
    public static let defaultConnectionLimit = 100

    /// The default limit under a soft descriptor limit of `limit`: 100, or an eighth of the
    /// descriptors when that is less (a connection holds one, a `mon` follower three), at least 8.
    public static func connectionLimit(forDescriptorLimit limit: Int) -> Int {
        min(defaultConnectionLimit, max(8, limit / 8))
    }

    public let path: String
    private let listener: Int32
    private let allowedUID: uid_t
    /// Connections being served: `stop()` gives their last answers a moment to go out.
    private let serving = Mutex(0)
    /// Connections served at once, `mon` followers included; more are refused.
    public let connectionLimit: Int
    /// How long a client has to send its whole request line.
    public let requestDeadline: Duration
    private let active = Atomic<Int>(0)
    private let stopped = Atomic<Bool>(false)

    /// Binds the socket; fails when another service already listens there.
    public init(
        path: String, connectionLimit: Int = ControlServer.defaultConnectionLimit,
        requestDeadline: Duration = .seconds(5)
    ) throws(ControlSocketError) {
        self.path = path
        self.connectionLimit = connectionLimit
        self.requestDeadline = requestDeadline
        allowedUID = geteuid()
        // Created and checked as tmux does (RuntimeDirectory): nobody else may own or write it.
        try RuntimeDirectory.prepare(RuntimeDirectory.parent(path))
        if (try? ControlClient.connect(path)).map({ close($0) }) != nil {
            throw ControlSocketError(
                message: "another hamn-events service already listens on \(path)", serviceDown: false)
        }
        unlink(path)
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw ControlSocketError(message: "socket: \(String(cString: strerror(errno)))", serviceDown: false)
        }
        var address = try ControlClient.address(path)
        let previous = umask(0o177)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        umask(previous)
        guard bound == 0, chmod(path, 0o600) == 0, listen(fd, 64) == 0 else {
            let why = String(cString: strerror(errno))
            close(fd)
            throw ControlSocketError(message: "cannot listen on \(path): \(why)", serviceDown: false)
        }
        listener = fd
    }

    /// Accepts clients until `stop()`, on a thread of its own. `problem` hears what the
    /// listener had to weather (out of file descriptors), once per streak.
    ///
    /// The listener never ends but by `stop()`: sshd's and PostgreSQL's rules. At most
    /// `connectionLimit` connections are served at once (`mon` followers included); one more
    /// is answered "too many control connections" and closed. A request line must arrive
    /// whole within `requestDeadline`, however slowly its bytes trickle in. When the process
    /// is out of file descriptors (EMFILE, ENFILE), a spare descriptor kept for the purpose is
    /// closed to accept the waiting client and tell it so, and the listener backs off (10 ms,
    /// doubling to 1 s) and retries, rather than spin or exit.
    public func start(
        answer: @escaping Answer, follow: @escaping Follow, problem: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        let listener = self.listener
        let allowedUID = self.allowedUID
        let limit = connectionLimit
        let deadline = requestDeadline
        let thread = Thread {
            var spare = open("/dev/null", O_RDONLY | O_CLOEXEC)
            var backoff = 0.01
            var reported = false
            while true {
                let client = accept(listener, nil, nil)
                if client < 0 {
                    let code = errno
                    if self.stopped.load(ordering: .acquiring) { break }
                    switch code {
                    case EINTR, ECONNABORTED, EAGAIN, EPROTO:
                        continue
                    case EMFILE, ENFILE, ENOBUFS, ENOMEM:
                        if !reported {
                            problem(
                                "control socket: cannot accept a connection: \(String(cString: strerror(code))); refusing clients and retrying until descriptors are free"
                            )
                            reported = true
                        }
                        if spare >= 0 {
                            close(spare)
                            let refused = accept(listener, nil, nil)
                            if refused >= 0 {
                                Self.refuse(refused, "the service is out of file descriptors: try again shortly")
                            }
                            spare = open("/dev/null", O_RDONLY | O_CLOEXEC)
                        }
                    default:
                        if !reported {
                            problem("control socket: accept: \(String(cString: strerror(code))); retrying")
                            reported = true
                        }
                    }
                    usleep(useconds_t(backoff * 1_000_000))
                    backoff = min(backoff * 2, 1)
                    continue
                }
                _ = fcntl(client, F_SETFD, FD_CLOEXEC)
                backoff = 0.01
                if reported {
                    problem("control socket: accepting connections again")
                    reported = false
                }
                var credentials = PeerCredentials()
                var length = socklen_t(MemoryLayout<PeerCredentials>.size)
                guard getsockopt(client, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0,
                    credentials.uid == 0 || credentials.uid == allowedUID
                else {
                    // Answered, then the request read (and dropped), so that closing does not
                    // reset the connection before the client has read the answer.
                    var timeout = timeval(tv_sec: 1, tv_usec: 0)
                    setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    ControlConnection(fd: client).send(
                        .failed(.permissionDenied, "permission denied: the control socket is for root"))
                    shutdown(client, Int32(SHUT_WR))
                    _ = ControlClient.readLine(client, limit: 65536)
                    close(client)
                    continue
                }
                guard self.active.add(1, ordering: .acquiringAndReleasing).newValue <= limit else {
                    self.active.subtract(1, ordering: .acquiringAndReleasing)
                    Self.refuse(client, "too many control connections (\(limit) served at once): try again shortly")
                    continue
                }
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                self.serving.withLock { $0 += 1 }
                let peer = ControlPeer(uid: credentials.uid)
                Thread.detachNewThread {
                    Self.serve(
                        ControlConnection(fd: client), peer: peer, deadline: deadline, answer: answer, follow: follow)
                    close(client)
                    self.serving.withLock { $0 -= 1 }
                    self.active.subtract(1, ordering: .acquiringAndReleasing)
                }
            }
            if spare >= 0 { close(spare) }
        }
        thread.name = "hamn-events control"
        thread.start()
    }

    /// Answers a client the service will not serve, without waiting for it, and closes it.
    private static func refuse(_ client: Int32, _ message: String) {
        var timeout = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(client, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        ControlConnection(fd: client).send(.failed(.busy, message))
        close(client)
    }

    /// One connection, on its own thread: the request line, then its answer or `mon`'s lines.
    private static func serve(
        _ connection: ControlConnection, peer: ControlPeer, deadline: Duration, answer: @escaping Answer,
        follow: Follow
    ) {
        guard let line = readRequestLine(connection.fd, limit: 65536, deadline: deadline) else {
            connection.send(
                .failed(
                    .malformedRequest,
                    "malformed request: no whole request line within \(deadline), or one longer than 64 KiB"))
            return
        }
        switch ControlRequest.decode(line) {
        case .failure(let error):
            connection.send(.failed(error))
        case .success(.mon(let node, let after)):
            follow(node, after, connection)
        case .success(let request):
            if let reply = waitFor(connection.fd, { await answer(request, peer) }) { connection.send(reply) }
        }
    }

    /// Reads up to a newline within `deadline` of now, however the bytes come (a client that
    /// sends one byte every few seconds is not waited for past it); nil at end of stream, on
    /// error, past `limit` or past the deadline.
    static func readRequestLine(_ fd: Int32, limit: Int, deadline: Duration) -> Data? {
        let end = ContinuousClock.now + deadline
        var line = Data()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let left = ContinuousClock.now.duration(to: end)
            guard left > .zero else { return nil }
            let (seconds, attoseconds) = left.components
            var entry = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            let ready = poll(&entry, 1, Int32(seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1))
            if ready < 0, errno == EINTR { continue }
            guard ready > 0 else { return nil }
            // Only what is there up to the newline: the rest of the stream is not this line's.
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_PEEK) | Int32(MSG_DONTWAIT))
            if n < 0, errno == EINTR || errno == EAGAIN { continue }
            guard n > 0 else { return nil }
            let newline = buffer[0..<n].firstIndex(of: 0x0A)
            let take = newline.map { $0 + 1 } ?? n
            _ = recv(fd, &buffer, take, Int32(MSG_DONTWAIT))
            if let newline {
                line.append(contentsOf: buffer[0..<newline])
                return line.count > limit ? nil : line
            }
            line.append(contentsOf: buffer[0..<take])
            if line.count > limit { return nil }
        }
    }

    /// Runs `body` as a task and blocks this (dedicated) thread until it ends; nil when the
    /// client hung up meanwhile (the task is then cancelled: a `wait-event` whose client has
    /// gone stops waiting, and its connection no longer counts against the limit).
    private static func waitFor(_ fd: Int32, _ body: @escaping @Sendable () async -> ControlAnswer) -> ControlAnswer? {
        let result = Mutex<ControlAnswer?>(nil)
        let done = DispatchSemaphore(value: 0)
        let task = Task {
            let answer = await body()
            result.withLock { $0 = answer }
            done.signal()
        }
        while done.wait(timeout: .now() + .milliseconds(200)) == .timedOut {
            // POLLHUP: the client closed its end (a half-close, as socat does after the
            // request, is only POLLRDHUP and keeps the wait).
            var entry = pollfd(fd: fd, events: 0, revents: 0)
            if poll(&entry, 1, 0) > 0, entry.revents & Int16(POLLHUP | POLLERR) != 0 {
                task.cancel()
                done.wait()
                return nil
            }
        }
        return result.withLock { $0 } ?? .failed(.journal, "no answer")
    }

    /// Stops accepting and removes the socket file.
    /// Answers being written (a `wait-event` told that the service stopped) get up to 2 s.
    public func stop() {
        stopped.store(true, ordering: .releasing)
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
        unlink(path)
        let deadline = ContinuousClock.now + .seconds(2)
        while serving.withLock({ $0 }) > 0, ContinuousClock.now < deadline { usleep(10_000) }
    }
}

/// Who sent a request: the user of the client's process (SO_PEERCRED), for the journal.
public struct ControlPeer: Sendable, Hashable {
    public var uid: UInt32

    public init(uid: UInt32) {
        self.uid = uid
    }

    /// The user's name from the password database, else `uid N`.
    public var userName: String {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>?
        var buffer = [CChar](repeating: 0, count: 4096)
        guard getpwuid_r(uid_t(uid), &entry, &buffer, buffer.count, &result) == 0, result != nil,
            let name = entry.pw_name
        else { return "uid \(uid)" }
        return String(cString: name)
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
    /// Sends `request` and calls `onAnswer` with each answer line until the service closes
    /// the connection or `onAnswer` returns false.
    public static func send(
        _ request: ControlRequest, to path: String, onAnswer: (ControlAnswer) -> Bool
    ) throws(ControlSocketError) {
        try RuntimeDirectory.checkBeforeConnecting(path)
        let fd = try connect(path)
        defer { close(fd) }
        guard var data = try? JSONEncoder.control.encode(request) else {
            throw ControlSocketError(message: "cannot encode the request", serviceDown: false)
        }
        data.append(0x0A)
        // A service that refuses the client answers before reading: its answer is read even
        // when the request could not be sent whole.
        let sendError = ControlConnection.sendAll(fd, data) ? nil : String(cString: strerror(errno))
        var lines = 0
        while let line = readLine(fd, limit: 64 << 20) {
            lines += 1
            guard let answer = try? JSONDecoder.control.decode(ControlAnswer.self, from: line) else {
                throw ControlSocketError(message: "the service sent a malformed answer", serviceDown: false)
            }
            if !onAnswer(answer) { return }
        }
        if let sendError, lines == 0 {
            throw ControlSocketError(message: "cannot send the request to \(path): \(sendError)", serviceDown: false)
        }
    }

    static func connect(_ path: String) throws(ControlSocketError) -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else {
            throw ControlSocketError(message: "socket: \(String(cString: strerror(errno)))", serviceDown: false)
        }
        var address = try address(path)
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
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
            throw ControlSocketError(
                message: "socket path too long (\(bytes.count) bytes, at most \(capacity - 1)): \(path)",
                serviceDown: false)
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
