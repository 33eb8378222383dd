import CCorosync
import ClusterTransport
import RulesEngine
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The raw Corosync CPG layer: one connection to the local corosync, one group, dispatched on one
// thread (an `EventLoopThread`: the connection's own, or the service's, which also runs the
// service's actor). The engine's protocol (hello, rosters, message format, quorum gating) sits on
// top.
//
// Threads: the loop's thread is the only caller of cpg_dispatch/votequorum_dispatch and so of
// the C callbacks; requests (cpg_mcast_joined, cpg_leave, the finalizes) are serialized by a lock
// of their own. The callbacks find their connection through cpg_context_set /
// votequorum_context_set (an unretained pointer: the loop holds the state alive for
// as long as it can dispatch).
//
// Corosync going away: the CPG socket reports POLLHUP, or cpg_dispatch fails (CS_ERR_LIBRARY,
// CS_ERR_BAD_HANDLE, ...): the stream gets `.lost(reason:)` and ends, the loop drops the connection,
// multicast throws. Nothing reconnects: a new CPGConnection is the way back.
//
// Message size: at most `maxMessageSize` bytes (corosync 3.1.7: 1 MiB minus 1 KiB, i.e.
// 1,047,552 bytes, cpg_max_atomic_msgsize_get). libcpg would fragment bigger messages, but a
// fragmented send interrupted half-way (CS_ERR_TRY_AGAIN, a membership change) leaves a partial
// message behind; the engine's messages are far smaller, so bigger ones are refused instead.

/// A corosync `cs_error_t`, with its name.
public struct CSError: Sendable, Hashable, CustomStringConvertible {
    public var rawValue: UInt32

    public init(rawValue: UInt32) { self.rawValue = rawValue }
    init(_ value: cs_error_t) { rawValue = value.rawValue }

    /// The name of the constant in corotypes.h, e.g. `CS_ERR_LIBRARY`.
    public var name: String {
        switch rawValue {
        case 1: "CS_OK"
        case 2: "CS_ERR_LIBRARY"
        case 3: "CS_ERR_VERSION"
        case 4: "CS_ERR_INIT"
        case 5: "CS_ERR_TIMEOUT"
        case 6: "CS_ERR_TRY_AGAIN"
        case 7: "CS_ERR_INVALID_PARAM"
        case 8: "CS_ERR_NO_MEMORY"
        case 9: "CS_ERR_BAD_HANDLE"
        case 10: "CS_ERR_BUSY"
        case 11: "CS_ERR_ACCESS"
        case 12: "CS_ERR_NOT_EXIST"
        case 13: "CS_ERR_NAME_TOO_LONG"
        case 14: "CS_ERR_EXIST"
        case 15: "CS_ERR_NO_SPACE"
        case 16: "CS_ERR_INTERRUPT"
        case 17: "CS_ERR_NAME_NOT_FOUND"
        case 18: "CS_ERR_NO_RESOURCES"
        case 19: "CS_ERR_NOT_SUPPORTED"
        case 20: "CS_ERR_BAD_OPERATION"
        case 21: "CS_ERR_FAILED_OPERATION"
        case 22: "CS_ERR_MESSAGE_ERROR"
        case 23: "CS_ERR_QUEUE_FULL"
        case 24: "CS_ERR_QUEUE_NOT_AVAILABLE"
        case 25: "CS_ERR_BAD_FLAGS"
        case 26: "CS_ERR_TOO_BIG"
        case 27: "CS_ERR_NO_SECTIONS"
        case 28: "CS_ERR_CONTEXT_NOT_FOUND"
        case 30: "CS_ERR_TOO_MANY_GROUPS"
        case 100: "CS_ERR_SECURITY"
        default: "cs_error_t \(rawValue)"
        }
    }

    public var description: String { name }
}

public enum CPGError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A Corosync client library cannot be loaded (dlopen or dlsym failed): not installed, or broken.
    case libraryMissing(library: String, package: String, reason: String)
    /// corosync is not running on this node (or refuses this client): connecting failed.
    case notRunning(function: String, error: CSError)
    /// A corosync call failed.
    case call(function: String, error: CSError)
    /// The group name is empty or longer than CPG_MAX_NAME_LENGTH (128) bytes.
    case invalidGroupName(String)
    /// A message longer than `CPGConnection.maxMessageSize`.
    case messageTooBig(size: Int, limit: Int)
    /// `close()` was called.
    case closed
    /// `leave()` was called: corosync would take the message and deliver it to no one.
    case left
    /// The connection to corosync is lost.
    case lost(reason: String)

    public var description: String {
        switch self {
        case .libraryMissing(let library, let package, let reason):
            "cannot load \(library), which the corosync transport needs (Debian package \(package)): \(reason)"
        case .notRunning(let function, let error):
            "cannot connect to corosync (\(function): \(error.name)): is corosync running on this node?"
        case .call(let function, let error):
            "\(function) failed: \(error.name)"
        case .invalidGroupName(let name):
            "invalid CPG group name '\(name)': 1 to \(CPG_MAX_NAME_LENGTH) bytes"
        case .messageTooBig(let size, let limit):
            "a CPG message of \(size) bytes is longer than the limit of \(limit) bytes"
        case .closed:
            "the CPG connection is closed"
        case .left:
            "this member left the CPG group"
        case .lost(let reason):
            "the connection to corosync is lost: \(reason)"
        }
    }
}

/// One process's membership of one CPG group on the local corosync, with votequorum's flag.
public final class CPGConnection: Sendable {
    private let core: CPGCore

    /// Connects to the local corosync (cpg_model_initialize with deliver, confchg and totem confchg callbacks; cpg_context_set to reach Swift state from C), joins `group`, and dispatches it on a thread of its own (an `EventLoopThread`: poll on cpg_fd_get and the votequorum fd, cpg_dispatch(CS_DISPATCH_ALL)) feeding `events`. Throws a clear error (with the cs_error_t name) when corosync is not running, and `CPGError.libraryMissing` when libcpg or libvotequorum cannot be loaded (they are opened on the first connection: `CorosyncLibrary`). `trackQuorum: false` skips votequorum (e.g. for a raw test client).
    public init(group: String, trackQuorum: Bool = true) throws {
        core = try CPGCore(group: group, trackQuorum: trackQuorum, handler: nil, loop: nil)
    }

    /// As `init(group:trackQuorum:)`, but the events go to `handler`, called on the dispatch
    /// thread in corosync's order (then once with nil when they end), not to `events`: one
    /// thread hop less on every delivery. `handler` must not block, and must not call `close()`
    /// itself (from another task it may); it may call `trySend`.
    ///
    /// With `loop`, the connection is dispatched on that thread (the service's, whose actor runs
    /// there too) instead of a thread of its own; `close()` then leaves the loop running.
    public init(
        group: String, trackQuorum: Bool = true, loop: EventLoopThread? = nil,
        handler: @escaping @Sendable (CPGEvent?) -> Void
    ) throws {
        core = try CPGCore(group: group, trackQuorum: trackQuorum, handler: handler, loop: loop)
    }

    deinit {
        core.close()
    }

    /// This member's address: cpg_local_get's node id and this process's pid.
    public var local: CPGAddress { core.local }

    /// The group's events, in the order corosync delivered them. One consumer. The stream ends
    /// after `.lost`, after `leave()` took effect, or on `close()` (also when the last reference
    /// to the connection goes: keep the connection while consuming).
    public var events: AsyncStream<CPGEvent> { core.events }

    /// The largest message `multicast` takes (cpg_max_atomic_msgsize_get).
    public var maxMessageSize: Int { core.maxMessageSize }

    /// votequorum's last quorate flag; nil before the first report or without `trackQuorum`.
    public var quorate: Bool? { core.state.withLock { $0.quorate } }

    /// The corosync node ids of the current totem membership (the totem confchg callback).
    public var nodes: [UInt32] { core.state.withLock { $0.totemNodes } }

    /// cpg_mcast_joined(CPG_TYPE_AGREED); retries CS_ERR_TRY_AGAIN with a short backoff; throws on other errors.
    ///
    /// Throws `CPGError`: `.messageTooBig` beyond `maxMessageSize`; `.closed`, `.left` or `.lost`
    /// after `close()`, `leave()` or the loss of corosync; `.call("cpg_mcast_joined", …)` for any
    /// other error, and for CS_ERR_TRY_AGAIN that lasts 30 s. Concurrent calls are serialized;
    /// one caller's messages are delivered in the order its calls returned.
    public func multicast(_ bytes: [UInt8]) async throws {
        try await core.multicast(bytes)
    }

    /// One cpg_mcast_joined(CPG_TYPE_AGREED), from the caller's thread: false on
    /// CS_ERR_TRY_AGAIN (corosync's queue is full: try again later); throws as `multicast`.
    public func trySend(_ bytes: [UInt8]) throws -> Bool {
        try core.trySend(bytes)
    }

    /// cpg_leave; the events stream ends after the configuration change that shows this member left (or soon after).
    public func leave() {
        core.leave()
    }

    /// Stops dispatching (from another thread: returns once no callback runs or will run) and
    /// finalizes the handles; idempotent; also called on deinit.
    public func close() {
        core.close()
    }
}

/// Mutable state shared by the loop's thread and the callers.
struct CPGState: Sendable {
    var phase = CPGPhase.open
    var quorate: Bool?
    var totemNodes: [UInt32] = []
    /// A configuration change in which nodes went down, held until the totem change that
    /// follows it (`CPGCore.configurationChanged`).
    var held: (members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress])?
}

final class CPGCore: EventLoopSource {
    /// libcpg's and libvotequorum's functions.
    let api: CorosyncLibrary
    let cpgHandle: cpg_handle_t
    let quorumHandle: votequorum_handle_t?
    let cpgFD: Int32
    let quorumFD: Int32?
    /// The thread that dispatches this connection.
    let loop: EventLoopThread
    /// Whether `loop` is this connection's own (stopped on close).
    let ownsLoop: Bool
    let groupName: String
    let local: CPGAddress
    let maxMessageSize: Int
    let events: AsyncStream<CPGEvent>
    let continuation: AsyncStream<CPGEvent>.Continuation
    /// Where the events go instead of `events`, when given.
    let handler: (@Sendable (CPGEvent?) -> Void)?
    let state = Mutex(CPGState())
    /// Serializes the request calls on the handles and their finalization.
    let requests = Mutex(())

    /// How long after leave() the stream ends at the latest.
    static let leaveGrace: UInt64 = 2_000_000_000
    /// How long multicast retries CS_ERR_TRY_AGAIN.
    static let tryAgainLimit: UInt64 = 30_000_000_000

    init(group: String, trackQuorum: Bool, handler: (@Sendable (CPGEvent?) -> Void)?, loop: EventLoopThread?) throws {
        // First, before any thread starts: without the libraries there is nothing to connect with.
        let api = try CorosyncLibrary.shared()
        self.api = api
        self.handler = handler
        let theLoop: EventLoopThread
        if let loop {
            theLoop = loop
        } else {
            do {
                theLoop = try EventLoopThread(name: "cpg-dispatch")
            } catch {
                throw CPGError.call(function: "pthread_create", error: CSError(CS_ERR_NO_RESOURCES))
            }
        }
        self.loop = theLoop
        ownsLoop = loop == nil
        // Every early exit below: a loop of our own is stopped.
        var started = false
        defer { if !started, loop == nil { theLoop.stop() } }
        guard !group.isEmpty, group.utf8.count <= Int(CPG_MAX_NAME_LENGTH) else {
            throw CPGError.invalidGroupName(group)
        }
        groupName = group

        var handle: cpg_handle_t = 0
        var model = cpg_model_v1_data_t()
        model.model = CPG_MODEL_V1
        model.cpg_deliver_fn = { handle, _, nodeID, pid, message, length in
            CPGCore.from(cpg: handle)?.delivered(from: CPGAddress(nodeID: nodeID, pid: pid), message, length)
        }
        model.cpg_confchg_fn = { handle, _, members, memberCount, left, leftCount, joined, joinedCount in
            let nodeDown =
                left.map {
                    UnsafeBufferPointer(start: $0, count: leftCount).contains {
                        $0.reason == UInt32(CPG_REASON_NODEDOWN.rawValue)
                    }
                } ?? false
            CPGCore.from(cpg: handle)?.configurationChanged(
                members: CPGCore.addresses(members, memberCount),
                joined: CPGCore.addresses(joined, joinedCount),
                left: CPGCore.addresses(left, leftCount), nodeDown: nodeDown)
        }
        model.cpg_totem_confchg_fn = { handle, _, count, nodes in
            let list = nodes.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? []
            guard let core = CPGCore.from(cpg: handle) else { return }
            core.state.withLock { $0.totemNodes = list }
            core.releaseHeld()
        }
        model.flags = UInt32(CPG_MODEL_V1_DELIVER_INITIAL_TOTEM_CONF)
        let initialized = withUnsafeMutablePointer(to: &model) { pointer in
            api.cpg_model_initialize(
                &handle, CPG_MODEL_V1, UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: cpg_model_data_t.self),
                nil)
        }
        guard initialized == CS_OK else {
            throw CPGError.notRunning(function: "cpg_model_initialize", error: CSError(initialized))
        }
        cpgHandle = handle
        var cleanup: [() -> Void] = [{ _ = api.cpg_finalize(handle) }]
        func fail(_ error: CPGError) -> CPGError {
            for step in cleanup.reversed() { step() }
            return error
        }

        var nodeID: UInt32 = 0
        let got = api.cpg_local_get(handle, &nodeID)
        guard got == CS_OK else { throw fail(.call(function: "cpg_local_get", error: CSError(got))) }
        local = CPGAddress(nodeID: nodeID, pid: UInt32(getpid()))
        var atomic: UInt32 = 0
        let sized = api.cpg_max_atomic_msgsize_get(handle, &atomic)
        guard sized == CS_OK else { throw fail(.call(function: "cpg_max_atomic_msgsize_get", error: CSError(sized))) }
        maxMessageSize = Int(atomic)
        var fd: Int32 = -1
        let fdResult = api.cpg_fd_get(handle, &fd)
        guard fdResult == CS_OK else { throw fail(.call(function: "cpg_fd_get", error: CSError(fdResult))) }
        cpgFD = fd

        if trackQuorum {
            var quorum: votequorum_handle_t = 0
            var callbacks = votequorum_callbacks_t()
            callbacks.votequorum_quorum_notify_fn = { handle, _, quorate, _, _ in
                let core = CPGCore.from(quorum: handle)
                core?.quorumChanged(quorate != 0)
                core?.releaseHeld()
            }
            let result = api.votequorum_initialize(&quorum, &callbacks)
            guard result == CS_OK else {
                throw fail(.notRunning(function: "votequorum_initialize", error: CSError(result)))
            }
            cleanup.append { _ = api.votequorum_finalize(quorum) }
            var quorumFD: Int32 = -1
            let fdResult = api.votequorum_fd_get(quorum, &quorumFD)
            guard fdResult == CS_OK else { throw fail(.call(function: "votequorum_fd_get", error: CSError(fdResult))) }
            quorumHandle = quorum
            self.quorumFD = quorumFD
        } else {
            quorumHandle = nil
            quorumFD = nil
        }

        (events, continuation) = AsyncStream<CPGEvent>.makeStream(bufferingPolicy: .unbounded)

        // From here on the callbacks can find this object.
        let context = Unmanaged.passUnretained(self).toOpaque()
        _ = api.cpg_context_set(handle, context)
        if let quorumHandle {
            _ = api.votequorum_context_set(quorumHandle, context)
            let tracked = api.votequorum_trackstart(quorumHandle, 0, UInt32(CS_TRACK_CHANGES | CS_TRACK_CURRENT))
            guard tracked == CS_OK else {
                throw fail(.call(function: "votequorum_trackstart", error: CSError(tracked)))
            }
        }

        var name = cpg_name()
        Self.fill(&name, group)
        var joined = api.cpg_join(handle, &name)
        var delay: UInt32 = 1_000
        var tries = 0
        while joined == CS_ERR_TRY_AGAIN, tries < 300 {
            usleep(delay)
            delay = min(delay * 2, 100_000)
            tries += 1
            joined = api.cpg_join(handle, &name)
        }
        guard joined == CS_OK else { throw fail(.call(function: "cpg_join", error: CSError(joined))) }

        started = true
        self.loop.add(self)
    }

    // MARK: The C side

    static func from(cpg handle: cpg_handle_t) -> CPGCore? {
        var context: UnsafeMutableRawPointer?
        guard let api = CorosyncLibrary.opened, api.cpg_context_get(handle, &context) == CS_OK, let context else {
            return nil
        }
        return Unmanaged<CPGCore>.fromOpaque(context).takeUnretainedValue()
    }

    static func from(quorum handle: votequorum_handle_t) -> CPGCore? {
        var context: UnsafeMutableRawPointer?
        guard let api = CorosyncLibrary.opened, api.votequorum_context_get(handle, &context) == CS_OK, let context
        else { return nil }
        return Unmanaged<CPGCore>.fromOpaque(context).takeUnretainedValue()
    }

    static func addresses(_ list: UnsafePointer<cpg_address>?, _ count: Int) -> [CPGAddress] {
        guard let list, count > 0 else { return [] }
        return UnsafeBufferPointer(start: list, count: count).map { CPGAddress(nodeID: $0.nodeid, pid: $0.pid) }
    }

    static func fill(_ name: inout cpg_name, _ group: String) {
        let bytes = Array(group.utf8)
        name.length = UInt32(bytes.count)
        withUnsafeMutableBytes(of: &name.value) { buffer in
            buffer.copyBytes(from: bytes)
        }
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }

    /// Yields `event` unless the stream is finished.
    private func yield(_ event: CPGEvent) {
        guard state.withLock({ $0.phase.streamOpen }) else { return }
        if let handler { handler(event) } else { continuation.yield(event) }
    }

    /// Applies `event` to the phase; when that ends the stream (it does once), ends it, after
    /// `last` if given.
    private func finish(_ event: CPGPhase.Event, last: CPGEvent? = nil) {
        guard state.withLock({ $0.phase.next(event) }) else { return }
        if let handler {
            if let last { handler(last) }
            handler(nil)
        } else if let last {
            continuation.yield(last)
        }
        continuation.finish()
    }

    func delivered(from sender: CPGAddress, _ message: UnsafeMutableRawPointer?, _ length: Int) {
        releaseHeld()
        let bytes: [UInt8]
        if let message, length > 0 {
            bytes = Array(UnsafeRawBufferPointer(start: message, count: length))
        } else {
            bytes = []
        }
        yield(.message(from: sender, bytes: bytes))
    }

    /// votequorum's notification comes on a socket of its own, in no set order with this one:
    /// the flag is asked for as a change is delivered, so that a change of quorum is reported
    /// before the configuration change it goes with (a partition without quorum must not look
    /// quorate for a moment). A change in which nodes went down (CPG_REASON_NODEDOWN) is held
    /// until the totem change that corosync's CPG sends right after it (cpg_sync_activate sends
    /// the down list, then the new ring): asked before, votequorum may not have counted the new
    /// ring yet, and CI once saw the lone node of a 2|1 partition read "quorate" there and run
    /// a takeover segment. With the new ring known, a ring too small for the quorum is not
    /// quorate whatever the flag says (`QuorumReading`). Anything else that comes first (a
    /// message, another change, votequorum's notification) releases it first.
    func configurationChanged(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress], nodeDown: Bool) {
        releaseHeld()
        if nodeDown, quorumHandle != nil {
            state.withLock { $0.held = (members, joined, left) }
            return
        }
        deliver(members: members, joined: joined, left: left)
    }

    /// Delivers the held change, if any (the totem change came, or something else did first).
    func releaseHeld() {
        guard
            let held = state.withLock({ state in
                defer { state.held = nil }
                return state.held
            })
        else { return }
        deliver(members: held.members, joined: held.joined, left: held.left)
    }

    private func deliver(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress]) {
        if let quorumHandle {
            var info = votequorum_info()
            if api.votequorum_getinfo(quorumHandle, local.nodeID, &info) == CS_OK {
                let ring = state.withLock { $0.totemNodes.count }
                quorumChanged(QuorumReading(info).quorate(ring: ring))
            }
        }
        yield(.configuration(members: members, joined: joined, left: left))
        if left.contains(local) { finish(.leaveTookEffect) }
    }

    func quorumChanged(_ quorate: Bool) {
        let changed = state.withLock { state -> Bool in
            guard state.quorate != quorate else { return false }
            state.quorate = quorate
            return true
        }
        if changed { yield(.quorum(quorate: quorate)) }
    }

    // MARK: Dispatch, on the loop's thread

    func pollSet() -> (descriptors: [Int32], timeout: Int32)? {
        let phase = state.withLock { $0.phase }
        guard phase.dispatches else { return nil }
        var timeout: Int32 = -1
        if let deadline = phase.leaveDeadline {
            let now = Self.now()
            if now >= deadline {
                finish(.leaveTookEffect)
                return nil
            }
            timeout = Int32(min((deadline - now) / 1_000_000 + 1, 1_000))
        }
        return (quorumFD.map { [cpgFD, $0] } ?? [cpgFD], timeout)
    }

    func ready(_ revents: [Int16]) {
        guard state.withLock({ $0.phase.dispatches }) else { return }
        // CPG first: it carries the group's order; then votequorum.
        if revents[0] != 0,
            !dispatch("cpg_dispatch", "CPG", revents[0], { api.cpg_dispatch(cpgHandle, CS_DISPATCH_ALL) })
        {
            return
        }
        if revents.count > 1, revents[1] != 0, let quorumHandle {
            _ = dispatch("votequorum_dispatch", "votequorum", revents[1]) {
                api.votequorum_dispatch(quorumHandle, CS_DISPATCH_ALL)
            }
        }
    }

    /// One dispatch call for a ready descriptor; false (and the stream ended with `.lost`) when
    /// it failed or corosync closed the connection.
    private func dispatch(_ function: String, _ connection: String, _ revents: Int16, _ call: () -> cs_error_t) -> Bool
    {
        let result = call()
        if result != CS_OK {
            let reason = "\(function): \(CSError(result).name)"
            finish(.lost(reason: reason), last: .lost(reason: reason))
            return false
        }
        if revents & Int16(POLLHUP | POLLERR | POLLNVAL) != 0 {
            let reason = "corosync closed the \(connection) connection"
            finish(.lost(reason: reason), last: .lost(reason: reason))
            return false
        }
        return true
    }

    // MARK: Requests

    func multicast(_ bytes: [UInt8]) async throws {
        let start = Self.now()
        var delay: UInt64 = 500_000
        while true {
            if try trySend(bytes) { return }
            guard Self.now() - start < Self.tryAgainLimit else {
                throw CPGError.call(function: "cpg_mcast_joined", error: CSError(CS_ERR_TRY_AGAIN))
            }
            try await Task.sleep(nanoseconds: delay)
            delay = min(delay * 2, 50_000_000)
        }
    }

    func trySend(_ bytes: [UInt8]) throws -> Bool {
        guard bytes.count <= maxMessageSize else {
            throw CPGError.messageTooBig(size: bytes.count, limit: maxMessageSize)
        }
        let result = try requests.withLock { _ -> cs_error_t in
            if let error = state.withLock({ $0.phase.sendError }) { throw error }
            return bytes.withUnsafeBytes { buffer in
                var byte: UInt8 = 0
                return withUnsafeMutablePointer(to: &byte) { empty in
                    var vector = iovec(
                        iov_base: buffer.baseAddress.map { UnsafeMutableRawPointer(mutating: $0) }
                            ?? UnsafeMutableRawPointer(empty),
                        iov_len: buffer.count)
                    return api.cpg_mcast_joined(cpgHandle, CPG_TYPE_AGREED, &vector, 1)
                }
            }
        }
        if result == CS_OK { return true }
        guard result == CS_ERR_TRY_AGAIN else {
            throw CPGError.call(function: "cpg_mcast_joined", error: CSError(result))
        }
        return false
    }

    func leave() {
        let proceed = state.withLock { $0.phase.next(.leave(deadline: Self.now() + Self.leaveGrace)) }
        guard proceed else { return }
        requests.withLock { _ in
            var name = cpg_name()
            Self.fill(&name, groupName)
            var result = api.cpg_leave(cpgHandle, &name)
            var tries = 0
            while result == CS_ERR_TRY_AGAIN, tries < 100 {
                usleep(10_000)
                tries += 1
                result = api.cpg_leave(cpgHandle, &name)
            }
        }
        // The loop now waits with a timeout: wake it so it sees the deadline.
        loop.wake()
    }

    func close() {
        guard state.withLock({ $0.phase.next(.close) }) else { return }
        // From another thread, this returns once the loop will not dispatch this connection again.
        loop.remove(self)
        if ownsLoop { loop.stop() }
        requests.withLock { _ in
            _ = api.cpg_finalize(cpgHandle)
            if let quorumHandle { _ = api.votequorum_finalize(quorumHandle) }
        }
        finish(.finalized)
    }
}

/// votequorum's view of this node, read once without joining any group: what the service checks
/// before it joins (`CorosyncTransport.waitForQuorumIfWaitingForAll`).
public struct VotequorumStatus: Sendable, Hashable {
    /// votequorum's quorate flag for this node.
    public var quorate: Bool
    /// `wait_for_all` is in force (set, or implied by `two_node`).
    public var waitForAll: Bool
    /// `two_node: 1`.
    public var twoNode: Bool

    public init(quorate: Bool, waitForAll: Bool, twoNode: Bool) {
        self.quorate = quorate
        self.waitForAll = waitForAll
        self.twoNode = twoNode
    }

    /// Reads it: cpg_local_get for this node's id, votequorum_getinfo for its flags. Throws
    /// `CPGError.notRunning` when corosync is not running.
    public static func read() throws -> VotequorumStatus {
        let api = try CorosyncLibrary.shared()
        var cpg: cpg_handle_t = 0
        var model = cpg_model_v1_data_t()
        model.model = CPG_MODEL_V1
        let initialized = withUnsafeMutablePointer(to: &model) { pointer in
            api.cpg_model_initialize(
                &cpg, CPG_MODEL_V1, UnsafeMutableRawPointer(pointer).assumingMemoryBound(to: cpg_model_data_t.self), nil
            )
        }
        guard initialized == CS_OK else {
            throw CPGError.notRunning(function: "cpg_model_initialize", error: CSError(initialized))
        }
        defer { _ = api.cpg_finalize(cpg) }
        var nodeID: UInt32 = 0
        let got = api.cpg_local_get(cpg, &nodeID)
        guard got == CS_OK else { throw CPGError.call(function: "cpg_local_get", error: CSError(got)) }
        var quorum: votequorum_handle_t = 0
        var quorumCallbacks = votequorum_callbacks_t()
        let opened = api.votequorum_initialize(&quorum, &quorumCallbacks)
        guard opened == CS_OK else {
            throw CPGError.notRunning(function: "votequorum_initialize", error: CSError(opened))
        }
        defer { _ = api.votequorum_finalize(quorum) }
        var info = votequorum_info()
        let read = api.votequorum_getinfo(quorum, nodeID, &info)
        guard read == CS_OK else { throw CPGError.call(function: "votequorum_getinfo", error: CSError(read)) }
        return VotequorumStatus(
            quorate: info.flags & UInt32(VOTEQUORUM_INFO_QUORATE) != 0,
            waitForAll: info.flags & UInt32(VOTEQUORUM_INFO_WAIT_FOR_ALL) != 0,
            twoNode: info.flags & UInt32(VOTEQUORUM_INFO_TWONODE) != 0)
    }
}

/// votequorum's flag as a configuration change is delivered, checked against the ring it goes
/// with: a ring whose nodes' votes (this node's each, with a quorum device's) are fewer than the
/// quorum is not quorate, whatever a flag not yet updated says. Not applied with
/// last_man_standing or auto_tie_breaker, which make a smaller ring quorate on purpose.
struct QuorumReading: Equatable {
    var flag: Bool
    var quorum: UInt32
    var nodeVotes: UInt32
    var qdeviceVotes: UInt32
    /// last_man_standing or auto_tie_breaker is on.
    var smallerRingMayBeQuorate: Bool

    init(
        flag: Bool, quorum: UInt32, nodeVotes: UInt32 = 1, qdeviceVotes: UInt32 = 0,
        smallerRingMayBeQuorate: Bool = false
    ) {
        self.flag = flag
        self.quorum = quorum
        self.nodeVotes = nodeVotes
        self.qdeviceVotes = qdeviceVotes
        self.smallerRingMayBeQuorate = smallerRingMayBeQuorate
    }

    init(_ info: votequorum_info) {
        let rules = UInt32(VOTEQUORUM_INFO_LAST_MAN_STANDING) | UInt32(VOTEQUORUM_INFO_AUTO_TIE_BREAKER)
        self.init(
            flag: info.flags & UInt32(VOTEQUORUM_INFO_QUORATE) != 0, quorum: info.quorum, nodeVotes: info.node_votes,
            qdeviceVotes: info.qdevice_votes, smallerRingMayBeQuorate: info.flags & rules != 0)
    }

    /// Whether a ring of `ring` nodes (0: not known yet) is quorate by this reading.
    func quorate(ring: Int) -> Bool {
        guard flag, ring > 0, quorum > 0, !smallerRingMayBeQuorate else { return flag }
        return UInt64(ring) * UInt64(max(1, nodeVotes)) + UInt64(qdeviceVotes) >= UInt64(quorum)
    }
}
