import RulesParser

/// A scenario file (SPEC section 9): rules, nodes, sampled series, simulated command results,
/// faults, and what is expected to happen.
public struct Scenario: Sendable {
    public struct Series: Sendable {
        public var variable: String
        /// The instance's element values, e.g. `["NodeNum": "2"]`, and as written.
        public var instance: [String: String]
        public var instanceText: String
        /// One value per interval from t=0; nil where there is no sample (`_`).
        public var values: [SampleValue?]
        public var line: Int
    }

    /// A simulated command result, matched by the command's text (and node, when given).
    public struct CommandResultRule: Sendable {
        public var command: String
        public var node: String?
        public var status: Int32
        public var duration: Double
        /// `status: [1, 0]`: the status of each run of the command on a node, in order, the
        /// last one repeating (`status` is the first).
        public var statuses: [Int32] = []

        /// The status of the `run`th run (from 1).
        public func status(ofRun run: Int) -> Int32 {
            statuses.isEmpty ? status : statuses[min(run, statuses.count) - 1]
        }
    }

    public enum Fault: Sendable {
        case failNode(String)
        case stopNode(String, StopMode)
        case joinNode(String)
        case trigger(event: String, node: String, state: Int)
        case resume(ResumeMode, cancelQueued: Bool)
        case recoveryOff([String])
        case recoveryOn([String])
        /// The network splits the nodes into these parts.
        case partition([[String]])
        /// The network is whole again.
        case heal
        /// `fence_confirm: NODE`: an administrator confirms the node is down.
        case fenceConfirm(String)
    }

    /// `fencing:` in a scenario: takeovers wait for fences, whose agents end as given.
    public struct Fencing: Sendable {
        /// How one attempt of a node's agent ends; a node's entries are its attempts in order,
        /// the last one repeating. A node without entries is fenced at once.
        public struct Agent: Sendable {
            public var node: String
            public var status: Int32
            public var duration: Double
        }

        public var attempts: Int = 3
        public var agents: [Agent] = []
    }

    public struct TimedFault: Sendable {
        public var at: Double
        public var fault: Fault
        public var line: Int
        public var column: Int
    }

    public struct ExpectedEvent: Sendable, Hashable, CustomStringConvertible {
        public var name: String
        public var state: Int?
        public var node: String?
        public var outcome: EventOutcome?

        public var description: String {
            var text = name
            if let state { text += " state \(state)" }
            if let node { text += " node \(node)" }
            if let outcome { text += " \(outcome.rawValue)" }
            return text
        }
    }

    public struct ExpectedCommand: Sendable, Hashable, CustomStringConvertible {
        public var event: String?
        public var node: String?
        public var segment: Int?
        public var command: String
        public var status: Int32?

        public init(
            event: String? = nil, node: String? = nil, segment: Int? = nil, command: String, status: Int32? = nil
        ) {
            self.event = event
            self.node = node
            self.segment = segment
            self.command = command
            self.status = status
        }

        public var description: String {
            var text = "\"\(command)\""
            if let node { text += " on \(node)" }
            if let event { text += " for \(event)" }
            if let segment { text += " segment \(segment)" }
            if let status { text += " status \(status)" }
            return text
        }
    }

    public struct Expectation: Sendable {
        public var events: [ExpectedEvent]?
        public var commands: [ExpectedCommand] = []
        public var absentCommands: [ExpectedCommand] = []
    }

    /// The scenario file, for messages.
    public var file: String
    /// Resolved against the scenario file's directory.
    public var rules: String
    public var root: String?
    public var nodes: [ClusterNode]
    public var interval: Double
    public var series: [Series]
    public var commands: [CommandResultRule]
    public var faults: [TimedFault]
    public var until: Double?
    public var expect: Expectation?
    public var fencing: Fencing?
    /// `no_quorum_policy:` as in hamn.yaml: under `stop`, a node in a part without quorum runs
    /// `TE_QUORUM_LOST` after the delay.
    public var noQuorumPolicy: NoQuorumPolicy = .freeze
}
