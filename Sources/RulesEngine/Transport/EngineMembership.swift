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
/// until the first roster for that change arrives, takes the roster as its state, replays
/// what it held, and says `hello` naming the roster's cluster (`cluster`): its admission is
/// where that hello is delivered, and only engines of that cluster admit it.
///
/// Nobody sends a roster when no engine is synchronised: the first engine of a cluster. An
/// engine alone in the group at its join starts at once. Otherwise (other processes in the
/// group, none answering) it waits `form_timeout`, then multicasts `form`: at the place of
/// `form` in the order, every engine still joining starts an empty cluster and says `hello`,
/// so that all of them agree on who is in it.
///
/// When two partitions merge, each side's engines see the other side as joined and receive a
/// roster naming themselves. The side with fewer engines (on a tie, the side without the
/// lowest node number) stops with `fatal`: its state is stale, and a fresh start (systemd's
/// restart) joins the cluster the other side holds. The side that stays is told which nodes
/// were alive on the other side (`Delivery.merged`): their takeovers do not run. Those are the
/// engines the deciding roster names, and every engine of another cluster this cluster heard say
/// hello (`heard`) that is still in the group: an engine admitted on the other side after the
/// change the roster describes is alive too. A roster
/// answers this engine's own join only until the next configuration change; after it, a
/// roster naming this engine as joined is a merge, whatever its lists say.
///
/// Quorum (votequorum's flag, which the connection reports before the configuration change it
/// goes with) reaches the coordinator in the deliveries' order as `Delivery.quorum`. Lost, it
/// is delivered at once. Regained, it is held until a configuration change has been applied
/// and every process that joined in it has said who it is (a `hello`, a roster, a `form`) or
/// left, or `form_timeout` passed (`startSettleTimer`): so quorum that comes back with a heal
/// never lets this side run what it held before the merge rule has decided whether it stays.
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
        /// Call `settleTimerFired()` after `form_timeout`.
        case startSettleTimer
        /// The engines of the cluster changed (or one announced a new digest).
        case enginesChanged
        /// Something for the log and the journal; nothing to do.
        case warning(String)
        /// This engine must stop (exit for systemd to restart it).
        case fatal(String)
        /// The wire version the group agreed on changed (or this engine was just admitted): for
        /// the log and the journal (`WireAgreement.summary`).
        case wireAgreed(WireAgreement)
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
    /// Stopped by `fatal`: nothing more is handled.
    public private(set) var hasStopped = false
    /// The wire version the group speaks (`WireAgreement`): what the transport sends in. Changed
    /// only by configuration changes and hellos, at the same place in the order on every engine.
    public private(set) var wire = WireAgreement(members: [])
    /// The version last reported by `wireAgreed` (nil: none yet, this engine is not admitted).
    private var reportedWire: Int?
    /// votequorum's flag, and the value the coordinator was last given.
    public private(set) var quorumFlag = true
    private var deliveredQuorum = true
    /// Quorum came back: held until a configuration change was applied and those who joined
    /// in it said who they are.
    private struct Regaining {
        var changeApplied = false
        var unsettled: Set<CPGAddress> = []
        var isSettled: Bool { changeApplied && unsettled.isEmpty }
    }
    private var regaining: Regaining?
    /// The engines of other partitions already named in a `merged` delivery.
    private var mergedWith: Set<CPGAddress> = []
    /// This engine formed its cluster by `form` and no configuration change came since.
    private var formedByForm = false
    /// Which cluster this engine is in; nil until it is in one. It starts as a hash of the
    /// founder's CPG address (alone in the group, or by `form`), is taken from the roster by a
    /// joiner, and changes at every configuration change in which engines leave (a hash of it
    /// and of who left): the two sides of a partition differ from the split on. A hello names
    /// it, and an engine admits only a hello that names its own: a hello sent in one part and
    /// delivered after a heal is admitted by its own side only. An engine whose hello was not
    /// yet admitted says hello again when the number changes.
    public private(set) var cluster: UInt64?
    /// Processes that answered with an empty roster (see `merged(with:from:)`).
    private var unanswered: Set<CPGAddress> = []
    /// The engines of the roster this engine took when it joined (a second cluster answering
    /// the join is told apart by them).
    private var adoptedEngines: [EngineEntry] = []
    /// This side as its rosters said, for the last changes that had joiners: what a merge is
    /// decided on (both sides compare their views as of the same change).
    private var viewsAtChanges: [(joined: [CPGAddress], group: [CPGAddress], engines: [EngineEntry])] = []
    /// Processes answered by `answerUnanswered` since the last configuration change (each once).
    private var answered: Set<CPGAddress> = []
    /// Engines of other clusters named alive by their hello since the last configuration change.
    private var namedAlive: Set<CPGAddress> = []
    /// Engines of other clusters heard saying hello (not admitted here) and still in the group:
    /// their nodes are alive. Kept alike on every engine of the cluster: changed only in the
    /// agreed order (a hello, a configuration change), and taken by a joiner from the roster.
    public private(set) var heard: [CPGAddress: EngineInfo] = [:]
    /// The clusters this one beat in a merge, by their numbers as of now (a number follows its
    /// cluster through configuration changes, as `cluster` does): an engine of one that says
    /// hello later is of a side that stops. The latest 8, alike on every engine (a joiner takes
    /// them with the roster).
    public private(set) var beaten: [UInt64] = []
    /// The numbers this cluster had before `cluster`, the latest 8 (a joiner takes them with the
    /// roster): a hello naming one is this cluster's joiner whose hello crossed a change (it
    /// says hello again), not another cluster's engine.
    public private(set) var past: [UInt64] = []
    private var heardEntries: [EngineEntry] {
        heard.map { EngineEntry(address: $0.key, info: $0.value) }.sorted { $0.address < $1.address }
    }

    /// This side as of the latest change in which `address` joined (what its rosters said then),
    /// or nil if it saw no such change.
    private func sideAtJoin(of address: CPGAddress) -> (group: [CPGAddress], engines: [EngineEntry])? {
        viewsAtChanges.last(where: { $0.joined.contains(address) }).map { ($0.group, $0.engines) }
    }

    /// A roster telling the engines in `joined` that this side stays (they stop).
    private func staysRoster(naming joined: [CPGAddress]) -> WireMessage {
        .roster(
            Roster(joined: joined, group: groupMembers, view: view, engines: members, cluster: cluster, stays: true))
    }

    /// A roster naming `joined`, describing this side as of the change in which they joined (the
    /// same view its rosters for that change gave, so that both sides decide a merge on the same
    /// counts), or as of now if this side had no engine then.
    private func rosterAsAtJoin(naming joined: [CPGAddress]) -> WireMessage {
        if let first = joined.first, let then = sideAtJoin(of: first), !then.engines.isEmpty {
            return .roster(
                Roster(joined: joined, group: then.group, view: view, engines: then.engines, cluster: cluster))
        }
        return .roster(Roster(joined: joined, group: groupMembers, view: view, engines: members, cluster: cluster))
    }

    private static func clusterNumber(_ previous: UInt64, _ addresses: [CPGAddress]) -> UInt64 {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ previous
        for address in addresses.sorted() {
            for value in [UInt64(address.nodeID), UInt64(address.pid)] {
                for shift in stride(from: 0, to: 64, by: 8) {
                    hash = (hash ^ ((value >> UInt64(shift)) & 0xFF)) &* 0x100_0000_01B3
                }
            }
        }
        return hash
    }

    /// The members at this engine's join that have been in the group ever since: only their rosters
    /// can answer the join (a member that left and came back saw this engine join again: a heal).
    private var joinAnswerers: Set<CPGAddress> = []
    private func answersOwnJoin(_ roster: Roster, from: CPGAddress) -> Bool {
        guard let ownJoin, joinAnswerers.contains(from) else { return false }
        return roster.joined == ownJoin.joined && roster.group == ownJoin.group
    }

    public init(local: CPGAddress, info: EngineInfo) {
        self.local = local
        self.info = info
        self.info.versions = WireAgreement.versions(of: info)
    }

    /// What to send right after joining the group: nothing yet. The hello goes out once this
    /// engine knows its cluster (alone at its join, a roster adopted, or `form`).
    public func start() -> [Output] {
        []
    }

    /// A new digest (the rules were reloaded): announced to the others.
    public mutating func announce(_ info: EngineInfo) -> [Output] {
        // The versions are the process's: a reload does not change them.
        let (versions, software) = (self.info.versions, self.info.software)
        self.info = info
        self.info.versions = versions
        self.info.software = software
        self.info.cluster = cluster
        return cluster == nil ? [] : [.send(.hello(self.info))]
    }

    /// This engine is in `cluster` from now on: it says hello there.
    private mutating func enter(_ cluster: UInt64) -> [Output] {
        self.cluster = cluster
        info.cluster = cluster
        return [.send(.hello(info))]
    }

    /// `form_timeout` after quorum came back: whoever joined and has not said who it is yet is
    /// taken for a foreign process, and quorum is given to the coordinator.
    public mutating func settleTimerFired() -> [Output] {
        guard !hasStopped, let pending = regaining else { return [] }
        var outputs: [Output] = []
        if !pending.unsettled.isEmpty {
            let names = pending.unsettled.sorted().map(\.description).joined(separator: " ")
            outputs.append(
                .warning(
                    "quorum is back, and group members \(names) said nothing since they joined: taken for foreign processes"
                ))
        }
        regaining = nil
        return outputs + syncQuorum()
    }

    /// `form_timeout` after joining: still no roster.
    public mutating func formTimerFired() -> [Output] {
        guard !hasStopped, joinSeen, !isSynchronised else { return [] }
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
        let outputs = handleEvent(event)
        guard !hasStopped else { return outputs }
        return outputs + agreeOnWire()
    }

    /// The wire version every group member speaks, as of now (`WireAgreement`): engines and
    /// engines heard from other clusters by what they announced, other members as the oldest.
    /// Reported when it changes, once this engine is admitted.
    private mutating func agreeOnWire() -> [Output] {
        wire = WireAgreement(
            members: groupMembers.map { address in
                guard let known = engines[address] ?? heard[address] else {
                    return WireAgreement.Member(address: address, name: nil, versions: [WireAgreement.oldest])
                }
                return WireAgreement.Member(
                    address: address, name: known.node.name, versions: WireAgreement.versions(of: known))
            })
        guard engines[local] != nil, reportedWire != wire.version else { return [] }
        reportedWire = wire.version
        return [.wireAgreed(wire)]
    }

    /// `info` with the versions it speaks filled in (an engine of an earlier build sends none).
    private static func withVersions(_ info: EngineInfo) -> EngineInfo {
        var info = info
        info.versions = WireAgreement.versions(of: info)
        return info
    }

    private static func withVersions(_ entries: [EngineEntry]) -> [EngineEntry] {
        entries.map { EngineEntry(address: $0.address, info: withVersions($0.info)) }
    }

    private mutating func handleEvent(_ event: CPGEvent) -> [Output] {
        guard !hasStopped else { return [] }
        let wasAdmitted = engines[local] != nil
        var outputs: [Output]
        switch event {
        case .configuration(let members, let joined, let left):
            outputs = configurationChanged(members: members, joined: joined, left: left)
        case .message(let from, let bytes):
            guard joinSeen else { return [] }
            let message: WireMessage
            do {
                message = try WireFormat.decode(bytes, accepting: (info.versions ?? []).map { UInt8($0) })
            } catch {
                return [.warning("dropped a message from group member \(from): \(error.description)")]
            }
            outputs = received(message, from: from)
        case .quorum(let quorate):
            outputs = quorumReported(quorate)
        case .lost:
            return []
        }
        if outputs.contains(where: { if case .fatal = $0 { true } else { false } }) {
            hasStopped = true
            return outputs
        }
        // Admitted without quorum (started in a partition): the coordinator knows it before its
        // first membership change, which may start its own TE_JOIN_NODE.
        if !wasAdmitted, engines[local] != nil,
            let first = outputs.firstIndex(where: { if case .deliver = $0 { true } else { false } })
        {
            outputs.insert(contentsOf: syncQuorum(), at: first)
            return outputs
        }
        return outputs + syncQuorum()
    }

    // MARK: Quorum

    private mutating func quorumReported(_ quorate: Bool) -> [Output] {
        guard quorate != quorumFlag else { return [] }
        quorumFlag = quorate
        guard quorate else {
            regaining = nil
            return []
        }
        regaining = Regaining()
        return [.startSettleTimer]
    }

    /// Notes who said who it is since quorum came back.
    private mutating func settled(_ addresses: [CPGAddress]) {
        regaining?.unsettled.subtract(addresses)
    }

    /// The coordinator's quorum, brought up to date once this engine is a member: lost at once,
    /// regained once settled.
    private mutating func syncQuorum() -> [Output] {
        if regaining?.isSettled == true { regaining = nil }
        let quorate = quorumFlag && regaining == nil
        guard quorate != deliveredQuorum, engines[local] != nil else { return [] }
        deliveredQuorum = quorate
        return [.deliver(.quorum(quorate))]
    }

    private mutating func configurationChanged(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress])
        -> [Output]
    {
        if !joinSeen {
            guard joined.contains(local) else { return [] }
            joinSeen = true
            ownJoin = (joined, members)
            joinAnswerers = Set(members)
            joinMembers = members
            groupMembers = members
            if members == [local] {
                // Alone in the group: the first engine of a new cluster.
                isSynchronised = true
                return enter(Self.clusterNumber(0, [local]))
            }
            return [.startFormTimer]
        }
        joinAnswerers.subtract(left)
        joinAnswerers.subtract(joined)
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
            case .roster(let roster) where answersOwnJoin(roster, from: from):
                return adopt(roster)
            case .roster(let roster) where roster.joined.contains(local) && !roster.engines.isEmpty:
                // A running cluster saw this engine join in another change than its own (a heal while
                // joining): restart, and join whichever cluster stays.
                return [
                    .fatal(
                        "joining, and a running cluster (\(roster.engines.map(\.info.node.name).joined(separator: " "))) merged with this partition: restarting to join it"
                    )
                ]
            case .form:
                return formed(by: from)
            default:
                held.append(.message(from: from, message))
                return []
            }
        }
        return apply(message, from: from)
    }

    // MARK: Joining

    private mutating func adopt(_ roster: Roster) -> [Output] {
        // An engine of an earlier build sends no versions: filled in, as on the engines that
        // took the hellos (their engines are the roster's).
        let rosterEngines = Self.withVersions(roster.engines)
        adoptedEngines = rosterEngines
        view = roster.view
        heard = Dictionary(
            Self.withVersions(roster.heard ?? []).map { ($0.address, $0.info) }, uniquingKeysWith: { first, _ in first }
        )
        beaten = roster.beaten ?? []
        past = roster.past ?? []
        engines = Dictionary(rosterEngines.map { ($0.address, $0.info) }, uniquingKeysWith: { first, _ in first })
        isSynchronised = true
        groupMembers = joinMembers
        let replay = held
        held = []
        // The hello goes out now, into the cluster that answered (an engine of an earlier build
        // sends no cluster: the answerer's address stands for it).
        var outputs: [Output] =
            [.enginesChanged] + enter(roster.cluster ?? Self.clusterNumber(0, roster.engines.map(\.address)))
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

    private mutating func formed(by founder: CPGAddress) -> [Output] {
        isSynchronised = true
        view = 0
        engines = [:]
        heard = [:]
        beaten = []
        past = []
        held = []
        formedByForm = true
        // A roster for this engine's join that comes now is from an engine that was too slow:
        // `merged(with:)` settles which side stays.
        ownJoin = nil
        return enter(Self.clusterNumber(0, [founder]))
    }

    // MARK: Synchronised

    private mutating func applyConfiguration(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress])
        -> [Output]
    {
        groupMembers = members
        mergedWith = []  // what a merge names is decided per change: the same on every engine
        answered = []
        namedAlive = []
        formedByForm = false
        for address in left { heard.removeValue(forKey: address) }
        if !left.isEmpty { beaten = beaten.map { Self.clusterNumber($0, left) } }
        if regaining != nil {
            regaining!.changeApplied = true
            regaining!.unsettled.formUnion(joined.filter { $0 != local })
            regaining!.unsettled.subtract(left)
        }
        var outputs: [Output] = []
        let goneAddresses = left.sorted().filter { engines[$0] != nil }
        let gone = goneAddresses.compactMap { engines.removeValue(forKey: $0) }
        var again: [Output] = []
        if !left.isEmpty, let current = cluster {
            // Any member that left, engine or not: a process cut off in another part (a joiner
            // whose hello is still to be ordered) must not be admitted here by that hello.
            cluster = Self.clusterNumber(current, left)
            past.append(current)
            if past.count > 8 { past.removeFirst() }
            info.cluster = cluster
            // A hello in flight names the number before: rejected on delivery, so say it again.
            if engines[local] == nil { again = [.send(.hello(info))] }
        }
        if !gone.isEmpty {
            view += 1
            outputs += deliver(
                .membership(
                    MembershipChange(
                        view: view, members: engines.values.map(\.node), joined: [], left: gone.map(\.node))))
            outputs.append(.enginesChanged)
        }
        if joined.contains(where: { $0 != local }) {
            // This side as its roster for this change says: what a merge is decided on, on both sides.
            viewsAtChanges.append((joined, members, self.members))
            if viewsAtChanges.count > 8 { viewsAtChanges.removeFirst() }
            outputs.append(
                .send(
                    .roster(
                        Roster(
                            joined: joined, group: members, view: view, engines: self.members, cluster: cluster,
                            heard: heard.isEmpty ? nil : heardEntries, beaten: beaten.isEmpty ? nil : beaten,
                            past: past.isEmpty ? nil : past))
                ))
        }
        return outputs + again
    }

    private mutating func apply(_ message: WireMessage, from: CPGAddress) -> [Output] {
        switch message {
        case .hello(let announced):
            return hello(Self.withVersions(announced), from: from)
        case .roster(let roster):
            // A roster from outside this cluster that names any engine of it as joined is a merge
            // for all of its engines alike (a late roster may name only some of them).
            let namesThisCluster =
                roster.joined.contains(local) || (engines[from] == nil && roster.joined.contains { engines[$0] != nil })
            guard namesThisCluster else { return [] }
            if roster.stays == true, engines[from] == nil, roster.engines.contains(where: { $0.address == from }) {
                // The other side applied the rule and stays: this one stops.
                let names = { (nodes: [ClusterNode]) in nodes.sorted().map(\.name).joined(separator: " ") }
                return [
                    .fatal(
                        "this partition (\(names(Array(engines.values.map(\.node))))) merged with one that stays (\(names(roster.engines.map(\.info.node)))): stopping so that a fresh start takes the cluster's state"
                    )
                ]
            }
            // A roster says who its side is only when its sender is one of the side's engines
            // (admitted when it sent it): then its engines have said who they are.
            if roster.engines.contains(where: { $0.address == from }) { settled(roster.engines.map(\.address)) }
            if roster.joined.contains(local), answersOwnJoin(roster, from: from) {
                // Another cluster answered this engine's join too (a heal while it joined, or an
                // engine that lost a merge and had answered before it stopped): which one holds
                // the cluster is not for this engine to guess. It restarts and joins afresh.
                guard Self.withVersions(roster.engines) != adoptedEngines, !roster.engines.isEmpty else { return [] }
                let names = { (entries: [EngineEntry]) in entries.map(\.info.node.name).sorted().joined(separator: " ")
                }
                return [
                    .fatal(
                        "two clusters answered this engine's join (\(names(adoptedEngines)) and \(names(roster.engines))): restarting to join the one that stays"
                    )
                ]
            }
            return merged(with: roster, from: from)
        case .form:
            settled([from])
            // A joining engine that got no answer (its answer was lost with a partition) starts a
            // cluster of its own beside this one. Answer as to a join: the roster names every
            // member that is not an engine of this cluster, and the merge rule settles it. (Until
            // the next configuration change after this engine formed a cluster by `form`, another
            // `form` is from an engine that formed it too.)
            let strangers = groupMembers.filter { engines[$0] == nil && $0 != local }
            guard engines[from] == nil, !formedByForm, !strangers.isEmpty else { return [] }
            return [
                .send(
                    .roster(
                        Roster(joined: strangers, group: groupMembers, view: view, engines: members, cluster: cluster)))
            ]
        case .cluster(let message):
            guard let sender = engines[from] else {
                return [
                    .warning("dropped a message from group member \(from), which has not announced itself as an engine")
                ]
            }
            return deliver(.message(from: sender.node, message))
        }
    }

    private mutating func hello(_ announced: EngineInfo, from: CPGAddress) -> [Output] {
        // An engine of another cluster has said who it is only once a roster of its side (or its
        // departure) did: its hello alone does not settle the merge.
        if announced.cluster == nil || announced.cluster == cluster || engines[from] != nil { settled([from]) }
        if let known = engines[from] {
            guard known.node == announced.node else {
                return [
                    .warning(
                        "engine \(from) announced itself as \(announced.node.name) (\(announced.node.number)) but is \(known.node.name) (\(known.node.number)): ignored"
                    )
                ]
            }
            engines[from] = announced
            return known == announced ? [] : [.enginesChanged]
        }
        guard groupMembers.contains(from) else { return [] }
        if let theirs = announced.cluster, theirs != cluster {
            // Its node is alive: a merge this side wins names it (`heard`).
            heard[from] = announced
            let warning = Output.warning(
                "engine \(from) announced itself as node \(announced.node.name) of another cluster (\(String(theirs, radix: 16)), this one is \(cluster.map { String($0, radix: 16) } ?? "none")): not admitted"
            )
            // Of a cluster this side beat: its node is alive, and it stops.
            if beaten.contains(theirs) { return [warning] + wonAgainst([], cluster: theirs) }
            // Of another cluster, undecided (a lone engine whose side may lose before it is
            // admitted, and so never send a roster that decides): its node is alive all the same.
            // (A number this cluster had: its own joiner, which says hello again.)
            guard !past.contains(theirs), !namedAlive.contains(from),
                !engines.values.contains(where: { $0.node == announced.node })
            else {
                return [warning]
            }
            namedAlive.insert(from)
            return [warning] + deliver(.merged(alive: [announced.node]))
        }
        if let clash = engines.first(where: {
            $0.value.node.name == announced.node.name || $0.value.node.number == announced.node.number
        }) {
            return [
                .warning(
                    "engine \(from) announced itself as node \(announced.node.name) (\(announced.node.number)), which engine \(clash.key) already is as \(clash.value.node.name) (\(clash.value.node.number)): not admitted"
                )
            ]
        }
        engines[from] = announced
        heard.removeValue(forKey: from)
        view += 1
        return deliver(
            .membership(
                MembershipChange(view: view, members: engines.values.map(\.node), joined: [announced.node], left: [])))
            + [.enginesChanged] + (from == local ? answerUnanswered() : [])
    }

    /// Rosters naming the processes in `unanswered` as joined, once this engine is admitted.
    private mutating func answerUnanswered() -> [Output] {
        let strangers = unanswered.filter { groupMembers.contains($0) && engines[$0] == nil && !answered.contains($0) }
            .sorted()
        guard engines[local] != nil, !strangers.isEmpty else { return [] }
        unanswered = []
        answered.formUnion(strangers)
        // Those this side won a merge against while this engine was not admitted are told it
        // stays; the others get one roster per change they joined in (each describing this side
        // as of it).
        let beaten = strangers.filter { mergedWith.contains($0) }
        var outputs: [Output] = []
        if !beaten.isEmpty { outputs.append(.send(staysRoster(naming: beaten))) }
        let byChange = Dictionary(grouping: strangers.filter { !mergedWith.contains($0) }) {
            sideAtJoin(of: $0)?.group ?? []
        }
        outputs += byChange.keys.sorted { $0.lexicographicallyPrecedes($1) }.map {
            .send(rosterAsAtJoin(naming: byChange[$0]!))
        }
        return outputs
    }

    /// The coordinator's deliveries start with the membership change that admits this engine.
    private func deliver(_ delivery: Delivery) -> [Output] {
        engines[local] != nil ? [.deliver(delivery)] : []
    }

    /// A roster that names this synchronised engine as joining: two partitions merged.
    private mutating func merged(with roster: Roster, from: CPGAddress) -> [Output] {
        let theirs = roster.engines.map(\.info.node)
        let ours =
            viewsAtChanges.last(where: { $0.group == roster.group && $0.joined.contains(from) })?.engines.map(
                \.info.node)
            ?? Array(engines.values.map(\.node))
        guard roster.engines.contains(where: { $0.address == from }) else {
            // Only an engine admitted to its cluster speaks for it: a roster sent before its
            // sender's hello was delivered (it started a cluster alone, or took a roster and
            // replayed what it held) may name a cluster that is gone by the time it arrives (its
            // engines stopped at a merge). Tell the sender who this side is (now, or once this
            // engine is admitted itself), so that the rule can be applied on its side; the
            // admitted engines of its cluster, if any, send rosters of their own.
            unanswered.insert(from)
            return answerUnanswered()
        }
        guard Self.otherSideWins(theirs: theirs, ours: ours) else {
            // This side stays; the other side's engines stop.
            return wonAgainst(roster.engines, cluster: roster.cluster, ours: ours)
        }
        let names = { (nodes: [ClusterNode]) in nodes.sorted().map(\.name).joined(separator: " ") }
        return [
            .fatal(
                "this partition (\(names(ours))) merged with a larger one (\(names(theirs))): stopping so that a fresh start takes the cluster's state"
            )
        ]
    }

    /// This side won a merge against `losers` (a deciding roster's engines) and every engine of
    /// their `cluster` it heard say hello that is still in the group (admitted there after the
    /// change the roster describes). Their nodes are alive: the coordinator runs no takeover for
    /// them (`merged`, once per engine and configuration change). They are told this side stays:
    /// they stop.
    private mutating func wonAgainst(_ losers: [EngineEntry], cluster loser: UInt64?, ours: [ClusterNode]? = nil)
        -> [Output]
    {
        if let loser, !beaten.contains(loser) {
            beaten.append(loser)
            if beaten.count > 8 { beaten.removeFirst() }
        }
        let candidates = losers + heardEntries.filter { loser != nil && $0.info.cluster == loser }
        var seen: Set<CPGAddress> = []
        let fresh = candidates.filter {
            seen.insert($0.address).inserted && !mergedWith.contains($0.address) && engines[$0.address] == nil
                && groupMembers.contains($0.address)
        }
        guard !fresh.isEmpty else { return [] }
        mergedWith.formUnion(fresh.map(\.address))
        // Named alive by their hello at this change already: not again.
        let unnamed = fresh.filter { !namedAlive.contains($0.address) }
        namedAlive.formUnion(fresh.map(\.address))
        // Not admitted yet, this engine does not count in the roster it sends: once it is, it
        // sends one that names it, for the other side to settle on.
        if engines[local] == nil { unanswered.formUnion(fresh.map(\.address)) }
        var outputs: [Output] = []
        let present = Set(ours ?? []).union(engines.values.map(\.node))
        var named: Set<ClusterNode> = []
        let alive = unnamed.map(\.info.node).filter { !present.contains($0) && named.insert($0).inserted }
        if !alive.isEmpty { outputs += deliver(.merged(alive: alive.sorted())) }
        // Tell the other side that this one stays (it may not have seen this one join, or
        // decided on another view): it stops. Once admitted, if this engine is not yet.
        if engines[local] != nil { outputs.append(.send(staysRoster(naming: fresh.map(\.address)))) }
        return outputs
    }

    /// The merge rule: the side with more engines stays; on a tie, the side with the lowest
    /// node number.
    public static func otherSideWins(theirs: [ClusterNode], ours: [ClusterNode]) -> Bool {
        theirs.count > ours.count
            || (theirs.count == ours.count && (theirs.map(\.number).min() ?? .max) < (ours.map(\.number).min() ?? .max))
    }

    // MARK: Configuration agreement

    /// One line per engine whose digest differs from this engine's, naming the files.
    public var digestDifferences: [String] {
        members.filter { $0.address != local && $0.info.digest != info.digest }.map { other in
            let files = info.digest.differingFiles(other.info.digest)
            return
                "configuration of \(other.info.node.name) differs from \(info.node.name)'s: \(files.isEmpty ? "digest" : files.joined(separator: ", "))"
        }
    }
}
