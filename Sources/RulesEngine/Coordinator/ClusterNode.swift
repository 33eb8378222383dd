/// A node of the cluster: the name and number the configuration gives it.
public struct ClusterNode: Sendable, Hashable, Codable, Comparable, CustomStringConvertible {
    public var name: String
    public var number: Int

    public init(name: String, number: Int) {
        self.name = name
        self.number = number
    }

    public static func < (lhs: ClusterNode, rhs: ClusterNode) -> Bool {
        (lhs.number, lhs.name) < (rhs.number, rhs.name)
    }

    public var description: String { name }
}

/// How a node stops cluster services (`ha-cmd STOP|TAKE|FORCE`): the state of its
/// `TE_FAIL_NODE` event.
public enum StopMode: String, Sendable, Hashable, Codable, CaseIterable {
    case graceful
    case takeover
    case forced

    public var state: Int {
        switch self {
        case .graceful: 1
        case .takeover: 2
        case .forced: 3
        }
    }
}
