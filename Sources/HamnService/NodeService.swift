import ClusterTransport
import CommandExecution
import Foundation
import HamnConfiguration
import HamnMetrics
import Logging
import RecoveryPrograms
import RulesEngine
import RulesParser
import RulesValidation
import TimelineRendering

/// One node's service: the coordinator fed by the transport, the executor running this node's
/// segments, the monitors' samples evaluated, everything journaled; and the control requests.
///
/// All state lives in this actor; deliveries, samples, ticks and requests are applied one at a
/// time. Commands run in tasks of their own; their results come back through the transport.
///
/// The actor runs on an `EventLoopThread` of its own (its executor), not on the pool of
/// threads that the tasks share. With Corosync, that thread is also the connection's dispatch
/// thread: a delivery is applied where it arrives, so a barrier passes as soon as corosync hands
/// over its last message, however busy the pool is with the commands just started. Nothing on
/// the actor may block for long: commands, the journal's commits and the transport's retries
/// run elsewhere.
public actor NodeService {
    /// The configuration in force: a reload changes its live keys (`ConfigurationReload`).
    public private(set) var configuration: ServiceConfiguration
    /// The file it was read from, read again on a reload; nil for the embedded default.
    public nonisolated let configurationSource: ConfigurationSource?
    private nonisolated let loop: EventLoopThread
    public nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
    private var coordinator: Coordinator
    private var monitors: NodeMonitors
    private let catalogue: VariableCatalogue
    private let transport: any ClusterTransport
    private let journal: any EventJournal
    /// The journal's writes, committed off this actor.
    private let writes: JournalWrites
    private let logger: Logger
    private let started = ContinuousClock.now
    /// The environment every command starts from: the service's own, read once.
    private let baseEnvironment = SegmentExecutor.processEnvironment()
    /// Multicasts go through one ordered outbox, so this node's messages keep their order.
    private let outbox: AsyncStream<ClusterMessage>.Continuation
    private let outboxStream: AsyncStream<ClusterMessage>
    /// This node's segments being run, by event id and segment.
    private var running: [String: Task<Void, Never>] = [:]
    /// `wait-event` callers, by event name.
    /// Resumed with true when the event completed, false when the service stops first.
    private var waiters: [String: [Int: CheckedContinuation<Bool, Never>]] = [:]
    /// `trigger` callers waiting for their raise to be delivered and journaled, by number.
    private var triggerWaits: [Int: TriggerWait] = [:]
    private var nextTrigger = 0
    /// Whether the last raise refused for a full queue was journaled (once per streak).
    private var queueFullNoted = false
    /// The queue's length at its last peak, to give memory back once it drains.
    private var queuePeak = 0
    private var nextWaiter = 0
    private var monitorFailures: [String: String] = [:]
    /// Where the node is in its life (`transition(_:)`).
    private var phase = Phase.running
    /// While a delivered reload reads and validates the rules off this thread, the deliveries
    /// that come after it wait here, so that they are applied with the new rules.
    private var heldDeliveries: [Delivery]?
    private var reloading: Task<Void, Never>?
    /// `mon`'s followers, fed from the journal's commits.
    private nonisolated let monFeed: MonFeed
    /// The engines the transport reports, and how their configurations differ from this one's.
    private var engines: [EngineEntry] = []
    private var configurationDifferences: [String] = []
    /// Rules this node took up (a reload), for the monitors to restart with.
    public nonisolated let reloads: AsyncStream<Reload>
    private let reloadsOut: AsyncStream<Reload>.Continuation
    /// `sync` callers waiting for every node's outcome, by request.
    private var syncWaits: [String: SyncWait] = [:]
    private var nextSync = 0
    /// `status --all` requests waiting for the members' instances.
    private var instancesWaits: [String: InstancesWait] = [:]
    private var nextInstancesRequest = 0
    /// The rules tree's digest of each node, as its last `syncOutcome` said, for `status`.
    private var treeDigests: [String: String] = [:]
    /// Transport warnings journaled in the current hour (a flood is only logged).
    private var warningBudget = (hour: 0, count: 0)
    /// This service's Prometheus metrics: `metrics.exposition()` is what `/metrics` serves.
    public nonisolated let metrics: HamnMetrics

    public init(
        configuration: ServiceConfiguration, rules: RuleBook, catalogue: VariableCatalogue,
        transport: any ClusterTransport,
        journal: any EventJournal, logger: Logger, loop: EventLoopThread,
        configurationSource: ConfigurationSource? = nil, metrics: HamnMetrics? = nil
    ) {
        let metrics = metrics ?? HamnMetrics(node: configuration.node.name)
        self.metrics = metrics
        // `hamn_quorate` is what `status` shows as quorum: the transport's flag, read at scrape.
        metrics.followQuorum { transport.isQuorate }
        self.configuration = configuration
        self.configurationSource = configurationSource
        self.loop = loop
        self.catalogue = catalogue
        self.transport = transport
        self.journal = journal
        let monFeed = MonFeed(journal: journal, logger: logger)
        self.monFeed = monFeed
        writes = JournalWrites(
            journal: journal, logger: logger, committed: { monFeed.committed() },
            commitTime: { metrics.journalCommitted(seconds: $0) })
        self.logger = logger
        coordinator = Coordinator(
            local: configuration.node, rules: rules, priorities: EventPriorities(configuration.priorities),
            configTooLong: configuration.configTooLong, fencing: configuration.fencingPolicy,
            noQuorumPolicy: configuration.noQuorumPolicy)
        monitors = NodeMonitors(rules: rules, catalogue: catalogue)
        (outboxStream, outbox) = AsyncStream<ClusterMessage>.makeStream()
        (reloads, reloadsOut) = AsyncStream<Reload>.makeStream()
    }

    /// New rules, the variables they were checked against, and the configuration in force.
    public struct Reload: Sendable {
        public var rules: RuleBook
        public var catalogue: VariableCatalogue
        public var configuration: ServiceConfiguration
    }

    private var now: Double {
        let elapsed = ContinuousClock.now - started
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
    }

    // MARK: Running

    /// Applies the transport's deliveries until this node leaves the cluster (or the transport
    /// ends); sends the outbox meanwhile.
    public func run() async {
        let transport = self.transport
        let outboxStream = self.outboxStream
        let sender = Task {
            for await message in outboxStream { await transport.multicast(message) }
        }
        let notices = Task {
            for await notice in transport.notices { await self.noticed(notice) }
        }
        if let transportLoop = transport.eventLoop {
            guard transportLoop === loop else {
                // A transport on a loop holds its deliveries for the service on that loop: with
                // another, nothing would ever be applied. A wiring error, said at once.
                let reason =
                    "the transport delivers on the thread \(transportLoop.name), not on the service's (\(loop.name))"
                transition(.fatal(reason))
                logger.critical("\(reason)")
                transition(.transportEnded)
                outbox.finish()
                await sender.value
                notices.cancel()
                return
            }
            // This is that loop's thread: from now on each delivery is applied as it arrives.
            transport.deliverDirectly { [weak self] delivery in
                self?.assumeIsolated { $0.apply(delivery) }
            }
        }
        for await delivery in transport.deliveries {
            apply(delivery)
        }
        // What a reload held back is applied before the node counts as gone.
        while let reload = reloading { await reload.value }
        syncWaitsEnded()
        for request in instancesWaits.keys.sorted() {
            finishInstances(request, silent: "not known: this node left the cluster before it answered")
        }
        transition(.transportEnded)
        outbox.finish()
        await sender.value
        // The transport ends its notices with its deliveries: a fatal notice is not missed.
        await notices.value
    }

    private func noticed(_ notice: TransportNotice) {
        switch notice {
        case .quorum:
            break  // the coordinator has it in the deliveries' order; `status` reads the transport's flag
        case .engines(let entries, let differences):
            engines = entries
            for line in differences where !configurationDifferences.contains(line) {
                logger.warning("\(line)")
                note(line, kind: "configuration")
            }
            configurationDifferences = differences
        case .wire(let agreement):
            logger.notice("\(agreement.summary)")
            note(agreement.summary, kind: "transport")
        case .warning(let text):
            logger.warning("\(text)")
            let hour = Int(Date().timeIntervalSince1970 / 3600)
            if warningBudget.hour != hour { warningBudget = (hour, 0) }
            warningBudget.count += 1
            if warningBudget.count <= 100 {
                note(text, kind: "transport")
            } else if warningBudget.count == 101 {
                note("more than 100 transport warnings this hour: the rest are only logged", kind: "transport")
            }
        case .fatal(let reason):
            transition(.fatal(reason))
            logger.critical("\(reason)")
            note(reason, kind: "service")
        }
    }

    /// To the cluster, in this node's order: straight from here when the transport can (no
    /// task in between), else through the outbox.
    private func send(_ message: ClusterMessage) {
        Self.send(message, transport: transport, outbox: outbox)
    }

    private static func send(
        _ message: ClusterMessage, transport: any ClusterTransport, outbox: AsyncStream<ClusterMessage>.Continuation
    ) {
        if !transport.sendWithoutWaiting(message) { outbox.yield(message) }
    }

    private func apply(_ delivery: Delivery) {
        if heldDeliveries != nil {
            heldDeliveries?.append(delivery)
            return
        }
        switch delivery {
        case .message(let sender, .syncTree(let request, let tree)):
            syncFromCluster(request: request, tree: tree, from: sender.name)
        case .message(let sender, .syncRollback(let request)):
            syncFromCluster(request: request, tree: nil, from: sender.name)
        case .message(_, .syncOutcome(let request, let node, let digest, let problem)):
            if let digest { treeDigests[node] = digest }
            syncAnswered(request: request, node: node, outcome: SyncWait.Outcome(digest: digest, problem: problem))
        case .message(_, .instancesAsked(let request)):
            instancesAsked(request)
        case .message(_, .instances(let request, let node, let instances)):
            instancesAnswered(request, node: node, instances: instances, problem: nil)
        case .membership(let change):
            if !change.joined.isEmpty, change.members.contains(configuration.node) { membersJoined(change) }
            for node in change.left {
                for request in instancesWaits.keys.sorted() {
                    instancesAnswered(
                        request, node: node.name, instances: nil, problem: "left the cluster before answering")
                }
                for request in syncWaits.keys {
                    syncAnswered(
                        request: request, node: node.name,
                        outcome: SyncWait.Outcome(digest: nil, problem: "left the cluster before answering"))
                }
            }
        default:
            break
        }
        let ticket = perform(coordinator.apply(delivery, now: now))
        if case .message(let sender, .raise(let request)) = delivery, sender.name == configuration.node.name {
            triggerDelivered(request, ticket: ticket)
        }
        releaseQueueMemoryIfDrained()
        // Three atomic stores: a scrape reads them without visiting this thread.
        metrics.setState(
            queue: coordinator.state.queue.count, members: coordinator.state.members.count,
            coordinatorQuorate: coordinator.isQuorate)
    }

    /// Once a second: `config_too_long`.
    public func tick() {
        apply(.tick)
        writes.check()
    }

    @discardableResult
    private func perform(_ effects: [Effect]) -> JournalWrites.Ticket? {
        // The step's journal entries are queued together (one transaction, committed off this
        // actor). When the step starts an event, its commands wait until the entries are on
        // disk; otherwise (results, a barrier passed) nothing waits for the journal.
        let entries = effects.compactMap { effect -> JournalEntry? in
            if case .journal(let entry) = effect { entry } else { nil }
        }
        let ticket = entries.isEmpty ? nil : record(entries)
        let startsEvent = entries.contains { if case .started = $0 { true } else { false } }
        if let ticket, entries.contains(where: { if case .synchronised = $0 { true } else { false } }) {
            synchronisedTriggers(ticket)
        }
        for effect in effects {
            switch effect {
            case .runSegment(let run):
                start(run, after: startsEvent ? ticket : nil)
            case .multicast(let message):
                send(message)
            case .journal:
                break  // recorded with the step's other entries
            case .reloadRules(let requestedBy):
                reloadFromDisk(requestedBy: requestedBy)
            case .fence(let request):
                startFence(request)
            case .runLocalEvent(let run):
                startLocalEvent(run, after: ticket)
            case .rearm(let instances):
                rearm(instances)
            case .leaveCluster:
                logger.notice("cluster services stopped on this node: leaving the cluster")
                note("cluster services stopped on this node: leaving the cluster", kind: "service")
                let transport = self.transport
                // Off this actor's thread: leaving may wait for corosync.
                Task.detached { await transport.leave() }
            }
        }
        return ticket
    }

    /// R020 again as each command starts: a program swapped, or made replaceable, since the
    /// rules were loaded is refused and fails its event.
    static let pathCheck: @Sendable (String) -> String? = { path in
        var safety = PathSafety()
        return safety.problem(path)
    }

    /// Starts this node's commands of `run`; with a ticket, once the journal has it.
    private func start(_ run: SegmentRun, after ticket: JournalWrites.Ticket? = nil) {
        let key = "\(run.event.id)/\(run.segment)"
        guard phase.startsSegments else {
            note("event \(run.event.id) segment \(run.segment) not started: the service is stopping", kind: "service")
            return
        }
        let timeout = configuration.commandTimeout(for: run.event.name)
        var executor = SegmentExecutor(
            eventScriptDirectory: configuration.eventScriptDirectory, timeout: timeout, baseEnvironment: baseEnvironment
        )
        executor.pathCheck = Self.pathCheck
        // Commands that call back (`hamn-events wait-event`, `ha-cmd`) find this service here.
        var environment = run.environment
        environment["HAMN_SOCKET"] = configuration.socket
        let (writes, transport, outbox) = (self.writes, self.transport, self.outbox)
        // A journal that cannot write: nothing runs before what came before it is on disk.
        let ticket = ticket ?? (writes.problem != nil ? writes.lastTicket : nil)
        // Off the actor: the results go to the cluster from the task that saw the commands
        // end, not after a hop back to this actor (which may be busy with a delivery).
        running[key] = Task.detached {
            if let ticket { await writes.written(ticket) }
            let results = await executor.run(run.commands, environment: environment)
            Self.send(
                .segmentDone(eventID: run.event.id, segment: run.segment, results: results), transport: transport,
                outbox: outbox)
            await self.segmentFinished(key: key)
        }
    }

    /// Runs `TE_QUORUM_LOST` on this node alone (off the actor): its segments one after the
    /// other, the next only when every command of the last met its expected status; each
    /// result and the end are journaled here; nothing goes to the cluster.
    private func startLocalEvent(_ run: LocalEventRun, after ticket: JournalWrites.Ticket?) {
        let key = "local/\(run.name)"
        guard phase.startsSegments else {
            note("\(run.name) not started: the service is stopping", kind: "service")
            return
        }
        let timeout = configuration.commandTimeout(for: run.name)
        var executor = SegmentExecutor(
            eventScriptDirectory: configuration.eventScriptDirectory, timeout: timeout, baseEnvironment: baseEnvironment
        )
        executor.pathCheck = Self.pathCheck
        var environment = run.environment
        environment["HAMN_SOCKET"] = configuration.socket
        let writes = self.writes
        running[key] = Task.detached {
            if let ticket { await writes.written(ticket) }
            var completed = true
            for (segment, commands) in run.segments.enumerated() {
                var segmentEnvironment = environment
                segmentEnvironment["HAMN_SEGMENT"] = String(segment)
                let results = await executor.run(commands, environment: segmentEnvironment)
                await self.localEventRecorded(results.map { .quorumLoss(.command(segment: segment, result: $0)) })
                if results.contains(where: { !$0.accepted }) {
                    completed = false
                    break
                }
            }
            await self.localEventRecorded([.quorumLoss(.finished(completed: completed))])
            await self.segmentFinished(key: key)
        }
    }

    private func localEventRecorded(_ entries: [JournalEntry]) {
        record(entries)
    }

    /// Whether the watchdog's last feed failed (logged once per run of failures).
    private var watchdogFailing = false

    /// Feeds the watchdog, on this actor's thread, while the service is healthy: running or
    /// stopping, not after a fatal error or once out of the cluster.
    public func feedWatchdog(_ watchdog: Watchdog) {
        switch phase {
        case .running, .stoppingThroughCluster, .stoppingAtOnce: break
        case .failed, .left: return
        }
        let fed = watchdog.feed()
        if !fed, !watchdogFailing {
            logger.error("cannot feed the watchdog \(watchdog.device): the node may be reset")
        }
        watchdogFailing = !fed
    }

    private func segmentFinished(key: String) {
        running[key] = nil
    }

    /// Queues `entries` for the journal (one transaction) and logs them; `wait-event` callers
    /// of an event that completed are released once its end is on disk.
    @discardableResult
    private func record(_ entries: [JournalEntry]) -> JournalWrites.Ticket {
        metrics.record(entries, at: now)
        var released: [CheckedContinuation<Bool, Never>] = []
        for entry in entries {
            switch entry {
            case .finished(let event, let outcome):
                logger.info(
                    "event \(event.id) \(event.name) state \(event.state) node \(event.node.name): \(outcome.rawValue)")
                if outcome == .completed, let waiting = waiters.removeValue(forKey: event.name) {
                    released += waiting.values
                }
            case .started(let event, let displayName, _):
                logger.info(
                    "event \(event.id) \(event.name) state \(event.state) node \(event.node.name) starts (\(displayName))"
                )
            case .failed(let event, let node, let segment):
                logger.error(
                    "event \(event.id) \(event.name) failed on \(node.name) in segment \(segment): held until resume")
            case .resumed(let resume):
                logger.notice("\(resume.description)")
            case .rearmed(let node, let instances):
                logger.notice("\(JournalText.rearmed(node: node, instances: instances))")
            case .quorum(let quorate, let waiting):
                if quorate {
                    logger.notice("\(JournalText.quorum(quorate, waiting: waiting))")
                } else {
                    logger.error("\(JournalText.quorum(quorate, waiting: waiting))")
                }
            case .waitsForQuorum(let eventID, let name, let segment):
                logger.error("\(JournalText.waitsForQuorum(eventID: eventID, name: name, segment: segment))")
            case .merged(let alive):
                logger.warning("\(JournalText.merged(alive: alive))")
            case .quorumLoss(let loss):
                switch loss {
                case .finished(false), .noRule: logger.error("\(loss.description)")
                case .command(_, let result) where !result.accepted: logger.error("\(loss.description)")
                default: logger.notice("\(loss.description)")
                }
            case .fence(let fence):
                switch fence {
                case .outcome(_, .failed, _, _), .gaveUp, .needed: logger.error("\(fence.description)")
                default: logger.notice("\(fence.description)")
                }
            default:
                break
            }
        }
        let release = released
        var afterCommit: (@Sendable () -> Void)?
        if !release.isEmpty {
            afterCommit = { @Sendable in for continuation in release { continuation.resume(returning: true) } }
        }
        return writes.enqueue(entries.map(JournalWrite.entry), afterCommit: afterCommit)
    }

    private func note(_ text: String, kind: String) {
        writes.enqueue([.note(text, kind: kind)])
    }

    // MARK: Fencing

    /// Seconds between one failed attempt and the next.
    static let fenceRetryPause = 5.0

    /// This node was chosen to fence `request.node`: runs its device's agent off the service's
    /// thread (after the device's delay, and a pause before a retry), then multicasts the outcome.
    private func startFence(_ request: FenceRequest) {
        let name = request.node.name
        guard case .devices(let devices, _, _) = configuration.fencing, let device = devices[name] else {
            note("fencing \(name): this node's configuration has no fence device for it", kind: "fence")
            send(
                .fenceOutcome(
                    node: name, outcome: .failed(reason: "no fence device for \(name) on \(configuration.node.name)"),
                    attempt: request.attempt))
            return
        }
        note("fencing \(name), attempt \(request.attempt): \(device.agent) action=\(device.action)", kind: "fence")
        let pause =
            (request.attempt > 1 ? Self.fenceRetryPause : 0) + device.delay
            + Double.random(in: 0...max(0, device.delayMax))
        Task.detached { [weak self] in
            if pause > 0 { try? await Task.sleep(for: .seconds(pause)) }
            guard let self, await self.fenceStillNeeded(request) else { return }
            let result = await Self.agent(for: device).run()
            await self.fenceFinished(request, result)
        }
    }

    /// After the device's delay: whether this node is still to fence `request.node`. Not when
    /// the fence was settled meanwhile (an administrator's `fence confirm`, or a heal showed the
    /// node alive: its takeover was cancelled) or this node is stopping; then no agent runs.
    private func fenceStillNeeded(_ request: FenceRequest) -> Bool {
        let name = request.node.name
        if phase.startsSegments, coordinator.state.pendingFences[name]?.fencer == configuration.node {
            return true
        }
        coordinator.fenceNotRun(name)
        note("fencing \(name), attempt \(request.attempt): not needed any more, the agent is not run", kind: "fence")
        return false
    }

    /// What the cluster is told of an agent's run.
    static func outcome(of result: FenceAgent.Result) -> FenceOutcome {
        result.succeeded ? .fenced : .failed(reason: result.summary)
    }

    static func agent(for device: ServiceConfiguration.FenceDevice) -> FenceAgent {
        var agent = FenceAgent(
            agent: device.agent, action: device.action, node: device.node, options: device.options,
            passwordFile: device.passwordFile, timeout: .seconds(device.timeout))
        agent.pathCheck = pathCheck
        return agent
    }

    private func fenceFinished(_ request: FenceRequest, _ result: FenceAgent.Result) {
        guard phase.startsSegments else { return }  // stopping: the next fencer runs it
        send(
            .fenceOutcome(
                node: request.node.name, outcome: Self.outcome(of: result),
                attempt: request.attempt))
    }

    /// `hamn-events fence NODE`: runs this node's device for NODE now and tells the cluster.
    private func fenceByHand(_ name: String) async -> ControlAnswer {
        guard configuration.nodes.contains(where: { $0.name == name }) else {
            return .failed(.invalidArgument, "fence: no node '\(name)' in the configuration")
        }
        guard name != configuration.node.name else {
            return .failed(.invalidArgument, "fence: \(name) is this node")
        }
        guard case .devices(let devices, _, _) = configuration.fencing, let device = devices[name] else {
            return .failed(.notConfigured, "fence: no fence device for \(name) in this node's configuration")
        }
        note("fencing \(name) by hand: \(device.agent) action=\(device.action)", kind: "fence")
        let result = await Self.agent(for: device).run()
        send(
            .fenceOutcome(node: name, outcome: Self.outcome(of: result), attempt: 0)
        )
        return result.succeeded
            ? .done(text: "\(name) fenced (\(device.action)); its takeover may run")
            : .failed(.commandFailed, "fencing \(name) failed: \(result.summary)")
    }

    /// `hamn-events fence confirm NODE`: the administrator made sure NODE is down.
    private func fenceConfirm(_ name: String) -> ControlAnswer {
        guard configuration.nodes.contains(where: { $0.name == name }) else {
            return .failed(.invalidArgument, "fence confirm: no node '\(name)' in the configuration")
        }
        guard !coordinator.state.members.contains(where: { $0.name == name }) else {
            return .failed(.invalidArgument, "fence confirm: \(name) is a member of the cluster: it is not down")
        }
        send(.fenceOutcome(node: name, outcome: .confirmed, attempt: 0))
        let waiting = coordinator.state.pendingFences[name] != nil
        return .done(
            text: "\(name) confirmed down\(waiting ? ": its takeover may run" : " (no takeover was waiting for it)")")
    }

    /// Commits what is queued for the journal and records the run's end: the last thing the
    /// service does.
    public func closeJournal() async {
        // `wait-event` callers are told that the service stopped (not that their event completed).
        let waiting = waiters.values.flatMap(\.values)
        waiters = [:]
        for continuation in waiting { continuation.resume(returning: false) }
        stopping = true
        // `mon` clients get the last lines, then their end (the journal cannot be read once closed).
        await writes.flush()
        let monFeed = self.monFeed
        await BlockingWork.run { monFeed.end() }
        await writes.close()
    }

    // MARK: Monitors

    /// Samples from the monitors: evaluated, and the events they raise multicast.
    public func observe(_ observations: [SampleObservation]) {
        guard coordinator.isMember, phase.startsSegments else { return }
        let time = now
        for observation in observations {
            recentSamples.record(
                variable: observation.variable, instance: observation.instanceText, value: observation.value)
            let outcome = monitors.observe(observation, on: configuration.node, at: time)
            for fault in outcome.faults {
                logger.warning("\(fault)")
                note(fault, kind: "monitor")
            }
            for request in outcome.raised {
                // The raise goes out first: the arming record need not delay the event.
                if queueFull(request, by: "monitor \(observation.variable)") == nil { send(.raise(request)) }
                recordArming(request.name, request.state, observation, armed: false)
            }
            for (trigger, _) in outcome.rearmed {
                recordArming(trigger.name, trigger.state, observation, armed: true)
            }
        }
    }

    /// Recovery is back on for this node: the instances whose events were suppressed are armed
    /// again (the arming journaled as a rearm is), and the next sample evaluates them afresh.
    private func rearm(_ instances: [SuppressedInstance]) {
        for instance in instances {
            let trigger = EventDefinition.Trigger(name: instance.name, state: instance.state)
            guard let last = monitors.rearm(trigger, instance: instance.instance) else { continue }
            writes.enqueue([
                .arming(
                    trigger: instance.name, state: instance.state, instance: instance.instance, armed: true,
                    value: last.description)
            ])
        }
    }

    private func recordArming(_ name: String, _ state: Int, _ observation: SampleObservation, armed: Bool) {
        writes.enqueue([
            .arming(
                trigger: name, state: state, instance: observation.instanceText, armed: armed,
                value: observation.value.description)
        ])
    }

    /// A monitor's failure, logged once until it recovers: a warning, or at info level when
    /// what it reads is not installed here (a newcomer's first screen stays clean).
    public func monitorFailed(variable: String, message: String, notInstalled: Bool = false) {
        guard monitorFailures[variable] != message else { return }
        monitorFailures[variable] = message
        if notInstalled {
            logger.info("monitor \(variable): not sampled: \(message) (not installed here; sampled once it is)")
        } else {
            logger.warning("monitor \(variable): \(message)")
        }
        note("monitor \(variable): \(message)", kind: "monitor")
    }

    public func monitorRecovered(variable: String) {
        guard monitorFailures.removeValue(forKey: variable) != nil else { return }
        logger.notice("monitor \(variable): sampling again")
        note("monitor \(variable): sampling again", kind: "monitor")
    }

    /// A network interface went down or came up here.
    public func raise(_ request: EventRequest) {
        guard coordinator.isMember, phase.startsSegments else { return }
        guard queueFull(request, by: "network") == nil else { return }
        send(.raise(request))
    }

    // MARK: Reload

    /// SIGHUP, with rules that validated here: the reload goes through the cluster, so that
    /// every node takes up its new rules at the same place in the order (`reloadFromDisk`).
    public func requestReload() {
        send(.reloadRules)
    }

    /// A reload delivered (from this node's SIGHUP or another's): this node's configuration
    /// file (when it was started from one) and rules are read, validated and hashed again off
    /// this thread; the deliveries after it wait meanwhile (`heldDeliveries`), so that events
    /// from the reload on use the new rules and configuration, as if they had been taken up in
    /// place. The monitors start afresh. With errors in either, both old ones stay.
    private func reloadFromDisk(requestedBy: String) {
        let cause = requestedBy == configuration.node.name ? "SIGHUP" : "requested by \(requestedBy)"
        let (configuration, source) = (self.configuration, configurationSource)
        heldDeliveries = heldDeliveries ?? []
        reloading = Task {
            let loaded = await BlockingWork.run { Self.load(configuration, source: source) }
            self.tookUp(loaded, cause: cause)
        }
    }

    /// What a reload read from disk, with the digest that the other engines are told.
    private struct LoadedReload: Sendable {
        var prepared: ServiceRunner.PreparedReload
        var digest: ConfigurationDigest?
    }

    private static func load(_ configuration: ServiceConfiguration, source: ConfigurationSource?) -> LoadedReload {
        let prepared = ServiceRunner.prepareReload(current: configuration, source: source)
        let digest = prepared.rules.map { ConfigurationDigest.of(prepared.configuration, rules: $0) }
        return LoadedReload(prepared: prepared, digest: digest)
    }

    /// The reload's end, on this actor: the configuration and rules taken up (or refused), then
    /// the deliveries held meanwhile applied in their order (one of them may be another reload,
    /// which holds the rest again).
    private func tookUp(_ loaded: LoadedReload, cause: String) {
        reloading = nil
        let prepared = loaded.prepared
        if let error = prepared.configurationError {
            configurationRefused(error, cause: cause)
        } else if let rules = prepared.rules, let digest = loaded.digest {
            configuration = prepared.configuration
            coordinator.replaceRules(rules)
            coordinator.priorities = EventPriorities(configuration.priorities)
            coordinator.configTooLong = configuration.configTooLong
            coordinator.fencing = configuration.fencingPolicy
            let transport = self.transport
            let info = EngineInfo(node: configuration.node, digest: digest)
            Task { await transport.announce(info) }
            monitors = NodeMonitors(rules: rules, catalogue: prepared.catalogue)
            logger.notice("rules reloaded: \(rules.rules.count) definitions (\(cause))")
            note("rules reloaded: \(rules.rules.count) definitions (\(cause))", kind: "service")
            if !prepared.applied.isEmpty {
                let text = "configuration reloaded: \(prepared.applied.joined(separator: ", ")) (\(cause))"
                logger.notice("\(text)")
                note(text, kind: "service")
            }
            for (key, position) in prepared.needsRestart {
                let text = "\(position): \(key) changed: needs a restart, the old value stays (\(cause))"
                logger.warning("\(text)")
                note(text, kind: "service")
            }
            reloadsOut.yield(Reload(rules: rules, catalogue: prepared.catalogue, configuration: configuration))
        } else {
            for finding in prepared.report.diagnostics where finding.severity == .error {
                logger.error("\(finding.formatted)")
            }
            reloadRefused("\(prepared.report.summary) (\(cause))")
        }
        releaseHeldDeliveries()
    }

    /// The deliveries held while a reload or sync read the disk, applied in their order (one of
    /// them may hold the rest again).
    private func releaseHeldDeliveries() {
        var held = heldDeliveries ?? []
        heldDeliveries = nil
        while !held.isEmpty {
            apply(held.removeFirst())
            if heldDeliveries != nil {
                heldDeliveries = held + (heldDeliveries ?? [])
                return
            }
        }
    }

    // MARK: Sync

    /// A `sync` waiting for the nodes' outcomes.
    struct SyncWait {
        struct Outcome: Sendable {
            var digest: String?
            var problem: String?
        }
        /// The members when the sync was delivered here; nil before that.
        var expected: [String]?
        var outcomes: [String: Outcome] = [:]
        var continuation: CheckedContinuation<[(String, Outcome)], Never>
    }

    /// `hamn-events sync [--rollback]` (README, "sync"): the tree checked and read here, sent
    /// through the cluster; answered with each node's outcome, failed unless all took it.
    private func sync(rollback: Bool, peer: ControlPeer?) async -> ControlAnswer {
        if let peer, peer.uid != 0 {
            return .failed(.permissionDenied, "sync: only root may change the cluster's rules (uid \(peer.uid))")
        }
        guard coordinator.isMember else {
            return .failed(.syncRefused, "sync: this node is not a member of the cluster")
        }
        // Every build with sync speaks wire 3: a member that speaks only 2 is of an earlier one,
        // which would drop the tree and never answer (docs/decisions.md, "sync").
        if let agreement = transport.wireAgreement, let refusal = agreement.refusal(needing: 3) {
            return .failed(.wireVersion, "sync: \(refusal)")
        }
        var tree: ConfigurationTree?
        if !rollback {
            let (configuration, source) = (self.configuration, configurationSource)
            switch await BlockingWork.run({ TreeSync.prepare(configuration, source: source) }) {
            case .failure(let refusal):
                return .failed(.syncRefused, "sync refused, nothing sent:\n" + refusal.description)
            case .success(let read):
                tree = read
            }
        }
        nextSync += 1
        let request = "\(configuration.node.name)/\(nextSync)"
        let outcomes = await withCheckedContinuation { continuation in
            syncWaits[request] = SyncWait(continuation: continuation)
            send(tree.map { .syncTree(request: request, tree: $0) } ?? .syncRollback(request: request))
            // An engine from before sync drops the message and never answers: not waited for forever.
            Task {
                try? await Task.sleep(for: .seconds(Self.syncAnswerWait))
                await self.syncNotAnswered(request)
            }
        }
        let lines = outcomes.map { node, outcome in
            if let problem = outcome.problem {
                "\(node): kept its old rules: \(problem)"
            } else {
                "\(node): took the tree \(outcome.digest.map { String($0.prefix(12)) } ?? "?")"
            }
        }
        let what = rollback ? "sync --rollback" : "sync"
        let failed = outcomes.filter { $0.1.problem != nil }.map(\.0)
        guard failed.isEmpty else {
            return .failed(
                .syncRefused,
                "\(what): not taken by \(failed.joined(separator: ", ")):\n" + lines.joined(separator: "\n"))
        }
        return .done(text: lines.joined(separator: "\n"))
    }

    /// A sync delivered (from this node or another): its tree written and validated off this
    /// thread, the deliveries after it held meanwhile; then taken up as a reload is, or the old
    /// rules kept and why journaled. Every node answers with `syncOutcome`.
    private func syncFromCluster(request: String, tree: ConfigurationTree?, from sender: String) {
        let what = tree == nil ? "sync --rollback" : "sync"
        let cause = "\(what) from \(sender)"
        if syncWaits[request] != nil, syncWaits[request]?.expected == nil {
            syncWaits[request]?.expected = coordinator.state.members.map(\.name)
        }
        let (configuration, source) = (self.configuration, configurationSource)
        let node = configuration.node.name
        heldDeliveries = heldDeliveries ?? []
        reloading = Task {
            let (applied, loaded) = await BlockingWork.run {
                let applied = TreeSync.apply(tree, configuration: configuration, source: source)
                let loaded = applied.prepared.map { prepared in
                    LoadedReload(
                        prepared: prepared,
                        digest: prepared.rules.map { ConfigurationDigest.of(prepared.configuration, rules: $0) })
                }
                return (applied, loaded)
            }
            self.synced(applied, loaded: loaded, request: request, node: node, cause: cause)
        }
    }

    private func synced(
        _ applied: TreeSync.Applied, loaded: LoadedReload?, request: String, node: String, cause: String
    ) {
        send(.syncOutcome(request: request, node: node, digest: applied.digest, problem: applied.problem))
        if applied.prepared == nil, applied.problem == nil {
            // The tree this node has already (a joiner's catch-up): nothing to write or reload.
            reloading = nil
            releaseHeldDeliveries()
        } else if let loaded {
            let text = "rules tree \(applied.digest.map { String($0.prefix(12)) } ?? "?") written (\(cause))"
            logger.notice("\(text)")
            note(text, kind: "service")
            tookUp(loaded, cause: cause)
        } else {
            reloading = nil
            let text = "rules tree not taken, the old one stays: \(applied.problem ?? "?") (\(cause))"
            logger.error("\(text)")
            note(text, kind: "service")
            releaseHeldDeliveries()
        }
    }

    /// Members joined: every member says which tree it runs (`status` compares them), and the
    /// lowest-numbered member from before the change sends its last synced tree, if it has one,
    /// so that a node that joins later runs the cluster's tree (the others have it already:
    /// for them it changes nothing).
    private func membersJoined(_ change: MembershipChange) {
        let configuration = self.configuration
        let sendsTree = change.members.first { !change.joined.contains($0) } == configuration.node
        let view = change.view
        Task {
            let (digest, last) = await BlockingWork.run {
                (
                    TreeSync.digest(configuration),
                    sendsTree
                        ? ConfigurationTreeFiles.savedTree(root: TreeSync.root(of: configuration), which: .last) : nil
                )
            }
            if let last {
                self.send(.syncTree(request: "\(configuration.node.name)/join-\(view)", tree: last))
            } else if let digest {
                self.send(.syncOutcome(request: "", node: configuration.node.name, digest: digest, problem: nil))
            }
        }
    }

    /// How long `sync` waits for every member's outcome.
    static let syncAnswerWait = 120.0

    private func syncNotAnswered(_ request: String) {
        guard let wait = syncWaits.removeValue(forKey: request) else { return }
        let silent = SyncWait.Outcome(
            digest: nil,
            problem:
                "no answer within \(Self.seconds(Self.syncAnswerWait)) (an engine from before sync drops the message; or it is still writing)"
        )
        let nodes = wait.expected ?? [configuration.node.name]
        wait.continuation.resume(returning: nodes.map { ($0, wait.outcomes[$0] ?? silent) })
    }

    /// Out of the cluster: `sync` callers get the outcomes heard, the rest unknown.
    private func syncWaitsEnded() {
        let waits = syncWaits
        syncWaits = [:]
        for wait in waits.values {
            let nodes = wait.expected ?? [configuration.node.name]
            let unknown = SyncWait.Outcome(
                digest: nil, problem: "not known: this node left the cluster before it answered")
            wait.continuation.resume(returning: nodes.map { ($0, wait.outcomes[$0] ?? unknown) })
        }
    }

    private func syncAnswered(request: String, node: String, outcome: SyncWait.Outcome) {
        guard var wait = syncWaits[request] else { return }
        if wait.outcomes[node] == nil { wait.outcomes[node] = outcome }
        syncWaits[request] = wait
        guard let expected = wait.expected, expected.allSatisfy({ wait.outcomes[$0] != nil }) else { return }
        syncWaits[request] = nil
        wait.continuation.resume(returning: expected.map { ($0, wait.outcomes[$0]!) })
    }

    // MARK: Every member's instances (`status --all`)

    /// A `status --all` waiting for the members' answers.
    struct InstancesWait {
        /// The members when the question was delivered here; nil before that.
        var expected: [String]?
        var answers: [String: [InstanceSummary]] = [:]
        /// Why a member will not answer (it left).
        var gone: [String: String] = [:]
        var continuation: CheckedContinuation<InstancesReport, Never>
    }

    /// How long `status --all` waits for every member's answer.
    static let instancesAnswerWait = 5.0

    /// `status --all`: the question goes through the cluster; every member answers with its
    /// instances at its delivery; the answer lists the members as of the question's delivery
    /// here, naming those that did not answer within `instancesAnswerWait`.
    private func instancesOfEveryNode() async -> ControlAnswer {
        guard coordinator.isMember else {
            return .failed(.notMember, "status --all: this node is not a member of the cluster (status shows its own)")
        }
        nextInstancesRequest += 1
        let request = "\(configuration.node.name)/\(nextInstancesRequest)"
        let report = await withCheckedContinuation { continuation in
            instancesWaits[request] = InstancesWait(continuation: continuation)
            send(.instancesAsked(request: request))
            Task {
                try? await Task.sleep(for: .seconds(Self.instancesAnswerWait))
                await self.finishInstances(
                    request,
                    silent:
                        "NO ANSWER within \(Self.seconds(Self.instancesAnswerWait)) (an engine from before status --all drops the question)"
                )
            }
        }
        return await BlockingWork.run { report.rendered() }
    }

    /// The question delivered: this node answers with its instances (the asker also notes who
    /// must answer: the members now).
    private func instancesAsked(_ request: String) {
        if instancesWaits[request] != nil, instancesWaits[request]?.expected == nil {
            instancesWaits[request]?.expected = coordinator.state.members.map(\.name)
        }
        let own = monitors.instances.map {
            InstanceSummary(
                event: $0.trigger.name, state: $0.trigger.state, instance: $0.instance, armed: $0.armed,
                last: $0.last?.description)
        }
        send(.instances(request: request, node: configuration.node.name, instances: own))
    }

    private func instancesAnswered(_ request: String, node: String, instances: [InstanceSummary]?, problem: String?) {
        guard var wait = instancesWaits[request] else { return }
        if let instances {
            wait.answers[node] = wait.answers[node] ?? instances
        } else if let problem, wait.answers[node] == nil {
            wait.gone[node] = problem
        }
        instancesWaits[request] = wait
        guard let expected = wait.expected, expected.allSatisfy({ wait.answers[$0] != nil || wait.gone[$0] != nil })
        else { return }
        finishInstances(request, silent: "?")
    }

    /// The answer: every expected member's instances, or why there are none.
    private func finishInstances(_ request: String, silent: String) {
        guard let wait = instancesWaits.removeValue(forKey: request) else { return }
        let nodes = wait.expected ?? [configuration.node.name]
        wait.continuation.resume(
            returning: InstancesReport(
                nodes: nodes.map { node in
                    InstancesReport.Node(
                        name: node, instances: wait.answers[node],
                        problem: wait.answers[node] == nil ? (wait.gone[node] ?? silent) : nil)
                }))
    }

    /// A reload that was refused, for the journal and `mon`.
    public func reloadRefused(_ summary: String) {
        logger.error("rules not reloaded, the old ones stay: \(summary)")
        note("rules not reloaded, the old ones stay: \(summary)", kind: "service")
    }

    /// A reload refused for its configuration file (`error` names the file, line and column):
    /// neither the configuration nor the rules are taken up.
    public func configurationRefused(_ error: String, cause: String) {
        let text = "configuration not reloaded, the old one and the old rules stay: \(error) (\(cause))"
        logger.error("\(text)")
        note(text, kind: "service")
    }

    // MARK: Phase

    /// Where the node is in its life; `transition(_:)` is the only place it changes.
    enum Phase: Sendable, Equatable {
        /// A member, or joining: segments start, samples and interface events raise events.
        case running
        /// SIGTERM: `TE_FAIL_NODE` for itself was asked of the cluster (or `ha-cmd STOP` came
        /// first) and its release segments run here. Ends when the event ends (`.leaveCluster`,
        /// then the transport ends), or at once after `deadline` or a second signal.
        case stoppingThroughCluster(StopMode, deadline: ContinuousClock.Instant)
        /// No new segment starts; the running ones finish, then the node leaves.
        case stoppingAtOnce(because: String)
        /// The transport's fatal notice: nothing more starts; the transport ends its
        /// deliveries and the service exits non-zero.
        case failed(reason: String)
        /// The transport's deliveries ended: out of the cluster; `failure` if it was fatal.
        case left(failure: String?)

        /// Whether segments start, and samples and interface changes raise events.
        var startsSegments: Bool {
            switch self {
            case .running, .stoppingThroughCluster: true
            case .stoppingAtOnce, .failed, .left: false
            }
        }
    }

    enum PhaseChange: Sendable {
        case stopThroughCluster(StopMode, deadline: ContinuousClock.Instant)
        case stopAtOnce(because: String)
        case fatal(String)
        case transportEnded
    }

    private func transition(_ change: PhaseChange) {
        switch (phase, change) {
        case (.running, .stopThroughCluster(let mode, let deadline)):
            phase = .stoppingThroughCluster(mode, deadline: deadline)
        case (.running, .stopAtOnce(let reason)), (.stoppingThroughCluster, .stopAtOnce(let reason)):
            phase = .stoppingAtOnce(because: reason)
        case (.running, .fatal(let reason)), (.stoppingThroughCluster, .fatal(let reason)),
            (.stoppingAtOnce, .fatal(let reason)):
            phase = .failed(reason: reason)
        case (.running, .transportEnded), (.stoppingThroughCluster, .transportEnded),
            (.stoppingAtOnce, .transportEnded):
            phase = .left(failure: nil)
        case (.failed(let reason), .transportEnded):
            phase = .left(failure: reason)
        case (.left(nil), .fatal(let reason)):
            // The transport's notices are read to their end after its deliveries.
            phase = .left(failure: reason)
        case (.stoppingThroughCluster, .stopThroughCluster), (.stoppingAtOnce, .stopThroughCluster),
            (.stoppingAtOnce, .stopAtOnce), (.failed, .stopThroughCluster), (.failed, .stopAtOnce), (.failed, .fatal),
            (.left, .stopThroughCluster), (.left, .stopAtOnce), (.left(.some), .fatal), (.left, .transportEnded):
            break  // already further: the first stop, the first fatal reason and the end stand
        }
    }

    /// Whether this node is a member of the cluster (alone: from the start; in a cluster: once
    /// the engines admitted it), still running: what systemd's READY=1 waits for.
    public var isMember: Bool {
        guard case .running = phase else { return false }
        return coordinator.isMember
    }

    /// Why the node must stop (the transport's fatal notice): the service then exits non-zero.
    public var fatalReason: String? {
        switch phase {
        case .failed(let reason): reason
        case .left(let failure): failure
        case .running, .stoppingThroughCluster, .stoppingAtOnce: nil
        }
    }

    /// The transport's deliveries have ended.
    public var hasLeft: Bool {
        if case .left = phase { true } else { false }
    }

    // MARK: Shutdown

    /// SIGTERM: no new segment starts; the segments running finish, their results are
    /// multicast and journaled; then the node leaves.
    public func shutDown() async {
        transition(.stopAtOnce(because: "SIGTERM"))
        note("stopping: waiting for \(running.count) running segment(s)", kind: "service")
        for task in running.values { await task.value }
        // Let the last results go out and come back before leaving.
        try? await Task.sleep(for: .milliseconds(200))
        note("stopped", kind: "service")
        await transport.leave()
    }

    /// SIGTERM's first step (docs/decisions.md, "Stopping a node"). A synchronised, quorate
    /// member of a cluster with other members stops cluster services as `ha-cmd STOP|TAKE`
    /// does: `TE_FAIL_NODE` state 1 or 2 for itself through the cluster, in which it takes
    /// part; when that event ends it leaves (`.leaveCluster`) and `run()` returns. True then.
    /// Otherwise (alone, not synchronised, no quorum, already leaving) false, with the reason
    /// journaled, and the caller stops at once (`shutDown()`).
    public func beginStopThroughCluster(mode: StopMode, signal: String, timeout: Double) -> Bool {
        let local = configuration.node
        let members = coordinator.state.members
        let reason: String? =
            if phase != .running { "the service is already leaving the cluster" } else if !coordinator.isSynchronised {
                "this node has not yet got the cluster's state"
            } else if !members.contains(local) { "this node is not a member of the cluster" } else if members.count == 1
            { "this node is alone in the cluster" } else if !transport.isQuorate { "this partition has no quorum" } else
            { nil }
        if let reason {
            logger.notice("\(signal): stopping at once: \(reason)")
            note("\(signal): stopping at once: \(reason)", kind: "service")
            return false
        }
        let fallback = "a second \(signal) stops at once, and so does the end of \(Self.seconds(timeout))"
        let deadline = ContinuousClock.now + .seconds(timeout)
        if let already = coordinator.state.stopping[local.name] {
            // `ha-cmd STOP` came first: its event is the one to wait for.
            let text =
                "\(signal): already stopping through the cluster: TE_FAIL_NODE state \(already.state) (\(already.rawValue)); \(fallback)"
            transition(.stopThroughCluster(already, deadline: deadline))
            logger.notice("\(text)")
            note(text, kind: "service")
            return true
        }
        send(.stopServices(node: local.name, mode: mode))
        transition(.stopThroughCluster(mode, deadline: deadline))
        let text = "stopping through the cluster: TE_FAIL_NODE state \(mode.state) (\(mode.rawValue)); \(fallback)"
        logger.notice("\(signal): \(text)")
        note(text, kind: "service")
        return true
    }

    /// SIGTERM's fallback: the stop through the cluster is given up (`reason`) and the node
    /// stops as `shutDown()` does. The other nodes see it leave.
    public func stopAtOnce(because reason: String) async {
        guard !hasLeft else { return }
        transition(.stopAtOnce(because: reason))
        logger.warning("stopping at once: \(reason)")
        note("stopping at once: \(reason)", kind: "service")
        await shutDown()
    }

    /// `300 s`, `0.5 s`: a duration for the journal.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    // MARK: Control requests

    /// Answers a control request (every one but `mon`: `follow`). Reading the journal and
    /// rendering reports happen off the service's thread; the actor is visited only to read or
    /// change its state.
    public nonisolated func handle(_ request: ControlRequest, from peer: ControlPeer? = nil) async -> ControlAnswer {
        switch request {
        case .status(let all):
            if all == true { return await instancesOfEveryNode() }
            let report = await statusReport()
            return await BlockingWork.run { report.rendered() }
        case .history(let limit):
            // What is queued is part of the history, unless the journal cannot write now: then
            // what it has, and why the rest is missing.
            let problem = writes.problem
            if problem == nil { await writes.flush() }
            let journal = self.journal
            return await BlockingWork.run {
                do {
                    let report = try journal.historyReport(limit: limit)
                    let warning = problem.map {
                        "JOURNAL: \(JournalWrites.message($0.reason)); \($0.held) write(s) held are not shown\n"
                    }
                    return .report(text: (warning ?? "") + report.text, json: report.json)
                } catch {
                    return .failed(.journal, "journal: \(error)")
                }
            }
        case .timeline(let id, let run):
            // As for history: what is queued for the journal is part of the event.
            if writes.problem == nil { await writes.flush() }
            let journal = self.journal
            return await BlockingWork.run {
                do {
                    guard let timeline = try journal.timeline(event: id, run: run) else {
                        let which = run.map { "event \(id) of run \($0)" } ?? "event \(id)"
                        return .failed(.noSuchEvent, "no \(which) in the journal (see history)")
                    }
                    return .report(text: timeline.summary, json: try timeline.json())
                } catch {
                    return .failed(.journal, "journal: \(error)")
                }
            }
        case .resume(let cancelQueued), .resumeRetry(let cancelQueued), .resumeContinue(let cancelQueued):
            let mode: ResumeMode =
                switch request {
                case .resumeRetry: .retry
                case .resumeContinue: .continue
                default: .skip
                }
            // The password database may be remote (NSS): read off the service's thread.
            var user: String?
            if let peer { user = await BlockingWork.run { peer.userName } }
            return await resume(mode, cancelQueued: cancelQueued, user: user)
        case .trigger(let event, let state, let node):
            return await trigger(event, state: state, node: node)
        case .recovery(let setting, let nodes):
            return await recovery(setting, nodes: nodes)
        case .haCmd(let action, let nodes):
            return await haCmd(action, nodes: nodes)
        case .waitEvent(let name, let timeout):
            return await waitEvent(name, timeout: timeout ?? .zero)
        case .fence(let node):
            return await fenceByHand(node)
        case .fenceConfirm(let node):
            return await fenceConfirm(node)
        case .sync(let rollback):
            return await sync(rollback: rollback, peer: peer)
        case .mon:
            return .failed(.malformedRequest, "mon is a stream: it is followed on its connection")
        }
    }

    /// `mon`: follows the event log on `connection` (its own thread) until the client goes
    /// away, is dropped for being slow, or the service stops. Never touches the actor.
    public nonisolated func follow(node: String?, after: Int64? = nil, on connection: ControlConnection) {
        monFeed.follow(node: node, after: after, on: connection)
    }

    private func resume(_ mode: ResumeMode, cancelQueued: Bool, user: String?) -> ControlAnswer {
        guard coordinator.state.current?.failure != nil || cancelQueued else {
            return .failed(.nothingToResume, "nothing to resume: no event is held in the failed state")
        }
        // A mode needs wire version 3: while an engine that speaks only 2 is in the group, the
        // transport could not send it (docs/decisions.md, "Rolling upgrades").
        if mode != .skip, let agreement = transport.wireAgreement,
            let refusal = agreement.refusal(
                needing: Int(
                    WireFormat.lowestVersion(for: .cluster(.resume(mode, cancelQueued: cancelQueued, user: user)))))
        {
            return .failed(.wireVersion, refusal)
        }
        send(.resume(mode, cancelQueued: cancelQueued, user: user))
        let what =
            switch mode {
            case .skip: "resume sent: the rest of the failed event is skipped"
            case .retry: "resume --retry sent: the failed commands run again where they failed"
            case .continue: "resume --continue sent: the event goes on with its next segment"
            }
        return .done(text: what + (cancelQueued ? " (queued events cancelled)" : ""))
    }

    /// How long `trigger` waits for its raise to be delivered and journaled before saying that
    /// it is not recorded.
    static let triggerRecordWait = 5.0

    struct TriggerWait {
        var key: String
        var matched = false
        /// Delivered while this node was joining: recorded with the cluster's state.
        var awaitingSync = false
        var continuation: CheckedContinuation<String?, Never>
    }

    /// `trigger`: raised through the cluster, answered once this node has applied the raise and
    /// its journal entry (queued, suppressed, no rule) is on disk. Otherwise the answer says it
    /// is not recorded (exit 1): the journal cannot write, or the raise was not delivered
    /// within `triggerRecordWait`. Refused when the queue is full (`queue_limit`).
    private func trigger(_ name: String, state: Int, node nodeName: String?) async -> ControlAnswer {
        let nodeName = nodeName ?? configuration.node.name
        guard let node = configuration.nodes.first(where: { $0.name == nodeName }) else {
            return .failed(.invalidArgument, "trigger: no node '\(nodeName)' in the configuration")
        }
        let request = EventRequest(name: name, state: state, node: node)
        if let refusal = queueFull(request, by: "trigger") { return .failed(.queueFull, refusal) }
        nextTrigger += 1
        let id = nextTrigger
        let key = Self.triggerKey(request)
        let notRecorded: String? = await withCheckedContinuation { continuation in
            triggerWaits[id] = TriggerWait(key: key, continuation: continuation)
            send(.raise(request))
            Task {
                try? await Task.sleep(for: .seconds(Self.triggerRecordWait))
                await self.finishTrigger(
                    id,
                    self.writes.problem.map { JournalWrites.message($0.reason) }
                        ?? "the cluster has not delivered it within \(Self.seconds(Self.triggerRecordWait))")
            }
        }
        let text = "raised \(name) state \(state) on \(node.name)"
        guard let notRecorded else { return .done(text: text) }
        return .failed(.notRecorded, "trigger: \(text), but it is not recorded in the journal: \(notRecorded)")
    }

    private static func triggerKey(_ request: EventRequest) -> String {
        "\(request.name)\u{0}\(request.state)\u{0}\(request.node.name)"
    }

    /// This node's raise was applied: the oldest `trigger` waiting for such a raise is answered
    /// once the step's journal entries are on disk.
    private func triggerDelivered(_ request: EventRequest, ticket: JournalWrites.Ticket?) {
        let key = Self.triggerKey(request)
        guard
            let id = triggerWaits.filter({ $0.value.key == key && !$0.value.matched }).keys.min()
        else { return }
        triggerWaits[id]?.matched = true
        guard let ticket else {
            // Joining: the coordinator holds it until it has the cluster's state, and journals
            // it then (`synchronisedTriggers`).
            triggerWaits[id]?.awaitingSync = true
            return
        }
        finishTrigger(id, after: ticket)
    }

    /// The cluster's state arrived (journaled with `ticket`): the raises held while joining are
    /// in that step's entries.
    private func synchronisedTriggers(_ ticket: JournalWrites.Ticket) {
        for (id, wait) in triggerWaits where wait.awaitingSync { finishTrigger(id, after: ticket) }
    }

    private func finishTrigger(_ id: Int, after ticket: JournalWrites.Ticket) {
        let writes = self.writes
        Task {
            await writes.written(ticket)
            await self.finishTrigger(id, nil)
        }
    }

    /// Answers `trigger` number `id` (once): nil recorded, else why not.
    private func finishTrigger(_ id: Int, _ notRecorded: String?) {
        triggerWaits.removeValue(forKey: id)?.continuation.resume(returning: notRecorded)
    }

    /// Why `request` is refused (`queue_limit` events wait already), journaled and logged once
    /// per streak; nil when the queue has room.
    private func queueFull(_ request: EventRequest, by source: String) -> String? {
        let waiting = coordinator.state.queue.count
        guard waiting >= configuration.queueLimit else {
            queueFullNoted = false
            return nil
        }
        let text =
            "queue full (\(waiting) events wait, queue_limit \(configuration.queueLimit)): \(request.name) state \(request.state) on \(request.node.name) (\(source)) refused"
        logger.error("\(text)")
        if !queueFullNoted {
            queueFullNoted = true
            note("\(text); further refusals until the queue has room are only logged", kind: "queue")
        }
        return text
    }

    /// Once a long queue has drained, the memory it took goes back to the system.
    private func releaseQueueMemoryIfDrained() {
        let waiting = coordinator.state.queue.count
        queuePeak = max(queuePeak, waiting)
        if waiting == 0, queuePeak >= 1000 {
            queuePeak = 0
            Self.trimMemory()
        }
    }

    /// glibc's `malloc_trim(0)` (looked up: Swift's Glibc does not import malloc.h).
    private static func trimMemory() {
        typealias Trim = @convention(c) (Int) -> Int32
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        _ = unsafeBitCast(symbol, to: Trim.self)(0)
    }

    private func recovery(_ setting: ControlRequest.RecoverySetting, nodes text: String) -> ControlAnswer {
        let nodes: [ClusterNode]
        switch selectNodes(text) {
        case .success(let selected): nodes = selected
        case .failure(let error): return .failed(error)
        }
        send(.recovery(enabled: setting == .on, nodes: nodes.map(\.name)))
        return .done(text: "recovery \(setting.rawValue) for \(nodes.map(\.name).joined(separator: " "))")
    }

    private func selectNodes(_ text: String) -> Result<[ClusterNode], ControlError> {
        do {
            let range = try NodeRange.parse(text)
            let nodes = configuration.nodes.map { NodeRange.Node(name: $0.name, number: $0.number) }
            let (selected, unmatched) = range.resolve(in: nodes)
            guard unmatched.isEmpty else {
                return .failure(ControlError(.invalidArgument, "no such node: \(unmatched.joined(separator: ", "))"))
            }
            guard !selected.isEmpty else {
                return .failure(ControlError(.invalidArgument, "the node range selects no node"))
            }
            return .success(selected.map { ClusterNode(name: $0.name, number: $0.number) })
        } catch {
            return .failure(ControlError(.invalidArgument, "node range: \(error.message)"))
        }
    }

    private func haCmd(_ action: ControlRequest.ClusterServicesAction, nodes text: String) async -> ControlAnswer {
        let nodes: [ClusterNode]
        switch selectNodes(text) {
        case .success(let selected): nodes = selected
        case .failure(let error): return .failed(error)
        }
        let members = coordinator.state.members
        guard action == .start else {
            let mode = action.stopMode ?? .graceful
            var lines: [String] = []
            for node in nodes {
                if members.contains(node) {
                    send(.stopServices(node: node.name, mode: mode))
                    lines.append(
                        "\(node.name): stopping cluster services (\(mode.rawValue), TE_FAIL_NODE state \(mode.state))")
                } else {
                    lines.append("\(node.name): not running cluster services")
                }
            }
            return .done(text: lines.joined(separator: "\n"))
        }
        guard let command = configuration.startCommand else {
            return .failed(.notConfigured, "ha-cmd START: no start_command in the configuration")
        }
        var lines: [String] = []
        var failed = false
        for node in nodes {
            if members.contains(node) {
                lines.append("\(node.name): already running cluster services")
                continue
            }
            let step = CommandStep(relationship: .all, command: command, expected: .exactly(0), line: 0, column: 0)
            var executor = SegmentExecutor(timeout: .seconds(120))
            executor.pathCheck = Self.pathCheck
            let results = await executor.run(
                [step], environment: ["HAMN_START_NODE": node.name, "HAMN_START_NODE_NUMBER": String(node.number)])
            guard let result = results.first else { continue }
            failed = failed || !result.accepted
            lines.append(
                "\(node.name): start_command \(result.termination)\(result.accepted ? "" : ": " + result.outputTail)")
        }
        return failed
            ? .failed(.commandFailed, lines.joined(separator: "\n")) : .done(text: lines.joined(separator: "\n"))
    }

    /// `timeout`: 0 for none.
    private func waitEvent(_ name: String, timeout: BoundedDuration) async -> ControlAnswer {
        nextWaiter += 1
        let waiter = nextWaiter
        // nil: the timeout passed; false: the service stops.
        let completed = await withTaskGroup(of: Bool?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    Task { await self.addWaiter(name, waiter, continuation) }
                }
            }
            // Ends the wait at the timeout, or when the caller's task is cancelled (its client
            // hung up: ControlServer), whichever comes first.
            group.addTask {
                if timeout > .zero {
                    try? await Task.sleep(for: timeout.duration)
                } else {
                    while !Task.isCancelled { try? await Task.sleep(for: .seconds(3600)) }
                }
                return nil
            }
            let first = await group.next() ?? nil
            if first == nil { await self.releaseWaiter(name, waiter) }
            group.cancelAll()
            return first
        }
        switch completed {
        case true?: return .done(text: "\(name) completed")
        case false?:
            return .failed(.serviceStopped, "wait-event: \(name): the service stopped before it completed")
        case nil:
            return .failed(.timeout, "wait-event: \(name): no completion within \(Self.seconds(timeout.seconds))")
        }
    }

    private func addWaiter(_ name: String, _ waiter: Int, _ continuation: CheckedContinuation<Bool, Never>) {
        if releasedEarly.remove(waiter) != nil {
            continuation.resume(returning: false)
            return
        }
        if stopping {
            continuation.resume(returning: false)
            return
        }
        waiters[name, default: [:]][waiter] = continuation
    }

    /// The service stops: a `wait-event` that comes now is answered at once.
    private var stopping = false

    /// Waiters that timed out before their continuation was registered.
    private var releasedEarly: Set<Int> = []

    /// Ends one caller's wait for `name` that timed out (its task group needs every child to
    /// finish); the other callers waiting for `name` go on waiting.
    private func releaseWaiter(_ name: String, _ waiter: Int) {
        guard let continuation = waiters[name]?.removeValue(forKey: waiter) else {
            releasedEarly.insert(waiter)
            return
        }
        if waiters[name]?.isEmpty == true { waiters[name] = nil }
        continuation.resume(returning: false)
    }

    /// What `status` shows, copied in one step (rendered off this actor).
    private func statusReport(listingInstances: Bool = true) -> StatusReport {
        let state = coordinator.state
        return StatusReport(
            node: configuration.node, transport: configuration.transport, synchronised: coordinator.isSynchronised,
            members: state.members, quorate: transport.isQuorate, coordinatorQuorate: coordinator.isQuorate,
            waitingForQuorum: coordinator.waitingForQuorum.count, engines: engines,
            wireVersion: transport.wireAgreement?.version ?? Int(WireFormat.version),
            configurationDifferences: configurationDifferences, recoveryOff: state.recoveryOff.sorted(),
            running: coordinator.runningEvents, queue: state.queue, monitors: listingInstances ? monitors : nil,
            rules: coordinator.rules,
            recent: listingInstances ? recentSamples : RecentSamples(),
            monitorFailures: monitorFailures, fencingWarning: configuration.fencingWarning,
            pendingFences: state.pendingFences.values.sorted { $0.node < $1.node },
            fenceAttempts: coordinator.fencing.attempts,
            journalProblem: writes.problem.map {
                "\(JournalWrites.message($0.reason)) (since \(JournalText.stamp($0.since, timeZone: .current)), \($0.held) write(s) held)"
            }, queueLimit: configuration.queueLimit, treeDigests: treeDigests,
            webView: webView ?? (configuration.http == nil ? .off : .starting))
    }

    // MARK: The web view

    /// What `status` says of the web view; the runner sets it once the listener bound or failed
    /// (until then: starting, or off when not configured).
    private var webView: WebViewStatus?
    /// The web view's last read of the history: read again once the journal committed.
    private nonisolated let viewHistory = ViewHistory()
    /// The web view's instances, listed at most once a second.
    private nonisolated let viewInstances = ViewInstances()

    /// The web view's sparklines: each instance's last samples.
    private var recentSamples = RecentSamples()

    func setWebView(_ status: WebViewStatus) {
        webView = status
    }

    /// The web view's state, one JSON document: `{"status": STATUS, "history": HISTORY}`, the
    /// documents of `status --format json` (its instances at most a second old) and
    /// `history --format json` without commands and barriers (the newest `historyLimit` events
    /// that the journal committed: the view never makes it commit sooner).
    /// The actor is visited only to copy the status; rendering and the journal read are off it,
    /// at the lowest CPU priority (`ViewWork`).
    public nonisolated func webSnapshot(historyLimit: Int = 20) async -> String {
        let journal = self.journal
        let writes = self.writes
        let viewHistory = self.viewHistory
        let viewInstances = self.viewInstances
        // The history first, the status after it: an event the history shows completed is then
        // never shown running too (the service ends the event before its journal commit).
        let history = await ViewWork.shared.run {
            viewHistory.json(limit: historyLimit, journal: journal, committed: writes.committedTicket)
        }
        // The monitors are copied only when the view lists the instances (once a second).
        let now = ContinuousClock.now
        let report = await statusReport(listingInstances: viewInstances.isDue(at: now))
        return await ViewWork.shared.run {
            #"{"status":\#(viewInstances.json(report, now: now)),"history":\#(history)}"#
        }
    }

    /// The timeline of event `event` of run `run` for the web view, or nil (off the actor).
    public nonisolated func webTimeline(run: Int64, event: Int) async -> Timeline? {
        let journal = self.journal
        return await BlockingWork.run { try? journal.timeline(event: event, run: run) }
    }
}
