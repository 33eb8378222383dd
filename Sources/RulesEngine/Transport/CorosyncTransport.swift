import Foundation
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

    private let connection: CPGConnection
    private let membership: Mutex<EngineMembership>
    private let deliveryOut: AsyncStream<Delivery>.Continuation
    private let noticeOut: AsyncStream<TransportNotice>.Continuation
    private let outgoing: AsyncStream<Outgoing>.Continuation
    private let formTimeout: Double
    private let quorate = Mutex(true)

    public var isQuorate: Bool { quorate.withLock { $0 } }

    /// Connects to the local corosync and joins `group`; throws when corosync is not running.
    public init(info: EngineInfo, group: String, formTimeout: Double = 5) throws {
        node = info.node
        self.formTimeout = formTimeout
        connection = try CPGConnection(group: group)
        address = connection.local
        membership = Mutex(EngineMembership(local: connection.local, info: info))
        (deliveries, deliveryOut) = AsyncStream<Delivery>.makeStream()
        (notices, noticeOut) = AsyncStream<TransportNotice>.makeStream()
        let (outgoingStream, outgoing) = AsyncStream<Outgoing>.makeStream()
        self.outgoing = outgoing
        let connection = self.connection
        let noticeOut = self.noticeOut
        // One sender, so that this engine's messages go out in the order they were made.
        Task {
            for await item in outgoingStream {
                switch item {
                case .bytes(let bytes):
                    do {
                        try await connection.multicast(bytes)
                    } catch {
                        noticeOut.yield(.warning("corosync: a message of \(bytes.count) bytes was not sent: \(error)"))
                    }
                case .leave:
                    connection.leave()
                }
            }
        }
        perform(membership.withLock { $0.start() })
        Task { [self] in
            for await event in connection.events { receive(event) }
            deliveryOut.finish()
            noticeOut.finish()
            outgoing.finish()
        }
    }

    deinit {
        connection.close()
    }

    public func multicast(_ message: ClusterMessage) async {
        outgoing.yield(.bytes(WireFormat.encode(.cluster(message))))
    }

    public func leave() async {
        outgoing.yield(.leave)
    }

    public func announce(_ info: EngineInfo) async {
        perform(membership.withLock { $0.announce(info) })
    }

    private func receive(_ event: CPGEvent) {
        switch event {
        case .quorum(let now):
            // Set before the configuration change that comes with it is handed out (the
            // connection reports the flag first).
            quorate.withLock { $0 = now }
            noticeOut.yield(.quorum(now))
        case .lost(let reason):
            fail("the connection to corosync is lost (\(reason)): this node runs nothing until it is restarted")
        case .configuration, .message:
            // Under the lock: the coordinator gets the deliveries in the order they were made.
            membership.withLock { state in
                let outputs = state.handle(event)
                perform(outputs, state: state)
            }
        }
    }

    private func perform(_ outputs: [EngineMembership.Output]) {
        membership.withLock { perform(outputs, state: $0) }
    }

    private func perform(_ outputs: [EngineMembership.Output], state: EngineMembership) {
        for output in outputs {
            switch output {
            case .deliver(let delivery):
                deliveryOut.yield(delivery)
            case .send(let message):
                outgoing.yield(.bytes(WireFormat.encode(message)))
            case .startFormTimer:
                let timeout = formTimeout
                Task { [weak self] in
                    try? await Task.sleep(for: .seconds(timeout))
                    guard let self else { return }
                    self.perform(self.membership.withLock { $0.formTimerFired() })
                }
            case .enginesChanged:
                noticeOut.yield(.engines(state.members, differences: state.digestDifferences))
            case .warning(let text):
                noticeOut.yield(.warning(text))
            case .fatal(let reason):
                fail(reason)
            }
        }
    }

    private func fail(_ reason: String) {
        noticeOut.yield(.fatal(reason))
        noticeOut.finish()
        deliveryOut.finish()
        outgoing.finish()
        connection.close()
    }
}
