import RulesParser

/// An Event Management definition's monitoring part (rules fields 6 to 9), compiled: what
/// every `InstanceArming` of the definition evaluates.
public struct CompiledRule: Sendable {
    /// The resource variable (field 6).
    public let variable: String
    /// Which instances of the variable the definition watches (field 7).
    public let instances: InstanceVector
    public let predicate: CompiledPredicate
    /// nil when field 9 is empty: the rearm predicate is then `NOT predicate` (its qualifier
    /// included), so that an event is raised once per false-to-true edge.
    public let rearmPredicate: CompiledPredicate?

    /// `variable` is the catalogue's entry for `monitoring.variable`, nil when it is unknown.
    /// Throws for a regular expression that does not compile (validation reports it first).
    public init(_ monitoring: EventDefinition.Monitoring, variable: ResourceVariable?) throws(CompilationError) {
        self.variable = monitoring.variable
        instances = monitoring.instances
        do {
            predicate = try CompiledPredicate(monitoring.predicate, variable: variable)
        } catch {
            throw CompilationError(isRearmPredicate: false, error: error)
        }
        do {
            rearmPredicate = try monitoring.rearmPredicate.map { predicate throws(PredicateCompilationError) in
                try CompiledPredicate(predicate, variable: variable)
            }
        } catch {
            throw CompilationError(isRearmPredicate: true, error: error)
        }
    }

    /// The compiled monitoring of `definition`, nil for a definition without a resource
    /// variable (a cluster event, or a user event raised by `trigger`).
    public init?(_ definition: EventDefinition, catalogue: VariableCatalogue) throws(CompilationError) {
        guard let monitoring = definition.monitoring else { return nil }
        try self.init(monitoring, variable: catalogue[monitoring.variable])
    }

    /// Whether the definition watches the instance of its variable named by these element
    /// values, e.g. `["NodeNum": "2", "ProgName": "nfsd"]`.
    public func matches(instance elements: [String: String]) -> Bool {
        instances.matches(elements)
    }

    /// Whether a sample of `variable` for the instance named by `elements` is for this rule.
    public func watches(variable: String, instance elements: [String: String]) -> Bool {
        variable == self.variable && instances.matches(elements)
    }

    /// Which predicate did not compile, and why.
    public struct CompilationError: Error, Sendable, Hashable, CustomStringConvertible {
        /// false: the predicate (field 8); true: the rearm predicate (field 9).
        public var isRearmPredicate: Bool
        public var error: PredicateCompilationError

        public var description: String {
            "\(isRearmPredicate ? "rearm predicate" : "predicate"): \(error)"
        }
    }
}
