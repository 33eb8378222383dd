import RecoveryPrograms

/// The part of a coordinator's state that is identical on every synchronised member after
/// each delivery: what a joining member is sent.
public struct ReplicatedState: Sendable, Hashable, Codable {
    /// The current members, in node number order.
    public var members: [ClusterNode] = []
    /// Members that joined a running cluster and have not yet been sent this state.
    public var awaitingSnapshot: [ClusterNode] = []
    /// Events waiting to run, in the order they will run.
    public var queue: [ClusterEvent] = []
    /// The one queued event that runs now.
    public var current: RunningEvent?
    /// `TE_EVENT_ERROR` / `TE_CONFIG_TOO_LONG` events running beside `current`.
    public var notifications: [RunningEvent] = []
    /// Names of the nodes whose events are suppressed.
    public var recoveryOff: Set<String> = []
    /// Nodes stopping cluster services: their departure raises no event.
    public var stopping: [String: StopMode] = [:]
    /// Stopping nodes whose `TE_FAIL_NODE` has ended: they take part in no new event.
    public var departing: Set<String> = []
    public var nextEventID = 1
    public var nextArrival = 1
    /// Nodes that left without a graceful stop and are not yet fenced, by name (optional in
    /// the snapshot's JSON, so that a snapshot from an engine without fencing still decodes).
    public var fencing: [String: PendingFence]?

    /// `fencing`, empty when there is none.
    public var pendingFences: [String: PendingFence] {
        get { fencing ?? [:] }
        set { fencing = newValue.isEmpty ? nil : newValue }
    }

    public init(members: [ClusterNode] = []) {
        self.members = members.sorted()
    }
}

/// An event being run: who takes part, which segment, who has finished it.
public struct RunningEvent: Sendable, Hashable, Codable {
    public struct Failure: Sendable, Hashable, Codable {
        public var node: ClusterNode
        public var segment: Int
    }

    public var event: ClusterEvent
    public var displayName: String
    public var segmentCount: Int
    /// The members at the event's start, less those that have left since.
    public var participants: [ClusterNode]
    /// The members at the event's start (`HAMN_MEMBERS`).
    public var members: [ClusterNode]
    /// The segment being run: barriers `0..<segment` have been passed.
    public var segment: Int
    /// Names of the participants that have finished `segment`.
    public var reached: Set<String>
    /// The first command failure: the event is held until `resume`.
    public var failure: Failure?
    /// A takeover whose event node is alive after a heal: it ends at its next barrier.
    public var cancelled = false

    /// The participants a barrier (or the end) still waits for.
    public var waitingFor: [ClusterNode] {
        participants.filter { !reached.contains($0.name) }
    }
}
