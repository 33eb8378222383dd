import Dispatch
import Foundation
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `mon`: the event log's lines, pushed to the clients that follow it as the journal's writer
/// commits them.
///
/// After each commit (`committed()`), one serial queue of its own reads the new lines once for
/// every client and hands each client its share; each client's connection thread writes them
/// without ever blocking. Nothing here runs on the service's thread, and nothing waits for a
/// client: a client that does not read (a `mon | less` left paused) has a buffer of
/// `bufferLimit` lines (beside what the kernel's socket buffer holds), and when that is full it
/// is dropped with a message ("mon: client too slow, dropped after N entries").
final class MonFeed: Sendable {
    /// Lines a client may have waiting, beside the batch being written and the socket's buffer.
    static let defaultBufferLimit = 1000
    /// The kernel's share of a client's buffer (its socket's send buffer, bytes).
    static let socketBuffer: Int32 = 64 * 1024
    /// Where `mon` starts: the newest lines of the log.
    static let catchUp = 50

    private let journal: any EventJournal
    private let logger: Logger
    let bufferLimit: Int
    private let queue = DispatchQueue(label: "hamn-events.mon", qos: .utility)

    private struct State {
        var followers: [ObjectIdentifier: Follower] = [:]
        /// The row id of the newest line read for the followers.
        var last: Int64?
        /// A read is queued that has not started yet: commits meanwhile need no other.
        var scheduled = false
        var ended = false
    }

    private let state = Mutex(State())

    init(journal: any EventJournal, logger: Logger, bufferLimit: Int = MonFeed.defaultBufferLimit) {
        self.journal = journal
        self.logger = logger
        self.bufferLimit = bufferLimit
    }

    /// The journal's writer committed: read what is new, if anyone follows. Never waits.
    func committed() {
        let schedule = state.withLock { state -> Bool in
            guard !state.followers.isEmpty, !state.scheduled, !state.ended else { return false }
            state.scheduled = true
            return true
        }
        if schedule { queue.async { self.readNew() } }
    }

    /// Clients followed now (for tests).
    var followerCount: Int { state.withLock { $0.followers.count } }

    /// The service stops: each client gets what it has waiting (for up to a second), then its
    /// connection ends. Reads what the last commits added first.
    func end() {
        queue.sync {
            readNew()
            let followers = state.withLock { state in
                state.ended = true
                defer { state.followers = [:] }
                return Array(state.followers.values)
            }
            for follower in followers { follower.finish(.serviceStopped) }
        }
    }

    /// Follows the log on `connection` (on its own thread) until the client goes away, is
    /// dropped, or the service stops. It starts with the newest lines, or, given `after` (the
    /// id of the last line a reconnecting client has), with the lines after that one.
    func follow(node: String?, after: Int64? = nil, on connection: ControlConnection) {
        guard let follower = Follower(node: node, limit: bufferLimit) else {
            connection.send(.failed(.journal, "mon: cannot follow: \(String(cString: strerror(errno)))"))
            return
        }
        queue.async { self.add(follower, after: after) }
        let ending = follower.write(to: connection.fd)
        queue.async { self.remove(follower) }
        if case .tooSlow(let sent) = ending {
            logger.warning("mon: client too slow, dropped after \(sent) entries")
        }
    }

    // MARK: On the feed's queue

    private func add(_ follower: Follower, after: Int64?) {
        guard !state.withLock({ $0.ended }) else {
            follower.finish(.serviceStopped)
            return
        }
        do {
            let (lines, newest) = try catchUpLines(after: after)
            // A reconnecting client has the lines up to `after`: the feed's next read (which may
            // start before it) does not hand them over again. (Not for a new journal.)
            if let after, let newest, newest >= after { follower.skip(through: after) }
            state.withLock { state in
                state.followers[ObjectIdentifier(follower)] = follower
                // The others' reads go on from where they are; this one skips what it has.
                // (0: an empty log, followed from its first line.)
                if state.followers.count == 1 || state.last == nil { state.last = newest ?? 0 }
            }
            follower.offer(lines)
        } catch {
            follower.finish(.failed(ControlError(.journal, "journal: \(error)")))
        }
    }

    /// The lines a new follower starts with, and the id of the log's newest line (nil: an
    /// empty log): the newest `catchUp` lines; or, given `after`, those after it when they are
    /// fewer than half the follower's buffer (none when nothing was written since; more: the
    /// newest, after a line that says so). A log whose newest line is older than `after` is a
    /// new journal: its newest lines.
    private func catchUpLines(after: Int64?) throws -> (lines: [JournalLogLine], newest: Int64?) {
        let newest = try journal.logTail(after: nil, limit: Self.catchUp)
        guard let after, let last = newest.last?.rowID, last >= after else { return (newest, newest.last?.rowID) }
        if last == after { return ([], last) }
        if let first = newest.first?.rowID, first <= after + 1 { return (newest.filter { $0.rowID > after }, last) }
        let missed = try journal.logTail(after: after, limit: bufferLimit / 2)
        if missed.count < bufferLimit / 2, missed.last?.rowID == last { return (missed, last) }
        var lines = newest
        lines.insert(
            JournalLogLine(
                rowID: newest[0].rowID - 1,  // after `after`, before the lines shown
                run: newest[0].run, time: newest[0].time, kind: "mon", node: nil, eventID: nil,
                text: "mon: more lines were written while it was away than it shows; see `hamn-events history`"),
            at: 0)
        return (lines, last)
    }

    private func remove(_ follower: Follower) {
        state.withLock { _ = $0.followers.removeValue(forKey: ObjectIdentifier(follower)) }
    }

    private func readNew() {
        let (followers, after) = state.withLock { state in
            state.scheduled = false
            return (Array(state.followers.values), state.last)
        }
        guard !followers.isEmpty else { return }
        var last = after
        do {
            while true {
                let lines = try journal.logTail(after: last, limit: 1000)
                guard let newest = lines.last?.rowID else { break }
                last = newest
                for follower in followers where !follower.offer(lines) {
                    remove(follower)
                }
                if lines.count < 1000 { break }
            }
        } catch {
            logger.error("mon: journal: \(error)")
            for follower in followers {
                follower.finish(.failed(ControlError(.journal, "journal: \(error)")))
                remove(follower)
            }
        }
        state.withLock { $0.last = last }
    }
}

/// One `mon` client: the lines waiting for it (at most `limit`) and how its stream ends.
/// The feed's queue offers lines; the connection's thread writes them.
final class Follower: Sendable {
    enum Ending: Sendable, Equatable {
        /// The client closed its end (or the connection failed).
        case clientGone
        /// More than `limit` lines were waiting: dropped after that many sent.
        case tooSlow(sent: Int)
        case serviceStopped
        case failed(ControlError)
    }

    private struct State {
        /// Each line with its id in the journal.
        var waiting: [(id: Int64, text: String)] = []
        /// Lines up to this row id are the client's already (its catch-up).
        var seen: Int64 = -1
        var ending: Ending?
        /// Dropped for being slow: `write` says so with the count it sent.
        var overflowed = false
    }

    private let node: String?
    private let limit: Int
    private let state = Mutex(State())
    /// Written to when there is something new for the writer: lines or an ending.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    init?(node: String?, limit: Int) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return nil }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        self.node = node
        self.limit = limit
    }

    deinit {
        close(wakeRead)
        close(wakeWrite)
    }

    /// Hands over new lines (those after what the client has); false when the client is done
    /// with, by its end or because this made it too slow.
    @discardableResult
    func offer(_ lines: [JournalLogLine]) -> Bool {
        let open = state.withLock { state -> Bool in
            guard state.ending == nil, !state.overflowed else { return false }
            for line in lines where line.rowID > state.seen {
                let text = TerminalText.line(line.formatted())
                if let node, !text.contains(node) { continue }
                state.waiting.append((line.rowID, text))
            }
            state.seen = max(state.seen, lines.last?.rowID ?? state.seen)
            if state.waiting.count > limit {
                state.overflowed = true
                state.waiting = []
            }
            return !state.overflowed
        }
        wake()
        return open
    }

    /// The client has the lines up to `id`.
    func skip(through id: Int64) {
        state.withLock { $0.seen = max($0.seen, id) }
    }

    func finish(_ ending: Ending) {
        state.withLock { state in
            if state.ending == nil { state.ending = ending }
        }
        wake()
    }

    private func wake() {
        var byte: UInt8 = 1
        _ = Glibc.write(wakeWrite, &byte, 1)  // a full pipe is already a wake-up
    }

    private func drainWake() {
        var bytes = [UInt8](repeating: 0, count: 64)
        while Glibc.read(wakeRead, &bytes, bytes.count) > 0 {}
    }

    /// What the writer takes next: waiting lines (only when it has written all it took), and
    /// whether the stream ends.
    private func take(all: Bool) -> (lines: [(id: Int64, text: String)], overflowed: Bool, ending: Ending?) {
        state.withLock { state in
            let lines = all ? state.waiting : []
            if all { state.waiting = [] }
            return (lines, state.overflowed, state.ending)
        }
    }

    /// Writes the lines to the client's socket `fd` as they come, never blocking on it, until
    /// the stream ends; returns how it ended.
    func write(to fd: Int32) -> Ending {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        var size = MonFeed.socketBuffer
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        var batch: [Data] = []
        var offset = 0  // bytes of batch[0] already sent
        var sent = 0
        /// What is left of the line begun (so that a last answer starts on a line of its own).
        func restOfLine() -> Data {
            guard offset > 0, let line = batch.first else { return Data() }
            return Data(line.dropFirst(offset))
        }
        while true {
            let (lines, overflowed, ending) = take(all: batch.isEmpty)
            batch += lines.compactMap { ControlAnswer.line(.logLine(text: $0.text, id: $0.id)) }
            if overflowed {
                let message = ControlError(.clientTooSlow, "mon: client too slow, dropped after \(sent) entries")
                Self.sendWithin(fd, restOfLine() + (ControlAnswer.line(.failed(message)) ?? Data()), milliseconds: 1000)
                return .tooSlow(sent: sent)
            }
            // As much as the socket takes now.
            while let line = batch.first {
                let n = line.withUnsafeBytes { buffer -> Int in
                    guard let base = buffer.baseAddress else { return 0 }
                    return Glibc.send(fd, base + offset, buffer.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
                }
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN || errno == EWOULDBLOCK { break }
                    return .clientGone
                }
                offset += n
                if offset == line.count {
                    batch.removeFirst()
                    offset = 0
                    sent += 1
                }
            }
            switch ending {
            case nil:
                break
            case .serviceStopped:
                // What is left goes out if the client takes it within a second.
                // Then a final answer: a clean stop is mon's normal end (exit 0); a connection
                // that ends without one is a crash.
                Self.sendWithin(
                    fd,
                    restOfLine() + batch.dropFirst(offset > 0 ? 1 : 0).reduce(Data(), +)
                        + (ControlAnswer.line(.done(text: "")) ?? Data()), milliseconds: 1000)
                return .serviceStopped
            case .failed(let error):
                Self.sendWithin(fd, restOfLine() + (ControlAnswer.line(.failed(error)) ?? Data()), milliseconds: 1000)
                return .failed(error)
            case .clientGone, .tooSlow:
                return ending ?? .clientGone
            }
            // Wait for room (if something is waiting to go), new lines, or the client's end.
            var fds = [
                pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0),
                pollfd(fd: fd, events: Int16(POLLIN) | (batch.isEmpty ? 0 : Int16(POLLOUT)), revents: 0),
            ]
            if poll(&fds, 2, -1) < 0, errno != EINTR { return .clientGone }
            if fds[0].revents != 0 { drainWake() }
            let client = fds[1].revents
            if client & Int16(POLLERR | POLLHUP | POLLNVAL) != 0 { return .clientGone }
            if client & Int16(POLLIN) != 0 {
                // The client has nothing more to say: its end, or bytes to ignore.
                var bytes = [UInt8](repeating: 0, count: 256)
                let n = recv(fd, &bytes, bytes.count, Int32(MSG_DONTWAIT))
                if n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) { return .clientGone }
            }
        }
    }

    /// Sends `data` if the client takes it within `milliseconds`; gives up otherwise.
    private static func sendWithin(_ fd: Int32, _ data: Data, milliseconds: Int) {
        let deadline = ContinuousClock.now + .milliseconds(milliseconds)
        var offset = 0
        while offset < data.count {
            let n = data.withUnsafeBytes { buffer -> Int in
                guard let base = buffer.baseAddress else { return 0 }
                return Glibc.send(fd, base + offset, buffer.count - offset, Int32(MSG_NOSIGNAL | MSG_DONTWAIT))
            }
            if n > 0 {
                offset += n
                continue
            }
            if n < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR { return }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return }
            var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(
                &pollfd, 1, Int32(left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000))
        }
    }
}
