import HamnYAML
import RecoveryPrograms
import RulesParser

/// What a node does when its partition loses quorum (issue 12, part 5), Pacemaker's
/// `no-quorum-policy`.
public enum NoQuorumPolicy: Sendable, Hashable {
    /// Run nothing new until quorum is back; keep the resources (the default).
    case freeze
    /// As `freeze`, and once quorum has been lost for `delay` seconds (and this node runs no
    /// command of a segment), run `TE_QUORUM_LOST` on this node alone to release its resources.
    case stop(delay: Double)
}

extension NoQuorumPolicy {
    /// The default delay of `stop`: a partition that heals within it releases nothing.
    public static let defaultStopDelay = 5.0
    /// The longest delay accepted.
    public static let maximumStopDelay = 3600.0

    /// `no_quorum_policy: freeze | stop`, or `{action: freeze | stop, delay: DURATION}` (the
    /// delay only with `stop`; default 5s, 0s to 1h), in hamn.yaml and in scenarios.
    public static func parse(_ value: YAMLValue) throws(YAMLError) -> NoQuorumPolicy {
        var action: String
        var delay: Double?
        var actionValue = value
        if value.isMapping {
            action = "freeze"
            var given = false
            for (key, field) in try value.mapping(allowed: ["action", "delay"]) {
                if key == "action" {
                    action = try field.string()
                    actionValue = field
                    given = true
                } else {
                    let seconds = try field.duration()
                    guard seconds >= 0, seconds <= maximumStopDelay else {
                        throw field.error("the delay must be from 0s to 1h (3600s)")
                    }
                    delay = seconds
                }
            }
            guard given else { throw value.error("missing key 'action' (freeze or stop)") }
        } else {
            action = try value.string()
        }
        switch action {
        case "freeze":
            if delay != nil { throw value.error("a delay is for action stop only (freeze runs nothing)") }
            return .freeze
        case "stop":
            return .stop(delay: delay ?? defaultStopDelay)
        default:
            throw actionValue.error(
                "expected freeze (run nothing new without quorum) or stop (run TE_QUORUM_LOST), not '\(action)'")
        }
    }
}

/// The rule for when `TE_QUORUM_LOST` runs, local to one node and free of I/O and clocks.
///
/// Under `stop`, quorum lost at time `t` makes it due at `t + delay`; it runs at the first
/// step at or after that time in which the partition is still without quorum and this node is
/// not running commands of a segment (those finish first: what they were doing is then
/// released too). It runs once per loss; quorum back before it ran cancels it.
public struct QuorumLossRule: Sendable, Hashable {
    public let policy: NoQuorumPolicy
    /// When quorum was lost, while it is lost; nil while quorate.
    public private(set) var lostAt: Double?
    /// Whether `TE_QUORUM_LOST` has run (been handed out) for the current loss.
    public private(set) var ran = false

    public init(policy: NoQuorumPolicy) {
        self.policy = policy
    }

    /// When `TE_QUORUM_LOST` is due, while it is still to run; nil otherwise.
    public var due: Double? {
        guard case .stop(let delay) = policy, let lostAt, !ran else { return nil }
        return lostAt + delay
    }

    /// What a change of quorum does to the rule.
    public enum Change: Sendable, Hashable {
        case none
        /// Lost: `TE_QUORUM_LOST` is due at this time.
        case armed(due: Double)
        /// Back before `TE_QUORUM_LOST` ran: it will not run.
        case cancelled
        /// Back after it ran.
        case backAfterRun
    }

    /// The partition lost (`quorate` false) or regained quorum at `now`.
    public mutating func quorumChanged(_ quorate: Bool, now: Double) -> Change {
        if quorate {
            defer {
                lostAt = nil
                ran = false
            }
            guard case .stop = policy, lostAt != nil else { return .none }
            return ran ? .backAfterRun : .cancelled
        }
        guard lostAt == nil else { return .none }
        lostAt = now
        return due.map { .armed(due: $0) } ?? .none
    }

    /// Whether `TE_QUORUM_LOST` runs now (and is then marked as run): `busy` is whether this
    /// node is running commands of a segment.
    public mutating func runsNow(now: Double, busy: Bool) -> Bool {
        guard let due, now >= due, !busy else { return false }
        ran = true
        return true
    }
}

/// `TE_QUORUM_LOST` as this node runs it: every segment of its recovery program that concerns
/// this node (the event node: `event` and `all` steps; `other` steps have no node to run on),
/// one after the other, with no barrier across nodes and no message to the cluster.
public struct LocalEventRun: Sendable, Hashable {
    public var name: String
    public var displayName: String
    public var segments: [[CommandStep]]
    /// `HAMN_EVENT`, `HAMN_EVENT_NODE`, ... as for a cluster event (`HAMN_EVENT_ID` is 0: the
    /// event is not in the cluster's numbering); `HAMN_SEGMENT` is set per segment.
    public var environment: [String: String]

    public init(name: String, displayName: String, segments: [[CommandStep]], environment: [String: String]) {
        self.name = name
        self.displayName = displayName
        self.segments = segments
        self.environment = environment
    }
}

/// The journal's entries of the quorum loss policy (all local to this node).
public enum QuorumLossEntry: Sendable, Hashable, CustomStringConvertible {
    /// Quorum lost under `stop`: `TE_QUORUM_LOST` is due after `delay` seconds.
    case armed(delay: Double)
    /// Quorum back before the delay ended: nothing runs.
    case cancelled
    /// `TE_QUORUM_LOST` starts on this node (`displayName` is its rule's).
    case started(displayName: String, segments: Int)
    /// There is no rule for `TE_QUORUM_LOST`: nothing to run.
    case noRule
    /// One of its commands ended.
    case command(segment: Int, result: CommandResult)
    /// It ended: every command met its expected status, or not (the first segment with a
    /// failure is the last that ran).
    case finished(completed: Bool)

    public var description: String {
        switch self {
        case .armed(let delay):
            "quorum lost: no_quorum_policy stop: TE_QUORUM_LOST runs on this node in \(Self.seconds(delay)) unless quorum is back"
        case .cancelled:
            "quorum back before the no_quorum_policy delay ended: TE_QUORUM_LOST does not run"
        case .started(let displayName, let segments):
            "TE_QUORUM_LOST (\(displayName)) starts on this node: \(segments) segment(s), releasing its resources"
        case .noRule:
            "no_quorum_policy stop: no rule for TE_QUORUM_LOST: nothing runs (define one to release this node's resources)"
        case .command(let segment, let result):
            "TE_QUORUM_LOST segment \(segment): \"\(result.command)\" \(result.accepted ? "ok" : "FAILED"): \(result.termination)"
        case .finished(let completed):
            completed
                ? "TE_QUORUM_LOST completed on this node"
                : "TE_QUORUM_LOST FAILED on this node: a command did not end with its expected status"
        }
    }

    static func seconds(_ value: Double) -> String {
        let milliseconds = (value * 1000).rounded()
        return milliseconds.truncatingRemainder(dividingBy: 1000) == 0
            ? "\(Int(milliseconds / 1000))s" : "\(milliseconds / 1000)s"
    }
}
