/// Compares a scenario's run with its `expect` (SPEC section 9): the events, exactly and in
/// order; the commands that must appear, in order per node; the commands that must not.
public struct ScenarioCheck: Sendable {
    /// What differs, as lines for a person; empty when the run meets every expectation.
    public var differences: [String] = []

    public var passed: Bool { differences.isEmpty }

    public init(_ run: ScenarioRun) {
        if run.exhausted {
            differences.append("the simulation did not settle within its step limit (an endless loop of events?)")
        }
        guard let expect = run.scenario.expect else { return }
        if let expected = expect.events {
            checkEvents(expected, run.events)
        }
        checkCommands(expect.commands, run.commands)
        for absent in expect.absentCommands {
            for command in run.commands where Self.matches(absent, command) {
                differences.append(
                    "command \"\(command.command)\" ran on \(command.node) at \(format(command.time)) (\(command.event), segment \(command.segment)); expected it not to run"
                )
            }
        }
    }

    private mutating func checkEvents(_ expected: [Scenario.ExpectedEvent], _ actual: [ScenarioRun.EventRecord]) {
        let matches =
            expected.count == actual.count
            && zip(expected, actual).allSatisfy { Self.matches($0, $1) }
        guard !matches else { return }
        differences.append("events differ (- expected, + actual):")
        let count = max(expected.count, actual.count)
        for index in 0..<count {
            let want = index < expected.count ? expected[index] : nil
            let got = index < actual.count ? actual[index] : nil
            let gotText = got.map { "\($0.name) state \($0.state) node \($0.node) \($0.outcome)" }
            if let want, let got, Self.matches(want, got) {
                differences.append("    \(gotText!)")
                continue
            }
            if let want { differences.append("  - \(want)") }
            if let gotText { differences.append("  + \(gotText)") }
        }
    }

    private mutating func checkCommands(_ expected: [Scenario.ExpectedCommand], _ actual: [ScenarioRun.CommandRecord]) {
        // Per node, in order: each expected command is looked for after the previous one matched.
        var position: [String: Int] = [:]
        for want in expected {
            let key = want.node ?? "*"
            let start = position[key] ?? 0
            let candidates = actual.indices.filter { $0 >= start && Self.matches(want, actual[$0]) }
            if let found = candidates.first {
                position[key] = found + 1
            } else if actual.contains(where: { Self.matches(want, $0) }) {
                differences.append(
                    "command \(want) ran, but not in the expected order (after the command expected before it)")
            } else {
                let ran = actual.filter { $0.command == want.command }
                    .map {
                        "\($0.node) \($0.event) segment \($0.segment) status \($0.status.map(String.init) ?? "none")"
                    }
                differences.append(
                    "expected command \(want) did not run\(ran.isEmpty ? "" : "; it ran as: \(ran.joined(separator: "; "))")"
                )
            }
        }
    }

    static func matches(_ want: Scenario.ExpectedEvent, _ got: ScenarioRun.EventRecord) -> Bool {
        want.name == got.name && (want.state.map { $0 == got.state } ?? true)
            && (want.node.map { $0 == got.node } ?? true) && (want.outcome.map { $0.rawValue == got.outcome } ?? true)
    }

    static func matches(_ want: Scenario.ExpectedCommand, _ got: ScenarioRun.CommandRecord) -> Bool {
        want.command == got.command && (want.node.map { $0 == got.node } ?? true)
            && (want.event.map { $0 == got.event } ?? true) && (want.segment.map { $0 == got.segment } ?? true)
            && (want.status.map { $0 == got.status } ?? true)
    }
}

func format(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
}
