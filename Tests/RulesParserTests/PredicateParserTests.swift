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
        let nots = String(repeating: "NOT ", count: 100_000) + "X"
        #expect(throws: PredicateSyntaxError.self) { try PredicateParser.parse(nots) }
        let unary = String(repeating: "!", count: 100_000) + "X"
        #expect(throws: PredicateSyntaxError.self) { try PredicateParser.parse(unary) }
        // Within the limit, fine.
        let fine = String(repeating: "(", count: 50) + "X > 1" + String(repeating: ")", count: 50)
        #expect(throws: Never.self) { try PredicateParser.parse(fine) }
    }

    @Test("a chain of one precedence is one level: a flat node, printed as the nested tree")
    func chains() throws {
        let cases: [(String, String)] = [
            ("X > 1 || X > 2 || X > 3", "(((X > 1) || (X > 2)) || (X > 3))"),
            ("X AND X && X AND X", "(((X && X) && X) && X)"),
            ("10 - 4 - 3 + 2", "(((10 - 4) - 3) + 2)"),
            ("1 + 2 * 3 * 4 + 5", "((1 + ((2 * 3) * 4)) + 5)"),
            ("X || X && X && X || X", "((X || ((X && X) && X)) || X)"),
            ("1 | 2 | 3 ^ 4 ^ 5", "((1 | 2) | ((3 ^ 4) ^ 5))"),
            ("X << 1 >> 2 << 3", "(((X << 1) >> 2) << 3)"),
            // Comparisons do not chain: nested as before.
            ("1 < 2 < 3", "((1 < 2) < 3)"),
        ]
        for (source, expected) in cases {
            #expect(try PredicateParser.parse(source).description == expected, "\(source)")
        }
        // Two operands stay a `.binary`; three make one `.chain` whose offset is its last operator's.
        let two = try PredicateParser.parse("X || X").expression
        guard case .binary(.or, _, _, at: 2) = two else {
            Issue.record("\(two)")
            return
        }
        let three = try PredicateParser.parse("X || X || X").expression
        guard case .chain(.variable, let links) = three else {
            Issue.record("\(three)")
            return
        }
        #expect(links.map(\.op) == [.or, .or])
        #expect(links.map(\.at) == [2, 7])
        #expect(three.offset == 7)
    }

    static func chain(_ term: (Int) -> String, _ separator: String, _ count: Int) -> String {
        (0..<count).map(term).joined(separator: separator)
    }

    @Test("a flat chain of 2,000 terms is accepted, whatever its operator")
    func twoThousandTerms() throws {
        for separator in [" || ", " && ", " OR ", " AND "] {
            let text = Self.chain({ _ in "X > 1" }, separator, 2_000)
            let predicate = try PredicateParser.parse(text)
            guard case .chain(_, let links) = predicate.expression else {
                Issue.record("not a chain: \(separator)")
                continue
            }
            #expect(links.count == 1_999)
        }
        let sum = "X" + String(repeating: " + 1", count: 1_999) + " > 0"
        #expect(throws: Never.self) { try PredicateParser.parse(sum) }
    }

    @Test("a chain of 100,000 terms parses, prints, compares and type-checks without a crash")
    func hundredThousandTerms() throws {
        let variable = try #require(VariableCatalogue.builtIn["IBM.PSSP.aixos.PagSp.%totalused"])
        let texts = [
            Self.chain({ "X > \($0)" }, " || ", 100_000),
            Self.chain({ "X != \($0)" }, " && ", 100_000),
            "X" + String(repeating: " + 1 - 2", count: 50_000) + " > 0",
            Self.chain({ "\($0 % 7 + 1)" }, " * ", 100_000) + " > X",
        ]
        for text in texts {
            let predicate = try PredicateParser.parse(text)
            #expect(try PredicateParser.parse(text) == predicate)
            #expect(Set([predicate, predicate]).count == 1)
            #expect(predicate.description.count > text.count)
            #expect(PredicateTypeChecker.check(predicate, variable: variable).isEmpty)
        }
        // A type error deep in a chain points at its own operator.
        let bad = Self.chain({ _ in "X > 1" }, " || ", 50_000) + " || X > \"a\""
        let problems = PredicateTypeChecker.check(try PredicateParser.parse(bad), variable: variable)
        #expect(problems.map(\.offset) == [bad.utf8.count - 5])
    }

    @Test("real nesting stays bounded: the 201st level is refused at its token")
    func nestingStillBounded() throws {
        let parentheses = String(repeating: "(", count: 300) + "X > 1" + String(repeating: ")", count: 300)
        #expect(
            throws: PredicateSyntaxError(offset: 201, message: "expression nested too deeply (more than 200 levels)")
        ) { try PredicateParser.parse(parentheses) }
        // Parentheses around every link of a chain nest: (((X || X) || X) ...) counts.
        let nested = String(repeating: "(", count: 300) + "X" + String(repeating: " || X)", count: 300)
        #expect(
            throws: PredicateSyntaxError(offset: 201, message: "expression nested too deeply (more than 200 levels)")
        ) { try PredicateParser.parse(nested) }
        let unary = String(repeating: "-", count: 250) + "X"
        #expect(
            throws: PredicateSyntaxError(offset: 201, message: "expression nested too deeply (more than 200 levels)")
        ) { try PredicateParser.parse(unary) }
        // 200 levels are fine: 197 parentheses, the chain, its comparisons, their operands; one
        // more is refused at the operator of the first comparison past the limit.
        let fine = String(repeating: "(", count: 197) + "X > 1 || X > 2 || X > 3" + String(repeating: ")", count: 197)
        #expect(throws: Never.self) { try PredicateParser.parse(fine) }
        let over = "(" + fine + ")"
        #expect(
            throws: PredicateSyntaxError(offset: 209, message: "expression nested too deeply (more than 200 levels)")
        ) { try PredicateParser.parse(over) }
    }
}
