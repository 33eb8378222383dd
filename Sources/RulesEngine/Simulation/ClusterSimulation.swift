import RecoveryPrograms
import RulesParser

/// Several nodes, each with its own `Coordinator`, on a `LoopbackGroup`, on a virtual clock.
/// Commands are not run: an oracle says how each one ends and how long it takes.
///
/// This is what `simulate` and `test` run, and what the randomised barrier tests drive.
public struct ClusterSimulation: Sendable {
    /// How a simulated command ends.
    public struct CommandOutcome: Sendable, Hashable {
        public var status: Int32
        /// Seconds on the virtual clock.
        public var duration: Double

        public init(status: Int32 = 0, duration: Double = 0) {
            self.status = status
            self.duration = duration
        }
    }

    public typealias CommandOracle =
        @Sendable (_ node: ClusterNode, _ event: ClusterEvent, _ segment: Int, _ command: CommandStep) -> CommandOutcome
    /// The same, told which run of this command (by its text) on this node it is, from 1: for a
    /// command that fails, then succeeds when run again (`resume --retry`).
    public typealias CountingCommandOracle =
        @Sendable (
            _ node: ClusterNode, _ event: ClusterEvent, _ segment: Int, _ command: CommandStep, _ run: Int
        ) -> CommandOutcome

    /// How a simulated fence ends: the agent powers the node off (it starts again
    /// `restartDelay` later, a reboot) or fails; after `duration` seconds.
    public struct FenceResult: Sendable, Hashable {
        public var succeeds: Bool
        public var duration: Double

        public init(succeeds: Bool = true, duration: Double = 0) {
            self.succeeds = succeeds
            self.duration = duration
        }
    }

    public typealias FenceOracle =
        @Sendable (_ target: ClusterNode, _ fencer: ClusterNode, _ attempt: Int) -> FenceResult

    /// Something that happens at a time.
    public enum Action: Sendable {
        /// The node crashes (or loses power): it leaves the membership at once, losing what it
        /// had not sent, and holds nothing any more.
        case crash(String)
        /// The node's engine is killed (kill -9) while the node lives on, holding what it held.
        /// `join` starts it again.
        case killEngine(String)
        /// `ha-cmd NODE STOP|TAKE|FORCE`.
        case stop(String, StopMode)
        /// The node (re)starts and joins.
        case join(ClusterNode)
        /// A member multicasts (a trigger, resume, recovery off/on).
        case multicast(from: String, ClusterMessage)
        /// An operator's command on whichever node is up (the lowest numbered member).
        case fromAnyMember(ClusterMessage)
        /// A node observes a sample of a resource variable's instance.
        case sample(node: String, SampleObservation)
        /// A node's commands of a segment have finished.
        case segmentFinished(ClusterNode, incarnation: Int, SegmentRun, [CommandResult])
        /// The network splits the members into these parts (by node name); see `LoopbackGroup`.
        case partition([[String]])
        /// The network is whole again: the merge rule decides which part stays; the engines of
        /// the others stop and start again `restartDelay` later (systemd's restart).
        case heal
        /// A fence agent run by `fencer` ended.
        case fenceFinished(fencer: ClusterNode, incarnation: Int, FenceRequest, FenceResult)
        /// A node's commands of a segment of its local event (`TE_QUORUM_LOST`) have finished.
        case localSegmentFinished(ClusterNode, incarnation: Int, LocalEventRun, segment: Int, [CommandResult])
    }

    public struct TraceEntry: Sendable {
        public enum Kind: Sendable {
            case journal(JournalEntry)
            /// The node starts its commands of a segment.
            case segmentStarted(SegmentRun)
            /// The node's commands of a segment ended.
            case segmentFinished(eventID: Int, segment: Int, results: [CommandResult])
            case crashed
            /// The node's engine was killed; the node lives on.
            case engineKilled
            case joined
            /// The node left after stopping cluster services.
            case stopped
            /// The network split: this node is in a part with these members.
            case partitioned(part: [ClusterNode], quorate: Bool)
            /// A heal merged this node's part into a larger one: its engine stops (and restarts).
            case lostMerge
            /// A heal: this node's part stays.
            case healed
            /// A fence agent powered this node off.
            case poweredOff
            /// A predicate became true on this node and it raised the event.
            case raised(EventRequest)
            /// A predicate could not be evaluated (division by zero), once per definition and instance.
            case evaluationFault(String)
        }

        public var time: Double
        public var node: ClusterNode
        public var kind: Kind
    }

    public let rules: RuleBook
    public let nodes: [ClusterNode]
    public private(set) var clock: Double = 0
    public private(set) var group: LoopbackGroup
    /// The running nodes' coordinators, by node name.
    public private(set) var coordinators: [String: Coordinator] = [:]
    public private(set) var trace: [TraceEntry] = []
    /// True when `run` stopped because it reached its step limit.
    public private(set) var exhausted = false
    /// Deliveries made, for reports.
    public private(set) var deliveries = 0

    private let oracle: CountingCommandOracle
    /// How many times each command (node, text) has run, for the counting oracle.
    private var commandRuns: [String: Int] = [:]
    private let fenceOracle: FenceOracle
    private let fencing: FencingPolicy
    private let priorities: EventPriorities
    private let configTooLong: Double
    private let noQuorumPolicy: NoQuorumPolicy
    private var timed: [(time: Double, sequence: Int, action: Action)] = []
    private var scheduled = 0
    private var incarnations: [String: Int] = [:]
    /// The nodes that are powered on (their engines may be dead).
    public private(set) var powered: Set<String> = []
    private var monitors: [String: NodeMonitors] = [:]
    private let catalogue: VariableCatalogue
    /// Ticks (for `config_too_long`) once a second while an event runs.
    public var ticks = true
    /// Seconds from a lost merge to the engine's fresh start.
    public var restartDelay = 5.0
    /// Called with every delivery as it is made, before it is applied (for checks in tests).
    public var observer: (@Sendable (Delivery, [ClusterNode], Double) -> Void)?

    /// - Parameter members: the nodes that are members at time 0 (no `TE_JOIN_NODE` for them).
    public init(
        nodes: [ClusterNode], members: [ClusterNode]? = nil, rules: RuleBook, catalogue: VariableCatalogue = .builtIn,
        priorities: EventPriorities = .init(), configTooLong: Double = 360, seed: UInt64? = nil,
        fencing: FencingPolicy = .none, noQuorumPolicy: NoQuorumPolicy = .freeze,
        fenceOracle: @escaping FenceOracle = { _, _, _ in FenceResult() },
        oracle: @escaping CommandOracle = { _, _, _, _ in CommandOutcome() },
        countingOracle: CountingCommandOracle? = nil
    ) {
        let members = (members ?? nodes).sorted()
        self.nodes = nodes.sorted()
        self.rules = rules
        self.catalogue = catalogue
        self.priorities = priorities
        self.configTooLong = configTooLong
        self.oracle = countingOracle ?? { node, event, segment, step, _ in oracle(node, event, segment, step) }
        self.fencing = fencing
        self.fenceOracle = fenceOracle
        self.noQuorumPolicy = noQuorumPolicy
        self.group = LoopbackGroup(members: members, seed: seed)
        for node in members {
            coordinators[node.name] = Coordinator(
                local: node, rules: rules, priorities: priorities, configTooLong: configTooLong, fencing: fencing,
                noQuorumPolicy: noQuorumPolicy, initialMembers: members)
            monitors[node.name] = NodeMonitors(rules: rules, catalogue: catalogue)
            incarnations[node.name] = 1
            powered.insert(node.name)
        }
    }

    public mutating func schedule(at time: Double, _ action: Action) {
        scheduled += 1
        let entry = (time: time, sequence: scheduled, action: action)
        let index = timed.firstIndex { ($0.time, $0.sequence) > (time, scheduled) } ?? timed.endIndex
        timed.insert(entry, at: index)
    }

    /// Whether any node is running an event.
    public var isBusy: Bool {
        coordinators.values.contains { !$0.runningEvents.isEmpty }
    }

    /// Runs until `until` (virtual seconds), or, without it, until nothing more can happen:
    /// no action is scheduled and nothing is waiting to be delivered. A held (failed) event
    /// does not keep the simulation going without `until`.
    public mutating func run(until: Double? = nil, maximumSteps: Int = 5_000_000) {
        var steps = 0
        while true {
            drain()
            steps += 1
            if steps > maximumSteps {
                exhausted = true
                return
            }
            let nextAction = timed.first?.time
            let nextTick: Double? = ticks && isBusy ? (clock + 1).rounded(.down) : nil
            // A node's TE_QUORUM_LOST falls due (a tick for that node alone, at that time).
            // Or a fencer's window for a node that did not join closes.
            let nextDue = coordinators.values.flatMap { [$0.quorumLoss.due, $0.nextFenceDue].compactMap { $0 } }
                .filter { $0 > clock }.min()
            guard nextAction != nil || nextDue != nil || (until != nil && nextTick != nil) else { return }
            let next = [nextAction, nextTick, nextDue].compactMap { $0 }.min()!
            if let until, next > until {
                clock = until
                return
            }
            clock = next
            if let nextDue, nextDue == next, nextAction.map({ nextDue < $0 }) ?? true, nextTick != next {
                for name in coordinators.keys.sorted()
                where coordinators[name]?.quorumLoss.due == nextDue || coordinators[name]?.nextFenceDue == nextDue {
                    apply(.tick, to: name)
                }
                continue
            }
            if let nextTick, nextTick == next, nextAction.map({ nextTick < $0 }) ?? true {
                for name in coordinators.keys.sorted() {
                    apply(.tick, to: name)
                }
                continue
            }
            perform(timed.removeFirst().action)
        }
    }

    private mutating func perform(_ action: Action) {
        switch action {
        case .crash(let name):
            guard let node = nodes.first(where: { $0.name == name }), powered.contains(name) else { return }
            powered.remove(name)
            guard coordinators[name] != nil else {
                // Its engine was dead already: the node goes down with what it held.
                trace.append(TraceEntry(time: clock, node: node, kind: .crashed))
                return
            }
            coordinators[name] = nil
            monitors[name] = nil
            incarnations[name, default: 0] += 1
            group.crash(node)
            trace.append(TraceEntry(time: clock, node: node, kind: .crashed))
        case .killEngine(let name):
            guard let node = nodes.first(where: { $0.name == name }), coordinators[name] != nil else { return }
            coordinators[name] = nil
            monitors[name] = nil
            incarnations[name, default: 0] += 1
            group.crash(node)
            trace.append(TraceEntry(time: clock, node: node, kind: .engineKilled))
        case .stop(let name, let mode):
            guard let node = nodes.first(where: { $0.name == name }) else { return }
            group.multicast(from: node, .stopServices(node: name, mode: mode))
        case .join(let node):
            guard coordinators[node.name] == nil else { return }
            incarnations[node.name, default: 0] += 1
            powered.insert(node.name)
            coordinators[node.name] = Coordinator(
                local: node, rules: rules, priorities: priorities, configTooLong: configTooLong, fencing: fencing,
                noQuorumPolicy: noQuorumPolicy)
            monitors[node.name] = NodeMonitors(rules: rules, catalogue: catalogue)
            group.join(node)
            trace.append(TraceEntry(time: clock, node: node, kind: .joined))
        case .multicast(let name, let message):
            guard let node = nodes.first(where: { $0.name == name }) else { return }
            group.multicast(from: node, message)
        case .fromAnyMember(let message):
            guard let node = nodes.first(where: { coordinators[$0.name]?.isMember == true }) else { return }
            group.multicast(from: node, message)
        case .sample(let name, let observation):
            guard let node = nodes.first(where: { $0.name == name }), coordinators[name] != nil,
                var monitor = monitors[name]
            else { return }
            let outcome = monitor.observe(observation, on: node, at: clock)
            monitors[name] = monitor
            for fault in outcome.faults {
                trace.append(TraceEntry(time: clock, node: node, kind: .evaluationFault(fault)))
            }
            for request in outcome.raised {
                trace.append(TraceEntry(time: clock, node: node, kind: .raised(request)))
                group.multicast(from: node, .raise(request))
            }
        case .partition(let names):
            let parts = names.map { part in nodes.filter { part.contains($0.name) } }
            group.partition(parts)
            guard group.isPartitioned else { return }
            for node in group.members {
                trace.append(
                    TraceEntry(
                        time: clock, node: node,
                        kind: .partitioned(part: group.partMembers(of: node), quorate: group.isQuorate(node))))
            }
        case .heal:
            guard group.isPartitioned else { return }
            let losers = group.heal()
            for node in group.members {
                trace.append(TraceEntry(time: clock, node: node, kind: .healed))
            }
            for node in losers {
                coordinators[node.name] = nil
                monitors[node.name] = nil
                incarnations[node.name, default: 0] += 1
                trace.append(TraceEntry(time: clock, node: node, kind: .lostMerge))
                schedule(at: clock + restartDelay, .join(node))
            }
        case .fenceFinished(let fencer, let incarnation, let request, let result):
            // The agent acted whether or not its caller is still there to say so.
            if result.succeeds, powered.contains(request.node.name) {
                perform(.crash(request.node.name))
                trace.append(TraceEntry(time: clock, node: request.node, kind: .poweredOff))
                schedule(at: clock + restartDelay, .join(request.node))
            }
            guard incarnations[fencer.name] == incarnation, coordinators[fencer.name] != nil else { return }
            let outcome: FenceOutcome = result.succeeds ? .fenced : .failed(reason: "the fence agent failed")
            group.multicast(
                from: fencer, .fenceOutcome(node: request.node.name, outcome: outcome, attempt: request.attempt))
        case .localSegmentFinished(let node, let incarnation, let run, let segment, let results):
            guard incarnations[node.name] == incarnation, coordinators[node.name] != nil else { return }
            trace.append(
                TraceEntry(
                    time: clock, node: node, kind: .segmentFinished(eventID: 0, segment: segment, results: results)))
            for result in results {
                trace.append(
                    TraceEntry(
                        time: clock, node: node, kind: .journal(.quorumLoss(.command(segment: segment, result: result)))
                    ))
            }
            if results.allSatisfy(\.accepted), segment + 1 < run.segments.count {
                startLocalSegment(run, segment: segment + 1, on: node)
            } else {
                let completed = results.allSatisfy(\.accepted)
                trace.append(
                    TraceEntry(time: clock, node: node, kind: .journal(.quorumLoss(.finished(completed: completed)))))
            }
        case .segmentFinished(let node, let incarnation, let run, let results):
            guard incarnations[node.name] == incarnation, coordinators[node.name] != nil else { return }
            trace.append(
                TraceEntry(
                    time: clock, node: node,
                    kind: .segmentFinished(eventID: run.event.id, segment: run.segment, results: results)))
            group.multicast(from: node, .segmentDone(eventID: run.event.id, segment: run.segment, results: results))
        }
    }

    /// Delivers everything sequenced, to every recipient, handling the effects as they come.
    private mutating func drain() {
        while let (delivery, recipients) = group.next() {
            deliveries += 1
            observer?(delivery, recipients, clock)
            for node in recipients {
                apply(delivery, to: node.name)
            }
        }
    }

    /// The oracle's outcome of each command of `run` on `node`, and the longest duration.
    private mutating func outcomes(of run: SegmentRun, on node: ClusterNode) -> ([CommandResult], Double) {
        var longest = 0.0
        let results = run.commands.map { step in
            let key = node.name + "\u{0}" + step.command
            commandRuns[key, default: 0] += 1
            let outcome = oracle(node, run.event, run.segment, step, commandRuns[key]!)
            longest = max(longest, outcome.duration)
            let termination = Termination.exited(outcome.status)
            return CommandResult(
                command: step.command, line: step.line, termination: termination,
                accepted: CommandResult.accepts(step.expected, termination), duration: outcome.duration,
                outputTail: "")
        }
        return (results, longest)
    }

    /// A segment of a node's local event: traced as a segment of event 0 (the local event is
    /// outside the cluster's numbering).
    private mutating func startLocalSegment(_ run: LocalEventRun, segment: Int, on node: ClusterNode) {
        var environment = run.environment
        environment["HAMN_SEGMENT"] = String(segment)
        let event = ClusterEvent(
            id: 0, name: run.name, state: 0, node: node, resource: nil, priority: 0, arrival: 0)
        let segmentRun = SegmentRun(
            event: event, segment: segment, commands: run.segments[segment], environment: environment)
        trace.append(TraceEntry(time: clock, node: node, kind: .segmentStarted(segmentRun)))
        let (results, longest) = outcomes(of: segmentRun, on: node)
        schedule(
            at: clock + longest,
            .localSegmentFinished(node, incarnation: incarnations[node.name] ?? 0, run, segment: segment, results))
    }

    /// `fencer` runs the agent for `request`: the oracle says how it ends.
    private mutating func runAgent(_ request: FenceRequest, by fencer: ClusterNode) {
        let result = fenceOracle(request.node, fencer, request.attempt)
        schedule(
            at: clock + result.duration,
            .fenceFinished(fencer: fencer, incarnation: incarnations[fencer.name] ?? 0, request, result))
    }

    private mutating func apply(_ delivery: Delivery, to name: String) {
        guard var coordinator = coordinators[name] else { return }
        let effects = coordinator.apply(delivery, now: clock)
        coordinators[name] = coordinator
        let node = coordinator.local
        for effect in effects {
            switch effect {
            case .runSegment(let run):
                trace.append(TraceEntry(time: clock, node: node, kind: .segmentStarted(run)))
                let (results, longest) = outcomes(of: run, on: node)
                schedule(
                    at: clock + longest,
                    .segmentFinished(node, incarnation: incarnations[name] ?? 0, run, results))
            case .runLocalEvent(let run):
                if run.segments.isEmpty {
                    trace.append(
                        TraceEntry(time: clock, node: node, kind: .journal(.quorumLoss(.finished(completed: true)))))
                } else {
                    startLocalSegment(run, segment: 0, on: node)
                }
            case .multicast(let message):
                group.multicast(from: node, message)
            case .journal(let entry):
                trace.append(TraceEntry(time: clock, node: node, kind: .journal(entry)))
            case .reloadRules:
                break  // a simulation's rules are given, not files to read again
            case .rearm(let instances):
                for instance in instances {
                    _ = monitors[name]?.rearm(
                        .init(name: instance.name, state: instance.state), instance: instance.instance)
                }
            case .fence(let request):
                runAgent(request, by: node)
            case .leaveCluster:
                coordinators[name] = nil
                incarnations[name, default: 0] += 1
                group.leave(node)
                trace.append(TraceEntry(time: clock, node: node, kind: .stopped))
                return  // what it would have done next, it does not do: it is gone
            }
        }
    }
}
