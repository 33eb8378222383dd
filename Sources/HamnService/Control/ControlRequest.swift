import Foundation
import RulesEngine
import RulesParser

/// A request to the service over its control socket: one JSON object on one line, whose only
/// key names the request and whose value holds its arguments, e.g.
/// `{"history":{"limit":20}}`, `{"wait_event":{"name":"network_up_complete","timeout":100}}`,
/// `{"status":{}}`, `{"status":{"all":true}}`.
public enum ControlRequest: Codable, Sendable, Hashable {
    /// Membership, the running event, the queue, the instances: a report. `all`: the
    /// instances of every member instead, asked through the cluster (`status --all`; nil, the
    /// key left out, is what a client from before it sends).
    case status(all: Bool? = nil)
    /// The newest `limit` events of the journal: a report.
    case history(limit: Int)
    /// Skip the rest of the failed event everywhere (HACMP's resume); `cancelQueued` also drops
    /// the queue.
    case resume(cancelQueued: Bool)
    /// `resume --retry` and `resume --continue` (`ResumeMode`). Requests of their own, not a key
    /// of `resume`: a service from before them refuses the request by name instead of taking
    /// it for a plain resume, which would end the event.
    case resumeRetry(cancelQueued: Bool)
    case resumeContinue(cancelQueued: Bool)

    /// `resume` in `mode`.
    public static func resume(_ mode: ResumeMode, cancelQueued: Bool) -> ControlRequest {
        switch mode {
        case .skip: .resume(cancelQueued: cancelQueued)
        case .retry: .resumeRetry(cancelQueued: cancelQueued)
        case .continue: .resumeContinue(cancelQueued: cancelQueued)
        }
    }
    /// Raise `event` in `state` with `node` (nil: the service's node) as its event node.
    case trigger(event: String, state: Int, node: String?)
    /// Suppress (off) or allow (on) the events of the nodes of a NODERANGE.
    case recovery(setting: RecoverySetting, nodes: String)
    /// Start or stop cluster services on the nodes of a NODERANGE.
    case haCmd(action: ClusterServicesAction, nodes: String)
    /// Follow the event log: one answer per line (only the lines that name `node`, if given)
    /// until the client goes away, is too slow, or the service stops. `after`: the id of the
    /// last line the client has (a `mon` that reconnects): it gets the lines after it, not
    /// the newest ones again (nil from an earlier client: the newest lines).
    case mon(node: String?, after: Int64? = nil)
    /// Answer once an event named `name` completes, or fail with `timeout` after `timeout`
    /// (nil: no timeout). On the wire a number of seconds, at most a year (`BoundedDuration`).
    case waitEvent(name: String, timeout: BoundedDuration?)
    /// The timeline of event `event` of journal run `run` (nil: the newest run that has one):
    /// a report whose JSON is the `Timeline`, which the command line draws (`history EVENT
    /// --format html`).
    case timeline(event: Int, run: Int64? = nil)
    /// Run this node's fence device for `node` now, and tell the cluster how it ended.
    case fence(node: String)
    /// An administrator made sure `node` is down: its takeover may run.
    case fenceConfirm(node: String)
    /// `hamn-events sync`: this node's rules tree to every node, through the cluster; with
    /// `rollback`, every node goes back to the tree before the last sync (README, "sync").
    case sync(rollback: Bool)

    public enum RecoverySetting: String, Codable, Sendable, Hashable, CaseIterable {
        case off, on
    }

    /// `ha-cmd`'s action: START runs the configuration's `start_command`; the others stop the
    /// nodes' cluster services through the cluster (`TE_FAIL_NODE` state 1, 2, 3).
    public enum ClusterServicesAction: String, Codable, Sendable, Hashable, CaseIterable {
        case start = "START"
        case stop = "STOP"
        case take = "TAKE"
        case force = "FORCE"

        /// The stop it asks for; nil for START.
        public var stopMode: StopMode? {
            switch self {
            case .start: nil
            case .stop: .graceful
            case .take: .takeover
            case .force: .forced
            }
        }
    }

    /// The requests' names on the wire, for the error that names an unknown one.
    static let names = [
        "status", "history", "resume", "resume_retry", "resume_continue", "trigger", "recovery", "ha_cmd", "mon",
        "wait_event", "fence", "fence_confirm", "timeline", "sync",
    ]

    /// The most events `history` returns at once.
    public static let historyLimit = 10000
    /// The largest state `trigger` takes: what a rules file's state field holds (18 digits).
    public static let largestState = 999_999_999_999_999_999

    /// One request line, decoded and checked: a clear error for anything else, never a crash.
    public static func decode(_ line: Data) -> Result<ControlRequest, ControlError> {
        let object = try? JSONSerialization.jsonObject(with: line)
        guard let dictionary = object as? [String: Any] else {
            return .failure(ControlError(.malformedRequest, "malformed request: not a JSON object on one line"))
        }
        guard dictionary.count == 1, let name = dictionary.keys.first else {
            return .failure(
                ControlError(
                    .malformedRequest,
                    "malformed request: one key naming the request expected, got \(dictionary.count) (\(dictionary.keys.sorted().joined(separator: ", ")))"
                ))
        }
        guard names.contains(name) else {
            return .failure(
                ControlError(.malformedRequest, "unknown request '\(name)' (known: \(names.joined(separator: ", ")))"))
        }
        let request: ControlRequest
        do {
            request = try JSONDecoder.control.decode(ControlRequest.self, from: line)
        } catch let error as DecodingError {
            return .failure(ControlError(.malformedRequest, "malformed request '\(name)': \(error.summary)"))
        } catch {
            return .failure(ControlError(.malformedRequest, "malformed request '\(name)': \(error)"))
        }
        if let problem = request.problem {
            return .failure(ControlError(.invalidArgument, "\(request.name): \(problem)"))
        }
        return .success(request)
    }

    /// The request's name, as the command line spells it.
    public var name: String {
        switch self {
        case .status(let all): all == true ? "status --all" : "status"
        case .history: "history"
        case .resume: "resume"
        case .resumeRetry: "resume --retry"
        case .resumeContinue: "resume --continue"
        case .trigger: "trigger"
        case .recovery: "recovery"
        case .haCmd: "ha-cmd"
        case .mon: "mon"
        case .waitEvent: "wait-event"
        case .fence: "fence"
        case .fenceConfirm: "fence confirm"
        case .timeline: "history EVENT"
        case .sync(let rollback): rollback ? "sync --rollback" : "sync"
        }
    }

    /// What is wrong with the values of a request that decoded, or nil.
    var problem: String? {
        switch self {
        case .history(let limit):
            limit < 0
                ? "the limit is negative (\(limit))"
                : limit > Self.historyLimit ? "the limit is at most \(Self.historyLimit) events (\(limit))" : nil
        case .trigger(let event, let state, let node):
            if event.isEmpty || event.contains(where: \.isWhitespace) {
                "an event name without blanks"
            } else if state.magnitude > Self.largestState.magnitude {
                "the state is an integer of at most 18 digits, as in a rules file (\(state))"
            } else if node?.isEmpty == true {
                "an empty node name"
            } else {
                nil
            }
        case .waitEvent(let name, _):
            name.isEmpty ? "which event?" : nil
        case .mon(let node, let after):
            node?.isEmpty == true ? "an empty node name" : (after ?? 0) < 0 ? "a negative line id" : nil
        case .fence(let node), .fenceConfirm(let node):
            node.isEmpty || node.contains(where: \.isWhitespace) ? "a node name without blanks" : nil
        case .timeline(let event, let run):
            event < 0 ? "a negative event id" : (run ?? 0) < 0 ? "a negative run" : nil
        case .status, .resume, .resumeRetry, .resumeContinue, .recovery, .haCmd, .sync:
            nil
        }
    }
}

extension DecodingError {
    /// `limit: expected Int` rather than the whole context.
    var summary: String {
        func path(_ context: DecodingError.Context) -> String {
            // The first key is the request's name, said already.
            let keys = context.codingPath.dropFirst().map(\.stringValue).filter { !$0.isEmpty }
            return keys.isEmpty ? "" : keys.joined(separator: ".") + ": "
        }
        switch self {
        case .typeMismatch(let type, let context):
            return "\(path(context))expected \(type)"
        case .valueNotFound(let type, let context):
            return "\(path(context))missing \(type)"
        case .keyNotFound(let key, let context):
            return "\(path(context))missing '\(key.stringValue)'"
        case .dataCorrupted(let context):
            return "\(path(context))\(context.debugDescription)"
        @unknown default:
            return "\(self)"
        }
    }
}
