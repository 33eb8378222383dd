import Foundation
import Logging
import RecoveryPrograms
import RulesParser

/// One node's service: the coordinator fed by the transport, the executor running this node's
/// segments, the monitors' samples evaluated, everything journaled; and the control requests.
///
/// All state lives in this actor; deliveries, samples, ticks and requests are applied one at a
/// time. Commands run in tasks of their own; their results come back through the transport.
public actor NodeService {
    public let configuration: ServiceConfiguration
    private var coordinator: Coordinator
    private var monitors: NodeMonitors
    private let catalogue: VariableCatalogue
    private let transport: any ClusterTransport
    private let journal: any EventJournal
    private let logger: Logger
    private let started = ContinuousClock.now
    /// Multicasts go through one ordered outbox, so this node's messages keep their order.
    private let outbox: AsyncStream<ClusterMessage>.Continuation
    private let outboxStream: AsyncStream<ClusterMessage>
    /// This node's segments being run, by event id and segment.
    private var running: [String: Task<Void, Never>] = [:]
    /// `wait-event` callers, by event name.
    private var waiters: [String: [CheckedContinuation<Void, Never>]] = [:]
    private var monitorFailures: [String: String] = [:]
    private var shuttingDown = false
    public private(set) var hasLeft = false

    public init(
        configuration: ServiceConfiguration, rules: RuleBook, catalogue: VariableCatalogue, transport: any ClusterTransport,
        journal: any EventJournal, logger: Logger
    ) {
        self.configuration = configuration
        self.catalogue = catalogue
        self.transport = transport
        self.journal = journal
        self.logger = logger
        coordinator = Coordinator(
            local: configuration.node, rules: rules, priorities: EventPriorities(configuration.priorities),
            configTooLong: configuration.configTooLong)
        monitors = NodeMonitors(rules: rules, catalogue: catalogue)
        (outboxStream, outbox) = AsyncStream<ClusterMessage>.makeStream()
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
        for await delivery in transport.deliveries {
            apply(delivery)
        }
        hasLeft = true
        outbox.finish()
        await sender.value
    }

    private func apply(_ delivery: Delivery) {
        perform(coordinator.apply(delivery, now: now))
    }

    /// Once a second: `config_too_long`.
    public func tick() {
        apply(.tick)
    }

    private func perform(_ effects: [Effect]) {
        for effect in effects {
            switch effect {
            case .runSegment(let run):
                start(run)
            case .multicast(let message):
                outbox.yield(message)
            case .journal(let entry):
                record(entry)
            case .leaveCluster:
                logger.notice("cluster services stopped on this node: leaving the cluster")
                note("cluster services stopped on this node: leaving the cluster", kind: "service")
                let transport = self.transport
                Task { await transport.leave() }
            }
        }
    }

    private func start(_ run: SegmentRun) {
        let key = "\(run.event.id)/\(run.segment)"
        guard !shuttingDown else {
            note("event \(run.event.id) segment \(run.segment) not started: the service is stopping", kind: "service")
            return
        }
        let timeout = (configuration.timeouts[run.event.name] ?? configuration.defaultTimeout).map { Duration.seconds($0) }
        let executor = SegmentExecutor(eventScriptDirectory: eventScripts, timeout: timeout)
        running[key] = Task {
            let results = await executor.run(run.commands, environment: run.environment)
            await self.segmentFinished(key: key, run: run, results: results)
        }
    }

    private func segmentFinished(key: String, run: SegmentRun, results: [CommandResult]) {
        running[key] = nil
        outbox.yield(.segmentDone(eventID: run.event.id, segment: run.segment, results: results))
    }

    private var eventScripts: String {
        if let configured = configuration.eventScripts { return configured }
        let rules = configuration.rules
        guard let slash = rules.lastIndex(of: "/") else { return "events" }
        return String(rules[..<slash]) + "/events"
    }

    private func record(_ entry: JournalEntry) {
        do {
            try journal.append(entry, at: Date())
        } catch {
            logger.error("journal: \(error)")
        }
        switch entry {
        case .finished(let event, let outcome):
            logger.info("event \(event.id) \(event.name) state \(event.state) node \(event.node.name): \(outcome.rawValue)")
            if outcome == .completed, let waiting = waiters.removeValue(forKey: event.name) {
                for continuation in waiting { continuation.resume() }
            }
        case .started(let event, let displayName, _):
            logger.info("event \(event.id) \(event.name) state \(event.state) node \(event.node.name) starts (\(displayName))")
        case .failed(let event, let node, let segment):
            logger.error("event \(event.id) \(event.name) failed on \(node.name) in segment \(segment): held until resume")
        default:
            break
        }
    }

    private func note(_ text: String, kind: String) {
        do {
            try journal.note(text, kind: kind, at: Date())
        } catch {
            logger.error("journal: \(error)")
        }
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
                recordArming(request.name, request.state, observation, armed: false)
                outbox.yield(.raise(request))
            }
            for (trigger, _) in outcome.rearmed {
                recordArming(trigger.name, trigger.state, observation, armed: true)
            }
        }
    }

    private func recordArming(_ name: String, _ state: Int, _ observation: SampleObservation, armed: Bool) {
        do {
            try journal.recordArming(
                trigger: name, state: state, instance: observation.instanceText, armed: armed,
                value: observation.value.description, at: Date())
        } catch {
            logger.error("journal: \(error)")
        }
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
        outbox.yield(.raise(request))
    }

    // MARK: Reload

    /// SIGHUP with rules that validated: events from now on use them; monitors start afresh.
    public func replaceRules(_ rules: RuleBook) {
        coordinator.replaceRules(rules)
        monitors = NodeMonitors(rules: rules, catalogue: catalogue)
        logger.notice("rules reloaded: \(rules.rules.count) definitions")
        note("rules reloaded: \(rules.rules.count) definitions", kind: "service")
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

    // MARK: Control requests

    public func handle(_ request: ControlRequest) async -> ControlResponse {
        switch request.command {
        case .status: return status()
        case .history:
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
            outbox.yield(.resume(cancelQueued: request.cancelQueued ?? false))
            return .success(text: "resume sent\(request.cancelQueued == true ? " (queued events cancelled)" : "")")
        case .trigger:
            guard let name = request.event, !name.isEmpty, !name.contains(where: \.isWhitespace) else {
                return .failure("trigger: an event name without blanks", exitCode: 2)
            }
            let nodeName = request.node ?? configuration.node.name
            guard let node = configuration.nodes.first(where: { $0.name == nodeName }) else {
                return .failure("trigger: no node '\(nodeName)' in the configuration", exitCode: 2)
            }
            outbox.yield(.raise(EventRequest(name: name, state: request.state ?? 0, node: node)))
            return .success(text: "raised \(name) state \(request.state ?? 0) on \(node.name)")
        case .recovery:
            let selection = selectNodes(request.nodes ?? "")
            guard case .success(let nodes) = selection else { return selection.failureResponse }
            let enabled = request.enabled ?? true
            outbox.yield(.recovery(enabled: enabled, nodes: nodes.map(\.name)))
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
                    outbox.yield(.stopServices(node: node.name, mode: mode))
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
        let completed = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    Task { await self.addWaiter(name, continuation) }
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
            if !first { await self.releaseWaiters(name) }
            group.cancelAll()
            return first
        }
        return completed
            ? .success(text: "\(name) completed")
            : ControlResponse(ok: true, text: "\(name): no completion within \(timeout) s", json: nil, error: nil, exitCode: 1)
    }

    private func addWaiter(_ name: String, _ continuation: CheckedContinuation<Void, Never>) {
        waiters[name, default: []].append(continuation)
    }

    /// Ends the waits for `name` (one timed out: the task group needs every child to finish).
    private func releaseWaiters(_ name: String) {
        for continuation in waiters.removeValue(forKey: name) ?? [] { continuation.resume() }
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
        var lines: [String] = []
        lines.append("node \(configuration.node.name) (\(configuration.node.number)), transport \(configuration.transport.rawValue)\(coordinator.isSynchronised ? "" : ", waiting for the cluster's state")")
        lines.append("members: \(state.members.map(\.name).joined(separator: " "))")
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
            synchronised: coordinator.isSynchronised, members: state.members.map(\.name),
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

    var node: String
    var number: Int
    var transport: String
    var synchronised: Bool
    var members: [String]
    var recoveryOff: [String]
    var running: [Running]
    var queue: [Queued]
    var instances: [Instance]
    var monitorFailures: [String: String]
}
