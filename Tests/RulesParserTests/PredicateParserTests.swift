import RulesParser
import Testing

@Suite("predicate expressions")
struct PredicateParserTests {
    static let canonical: [(String, String)] = [
        ("X > 70", "(X > 70)"),
        ("1 + 2 * 3", "(1 + (2 * 3))"),
        ("(1 + 2) * 3", "((1 + 2) * 3)"),
        ("10 - 4 - 3", "((10 - 4) - 3)"),
        ("X@P < X AND X.Name@P = \"a\"", "((X@P < X) && (X.Name@P == \"a\"))"),
        ("X@0 < X@1", "(X@0 < X@1)"),
        ("X <> 1", "(X != 1)"),
        ("X |< {1, 2}", "(X IN {1, 2})"),
        ("X >< {1}", "(X NOT IN {1})"),
        ("X ?= \"a%\"", "(X LIKE \"a%\")"),
        ("X !? \"a_\"", "(X NOT LIKE \"a_\")"),
        ("X NOT IN {1,2}", "(X NOT IN {1, 2})"),
        ("X IN {-1, 2.5}", "(X IN {-1, 2.5})"),
        ("X NOT LIKE \"db2%\"", "(X NOT LIKE \"db2%\")"),
        ("X =~ \"^db2\" || X !~ \"x\"", "((X =~ \"^db2\") || (X !~ \"x\"))"),
        ("NOT X > 1 && X < 5", "!(((X > 1) && (X < 5)))"),
        ("X > 1 && NOT X > 5", "((X > 1) && !((X > 5)))"),
        ("0x1F & X", "(31 & X)"),
        ("1 | 2 ^ 3 & 4", "(1 | (2 ^ (3 & 4)))"),
        ("X << 2 < 10", "((X << 2) < 10)"),
        ("1 == 2 < 3", "(1 == (2 < 3))"),
        ("a".isEmpty ? "" : "-X", "-(X)"),
        ("-5 + X", "(-5 + X)"),
        ("!~X", "!(~(X))"),
        ("!X", "!(X)"),
        ("X % 7 == 0.5", "((X % 7) == 0.5)"),
        ("1e3 < X", "(1000 < X)"),
        (".5 < X", "(0.5 < X)"),
        ("X OR X AND X", "(X || (X && X))"),
        ("X > 1 __QUAL_COUNT(3, 5)", "(X > 1) __QUAL_COUNT(3, 5)"),
        ("X > 1 && __QUAL_RATE(2, 60)", "(X > 1) __QUAL_RATE(2, 60)"),
        ("X > 1 AND __QUAL_COUNT(1,1)", "(X > 1) __QUAL_COUNT(1, 1)"),
        ("X.Role == \"say \\\"hi\\\"\"", "(X.Role == \"say \\\"hi\\\"\")"),
    ]

    @Test("precedence, aliases and qualifiers", arguments: canonical)
    func parses(_ source: String, _ expected: String) throws {
        let predicate = try PredicateParser.parse(source)
        #expect(predicate.description == expected)
    }

    @Test("qualifiers are typed")
    func qualifiers() throws {
        #expect(try PredicateParser.parse("X > 1 __QUAL_COUNT(3, 5)").qualifier == .count(3, of: 5))
        #expect(try PredicateParser.parse("X > 1 __QUAL_RATE(2, 60)").qualifier == .rate(2, withinSeconds: 60))
    }

    static let errors: [(String, Int, String)] = [
        ("X > > 70", 4, "unexpected token '>' (expected an operand)"),
        ("(X > 1", 6, "unexpected end of expression (expected ')')"),
        ("X >", 3, "unexpected end of expression (expected an operand)"),
        ("X > 1 1", 6, "unexpected token '1' (expected an operator)"),
        ("x > 1", 0, "unknown word 'x' (write it in capitals: 'X')"),
        ("X and 1", 2, "unknown word 'and' (write it in capitals: 'AND')"),
        ("Y > 1", 0, "unknown name 'Y' (the value is X, X@P, X@N or X.Name)"),
        ("X == \"abc", 5, "string not closed: missing '\"'"),
        ("X > 0x", 4, "malformed number '0x'"),
        ("X > 12ab", 4, "malformed number '12ab'"),
        ("X NOT 1", 2, "unexpected token 'NOT' (expected an operator; NOT IN or NOT LIKE?)"),
        (
            "X > 1 __QUAL_COUNT(5, 3)", 22,
            "__QUAL_COUNT(n, m): m must be a whole number no smaller than n (at most 1000000)"
        ),
        ("X > 1 __QUAL_RATE(0, 3)", 18, "__QUAL_RATE: the count must be a whole number from 1"),
        ("", 0, "empty expression"),
        ("X @ 1", 2, "unexpected character '@'"),
        ("X@Q > 1", 1, "malformed operand 'X@Q' (expected X@P, X@N or X.Name@P)"),
        ("X. > 1", 2, "expected a field name after 'X.'"),
        ("X $ 1", 2, "unexpected character '$'"),
        ("X IN {1, X}", 9, "unexpected token 'X' (expected a number or a string in the list)"),
        ("X > 1 )", 6, "unexpected token ')' (expected an operator)"),
    ]

    @Test("errors carry the offset of the offending token", arguments: errors)
    func fails(_ source: String, _ offset: Int, _ message: String) {
        #expect(throws: PredicateSyntaxError(offset: offset, message: message)) {
            try PredicateParser.parse(source)
        }
    }

    @Test("nesting and chains beyond the limit are errors, not stack overflows")
    func depthLimit() {
        let deep = String(repeating: "(", count: 100_000) + "X" + String(repeating: ")", count: 100_000)
        #expect(throws: PredicateSyntaxError.self) { try PredicateParser.parse(deep) }
        let chain = "X" + String(repeating: " + 1", count: 100_000) + " > 0"
        #expect(throws: PredicateSyntaxError.self) { try PredicateParser.parse(chain) }
        let nots = String(repeating: "NOT ", count: 100_000) + "X"
        #expect(throws: PredicateSyntaxError.self) { try PredicateParser.parse(nots) }
        let unary = String(repeating: "!", count: 100_000) + "X"
        #expect(throws: PredicateSyntaxError.self) { try PredicateParser.parse(unary) }
        // Within the limit, fine.
        let fine = String(repeating: "(", count: 50) + "X > 1" + String(repeating: ")", count: 50)
        #expect(throws: Never.self) { try PredicateParser.parse(fine) }
    }
}
