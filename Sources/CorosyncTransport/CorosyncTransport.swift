import ClusterTransport
import Foundation
import RulesEngine
import Synchronization

/// The cluster over Corosync: a CPG group (extended virtual synchrony: every member sees the
/// messages and configuration changes in one order), engines told apart by `EngineMembership`,
/// quorum from votequorum.
///
/// When corosync goes away, or this node's partition lost a merge, the transport reports
/// `.fatal` and ends its deliveries: the service runs nothing more and exits non-zero, and
/// systemd restarts it (`Restart=on-failure`), which joins the cluster afresh once corosync is
/// back. Reconnecting in place would need the cluster's state again anyway; a fresh start is
/// the one path that is tested.
public final class CorosyncTransport: ClusterTransport {
    public let node: ClusterNode
    public let deliveries: AsyncStream<Delivery>
    public let notices: AsyncStream<TransportNotice>
    /// The CPG address of this engine.
    public let address: CPGAddress

    private enum Outgoing: Sendable {
        case bytes([UInt8])
        case leave
    }

    /// What waits to be sent, in order, while corosync says CS_ERR_TRY_AGAIN.
    private struct Sending {
        var queue: [Outgoing] = []
        var retrying = false
        var ended = false
    }

    private let connection: CPGConnection
    private let membership: Mutex<EngineMembership>
    private let deliveryOut: AsyncStream<Delivery>.Continuation
    private let noticeOut: AsyncStream<TransportNotice>.Continuation
    private let sending = Mutex(Sending())
    private let formTimeout: Double
    private let quorate = Mutex(true)
    /// With a loop: the deliveries, held until `deliverDirectly` and then handed to its handler.
    private struct Direct {
        var handler: (@Sendable (Delivery) -> Void)?
        var held: [Delivery] = []
        var draining = false
    }
    private let direct = Mutex(Direct())
    public let eventLoop: EventLoopThread?

    public var isQuorate: Bool { quorate.withLock { $0 } }

    /// How long a message may meet CS_ERR_TRY_AGAIN before it is dropped with a warning.
    private static let tryAgainLimit: Duration = .seconds(30)

    /// Connects to the local corosync and joins `group`; throws when corosync is not running.
    ///
    /// The connection's events are handled on its dispatch thread (the membership's state is
    /// behind a lock), and messages go out from the caller's thread: from a command's end to
    /// corosync, and from corosync to the service's actor, no task of the transport's own sits
    /// in between. With `loop`, the dispatch thread is that loop, where the service's actor runs
    /// as well: a delivery is applied on the thread that took it from corosync. The deliveries
    /// are then held until the service on that loop calls `deliverDirectly` (and `deliveries`
    /// only ends); without a loop they go to `deliveries`.
    public init(info: EngineInfo, group: String, formTimeout: Double = 5, loop: EventLoopThread? = nil) throws {
        node = info.node
        self.formTimeout = formTimeout
        eventLoop = loop
        (deliveries, deliveryOut) = AsyncStream<Delivery>.makeStream()
        (notices, noticeOut) = AsyncStream<TransportNotice>.makeStream()
        // The handler needs `self`, which exists only once the connection does: it reaches it
        // through this box, filled before anything is delivered that matters (the dispatch
        // thread may run before; what comes before `self` is set is held back in the box).
        let box = TransportBox()
        connection = try CPGConnection(group: group, loop: loop) { event in box.receive(event) }
        address = connection.local
        membership = Mutex(EngineMembership(local: connection.local, info: info))
        perform(membership.withLock { $0.start() })
        box.attach(self)
    }

    deinit {
        connection.close()
    }

    public func multicast(_ message: ClusterMessage) async {
        send(.cluster(message), in: agreed.version)
    }

    public func sendWithoutWaiting(_ message: ClusterMessage) -> Bool {
        send(.cluster(message), in: agreed.version)
        return true
    }

    /// The wire version the group agreed on as of the latest change this engine applied.
    public var wireAgreement: WireAgreement? { agreed }
    private var agreed: WireAgreement { membership.withLock { $0.wire } }

    /// Messages not sent because they need a higher wire version than the one agreed.
    public var droppedForWire: Int { dropped.withLock { $0 } }
    private let dropped = Mutex(0)

    /// Sends `message` in `version`, or drops it (a warning) when it needs a higher one.
    private func send(_ message: WireMessage, in version: Int) {
        guard let bytes = WireFormat.encode(message, agreed: UInt8(clamping: version)) else {
            let count = dropped.withLock { count -> Int in
                count += 1
                return count
            }
            noticeOut.yield(
                .warning(
                    "not sent: \(Self.describe(message)) needs wire version \(WireFormat.lowestVersion(for: message)), and the cluster agreed on \(version) (\(count) dropped so far)"
                ))
            return
        }
        send(.bytes(bytes))
    }

    private static func describe(_ message: WireMessage) -> String {
        if case .cluster(.resume(_, let mode?, _)) = message { return "resume \(mode.option)" }
        return "a message"
    }

    public func leave() async {
        send(.leave)
    }

    public func deliverDirectly(_ handler: @escaping @Sendable (Delivery) -> Void) {
        direct.withLock { $0.handler = handler }
        drainHeld()
    }

    /// Hands `delivery` on: to the stream, or, with a loop, to the direct handler on the loop's
    /// thread. Called in the deliveries' order (under the membership's lock); the handler is
    /// called outside it (`drainHeld`).
    private func hand(_ delivery: Delivery) {
        guard eventLoop != nil else {
            deliveryOut.yield(delivery)
            return
        }
        direct.withLock { $0.held.append(delivery) }
    }

    /// On the loop's thread: the held deliveries to the handler, in order. A call from inside the
    /// handler returns at once: the outer call hands what was added meanwhile.
    private func drainHeld() {
        guard let loop = eventLoop else { return }
        guard loop.isCurrent else {
            loop.execute { self.drainHeld() }
            return
        }
        let start = direct.withLock { direct -> Bool in
            guard direct.handler != nil, !direct.draining else { return false }
            direct.draining = true
            return true
        }
        guard start else { return }
        while true {
            let (handler, batch) = direct.withLock { direct -> ((@Sendable (Delivery) -> Void)?, [Delivery]) in
                guard !direct.held.isEmpty else {
                    direct.draining = false
                    return (nil, [])
                }
                defer { direct.held = [] }
                return (direct.handler, direct.held)
            }
            guard let handler else { return }
            for delivery in batch { handler(delivery) }
        }
    }

    /// Ends the deliveries, after those held.
    private func endDeliveries() {
        guard let loop = eventLoop else {
            deliveryOut.finish()
            return
        }
        let out = deliveryOut
        loop.execute {
            self.drainHeld()
            out.finish()
        }
    }

    public func announce(_ info: EngineInfo) async {
        perform(membership.withLock { $0.announce(info) })
    }

    // MARK: Sending

    /// Sends `item` now when nothing waits before it, else queues it behind what waits.
    private func send(_ item: Outgoing) {
        let startRetrying = sending.withLock { sending -> Bool in
            guard !sending.ended else { return false }
            if sending.queue.isEmpty, !sending.retrying, attempt(item) { return false }
            sending.queue.append(item)
            guard !sending.retrying else { return false }
            sending.retrying = true
            return true
        }
        if startRetrying { Task { await self.retry() } }
    }

    /// true when done with `item` (sent, or failed and reported); false on CS_ERR_TRY_AGAIN.
    private func attempt(_ item: Outgoing) -> Bool {
        switch item {
        case .bytes(let bytes):
            do {
                return try connection.trySend(bytes)
            } catch {
                noticeOut.yield(.warning("corosync: a message of \(bytes.count) bytes was not sent: \(error)"))
                return true
            }
        case .leave:
            connection.leave()
            return true
        }
    }

    /// Sends what is queued, in order, backing off while corosync says CS_ERR_TRY_AGAIN.
    private func retry() async {
        var delay = Duration.microseconds(500)
        var since = ContinuousClock.now
        while true {
            let (done, progressed) = sending.withLock { sending -> (Bool, Bool) in
                var progressed = false
                while let first = sending.queue.first {
                    guard attempt(first) else { return (false, progressed) }
                    sending.queue.removeFirst()
                    progressed = true
                }
                sending.retrying = false
                return (true, progressed)
            }
            if done { return }
            if progressed {
                since = .now
                delay = .microseconds(500)
            } else if ContinuousClock.now - since > Self.tryAgainLimit {
                let dropped = sending.withLock { $0.queue.isEmpty ? nil : $0.queue.removeFirst() }
                if case .bytes(let bytes) = dropped {
                    noticeOut.yield(
                        .warning("corosync: a message of \(bytes.count) bytes was not sent: CS_ERR_TRY_AGAIN for 30 s"))
                }
                since = .now
            }
            try? await Task.sleep(for: delay)
            delay = min(delay * 2, .milliseconds(50))
        }
    }

    // MARK: Receiving

    /// On the connection's dispatch thread; nil when its events end.
    fileprivate func handle(_ event: CPGEvent?) {
        guard let event else {
            endDeliveries()
            noticeOut.finish()
            sending.withLock { $0.ended = true }
            return
        }
        receive(event)
    }

    private func receive(_ event: CPGEvent) {
        switch event {
        case .lost(let reason):
            fail("the connection to corosync is lost (\(reason)): this node runs nothing until it is restarted")
        case .quorum, .configuration, .message:
            if case .quorum(let now) = event {
                // For `status`; the coordinator gets quorum from the membership, in the
                // deliveries' order (lost at once, regained once the change with it settled).
                quorate.withLock { $0 = now }
                noticeOut.yield(.quorum(now))
            }
            // Under the lock: the coordinator gets the deliveries in the order they were made.
            membership.withLock { state in
                let outputs = state.handle(event)
                perform(outputs, state: state)
            }
            drainHeld()
        }
    }

    private func perform(_ outputs: [EngineMembership.Output]) {
        membership.withLock { perform(outputs, state: $0) }
        drainHeld()
    }

    private func perform(_ outputs: [EngineMembership.Output], state: EngineMembership) {
        for output in outputs {
            switch output {
            case .deliver(let delivery):
                hand(delivery)
            case .send(let message):
                send(message, in: state.wire.version)
            case .startFormTimer:
                afterFormTimeout { $0.formTimerFired() }
            case .startSettleTimer:
                afterFormTimeout { $0.settleTimerFired() }
            case .enginesChanged:
                noticeOut.yield(.engines(state.members, differences: state.digestDifferences))
            case .warning(let text):
                noticeOut.yield(.warning(text))
            case .fatal(let reason):
                fail(reason)
            case .wireAgreed(let agreement):
                noticeOut.yield(.wire(agreement))
            }
        }
    }

    /// Calls `fired` on the membership `form_timeout` from now, and performs what it returns.
    private func afterFormTimeout(_ fired: @escaping @Sendable (inout EngineMembership) -> [EngineMembership.Output]) {
        let timeout = formTimeout
        Task { [weak self] in
            try? await Task.sleep(for: .seconds(timeout))
            guard let self else { return }
            self.perform(self.membership.withLock { fired(&$0) })
        }
    }

    private func fail(_ reason: String) {
        noticeOut.yield(.fatal(reason))
        noticeOut.finish()
        endDeliveries()
        sending.withLock { $0.ended = true }
        // Not from here: this may be the dispatch thread, inside cpg_dispatch.
        let connection = self.connection
        Task { connection.close() }
    }
}

/// Hands the connection's events to the transport once it exists; holds back those that come
/// before (the dispatch thread starts inside the connection's init).
private final class TransportBox: Sendable {
    private struct State {
        weak var transport: CorosyncTransport?
        var attached = false
        var early: [CPGEvent?] = []
    }

    private let state = Mutex(State())

    func receive(_ event: CPGEvent?) {
        let transport = state.withLock { state -> CorosyncTransport? in
            guard state.attached else {
                state.early.append(event)
                return nil
            }
            return state.transport
        }
        transport?.handle(event)
    }

    func attach(_ transport: CorosyncTransport) {
        // The early events are handed over under the lock, so that none overtakes them.
        state.withLock { state in
            for event in state.early { transport.handle(event) }
            state.early = []
            state.transport = transport
            state.attached = true
        }
    }
}
