import Foundation
import RecoveryPrograms
import RulesEngine
import RulesParser
import Testing

/// Thousands of seeded schedules on 2 to 8 nodes: random recovery programs, random events from
/// random nodes, random command durations, random sequencing of the senders' messages, and
/// crashes, rejoins and graceful stops at random points. After each schedule:
///
/// - no node started segment k+1 of an event before every participant still alive had
///   finished segment k;
/// - every node processed the events it saw in the same order;
/// - every event that was delivered ended (completed, suppressed or skipped), none was lost;
/// - the schedule finished: no queue, nothing running, nothing in flight.
///
/// A failing seed is printed; replay it with `HAMN_SEED=N swift test --filter replaySeed`.
@Suite("randomised schedules")
struct RandomisedScheduleTests {
    static let scheduleCount = Int(ProcessInfo.processInfo.environment["HAMN_SCHEDULES"] ?? "") ?? 10_000

    @Test("10,000 seeded schedules keep the barrier and ordering rules")
    func randomised() async {
        var deliveries = 0
        var commands = 0
        var crashes = 0
        var failures: [String] = []
        for seed in 0..<UInt64(Self.scheduleCount) {
            // A minute and more of CPU: the tests running beside it (on the same two pool threads)
            // get their turn.
            if seed % 50 == 0 { await Task.yield() }
            let outcome = RandomSchedule(seed: seed).run()
            deliveries += outcome.deliveries
            commands += outcome.commands
            crashes += outcome.crashes
            if !outcome.violations.isEmpty {
                failures.append("seed \(seed): \(outcome.violations.prefix(3).joined(separator: "; "))")
                if failures.count >= 5 { break }
            }
        }
        print(
            "randomised schedules: \(Self.scheduleCount) schedules, \(deliveries) deliveries, \(commands) segment runs, \(crashes) crashes checked; \(failures.count) failed"
        )
        for failure in failures {
            Issue.record("\(failure) — replay with: HAMN_SEED=<seed> swift test --filter replaySeed")
        }
    }

    @Test("replay one seed (HAMN_SEED)", .enabled(if: ProcessInfo.processInfo.environment["HAMN_SEED"] != nil))
    func replaySeed() throws {
        let seed = try #require(UInt64(ProcessInfo.processInfo.environment["HAMN_SEED"]!))
        let schedule = RandomSchedule(seed: seed)
        let outcome = schedule.run(verbose: true)
        #expect(outcome.violations.isEmpty, "\(outcome.violations)")
    }
}

struct RandomSchedule {
    struct Outcome {
        var deliveries = 0
        var commands = 0
        var crashes = 0
        var violations: [String] = []
    }

    let seed: UInt64
    var random: SeededGenerator

    init(seed: UInt64) {
        self.seed = seed
        self.random = SeededGenerator(seed: seed &* 0x2545_F491_4F6C_DD1D &+ 1)
    }

    mutating func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }

    mutating func program() -> String {
        var lines: [String] = []
        let segments = 1 + below(4)
        for segment in 0..<segments {
            if segment > 0 { lines.append("barrier") }
            for index in 0..<(1 + below(3)) {
                let relationship = ["event", "other", "all"][below(3)]
                lines.append("\(relationship) \"c\(segment)_\(index)\" 0 NULL")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func run(verbose: Bool = false) -> Outcome {
        var schedule = self
        return schedule.build(verbose: verbose)
    }

    private mutating func build(verbose: Bool) -> Outcome {
        let all = nodes(2 + below(7))
        let rules = ruleBook([
            ("TE_JOIN_NODE", 0, program()), ("TE_FAIL_NODE", 0, program()), ("TE_FAIL_NODE", 1, program()),
            ("u1", 0, program()), ("u2", 0, program()), ("u3", 0, program()),
        ])
        let survivor = all[below(all.count)].name
        let durationSeed = seed
        var sim = ClusterSimulation(
            nodes: all, rules: rules, priorities: .init(["u3": 25]), seed: seed,
            oracle: { node, event, segment, step in
                let stable = stableHash(durationSeed, node.name, event.id, segment, step.command)
                return .init(status: 0, duration: Double(stable % 4))
            })
        sim.ticks = false
        var outcome = Outcome()
        for _ in 0..<(5 + below(16)) {
            let time = Double(below(60))
            let node = all[below(all.count)]
            switch below(20) {
            case 0..<10:
                sim.schedule(at: time, .multicast(from: node.name, .raise(EventRequest(name: "u\(1 + below(3))", node: node))))
            case 10..<14 where node.name != survivor:
                sim.schedule(at: time, .crash(node.name))
                outcome.crashes += 1
            case 14..<18:
                sim.schedule(at: time, .join(node))
            case 18 where node.name != survivor:
                sim.schedule(at: time, .stop(node.name, .graceful))
            default:
                sim.schedule(at: time, .multicast(from: node.name, .raise(EventRequest(name: "u1", node: node))))
            }
        }
        sim.run(maximumSteps: 200_000)
        outcome.deliveries = sim.deliveries
        outcome.violations = check(sim, verbose: verbose)
        outcome.commands = sim.trace.count { if case .segmentStarted = $0.kind { true } else { false } }
        return outcome
    }

    private func check(_ sim: ClusterSimulation, verbose: Bool) -> [String] {
        var violations: [String] = []
        if sim.exhausted { violations.append("the simulation did not finish within its step limit") }
        // Incarnations: a node's life from start (or join) to crash or stop.
        var incarnation: [String: Int] = [:]
        var alive: Set<String> = Set(sim.nodes.map(\.name))
        var participants: [Int: [ClusterNode]] = [:]
        var finishedSegment: [Int: [Int: Set<String>]] = [:]  // event -> segment -> nodes (live incarnation)
        var startOrder: [Int] = []
        var sequences: [String: [Int]] = [:]
        var seen: Set<Int> = []
        var ended: Set<Int> = []
        for entry in sim.trace {
            let name = entry.node.name
            let key = "\(name)#\(incarnation[name, default: 0])"
            if verbose { print("\(entry.time) \(name): \(entry.kind)") }
            switch entry.kind {
            case .crashed, .stopped:
                alive.remove(name)
                incarnation[name, default: 0] += 1
                // Gone is gone: a later incarnation of the node takes part in no event it was in.
                for event in participants.keys { participants[event]!.removeAll { $0.name == name } }
                for event in finishedSegment.keys {
                    for segment in finishedSegment[event]!.keys { finishedSegment[event]![segment]!.remove(name) }
                }
            case .joined:
                alive.insert(name)
            case .segmentFinished(let eventID, let segment, _):
                finishedSegment[eventID, default: [:]][segment, default: []].insert(name)
            case .segmentStarted(let run) where run.segment > 0:
                let waited = participants[run.event.id] ?? []
                for participant in waited where alive.contains(participant.name) {
                    if finishedSegment[run.event.id]?[run.segment - 1]?.contains(participant.name) != true {
                        violations.append(
                            "\(name) started segment \(run.segment) of event \(run.event.id) at \(entry.time) before \(participant.name) finished segment \(run.segment - 1)"
                        )
                    }
                }
            case .journal(.started(let event, _, let members)):
                if participants[event.id] == nil {
                    participants[event.id] = members
                    startOrder.append(event.id)
                }
                sequences[key, default: []].append(event.id)
                seen.insert(event.id)
            case .journal(.queued(let event)):
                seen.insert(event.id)
            case .journal(.finished(let event, _)):
                seen.insert(event.id)
                ended.insert(event.id)
            default: break
            }
        }
        let position = Dictionary(uniqueKeysWithValues: startOrder.enumerated().map { ($1, $0) })
        for (key, sequence) in sequences {
            let positions = sequence.map { position[$0]! }
            if positions != positions.sorted() || Set(positions).count != positions.count {
                violations.append("\(key) processed events in another order: \(sequence) (cluster: \(startOrder))")
            }
        }
        let lost = seen.subtracting(ended)
        if !lost.isEmpty { violations.append("events never ended: \(lost.sorted())") }
        for (name, coordinator) in sim.coordinators {
            if !coordinator.runningEvents.isEmpty || !coordinator.state.queue.isEmpty {
                violations.append("\(name) still has work at the end: running \(coordinator.runningEvents.map(\.event.id)), queued \(coordinator.state.queue.map(\.id))")
            }
            if !coordinator.isSynchronised { violations.append("\(name) never got the cluster's state") }
        }
        if !sim.group.isIdle { violations.append("messages still in flight at the end") }
        let states = Set(sim.coordinators.values.map(\.state))
        if states.count > 1 { violations.append("the nodes' replicated states differ at the end") }
        return violations
    }
}

/// FNV-1a over the inputs: stable across processes, unlike `Hasher`.
func stableHash(_ seed: UInt64, _ node: String, _ event: Int, _ segment: Int, _ command: String) -> UInt64 {
    var hash: UInt64 = 0xCBF2_9CE4_8422_2325 ^ seed
    for byte in "\(node)|\(event)|\(segment)|\(command)".utf8 {
        hash = (hash ^ UInt64(byte)) &* 0x100_0000_01B3
    }
    return hash
}
