// The events of a CPG group as the membership layer sees them: pure values, so that
// `EngineMembership` and `LoopbackGroup` (RulesEngine) need neither libcpg nor the connection
// (CorosyncTransport's `CPGConnection` produces them from the real group).

/// A member of a CPG group: the corosync node and the process on it.
public struct CPGAddress: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var nodeID: UInt32
    public var pid: UInt32

    public init(nodeID: UInt32, pid: UInt32) {
        self.nodeID = nodeID
        self.pid = pid
    }

    public static func < (lhs: CPGAddress, rhs: CPGAddress) -> Bool {
        (lhs.nodeID, lhs.pid) < (rhs.nodeID, rhs.pid)
    }

    public var description: String { "\(nodeID):\(pid)" }
}

/// The events of a connection. Configuration changes and messages come in CPG's agreed order;
/// a change of votequorum's flag comes before the configuration change it goes with (the flag is
/// read when the change is delivered), and otherwise whenever votequorum reports it.
public enum CPGEvent: Sendable, Equatable {
    /// A configuration change of the group (deliver order is CPG's agreed order, the same on every member).
    case configuration(members: [CPGAddress], joined: [CPGAddress], left: [CPGAddress])
    /// A message multicast to the group (raw bytes, as sent; may be garbage from a foreign client).
    case message(from: CPGAddress, bytes: [UInt8])
    /// votequorum's quorate flag changed (first value reported right after connecting).
    case quorum(quorate: Bool)
    /// The connection to corosync is lost (corosync stopped or died); no more events follow.
    case lost(reason: String)
}
