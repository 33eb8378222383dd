/// Turns a CPG group's configuration changes and messages into the coordinator's deliveries.
///
/// CPG knows members as (node id, pid); the coordinator knows nodes by name and number. An
/// engine becomes a member of the cluster when its `hello` is delivered, at the same place in
/// the agreed order on every engine, and stops being one at the configuration change that
/// shows it left. Processes in the group that never say `hello` (a foreign CPG client) are
/// not members; what they send is dropped with a warning.
///
/// A joining engine does not know who the others are. Every synchronised engine answers a
/// configuration change with joined processes by a `roster`: the view number and the engines
/// as of that change. The joining engine holds everything it receives after its own join
/// until the first roster for that change arrives, takes the roster as its state, and replays
/// what it held: from then on it sees what the others see, in the same order.
///
/// Nobody sends a roster when no engine is synchronised: the first engine of a cluster. An
/// engine alone in the group at its join starts at once. Otherwise (other processes in the
/// group, none answering) it waits `form_timeout`, then multicasts `form`: at the place of
/// `form` in the order, every engine still joining starts an empty cluster and says `hello`
/// again, so that all of them agree on who is in it.
///
/// When two partitions merge, each side's engines see the other side as joined and receive a
/// roster naming themselves. The side with fewer engines (on a tie, the side without the
/// lowest node number) stops with `fatal`: its state is stale, and a fresh start (systemd's
/// restart) joins the cluster the other side holds.
///
/// Deterministic: no clocks, no I/O. `CorosyncTransport` feeds it and carries out its outputs.
public struct EngineMembership: Sendable {
    public enum Output: Sendable, Hashable {
        /// Hand to the coordinator.
        case deliver(Delivery)
        /// Multicast to the group.
        case send(WireMessage)
        /// Call `formTimerFired()` after `form_timeout`.
        case startFormTimer
        /// The engines of the cluster changed (or one announced a new digest).
        case enginesChanged
        /// Something for the log and the journal; nothing to do.
        case warning(String)
        /// This engine must stop (exit for systemd to restart it).
        case fatal(String)
    }

    private enum Held: Sendable {
        case configuration(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress])
        case message(from: CPGAddress, WireMessage)
    }

    public let local: CPGAddress
    public private(set) var info: EngineInfo
    /// Has the cluster's engine view: deliveries flow.
    public private(set) var isSynchronised = false
    /// The engines of the cluster, by CPG address.
    public private(set) var engines: [CPGAddress: EngineInfo] = [:]
    /// Numbers the engine views (the coordinator's `MembershipChange.view`).
    public private(set) var view = 0
    /// The CPG group's members, engines or not.
    public private(set) var groupMembers: [CPGAddress] = []
    private var joinSeen = false
    private var held: [Held] = []
    /// The configuration change this engine joined at: who joined, and the group after it.
    private var ownJoin: (joined: [CPGAddress], group: [CPGAddress])?
    /// The group at that change (what a roster's state is as of).
    private var joinMembers: [CPGAddress] = []

    private func answersOwnJoin(_ roster: Roster) -> Bool {
        guard let ownJoin else { return false }
        return roster.joined == ownJoin.joined && roster.group == ownJoin.group
    }

    public init(local: CPGAddress, info: EngineInfo) {
        self.local = local
        self.info = info
    }

    /// What to send right after joining the group.
    public func start() -> [Output] {
        [.send(.hello(info))]
    }

    /// A new digest (the rules were reloaded): announced to the others.
    public mutating func announce(_ info: EngineInfo) -> [Output] {
        self.info = info
        return [.send(.hello(info))]
    }

    /// `form_timeout` after joining: still no roster.
    public mutating func formTimerFired() -> [Output] {
        guard joinSeen, !isSynchronised else { return [] }
        let others = groupMembers.filter { $0 != local }.map(\.description).joined(separator: " ")
        return [
            .warning("no engine answered this node's join (other group members: \(others)): starting a cluster"),
            .send(.form),
        ]
    }

    /// The engines in node number order.
    public var members: [EngineEntry] {
        engines.map { EngineEntry(address: $0.key, info: $0.value) }.sorted { $0.info.node < $1.info.node }
    }

    // MARK: Input

    public mutating func handle(_ event: CPGEvent) -> [Output] {
        switch event {
        case .configuration(let members, let joined, let left):
            return configurationChanged(members: members, joined: joined, left: left)
        case .message(let from, let bytes):
            guard joinSeen else { return [] }
            let message: WireMessage
            do {
                message = try WireFormat.decode(bytes)
            } catch {
                return [.warning("dropped a message from group member \(from): \(error.description)")]
            }
            return received(message, from: from)
        case .quorum, .lost:
            return []
        }
    }

    private mutating func configurationChanged(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress]) -> [Output] {
        if !joinSeen {
            guard joined.contains(local) else { return [] }
            joinSeen = true
            ownJoin = (joined, members)
            joinMembers = members
            groupMembers = members
            if members == [local] {
                // Alone in the group: the first engine of a new cluster.
                isSynchronised = true
                return []
            }
            return [.startFormTimer]
        }
        guard isSynchronised else {
            groupMembers = members
            held.append(.configuration(members: members, joined: joined, left: left))
            return []
        }
        return applyConfiguration(members: members, joined: joined, left: left)
    }

    private mutating func received(_ message: WireMessage, from: CPGAddress) -> [Output] {
        guard isSynchronised else {
            switch message {
            case .roster(let roster) where answersOwnJoin(roster):
                return adopt(roster)
            case .form:
                return formed()
            default:
                held.append(.message(from: from, message))
                return []
            }
        }
        return apply(message, from: from)
    }

    // MARK: Joining

    private mutating func adopt(_ roster: Roster) -> [Output] {
        view = roster.view
        engines = Dictionary(roster.engines.map { ($0.address, $0.info) }, uniquingKeysWith: { first, _ in first })
        isSynchronised = true
        groupMembers = joinMembers
        let replay = held
        held = []
        var outputs: [Output] = [.enginesChanged]
        for item in replay {
            switch item {
            case .configuration(let members, let joined, let left):
                outputs += applyConfiguration(members: members, joined: joined, left: left)
            case .message(let from, let message):
                outputs += apply(message, from: from)
            }
        }
        return outputs
    }

    private mutating func formed() -> [Output] {
        isSynchronised = true
        view = 0
        engines = [:]
        held = []
        // A roster for this engine's join that comes now is from an engine that was too slow:
        // `merged(with:)` settles which side stays.
        ownJoin = nil
        return [.send(.hello(info))]
    }

    // MARK: Synchronised

    private mutating func applyConfiguration(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress]) -> [Output] {
        groupMembers = members
        var outputs: [Output] = []
        let gone = left.sorted().compactMap { engines.removeValue(forKey: $0) }
        if !gone.isEmpty {
            view += 1
            outputs += deliver(
                .membership(MembershipChange(view: view, members: engines.values.map(\.node), joined: [], left: gone.map(\.node))))
            outputs.append(.enginesChanged)
        }
        if joined.contains(where: { $0 != local }) {
            outputs.append(.send(.roster(Roster(joined: joined, group: members, view: view, engines: self.members))))
        }
        return outputs
    }

    private mutating func apply(_ message: WireMessage, from: CPGAddress) -> [Output] {
        switch message {
        case .hello(let announced):
            return hello(announced, from: from)
        case .roster(let roster):
            guard roster.joined.contains(local), !answersOwnJoin(roster) else { return [] }
            return merged(with: roster)
        case .form:
            return []
        case .cluster(let message):
            guard let sender = engines[from] else {
                return [.warning("dropped a message from group member \(from), which has not announced itself as an engine")]
            }
            return deliver(.message(from: sender.node, message))
        }
    }

    private mutating func hello(_ announced: EngineInfo, from: CPGAddress) -> [Output] {
        if let known = engines[from] {
            guard known.node == announced.node else {
                return [.warning("engine \(from) announced itself as \(announced.node.name) (\(announced.node.number)) but is \(known.node.name) (\(known.node.number)): ignored")]
            }
            engines[from] = announced
            return known == announced ? [] : [.enginesChanged]
        }
        guard groupMembers.contains(from) else { return [] }
        if let clash = engines.first(where: { $0.value.node.name == announced.node.name || $0.value.node.number == announced.node.number }) {
            return [
                .warning(
                    "engine \(from) announced itself as node \(announced.node.name) (\(announced.node.number)), which engine \(clash.key) already is as \(clash.value.node.name) (\(clash.value.node.number)): not admitted"
                )
            ]
        }
        engines[from] = announced
        view += 1
        return deliver(
            .membership(MembershipChange(view: view, members: engines.values.map(\.node), joined: [announced.node], left: [])))
            + [.enginesChanged]
    }

    /// The coordinator's deliveries start with the membership change that admits this engine.
    private func deliver(_ delivery: Delivery) -> [Output] {
        engines[local] != nil ? [.deliver(delivery)] : []
    }

    /// A roster that names this synchronised engine as joining: two partitions merged.
    private func merged(with roster: Roster) -> [Output] {
        let theirs = roster.engines.map(\.info.node)
        let ours = Array(engines.values.map(\.node))
        guard !theirs.isEmpty else { return [] }
        let theirsWins =
            theirs.count > ours.count
            || (theirs.count == ours.count && (theirs.map(\.number).min() ?? .max) < (ours.map(\.number).min() ?? .max))
        guard theirsWins else { return [] }
        let names = { (nodes: [ClusterNode]) in nodes.sorted().map(\.name).joined(separator: " ") }
        return [
            .fatal(
                "this partition (\(names(ours))) merged with a larger one (\(names(theirs))): stopping so that a fresh start takes the cluster's state"
            )
        ]
    }

    // MARK: Configuration agreement

    /// One line per engine whose digest differs from this engine's, naming the files.
    public var digestDifferences: [String] {
        members.filter { $0.address != local && $0.info.digest != info.digest }.map { other in
            let files = info.digest.differingFiles(other.info.digest)
            return "configuration of \(other.info.node.name) differs from \(info.node.name)'s: \(files.isEmpty ? "digest" : files.joined(separator: ", "))"
        }
    }
}
