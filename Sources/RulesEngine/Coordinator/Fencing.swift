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
    /// Every node of the cluster (the configuration's `nodes:`). A cluster that forms fences
    /// those of them that are not members (startup fencing): their state is unknown.
    public var nodes: [ClusterNode]
    /// Seconds a node whose state is unknown (not seen when the cluster formed, or alive on the
    /// losing side of a healed partition) has to join before it is fenced.
    public var window: Double
    /// 30 s: longer than a restart by systemd and corosync's merge, shorter than a takeover.
    public static let defaultWindow = 30.0

    public init(enabled: Bool, attempts: Int = 3, nodes: [ClusterNode] = [], window: Double = defaultWindow) {
        self.enabled = enabled
        self.attempts = max(1, attempts)
        self.nodes = nodes
        self.window = max(0, window)
    }

    /// No fencing (`fencing: none`, or a single node): takeovers run at once, as before.
    public static let none = FencingPolicy(enabled: false)
}

/// Why a node's state is unknown, so that it is fenced unless it joins.
public enum FenceReason: String, Sendable, Hashable, Codable {
    /// It left this cluster without a graceful stop (a crash, its engine killed, a partition).
    case left
    /// It was not a member when this cluster formed (startup fencing): its engine may have been
    /// killed holding resources, or it may be on the other side of a partition.
    case unseen
    /// It was alive on the other side of a healed partition, and its engine lost the merge: it
    /// stops, holding what it held, and starts again.
    case outside
}

/// A node whose state is unknown: it may hold resources, and it is not a member. No segment
/// that runs commands starts while one is pending (`segmentHold`), until it is fenced,
/// confirmed down, or (its engine started again) joins.
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
    /// nil: `.left` (the only reason older engines knew; they leave the key out).
    public var why: FenceReason?
    /// Why the node's state is unknown.
    public var reason: FenceReason { why ?? .left }

    public init(
        node: ClusterNode, fencer: ClusterNode?, failures: Int = 0, lastError: String? = nil,
        reason: FenceReason = .left
    ) {
        self.node = node
        self.fencer = fencer
        self.failures = failures
        self.lastError = lastError
        self.why = reason == .left ? nil : reason
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
    /// `node`'s state is unknown (`reason`), or its fencer left: events wait for a fence by
    /// `fencer` (after `window` seconds for a node that may still join).
    case needed(node: ClusterNode, fencer: ClusterNode?, reason: FenceReason = .left, window: Double = 0)
    /// An outcome arrived from `by` (attempt 0: by hand).
    case outcome(node: String, FenceOutcome, by: ClusterNode, attempt: Int)
    /// The fencer made every attempt: the takeover waits for an administrator.
    case gaveUp(node: ClusterNode, failures: Int)
    /// Not needed any more: the node joined (its engine runs again; its takeover is cancelled),
    /// or, without fencing, was alive on the other side of a healed partition.
    case dropped(node: ClusterNode)
    /// This node's segment waits for the fence of `node` (local entry).
    case waits(eventID: Int, name: String, segment: Int, node: ClusterNode)
}

/// Why one of this node's segments may not start now.
public enum SegmentHold: Sendable, Hashable {
    /// This node's partition has no quorum.
    case quorum
    /// `node`'s state is unknown: it is not yet fenced (nor joined).
    case fence(ClusterNode)
}

/// The fencing rule, in one place: whether this node may start its segment of `event` now.
///
/// Without quorum, nothing starts. While any node's state is unknown (a fence is pending: it
/// left without a graceful stop, was not seen when the cluster formed, or lost a merge while
/// alive), no segment that runs commands starts, in any event but a notification
/// (`TE_EVENT_ERROR`, which tells the administrator of failed fences): the node may hold
/// what a command is about to start, and which resources it holds is known only to its
/// scripts. A segment with no command on this node (a cancelled takeover's) harms nothing
/// and runs. The hold ends when an outcome says the node is down or it joins.
public func segmentHold(
    for event: ClusterEvent, runsCommands: Bool = true, quorate: Bool, pendingFences: [String: PendingFence]
) -> SegmentHold? {
    if !quorate { return .quorum }
    guard runsCommands, !event.isNotification, !pendingFences.isEmpty else { return nil }
    if pendingFences[event.node.name] != nil { return .fence(event.node) }
    return .fence(pendingFences.values.map(\.node).min()!)
}

extension FenceEntry: CustomStringConvertible {
    /// One line for the journal, `history` and `simulate` (never an agent's options).
    public var description: String {
        switch self {
        case .needed(let node, let fencer, let reason, let window):
            switch reason {
            case .left:
                "FENCE NEEDED: \(node.name) left without a graceful stop; its takeover waits for a fence by \(fencer?.name ?? "nobody yet (no quorum)")"
            case .unseen:
                "FENCE NEEDED: \(node.name) was not a member when the cluster formed (it may hold resources); events wait until it joins, or for a fence by \(fencer?.name ?? "nobody yet (no quorum)") in \(seconds(window))"
            case .outside:
                "FENCE NEEDED: \(node.name) was alive on the other side of a healed partition and its engine stops (it may hold resources); events wait until it joins again, or for a fence by \(fencer?.name ?? "nobody yet (no quorum)") in \(seconds(window))"
            }
        case .outcome(let node, .fenced, let by, let attempt):
            "FENCED: \(node) by \(by.name)\(attempt == 0 ? " (by hand)" : " (attempt \(attempt))"); its takeover may run"
        case .outcome(let node, .confirmed, let by, _):
            "FENCE CONFIRMED: an administrator on \(by.name) made sure \(node) is down; its takeover may run"
        case .outcome(let node, .failed(let reason), let by, let attempt):
            "FENCE FAILED: \(node) by \(by.name)\(attempt == 0 ? " (by hand)" : " (attempt \(attempt))"): \(reason)"
        case .gaveUp(let node, let failures):
            "fencing \(node.name): failed \(failures) times, takeover waits (hamn-events fence \(node.name), or fence confirm \(node.name) once it is down)"
        case .dropped(let node):
            "fence of \(node.name) not needed: its engine is in the cluster again (a takeover of it is cancelled)"
        case .waits(let eventID, let name, let segment, let node):
            "event \(eventID) \(name) segment \(segment) waits for the fence of \(node.name)"
        }
    }

    private func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    /// A local entry (this node's own segment), not one every node journals.
    public var isLocal: Bool {
        if case .waits = self { true } else { false }
    }
}
