import RulesParser

/// What an observation changed for an instance.
public enum ArmingTransition: Sendable, Hashable {
    /// Armed and the predicate held: raise one event; the instance is now disarmed.
    case fired
    /// Disarmed and the rearm predicate held: the instance is armed again.
    case rearmed
}

/// The result of one observation.
public struct ArmingObservation: Sendable, Hashable {
    public var transition: ArmingTransition?
    /// The predicate divided by zero at this observation and counted as false.
    public var predicateDividedByZero = false
    /// The rearm predicate divided by zero at this observation and counted as false.
    public var rearmDividedByZero = false

    public init(
        transition: ArmingTransition? = nil, predicateDividedByZero: Bool = false, rearmDividedByZero: Bool = false
    ) {
        self.transition = transition
        self.predicateDividedByZero = predicateDividedByZero
        self.rearmDividedByZero = rearmDividedByZero
    }
}

/// The arming of one definition for one instance of its variable (SPEC section 4).
///
/// Starts armed. Armed, an observation where the (qualified) predicate holds fires one event and
/// disarms; disarmed, an observation where the (qualified) rearm predicate holds arms again;
/// without a rearm predicate, the rearm is `NOT predicate`. One observation makes at most one
/// transition: the observation that fires does not also test the rearm, the one that rearms
/// does not also test the predicate.
///
/// Qualifier histories run on every observation, armed or not: a qualifier describes the
/// stream of samples, so a predicate `__QUAL_COUNT(3, 5)` that rearms and is still true in 3 of
/// the last 5 fires at the next observation. An evaluation that divides by zero is a false
/// observation for its qualifier and for the arming, and is reported in the result.
///
/// `@P` reads the previous observed sample of this instance. A period with no sample is not an
/// observation: the caller simply does not call `observe`. Pure code: time is the caller's.
public struct InstanceArming: Sendable {
    public let rule: CompiledRule
    public private(set) var armed = true
    /// The last sample observed, what `@P` reads at the next observation.
    public private(set) var lastValue: SampleValue?
    /// When the last sample was observed.
    public private(set) var lastTime: Double?
    private var predicateWindow: QualifierWindow
    private var rearmWindow: QualifierWindow

    public init(_ rule: CompiledRule) {
        self.rule = rule
        predicateWindow = QualifierWindow(rule.predicate.qualifier)
        rearmWindow = QualifierWindow(rule.rearmPredicate?.qualifier)
    }

    /// Arms the instance again without an observation (recovery came back on after its event
    /// was suppressed): the next observation evaluates the predicate afresh. The qualifier
    /// histories and `@P` are kept. Returns whether it was disarmed.
    public mutating func rearm() -> Bool {
        defer { armed = true }
        return !armed
    }

    /// Observes the instance's sample `value`, taken at `time` (seconds, any origin).
    public mutating func observe(_ value: SampleValue, at time: Double) -> ArmingObservation {
        var observation = ArmingObservation()
        defer {
            lastValue = value
            lastTime = time
        }
        // The predicate is needed to fire, as the implicit rearm, or to keep its history.
        var predicateHolds = false
        if armed || rule.rearmPredicate == nil || predicateWindow.keepsHistory {
            let evaluation = rule.predicate.evaluate(value, previous: lastValue)
            observation.predicateDividedByZero = evaluation.divisionByZero
            predicateHolds = predicateWindow.record(evaluation.isTrue, at: time)
        }
        var rearmHolds = false
        if let rearm = rule.rearmPredicate {
            if !armed || rearmWindow.keepsHistory {
                let evaluation = rearm.evaluate(value, previous: lastValue)
                observation.rearmDividedByZero = evaluation.divisionByZero
                rearmHolds = rearmWindow.record(evaluation.isTrue, at: time)
            }
        } else {
            rearmHolds = !predicateHolds
        }
        if armed {
            if predicateHolds {
                armed = false
                observation.transition = .fired
            }
        } else if rearmHolds {
            armed = true
            observation.transition = .rearmed
        }
        return observation
    }
}
