/// One nine-field event definition of a `rules.hacmprd` file (SPEC section 2).
public struct EventDefinition: Sendable, Hashable {
    /// The trigger: event name (field 1) and state (field 2).
    public struct Trigger: Sendable, Hashable, CustomStringConvertible {
        public var name: String
        public var state: Int

        public init(name: String, state: Int) {
            self.name = name
            self.state = state
        }

        public var description: String { "\(name) state \(state)" }
    }

    /// An Event Management event's resource variable and its predicates (fields 6 to 9).
    public struct Monitoring: Sendable, Hashable {
        public var variable: String
        public var instances: InstanceVector
        public var predicate: Predicate
        public var rearmPredicate: Predicate?

        public init(variable: String, instances: InstanceVector, predicate: Predicate, rearmPredicate: Predicate?) {
            self.variable = variable
            self.instances = instances
            self.predicate = predicate
            self.rearmPredicate = rearmPredicate
        }
    }

    public var trigger: Trigger
    /// From the `##### Beginning of the Event Definition: NAME` comment, else the `.rp` base name.
    public var displayName: String
    /// Absolute path of the `.rp` file (field 3).
    public var recoveryProgram: String
    /// Reserved (fields 4 and 5): kept and journaled, not interpreted.
    public var recoveryType: Int
    public var recoveryLevel: Int
    /// nil for cluster events and user-defined events raised by `trigger`.
    public var monitoring: Monitoring?
    /// The line of field 1 and of field 3.
    public var line: Int
    public var recoveryProgramLine: Int

    public init(
        trigger: Trigger, displayName: String, recoveryProgram: String, recoveryType: Int, recoveryLevel: Int,
        monitoring: Monitoring?, line: Int, recoveryProgramLine: Int
    ) {
        self.trigger = trigger
        self.displayName = displayName
        self.recoveryProgram = recoveryProgram
        self.recoveryType = recoveryType
        self.recoveryLevel = recoveryLevel
        self.monitoring = monitoring
        self.line = line
        self.recoveryProgramLine = recoveryProgramLine
    }
}

/// The built-in cluster events of SPEC section 6 and the states each is raised with.
public enum BuiltInTrigger: String, Sendable, CaseIterable {
    case joinNode = "TE_JOIN_NODE"
    case failNode = "TE_FAIL_NODE"
    case joinNetwork = "TE_JOIN_NETWORK"
    case failNetwork = "TE_FAIL_NETWORK"
    case configTooLong = "TE_CONFIG_TOO_LONG"
    case eventError = "TE_EVENT_ERROR"
    /// This node's partition lost quorum and `no_quorum_policy: stop` holds: this node alone
    /// runs it, after the policy's delay, to release its resources.
    case quorumLost = "TE_QUORUM_LOST"

    public var states: ClosedRange<Int> {
        self == .failNode ? 0...3 : 0...0
    }
}

/// A parsed rules file: the definitions that are free of errors, every diagnostic, and how many
/// definitions (complete groups of nine fields) the file holds, well formed or not.
public struct RulesFile: Sendable {
    public var definitions: [EventDefinition]
    public var diagnostics: [Diagnostic]
    public var definitionCount: Int
    /// Every absolute `.rp` path of a complete definition, well formed or not, where it is named.
    public var recoveryProgramReferences: [Reference]

    public struct Reference: Sendable, Hashable {
        public var path: String
        public var line: Int
        public var column: Int
        /// The event name of the definition that names it when that is a built-in trigger
        /// (`TE_...`, which P011 looks at), empty for the others: a file of user-defined events
        /// then makes no `String` per definition.
        public var event: String = ""
        /// Whether an earlier reference in the same file is known to name the same path: then
        /// what is found of the path was found at that one. False does not say it is the first.
        public var repeatsEarlier = false
    }

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }
}
