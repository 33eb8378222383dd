/// Builds a `Timeline` from what is known of an event, in any order: commands with their start
/// and end, barrier passages, failures, resumes, departures. It works out the rest once
/// (segments' spans, who waited at each barrier, how long the event was held), so the journal,
/// the simulator and a live view draw the same picture from the same facts.
///
/// Times are seconds on any clock (since 1970, or a scenario's virtual clock); `origin` is the
/// event's start on it. A time before the origin (another node's clock a little behind) is
/// drawn at the start.
public struct TimelineBuilder: Sendable {
    public var title: String
    public var displayName: String?
    public var nodes: [String]
    public var origin: Double
    private var commands: [Timeline.CommandRun] = []
    private var barriers: [Timeline.Barrier] = []
    private var failures: [(node: String, segment: Int, time: Double)] = []
    private var resumes: [(mode: String, time: Double)] = []
    private var departures: [(node: String, time: Double)] = []

    public init(title: String, displayName: String? = nil, nodes: [String], origin: Double) {
        self.title = title
        self.displayName = displayName
        self.nodes = nodes
        self.origin = origin
    }

    private func relative(_ time: Double) -> Double { max(0, time - origin) }

    private mutating func lane(_ node: String) {
        if !nodes.contains(node) { nodes.append(node) }
    }

    /// `program`: the program the command starts (`CommandStep.program(of:)`); its label is
    /// the name without the directory (the whole command if nil).
    public mutating func command(
        node: String, segment: Int, line: Int, command: String, program: String?, start: Double, end: Double,
        outcome: Timeline.Outcome, result: String
    ) {
        lane(node)
        let from = relative(start)
        let name = program.flatMap { $0.split(separator: "/").last.map(String.init) } ?? command
        commands.append(
            .init(
                node: node, segment: segment, line: line, command: command, program: name, start: from,
                end: max(from, relative(end)), outcome: outcome, result: result))
    }

    public mutating func barrier(segment: Int, at time: Double, participants: [String]) {
        barriers.append(.init(segment: segment, time: relative(time), participants: participants))
    }

    public mutating func failed(node: String, segment: Int, at time: Double) {
        lane(node)
        failures.append((node, segment, relative(time)))
    }

    public mutating func resumed(mode: String, at time: Double) {
        resumes.append((mode, relative(time)))
    }

    public mutating func left(node: String, at time: Double) {
        lane(node)
        departures.append((node, relative(time)))
    }

    /// The timeline; `end`: the event's end on the builder's clock (nil: the last time known).
    public func build(status: String, end: Double? = nil) -> Timeline {
        let known =
            commands.map(\.end) + barriers.map(\.time) + failures.map(\.time) + resumes.map(\.time)
            + departures.map(\.time)
        let last = max(end.map(relative) ?? 0, known.max() ?? 0)
        let barriers = barriers.sorted { ($0.time, $0.segment) < ($1.time, $1.segment) }
        let passed = Dictionary(barriers.map { ($0.segment, $0.time) }, uniquingKeysWith: max)
        let indices = Set(commands.map(\.segment) + barriers.map(\.segment) + failures.map(\.segment))
        var segments: [Timeline.Segment] = []
        if let highest = indices.max() {
            var start = 0.0
            for index in 0...highest {
                let end = passed[index] ?? (index == highest ? last : start)
                segments.append(.init(index: index, start: start, end: max(start, end)))
                start = max(start, end)
            }
        }
        var waits: [Timeline.Wait] = []
        for barrier in barriers {
            let segmentStart = segments.first { $0.index == barrier.segment }?.start ?? 0
            for node in barrier.participants {
                let done =
                    commands.filter { $0.node == node && $0.segment == barrier.segment }.map(\.end).max()
                    ?? segmentStart
                if barrier.time > done {
                    waits.append(.init(node: node, segment: barrier.segment, start: done, end: barrier.time))
                }
            }
        }
        // A hold from a failure to the next resume after it; at one time, a resume comes before
        // a failure (a retry that fails again at once is held anew).
        var marks: [Timeline.Mark] = []
        var held: Double?
        let steps =
            resumes.map { (time: $0.time, resume: true) } + failures.map { (time: $0.time, resume: false) }
        for step in steps.sorted(by: { ($0.time, $0.resume ? 0 : 1) < ($1.time, $1.resume ? 0 : 1) }) {
            if step.resume, let start = held {
                marks.append(.held(start: start, end: step.time))
                held = nil
            } else if !step.resume, held == nil {
                held = step.time
            }
        }
        if let start = held { marks.append(.held(start: start, end: last)) }
        for failure in failures.sorted(by: { $0.time < $1.time }) {
            marks.append(.failed(node: failure.node, segment: failure.segment, time: failure.time))
        }
        for resume in resumes.sorted(by: { $0.time < $1.time }) {
            marks.append(.resume(mode: resume.mode, time: resume.time))
        }
        for departure in departures { marks.append(.left(node: departure.node, time: departure.time)) }
        return Timeline(
            title: title, displayName: displayName, status: status, nodes: nodes, segments: segments,
            commands: commands.sorted { ($0.start, $0.node, $0.line) < ($1.start, $1.node, $1.line) },
            barriers: barriers, waits: waits, marks: marks, end: last)
    }
}
