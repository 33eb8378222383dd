import RulesParser

/// One sample of one instance of a resource variable, as a node observed it.
public struct SampleObservation: Sendable, Hashable {
    public var variable: String
    /// The instance's element values, e.g. `["NodeNum": "2", "ProgName": "nfsd"]`.
    public var instance: [String: String]
    public var value: SampleValue

    public init(variable: String, instance: [String: String], value: SampleValue) {
        self.variable = variable
        self.instance = instance
        self.value = value
    }

    /// `Name=value;...`, in element name order: how the instance is named in events.
    public var instanceText: String {
        instance.keys.sorted().map { "\($0)=\(instance[$0]!)" }.joined(separator: ";")
    }
}

/// A node's predicate evaluation: for every Event Management definition and every instance
/// it matches, the arming state; a sample that makes an armed predicate true raises the event.
/// Pure: time is the sample's, given by the caller.
public struct NodeMonitors: Sendable {
    /// A class: `observe` walks every watch of a variable at every sample, and copying the
    /// struct (a definition and a compiled rule, dozens of references) cost more than the
    /// predicates themselves.
    private final class Watch: Sendable {
        let definition: EventDefinition
        let rule: CompiledRule
        let instances: InstanceVector

        init(definition: EventDefinition, rule: CompiledRule) {
            self.definition = definition
            self.rule = rule
            instances = rule.instances
        }
    }

    private struct InstanceKey: Hashable, Sendable {
        var trigger: EventDefinition.Trigger
        var instance: String
    }

    /// The definitions watching each variable, in rules file order.
    private var watches: [String: [Watch]] = [:]
    private var arming: [InstanceKey: InstanceArming] = [:]
    /// Definitions and instances whose predicate divided by zero, reported once each.
    private var faulted: Set<InstanceKey> = []
    /// Definitions that could not be compiled (validated rules have none), with why.
    public private(set) var problems: [String] = []

    public init(rules: RuleBook, catalogue: VariableCatalogue) {
        for definition in rules.monitored {
            do {
                guard let rule = try CompiledRule(definition, catalogue: catalogue) else { continue }
                watches[rule.variable, default: []].append(Watch(definition: definition, rule: rule))
            } catch {
                problems.append("\(definition.displayName): \(error)")
            }
        }
    }

    /// The variables some definition watches.
    public var variables: [String] { watches.keys.sorted() }

    /// Whether an instance is armed for a definition (true before its first sample).
    public func isArmed(_ trigger: EventDefinition.Trigger, instance: String) -> Bool {
        arming[InstanceKey(trigger: trigger, instance: instance)]?.armed ?? true
    }

    /// Every (definition, instance) seen so far, with its arming and last value.
    public var instances: [(trigger: EventDefinition.Trigger, instance: String, armed: Bool, last: SampleValue?)] {
        arming.map { ($0.key.trigger, $0.key.instance, $0.value.armed, $0.value.lastValue) }
            .sorted {
                ($0.trigger.name, $0.trigger.state, $0.instance) < ($1.trigger.name, $1.trigger.state, $1.instance)
            }
    }

    /// Arms `instance` of the definition `trigger` again (recovery came back on after its event
    /// was suppressed): the next sample evaluates its predicate afresh. Returns the instance's
    /// last value when it was disarmed; nil when it was armed already, or never sampled.
    public mutating func rearm(_ trigger: EventDefinition.Trigger, instance: String) -> SampleValue? {
        let key = InstanceKey(trigger: trigger, instance: instance)
        guard arming[key]?.rearm() == true else { return nil }
        return arming[key]?.lastValue
    }

    public struct Outcome: Sendable {
        /// Events to raise: a predicate became true on an armed instance.
        public var raised: [EventRequest] = []
        /// Instances that were rearmed.
        public var rearmed: [(EventDefinition.Trigger, String)] = []
        /// Messages for predicates that divided by zero (once per definition and instance).
        public var faults: [String] = []
    }

    public mutating func observe(_ observation: SampleObservation, on node: ClusterNode, at time: Double) -> Outcome {
        var outcome = Outcome()
        guard let watching = watches[observation.variable] else { return outcome }
        let instanceText = observation.instanceText
        for watch in watching where watch.instances.matches(observation.instance) {
            let key = InstanceKey(trigger: watch.definition.trigger, instance: instanceText)
            // In place: a copy of the arming (its compiled rule, dozens of references) per
            // observation cost more than the predicates.
            let result = arming[key, default: InstanceArming(watch.rule)].observe(observation.value, at: time)
            if result.predicateDividedByZero || result.rearmDividedByZero, faulted.insert(key).inserted {
                outcome.faults.append(
                    "\(watch.definition.displayName) (\(instanceText)): the \(result.predicateDividedByZero ? "predicate" : "rearm predicate") divides by zero; it counts as false"
                )
            }
            switch result.transition {
            case .fired?:
                outcome.raised.append(
                    EventRequest(
                        name: watch.definition.trigger.name, state: watch.definition.trigger.state, node: node,
                        resource: ResourceObservation(
                            variable: observation.variable, instance: instanceText, value: observation.value.description
                        )))
            case .rearmed?:
                outcome.rearmed.append((watch.definition.trigger, instanceText))
            case nil:
                break
            }
        }
        return outcome
    }
}
