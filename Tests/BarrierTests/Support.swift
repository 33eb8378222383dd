import RecoveryPrograms
import RulesEngine
import RulesParser
import Testing

/// A rule book from (name, state, .rp text) triples; each .rp must parse cleanly.
func ruleBook(_ entries: [(String, Int, String)]) -> RuleBook {
    RuleBook(
        entries.map { name, state, text in
            let (program, diagnostics) = RecoveryProgramParser.parse(text, file: "\(name).rp")
            precondition(diagnostics.allSatisfy { $0.severity == .warning }, "\(diagnostics)")
            let definition = EventDefinition(
                trigger: .init(name: name, state: state), displayName: name, recoveryProgram: "/rp/\(name)_\(state).rp",
                recoveryType: 2, recoveryLevel: 0, monitoring: nil, line: 1, recoveryProgramLine: 3)
            return RuleBook.Rule(definition: definition, program: program)
        })
}

func nodes(_ count: Int) -> [ClusterNode] {
    (1...count).map { ClusterNode(name: "n\($0)", number: $0) }
}

extension ClusterSimulation {
    func node(_ name: String) -> ClusterNode { nodes.first { $0.name == name }! }

    /// `trigger EVENT --node NODE` at `time`.
    mutating func trigger(_ event: String, state: Int = 0, on name: String, at time: Double) {
        schedule(at: time, .multicast(from: name, .raise(EventRequest(name: event, state: state, node: node(name)))))
    }

    /// The events in the order the cluster processed them, as `name@node:outcome`, from the
    /// journal of `observer` (the first node by default).
    func processed(by observer: String? = nil) -> [String] {
        let who = observer ?? nodes[0].name
        var order: [Int] = []
        var labels: [Int: String] = [:]
        var outcomes: [Int: String] = [:]
        for entry in trace where entry.node.name == who {
            guard case .journal(let journal) = entry.kind else { continue }
            switch journal {
            case .started(let event, _, _):
                if labels[event.id] == nil { order.append(event.id) }
                labels[event.id] = "\(event.name)\(event.state == 0 ? "" : "/\(event.state)")@\(event.node.name)"
            case .finished(let event, let outcome):
                if labels[event.id] == nil {
                    order.append(event.id)
                    labels[event.id] = "\(event.name)\(event.state == 0 ? "" : "/\(event.state)")@\(event.node.name)"
                }
                outcomes[event.id] = outcome.rawValue
            default: break
            }
        }
        return order.map { "\(labels[$0]!):\(outcomes[$0] ?? "running")" }
    }

    /// Commands each node started, as `node segment command`, in order.
    func commandsRun(for eventName: String? = nil) -> [String] {
        var lines: [String] = []
        for entry in trace {
            guard case .segmentStarted(let run) = entry.kind else { continue }
            if let eventName, run.event.name != eventName { continue }
            for step in run.commands {
                lines.append("\(entry.node.name) \(run.segment) \(step.command)")
            }
        }
        return lines
    }

    /// When each node started segment `segment` of the first event named `name`.
    func segmentStarts(_ name: String, segment: Int) -> [String: Double] {
        var starts: [String: Double] = [:]
        var eventID: Int?
        for entry in trace {
            guard case .segmentStarted(let run) = entry.kind, run.event.name == name else { continue }
            if eventID == nil { eventID = run.event.id }
            if run.event.id == eventID, run.segment == segment, starts[entry.node.name] == nil {
                starts[entry.node.name] = entry.time
            }
        }
        return starts
    }

    func journal(of name: String) -> [JournalEntry] {
        trace.compactMap { entry in
            guard entry.node.name == name, case .journal(let journal) = entry.kind else { return nil }
            return journal
        }
    }
}

/// An oracle from a table of command text to (status, duration); 0 and 0 otherwise.
func oracle(_ table: [String: (Int32, Double)], node: String? = nil) -> ClusterSimulation.CommandOracle {
    { runningNode, _, _, step in
        if let (status, duration) = table["\(runningNode.name):\(step.command)"] ?? table[step.command] {
            return .init(status: status, duration: duration)
        }
        return .init()
    }
}
