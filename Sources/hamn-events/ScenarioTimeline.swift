import ArgumentParser
import RulesEngine
import RulesParser
import TimelineRendering

/// `history EVENT` and `simulate`: text, JSON, or a standalone HTML page of timelines.
enum ReportFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
    case html
}

/// The events of a scenario's run as timelines (`simulate --format html`), from the
/// simulation's trace: each event from its start, its nodes' segments (their commands start
/// together and end after their simulated durations), barriers, failures, resumes and
/// departures. The trace holds each journal entry once (`ScenarioRun.trace`).
enum ScenarioTimeline {
    static func timelines(_ run: ScenarioRun) -> [Timeline] {
        var order: [ClusterEvent] = []
        var builders: [ClusterEvent: TimelineBuilder] = [:]
        var statuses: [ClusterEvent: String] = [:]
        var ends: [ClusterEvent: Double] = [:]
        // By id, the event that started last with it (the parts of a partition number events
        // each on their own; a part's own entries come after its start).
        var started: [Int: ClusterEvent] = [:]
        var segments: [String: (event: ClusterEvent, time: Double, run: SegmentRun)] = [:]
        for entry in run.trace {
            let node = entry.node.name
            switch entry.kind {
            case .journal(let journal):
                switch journal {
                case .started(let event, let displayName, let participants):
                    order.append(event)
                    started[event.id] = event
                    statuses[event] = "running"
                    builders[event] = TimelineBuilder(
                        title: "\(event.name) \(event.state) (node \(event.node.name), event \(event.id))",
                        displayName: displayName == event.name ? nil : displayName, nodes: participants.map(\.name),
                        origin: entry.time)
                case .barrierPassed(let id, let index, let participants):
                    guard let event = started[id] else { continue }
                    builders[event]?.barrier(segment: index, at: entry.time, participants: participants.map(\.name))
                case .failed(let event, let failing, let segment):
                    builders[event]?.failed(node: failing.name, segment: segment, at: entry.time)
                    statuses[event] = "held"
                case .resumed(let resume):
                    guard let event = resume.event else { continue }
                    builders[event]?.resumed(mode: resume.mode.rawValue, at: entry.time)
                    statuses[event] = "running"
                case .participantLeft(let id, let left):
                    guard let event = started[id] else { continue }
                    builders[event]?.left(node: left.name, at: entry.time)
                case .finished(let event, let outcome):
                    statuses[event] = outcome.rawValue
                    ends[event] = entry.time
                default:
                    break
                }
            case .segmentStarted(let segmentRun):
                guard segmentRun.event.id != 0, builders[segmentRun.event] != nil else { continue }
                segments["\(node)|\(segmentRun.event.id)|\(segmentRun.segment)"] = (
                    segmentRun.event, entry.time, segmentRun
                )
            case .segmentFinished(let id, let segment, let results):
                guard let open = segments.removeValue(forKey: "\(node)|\(id)|\(segment)") else { continue }
                let (event, start) = (open.event, open.time)
                for result in results {
                    var timedOut = false
                    var couldNotStart = false
                    switch result.termination {
                    case .timedOut: timedOut = true
                    case .couldNotStart: couldNotStart = true
                    default: break
                    }
                    builders[event]?.command(
                        node: node, segment: segment, line: result.line, command: result.command,
                        program: CommandStep.program(of: result.command), start: start,
                        end: start + result.duration,
                        outcome: .init(accepted: result.accepted, timedOut: timedOut, couldNotStart: couldNotStart),
                        result: "\(result.termination)" + (result.accepted ? "" : " (not the expected status)"))
                }
            default:
                break
            }
        }
        // Segments that had not ended when the node left or the scenario ended: no result.
        for (key, open) in segments.sorted(by: { $0.key < $1.key }) {
            let node = String(key.prefix { $0 != "|" })
            let end = ends[open.event] ?? run.endTime
            for step in open.run.commands {
                builders[open.event]?.command(
                    node: node, segment: open.run.segment, line: step.line, command: step.command,
                    program: step.program, start: open.time, end: end, outcome: .running, result: "no result")
            }
        }
        return order.compactMap { event in
            builders[event]?.build(status: statuses[event] ?? "running", end: ends[event])
        }
    }
}
