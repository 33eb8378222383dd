import RulesParser

/// An event as the cluster agreed on it: identical on every node.
public struct ClusterEvent: Sendable, Hashable, Codable {
    /// Numbered in delivery order, from 1; the same number on every node.
    public var id: Int
    public var name: String
    public var state: Int
    /// The node where the event occurred (which may have left the cluster since).
    public var node: ClusterNode
    /// For Event Management events: the variable, instance and value that made the predicate true.
    public var resource: ResourceObservation?
    public var priority: Int
    /// The position in which its request was delivered, for equal priorities.
    public var arrival: Int

    public var isNotification: Bool { EventRequest.isNotification(name) }
}

/// What a resource monitor saw when a predicate became true.
public struct ResourceObservation: Sendable, Hashable, Codable {
    public var variable: String
    /// The instance's elements, e.g. `NodeNum=2;ProgName=nfsd`.
    public var instance: String
    public var value: String

    public init(variable: String, instance: String, value: String) {
        self.variable = variable
        self.instance = instance
        self.value = value
    }
}

/// A request to raise an event, multicast by the node that noticed it.
public struct EventRequest: Sendable, Hashable, Codable {
    public var name: String
    public var state: Int
    public var node: ClusterNode
    public var resource: ResourceObservation?

    public init(name: String, state: Int = 0, node: ClusterNode, resource: ResourceObservation? = nil) {
        self.name = name
        self.state = state
        self.node = node
        self.resource = resource
    }

    /// `TE_EVENT_ERROR` and `TE_CONFIG_TOO_LONG` tell of the running event: they run at once,
    /// beside it, instead of waiting behind it in the queue.
    public static func isNotification(_ name: String) -> Bool {
        name == BuiltInTrigger.eventError.rawValue || name == BuiltInTrigger.configTooLong.rawValue
    }
}

/// How an event ended.
public enum EventOutcome: String, Sendable, Hashable, Codable {
    /// Ran to its end, perhaps with fewer participants than it started with.
    case completed
    /// A command failed its expected status; the rest was skipped by `resume`, or is still held.
    case failed
    /// Dropped from the queue by `resume --cancel-queued`.
    case skipped
    /// Its event node had recovery off.
    case suppressed
    /// The service stopped (or was killed) while it ran.
    case interrupted
    /// A takeover (`TE_FAIL_NODE` state 0) whose event node turned out alive when a partition
    /// healed: not run, or ended at its next barrier.
    case cancelled
}
