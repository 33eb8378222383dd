import HamnYAML
import RulesParser

/// Reads scenario files (SPEC section 9) with exactly the keys the specification gives.
public enum ScenarioParser {
    public static func parse(_ text: String, file: String) throws(YAMLError) -> Scenario {
        guard let document = try YAMLValue.parse(text, file: file) else {
            throw YAMLError(file: file, line: 1, column: 1, message: "the scenario is empty")
        }
        let keys: Set = [
            "rules", "root", "nodes", "interval", "series", "commands", "faults", "until", "expect", "fencing",
            "no_quorum_policy",
        ]
        let directory = file.contains("/") ? String(file[...file.lastIndex(of: "/")!]) : ""
        func relative(_ path: String) -> String {
            path.hasPrefix("/") ? path : directory + path
        }
        var rules: String?
        var root: String?
        var nodes: [ClusterNode] = []
        var interval = 10.0
        var seriesValues: [YAMLValue] = []
        var commands: [Scenario.CommandResultRule] = []
        var faults: [Scenario.TimedFault] = []
        var until: Double?
        var expect: Scenario.Expectation?
        var fencing: Scenario.Fencing?
        var agentNodes: [(name: String, value: YAMLValue)] = []
        var noQuorumPolicy = NoQuorumPolicy.freeze
        for (key, value) in try document.mapping(allowed: keys) {
            switch key {
            case "rules": rules = relative(try value.string())
            case "root": root = relative(try value.string())
            case "nodes": nodes = try parseNodes(value)
            case "interval":
                interval = try value.duration()
                guard interval > 0 else { throw value.error("the interval must be above 0") }
            case "series": seriesValues = try value.sequence()
            case "commands": commands = try value.sequence().map(parseCommandRule)
            case "faults": faults = try value.sequence().map(parseFault)
            case "until": until = try value.duration()
            case "expect": expect = try parseExpectation(value)
            case "fencing": (fencing, agentNodes) = try parseFencing(value)
            case "no_quorum_policy": noQuorumPolicy = try NoQuorumPolicy.parse(value)
            default: break
            }
        }
        guard let rules else { throw document.error("missing key 'rules'") }
        guard !nodes.isEmpty else { throw document.error("missing key 'nodes' (at least one node)") }
        let names = Set(nodes.map(\.name))
        let series = try seriesValues.map { value throws(YAMLError) in try parseSeries(value, nodes: nodes) }
        for timed in faults {
            for name in timed.fault.nodeNames where !names.contains(name) {
                throw YAMLError(
                    file: file, line: timed.line, column: timed.column,
                    message: "faults: no node '\(name)' (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
            }
        }
        for agent in agentNodes where !names.contains(agent.name) {
            throw agent.value.error("no node '\(agent.name)' (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
        }
        var scenario = Scenario(
            file: file, rules: rules, root: root, nodes: nodes, interval: interval, series: series, commands: commands,
            faults: faults.sorted { $0.at < $1.at }, until: until, expect: expect, fencing: fencing)
        scenario.noQuorumPolicy = noQuorumPolicy
        return scenario
    }

    private static func parseNodes(_ value: YAMLValue) throws(YAMLError) -> [ClusterNode] {
        var nodes: [ClusterNode] = []
        for (index, item) in try value.sequence().enumerated() {
            if item.isMapping {
                var name: String?
                var number: Int?
                for (key, field) in try item.mapping(allowed: ["name", "number"]) {
                    if key == "name" { name = try field.string() } else { number = try field.int() }
                }
                guard let name, let number else { throw item.error("a node needs a name and a number") }
                nodes.append(ClusterNode(name: name, number: number))
            } else {
                nodes.append(ClusterNode(name: try item.string(), number: index + 1))
            }
            let node = nodes.last!
            if nodes.dropLast().contains(where: { $0.name == node.name || $0.number == node.number }) {
                throw item.error("node '\(node.name)' (number \(node.number)) given twice")
            }
        }
        return nodes
    }

    private static func parseSeries(_ value: YAMLValue, nodes: [ClusterNode]) throws(YAMLError) -> Scenario.Series {
        var variable: String?
        var instanceText: String?
        var instanceValue = value
        var values: [SampleValue?] = []
        for (key, field) in try value.mapping(allowed: ["variable", "instance", "values"]) {
            switch key {
            case "variable": variable = try field.string()
            case "instance":
                instanceText = try field.string()
                instanceValue = field
            default: values = try parseValues(field, variable: variable)
            }
        }
        guard let variable else { throw value.error("a series needs a variable") }
        guard let instanceText else { throw value.error("a series needs an instance, such as NodeNum=2") }
        let (vector, problems) = InstanceVector.parse(instanceText)
        if let problem = problems.first { throw instanceValue.error(problem.message) }
        var instance: [String: String] = [:]
        for element in vector.elements {
            guard case .exactly(let text) = element.value else {
                throw instanceValue.error("a series samples one instance: give a value for \(element.name), not *")
            }
            instance[element.name] = text
        }
        guard let number = instance["NodeNum"].flatMap(Int.init), nodes.contains(where: { $0.number == number }) else {
            throw instanceValue.error("NodeNum must be the number of one of the nodes (it says which node samples it)")
        }
        return Scenario.Series(
            variable: variable, instance: instance, instanceText: instanceText, values: values, line: value.line)
    }

    /// `"50 60 _ 75 \"text\""`, or a list of numbers, strings, `_` and field maps.
    private static func parseValues(_ value: YAMLValue, variable: String?) throws(YAMLError) -> [SampleValue?] {
        let fieldOrder: [String]? = {
            guard let variable, case .structured(let fields) = VariableCatalogue.builtIn[variable]?.kind else {
                return nil
            }
            return fields.map(\.name)
        }()
        if !value.isSequence {
            return try words(try value.string(), value)
        }
        var values: [SampleValue?] = []
        for item in try value.sequence() {
            if item.isMapping {
                var fields: [SampleValue.Field] = []
                for (key, field) in try item.mapping(
                    allowed: Set(fieldOrder ?? []).union(fieldOrder == nil ? ["*"] : []))
                {
                    fields.append(.init(key, try scalar(field)))
                }
                if let fieldOrder {
                    fields.sort { fieldOrder.firstIndex(of: $0.name)! < fieldOrder.firstIndex(of: $1.name)! }
                }
                values.append(.fields(fields))
            } else if try item.string() == "_", !item.isQuoted {
                values.append(nil)
            } else {
                values.append(.scalar(try scalar(item)))
            }
        }
        return values
    }

    private static func scalar(_ value: YAMLValue) throws(YAMLError) -> SampleValue.Scalar {
        if let number = try value.number() { return .number(number) }
        return .string(try value.string())
    }

    /// Splits `50 60 _ "two words"` into samples.
    private static func words(_ text: String, _ value: YAMLValue) throws(YAMLError) -> [SampleValue?] {
        var values: [SampleValue?] = []
        var index = text.startIndex
        while index < text.endIndex {
            if text[index] == " " || text[index] == "\t" {
                index = text.index(after: index)
                continue
            }
            if text[index] == "\"" {
                guard let close = text[text.index(after: index)...].firstIndex(of: "\"") else {
                    throw value.error("values: a quoted string is not closed")
                }
                values.append(.string(String(text[text.index(after: index)..<close])))
                index = text.index(after: close)
                continue
            }
            let end = text[index...].firstIndex { $0 == " " || $0 == "\t" } ?? text.endIndex
            let word = String(text[index..<end])
            if word == "_" {
                values.append(nil)
            } else if let number = Double(word), number.isFinite {
                values.append(.number(number))
            } else {
                throw value.error("values: '\(word)' is not a number, \"a quoted string\" or _")
            }
            index = end
        }
        return values
    }

    /// `fencing: {attempts: N, agents: [{node:, status:, duration:}, ...]}` (or `fencing: true`).
    /// The fencing, and each agent's node with where it is written (checked once the nodes are known).
    private static func parseFencing(_ value: YAMLValue) throws(YAMLError) -> (
        Scenario.Fencing?, [(name: String, value: YAMLValue)]
    ) {
        var fencing = Scenario.Fencing()
        var agentNodes: [(name: String, value: YAMLValue)] = []
        if !value.isMapping { return (try value.bool() ? fencing : nil, []) }
        for (key, field) in try value.mapping(allowed: ["attempts", "agents"]) {
            if key == "attempts" {
                fencing.attempts = try field.int()
                guard (1...100).contains(fencing.attempts) else { throw field.error("from 1 to 100") }
                continue
            }
            for item in try field.sequence() {
                var agent = Scenario.Fencing.Agent(node: "", status: 0, duration: 0)
                for (name, part) in try item.mapping(allowed: ["node", "status", "duration"]) {
                    switch name {
                    case "node":
                        agent.node = try part.string()
                        agentNodes.append((agent.node, part))
                    case "status": agent.status = try exitStatus(part)
                    default: agent.duration = try part.duration()
                    }
                }
                guard !agent.node.isEmpty else { throw item.error("an agent outcome needs its node") }
                fencing.agents.append(agent)
            }
        }
        return (fencing, agentNodes)
    }

    private static func exitStatus(_ value: YAMLValue) throws(YAMLError) -> Int32 {
        let status = try value.int()
        guard (0...255).contains(status) else { throw value.error("a status is 0 to 255") }
        return Int32(status)
    }

    private static func parseCommandRule(_ value: YAMLValue) throws(YAMLError) -> Scenario.CommandResultRule {
        var rule = Scenario.CommandResultRule(command: "", node: nil, status: 0, duration: 0)
        var hasCommand = false
        for (key, field) in try value.mapping(allowed: ["command", "node", "status", "duration"]) {
            switch key {
            case "command":
                rule.command = try field.string()
                hasCommand = true
            case "node": rule.node = try field.string()
            case "status":
                if field.isSequence {
                    rule.statuses = try field.sequence().map { item throws(YAMLError) in try exitStatus(item) }
                    guard let first = rule.statuses.first else {
                        throw field.error("status: a status, or a list of one per run: [1, 0]")
                    }
                    rule.status = first
                } else {
                    rule.status = try exitStatus(field)
                }
            default: rule.duration = try field.duration()
            }
        }
        guard hasCommand else { throw value.error("a command result needs the command") }
        return rule
    }

    private static func parseFault(_ value: YAMLValue) throws(YAMLError) -> Scenario.TimedFault {
        let entries = try value.mapping(allowed: [
            "at", "fail_node", "stop_node", "mode", "join_node", "trigger", "resume", "recovery_off", "recovery_on",
            "partition", "heal", "fence_confirm",
        ])
        guard let at = entries.first(where: { $0.key == "at" }) else { throw value.error("a fault needs 'at'") }
        let time = try at.value.duration()
        let kinds = entries.filter { $0.key != "at" && $0.key != "mode" }
        guard kinds.count == 1, let (kind, field) = kinds.first else {
            throw value.error(
                "a fault is one of fail_node, stop_node, join_node, trigger, resume, recovery_off, recovery_on, partition, heal, fence_confirm"
            )
        }
        let mode = entries.first { $0.key == "mode" }
        if mode != nil, kind != "stop_node" { throw mode!.value.error("mode goes with stop_node") }
        let fault: Scenario.Fault
        // Where an unknown node is reported: the value that names it.
        var position = field
        switch kind {
        case "fail_node": fault = .failNode(try field.string())
        case "stop_node":
            var stopMode = StopMode.graceful
            if let mode {
                guard let parsed = StopMode(rawValue: try mode.value.string()) else {
                    throw mode.value.error("mode is graceful, takeover or forced")
                }
                stopMode = parsed
            }
            fault = .stopNode(try field.string(), stopMode)
        case "join_node": fault = .joinNode(try field.string())
        case "trigger":
            var event: String?
            var node: String?
            var state = 0
            for (key, item) in try field.mapping(allowed: ["event", "node", "state"]) {
                switch key {
                case "event": event = try item.string()
                case "node":
                    node = try item.string()
                    position = item
                default: state = try item.int()
                }
            }
            guard let event, let node else { throw field.error("a trigger needs event and node") }
            fault = .trigger(event: event, node: node, state: state)
        case "resume":
            // resume: true | retry | continue, or {mode: skip|retry|continue, cancel_queued: true}
            func mode(_ value: YAMLValue) throws(YAMLError) -> ResumeMode {
                guard let mode = ResumeMode(rawValue: try value.string()) else {
                    throw value.error("the mode is skip, retry or continue")
                }
                return mode
            }
            if field.isMapping {
                var cancel = false
                var resumeMode = ResumeMode.skip
                for (key, item) in try field.mapping(allowed: ["cancel_queued", "mode"]) {
                    if key == "mode" { resumeMode = try mode(item) } else { cancel = try item.bool() }
                }
                fault = .resume(resumeMode, cancelQueued: cancel)
            } else if (try? field.bool()) != nil {
                guard try field.bool() else {
                    throw field.error("true, retry, continue, or {mode: retry, cancel_queued: true}")
                }
                fault = .resume(.skip, cancelQueued: false)
            } else {
                fault = .resume(try mode(field), cancelQueued: false)
            }
        case "partition":
            // [[n1, n2], [n3]]: two or more parts, each a list of nodes, no node twice.
            let parts = try field.sequence().map { part throws(YAMLError) in try nodeList(part) }
            guard parts.count >= 2, parts.allSatisfy({ !$0.isEmpty }) else {
                throw field.error("partition: two or more parts, each a list of nodes: [[n1, n2], [n3]]")
            }
            let all = parts.flatMap { $0 }
            if let twice = all.first(where: { name in all.count { $0 == name } > 1 }) {
                throw field.error("partition: node '\(twice)' is in two parts")
            }
            fault = .partition(parts)
        case "heal":
            guard try field.bool() else { throw field.error("heal: true") }
            fault = .heal
        case "fence_confirm": fault = .fenceConfirm(try field.string())
        case "recovery_off": fault = .recoveryOff(try nodeList(field))
        default: fault = .recoveryOn(try nodeList(field))
        }
        return Scenario.TimedFault(at: time, fault: fault, line: position.line, column: position.column)
    }

    private static func nodeList(_ value: YAMLValue) throws(YAMLError) -> [String] {
        if value.isSequence { return try value.sequence().map { item throws(YAMLError) in try item.string() } }
        return try value.string().split(separator: ",").map { String($0).trimmingCharacters() }
    }

    private static func parseExpectation(_ value: YAMLValue) throws(YAMLError) -> Scenario.Expectation {
        var expectation = Scenario.Expectation()
        for (key, field) in try value.mapping(allowed: ["events", "commands", "absent_commands"]) {
            switch key {
            case "events":
                expectation.events = try field.sequence().map { item throws(YAMLError) in
                    var event = Scenario.ExpectedEvent(name: "", state: nil, node: nil, outcome: nil)
                    for (name, part) in try item.mapping(allowed: ["name", "state", "node", "outcome"]) {
                        switch name {
                        case "name": event.name = try part.string()
                        case "state": event.state = try part.int()
                        case "node": event.node = try part.string()
                        default:
                            guard let outcome = EventOutcome(rawValue: try part.string()), outcome != .interrupted
                            else {
                                throw part.error("outcome is completed, failed, skipped, suppressed or cancelled")
                            }
                            event.outcome = outcome
                        }
                    }
                    guard !event.name.isEmpty else { throw item.error("an expected event needs a name") }
                    return event
                }
            case "commands":
                expectation.commands = try field.sequence().map { item throws(YAMLError) in
                    try parseExpectedCommand(item, allowed: ["event", "node", "segment", "command", "status"])
                }
            default:
                expectation.absentCommands = try field.sequence().map { item throws(YAMLError) in
                    try parseExpectedCommand(item, allowed: ["command", "node"])
                }
            }
        }
        return expectation
    }

    private static func parseExpectedCommand(_ value: YAMLValue, allowed: Set<String>) throws(YAMLError)
        -> Scenario.ExpectedCommand
    {
        var command = Scenario.ExpectedCommand(event: nil, node: nil, segment: nil, command: "", status: nil)
        for (key, field) in try value.mapping(allowed: allowed) {
            switch key {
            case "event": command.event = try field.string()
            case "node": command.node = try field.string()
            case "segment": command.segment = try field.int()
            case "status": command.status = Int32(try field.int())
            default: command.command = try field.string()
            }
        }
        guard !command.command.isEmpty else { throw value.error("needs the command") }
        return command
    }
}

extension Scenario.Fault {
    var nodeNames: [String] {
        switch self {
        case .failNode(let name), .stopNode(let name, _), .joinNode(let name), .trigger(_, let name, _),
            .fenceConfirm(let name):
            [name]
        case .resume, .heal: []
        case .recoveryOff(let names), .recoveryOn(let names): names
        case .partition(let parts): parts.flatMap { $0 }
        }
    }
}

extension String {
    fileprivate func trimmingCharacters() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " { view = view.dropFirst() }
        while let last = view.last, last == " " { view = view.dropLast() }
        return String(view)
    }
}
