import ArgumentParser
import RulesEngine

extension HamnEvents {
    struct Test: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run scenarios and check what they expect.",
            discussion: """
                Runs each scenario (SPEC section 9) and compares the events, commands and absent
                commands with its `expect`; prints a diff for each mismatch.

                Exit status: 0 every scenario passed; 1 one failed or its rules have errors;
                2 a scenario cannot be read.
                """
        )

        @Argument(help: "Scenario files (YAML).")
        var scenarios: [String]

        func run() throws {
            var passed = 0
            var failed = 0
            var unreadable = false
            for path in scenarios {
                let run: ScenarioRun
                do {
                    run = try runScenario(path)
                } catch let exit as ExitCode {
                    unreadable = unreadable || exit.rawValue == 2
                    failed += 1
                    writeStdout("FAIL \(path)\n")
                    continue
                }
                let check = ScenarioCheck(run)
                if check.passed {
                    passed += 1
                    writeStdout("PASS \(path)\(run.scenario.expect == nil ? " (nothing expected)" : "")\n")
                } else {
                    failed += 1
                    writeStdout("FAIL \(path)\n" + check.differences.map { "  \($0)\n" }.joined())
                }
            }
            writeStdout("scenarios: \(passed) passed, \(failed) failed\n")
            if unreadable { throw ExitCode(2) }
            if failed > 0 { throw ExitCode(1) }
        }
    }
}
