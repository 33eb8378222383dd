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
    /// Recovery is back on for this node: arm these instances of its monitors again, so that the
    /// next sample evaluates their predicates afresh (a condition still true raises its event).
    case rearm([SuppressedInstance])
}

/// One node's share of one segment of an event.
public struct SegmentRun: Sendable, Hashable {
    public var event: ClusterEvent
    public var segment: Int
    public var commands: [CommandStep]
    /// `HAMN_EVENT`, `HAMN_EVENT_NODE`, ... (SPEC section 7).
    public var environment: [String: String]

    public init(event: ClusterEvent, segment: Int, commands: [CommandStep], environment: [String: String]) {
        self.event = event
        self.segment = segment
        self.commands = commands
        self.environment = environment
    }
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
    /// `resume`, in its mode, and what it did (`ResumeEntry.event` nil: nothing to resume).
    case resumed(ResumeEntry)
    /// Recovery came back on for `node`: these of its instances, whose events were suppressed,
    /// are armed again and evaluated afresh at their next sample.
    case rearmed(node: String, instances: [SuppressedInstance])
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

/// A `resume` as applied: who asked, the mode, and the event it resumed.
public struct ResumeEntry: Sendable, Hashable {
    public var mode: ResumeMode
    public var cancelQueued: Bool
    /// The user who asked (from the control socket's peer), when the sender said.
    public var user: String?
    /// The node it was asked on.
    public var node: ClusterNode
    /// The event held in the failed state; nil when there was none.
    public var event: ClusterEvent?
    /// The held segment.
    public var segment: Int
    /// The nodes whose commands failed in it (those still taking part): `retry` runs their
    /// failed commands again there; `continue` counts them as having finished the segment.
    public var failedOn: [ClusterNode]

    public init(
        mode: ResumeMode, cancelQueued: Bool, user: String?, node: ClusterNode, event: ClusterEvent? = nil,
        segment: Int = 0, failedOn: [ClusterNode] = []
    ) {
        self.mode = mode
        self.cancelQueued = cancelQueued
        self.user = user
        self.node = node
        self.event = event
        self.segment = segment
        self.failedOn = failedOn
    }

    /// `RESUME --retry by alice on n1: db2_proc_restart 0 (node n2, event 3) segment 0: ...`
    public var description: String {
        let who =
            "RESUME\(mode.option.isEmpty ? "" : " " + mode.option)\(cancelQueued ? " --cancel-queued" : "")"
            + (user.map { " by \($0)" } ?? "") + " on \(node.name)"
        guard let event else {
            return who + ": no failed event to resume" + (cancelQueued ? "; the queue is dropped" : "")
        }
        let what = "\(event.name) \(event.state) (node \(event.node.name), event \(event.id)) segment \(segment)"
        let nodes = failedOn.isEmpty ? "no node (they left)" : failedOn.map(\.name).joined(separator: " ")
        switch mode {
        case .skip:
            return "\(who): \(what): the rest is skipped everywhere (done by hand), the event ends failed"
        case .retry:
            return "\(who): \(what): the failed commands run again on \(nodes)"
        case .continue:
            return "\(who): \(what): goes on with the next segment as if the failed commands on \(nodes) had succeeded"
        }
    }
}
