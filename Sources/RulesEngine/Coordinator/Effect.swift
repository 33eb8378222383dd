import RecoveryPrograms
import RulesParser

/// What the coordinator asks of the node it runs on.
public enum Effect: Sendable, Hashable {
    /// Run these commands of a segment, in parallel, with this environment; then multicast
    /// `segmentDone` with their results.
    case runSegment(SegmentRun)
    /// Multicast this message to the group.
    case multicast(ClusterMessage)
    /// Record this.
    case journal(JournalEntry)
    /// This node has finished stopping cluster services: leave the group.
    case leaveCluster
    /// Re-read and validate this node's rules now, before the next delivery (`reloadRules`
    /// from the node named): keep them if they have errors.
    case reloadRules(requestedBy: String)
    /// Run the fence agent of a node (this node is the fencer), then multicast the outcome.
    case fence(FenceRequest)
    /// Run this local event (`TE_QUORUM_LOST`) on this node alone: its segments one after the
    /// other, each only if the previous one's commands all met their expected status; journal
    /// each result (`JournalEntry.quorumLoss`); nothing goes to the cluster.
    case runLocalEvent(LocalEventRun)
}

/// One node's share of one segment of an event.
public struct SegmentRun: Sendable, Hashable {
    public var event: ClusterEvent
    public var segment: Int
    public var commands: [CommandStep]
    /// `HAMN_EVENT`, `HAMN_EVENT_NODE`, ... (SPEC section 7).
    public var environment: [String: String]
}

/// What happened, for the journal, `history`, `mon` and the timelines of `simulate`.
/// Every node journals the same entries in the same order, except those marked local.
public enum JournalEntry: Sendable, Hashable {
    case membership(MembershipChange)
    /// A delivered request matched no rule: recorded, not run.
    case unmatched(EventRequest)
    case queued(ClusterEvent)
    case started(ClusterEvent, displayName: String, participants: [ClusterNode])
    /// Every remaining participant reached barrier `index` (the end of segment `index`).
    case barrierPassed(eventID: Int, index: Int, participants: [ClusterNode])
    case commandFinished(eventID: Int, node: ClusterNode, segment: Int, result: CommandResult)
    /// A participant left while the event ran and was dropped from its barriers.
    case participantLeft(eventID: Int, node: ClusterNode)
    /// A command failed its expected status on `node`: the event is held.
    case failed(ClusterEvent, node: ClusterNode, segment: Int)
    case finished(ClusterEvent, outcome: EventOutcome)
    case recovery(enabled: Bool, nodes: [String])
    /// `resume` arrived with no failed event to resume.
    case nothingToResume
    case stopRequested(node: String, mode: StopMode)
    /// This node (local entry) is waiting for the state of the cluster, or got it.
    case synchronised(view: Int)
    /// This node's partition lost or regained quorum (local entry); `waiting` segments of this
    /// node wait for it (they start when it is back).
    case quorum(Bool, waiting: Int)
    /// This node's segment waits for quorum (local entry).
    case waitsForQuorum(eventID: Int, name: String, segment: Int)
    /// A partition healed: these nodes were alive on the other side, which stops and rejoins.
    case merged(alive: [ClusterNode])
    /// Fencing before takeover: needed, an outcome, given up, dropped, or a segment waiting.
    case fence(FenceEntry)
    /// `no_quorum_policy: stop` and `TE_QUORUM_LOST` on this node (local entry).
    case quorumLoss(QuorumLossEntry)
}
