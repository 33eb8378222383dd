import ArgumentParser
import Foundation
import RulesEngine
import RulesValidation
import TimelineRendering

extension HamnEvents {
    struct Simulate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a scenario on a virtual clock and print its timeline.",
            discussion: """
                A scenario (SPEC section 9) names a rules file, the nodes, sampled series of
                resource variables, simulated command results and faults. No command is run: the
                real predicate evaluator and coordinator decide what happens, on virtual time.

                Exit status: 0 the scenario ran; 1 its rules have errors; 2 the scenario cannot
                be read.
                """
        )

        @Argument(help: "The scenario file (YAML).")
        var scenario: String

        @Option(help: "text, json, or html (a standalone page with each event's timeline).")
        var format: ReportFormat = .text

        func run() throws {
            let run = try runScenario(scenario)
            switch format {
            case .text: writeStdout(TimelineText.render(run))
            case .json: writeStdout(try ScenarioJSON.render(run) + "\n")
            case .html:
                writeStdout(
                    TimelineHTML.render(ScenarioTimeline.timelines(run), title: "hamn-events simulate " + scenario))
            }
        }
    }
}

/// Loads and runs a scenario, turning failures into the documented exit statuses.
func runScenario(_ path: String) throws -> ScenarioRun {
    do {
        let scenario = try ScenarioRunner.load(path)
        return try ScenarioRunner.run(scenario)
    } catch {
        switch error {
        case .unreadable(let message):
            printError(message)
            throw ExitCode(2)
        case .invalidRules(let report):
            writeStdout(report.text)
            printError("\(path): the scenario's rules have errors: \(report.summary)")
            throw ExitCode(1)
        }
    }
}

enum TimelineText {
    static func render(_ run: ScenarioRun) -> String {
        var out = ""
        for entry in run.timeline {
            out += pad(time(entry.time), 9) + "  " + pad(entry.node ?? "cluster", 8) + "  " + entry.text + "\n"
        }
        out += "\nevents, in the order processed:\n"
        if run.events.isEmpty { out += "  (none)\n" }
        for event in run.events {
            out += "  \(event.name) state \(event.state) node \(event.node): \(event.outcome)\n"
        }
        out += "ended at \(time(run.endTime))\n"
        return out
    }

    static func time(_ seconds: Double) -> String {
        let tenths = Int((seconds * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)s"
    }

    static func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
    }
}

enum ScenarioJSON {
    struct Document: Encodable {
        var scenario: String
        var events: [ScenarioRun.EventRecord]
        var commands: [ScenarioRun.CommandRecord]
        var timeline: [ScenarioRun.TimelineEntry]
        var endTime: Double
    }

    static func render(_ run: ScenarioRun) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let document = Document(
            scenario: run.scenario.file, events: run.events, commands: run.commands, timeline: run.timeline,
            endTime: run.endTime)
        return String(decoding: try encoder.encode(document), as: UTF8.self)
    }
}
