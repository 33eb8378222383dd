/// An in-process process group with the guarantees of Corosync CPG's agreed order: every
/// member is delivered the same messages and membership changes in the same order, each
/// sender's messages in the order it sent them, and a member that crashes loses the messages
/// it had not yet sent.
///
/// Synchronous and deterministic. With a seed, the scheduler picks which sender's next message
/// is sequenced at random, which delays some senders behind others; without one, messages are
/// sequenced in the order they were sent.
///
/// Partitions as Corosync makes them: each part is a group of its own (its members see the
/// others leave; a message reaches the sender's part only), with votequorum's rule (a part is
/// quorate when it holds more than half of the members there were when the split began; a part
/// that loses quorum is told before the change that loses it). A heal applies the merge rule of
/// `EngineMembership`: the part with the most members (on a tie, the one with the lowest node
/// number) stays and is told who was alive elsewhere (`Delivery.merged`), then regains quorum;
/// the members of the other parts are gone (their engines stop, to start afresh and join).
public struct LoopbackGroup: Sendable {
    public private(set) var members: [ClusterNode] = []
    /// The part each member is in; every member is in part 0 when there is no partition.
    public private(set) var part: [ClusterNode: Int] = [:]
    /// The members at the split (votequorum's expected votes); nil when there is no partition.
    public private(set) var expectedVotes: Int?
    private var quorateParts: Set<Int> = [0]
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
        for member in members { part[member] = 0 }
    }

    /// Whether the group is split.
    public var isPartitioned: Bool { expectedVotes != nil }

    /// The members of `node`'s part (of the whole group when there is no partition).
    public func partMembers(of node: ClusterNode) -> [ClusterNode] {
        guard let index = part[node] else { return [] }
        return members.filter { part[$0] == index }
    }

    /// Whether `node`'s part has quorum.
    public func isQuorate(_ node: ClusterNode) -> Bool {
        part[node].map { quorateParts.contains($0) } ?? false
    }

    /// Splits the members into `parts` (members named in none form one more part together).
    /// Parts only split until a heal: a second cut divides the parts there are (members of
    /// different parts stay apart), and quorum still counts the members there were at the first.
    public mutating func partition(_ parts: [[ClusterNode]]) {
        var groups = parts.map { $0.filter(members.contains) }.filter { !$0.isEmpty }
        let rest = members.filter { member in !groups.contains { $0.contains(member) } }
        if !rest.isEmpty { groups.append(rest) }
        var cuts: [[ClusterNode]] = []
        for group in groups {
            for old in Set(group.compactMap { part[$0] }).sorted() {
                cuts.append(group.filter { part[$0] == old }.sorted())
            }
        }
        guard cuts.count > Set(members.compactMap { part[$0] }).count else { return }
        if expectedVotes == nil { expectedVotes = members.count }
        let before = part
        let quorateBefore = quorateParts
        quorateParts = []
        for (index, cut) in cuts.enumerated() {
            for member in cut { part[member] = index }
        }
        for (index, cut) in cuts.enumerated() {
            let old = before[cut[0]]!
            let quorate = cut.count * 2 > expectedVotes!
            if quorate { quorateParts.insert(index) }
            // votequorum reports the loss before the configuration change that loses it.
            if quorateBefore.contains(old) && !quorate { sequenced.append((.quorum(false), cut)) }
            let left = members.filter { before[$0] == old && part[$0] != index }
            if !left.isEmpty { changeMembership(in: index, joined: [], left: left) }
        }
    }

    /// Heals every partition: the winning part goes on, the others' members are gone. Returns
    /// those members (their engines stopped).
    public mutating func heal() -> [ClusterNode] {
        guard isPartitioned else { return [] }
        let parts = Set(members.compactMap { part[$0] }).sorted()
        guard !parts.isEmpty else {
            // Every member is gone: nothing to merge; the next to start finds the group whole.
            expectedVotes = nil
            quorateParts = [0]
            return []
        }
        let winner = parts.max { a, b in
            let (mine, theirs) = (members.filter { part[$0] == a }, members.filter { part[$0] == b })
            return EngineMembership.otherSideWins(theirs: theirs, ours: mine)
        }!
        let losers = members.filter { part[$0] != winner }
        for loser in losers {
            outboxes[loser] = nil
            part[loser] = nil
        }
        members.removeAll { losers.contains($0) }
        let stays = members
        if !losers.isEmpty { sequenced.append((.merged(alive: losers), stays)) }
        for member in members { part[member] = 0 }
        let wasQuorate = quorateParts.contains(winner)
        expectedVotes = nil
        quorateParts = [0]
        if !wasQuorate { sequenced.append((.quorum(true), stays)) }
        return losers
    }

    /// Quorum of `index` by votequorum's rule, with the change delivered to its members.
    private mutating func updateQuorum(part index: Int) {
        let count = members.count { part[$0] == index }
        let quorate = expectedVotes.map { count * 2 > $0 } ?? true
        guard quorate != quorateParts.contains(index) else { return }
        if quorate { quorateParts.insert(index) } else { quorateParts.remove(index) }
        sequenced.append((.quorum(quorate), members.filter { part[$0] == index }))
    }

    /// Nothing is waiting to be delivered.
    public var isIdle: Bool { sequenced.isEmpty && outboxes.values.allSatisfy(\.isEmpty) }

    /// Queues `message` from `sender`; ignored when the sender is not a member.
    public mutating func multicast(from sender: ClusterNode, _ message: ClusterMessage) {
        guard members.contains(sender) else { return }
        sent += 1
        outboxes[sender, default: []].append((sent, message))
    }

    /// The node starts and joins (while split: the first part).
    public mutating func join(_ node: ClusterNode) {
        guard !members.contains(node) else { return }
        members = (members + [node]).sorted()
        part[node] = 0
        // Started in a part without quorum: it knows before anything is delivered to it.
        if !quorateParts.contains(0) { sequenced.append((.quorum(false), [node])) }
        changeMembership(in: 0, joined: [node], left: [])
        updateQuorum(part: 0)
    }

    /// The node is gone at once; what it had not sent is lost.
    public mutating func crash(_ node: ClusterNode) {
        guard members.contains(node), let index = part[node] else { return }
        outboxes[node] = nil
        members.removeAll { $0 == node }
        part[node] = nil
        updateQuorum(part: index)
        changeMembership(in: index, joined: [], left: [node])
    }

    /// The node leaves after what it has sent is delivered.
    public mutating func leave(_ node: ClusterNode) {
        guard members.contains(node), let index = part[node] else { return }
        let recipients = partMembers(of: node)
        for pending in outboxes[node] ?? [] {
            sequenced.append((.message(from: node, pending.message), recipients))
        }
        outboxes[node] = nil
        members.removeAll { $0 == node }
        part[node] = nil
        updateQuorum(part: index)
        changeMembership(in: index, joined: [], left: [node])
    }

    private mutating func changeMembership(in index: Int, joined: [ClusterNode], left: [ClusterNode]) {
        view += 1
        let inPart = members.filter { part[$0] == index }
        let change = MembershipChange(view: view, members: inPart, joined: joined, left: left)
        sequenced.append((.membership(change), inPart))
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
        return (.message(from: sender, message), partMembers(of: sender))
    }
}
