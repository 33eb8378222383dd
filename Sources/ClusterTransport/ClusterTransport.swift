import RulesEngine

/// Ordered group messaging and membership: what a node's service needs of the cluster.
///
/// Every member gets the same deliveries (messages and membership changes) in the same order;
/// each sender's messages in the order sent. Two implementations: `LoopbackTransport`, in
/// process (one node for the embedded default, or several for tests), and Corosync CPG.
public protocol ClusterTransport: Sendable {
    /// This node.
    var node: ClusterNode { get }
    /// The deliveries for this node, starting with the membership change that shows it joined.
    var deliveries: AsyncStream<Delivery> { get }
    /// Sends `message` to every member, this node included, in agreed order.
    func multicast(_ message: ClusterMessage) async
    /// Leaves the group after what this node has sent is delivered.
    func leave() async
    /// Quorum, engines and warnings; see `TransportNotice`.
    var notices: AsyncStream<TransportNotice> { get }
    /// Tells the other engines this node's configuration digest changed.
    func announce(_ info: EngineInfo) async
    /// The quorum flag as of the latest delivery handed out: read when a delivery is applied,
    /// so that a membership change that loses quorum never starts a segment. (`notices` also
    /// reports changes, but on a stream of its own, in no set order with the deliveries.)
    var isQuorate: Bool { get }
    /// The wire version the group agreed on (`WireAgreement`); nil when the transport has no
    /// other engines to agree with (in-process: this build's newest version).
    var wireAgreement: WireAgreement? { get }
    /// Sends `message` from the caller's thread without waiting, in the order of the calls
    /// (and after what `multicast` sent before), when the transport can; false when it cannot,
    /// and the caller uses `multicast`.
    func sendWithoutWaiting(_ message: ClusterMessage) -> Bool
    /// The thread this transport takes its deliveries on, when it has one (Corosync's dispatch):
    /// the service's actor then runs there too, and takes them with `deliverDirectly`.
    var eventLoop: EventLoopThread? { get }
    /// Called once, on `eventLoop`'s thread: from now on each delivery goes to `handler`, on that
    /// thread, in order (those held until now first), instead of to `deliveries`; `deliveries`
    /// still ends when they end.
    func deliverDirectly(_ handler: @escaping @Sendable (Delivery) -> Void)
}

/// The in-process group that `LoopbackTransport`s share: a `LoopbackGroup` behind an actor,
/// pushing each delivery to the members' streams as soon as it is sequenced.
public actor LoopbackHub {
    private var group: LoopbackGroup
    private var streams: [ClusterNode: AsyncStream<Delivery>.Continuation] = [:]

    /// With a seed, which sender's message is sequenced next is random (see `LoopbackGroup`).
    public init(seed: UInt64? = nil) {
        group = LoopbackGroup(members: [], seed: seed)
    }

    /// Joins `node` to the group; its deliveries start with the membership change of its join.
    public func join(_ node: ClusterNode) -> LoopbackTransport {
        let (stream, continuation) = AsyncStream<Delivery>.makeStream()
        streams[node] = continuation
        group.join(node)
        pump()
        return LoopbackTransport(node: node, hub: self, deliveries: stream)
    }

    func multicast(from node: ClusterNode, _ message: ClusterMessage) {
        group.multicast(from: node, message)
        pump()
    }

    func leave(_ node: ClusterNode) {
        group.leave(node)
        pump()
        streams.removeValue(forKey: node)?.finish()
    }

    /// The node is gone at once, as a crashed process: what it had not sent is lost.
    public func crash(_ node: ClusterNode) {
        group.crash(node)
        streams.removeValue(forKey: node)?.finish()
        pump()
    }

    public var members: [ClusterNode] { group.members }

    private func pump() {
        while let (delivery, recipients) = group.next() {
            for recipient in recipients {
                streams[recipient]?.yield(delivery)
            }
        }
    }
}

/// One node's end of a `LoopbackHub`.
public struct LoopbackTransport: ClusterTransport {
    public let node: ClusterNode
    let hub: LoopbackHub
    public let deliveries: AsyncStream<Delivery>

    /// A one-node cluster of its own: the embedded default.
    public static func alone(_ node: ClusterNode) async -> LoopbackTransport {
        await LoopbackHub().join(node)
    }

    public func multicast(_ message: ClusterMessage) async {
        await hub.multicast(from: node, message)
    }

    public func leave() async {
        await hub.leave(node)
    }
}

/// What a transport tells its node beside the ordered deliveries.
public enum TransportNotice: Sendable, Hashable {
    /// The quorum flag (votequorum's): recovery programs run only while it is true.
    case quorum(Bool)
    /// The engines of the cluster with what they announced, and how their configurations differ
    /// from this node's (one line per differing node, naming the files).
    case engines([EngineEntry], differences: [String])
    /// For the log and the journal.
    case warning(String)
    /// The wire version the group agreed on changed (`WireAgreement.summary`: log and journal).
    case wire(WireAgreement)
    /// The node cannot go on (corosync went away, a merge lost): the service exits non-zero
    /// for systemd to restart it. The deliveries end after this.
    case fatal(String)
}

extension ClusterTransport {
    /// In-process transports have nothing to report: always quorate, no other engines.
    public var notices: AsyncStream<TransportNotice> {
        AsyncStream { $0.finish() }
    }

    /// Announces a new digest of this node's configuration (after a reload).
    public func announce(_ info: EngineInfo) async {}

    public var isQuorate: Bool { true }

    /// In-process transports speak this build's newest version only.
    public var wireAgreement: WireAgreement? { nil }

    public func sendWithoutWaiting(_ message: ClusterMessage) -> Bool { false }

    public var eventLoop: EventLoopThread? { nil }

    public func deliverDirectly(_ handler: @escaping @Sendable (Delivery) -> Void) {}
}
