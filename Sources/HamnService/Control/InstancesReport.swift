import Foundation
import RulesEngine

/// What `status --all` shows: every member's instances as it answered, in member order, and
/// the members that did not answer, with why.
struct InstancesReport: Sendable {
    struct Node: Sendable {
        var name: String
        /// nil: no answer (`problem` says why).
        var instances: [InstanceSummary]?
        var problem: String?
    }

    var nodes: [Node]

    /// The text (a heading per node, its instances as `status` shows them) and the JSON
    /// document: `{"nodes": {NODE: [instance, ...]}, "not_answered": {NODE: why}}`.
    func rendered() -> ControlAnswer {
        var lines: [String] = []
        for node in nodes {
            guard let instances = node.instances else {
                lines.append("\(node.name): \(node.problem ?? "no answer")")
                continue
            }
            lines.append("\(node.name): \(instances.isEmpty ? "no instances" : "instances:")")
            for instance in instances {
                lines.append(
                    StatusReport.instanceLine(
                        event: instance.event, state: instance.state, instance: instance.instance,
                        armed: instance.armed, last: instance.last))
            }
        }
        var answered: [String: [StatusJSON.Instance]] = [:]
        var silent: [String: String] = [:]
        for node in nodes {
            if let instances = node.instances {
                answered[node.name] = instances.map {
                    .init(event: $0.event, state: $0.state, instance: $0.instance, armed: $0.armed, last: $0.last)
                }
            } else {
                silent[node.name] = node.problem ?? "no answer"
            }
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let document = Document(nodes: answered, notAnswered: silent)
        let json = (try? encoder.encode(document)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
        return .report(text: lines.map(TerminalText.line).joined(separator: "\n"), json: json)
    }

    private struct Document: Encodable {
        var nodes: [String: [StatusJSON.Instance]]
        var notAnswered: [String: String]
    }
}
