/// A predicate or rearm predicate: a PSSP Event Management / RSCT expression (SPEC section 4),
/// with the optional qualifier appended to it.
public struct Predicate: Sendable, Hashable, CustomStringConvertible {
    public var expression: Expression
    public var qualifier: Qualifier?

    public init(expression: Expression, qualifier: Qualifier? = nil) {
        self.expression = expression
        self.qualifier = qualifier
    }

    /// The canonical text: fully parenthesised, independent of the spacing of the source.
    public var description: String {
        guard let qualifier else { return expression.description }
        return "\(expression) \(qualifier)"
    }
}

/// `__QUAL_COUNT(n, m)`: true in at least n of the last m observations.
/// `__QUAL_RATE(n, s)`: true n times within s seconds.
public enum Qualifier: Sendable, Hashable, CustomStringConvertible {
    case count(Int, of: Int)
    case rate(Int, withinSeconds: Double)

    public var description: String {
        switch self {
        case .count(let n, let m): "__QUAL_COUNT(\(n), \(m))"
        case .rate(let n, let s): "__QUAL_RATE(\(n), \(Literal.format(s)))"
        }
    }
}

/// A constant in an expression or a list.
public enum Literal: Sendable, Hashable, CustomStringConvertible {
    case number(Double)
    case string(String)

    public var description: String {
        switch self {
        case .number(let value): Literal.format(value)
        case .string(let value): Literal.quote(value)
        }
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return String(value)
    }

    static func quote(_ value: String) -> String {
        var out = "\""
        for ch in value {
            if ch == "\"" || ch == "\\" { out.append("\\") }
            out.append(ch)
        }
        return out + "\""
    }
}

/// What an operand names of the instance's value: `X`, `X@P`, `X@N`, `X.Name`, `X.Name@P`.
public struct VariableReference: Sendable, Hashable, CustomStringConvertible {
    public enum Field: Sendable, Hashable {
        case index(Int)
        case name(String)
    }

    /// nil for the whole value.
    public var field: Field?
    /// `@P`: the previous observation instead of the current one.
    public var previous: Bool

    public init(field: Field? = nil, previous: Bool = false) {
        self.field = field
        self.previous = previous
    }

    public var description: String {
        var out = "X"
        switch field {
        case .index(let n): out += "@\(n)"
        case .name(let name): out += ".\(name)"
        case nil: break
        }
        return previous ? out + "@P" : out
    }
}

public enum UnaryOperator: String, Sendable, Hashable {
    case not = "!"
    case complement = "~"
    case negate = "-"
}

public enum BinaryOperator: String, Sendable, Hashable {
    case multiply = "*"
    case divide = "/"
    case remainder = "%"
    case add = "+"
    case subtract = "-"
    case shiftLeft = "<<"
    case shiftRight = ">>"
    case less = "<"
    case lessOrEqual = "<="
    case greater = ">"
    case greaterOrEqual = ">="
    case equal = "=="
    case notEqual = "!="
    case matches = "=~"
    case notMatches = "!~"
    case isIn = "IN"
    case notIn = "NOT IN"
    case like = "LIKE"
    case notLike = "NOT LIKE"
    case bitAnd = "&"
    case bitXor = "^"
    case bitOr = "|"
    case and = "&&"
    case or = "||"

    /// Whether a run of operators of this one's precedence is kept as one flat
    /// `Expression.chain` (the logical, arithmetic, shift and bitwise operators), rather than as
    /// nested `.binary` nodes (the comparisons, which do not chain in any useful way).
    public var chains: Bool {
        switch self {
        case .less, .lessOrEqual, .greater, .greaterOrEqual, .equal, .notEqual, .matches, .notMatches, .isIn,
            .notIn, .like, .notLike:
            false
        default:
            true
        }
    }

    /// C precedence: a larger number binds tighter.
    public var precedence: Int {
        switch self {
        case .multiply, .divide, .remainder: 10
        case .add, .subtract: 9
        case .shiftLeft, .shiftRight: 8
        case .less, .lessOrEqual, .greater, .greaterOrEqual: 7
        case .equal, .notEqual, .matches, .notMatches, .isIn, .notIn, .like, .notLike: 6
        case .bitAnd: 5
        case .bitXor: 4
        case .bitOr: 3
        case .and: 2
        case .or: 1
        }
    }
}

/// One step of an `Expression.chain`: the operator, the operand on its right and the
/// operator's byte offset.
public struct ChainLink: Sendable, Hashable {
    public var op: BinaryOperator
    public var operand: Expression
    public var at: Int

    public init(_ op: BinaryOperator, _ operand: Expression, at: Int) {
        self.op = op
        self.operand = operand
        self.at = at
    }
}

/// The syntax tree. Each node carries `at`, the byte offset in the predicate text of the token
/// that made it (the operator for operations), so later checks can point at a column.
public indirect enum Expression: Sendable, Hashable, CustomStringConvertible {
    case literal(Literal, at: Int)
    case list([Literal], at: Int)
    case variable(VariableReference, at: Int)
    /// `!`, `~`, `-`, and the word `NOT` (which is `!` with the lowest precedence).
    case unary(UnaryOperator, Expression, at: Int)
    case binary(BinaryOperator, Expression, Expression, at: Int)
    /// Three operands or more joined by operators of one precedence, left to right:
    /// `a + b - c` is `.chain(a, [+ b, - c])`, the same as `((a + b) - c)`. The parser builds it
    /// for operators that `chain` (two operands stay a `.binary`), so a chain of any length is one
    /// level deep, and every pass walks its links in a loop, never by recursion.
    case chain(Expression, [ChainLink])

    /// The offset of the node's token; for a chain, its last operator's (the root of the
    /// equivalent nested tree).
    public var offset: Int {
        switch self {
        case .literal(_, let at), .list(_, let at), .variable(_, let at), .unary(_, _, let at),
            .binary(_, _, _, let at):
            at
        case .chain(let first, let links): links.last?.at ?? first.offset
        }
    }

    public var description: String {
        switch self {
        case .literal(let literal, _): literal.description
        case .list(let items, _): "{" + items.map(\.description).joined(separator: ", ") + "}"
        case .variable(let reference, _): reference.description
        case .unary(let op, let operand, _): "\(op.rawValue)(\(operand))"
        case .binary(let op, let lhs, let rhs, _): "(\(lhs) \(op.rawValue) \(rhs))"
        case .chain(let first, let links):
            // The text of the nested tree it stands for: `((a + b) - c)`.
            links.reduce(into: String(repeating: "(", count: links.count) + first.description) {
                $0 += " \($1.op.rawValue) \($1.operand))"
            }
        }
    }
}
