import RecoveryPrograms

/// The part of a coordinator's state that is identical on every synchronised member after
/// each delivery: what a joining member is sent.
public struct ReplicatedState: Sendable, Hashable {
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
    /// Nodes stopping cluster services, by name, and how far they are (`StopPhase.next`).
    public var stops: [String: StopPhase] = [:]
    public var nextEventID = 1
    public var nextArrival = 1
    /// Nodes that left without a graceful stop and are not yet fenced, by name (`fencing` in
    /// the snapshot's JSON, left out when empty, so that engines without fencing read it).
    public var pendingFences: [String: PendingFence] = [:]
    /// Monitored instances whose events were suppressed (recovery off for their node), by node
    /// name: re-armed when recovery comes back on (`suppressed` in the snapshot's JSON, left out
    /// when empty, so that engines before it read it).
    public var suppressed: [String: [SuppressedInstance]] = [:]

    public init(members: [ClusterNode] = []) {
        self.members = members.sorted()
    }

    /// The stop mode of every node in `stops`, departing or not.
    public var stopping: [String: StopMode] { stops.mapValues(\.mode) }
}

/// The snapshot a joining member is sent is this state as JSON: `stops` is written as the two
/// collections it replaced (`stopping`, every stopping node's mode; `departing`, the names of
/// those departing), so the wire is unchanged and engines before and after read each other.
extension ReplicatedState: Codable {
    private enum CodingKeys: String, CodingKey {
        case members, awaitingSnapshot, queue, current, notifications, recoveryOff, stopping, departing
        case nextEventID, nextArrival
        case fencing
        case suppressed
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        members = try container.decode([ClusterNode].self, forKey: .members)
        awaitingSnapshot = try container.decode([ClusterNode].self, forKey: .awaitingSnapshot)
        queue = try container.decode([ClusterEvent].self, forKey: .queue)
        current = try container.decodeIfPresent(RunningEvent.self, forKey: .current)
        notifications = try container.decode([RunningEvent].self, forKey: .notifications)
        recoveryOff = try container.decode(Set<String>.self, forKey: .recoveryOff)
        let departing = try container.decode(Set<String>.self, forKey: .departing)
        stops = try container.decode([String: StopMode].self, forKey: .stopping).reduce(into: [:]) { stops, entry in
            stops[entry.key] = departing.contains(entry.key) ? .departing(entry.value) : .stopping(entry.value)
        }
        nextEventID = try container.decode(Int.self, forKey: .nextEventID)
        nextArrival = try container.decode(Int.self, forKey: .nextArrival)
        pendingFences = try container.decodeIfPresent([String: PendingFence].self, forKey: .fencing) ?? [:]
        suppressed = try container.decodeIfPresent([String: [SuppressedInstance]].self, forKey: .suppressed) ?? [:]
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(members, forKey: .members)
        try container.encode(awaitingSnapshot, forKey: .awaitingSnapshot)
        try container.encode(queue, forKey: .queue)
        try container.encodeIfPresent(current, forKey: .current)
        try container.encode(notifications, forKey: .notifications)
        try container.encode(recoveryOff, forKey: .recoveryOff)
        try container.encode(stopping, forKey: .stopping)
        try container.encode(Set(stops.filter(\.value.isDeparting).keys), forKey: .departing)
        try container.encode(nextEventID, forKey: .nextEventID)
        try container.encode(nextArrival, forKey: .nextArrival)
        if !pendingFences.isEmpty { try container.encode(pendingFences, forKey: .fencing) }
        if !suppressed.isEmpty { try container.encode(suppressed, forKey: .suppressed) }
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
    /// While held: every node whose commands failed in the failed segment, with the lines of
    /// those commands (what `resume --retry` runs again). nil (left out of the snapshot's
    /// JSON) when none, as engines before resume modes wrote it.
    public var failedSteps: [FailedSteps]? = nil

    /// The commands of one node that failed their expected status in the held segment.
    public struct FailedSteps: Sendable, Hashable, Codable {
        public var node: ClusterNode
        /// Their lines in the `.rp` file.
        public var lines: [Int]

        public init(node: ClusterNode, lines: [Int]) {
            self.node = node
            self.lines = lines
        }
    }

    /// The participants a barrier (or the end) still waits for.
    public var waitingFor: [ClusterNode] {
        participants.filter { !reached.contains($0.name) }
    }

    /// Whether every participant has finished `segment` (`waitingFor` is empty), without
    /// building the list: counts first, so that the usual answer (not yet) costs nothing. Every
    /// node checks the barrier at each report of each of n nodes: a list per check made a
    /// 1,000-node barrier cubic.
    public var allReached: Bool {
        reached.count >= participants.count && participants.allSatisfy { reached.contains($0.name) }
    }
}

/// A monitored instance whose event was suppressed: it disarmed when its predicate fired, and
/// its event did not run.
public struct SuppressedInstance: Sendable, Hashable, Codable, Comparable {
    public var name: String
    public var state: Int
    /// `NodeNum=2;ProgName=nfsd`, as the event's resource names it.
    public var instance: String

    public init(name: String, state: Int, instance: String) {
        self.name = name
        self.state = state
        self.instance = instance
    }

    public static func < (a: Self, b: Self) -> Bool {
        (a.name, a.state, a.instance) < (b.name, b.state, b.instance)
    }

    /// `db2_paging 0 NodeNum=2`
    public var description: String { "\(name) \(state) \(instance)" }
}
