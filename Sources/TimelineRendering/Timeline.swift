/// One event as a picture's model: who ran what when, where the barriers fell, what failed and
/// how it was resumed. Times are seconds from the event's start. Pure values: the journal
/// (`history EVENT --format html`), the simulator (`simulate --format html`) and a live view
/// build one with `TimelineBuilder` and render it with `TimelineSVG` or `TimelineHTML`.
public struct Timeline: Sendable, Hashable, Codable {
    /// `db2_paging 0 (node n2, event 7)`.
    public var title: String
    /// The rule's display name, if known.
    public var displayName: String?
    /// `completed`, `failed`, `held`, `running`, ...
    public var status: String
    /// One lane each, in this order.
    public var nodes: [String]
    /// Segments in order, numbered from 0 as `status`, `history` and `mon` number them.
    public var segments: [Segment]
    public var commands: [CommandRun]
    public var barriers: [Barrier]
    /// A node that finished its part of a segment before the barrier was passed.
    public var waits: [Wait]
    public var marks: [Mark]
    /// The end of the picture: the event's end, or the last thing known of it.
    public var end: Double

    public init(
        title: String, displayName: String? = nil, status: String, nodes: [String], segments: [Segment] = [],
        commands: [CommandRun] = [], barriers: [Barrier] = [], waits: [Wait] = [], marks: [Mark] = [],
        end: Double = 0
    ) {
        self.title = title
        self.displayName = displayName
        self.status = status
        self.nodes = nodes
        self.segments = segments
        self.commands = commands
        self.barriers = barriers
        self.waits = waits
        self.marks = marks
        self.end = end
    }

    public struct Segment: Sendable, Hashable, Codable {
        public var index: Int
        public var start: Double
        public var end: Double

        public init(index: Int, start: Double, end: Double) {
            self.index = index
            self.start = start
            self.end = end
        }
    }

    /// How a command ended, as its bar's colour and class.
    public enum Outcome: String, Sendable, Hashable, Codable, CaseIterable {
        /// It met its expected status.
        case ok
        /// It ended, but not with its expected status.
        case failed
        case timedOut
        case couldNotStart
        /// No result yet (or the node left before it ended).
        case running

        /// For the legend.
        public var label: String {
            switch self {
            case .ok: "expected status"
            case .failed: "not the expected status"
            case .timedOut: "timed out"
            case .couldNotStart: "could not start"
            case .running: "running / no result"
            }
        }
    }

    /// One command on one node: a bar.
    public struct CommandRun: Sendable, Hashable, Codable {
        public var node: String
        public var segment: Int
        /// Its line in the `.rp` file (0 if unknown).
        public var line: Int
        /// The command as the `.rp` file gives it.
        public var command: String
        /// The name of the program it starts, without its directory: the bar's label.
        public var program: String
        public var start: Double
        public var end: Double
        public var outcome: Outcome
        /// `exit 0`, `timed out`, ...: for the tooltip and the table.
        public var result: String

        public init(
            node: String, segment: Int, line: Int, command: String, program: String, start: Double, end: Double,
            outcome: Outcome, result: String
        ) {
            self.node = node
            self.segment = segment
            self.line = line
            self.command = command
            self.program = program
            self.start = start
            self.end = end
            self.outcome = outcome
            self.result = result
        }
    }

    /// Every remaining participant reached the end of segment `segment` at `time`.
    public struct Barrier: Sendable, Hashable, Codable {
        public var segment: Int
        public var time: Double
        public var participants: [String]

        public init(segment: Int, time: Double, participants: [String]) {
            self.segment = segment
            self.time = time
            self.participants = participants
        }
    }

    public struct Wait: Sendable, Hashable, Codable {
        public var node: String
        public var segment: Int
        public var start: Double
        public var end: Double

        public init(node: String, segment: Int, start: Double, end: Double) {
            self.node = node
            self.segment = segment
            self.start = start
            self.end = end
        }
    }

    public enum Mark: Sendable, Hashable, Codable {
        /// A command of `node` failed its expected status in `segment`: the event is held.
        case failed(node: String, segment: Int, time: Double)
        /// `resume` in `mode` (`skip`, `retry`, `continue`).
        case resume(mode: String, time: Double)
        /// Held after a failure from `start` until `end` (a resume, or the picture's end).
        case held(start: Double, end: Double)
        /// `node` left the cluster while the event ran.
        case left(node: String, time: Double)
    }
}

extension Timeline.Outcome {
    /// A command's outcome from its result: whether it met its expected status, and if not,
    /// whether it timed out or could not start.
    public init(accepted: Bool, timedOut: Bool, couldNotStart: Bool) {
        self = accepted ? .ok : timedOut ? .timedOut : couldNotStart ? .couldNotStart : .failed
    }
}
