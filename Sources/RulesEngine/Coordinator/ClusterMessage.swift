import RecoveryPrograms

/// What nodes multicast to the group, delivered to every member in one order.
public enum ClusterMessage: Sendable, Hashable, Codable {
    /// Raise an event (a predicate became true, `trigger`, a network interface changed,
    /// `TE_CONFIG_TOO_LONG` from a late node).
    case raise(EventRequest)
    /// The sender finished its commands of a segment of an event.
    case segmentDone(eventID: Int, segment: Int, results: [CommandResult])
    /// `hamn-events resume [--retry|--continue] [--cancel-queued]`, asked by `user` (the control
    /// socket's peer). `mode` nil is the plain resume (`ResumeMode.skip`): the key is left out,
    /// so that the message is the one engines before resume modes send and read.
    case resume(cancelQueued: Bool, mode: ResumeMode? = nil, user: String? = nil)
    /// `hamn-events recovery off|on`: events whose event node is one of `nodes` are suppressed.
    case recovery(enabled: Bool, nodes: [String])
    /// `ha-cmd NODE STOP|TAKE|FORCE`: `node` stops cluster services after its `TE_FAIL_NODE`.
    case stopServices(node: String, mode: StopMode)
    /// SIGHUP on the sender, whose new rules validated: every node re-reads its own rules at
    /// this place in the order, so that the events after it use the new rules everywhere.
    case reloadRules
    /// The cluster's state as of the membership change `view`, for members that just joined.
    case snapshot(for: [String], view: Int, state: ReplicatedState)
    /// How a fence of `node` ended (`attempt` 0: `hamn-events fence` or `fence confirm` by hand).
    case fenceOutcome(node: String, outcome: FenceOutcome, attempt: Int)
    /// `hamn-events sync` (`request`: the sender's name and a number): every node writes `tree`
    /// as its rules tree at this place in the order and reloads, or keeps its old one, and
    /// answers with `syncOutcome`. The coordinator ignores it (the service applies it). An
    /// engine from before sync cannot decode it: it logs the message and drops it.
    case syncTree(request: String, tree: ConfigurationTree)
    /// `hamn-events sync --rollback`: every node writes the tree it had before the last sync.
    case syncRollback(request: String)
    /// How a node took `request`: the digest of the tree it now runs, and why it kept its
    /// old one (nil when it took the new one).
    case syncOutcome(request: String, node: String, digest: String?, problem: String?)
    /// `hamn-events status --all` (`request`: the asker's name and a number): every node
    /// answers with `instances`. The coordinator ignores both (the service answers). An engine
    /// from before them cannot decode them and never answers: the asker names it.
    case instancesAsked(request: String)
    /// `node`'s instances, what its own `status` shows, for `request`.
    case instances(request: String, node: String, instances: [InstanceSummary])
}

/// One instance of a rule as a node's `status` shows it, for `status --all`.
public struct InstanceSummary: Sendable, Hashable, Codable {
    public var event: String
    public var state: Int
    public var instance: String
    public var armed: Bool
    /// The last sample's value as text; nil before the first.
    public var last: String?

    public init(event: String, state: Int, instance: String, armed: Bool, last: String?) {
        self.event = event
        self.state = state
        self.instance = instance
        self.armed = armed
        self.last = last
    }
}

/// A change of membership, delivered in the same place of the order on every member.
public struct MembershipChange: Sendable, Hashable, Codable {
    /// Numbers the views; a snapshot names the view it was taken at.
    public var view: Int
    public var members: [ClusterNode]
    public var joined: [ClusterNode]
    public var left: [ClusterNode]

    public init(view: Int, members: [ClusterNode], joined: [ClusterNode], left: [ClusterNode]) {
        self.view = view
        self.members = members.sorted()
        self.joined = joined.sorted()
        self.left = left.sorted()
    }
}

/// One input of the coordinator.
public enum Delivery: Sendable, Hashable {
    case message(from: ClusterNode, ClusterMessage)
    case membership(MembershipChange)
    /// Local time passing: only for `config_too_long`. Never ordered, never replicated.
    case tick
    /// Local: whether this node's partition has quorum, in the deliveries' order. Without it no
    /// recovery command starts on this node; its segments wait. Quorum that comes back is
    /// given only once the membership change that goes with it has been applied and settled
    /// (see `EngineMembership`), so a partition that is about to lose a merge never runs them.
    case quorum(Bool)
    /// A partition healed and this node's side stays: the nodes named were alive all along on
    /// the other side (their engines stop and rejoin). Their takeovers are not run.
    case merged(alive: [ClusterNode])
}

/// How `resume` goes on with the event held in the failed state (docs/decisions.md, "Resume").
public enum ResumeMode: String, Sendable, Hashable, Codable, CaseIterable {
    /// HACMP's meaning: the administrator did the rest by hand. The event ends failed, the rest
    /// of it is skipped everywhere, and the queue moves on.
    case skip
    /// The commands that failed run again, on the nodes where they failed; when they now meet
    /// their expected status the event goes on with its next segment, else it stays held.
    case retry
    /// The event goes on with its next segment as if the failed commands had succeeded.
    case `continue`

    /// `--retry`, `--continue`, or nothing for the plain resume.
    public var option: String {
        switch self {
        case .skip: ""
        case .retry: "--retry"
        case .continue: "--continue"
        }
    }
}

extension ClusterMessage {
    /// A resume as it goes on the wire: the plain one without the `mode` key.
    public static func resume(_ mode: ResumeMode, cancelQueued: Bool, user: String?) -> ClusterMessage {
        .resume(cancelQueued: cancelQueued, mode: mode == .skip ? nil : mode, user: user)
    }
}
