import RecoveryPrograms
import RulesParser

/// The rules a coordinator runs: each trigger's definition and parsed recovery program.
/// Built from validated rules; identical on every node.
public struct RuleBook: Sendable {
    public struct Rule: Sendable {
        public var definition: EventDefinition
        public var program: RecoveryProgram

        public init(definition: EventDefinition, program: RecoveryProgram) {
            self.definition = definition
            self.program = program
        }

        /// Segments are separated by barriers; every node has the same number.
        public var segmentCount: Int { program.segments.count }
    }

    public private(set) var rules: [EventDefinition.Trigger: Rule]

    public init(_ rules: [Rule]) {
        self.rules = Dictionary(rules.map { ($0.definition.trigger, $0) }, uniquingKeysWith: { first, _ in first })
    }

    public subscript(name: String, state: Int) -> Rule? {
        rules[EventDefinition.Trigger(name: name, state: state)]
    }

    /// The definitions that watch resource variables.
    public var monitored: [EventDefinition] {
        rules.values.map(\.definition).filter { $0.monitoring != nil }.sorted { $0.line < $1.line }
    }
}

/// Which events go first: a larger priority first; equal priorities keep arrival order.
public struct EventPriorities: Sendable, Hashable {
    public var byName: [String: Int]

    public init(_ byName: [String: Int] = [:]) {
        self.byName = byName
    }

    /// Failures before joins before user events (SPEC section 6), unless configured.
    public func priority(of name: String) -> Int {
        if let configured = byName[name] { return configured }
        switch name {
        case BuiltInTrigger.failNode.rawValue, BuiltInTrigger.failNetwork.rawValue: return 30
        case BuiltInTrigger.joinNode.rawValue, BuiltInTrigger.joinNetwork.rawValue: return 20
        default: return 10
        }
    }
}
