import RecoveryPrograms
import RulesParser
import RulesValidation

/// What a scenario did: the events in the order processed, the commands each node ran, and a
/// readable timeline.
public struct ScenarioRun: Sendable {
    public struct EventRecord: Sendable, Hashable, Codable {
        public var id: Int
        public var name: String
        public var state: Int
        public var node: String
        public var displayName: String
        /// completed, failed, skipped, suppressed; `running` when the scenario ended first.
        public var outcome: String
    }

    public struct CommandRecord: Sendable, Hashable, Codable {
        public var time: Double
        public var eventID: Int
        public var event: String
        public var node: String
        public var segment: Int
        public var command: String
        /// nil when the node left before the command ended.
        public var status: Int32?
    }

    public struct TimelineEntry: Sendable, Hashable, Codable {
        public var time: Double
        /// nil for what the whole cluster agreed on.
        public var node: String?
        public var text: String
    }

    public var scenario: Scenario
    public var events: [EventRecord] = []
    public var commands: [CommandRecord] = []
    public var timeline: [TimelineEntry] = []
    public var endTime: Double = 0
    /// The simulation hit its step limit.
    public var exhausted = false
    /// The simulation's trace, in order: everything every node did, and each journal entry once
    /// (every node journals the same; a repeat is left out as for `timeline`). What `simulate
    /// --format html` draws the events' timelines from.
    public var trace: [ClusterSimulation.TraceEntry] = []
}

/// Runs scenarios on the cluster simulation.
public enum ScenarioRunner {
    /// Why a scenario could not be run.
    public enum Failure: Error, Sendable {
        /// The scenario file cannot be read or does not parse: exit 2.
        case unreadable(String)
        /// Its rules have errors: the diagnostics, exit 1.
        case invalidRules(ValidationReport)
    }

    public static func load(_ path: String, fileSystem: any FileSystem = LocalFileSystem()) throws(Failure) -> Scenario
    {
        let bytes: [UInt8]
        do {
            bytes = try fileSystem.read(path, limit: 16 << 20)
        } catch {
            throw .unreadable("\(path): cannot read the scenario: \(error)")
        }
        if let nul = bytes.firstIndex(of: 0) {
            let before = bytes[..<nul]
            let line = before.count { $0 == UInt8(ascii: "\n") } + 1
            let column = nul - (before.lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0) + 1
            throw .unreadable("\(path):\(line):\(column): error: a NUL byte: not a text file")
        }
        do {
            return try ScenarioParser.parse(String(decoding: bytes, as: UTF8.self), file: path)
        } catch {
            throw .unreadable(error.description)
        }
    }

    public static func run(_ scenario: Scenario, fileSystem: any FileSystem = LocalFileSystem()) throws(Failure)
        -> ScenarioRun
    {
        var options = Validator.Options(root: scenario.root)
        options.checksCommandsExist = false  // nothing is run
        let (loaded, report) = Validator(options: options, fileSystem: fileSystem).load(scenario.rules)
        guard let loaded else { throw .invalidRules(report) }
        let rules = RuleBook(
            loaded.definitions.map { RuleBook.Rule(definition: $0, program: loaded.programs[$0.recoveryProgram]!) })
        let results = scenario.commands
        let agents = scenario.fencing?.agents ?? []
        var simulation = ClusterSimulation(
            nodes: scenario.nodes, rules: rules, catalogue: .builtIn,
            fencing: scenario.fencing.map { FencingPolicy(enabled: true, attempts: $0.attempts, nodes: scenario.nodes) }
                ?? .none,
            noQuorumPolicy: scenario.noQuorumPolicy,
            fenceOracle: { target, _, attempt in
                let mine = agents.filter { $0.node == target.name }
                guard !mine.isEmpty else { return .init() }
                let agent = mine[min(attempt, mine.count) - 1]
                return .init(succeeds: agent.status == 0, duration: agent.duration)
            },
            countingOracle: { node, _, _, step, run in
                let rule =
                    results.first { $0.command == step.command && $0.node == node.name }
                    ?? results.first { $0.command == step.command && $0.node == nil }
                return .init(status: rule?.status(ofRun: run) ?? 0, duration: rule?.duration ?? 0)
            })
        for timed in scenario.faults {
            simulation.schedule(at: timed.at, action(for: timed.fault, nodes: scenario.nodes))
        }
        for series in scenario.series {
            guard let number = series.instance["NodeNum"].flatMap(Int.init),
                let node = scenario.nodes.first(where: { $0.number == number })
            else { continue }
            for (index, value) in series.values.enumerated() {
                guard let value else { continue }
                simulation.schedule(
                    at: Double(index) * scenario.interval,
                    .sample(
                        node: node.name,
                        SampleObservation(variable: series.variable, instance: series.instance, value: value)))
            }
        }
        simulation.run(until: scenario.until)
        return ScenarioReporter(scenario: scenario, simulation: simulation).report()
    }

    static func action(for fault: Scenario.Fault, nodes: [ClusterNode]) -> ClusterSimulation.Action {
        switch fault {
        case .failNode(let name): return .crash(name)
        case .stopNode(let name, let mode): return .stop(name, mode)
        case .joinNode(let name): return .join(nodes.first { $0.name == name }!)
        case .trigger(let event, let name, let state):
            let node = nodes.first { $0.name == name }!
            return .multicast(from: name, .raise(EventRequest(name: event, state: state, node: node)))
        case .resume(let mode, let cancelQueued):
            return .fromAnyMember(.resume(mode, cancelQueued: cancelQueued, user: nil))
        case .recoveryOff(let names): return .fromAnyMember(.recovery(enabled: false, nodes: names))
        case .recoveryOn(let names): return .fromAnyMember(.recovery(enabled: true, nodes: names))
        case .partition(let parts): return .partition(parts)
        case .heal: return .heal
        case .fenceConfirm(let name): return .fromAnyMember(.fenceOutcome(node: name, outcome: .confirmed, attempt: 0))
        }
    }
}

/// Turns a simulation's trace into the events, commands and timeline of a `ScenarioRun`.
struct ScenarioReporter {
    let scenario: Scenario
    let simulation: ClusterSimulation

    func report() -> ScenarioRun {
        var run = ScenarioRun(scenario: scenario)
        run.endTime = simulation.clock
        run.exhausted = simulation.exhausted
        // By the whole event, not its id: the parts of a partition number their events each on
        // their own.
        var order: [ClusterEvent] = []
        var records: [ClusterEvent: ScenarioRun.EventRecord] = [:]
        var failed: Set<ClusterEvent> = []
        var commandIndex: [String: [Int]] = [:]
        var seen: Set<JournalEntry> = []
        var resumes: Set<String> = []
        func note(_ event: ClusterEvent, displayName: String?, outcome: String?) {
            if records[event] == nil {
                order.append(event)
                records[event] = .init(
                    id: event.id, name: event.name, state: event.state, node: event.node.name,
                    displayName: displayName ?? event.name, outcome: "running")
            }
            if let displayName { records[event]!.displayName = displayName }
            if let outcome { records[event]!.outcome = outcome }
        }
        for entry in simulation.trace {
            let node = entry.node.name
            func line(_ text: String, cluster: Bool = false) {
                run.timeline.append(.init(time: entry.time, node: cluster ? nil : node, text: text))
            }
            if case .journal = entry.kind {} else { run.trace.append(entry) }
            switch entry.kind {
            case .journal(let journal):
                // Every node journals the same resume; the same resume again later is news.
                if case .resumed = journal {
                    guard resumes.insert("\(entry.time)|\(journal)").inserted else { continue }
                } else {
                    guard seen.insert(journal).inserted else { continue }
                }
                run.trace.append(entry)
                switch journal {
                case .started(let event, let displayName, let participants):
                    note(event, displayName: displayName, outcome: nil)
                    line("\(describe(event)) starts (\(displayName)) with \(names(participants))", cluster: true)
                case .finished(let event, let outcome):
                    let held = outcome == .failed && failed.contains(event)
                    note(event, displayName: nil, outcome: outcome.rawValue)
                    line("\(describe(event)) \(held ? "failed: the rest is skipped" : outcome.rawValue)", cluster: true)
                case .failed(let event, let failing, let segment):
                    failed.insert(event)
                    note(event, displayName: nil, outcome: EventOutcome.failed.rawValue)
                    line(
                        "\(describe(event)) FAILED on \(failing.name) in segment \(segment): held until resume",
                        cluster: true)
                case .queued(let event):
                    line("\(describe(event)) queued (priority \(event.priority))", cluster: true)
                case .barrierPassed(let eventID, let index, let participants):
                    line("event \(eventID) barrier \(index) passed by \(names(participants))", cluster: true)
                case .participantLeft(let eventID, let left):
                    line("event \(eventID): \(left.name) left; dropped from its barriers", cluster: true)
                case .membership(let change):
                    var parts: [String] = []
                    if !change.left.isEmpty { parts.append("\(names(change.left)) left") }
                    if !change.joined.isEmpty { parts.append("\(names(change.joined)) joined") }
                    line(
                        "membership: \(parts.joined(separator: ", ")); members \(names(change.members))", cluster: true)
                case .unmatched(let request):
                    line(
                        "\(request.name) state \(request.state) on \(request.node.name) matches no rule: not run",
                        cluster: true)
                case .recovery(let enabled, let nodes):
                    line("recovery \(enabled ? "on" : "off") for \(nodes.joined(separator: ", "))", cluster: true)
                case .resumed(let resume):
                    // A retry may fail again: its failure is news, not a repeat.
                    if let event = resume.event {
                        seen = seen.filter {
                            if case .failed(let failed, _, _) = $0 { failed != event } else { true }
                        }
                    }
                    line(resume.description, cluster: true)
                case .rearmed(let name, let instances):
                    line(
                        "recovery back on for \(name): re-armed \(instances.map(\.description).joined(separator: ", ")) (evaluated afresh at the next sample)",
                        cluster: true)
                case .stopRequested(let name, let mode):
                    line("\(name) stops cluster services (\(mode.rawValue))", cluster: true)
                case .synchronised(let view):
                    seen.remove(journal)
                    line("has the cluster's state (view \(view))")
                case .quorum(let quorate, let waiting):
                    seen.remove(journal)
                    line(
                        quorate
                            ? "quorum back: \(waiting) segment(s) that waited start"
                            : "quorum lost: runs no recovery command")
                case .waitsForQuorum(let eventID, _, let segment):
                    seen.remove(journal)
                    line("event \(eventID) segment \(segment) waits for quorum")
                case .merged(let alive):
                    line(
                        "partition healed: \(names(alive)) alive on the other side; no takeover runs for them",
                        cluster: true)
                case .fence(let fence):
                    if fence.isLocal { seen.remove(journal) }
                    line(fence.description, cluster: !fence.isLocal)
                case .quorumLoss(let loss):
                    seen.remove(journal)
                    if case .command = loss { continue }  // the segment's end says it
                    line(loss.description)
                case .commandFinished:
                    break
                }
            case .segmentStarted(let segmentRun):
                let key = "\(node)|\(segmentRun.event.id)|\(segmentRun.segment)"
                // The results that come next are this start's: the local event (id 0) may run
                // again after another loss of quorum, a segment's failed commands after
                // `resume --retry`.
                commandIndex[key] = []
                for step in segmentRun.commands {
                    commandIndex[key, default: []].append(run.commands.count)
                    run.commands.append(
                        .init(
                            time: entry.time, eventID: segmentRun.event.id, event: segmentRun.event.name, node: node,
                            segment: segmentRun.segment, command: step.command, status: nil))
                }
                let what =
                    segmentRun.commands.isEmpty
                    ? "nothing to run"
                    : "runs " + segmentRun.commands.map { "\"\($0.command)\"" }.joined(separator: ", ")
                line("\(label(segmentRun.event)) segment \(segmentRun.segment): \(what)")
            case .segmentFinished(let eventID, let segment, let results):
                let indices = commandIndex["\(node)|\(eventID)|\(segment)"] ?? []
                for (index, result) in zip(indices, results) {
                    if case .exited(let status) = result.termination { run.commands[index].status = status }
                    line(
                        "\(eventID == 0 ? "TE_QUORUM_LOST" : "event \(eventID)") segment \(segment): \"\(result.command)\" \(result.termination)\(result.accepted ? "" : " — not the expected status")"
                    )
                }
            case .crashed: line("crashes")
            case .engineKilled: line("its engine is killed; the node lives on")
            case .joined: line("starts and joins")
            case .stopped: line("leaves the cluster")
            case .partitioned(let part, let quorate):
                line("network split: in a part with \(names(part))\(quorate ? "" : ", without quorum")")
            case .lostMerge: line("its part lost the merge: its engine stops and starts again")
            case .poweredOff: line("powered off by a fence (it starts again later)")
            case .healed: line("network whole again: its part stays")
            case .raised(let request):
                let resource = request.resource.map { " (\($0.variable) \($0.instance) = \($0.value))" } ?? ""
                line("raises \(request.name)\(resource)")
            case .evaluationFault(let message): line(message)
            }
        }
        run.events = order.map { records[$0]! }
        return run
    }

    /// How a segment's event is named: its id, or the local event's name (id 0).
    func label(_ event: ClusterEvent) -> String {
        event.id == 0 ? event.name : "event \(event.id)"
    }

    func describe(_ event: ClusterEvent) -> String {
        "event \(event.id) \(event.name) state \(event.state) node \(event.node.name)"
    }

    func names(_ nodes: [ClusterNode]) -> String {
        nodes.isEmpty ? "nobody" : nodes.map(\.name).joined(separator: " ")
    }
}
