import RulesParser
import Testing

@Suite("recovery programs")
struct RecoveryProgramTests {
    func parse(_ text: String) -> (RecoveryProgram, [Diagnostic]) {
        RecoveryProgramParser.parse(text, file: "x.rp")
    }

    @Test("node_up.rp: steps, relationships, statuses and segments")
    func nodeUp() throws {
        let (program, diagnostics) = parse(try fixture("node_up.rp"))
        #expect(diagnostics.isEmpty)
        #expect(program.steps.count == 5)
        #expect(
            program.segments.map { $0.map(\.command) } == [
                ["node_up_local", "node_up_remote"], ["node_up_local_complete", "node_up_remote_complete"],
            ])
        #expect(program.segments.map { $0.map(\.relationship) } == [[.event, .other], [.event, .other]])
        #expect(program.commands.map(\.expected) == [.exactly(0), .exactly(0), .exactly(0), .any])
        #expect(program.commands.first.map { [$0.line, $0.column] } == [2, 8])
        #expect(program.steps[2] == .barrier(line: 4))
    }

    @Test("escapes: only \\\" and \\\\")
    func escapes() throws {
        let (program, diagnostics) = parse(#"all "/bin/echo \"a\\b\" \n" 0 NULL"#)
        #expect(diagnostics.isEmpty)
        #expect(program.commands.first?.command == #"/bin/echo "a\b" \n"#)
    }

    @Test("the program a command starts")
    func program() {
        let cases: [(String, String?)] = [
            ("/usr/bin/db2 start", "/usr/bin/db2"),
            ("LANG=C DB=x /usr/bin/db2pd -hadr", "/usr/bin/db2pd"),
            ("'/opt/my tools/run' now", "/opt/my tools/run"),
            ("node_up_local", "node_up_local"),
            ("   ", nil),
        ]
        for (command, expected) in cases {
            let step = CommandStep(relationship: .all, command: command, expected: .any, line: 1, column: 1)
            #expect(step.program == expected, "\(command)")
        }
    }

    static let cases: [(String, String, [Finding])] = [
        ("P001 unknown relationship", "evnt \"/bin/true\" 0 NULL\n", [Finding(.P001, 1, 1)]),
        ("P001 missing relationship", "  \"/bin/true\" 0 NULL\n", [Finding(.P001, 1, 3)]),
        ("P002 not quoted", "all /bin/true 0 NULL\n", [Finding(.P002, 1, 5)]),
        ("P002 quote not closed", "all \"/bin/true 0 NULL\n", [Finding(.P002, 1, 5)]),
        ("P003 out of range", "all \"/bin/true\" 256 NULL\n", [Finding(.P003, 1, 17)]),
        ("P003 not a number", "all \"/bin/true\" y NULL\n", [Finding(.P003, 1, 17)]),
        ("P003 missing", "all \"/bin/true\"\n", [Finding(.P003, 1, 16)]),
        ("P004 missing NULL", "all \"/bin/true\" 0\n", [Finding(.P004, 1, 18)]),
        ("P004 lower-case null", "all \"/bin/true\" 0 null\n", [Finding(.P004, 1, 19)]),
        ("P005 text after NULL", "all \"/bin/true\" 0 NULL extra\n", [Finding(.P005, 1, 24)]),
        (
            "P005 text after barrier", "all \"/bin/true\" 0 NULL\nbarrier now\nall \"/bin/true\" 0 NULL\n",
            [Finding(.P005, 2, 9)]
        ),
        ("P008 no command", "# nothing\n\n", [Finding(.P008, 1, 1)]),
        ("P008 and P009 only a barrier", "barrier\n", [Finding(.P008, 1, 1), Finding(.P009, 1, 1)]),
        ("P009 barrier at the start", "barrier\nall \"/bin/true\" 0 NULL\n", [Finding(.P009, 1, 1)]),
        ("P009 barrier at the end", "all \"/bin/true\" 0 NULL\nbarrier\n", [Finding(.P009, 2, 1)]),
        (
            "P009 barrier twice", "all \"/bin/true\" 0 NULL\nbarrier\nbarrier\nall \"/bin/true\" 0 NULL\n",
            [Finding(.P009, 3, 1)]
        ),
        ("P010 empty command", "all \"\" 0 NULL\n", [Finding(.P010, 1, 5)]),
        ("P010 blank command", "all \"   \" 0 NULL\n", [Finding(.P010, 1, 5)]),
        ("R017 CRLF", "all \"/bin/true\" 0 NULL\r\n", [Finding(.R017, 1, 23)]),
        ("comments and blank lines are ignored", "# x\n\n   # y\nall \"/bin/true\" x NULL\n", []),
        ("upper-case relationship and X", "ALL \"/bin/true\" X NULL\n", []),
    ]

    @Test("each diagnostic code at its line and column", arguments: cases)
    func diagnostic(_ name: String, _ text: String, _ expected: [Finding]) {
        let (_, diagnostics) = parse(text)
        #expect(findings(diagnostics) == expected, "\(name): \(diagnostics.map(\.formatted))")
    }
}
