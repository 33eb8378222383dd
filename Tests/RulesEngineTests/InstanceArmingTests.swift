import RulesEngine
import RulesParser
import Testing

func rule(
    _ predicate: String, rearm: String? = nil, variable: String = "IBM.PSSP.aixos.PagSp.%totalused",
    instances: String = "NodeNum=*"
) throws -> CompiledRule {
    let monitoring = EventDefinition.Monitoring(
        variable: variable, instances: InstanceVector.parse(instances).0,
        predicate: try PredicateParser.parse(predicate),
        rearmPredicate: try rearm.map { try PredicateParser.parse($0) })
    return try CompiledRule(monitoring, variable: VariableCatalogue.builtIn[variable])
}

/// Observes `values` at `times` (every 10 s from 0 by default) and returns each transition.
func transitions(_ rule: CompiledRule, _ values: [Double], times: [Double]? = nil) -> [ArmingTransition?] {
    var arming = InstanceArming(rule)
    return values.enumerated().map { index, value in
        arming.observe(.number(value), at: times?[index] ?? Double(index) * 10).transition
    }
}

@Suite("arming")
struct InstanceArmingTests {
    @Test("paging space: X > 70, rearm X < 60, fires at 75 and at the second 75")
    func paging() throws {
        let result = transitions(try rule("X > 70", rearm: "X < 60"), [50, 60, 75, 80, 95, 50, 55, 75])
        #expect(result == [nil, nil, .fired, nil, nil, .rearmed, nil, .fired])
        #expect(result.count { $0 == .fired } == 2)
    }

    @Test("without a rearm predicate: one event per false-to-true edge")
    func edges() throws {
        let compiled = try rule("X > 70")
        #expect(transitions(compiled, [75, 80, 50, 75]) == [.fired, nil, .rearmed, .fired])
        #expect(transitions(compiled, [75, 80, 90, 99]) == [.fired, nil, nil, nil])
        #expect(transitions(compiled, [10, 20, 30]) == [nil, nil, nil])
    }

    @Test("starts armed, remembers the last value")
    func state() throws {
        var arming = InstanceArming(try rule("X > 70", rearm: "X < 60"))
        #expect(arming.armed)
        #expect(arming.lastValue == nil)
        _ = arming.observe(.number(80), at: 5)
        #expect(!arming.armed)
        #expect(arming.lastValue == .number(80))
        #expect(arming.lastTime == 5)
        _ = arming.observe(.number(65), at: 15)
        #expect(!arming.armed)
        _ = arming.observe(.number(55), at: 25)
        #expect(arming.armed)
    }

    @Test("rearm() arms a disarmed instance again: a predicate still true fires at the next sample")
    func rearmAfterSuppression() throws {
        var arming = InstanceArming(try rule("X > 70", rearm: "X < 60"))
        #expect(arming.observe(.number(85), at: 0).transition == .fired)
        #expect(arming.observe(.number(85), at: 10).transition == nil, "disarmed: waits for X < 60")
        let (first, second) = (arming.rearm(), arming.rearm())
        #expect(first)
        #expect(!second, "armed already")
        #expect(arming.observe(.number(85), at: 20).transition == .fired)
        #expect(arming.lastValue == .number(85))
    }

    @Test("NodeMonitors.rearm: the instance named, disarmed, is armed again and its last value returned")
    func monitorsRearm() throws {
        let monitoring = EventDefinition.Monitoring(
            variable: "IBM.PSSP.aixos.PagSp.%totalused", instances: .everyNode,
            predicate: try PredicateParser.parse("X > 70"), rearmPredicate: try PredicateParser.parse("X < 60"))
        let definition = EventDefinition(
            trigger: .init(name: "db2_paging", state: 0), displayName: "db2_paging", recoveryProgram: "/rp/p.rp",
            recoveryType: 2, recoveryLevel: 0, monitoring: monitoring, line: 1, recoveryProgramLine: 3)
        let program = RecoveryProgramParser.parse("all \"/bin/true\" 0 NULL\n", file: "p.rp").0
        var monitors = NodeMonitors(
            rules: RuleBook([RuleBook.Rule(definition: definition, program: program)]), catalogue: .builtIn)
        let node = ClusterNode(name: "n2", number: 2)
        let sample = SampleObservation(
            variable: "IBM.PSSP.aixos.PagSp.%totalused", instance: ["NodeNum": "2"], value: .number(85))
        let trigger = EventDefinition.Trigger(name: "db2_paging", state: 0)
        let fired = monitors.observe(sample, on: node, at: 0).raised.count
        let disarmed = monitors.observe(sample, on: node, at: 10).raised.count
        let unknown = monitors.rearm(trigger, instance: "NodeNum=3")
        let rearmed = monitors.rearm(trigger, instance: "NodeNum=2")
        let armed = monitors.isArmed(trigger, instance: "NodeNum=2")
        let again = monitors.observe(sample, on: node, at: 20).raised.count
        #expect(fired == 1 && disarmed == 0)
        #expect(unknown == nil, "never sampled")
        #expect(rearmed == .number(85))
        #expect(armed)
        #expect(again == 1, "a condition still true fires at the next sample")
    }

    @Test("__QUAL_COUNT(3, 5) fires on the third true of the window")
    func count() throws {
        let values: [Double] = [75, 50, 80, 50, 90, 95, 50, 50, 50, 80]
        #expect(
            transitions(try rule("X > 70 __QUAL_COUNT(3, 5)"), values)
                == [nil, nil, nil, nil, .fired, nil, nil, .rearmed, nil, nil])
        // With a rearm that never holds: exactly one event, at the fifth observation.
        let never = transitions(try rule("X > 70 __QUAL_COUNT(3, 5)", rearm: "X < 0"), values)
        #expect(never == [nil, nil, nil, nil, .fired, nil, nil, nil, nil, nil])
        // A full window of m observations slides: old trues leave it.
        #expect(
            transitions(try rule("X > 70 && __QUAL_COUNT(2, 3)"), [80, 50, 50, 80, 50, 80])
                == [nil, nil, nil, nil, nil, .fired])
    }

    @Test("__QUAL_RATE(2, 60): true twice within 60 seconds")
    func rate() throws {
        let compiled = try rule("X > 70 __QUAL_RATE(2, 60)")
        let result = transitions(compiled, [75, 50, 80, 85, 50, 75], times: [0, 30, 100, 150, 200, 210])
        #expect(result == [nil, nil, nil, .fired, .rearmed, .fired])
        // Both ends of the window count: 60 s apart is within 60 s, 60.5 s is not.
        #expect(transitions(compiled, [80, 80], times: [0, 60]) == [nil, .fired])
        #expect(transitions(compiled, [80, 80], times: [0, 60.5]) == [nil, nil])
        // Times that make no sense do not trap.
        #expect(transitions(compiled, [80, 80, 80], times: [.nan, .infinity, -.infinity]).count == 3)
    }

    @Test("qualifier history continues while disarmed")
    func historyWhileDisarmed() throws {
        let compiled = try rule("X > 70 __QUAL_COUNT(2, 3)", rearm: "X < 60")
        // Rearmed at 50, the window still holds one true of the two before: 80 fires at once.
        #expect(transitions(compiled, [80, 80, 50, 80]) == [nil, .fired, .rearmed, .fired])
    }

    @Test("the rearm predicate has its own qualifier")
    func rearmQualifier() throws {
        let compiled = try rule("X > 70", rearm: "X < 60 __QUAL_COUNT(2, 2)")
        #expect(transitions(compiled, [80, 50, 65, 50, 55, 80]) == [.fired, nil, nil, nil, .rearmed, .fired])
    }

    @Test("X@P is the previous observation of the instance")
    func previous() throws {
        let compiled = try rule("X > X@P + 10")
        #expect(transitions(compiled, [10, 15, 30, 31, 50]) == [nil, nil, .fired, .rearmed, .fired])
    }

    @Test("a division by zero is a false observation, and reported")
    func divisionByZero() throws {
        var arming = InstanceArming(try rule("X / (X - 70) > 0"))
        let first = arming.observe(.number(75), at: 0)
        #expect(first.transition == .fired && !first.predicateDividedByZero)
        let second = arming.observe(.number(70), at: 10)
        #expect(second.predicateDividedByZero)
        #expect(second.transition == .rearmed)
        #expect(arming.observe(.number(75), at: 20).transition == .fired)

        var rearm = InstanceArming(try rule("X > 70", rearm: "X / 0 < 1"))
        #expect(rearm.observe(.number(80), at: 0) == ArmingObservation(transition: .fired))
        #expect(rearm.observe(.number(50), at: 10) == ArmingObservation(rearmDividedByZero: true))
        #expect(!rearm.armed)
    }

    @Test("structured values: HADR leaves Peer")
    func hadr() throws {
        let compiled = try rule(
            "X.Role != \"Primary\" && X.Role != \"Standby\" || X.State != \"Peer\" || X.ConnectStatus != \"Connected\"",
            variable: "HAMN.DB2.HADR", instances: "Database=XCATDB;NodeNum=1")
        var arming = InstanceArming(compiled)
        let peer = SampleValue.fields([
            .init("Role", .string("Primary")), .init("State", .string("Peer")),
            .init("ConnectStatus", .string("Connected")),
        ])
        let lost = SampleValue.fields([
            .init("Role", .string("Primary")), .init("State", .string("RemoteCatchupPending")),
            .init("ConnectStatus", .string("Disconnected")),
        ])
        #expect(arming.observe(peer, at: 0).transition == nil)
        #expect(arming.observe(lost, at: 10).transition == .fired)
        #expect(arming.observe(lost, at: 20).transition == nil)
        #expect(arming.observe(peer, at: 30).transition == .rearmed)
    }

    static let instanceCases: [(String, [String: String], Bool)] = [
        ("NodeNum=*;ProgName=nfsd", ["NodeNum": "2", "ProgName": "nfsd"], true),
        ("NodeNum=*;ProgName=nfsd", ["NodeNum": "2", "ProgName": "biod"], false),
        ("NodeNum=*;ProgName=nfsd", ["NodeNum": "2", "ProgName": "nfsd", "UserName": "root"], true),
        ("NodeNum=2", ["NodeNum": "2"], true),
        ("NodeNum=2", ["NodeNum": "3"], false),
        ("NodeNum=*;Name=/var", ["NodeNum": "1"], false),
        ("NodeNum=*;Name=*", ["NodeNum": "1"], true),
    ]

    @Test("which instances a definition watches", arguments: instanceCases)
    func instances(_ vector: String, _ instance: [String: String], _ expected: Bool) throws {
        #expect(try rule("X > 1", instances: vector).matches(instance: instance) == expected)
    }

    @Test("compiled from an event definition and the catalogue")
    func fromDefinition() throws {
        func definition(_ monitoring: EventDefinition.Monitoring?) -> EventDefinition {
            EventDefinition(
                trigger: .init(name: "db2_paging", state: 0), displayName: "db2_paging",
                recoveryProgram: "/etc/hamn/rules/db2_paging.rp", recoveryType: 2, recoveryLevel: 0,
                monitoring: monitoring, line: 1, recoveryProgramLine: 3)
        }
        #expect(try CompiledRule(definition(nil), catalogue: .builtIn) == nil)
        let monitoring = EventDefinition.Monitoring(
            variable: "IBM.PSSP.aixos.PagSp.%totalused", instances: .everyNode,
            predicate: try PredicateParser.parse("X > 70"), rearmPredicate: try PredicateParser.parse("X < 60"))
        let compiled = try #require(try CompiledRule(definition(monitoring), catalogue: .builtIn))
        #expect(compiled.variable == "IBM.PSSP.aixos.PagSp.%totalused")
        #expect(compiled.predicate.predicate.description == "(X > 70)")
        #expect(compiled.rearmPredicate?.predicate.description == "(X < 60)")
        #expect(compiled.matches(instance: ["NodeNum": "4"]))

        var bad = monitoring
        bad.rearmPredicate = try PredicateParser.parse("X =~ \"[\"")
        let error = #expect(throws: CompiledRule.CompilationError.self) {
            try CompiledRule(definition(bad), catalogue: .builtIn)
        }
        #expect(error?.isRearmPredicate == true)
        #expect(error?.error.offset == 5)
    }
}
