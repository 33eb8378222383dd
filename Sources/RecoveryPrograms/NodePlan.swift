import RulesParser

/// One node's share of a recovery program (SPEC section 3): the commands it runs in each
/// segment.
///
/// Segments are separated by barriers: segment k holds the commands after the k-th barrier
/// (segment 0 is before the first one). A node runs
///
/// - `event` lines only when it is the event node,
/// - `other` lines only when it is not,
/// - `all` lines always,
///
/// and a node that is not a cluster member (a crashed node) runs nothing. Every node's plan has
/// the same number of segments, the program's, so the barriers line up across nodes even when
/// a node's segment is empty: it still reaches and passes every barrier.
///
/// Building a plan never fails and does no I/O.
public struct NodePlan: Sendable, Hashable {
    /// Whether this node is the node where the event occurred.
    public var isEventNode: Bool
    /// Whether this node is a cluster member taking part in the event.
    public var isMember: Bool
    /// This node's commands per segment, in file order. `segments.count` is the program's
    /// segment count (number of barriers + 1) whatever the node's role.
    public var segments: [[CommandStep]]

    public init(program: RecoveryProgram, isEventNode: Bool, isMember: Bool = true) {
        self.isEventNode = isEventNode
        self.isMember = isMember
        self.segments = program.segments.map { segment in
            guard isMember else { return [] }
            return segment.filter { Self.runs($0.relationship, isEventNode: isEventNode) }
        }
    }

    /// The number of segments: the program's barriers + 1, the same on every node.
    public var segmentCount: Int { segments.count }

    /// The number of commands this node runs, over all segments.
    public var commandCount: Int { segments.reduce(0) { $0 + $1.count } }

    /// Whether this node runs nothing at all.
    public var isEmpty: Bool { commandCount == 0 }

    /// The commands of segment `index`; empty when `index` is out of range.
    public func commands(inSegment index: Int) -> [CommandStep] {
        segments.indices.contains(index) ? segments[index] : []
    }

    /// Whether a line with this relationship runs on a member node in this role.
    public static func runs(_ relationship: Relationship, isEventNode: Bool) -> Bool {
        switch relationship {
        case .event: isEventNode
        case .other: !isEventNode
        case .all: true
        }
    }
}
