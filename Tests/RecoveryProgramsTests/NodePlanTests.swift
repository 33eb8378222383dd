import RecoveryPrograms
import RulesParser
import Testing

@Suite("node plans")
struct NodePlanTests {
    /// The node_up shape: event/other lines, a barrier, event/other lines, plus `all` lines.
    static let nodeUp = """
        # node_up
        event "node_up_local" 0 NULL
        other "node_up_remote" 0 NULL
        all "/usr/bin/logger node_up starting" x NULL
        barrier
        event "node_up_local_complete" 0 NULL
        other "node_up_remote_complete" x NULL
        """

    func program(_ text: String) -> RecoveryProgram {
        let (program, diagnostics) = RecoveryProgramParser.parse(text, file: "node_up.rp")
        #expect(!diagnostics.contains { $0.severity == .error }, "\(diagnostics)")
        return program
    }

    @Test("the event node runs event and all lines")
    func eventNode() {
        let plan = NodePlan(program: program(Self.nodeUp), isEventNode: true)
        #expect(plan.segmentCount == 2)
        #expect(
            plan.segments.map { $0.map(\.command) } == [
                ["node_up_local", "/usr/bin/logger node_up starting"],
                ["node_up_local_complete"],
            ])
        #expect(plan.commandCount == 3)
        #expect(plan.isMember && plan.isEventNode)
    }

    @Test("another node runs other and all lines")
    func otherNode() {
        let plan = NodePlan(program: program(Self.nodeUp), isEventNode: false)
        #expect(
            plan.segments.map { $0.map(\.command) } == [
                ["node_up_remote", "/usr/bin/logger node_up starting"],
                ["node_up_remote_complete"],
            ])
        #expect(plan.segments[1].first?.expected == .any)
        #expect(plan.segments[0].first?.line == 3)
    }

    @Test("a non-member runs nothing but keeps the segment count", arguments: [true, false])
    func nonMember(isEventNode: Bool) {
        let plan = NodePlan(program: program(Self.nodeUp), isEventNode: isEventNode, isMember: false)
        #expect(plan.segmentCount == 2)
        #expect(plan.segments == [[], []])
        #expect(plan.isEmpty)
        #expect(plan.commands(inSegment: 0).isEmpty)
    }

    @Test("every node has the same number of segments, empty ones included")
    func emptySegments() {
        let text = """
            event "/bin/a" 0 NULL
            barrier
            barrier
            other "/bin/b" 0 NULL
            barrier
            all "/bin/c" 0 NULL
            """
        let p = program(text)
        let event = NodePlan(program: p, isEventNode: true)
        let other = NodePlan(program: p, isEventNode: false)
        #expect(event.segments.map { $0.map(\.command) } == [["/bin/a"], [], [], ["/bin/c"]])
        #expect(other.segments.map { $0.map(\.command) } == [[], [], ["/bin/b"], ["/bin/c"]])
        #expect(event.segmentCount == other.segmentCount)
        #expect(event.commands(inSegment: 9).isEmpty)
    }

    @Test("relationship table")
    func relationships() {
        #expect(NodePlan.runs(.event, isEventNode: true))
        #expect(!NodePlan.runs(.event, isEventNode: false))
        #expect(!NodePlan.runs(.other, isEventNode: true))
        #expect(NodePlan.runs(.other, isEventNode: false))
        #expect(NodePlan.runs(.all, isEventNode: true))
        #expect(NodePlan.runs(.all, isEventNode: false))
    }

    @Test("an empty program has one empty segment")
    func emptyProgram() {
        let plan = NodePlan(program: RecoveryProgram(steps: []), isEventNode: true)
        #expect(plan.segments == [[]])
    }
}
