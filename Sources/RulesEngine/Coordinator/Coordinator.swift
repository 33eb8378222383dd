import RecoveryPrograms
import RulesParser

/// The cluster coordinator: a deterministic state machine, `apply(delivery) -> [Effect]`, with
/// no I/O and no clock (the time of a delivery is an argument, used only for this node's
/// `config_too_long` warnings).
///
/// Every member is fed the same totally ordered stream of messages and membership changes, so
/// every member reaches the same decisions without a leader: which event runs next, who takes
/// part, when a barrier is complete, when an event failed or was resumed (SPEC section 7).
public struct Coordinator: Sendable {
    public let local: ClusterNode
    public private(set) var rules: RuleBook
    public var priorities: EventPriorities
    /// Seconds an event may run on this node before `TE_CONFIG_TOO_LONG`, and between repeats.
    public var configTooLong: Double

    public private(set) var state: ReplicatedState
    /// Where this node is in joining the cluster; `applyWhileJoining` is its transition.
    public private(set) var phase: Phase
    /// False from joining a cluster that already had members until its state arrives.
    public var isSynchronised: Bool { phase == .synchronised }
    /// Whether this node is a member at all (it is not before its first membership change).
    public var isMember: Bool { state.members.contains(local) }

    /// How far this node has got into the cluster's history.
    public enum Phase: Sendable, Hashable {
        /// No membership change has named it yet.
        case outside
        /// It was admitted to a cluster that had members: `held` are the deliveries from the
        /// change that admitted it on, replayed once the snapshot for one of their views
        /// arrives from one of `holders` (the members that had the state then, less those
        /// that left since).
        case awaitingSnapshot(held: [Delivery], holders: Set<String>)
        /// It has the cluster's state: it formed the cluster, got the snapshot, or every holder
        /// left and it started afresh. Each entry into this phase starts a cluster history
        /// (journaled `synchronised`); event ids are those of that history.
        case synchronised
    }
    /// This node's part in the events that run: the segment it runs and since when.
    private var localRuns: [Int: LocalRun] = [:]
    /// Whether this node's partition has quorum (local, from `.quorum` deliveries).
    public private(set) var isQuorate = true
    /// This node's segments that wait for quorum, in the order they were due.
    public private(set) var waitingForQuorum: [SegmentRun] = []
    /// This node's segments of takeovers that wait for a fence, in the order they were due.
    public private(set) var waitingForFence: [SegmentRun] = []
    /// Whether a node that leaves without a graceful stop is fenced before its takeover.
    public var fencing: FencingPolicy
    /// The fences this node runs the agent for now (local).
    private var fencesRunning: Set<String> = []
    /// The queued event last journaled as waiting for a fence to start (local, once per event).
    private var queueWaitJournaled: Int?
    /// When this node, as fencer, runs the agent of an `unseen` or `outside` node that has not
    /// joined (local: this node's clock).
    private var fenceDue: [String: (reason: FenceReason, due: Double)] = [:]
    /// What this node does when its partition loses quorum (`no_quorum_policy`), and when.
    public private(set) var quorumLoss: QuorumLossRule
    /// The rule each running event started with: a reload changes the events after it only.
    private var startedRules: [Int: RuleBook.Rule] = [:]
    /// Each running event's participants as a set (`isParticipant`); a cache, not state.
    private var participantSets: [Int: (participants: [ClusterNode], set: Set<ClusterNode>)] = [:]

    private struct LocalRun: Sendable {
        var busy: Bool
        var failedHere = false
        var lastWarning: Double
    }

    /// - Parameter initialMembers: the members of a cluster formed before the first delivery
    ///   (a scenario's nodes): no `TE_JOIN_NODE` for them. nil for a node that joins through
    ///   its first membership change.
    public init(
        local: ClusterNode, rules: RuleBook, priorities: EventPriorities = .init(), configTooLong: Double = 360,
        fencing: FencingPolicy = .none, noQuorumPolicy: NoQuorumPolicy = .freeze, initialMembers: [ClusterNode]? = nil
    ) {
        self.local = local
        self.fencing = fencing
        self.quorumLoss = QuorumLossRule(policy: noQuorumPolicy)
        self.rules = rules
        self.priorities = priorities
        self.configTooLong = configTooLong
        self.state = ReplicatedState(members: initialMembers ?? [])
        self.phase = initialMembers != nil ? .synchronised : .outside
    }

    // MARK: Input

    public mutating func apply(_ delivery: Delivery, now: Double) -> [Effect] {
        let effects = applyDelivery(delivery, now: now)
        return effects + quorumLost(now: now)
    }

    private mutating func applyDelivery(_ delivery: Delivery, now: Double) -> [Effect] {
        if case .quorum(let quorate) = delivery { return quorumChanged(quorate, now: now) }
        guard isSynchronised else { return applyWhileJoining(delivery, now: now) }
        switch delivery {
        case .tick:
            return tick(now: now)
        case .quorum:
            return []  // handled above, joining or not
        case .merged(let alive):
            return merged(alive: alive, now: now)
        case .membership(let change):
            return membershipChanged(change, now: now)
        case .message(let sender, let message):
            switch message {
            case .raise(let request):
                return raise(request, now: now)
            case .segmentDone(let eventID, let segment, let results):
                return segmentDone(by: sender, eventID: eventID, segment: segment, results: results, now: now)
            case .resume(let cancelQueued, let mode, let user):
                return resume(mode ?? .skip, cancelQueued: cancelQueued, user: user, from: sender, now: now)
            case .recovery(let enabled, let nodes):
                return recovery(enabled: enabled, nodes: nodes)
            case .stopServices(let name, let mode):
                return stopServices(name, mode: mode, now: now)
            case .reloadRules:
                return [.reloadRules(requestedBy: sender.name)]
            case .snapshot(let names, _, _):
                state.awaitingSnapshot.removeAll { names.contains($0.name) }
                return []
            case .fenceOutcome(let name, let outcome, let attempt):
                return fenceOutcome(name, outcome, attempt: attempt, from: sender, now: now)
            case .syncTree, .syncRollback, .syncOutcome:
                return []  // the service's: files on disk, then a reload
            case .instancesAsked, .instances:
                return []  // the service's: `status --all`
            }
        }
    }

    /// Before this node has the cluster's state, deliveries wait; the snapshot addressed to it
    /// replaces its state with the cluster's as of the view it names, and the deliveries after
    /// that view are replayed. The transition of `phase`: every change of it is here.
    private mutating func applyWhileJoining(_ delivery: Delivery, now: Double) -> [Effect] {
        switch (phase, delivery) {
        case (.synchronised, _):
            return apply(delivery, now: now)
        case (_, .tick), (_, .quorum):
            return []
        case (.outside, .membership(let change)):
            guard change.members.contains(local) else { return [] }
            let before = Set(change.members).subtracting(change.joined)
            if before.isEmpty {
                // The cluster forms now: nobody has state to send.
                phase = .synchronised
                state = ReplicatedState()
                return [.journal(.synchronised(view: change.view))] + membershipChanged(change, now: now)
            }
            phase = .awaitingSnapshot(held: [delivery], holders: Set(before.map(\.name)))
            return []
        case (.outside, .message(_, .snapshot(let names, _, _))) where names.contains(local.name):
            // A snapshot for this node before the change that admits it (not seen in practice):
            // held with no holder to wait for, so the next change starts afresh unless a
            // snapshot for one of the held views comes first.
            phase = .awaitingSnapshot(held: [delivery], holders: [])
            return []
        case (.outside, _):
            // Before this node is admitted: a merge has nothing of it to cancel (the members
            // that hold the state apply it, and their snapshot carries the outcome), and no
            // message is for it.
            return []
        case (.awaitingSnapshot(var held, var holders), .membership(let change)):
            held.append(delivery)
            holders.subtract(change.left.map(\.name))
            if holders.isEmpty {
                // Every member that had the state left before sending it: start afresh.
                phase = .synchronised
                state = ReplicatedState(members: change.members)
                return [.journal(.synchronised(view: change.view))] + fenceUnseen() + requestFences(now: now)
            }
            phase = .awaitingSnapshot(held: held, holders: holders)
            return []
        case (.awaitingSnapshot(var held, let holders), .message(_, .snapshot(let names, let view, let snapshot)))
        where names.contains(local.name):
            guard
                let index = held.firstIndex(where: {
                    if case .membership(let change) = $0 { change.view == view } else { false }
                })
            else {
                held.append(delivery)
                phase = .awaitingSnapshot(held: held, holders: holders)
                return []
            }
            let replay = held[(index + 1)...]
            state = snapshot
            phase = .synchronised
            var effects: [Effect] = [.journal(.synchronised(view: view))]
            for held in replay { effects += apply(held, now: now) }
            effects += apply(delivery, now: now)
            // This node's share of a segment that started while it waited.
            for run in runningEvents where run.participants.contains(local) && localRuns[run.event.id] == nil {
                if !run.reached.contains(local.name) && run.failure == nil {
                    effects += startLocalSegment(run, now: now)
                }
            }
            // Fences the cluster waits for, if this node is the fencer now.
            return effects + requestFences(now: now)
        case (.awaitingSnapshot(var held, let holders), .merged), (.awaitingSnapshot(var held, let holders), .message):
            held.append(delivery)
            phase = .awaitingSnapshot(held: held, holders: holders)
            return []
        }
    }

    // MARK: Membership

    private mutating func membershipChanged(_ change: MembershipChange, now: Double) -> [Effect] {
        var effects: [Effect] = [.journal(.membership(change))]
        let forming = state.members.isEmpty
        state.members = change.members
        for node in change.left {
            state.awaitingSnapshot.removeAll { $0 == node }
            // Its engine starts afresh if it comes back: its monitors are armed anew.
            state.suppressed[node.name] = nil
            // Quiet only once its stop event ended (StopPhase.next says why).
            let (_, quiet) = StopPhase.next(state.stops.removeValue(forKey: node.name), on: .left)
            // Pending before the barriers it leaves are looked at: a segment they release (the
            // acquire after a release it never finished) waits for the fence too.
            if !quiet, fencing.enabled, state.pendingFences[node.name]?.reason != .left {
                state.pendingFences[node.name] = PendingFence(node: node, fencer: state.members.first)
                effects.append(.journal(.fence(.needed(node: node, fencer: state.members.first))))
            }
            effects += dropParticipant(node, now: now)
            if !quiet {
                effects += raise(EventRequest(name: BuiltInTrigger.failNode.rawValue, state: 0, node: node), now: now)
            }
        }
        if forming { effects += fenceUnseen() }
        // A node whose state was unknown joined: its engine runs again, and its join event
        // settles what its node holds. A takeover of it not yet run would run beside it.
        let back = Set(change.joined.filter { state.pendingFences[$0.name] != nil })
        if !back.isEmpty {
            effects += cancelTakeovers(of: back, now: now)
            for node in back.sorted() {
                state.pendingFences[node.name] = nil
                effects.append(.journal(.fence(.dropped(node: node))))
            }
            // Before the snapshot below is taken: it carries what started.
            effects += releaseFenced() + startNextIfIdle(now: now)
        }
        for node in change.joined {
            if !forming { state.awaitingSnapshot.append(node) }
            effects += raise(EventRequest(name: BuiltInTrigger.joinNode.rawValue, state: 0, node: node), now: now)
        }
        // The lowest-numbered member that has the state sends it to those that joined.
        let holders = state.members.filter { !state.awaitingSnapshot.contains($0) }
        if !state.awaitingSnapshot.isEmpty, holders.first == local {
            effects.append(
                .multicast(.snapshot(for: state.awaitingSnapshot.map(\.name), view: change.view, state: state)))
        }
        // A fencer that left is replaced by the lowest numbered member.
        for name in state.pendingFences.keys.sorted()
        where !state.members.contains { $0 == state.pendingFences[name]!.fencer } {
            state.pendingFences[name]!.fencer = state.members.first
            let pending = state.pendingFences[name]!
            let window = pending.reason == .left ? 0 : fencing.window
            effects.append(
                .journal(
                    .fence(.needed(node: pending.node, fencer: pending.fencer, reason: pending.reason, window: window)))
            )
        }
        return effects + requestFences(now: now)
    }

    /// Startup fencing: the cluster forms now, and every configured node that is not a member
    /// may hold resources (its engine killed while it lives on, or beyond a partition). Each is
    /// fenced unless it joins within the window.
    private mutating func fenceUnseen() -> [Effect] {
        guard fencing.enabled else { return [] }
        var effects: [Effect] = []
        for node in fencing.nodes.sorted()
        where node != local && !state.members.contains(node) && state.pendingFences[node.name] == nil {
            let fencer = state.members.first ?? local
            state.pendingFences[node.name] = PendingFence(node: node, fencer: fencer, reason: .unseen)
            effects.append(
                .journal(.fence(.needed(node: node, fencer: fencer, reason: .unseen, window: fencing.window))))
        }
        return effects
    }

    /// A participant that left is dropped from every barrier it has not reached.
    private mutating func dropParticipant(_ node: ClusterNode, now: Double) -> [Effect] {
        var effects: [Effect] = []
        for id in runningEvents.map(\.event.id) {
            effects += updateRun(id) { run in
                guard run.participants.contains(node) else { return [] }
                run.participants.removeAll { $0 == node }
                run.reached.remove(node.name)
                return [.journal(.participantLeft(eventID: run.event.id, node: node))]
            }
            effects += checkBarrier(id, now: now)
        }
        return effects
    }

    // MARK: Events

    /// Every event that runs now: the current one, then the notifications beside it.
    public var runningEvents: [RunningEvent] {
        (state.current.map { [$0] } ?? []) + state.notifications
    }

    private mutating func raise(_ request: EventRequest, now: Double) -> [Effect] {
        guard let rule = rules[request.name, request.state] else {
            var effects: [Effect] = [.journal(.unmatched(request))]
            effects += stopEventEnded(name: request.name, state: request.state, node: request.node)
            return effects
        }
        let event = ClusterEvent(
            id: state.nextEventID, name: request.name, state: request.state, node: request.node,
            resource: request.resource, priority: priorities.priority(of: request.name), arrival: state.nextArrival)
        state.nextEventID += 1
        state.nextArrival += 1
        if state.recoveryOff.contains(request.node.name) {
            // Its instance disarmed when the predicate fired: remembered, to be armed again
            // when recovery comes back on (`recovery(enabled:nodes:)`).
            if let resource = request.resource {
                let instance = SuppressedInstance(name: request.name, state: request.state, instance: resource.instance)
                if state.suppressed[request.node.name]?.contains(instance) != true {
                    state.suppressed[request.node.name, default: []].append(instance)
                }
            }
            return [.journal(.finished(event, outcome: .suppressed))] + stopEventEnded(event)
        }
        if event.isNotification {
            return start(event, rule: rule, now: now)
        }
        let position = state.queue.firstIndex { $0.priority < event.priority } ?? state.queue.endIndex
        state.queue.insert(event, at: position)
        return [.journal(.queued(event))] + startNextIfIdle(now: now)
    }

    private mutating func startNextIfIdle(now: Double) -> [Effect] {
        guard state.current == nil, let next = state.queue.first else { return [] }
        // An event starts with the members it sees, and its commands decide from them (who
        // owns what): not while a node that may hold resources is outside and unaccounted for,
        // or it would run as if that node held nothing (issue 12, startup fencing).
        if let unknown = state.pendingFences[next.node.name]?.node ?? state.pendingFences.values.map(\.node).min() {
            guard queueWaitJournaled != next.id else { return [] }
            queueWaitJournaled = next.id
            return [.journal(.fence(.waits(eventID: next.id, name: next.name, segment: 0, node: unknown)))]
        }
        let event = state.queue.removeFirst()
        guard let rule = rules[event.name, event.state] else { return startNextIfIdle(now: now) }
        return start(event, rule: rule, now: now)
    }

    /// New rules (SIGHUP): events that start from now on use them; running ones keep theirs.
    public mutating func replaceRules(_ rules: RuleBook) {
        self.rules = rules
    }

    private mutating func start(_ event: ClusterEvent, rule: RuleBook.Rule, now: Double) -> [Effect] {
        startedRules[event.id] = rule
        let run = RunningEvent(
            event: event, displayName: rule.definition.displayName, segmentCount: rule.segmentCount,
            participants: state.members.filter { state.stops[$0.name]?.isDeparting != true }, members: state.members,
            segment: 0, reached: [], failure: nil)
        if event.isNotification {
            state.notifications.append(run)
        } else {
            state.current = run
        }
        var effects: [Effect] = [
            .journal(.started(event, displayName: run.displayName, participants: run.participants))
        ]
        if run.participants.contains(local) {
            effects += startLocalSegment(run, now: now)
        }
        return effects
    }

    /// This node's commands of the run's current segment.
    private mutating func startLocalSegment(_ run: RunningEvent, now: Double) -> [Effect] {
        guard let rule = startedRules[run.event.id] ?? rules[run.event.name, run.event.state] else { return [] }
        let plan = NodePlan(program: rule.program, isEventNode: run.event.node == local, isMember: true)
        let commands = run.segment < plan.segments.count ? plan.segments[run.segment] : []
        let warning = localRuns[run.event.id]?.lastWarning ?? now
        localRuns[run.event.id] = LocalRun(busy: true, lastWarning: warning)
        let segmentRun = SegmentRun(
            event: run.event, segment: run.segment, commands: run.cancelled ? [] : commands,
            environment: environment(for: run))
        return startOrHold(segmentRun)
    }

    /// Starts this node's segment, or holds it for what it waits for (`segmentHold`).
    private mutating func startOrHold(_ due: SegmentRun) -> [Effect] {
        switch segmentHold(
            for: due.event, runsCommands: !due.commands.isEmpty, quorate: isQuorate, pendingFences: state.pendingFences)
        {
        case nil:
            return [.runSegment(due)]
        case .quorum:
            waitingForQuorum.append(due)
            return [.journal(.waitsForQuorum(eventID: due.event.id, name: due.event.name, segment: due.segment))]
        case .fence(let node):
            waitingForFence.append(due)
            return [
                .journal(.fence(.waits(eventID: due.event.id, name: due.event.name, segment: due.segment, node: node)))
            ]
        }
    }

    /// A held segment whose reason passed: started (or held for another reason) if its event is
    /// still at that segment and this node has not reported it; a cancelled takeover's runs no
    /// command (its barrier still needs this node's word).
    private mutating func release(_ held: [SegmentRun]) -> [Effect] {
        var effects: [Effect] = []
        for var due in held {
            guard let run = runningEvents.first(where: { $0.event.id == due.event.id }), run.segment == due.segment,
                run.failure == nil, run.participants.contains(local), !run.reached.contains(local.name)
            else { continue }
            if run.cancelled { due.commands = [] }
            effects += startOrHold(due)
        }
        return effects
    }

    // MARK: Partitions

    /// Quorum lost: segments due from now on wait. Quorum back: the segments that waited start,
    /// those of events still at that segment; a cancelled takeover's run no command (its
    /// barrier still needs this node's word).
    private mutating func quorumChanged(_ quorate: Bool, now: Double) -> [Effect] {
        guard quorate != isQuorate else { return [] }
        isQuorate = quorate
        var effects: [Effect] = [.journal(.quorum(quorate, waiting: waitingForQuorum.count))]
        switch quorumLoss.quorumChanged(quorate, now: now) {
        case .armed:
            if case .stop(let delay) = quorumLoss.policy { effects.append(.journal(.quorumLoss(.armed(delay: delay)))) }
        case .cancelled: effects.append(.journal(.quorumLoss(.cancelled)))
        case .none, .backAfterRun: break
        }
        guard quorate else { return effects }
        let waiting = waitingForQuorum
        waitingForQuorum = []
        return effects + release(waiting) + requestFences(now: now)
    }

    /// `TE_QUORUM_LOST` on this node, when `QuorumLossRule` says it runs now: this node's
    /// commands of every segment of its rule, run locally (`Effect.runLocalEvent`).
    private mutating func quorumLost(now: Double) -> [Effect] {
        // Commands of this node running now: a segment held (for quorum, for a fence) runs none.
        let held = Set((waitingForQuorum + waitingForFence).map(\.event.id))
        let busy = localRuns.contains { $0.value.busy && !held.contains($0.key) }
        guard quorumLoss.runsNow(now: now, busy: busy) else { return [] }
        let name = BuiltInTrigger.quorumLost.rawValue
        guard let rule = rules[name, 0] else { return [.journal(.quorumLoss(.noRule))] }
        let plan = NodePlan(program: rule.program, isEventNode: true, isMember: true)
        let members = state.members.isEmpty ? [local] : state.members
        let environment = [
            "HAMN_EVENT": name,
            "HAMN_EVENT_STATE": "0",
            "HAMN_EVENT_ID": "0",
            "HAMN_EVENT_NODE": local.name,
            "HAMN_EVENT_NODE_NUMBER": String(local.number),
            "HAMN_LOCAL_NODE": local.name,
            "HAMN_LOCAL_NODE_NUMBER": String(local.number),
            "HAMN_MEMBERS": members.map(\.name).joined(separator: " "),
        ]
        let run = LocalEventRun(
            name: name, displayName: rule.definition.displayName, segments: plan.segments, environment: environment)
        return [
            .journal(.quorumLoss(.started(displayName: run.displayName, segments: run.segments.count))),
            .runLocalEvent(run),
        ]
    }

    /// A partition healed and this side stays; `alive` were on the other side all along. No
    /// takeover (`TE_FAIL_NODE` state 0) runs for them: queued ones are cancelled, and a running
    /// one ends at its next barrier (at once when nobody is in a segment of it).
    private mutating func merged(alive: [ClusterNode], now: Double) -> [Effect] {
        let alive = Set(alive.filter { !state.members.contains($0) })
        guard !alive.isEmpty else { return [] }
        var effects: [Effect] = [.journal(.merged(alive: alive.sorted()))]
        effects += cancelTakeovers(of: alive, now: now)
        guard fencing.enabled else {
            // Without fencing nothing waits for them: their engines stop and rejoin.
            return effects
        }
        // Alive, but their engines stop holding what they held (the merge rule), and may not
        // start again: fenced unless they join within the window. Until then events wait.
        for node in alive.sorted() where state.pendingFences[node.name]?.reason != .outside {
            let fencer = state.members.first
            state.pendingFences[node.name] = PendingFence(node: node, fencer: fencer, reason: .outside)
            effects.append(
                .journal(.fence(.needed(node: node, fencer: fencer, reason: .outside, window: fencing.window))))
        }
        return effects + requestFences(now: now)
    }

    /// No takeover (`TE_FAIL_NODE` state 0) runs for `alive`, which are alive: queued ones are
    /// cancelled, and a running one ends at its next barrier (at once when nobody is in a
    /// segment of it); its held segments run no command.
    private mutating func cancelTakeovers(of alive: Set<ClusterNode>, now: Double) -> [Effect] {
        var effects: [Effect] = []
        func isTakeover(_ event: ClusterEvent) -> Bool {
            event.name == BuiltInTrigger.failNode.rawValue && event.state == 0 && alive.contains(event.node)
        }
        let cancelled = state.queue.filter(isTakeover)
        state.queue.removeAll(where: isTakeover)
        effects += cancelled.map { .journal(.finished($0, outcome: .cancelled)) }
        if let current = state.current, isTakeover(current.event) {
            if current.failure != nil || current.waitingFor.isEmpty {
                effects += finish(current.event.id, outcome: .cancelled, now: now)
            } else {
                state.current?.cancelled = true
                // This node's share that waits for quorum runs no command when it is back.
                for index in waitingForQuorum.indices where waitingForQuorum[index].event.id == current.event.id {
                    waitingForQuorum[index].commands = []
                }
                // Its share that waits for a fence runs no command: it need not wait.
                let held = waitingForFence.filter { $0.event.id == current.event.id }
                waitingForFence.removeAll { $0.event.id == current.event.id }
                effects += release(held)
            }
        }
        return effects
    }

    // MARK: Fencing

    /// This node, with quorum, starts an agent for each pending fence it is the fencer of, is
    /// not running yet, and has attempts left for.
    private mutating func requestFences(now: Double) -> [Effect] {
        fenceDue = fenceDue.filter { state.pendingFences[$0.key]?.reason == $0.value.reason }
        guard fencing.enabled, isQuorate else { return [] }
        var effects: [Effect] = []
        for pending in state.pendingFences.values.sorted(by: { $0.node < $1.node })
        where pending.fencer == local && !fencesRunning.contains(pending.node.name)
            && pending.failures < fencing.attempts
        {
            if pending.reason != .left {
                // Its window to join runs from when this node, the fencer with quorum, saw it.
                let due = fenceDue[pending.node.name]?.due ?? now + fencing.window
                fenceDue[pending.node.name] = (pending.reason, due)
                guard now >= due else { continue }
            }
            fencesRunning.insert(pending.node.name)
            effects.append(.fence(FenceRequest(node: pending.node, attempt: pending.failures + 1)))
        }
        return effects
    }

    /// When this node, as fencer, will fence a node whose window to join is still open: the
    /// simulator's next tick for it (the service ticks every second).
    public var nextFenceDue: Double? {
        fenceDue.filter { state.pendingFences[$0.key]?.reason == $0.value.reason && !fencesRunning.contains($0.key) }
            .map(\.value.due).min()
    }

    /// This node did not run the agent it was asked to (`Effect.fence`): the fence was settled
    /// while the device's delay ran. A later fence of that node may ask again.
    public mutating func fenceNotRun(_ name: String) {
        fencesRunning.remove(name)
    }

    /// An outcome of a fence, from the node that ran the agent or took the administrator's word.
    private mutating func fenceOutcome(
        _ name: String, _ outcome: FenceOutcome, attempt: Int, from sender: ClusterNode, now: Double
    )
        -> [Effect]
    {
        if sender == local { fencesRunning.remove(name) }
        var effects: [Effect] = [.journal(.fence(.outcome(node: name, outcome, by: sender, attempt: attempt)))]
        guard var pending = state.pendingFences[name] else { return effects }
        switch outcome {
        case .fenced, .confirmed:
            state.pendingFences[name] = nil
            effects += releaseFenced() + startNextIfIdle(now: now)
        case .failed(let reason):
            pending.failures += 1
            pending.lastError = reason
            state.pendingFences[name] = pending
            if pending.failures == fencing.attempts {
                effects.append(.journal(.fence(.gaveUp(node: pending.node, failures: pending.failures))))
            }
            // A notification, as for a failed command: the administrator's scripts hear of it.
            effects += raise(
                EventRequest(name: BuiltInTrigger.eventError.rawValue, state: 0, node: pending.node), now: now)
            effects += requestFences(now: now)
        }
        return effects
    }

    /// A node is down, or joined: the segments held for fences are looked at again (each
    /// starts, or waits on for a fence still pending).
    private mutating func releaseFenced() -> [Effect] {
        let due = waitingForFence
        waitingForFence = []
        return release(due)
    }

    /// The event as commands see it (SPEC section 7): in their environment, never in their text.
    public func environment(for run: RunningEvent) -> [String: String] {
        var environment = [
            "HAMN_EVENT": run.event.name,
            "HAMN_EVENT_STATE": String(run.event.state),
            "HAMN_EVENT_ID": String(run.event.id),
            "HAMN_EVENT_NODE": run.event.node.name,
            "HAMN_EVENT_NODE_NUMBER": String(run.event.node.number),
            "HAMN_LOCAL_NODE": local.name,
            "HAMN_LOCAL_NODE_NUMBER": String(local.number),
            "HAMN_MEMBERS": run.members.map(\.name).joined(separator: " "),
            "HAMN_SEGMENT": String(run.segment),
        ]
        if let resource = run.event.resource {
            environment["HAMN_RV_NAME"] = resource.variable
            environment["HAMN_RV_INSTANCE"] = resource.instance
            environment["HAMN_RV_VALUE"] = resource.value
        }
        return environment
    }

    private mutating func segmentDone(
        by node: ClusterNode, eventID: Int, segment: Int, results: [CommandResult], now: Double
    ) -> [Effect] {
        var effects = results.map {
            Effect.journal(.commandFinished(eventID: eventID, node: node, segment: segment, result: $0))
        }
        if node == local { localRuns[eventID]?.busy = false }
        guard let run = runningEvents.first(where: { $0.event.id == eventID }), run.segment == segment,
            isParticipant(node, of: run)
        else {
            return effects  // late results of a resumed or finished event: recorded, nothing more
        }
        if !run.cancelled, results.contains(where: { !$0.accepted }) {
            let lines = results.filter { !$0.accepted }.map(\.line)
            effects += commandFailed(on: node, eventID: eventID, segment: segment, lines: lines, now: now)
        } else {
            effects += updateRun(eventID) { run in
                run.reached.insert(node.name)
                return []
            }
            effects += checkBarrier(eventID, now: now)
        }
        return effects
    }

    /// A command failed its expected status on `node`: the event is held (a notification
    /// event just ends), and `TE_EVENT_ERROR` is raised for that node.
    private mutating func commandFailed(
        on node: ClusterNode, eventID: Int, segment: Int, lines: [Int], now: Double
    ) -> [Effect] {
        var effects: [Effect] = []
        var failedEvent: ClusterEvent?
        effects += updateRun(eventID) { run in
            if run.failure == nil { run.failure = .init(node: node, segment: segment) }
            run.failedSteps = (run.failedSteps ?? []).filter { $0.node != node } + [.init(node: node, lines: lines)]
            failedEvent = run.event
            return [.journal(.failed(run.event, node: node, segment: segment))]
        }
        if node == local { localRuns[eventID]?.failedHere = true }
        guard let event = failedEvent else { return effects }
        if event.isNotification {
            return effects + finish(eventID, outcome: .failed, now: now)
        }
        return effects
            + raise(EventRequest(name: BuiltInTrigger.eventError.rawValue, state: 0, node: node), now: now)
    }

    /// The barrier rule: when every remaining participant has finished the current segment of
    /// an event that has not failed, the barrier is passed and the next segment starts; after
    /// the last segment the event is complete.
    private mutating func checkBarrier(_ eventID: Int, now: Double) -> [Effect] {
        guard let run = runningEvents.first(where: { $0.event.id == eventID }), run.failure == nil, run.allReached
        else { return [] }
        if run.cancelled {
            return finish(eventID, outcome: .cancelled, now: now)
        }
        if run.segment == run.segmentCount - 1 {
            return finish(eventID, outcome: .completed, now: now)
        }
        var next = run
        next.segment += 1
        next.reached = []
        _ = updateRun(eventID) { stored in
            stored = next
            return []
        }
        var effects: [Effect] = [
            .journal(.barrierPassed(eventID: eventID, index: run.segment, participants: run.participants))
        ]
        if next.participants.contains(local) {
            effects += startLocalSegment(next, now: now)
        }
        // Every participant gone (a partition cut them all off from this node): nobody will
        // report the next segment, so it passes at once, and the event ends.
        if next.participants.isEmpty { effects += checkBarrier(eventID, now: now) }
        return effects
    }

    private mutating func finish(_ eventID: Int, outcome: EventOutcome, now: Double) -> [Effect] {
        localRuns[eventID] = nil
        startedRules[eventID] = nil
        if let current = state.current, current.event.id == eventID {
            state.current = nil
            return [.journal(.finished(current.event, outcome: outcome))] + stopEventEnded(current.event)
                + startNextIfIdle(now: now)
        }
        guard let index = state.notifications.firstIndex(where: { $0.event.id == eventID }) else { return [] }
        let run = state.notifications.remove(at: index)
        return [.journal(.finished(run.event, outcome: outcome))]
    }

    /// Applies `change` to the running event `eventID`, wherever it is kept.
    /// Whether `node` takes part in `run`, from a set kept per event: every node checks each of
    /// n nodes' reports, so a search of the list made a barrier of n nodes cubic. The set is
    /// rebuilt when the list changes (arrays that share their storage compare in constant time).
    private mutating func isParticipant(_ node: ClusterNode, of run: RunningEvent) -> Bool {
        if let cached = participantSets[run.event.id], cached.participants == run.participants {
            return cached.set.contains(node)
        }
        if participantSets.count > 64 { participantSets = [:] }
        let set = Set(run.participants)
        participantSets[run.event.id] = (run.participants, set)
        return set.contains(node)
    }

    private mutating func updateRun(_ eventID: Int, _ change: (inout RunningEvent) -> [Effect]) -> [Effect] {
        // In place: a copy would make `reached.insert` copy the whole set at every report.
        if state.current?.event.id == eventID {
            return change(&state.current!)
        }
        if let index = state.notifications.firstIndex(where: { $0.event.id == eventID }) {
            return change(&state.notifications[index])
        }
        return []
    }

    // MARK: Operator requests

    /// `resume` (docs/decisions.md, "Resume"): the held event ends failed (`skip`), its failed
    /// commands run again where they failed (`retry`), or it goes on as if they had succeeded
    /// (`continue`). `cancelQueued` drops the queue in every mode.
    private mutating func resume(
        _ mode: ResumeMode, cancelQueued: Bool, user: String?, from sender: ClusterNode, now: Double
    ) -> [Effect] {
        var entry = ResumeEntry(mode: mode, cancelQueued: cancelQueued, user: user, node: sender)
        var effects: [Effect] = []
        var resumed = false
        if var current = state.current, let failure = current.failure {
            resumed = true
            let id = current.event.id
            entry.event = current.event
            entry.segment = failure.segment
            entry.failedOn = (current.failedSteps ?? []).map(\.node).filter { current.participants.contains($0) }
            effects.append(.journal(.resumed(entry)))
            switch mode {
            case .skip:
                localRuns[id] = nil
                startedRules[id] = nil
                state.current = nil
                effects.append(.journal(.finished(current.event, outcome: .failed)))
                effects += stopEventEnded(current.event)
            case .retry, .continue:
                let failed = (current.failedSteps ?? []).filter { current.participants.contains($0.node) }
                current.failure = nil
                current.failedSteps = nil
                if mode == .continue { current.reached.formUnion(failed.map(\.node.name)) }
                state.current = current
                localRuns[id]?.failedHere = false
                if mode == .retry, let mine = failed.first(where: { $0.node == local }) {
                    effects += startLocalRetry(current, lines: mine.lines, now: now)
                }
                // Every failed node gone, or (continue) every participant at the barrier: it passes.
                effects += checkBarrier(id, now: now)
            }
        } else {
            effects.append(.journal(.resumed(entry)))
        }
        if cancelQueued {
            let dropped = state.queue
            state.queue = []
            for event in dropped {
                effects.append(.journal(.finished(event, outcome: .skipped)))
                effects += stopEventEnded(event)
            }
        }
        if resumed || cancelQueued { effects += startNextIfIdle(now: now) }
        return effects
    }

    /// `resume --retry` on a node whose commands failed: those commands of the held segment
    /// (by their lines) run again; their results count as this node's end of the segment.
    private mutating func startLocalRetry(_ run: RunningEvent, lines: [Int], now: Double) -> [Effect] {
        guard let rule = startedRules[run.event.id] ?? rules[run.event.name, run.event.state] else { return [] }
        let plan = NodePlan(program: rule.program, isEventNode: run.event.node == local, isMember: true)
        let commands = run.segment < plan.segments.count ? plan.segments[run.segment] : []
        let warning = localRuns[run.event.id]?.lastWarning ?? now
        localRuns[run.event.id] = LocalRun(busy: true, lastWarning: warning)
        let retry = SegmentRun(
            event: run.event, segment: run.segment, commands: commands.filter { lines.contains($0.line) },
            environment: environment(for: run))
        return startOrHold(retry)
    }

    /// `recovery off|on`. Back on: the node's instances whose events were suppressed meanwhile
    /// are armed again (their node's monitors do it; every node journals it), so that a
    /// condition still true raises its event at the next sample instead of waiting for a rearm
    /// that may never come.
    private mutating func recovery(enabled: Bool, nodes: [String]) -> [Effect] {
        guard enabled else {
            state.recoveryOff.formUnion(nodes)
            return [.journal(.recovery(enabled: false, nodes: nodes))]
        }
        state.recoveryOff.subtract(nodes)
        var effects: [Effect] = [.journal(.recovery(enabled: true, nodes: nodes))]
        for name in Set(nodes).sorted() {
            guard let instances = state.suppressed.removeValue(forKey: name)?.sorted() else { continue }
            effects.append(.journal(.rearmed(node: name, instances: instances)))
            if name == local.name { effects.append(.rearm(instances)) }
        }
        return effects
    }

    private mutating func stopServices(_ name: String, mode: StopMode, now: Double) -> [Effect] {
        guard let node = state.members.first(where: { $0.name == name }) else { return [] }
        let (next, counts) = StopPhase.next(state.stops[name], on: .stopRequested(mode))
        guard counts else { return [] }
        state.stops[name] = next
        return [.journal(.stopRequested(node: name, mode: mode))]
            + raise(EventRequest(name: BuiltInTrigger.failNode.rawValue, state: mode.state, node: node), now: now)
    }

    /// A stopping node leaves once its own `TE_FAIL_NODE` has ended, however it ended; from
    /// then on it takes part in no new event.
    private mutating func stopEventEnded(_ event: ClusterEvent) -> [Effect] {
        stopEventEnded(name: event.name, state: event.state, node: event.node)
    }

    private mutating func stopEventEnded(name: String, state eventState: Int, node: ClusterNode) -> [Effect] {
        guard name == BuiltInTrigger.failNode.rawValue, eventState != 0 else { return [] }
        let (next, counts) = StopPhase.next(state.stops[node.name], on: .stopEventEnded(state: eventState))
        guard counts else { return [] }
        state.stops[node.name] = next
        return node == local ? [.leaveCluster] : []
    }

    // MARK: Time

    /// `TE_CONFIG_TOO_LONG` for this node when it has been running (or stuck in) its part of
    /// an event longer than `configTooLong`, and again each period while it lasts.
    private mutating func tick(now: Double) -> [Effect] {
        var effects: [Effect] = requestFences(now: now)
        guard let current = state.current, var mine = localRuns[current.event.id],
            mine.busy || mine.failedHere, now - mine.lastWarning >= configTooLong
        else { return effects }
        mine.lastWarning = now
        localRuns[current.event.id] = mine
        effects.append(
            .multicast(.raise(EventRequest(name: BuiltInTrigger.configTooLong.rawValue, state: 0, node: local))))
        return effects
    }
}
