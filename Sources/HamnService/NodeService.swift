import ClusterTransport
import CommandExecution
import Foundation
import HamnConfiguration
import Logging
import RecoveryPrograms
import RulesEngine
import RulesParser

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
    public let configuration: ServiceConfiguration
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
    private var waiters: [String: [Int: CheckedContinuation<Void, Never>]] = [:]
    private var nextWaiter = 0
    private var monitorFailures: [String: String] = [:]
    private var shuttingDown = false
    public private(set) var hasLeft = false
    /// The engines the transport reports, and how their configurations differ from this one's.
    private var engines: [EngineEntry] = []
    private var configurationDifferences: [String] = []
    /// Why the node must stop (the transport's fatal notice): the service then exits non-zero.
    public private(set) var fatalReason: String?
    /// Rules this node took up (a reload), for the monitors to restart with.
    public nonisolated let reloads: AsyncStream<Reload>
    private let reloadsOut: AsyncStream<Reload>.Continuation
    /// Transport warnings journaled in the current hour (a flood is only logged).
    private var warningBudget = (hour: 0, count: 0)

    public init(
        configuration: ServiceConfiguration, rules: RuleBook, catalogue: VariableCatalogue, transport: any ClusterTransport,
        journal: any EventJournal, logger: Logger, loop: EventLoopThread
    ) {
        self.configuration = configuration
        self.loop = loop
        self.catalogue = catalogue
        self.transport = transport
        self.journal = journal
        writes = JournalWrites(journal: journal, logger: logger)
        self.logger = logger
        coordinator = Coordinator(
            local: configuration.node, rules: rules, priorities: EventPriorities(configuration.priorities),
            configTooLong: configuration.configTooLong)
        monitors = NodeMonitors(rules: rules, catalogue: catalogue)
        (outboxStream, outbox) = AsyncStream<ClusterMessage>.makeStream()
        (reloads, reloadsOut) = AsyncStream<Reload>.makeStream()
    }

    /// New rules and the variables they were checked against.
    public struct Reload: Sendable {
        public var rules: RuleBook
        public var catalogue: VariableCatalogue
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
                fatalReason = "the transport delivers on the thread \(transportLoop.name), not on the service's (\(loop.name))"
                logger.critical("\(fatalReason!)")
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
        hasLeft = true
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
            fatalReason = reason
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
        perform(coordinator.apply(delivery, now: now))
    }

    /// Once a second: `config_too_long`.
    public func tick() {
        apply(.tick)
    }

    private func perform(_ effects: [Effect]) {
        // The step's journal entries are queued together (one transaction, committed off this
        // actor). When the step starts an event, its commands wait until the entries are on
        // disk; otherwise (results, a barrier passed) nothing waits for the journal.
        let entries = effects.compactMap { effect -> JournalEntry? in
            if case .journal(let entry) = effect { entry } else { nil }
        }
        let ticket = entries.isEmpty ? nil : record(entries)
        let startsEvent = entries.contains { if case .started = $0 { true } else { false } }
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
                // The service does not configure fencing yet (the coordinator's policy is off):
                // never asked. Said loudly if it ever is.
                logger.error("asked to fence \(request.node.name), but this service has no fence devices")
            case .leaveCluster:
                logger.notice("cluster services stopped on this node: leaving the cluster")
                note("cluster services stopped on this node: leaving the cluster", kind: "service")
                let transport = self.transport
                // Off this actor's thread: leaving may wait for corosync.
                Task.detached { await transport.leave() }
            }
        }
    }

    /// Starts this node's commands of `run`; with a ticket, once the journal has it.
    private func start(_ run: SegmentRun, after ticket: JournalWrites.Ticket? = nil) {
        let key = "\(run.event.id)/\(run.segment)"
        guard !shuttingDown else {
            note("event \(run.event.id) segment \(run.segment) not started: the service is stopping", kind: "service")
            return
        }
        let timeout = (configuration.timeouts[run.event.name] ?? configuration.defaultTimeout).map { Duration.seconds($0) }
        let executor = SegmentExecutor(
            eventScriptDirectory: configuration.eventScriptDirectory, timeout: timeout, baseEnvironment: baseEnvironment)
        // Commands that call back (`hamn-events wait-event`, `ha-cmd`) find this service here.
        var environment = run.environment
        environment["HAMN_SOCKET"] = configuration.socket
        let (writes, transport, outbox) = (self.writes, self.transport, self.outbox)
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

    private func segmentFinished(key: String) {
        running[key] = nil
    }

    /// Queues `entries` for the journal (one transaction) and logs them; `wait-event` callers
    /// of an event that completed are released once its end is on disk.
    @discardableResult
    private func record(_ entries: [JournalEntry]) -> JournalWrites.Ticket {
        var released: [CheckedContinuation<Void, Never>] = []
        for entry in entries {
            switch entry {
            case .finished(let event, let outcome):
                logger.info("event \(event.id) \(event.name) state \(event.state) node \(event.node.name): \(outcome.rawValue)")
                if outcome == .completed, let waiting = waiters.removeValue(forKey: event.name) {
                    released += waiting.values
                }
            case .started(let event, let displayName, _):
                logger.info("event \(event.id) \(event.name) state \(event.state) node \(event.node.name) starts (\(displayName))")
            case .failed(let event, let node, let segment):
                logger.error("event \(event.id) \(event.name) failed on \(node.name) in segment \(segment): held until resume")
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
            default:
                break
            }
        }
        let release = released
        var afterCommit: (@Sendable () -> Void)?
        if !release.isEmpty {
            afterCommit = { @Sendable in for continuation in release { continuation.resume() } }
        }
        return writes.enqueue(entries.map(JournalWrite.entry), afterCommit: afterCommit)
    }

    private func note(_ text: String, kind: String) {
        writes.enqueue([.note(text, kind: kind)])
    }

    /// Commits what is queued for the journal and records the run's end: the last thing the
    /// service does.
    public func closeJournal() async {
        await writes.close()
    }

    // MARK: Monitors

    /// Samples from the monitors: evaluated, and the events they raise multicast.
    public func observe(_ observations: [SampleObservation]) {
        guard coordinator.isMember, !shuttingDown else { return }
        let time = now
        for observation in observations {
            let outcome = monitors.observe(observation, on: configuration.node, at: time)
            for fault in outcome.faults {
                logger.warning("\(fault)")
                note(fault, kind: "monitor")
            }
            for request in outcome.raised {
                // The raise goes out first: the arming record need not delay the event.
                send(.raise(request))
                recordArming(request.name, request.state, observation, armed: false)
            }
            for (trigger, _) in outcome.rearmed {
                recordArming(trigger.name, trigger.state, observation, armed: true)
            }
        }
    }

    private func recordArming(_ name: String, _ state: Int, _ observation: SampleObservation, armed: Bool) {
        writes.enqueue([
            .arming(
                trigger: name, state: state, instance: observation.instanceText, armed: armed,
                value: observation.value.description)
        ])
    }

    public func monitorFailed(variable: String, message: String) {
        guard monitorFailures[variable] != message else { return }
        monitorFailures[variable] = message
        logger.warning("monitor \(variable): \(message)")
        note("monitor \(variable): \(message)", kind: "monitor")
    }

    public func monitorRecovered(variable: String) {
        guard monitorFailures.removeValue(forKey: variable) != nil else { return }
        logger.notice("monitor \(variable): sampling again")
        note("monitor \(variable): sampling again", kind: "monitor")
    }

    /// A network interface went down or came up here.
    public func raise(_ request: EventRequest) {
        guard coordinator.isMember, !shuttingDown else { return }
        send(.raise(request))
    }

    // MARK: Reload

    /// SIGHUP, with rules that validated here: the reload goes through the cluster, so that
    /// every node takes up its new rules at the same place in the order (`reloadFromDisk`).
    public func requestReload() {
        send(.reloadRules)
    }

    /// A reload delivered (from this node's SIGHUP or another's): this node's rules are read and
    /// validated again now, before the next delivery; events from now on use them, and the
    /// monitors start afresh. With errors, the old rules stay.
    private func reloadFromDisk(requestedBy: String) {
        let cause = requestedBy == configuration.node.name ? "SIGHUP" : "requested by \(requestedBy)"
        let (loaded, report, catalogue) = ServiceRunner.loadRules(configuration)
        guard let rules = loaded else {
            for finding in report.diagnostics where finding.severity == .error {
                logger.error("\(finding.formatted)")
            }
            reloadRefused("\(report.summary) (\(cause))")
            return
        }
        coordinator.replaceRules(rules)
        let transport = self.transport
        let info = EngineInfo(node: configuration.node, digest: ConfigurationDigest.of(configuration, rules: rules))
        Task { await transport.announce(info) }
        monitors = NodeMonitors(rules: rules, catalogue: catalogue)
        logger.notice("rules reloaded: \(rules.rules.count) definitions (\(cause))")
        note("rules reloaded: \(rules.rules.count) definitions (\(cause))", kind: "service")
        reloadsOut.yield(Reload(rules: rules, catalogue: catalogue))
    }

    /// A reload that was refused, for the journal and `mon`.
    public func reloadRefused(_ summary: String) {
        logger.error("rules not reloaded, the old ones stay: \(summary)")
        note("rules not reloaded, the old ones stay: \(summary)", kind: "service")
    }

    // MARK: Shutdown

    /// SIGTERM: no new segment starts; the segments running finish, their results are
    /// multicast and journaled; then the node leaves.
    public func shutDown() async {
        shuttingDown = true
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
            if hasLeft || shuttingDown || fatalReason != nil { "the service is already leaving the cluster" }
            else if !coordinator.isSynchronised { "this node has not yet got the cluster's state" }
            else if !members.contains(local) { "this node is not a member of the cluster" }
            else if members.count == 1 { "this node is alone in the cluster" }
            else if !transport.isQuorate { "this partition has no quorum" }
            else { nil }
        if let reason {
            logger.notice("\(signal): stopping at once: \(reason)")
            note("\(signal): stopping at once: \(reason)", kind: "service")
            return false
        }
        let fallback = "a second \(signal) stops at once, and so does the end of \(Self.seconds(timeout))"
        if let already = coordinator.state.stopping[local.name] {
            // `ha-cmd STOP` came first: its event is the one to wait for.
            let text = "\(signal): already stopping through the cluster: TE_FAIL_NODE state \(already.state) (\(already.rawValue)); \(fallback)"
            logger.notice("\(text)")
            note(text, kind: "service")
            return true
        }
        send(.stopServices(node: local.name, mode: mode))
        let text = "stopping through the cluster: TE_FAIL_NODE state \(mode.state) (\(mode.rawValue)); \(fallback)"
        logger.notice("\(signal): \(text)")
        note(text, kind: "service")
        return true
    }

    /// SIGTERM's fallback: the stop through the cluster is given up (`reason`) and the node
    /// stops as `shutDown()` does. The other nodes see it leave.
    public func stopAtOnce(because reason: String) async {
        guard !hasLeft else { return }
        logger.warning("stopping at once: \(reason)")
        note("stopping at once: \(reason)", kind: "service")
        await shutDown()
    }

    /// `300 s`, `0.5 s`: a duration for the journal.
    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    // MARK: Control requests

    public func handle(_ request: ControlRequest) async -> ControlResponse {
        switch request.command {
        case .status: return status()
        case .history:
            // What is queued is part of the history.
            await writes.flush()
            do {
                let report = try journal.historyReport(limit: request.limit ?? 20)
                return .success(text: report.text, json: report.json)
            } catch {
                return .failure("journal: \(error)")
            }
        case .resume:
            guard coordinator.state.current?.failure != nil || request.cancelQueued == true else {
                return .failure("nothing to resume: no event is held in the failed state")
            }
            send(.resume(cancelQueued: request.cancelQueued ?? false))
            return .success(text: "resume sent\(request.cancelQueued == true ? " (queued events cancelled)" : "")")
        case .trigger:
            guard let name = request.event, !name.isEmpty, !name.contains(where: \.isWhitespace) else {
                return .failure("trigger: an event name without blanks", exitCode: 2)
            }
            let nodeName = request.node ?? configuration.node.name
            guard let node = configuration.nodes.first(where: { $0.name == nodeName }) else {
                return .failure("trigger: no node '\(nodeName)' in the configuration", exitCode: 2)
            }
            send(.raise(EventRequest(name: name, state: request.state ?? 0, node: node)))
            return .success(text: "raised \(name) state \(request.state ?? 0) on \(node.name)")
        case .recovery:
            let selection = selectNodes(request.nodes ?? "")
            guard case .success(let nodes) = selection else { return selection.failureResponse }
            let enabled = request.enabled ?? true
            send(.recovery(enabled: enabled, nodes: nodes.map(\.name)))
            return .success(text: "recovery \(enabled ? "on" : "off") for \(nodes.map(\.name).joined(separator: " "))")
        case .haCmd:
            return await haCmd(request)
        case .waitEvent:
            return await waitEvent(request)
        case .mon:
            return .failure("mon is a stream")
        }
    }

    private enum Selection {
        case success([ClusterNode])
        case failure(String)

        var failureResponse: ControlResponse {
            if case .failure(let message) = self { return .failure(message, exitCode: 2) }
            return .failure("", exitCode: 2)
        }
    }

    private func selectNodes(_ text: String) -> Selection {
        do {
            let range = try NodeRange.parse(text)
            let nodes = configuration.nodes.map { NodeRange.Node(name: $0.name, number: $0.number) }
            let (selected, unmatched) = range.resolve(in: nodes)
            guard unmatched.isEmpty else { return .failure("no such node: \(unmatched.joined(separator: ", "))") }
            guard !selected.isEmpty else { return .failure("the node range selects no node") }
            return .success(selected.map { ClusterNode(name: $0.name, number: $0.number) })
        } catch {
            return .failure("node range: \(error.message)")
        }
    }

    private func haCmd(_ request: ControlRequest) async -> ControlResponse {
        let selection = selectNodes(request.nodes ?? "")
        guard case .success(let nodes) = selection else { return selection.failureResponse }
        let members = coordinator.state.members
        switch request.action?.uppercased() {
        case "STOP", "TAKE", "FORCE":
            let mode: StopMode = request.action!.uppercased() == "STOP" ? .graceful : request.action!.uppercased() == "TAKE" ? .takeover : .forced
            var lines: [String] = []
            for node in nodes {
                if members.contains(node) {
                    send(.stopServices(node: node.name, mode: mode))
                    lines.append("\(node.name): stopping cluster services (\(mode.rawValue), TE_FAIL_NODE state \(mode.state))")
                } else {
                    lines.append("\(node.name): not running cluster services")
                }
            }
            return .success(text: lines.joined(separator: "\n"))
        case "START":
            guard let command = configuration.startCommand else {
                return .failure("ha-cmd START: no start_command in the configuration", exitCode: 1)
            }
            var lines: [String] = []
            var failed = false
            for node in nodes {
                if members.contains(node) {
                    lines.append("\(node.name): already running cluster services")
                    continue
                }
                let step = CommandStep(relationship: .all, command: command, expected: .exactly(0), line: 0, column: 0)
                let result = await SegmentExecutor(timeout: .seconds(120)).run(
                    [step], environment: ["HAMN_START_NODE": node.name, "HAMN_START_NODE_NUMBER": String(node.number)])[0]
                failed = failed || !result.accepted
                lines.append("\(node.name): start_command \(result.termination)\(result.accepted ? "" : ": " + result.outputTail)")
            }
            return failed ? .failure(lines.joined(separator: "\n")) : .success(text: lines.joined(separator: "\n"))
        default:
            return .failure("ha-cmd: the action is START, STOP, TAKE or FORCE", exitCode: 2)
        }
    }

    private func waitEvent(_ request: ControlRequest) async -> ControlResponse {
        guard let name = request.event else { return .failure("wait-event: which event?", exitCode: 2) }
        let timeout = request.timeout ?? 0
        nextWaiter += 1
        let waiter = nextWaiter
        let completed = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    Task { await self.addWaiter(name, waiter, continuation) }
                }
                return true
            }
            if timeout > 0 {
                group.addTask {
                    try? await Task.sleep(for: .seconds(timeout))
                    return false
                }
            }
            let first = await group.next() ?? false
            if !first { await self.releaseWaiter(name, waiter) }
            group.cancelAll()
            return first
        }
        return completed
            ? .success(text: "\(name) completed")
            : ControlResponse(ok: true, text: "\(name): no completion within \(timeout) s", json: nil, error: nil, exitCode: 1)
    }

    private func addWaiter(_ name: String, _ waiter: Int, _ continuation: CheckedContinuation<Void, Never>) {
        if releasedEarly.remove(waiter) != nil {
            continuation.resume()
            return
        }
        waiters[name, default: [:]][waiter] = continuation
    }

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
        continuation.resume()
    }

    /// Follows the journal's log for `mon`, until the client goes away or the service stops.
    public func follow(_ connection: ControlConnection) async {
        var last: Int64?
        var first = true
        while !connection.isClosed, !hasLeft {
            do {
                let (lines, newest) = try journal.logLines(after: last, limit: first ? 50 : 1000)
                first = false
                if let newest { last = newest }
                for line in lines where !connection.send(.success(text: line)) { return }
            } catch {
                connection.send(.failure("journal: \(error)"))
                return
            }
            try? await Task.sleep(for: .milliseconds(200))
        }
    }

    private func status() -> ControlResponse {
        let state = coordinator.state
        let quorate = transport.isQuorate
        var lines: [String] = []
        lines.append("node \(configuration.node.name) (\(configuration.node.number)), transport \(configuration.transport.rawValue)\(coordinator.isSynchronised ? "" : ", waiting for the cluster's state")")
        lines.append("members: \(state.members.map(\.name).joined(separator: " "))")
        if configuration.transport == .corosync {
            let waiting = coordinator.waitingForQuorum.count
            var line = "quorum: \(quorate ? "yes" : "NO: no recovery program runs")"
            if quorate && !coordinator.isQuorate { line += " (back; recovery waits until the membership change that came with it settles)" }
            if waiting > 0 { line += ", \(waiting) segment(s) waiting" }
            lines.append(line)
            for engine in engines {
                lines.append("  engine \(engine.info.node.name) (\(engine.info.node.number)) at corosync \(engine.address), configuration \(engine.info.digest.combined.prefix(12))")
            }
            for line in configurationDifferences { lines.append("WARNING: \(line)") }
        }
        if !state.recoveryOff.isEmpty { lines.append("recovery off: \(state.recoveryOff.sorted().joined(separator: " "))") }
        for run in coordinator.runningEvents {
            var line = "running: event \(run.event.id) \(run.event.name) state \(run.event.state) node \(run.event.node.name) (\(run.displayName)), segment \(run.segment + 1) of \(run.segmentCount)"
            if let failure = run.failure {
                line += "; FAILED on \(failure.node.name) in segment \(failure.segment): held until `hamn-events resume`"
            } else {
                line += "; waiting for \(run.waitingFor.map(\.name).joined(separator: " "))"
            }
            lines.append(line)
        }
        if coordinator.runningEvents.isEmpty { lines.append("running: nothing") }
        lines.append("queue: \(state.queue.isEmpty ? "empty" : state.queue.map { "\($0.name) state \($0.state) node \($0.node.name)" }.joined(separator: "; "))")
        let instances = monitors.instances
        if !instances.isEmpty { lines.append("instances:") }
        for instance in instances {
            lines.append("  \(instance.trigger.name) state \(instance.trigger.state) \(instance.instance): \(instance.armed ? "armed" : "disarmed"), last \(instance.last?.description ?? "none")")
        }
        for (variable, message) in monitorFailures.sorted(by: { $0.key < $1.key }) {
            lines.append("monitor failing: \(variable): \(message)")
        }
        let json = StatusJSON(
            node: configuration.node.name, number: configuration.node.number, transport: configuration.transport.rawValue,
            synchronised: coordinator.isSynchronised, members: state.members.map(\.name), quorate: quorate,
            waitingForQuorum: coordinator.waitingForQuorum.count,
            engines: engines.map {
                .init(
                    node: $0.info.node.name, number: $0.info.node.number, address: $0.address.description,
                    configuration: $0.info.digest.combined)
            },
            configurationDifferences: configurationDifferences,
            recoveryOff: state.recoveryOff.sorted(),
            running: coordinator.runningEvents.map {
                .init(
                    id: $0.event.id, name: $0.event.name, state: $0.event.state, node: $0.event.node.name,
                    displayName: $0.displayName, segment: $0.segment, segments: $0.segmentCount,
                    waitingFor: $0.waitingFor.map(\.name), failedOn: $0.failure?.node.name)
            },
            queue: state.queue.map { .init(id: $0.id, name: $0.name, state: $0.state, node: $0.node.name) },
            instances: instances.map {
                .init(event: $0.trigger.name, state: $0.trigger.state, instance: $0.instance, armed: $0.armed, last: $0.last?.description)
            },
            monitorFailures: monitorFailures)
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let text = (try? encoder.encode(json)).map { String(decoding: $0, as: UTF8.self) }
        return .success(text: lines.joined(separator: "\n"), json: text)
    }
}

/// `status --format json`.
struct StatusJSON: Encodable {
    struct Running: Encodable {
        var id: Int
        var name: String
        var state: Int
        var node: String
        var displayName: String
        var segment: Int
        var segments: Int
        var waitingFor: [String]
        var failedOn: String?
    }

    struct Queued: Encodable {
        var id: Int
        var name: String
        var state: Int
        var node: String
    }

    struct Instance: Encodable {
        var event: String
        var state: Int
        var instance: String
        var armed: Bool
        var last: String?
    }

    struct Engine: Encodable {
        var node: String
        var number: Int
        var address: String
        var configuration: String
    }

    var node: String
    var number: Int
    var transport: String
    var synchronised: Bool
    var members: [String]
    var quorate: Bool
    var waitingForQuorum: Int
    var engines: [Engine]
    var configurationDifferences: [String]
    var recoveryOff: [String]
    var running: [Running]
    var queue: [Queued]
    var instances: [Instance]
    var monitorFailures: [String: String]
}
