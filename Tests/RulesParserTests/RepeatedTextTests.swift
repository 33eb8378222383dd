import RulesParser
import Testing

/// What the parser keeps between definitions (predicates by text and variable, paths, names)
/// must give each definition the findings it would have alone.
@Suite("Repeated texts")
struct RepeatedTextTests {
    @Test("one predicate text under two variables: each variable's own finding, at each line")
    func predicateUnderTwoVariables() throws {
        var text = ""
        for round in 0..<2 {
            text += definition(
                "hadr\(round)", "0", "/p/a.rp", "2", "0", "HAMN.DB2.HADR", "Database=SAMPLE;NodeNum=*", "X.Role == 1")
            text += definition(
                "pg\(round)", "0", "/p/a.rp", "2", "0", "IBM.PSSP.aixos.PagSp.%totalused", "NodeNum=*", "X.Role == 1")
        }
        let rules = parseRules(text)
        #expect(
            rules.diagnostics.map { "\($0.line):\($0.column) \($0.code) \($0.message)" } == [
                "8:8 R023 predicate: '==' compares a string with a number",
                "17:1 R023 predicate: IBM.PSSP.aixos.PagSp.%totalused is a single value and has no fields; use X",
                "26:8 R023 predicate: '==' compares a string with a number",
                "35:1 R023 predicate: IBM.PSSP.aixos.PagSp.%totalused is a single value and has no fields; use X",
            ])
    }

    @Test("one bad text as predicate and as rearm predicate: R015 and R016, each with its own words")
    func predicateAndRearm() throws {
        let variable = "IBM.PSSP.aixos.PagSp.%totalused"
        let text =
            definition("a", "0", "/p/a.rp", "2", "0", variable, "NodeNum=*", "X >")
            + definition("b", "0", "/p/a.rp", "2", "0", variable, "NodeNum=*", "X > 1", "X >")
        let rules = parseRules(text)
        #expect(
            rules.diagnostics.map { "\($0.line):\($0.column) \($0.code) \($0.message)" } == [
                "8:4 R015 predicate: unexpected end of expression (expected an operand)",
                "18:4 R016 rearm predicate: unexpected end of expression (expected an operand)",
            ])
    }

    @Test("references: the event only for built-in triggers, and whether an earlier one named the path")
    func references() throws {
        let text =
            definition("TE_QUORUM_LOST", "0", "/p/a.rp") + definition("mine", "0", "/p/b.rp")
            + definition("other", "0", "/p/a.rp") + definition("TE_JOIN_NODE", "0", "/p/b.rp")
        let rules = parseRules(text)
        #expect(rules.diagnostics.isEmpty)
        #expect(rules.recoveryProgramReferences.map(\.event) == ["TE_QUORUM_LOST", "", "", "TE_JOIN_NODE"])
        #expect(rules.recoveryProgramReferences.map(\.repeatsEarlier) == [false, false, true, true])
        #expect(rules.definitions.map(\.trigger.name) == ["TE_QUORUM_LOST", "mine", "other", "TE_JOIN_NODE"])
    }

    @Test("R005 and R006 over names that share a hash slot's neighbourhood: 2,000 names, each twice")
    func manyNamesTwice() throws {
        var text = ""
        for index in 0..<2_000 { text += definition("event_\(index)", "0", "/p/a.rp") }
        for index in 0..<2_000 { text += definition("event_\(index)", index % 2 == 0 ? "0" : "1", "/p/a.rp") }
        let rules = parseRules(text)
        #expect(rules.diagnostics.count == 2_000)
        #expect(rules.diagnostics[0].message == "duplicate trigger 'event_0' state 0 (first defined at line 1)")
        #expect(
            rules.diagnostics[1].message == "event 'event_1' is defined with state 1 here and state 0 at line 10")
        #expect(rules.diagnostics[1].line == 18_010)
        #expect(rules.diagnostics.map(\.code) == (0..<2_000).map { $0 % 2 == 0 ? .R005 : .R006 })
    }
}
