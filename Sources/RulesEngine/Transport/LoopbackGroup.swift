/// An in-process process group with the guarantees of Corosync CPG's agreed order: every
/// member is delivered the same messages and membership changes in the same order, each
/// sender's messages in the order it sent them, and a member that crashes loses the messages
/// it had not yet sent.
///
/// Synchronous and deterministic. With a seed, the scheduler picks which sender's next message
/// is sequenced at random, which delays some senders behind others; without one, messages are
/// sequenced in the order they were sent.
public struct LoopbackGroup: Sendable {
    public private(set) var members: [ClusterNode] = []
    private var view = 0
    /// Messages sent but not yet sequenced, per sender, with their send order.
    private var outboxes: [ClusterNode: [(sequence: Int, message: ClusterMessage)]] = [:]
    private var sent = 0
    /// Deliveries already sequenced, with their recipients, ahead of the outboxes.
    private var sequenced: [(delivery: Delivery, recipients: [ClusterNode])] = []
    private var random: SeededGenerator?

    public init(members: [ClusterNode] = [], seed: UInt64? = nil) {
        self.members = members.sorted()
        self.random = seed.map(SeededGenerator.init(seed:))
    }

    /// Nothing is waiting to be delivered.
    public var isIdle: Bool { sequenced.isEmpty && outboxes.values.allSatisfy(\.isEmpty) }

    /// Queues `message` from `sender`; ignored when the sender is not a member.
    public mutating func multicast(from sender: ClusterNode, _ message: ClusterMessage) {
        guard members.contains(sender) else { return }
        sent += 1
        outboxes[sender, default: []].append((sent, message))
    }

    public mutating func join(_ node: ClusterNode) {
        guard !members.contains(node) else { return }
        members = (members + [node]).sorted()
        changeMembership(joined: [node], left: [])
    }

    /// The node is gone at once; what it had not sent is lost.
    public mutating func crash(_ node: ClusterNode) {
        guard members.contains(node) else { return }
        outboxes[node] = nil
        members.removeAll { $0 == node }
        changeMembership(joined: [], left: [node])
    }

    /// The node leaves after what it has sent is delivered.
    public mutating func leave(_ node: ClusterNode) {
        guard members.contains(node) else { return }
        for pending in outboxes[node] ?? [] {
            sequenced.append((.message(from: node, pending.message), members))
        }
        outboxes[node] = nil
        members.removeAll { $0 == node }
        changeMembership(joined: [], left: [node])
    }

    private mutating func changeMembership(joined: [ClusterNode], left: [ClusterNode]) {
        view += 1
        let change = MembershipChange(view: view, members: members, joined: joined, left: left)
        sequenced.append((.membership(change), members))
    }

    /// The next delivery and the members it goes to, or nil when nothing is waiting.
    public mutating func next() -> (delivery: Delivery, recipients: [ClusterNode])? {
        if !sequenced.isEmpty { return sequenced.removeFirst() }
        let senders = outboxes.filter { !$0.value.isEmpty }.keys.sorted()
        guard !senders.isEmpty else { return nil }
        let sender: ClusterNode
        if var generator = random {
            sender = senders[Int(generator.next() % UInt64(senders.count))]
            random = generator
        } else {
            sender = senders.min { outboxes[$0]![0].sequence < outboxes[$1]![0].sequence }!
        }
        let message = outboxes[sender]!.removeFirst().message
        return (.message(from: sender, message), members)
    }
}
