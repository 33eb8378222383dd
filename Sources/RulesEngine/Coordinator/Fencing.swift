import RulesParser

/// Fencing before takeover (issue 12), the part every node decides alike.
///
/// A node that leaves without a graceful stop (a crash, its engine killed while the node lives
/// on, a partition) may still hold what its takeover is about to start elsewhere: the same DB2
/// database, the same address. So its takeover waits until it is known to be down. Exactly one
/// surviving node runs the fence agent, the lowest numbered member while its partition has
/// quorum, and multicasts the outcome; every node applies it at the same place in the order.
/// An administrator's `fence confirm NODE` is an outcome too (Pacemaker's
/// `stonith_admin --confirm`).
public struct FencingPolicy: Sendable, Hashable {
    /// Fence a node that leaves without a graceful stop before its takeover runs.
    public var enabled: Bool
    /// Attempts the fencer makes before it waits for an administrator (`fence NODE` or
    /// `fence confirm NODE`).
    public var attempts: Int

    public init(enabled: Bool, attempts: Int = 3) {
        self.enabled = enabled
        self.attempts = max(1, attempts)
    }

    /// No fencing (`fencing: none`, or a single node): takeovers run at once, as before.
    public static let none = FencingPolicy(enabled: false)
}

/// A node that left without a graceful stop and is not yet known to be down.
public struct PendingFence: Sendable, Hashable, Codable {
    public var node: ClusterNode
    /// The member that runs the agent: the lowest numbered member when the fence became
    /// needed, and again only when it leaves (a node that joins meanwhile does not take over a
    /// fence that may be running).
    public var fencer: ClusterNode?
    /// Failed attempts so far.
    public var failures: Int = 0
    /// Why the last attempt failed (the agent's exit status or timeout, never its options).
    public var lastError: String?

    public init(node: ClusterNode, fencer: ClusterNode?, failures: Int = 0, lastError: String? = nil) {
        self.node = node
        self.fencer = fencer
        self.failures = failures
        self.lastError = lastError
    }
}

/// How a fence ended, as multicast by the node that ran the agent (or took the admin's word).
public enum FenceOutcome: Sendable, Hashable, Codable {
    /// The agent reported the node off (exit status 0).
    case fenced
    /// The agent failed, timed out or could not be run.
    case failed(reason: String)
    /// `hamn-events fence confirm NODE`: an administrator made sure the node is down.
    case confirmed
}

/// Run the fence agent of `node` (this node was chosen to), then multicast the outcome
/// (`ClusterMessage.fenceOutcome`) with this `attempt`.
public struct FenceRequest: Sendable, Hashable {
    public var node: ClusterNode
    /// 1 for the first attempt.
    public var attempt: Int

    public init(node: ClusterNode, attempt: Int) {
        self.node = node
        self.attempt = attempt
    }
}

/// What happened to a fence, for the journal, `history` and `simulate`.
public enum FenceEntry: Sendable, Hashable {
    /// `node` left without a graceful stop (or its fencer left): its takeover waits for a fence
    /// by `fencer`.
    case needed(node: ClusterNode, fencer: ClusterNode?)
    /// An outcome arrived from `by` (attempt 0: by hand).
    case outcome(node: String, FenceOutcome, by: ClusterNode, attempt: Int)
    /// The fencer made every attempt: the takeover waits for an administrator.
    case gaveUp(node: ClusterNode, failures: Int)
    /// Not needed any more: the node was alive on the other side of a healed partition (its
    /// takeover is cancelled).
    case dropped(node: ClusterNode)
    /// This node's segment of a takeover waits for the fence of `node` (local entry).
    case waits(eventID: Int, name: String, segment: Int, node: ClusterNode)
}

/// Why one of this node's segments may not start now.
public enum SegmentHold: Sendable, Hashable {
    /// This node's partition has no quorum.
    case quorum
    /// A takeover of `node`, which is not yet fenced.
    case fence(ClusterNode)
}

/// The fencing rule, in one place: whether this node may start its segment of `event` now.
/// Without quorum, nothing starts. A takeover (`TE_FAIL_NODE` state 0) of a node whose fence
/// is pending starts nowhere, in no segment, until an outcome says the node is down.
public func segmentHold(for event: ClusterEvent, quorate: Bool, pendingFences: [String: PendingFence]) -> SegmentHold? {
    if !quorate { return .quorum }
    if event.name == BuiltInTrigger.failNode.rawValue, event.state == 0, pendingFences[event.node.name] != nil {
        return .fence(event.node)
    }
    return nil
}

extension FenceEntry: CustomStringConvertible {
    /// One line for the journal, `history` and `simulate` (never an agent's options).
    public var description: String {
        switch self {
        case .needed(let node, let fencer):
            "FENCE NEEDED: \(node.name) left without a graceful stop; its takeover waits for a fence by \(fencer?.name ?? "nobody yet (no quorum)")"
        case .outcome(let node, .fenced, let by, let attempt):
            "FENCED: \(node) by \(by.name)\(attempt == 0 ? " (by hand)" : " (attempt \(attempt))"); its takeover may run"
        case .outcome(let node, .confirmed, let by, _):
            "FENCE CONFIRMED: an administrator on \(by.name) made sure \(node) is down; its takeover may run"
        case .outcome(let node, .failed(let reason), let by, let attempt):
            "FENCE FAILED: \(node) by \(by.name)\(attempt == 0 ? " (by hand)" : " (attempt \(attempt))"): \(reason)"
        case .gaveUp(let node, let failures):
            "fencing \(node.name): failed \(failures) times, takeover waits (hamn-events fence \(node.name), or fence confirm \(node.name) once it is down)"
        case .dropped(let node):
            "fence of \(node.name) not needed: it was alive on the other side of a healed partition"
        case .waits(let eventID, let name, let segment, let node):
            "event \(eventID) \(name) segment \(segment) waits for the fence of \(node.name)"
        }
    }

    /// A local entry (this node's own segment), not one every node journals.
    public var isLocal: Bool {
        if case .waits = self { true } else { false }
    }
}
