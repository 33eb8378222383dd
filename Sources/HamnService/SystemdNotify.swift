import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// systemd's readiness protocol (`Type=notify`, sd_notify(3)) without libsystemd: one datagram
/// of `KEY=VALUE` lines to the AF_UNIX socket named by `$NOTIFY_SOCKET` (a path, or `@NAME` for
/// the abstract namespace). Without `$NOTIFY_SOCKET` (not started by systemd) it sends nothing.
///
/// The service sends `READY=1` once it has joined the cluster with its rules loaded, `STATUS=`
/// lines while it waits (for quorum, for the cluster), and `STOPPING=1` when it begins to stop.
public final class SystemdNotify: Sendable {
    /// The socket's address as `$NOTIFY_SOCKET` gives it; nil: not under systemd.
    public let socket: String?
    /// Whether STOPPING=1 was sent (it is sent once).
    private let stopped = Mutex(false)

    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    public init(socket: String?) {
        self.socket = socket.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// From `$NOTIFY_SOCKET`, which is then removed from the environment, so that the recovery
    /// commands the service starts cannot speak for it (sd_notify's `unset_environment`).
    public static func fromEnvironment() -> SystemdNotify {
        let value = getenv("NOTIFY_SOCKET").map { String(cString: $0) }
        unsetenv("NOTIFY_SOCKET")
        return SystemdNotify(socket: value)
    }

    /// STOPPING=1 (with `status` as STATUS=), the first time only; failures are ignored (the
    /// service is stopping anyway, and systemd sees it exit).
    public func stopping(status: String? = nil) {
        guard
            stopped.withLock({ (sent: inout Bool) -> Bool in
                defer { sent = true }
                return !sent
            })
        else { return }
        try? send(["STOPPING=1"] + (status.map { ["STATUS=" + $0] } ?? []))
    }

    /// Sends `lines` (e.g. `["READY=1", "STATUS=..."]`) as one datagram. Does nothing without a
    /// socket; throws when the socket is named but the datagram cannot be sent.
    public func send(_ lines: [String]) throws(Failure) {
        guard let socket else { return }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        var path = Array(socket.utf8)
        let abstract = path.first == UInt8(ascii: "@")
        if abstract { path[0] = 0 }
        guard abstract || path.first == UInt8(ascii: "/") else {
            throw Failure(description: "NOTIFY_SOCKET '\(socket)' is neither an absolute path nor @abstract")
        }
        let capacity = MemoryLayout.size(ofValue: address.sun_path)
        guard path.count < capacity else {
            throw Failure(description: "NOTIFY_SOCKET '\(socket)' is longer than \(capacity - 1) bytes")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in path.enumerated() { raw[index] = byte }
        }
        // An abstract address's length counts its bytes exactly (no terminating zero).
        let length = socklen_t(MemoryLayout<sa_family_t>.size + path.count + (abstract ? 0 : 1))
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "NOTIFY_SOCKET: socket: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let message = Array(lines.joined(separator: "\n").utf8)
        let sent = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { address in
                message.withUnsafeBytes { bytes in
                    sendto(fd, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL), address, length)
                }
            }
        }
        guard sent == message.count else {
            throw Failure(description: "NOTIFY_SOCKET \(socket): sendto: \(String(cString: strerror(errno)))")
        }
    }
}
