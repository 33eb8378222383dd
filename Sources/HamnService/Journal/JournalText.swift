import Foundation
import RecoveryPrograms
import RulesEngine

/// The event log's lines, in the style of HACMP's `hacmp.out`:
///
/// ```
/// Nov 23 09:12:01 EVENT START: db2_paging 0 (node n2, event 7) "DB2 paging", participants n1 n2
/// Nov 23 09:12:02 COMMAND: n1 event 7 segment 0 line 3 "/usr/sbin/db2stop" exit 0 (0.84 s)
/// Nov 23 09:12:02 EVENT BARRIER: db2_paging 0 (event 7) barrier 0 passed by n1 n2
/// Nov 23 09:12:05 EVENT COMPLETED: db2_paging 0 (node n2, event 7)
/// ```
///
/// The time stamp is not part of the stored text: `JournalLogLine.formatted` prepends it.
enum JournalText {
    /// `Nov 23 09:12:01`, in `timeZone`, English month names whatever the locale.
    static func stamp(_ date: Date, timeZone: TimeZone) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let parts = calendar.dateComponents([.month, .day, .hour, .minute, .second], from: date)
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        let month = months[((parts.month ?? 1) - 1 + 12) % 12]
        func two(_ value: Int?) -> String {
            let value = value ?? 0
            return value < 10 ? "0\(value)" : "\(value)"
        }
        let day = parts.day ?? 1
        return "\(month) \(day < 10 ? " " : "")\(day) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second))"
    }

    static func names(_ nodes: [ClusterNode]) -> String {
        nodes.isEmpty ? "nobody" : nodes.map(\.name).joined(separator: " ")
    }

    /// `db2_paging 0 (node n2, event 7)`
    static func event(_ event: ClusterEvent) -> String {
        "\(event.name) \(event.state) (node \(event.node.name), event \(event.id))"
    }

    /// `IBM.PSSP.aixos.PagSp.%totalused NodeNum=2 = 75`
    static func resource(_ resource: ResourceObservation?) -> String {
        guard let resource else { return "" }
        return " [\(resource.variable) \(resource.instance) = \(resource.value)]"
    }

    static func membership(_ change: MembershipChange) -> String {
        var parts: [String] = []
        if !change.joined.isEmpty { parts.append("\(names(change.joined)) joined") }
        if !change.left.isEmpty { parts.append("\(names(change.left)) left") }
        let what = parts.isEmpty ? "" : parts.joined(separator: ", ") + "; "
        return "MEMBERSHIP: view \(change.view): \(what)members \(names(change.members))"
    }

    static func unmatched(_ request: EventRequest) -> String {
        "EVENT UNMATCHED: \(request.name) \(request.state) (node \(request.node.name))\(resource(request.resource)): no rule, not run"
    }

    static func queued(_ clusterEvent: ClusterEvent) -> String {
        "EVENT QUEUED: \(event(clusterEvent)) priority \(clusterEvent.priority)\(resource(clusterEvent.resource))"
    }

    static func started(_ clusterEvent: ClusterEvent, displayName: String, participants: [ClusterNode]) -> String {
        "EVENT START: \(event(clusterEvent)) \"\(displayName)\", participants \(names(participants))"
            + resource(clusterEvent.resource)
    }

    /// `db2_paging 0 (event 7)`, or `event 7` for an event this journal never saw.
    static func eventRef(name: String?, state: Int?, id: Int) -> String {
        guard let name, let state else { return "event \(id)" }
        return "\(name) \(state) (event \(id))"
    }

    static func barrier(_ reference: String, index: Int, participants: [ClusterNode]) -> String {
        "EVENT BARRIER: \(reference) barrier \(index) passed by \(names(participants))"
    }

    static func command(eventID: Int, node: ClusterNode, segment: Int, result: CommandResult) -> String {
        let duration = String(format: "%.2f", result.duration)
        return "COMMAND: \(node.name) event \(eventID) segment \(segment) line \(result.line) \"\(result.command)\" "
            + "\(result.termination) (\(duration) s)" + (result.accepted ? "" : ": NOT THE EXPECTED STATUS")
    }

    static func participantLeft(_ reference: String, node: ClusterNode) -> String {
        "EVENT PARTICIPANT LEFT: \(node.name) left during \(reference): dropped from its barriers"
    }

    static func failed(_ clusterEvent: ClusterEvent, node: ClusterNode, segment: Int) -> String {
        "EVENT FAILED: \(event(clusterEvent)) on \(node.name) in segment \(segment): held until resume"
    }

    static func finished(_ clusterEvent: ClusterEvent, outcome: EventOutcome) -> String {
        let text = event(clusterEvent)
        switch outcome {
        case .completed: return "EVENT COMPLETED: \(text)"
        case .failed: return "EVENT FAILED: \(text): ended failed, the rest is skipped"
        case .skipped: return "EVENT SKIPPED: \(text): cancelled from the queue by resume"
        case .suppressed: return "EVENT SUPPRESSED: \(text): recovery is off for \(clusterEvent.node.name), not run"
        case .interrupted: return "EVENT INTERRUPTED: \(text)"
        case .cancelled:
            return
                "EVENT CANCELLED: \(text): \(clusterEvent.node.name) is alive in the merged cluster, its takeover does not run"
        }
    }

    static func interrupted(name: String, state: Int, node: String, run: Int64, id: Int, started: Bool) -> String {
        "EVENT INTERRUPTED: \(name) \(state) (node \(node), event \(id), run \(run)): "
            + (started ? "the service stopped while it ran" : "the service stopped while it was queued")
    }

    static func recovery(enabled: Bool, nodes: [String]) -> String {
        "RECOVERY \(enabled ? "ON" : "OFF"): \(nodes.joined(separator: " "))"
    }

    static func rearmed(node: String, instances: [SuppressedInstance]) -> String {
        "RE-ARMED: recovery back on for \(node): "
            + instances.map(\.description).joined(separator: ", ")
            + " (events suppressed while it was off) evaluated afresh at the next sample"
    }

    static func stopRequested(node: String, mode: StopMode) -> String {
        "STOP CLUSTER SERVICES: \(node) (\(mode.rawValue))"
    }

    static func synchronised(view: Int) -> String {
        "SYNCHRONISED: has the cluster's state as of view \(view)"
    }

    static func quorum(_ quorate: Bool, waiting: Int) -> String {
        quorate
            ? "quorum regained: recovery programs run again (\(waiting) segment(s) waiting)"
            : "quorum lost: this partition runs no recovery program until it is back"
    }

    static func waitsForQuorum(eventID: Int, name: String, segment: Int) -> String {
        "no quorum: event \(eventID) \(name) segment \(segment) waits for quorum"
    }

    static func merged(alive: [ClusterNode]) -> String {
        "PARTITION HEALED: \(alive.map(\.name).joined(separator: " ")) alive on the other side, which stops and rejoins; no takeover runs for them"
    }

    static func arming(trigger: String, state: Int, instance: String, armed: Bool, value: String) -> String {
        "\(armed ? "ARMED" : "DISARMED"): \(trigger) \(state) \(instance) value \(value)"
    }
}
