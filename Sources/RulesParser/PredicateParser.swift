/// A predicate that does not parse: the byte offset of the offending token in the predicate
/// text and what was wrong there.
public struct PredicateSyntaxError: Error, Sendable, Hashable {
    public var offset: Int
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }
}

/// Parses the expression language of SPEC section 4 into a `Predicate`.
///
/// Precedence is C's, with RSCT's words: `! ~ -` (unary), `* / %`, `+ -`, `<< >>`,
/// `< <= > >=`, `== != =~ !~ IN NOT IN LIKE NOT LIKE`, `&`, `^`, `|`, `&& AND`, `|| OR`, and
/// last the prefix word `NOT`, which takes everything to its right at its level.
/// A qualifier (`__QUAL_COUNT(n, m)`, `__QUAL_RATE(n, s)`) may follow the whole expression,
/// on its own or joined by `&&` / `AND`.
public enum PredicateParser {
    /// Deeper trees are refused, so no later recursive pass can run out of stack.
    public static let maximumDepth = 200

    public static func parse(_ text: String) throws(PredicateSyntaxError) -> Predicate {
        try parse(bytes: Array(text.utf8))
    }

    /// Parses UTF-8 bytes; offsets in errors are byte offsets, whatever the bytes are.
    public static func parse(bytes: [UInt8]) throws(PredicateSyntaxError) -> Predicate {
        var parser = Parsing(bytes: bytes)
        return try parser.parsePredicate()
    }
}

private enum Punct: String {
    case lparen = "("
    case rparen = ")"
    case lbrace = "{"
    case rbrace = "}"
    case comma = ","
    case bang = "!"
    case tilde = "~"
    case minus = "-"
    case star = "*"
    case slash = "/"
    case percent = "%"
    case plus = "+"
    case shl = "<<"
    case shr = ">>"
    case lt = "<"
    case le = "<="
    case gt = ">"
    case ge = ">="
    case eqeq = "=="
    case eq = "="
    case ne = "!="
    case ltgt = "<>"
    case match = "=~"
    case nomatch = "!~"
    case pipeLt = "|<"
    case gtLt = "><"
    case qEq = "?="
    case bangQ = "!?"
    case amp = "&"
    case caret = "^"
    case pipe = "|"
    case ampamp = "&&"
    case pipepipe = "||"

    var binary: BinaryOperator? {
        switch self {
        case .star: .multiply
        case .slash: .divide
        case .percent: .remainder
        case .plus: .add
        case .minus: .subtract
        case .shl: .shiftLeft
        case .shr: .shiftRight
        case .lt: .less
        case .le: .lessOrEqual
        case .gt: .greater
        case .ge: .greaterOrEqual
        case .eqeq, .eq: .equal
        case .ne, .ltgt: .notEqual
        case .match: .matches
        case .nomatch: .notMatches
        case .pipeLt: .isIn
        case .gtLt: .notIn
        case .qEq: .like
        case .bangQ: .notLike
        case .amp: .bitAnd
        case .caret: .bitXor
        case .pipe: .bitOr
        case .ampamp: .and
        case .pipepipe: .or
        case .lparen, .rparen, .lbrace, .rbrace, .comma, .bang, .tilde: nil
        }
    }
}

private enum Word: String {
    case and = "AND"
    case or = "OR"
    case not = "NOT"
    case isIn = "IN"
    case like = "LIKE"
    case qualCount = "__QUAL_COUNT"
    case qualRate = "__QUAL_RATE"
}

private enum TokenKind: Equatable {
    case number(Double)
    case string(String)
    case variable(VariableReference)
    case word(Word)
    case punct(Punct)
    case end
}

private struct Token {
    var kind: TokenKind
    var start: Int
    var end: Int
}

private struct Parsing {
    let bytes: [UInt8]
    var position = 0
    var token = Token(kind: .end, start: 0, end: 0)

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    typealias Failure = PredicateSyntaxError

    // MARK: Lexer

    private func isIdentifierStart(_ b: UInt8) -> Bool {
        (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) || b == 0x5F
    }

    private func isIdentifierByte(_ b: UInt8) -> Bool {
        isIdentifierStart(b) || isDigit(b)
    }

    private func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }

    private func text(_ start: Int, _ end: Int) -> String {
        String(decoding: bytes[start..<min(end, bytes.count)], as: UTF8.self)
    }

    /// "unexpected token 'x' (expected ...)", or "unexpected end of expression (expected ...)".
    private func unexpected(expected: String) -> Failure {
        if case .end = token.kind {
            return Failure(offset: token.start, message: "unexpected end of expression (expected \(expected))")
        }
        return Failure(
            offset: token.start,
            message: "unexpected token \(text(token.start, token.end).quotedForMessage()) (expected \(expected))")
    }

    mutating func advance() throws(Failure) {
        while position < bytes.count, bytes[position] == 0x20 || bytes[position] == 0x09 {
            position += 1
        }
        let start = position
        guard position < bytes.count else {
            token = Token(kind: .end, start: start, end: start)
            return
        }
        let b = bytes[position]
        if isDigit(b) || (b == 0x2E && position + 1 < bytes.count && isDigit(bytes[position + 1])) {
            token = Token(kind: .number(try lexNumber()), start: start, end: position)
        } else if b == 0x22 {
            token = Token(kind: .string(try lexString()), start: start, end: position)
        } else if isIdentifierStart(b) {
            token = try lexWord()
        } else {
            token = Token(kind: .punct(try lexPunct()), start: start, end: position)
        }
    }

    private mutating func lexNumber() throws(Failure) -> Double {
        let start = position
        if bytes[position] == 0x30, position + 1 < bytes.count, bytes[position + 1] | 0x20 == 0x78 {
            position += 2
            var value: UInt64 = 0
            let digitsStart = position
            while position < bytes.count, let digit = hexValue(bytes[position]) {
                if value > (UInt64.max >> 4) {
                    throw Failure(offset: start, message: "hexadecimal number too large")
                }
                value = value << 4 | UInt64(digit)
                position += 1
            }
            if position == digitsStart {
                throw Failure(
                    offset: start, message: "malformed number \(text(start, position + 1).quotedForMessage())")
            }
            try expectNumberEnd(start)
            return Double(value)
        }
        while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        if position < bytes.count, bytes[position] == 0x2E {
            position += 1
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
        }
        if position < bytes.count, bytes[position] | 0x20 == 0x65 {
            var p = position + 1
            if p < bytes.count, bytes[p] == 0x2B || bytes[p] == 0x2D { p += 1 }
            if p < bytes.count, isDigit(bytes[p]) {
                position = p
                while position < bytes.count, isDigit(bytes[position]) { position += 1 }
            }
        }
        try expectNumberEnd(start)
        guard let value = Double(text(start, position)), value.isFinite else {
            throw Failure(offset: start, message: "malformed number \(text(start, position).quotedForMessage())")
        }
        return value
    }

    private mutating func expectNumberEnd(_ start: Int) throws(Failure) {
        if position < bytes.count, isIdentifierByte(bytes[position]) || bytes[position] == 0x2E {
            var end = position
            while end < bytes.count, isIdentifierByte(bytes[end]) || bytes[end] == 0x2E { end += 1 }
            throw Failure(offset: start, message: "malformed number \(text(start, end).quotedForMessage())")
        }
    }

    private func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case 0x30...0x39: b - 0x30
        case 0x41...0x46: b - 0x41 + 10
        case 0x61...0x66: b - 0x61 + 10
        default: nil
        }
    }

    private mutating func lexString() throws(Failure) -> String {
        let start = position
        position += 1
        var value: [UInt8] = []
        while position < bytes.count {
            let b = bytes[position]
            if b == 0x22 {
                position += 1
                return String(decoding: value, as: UTF8.self)
            }
            if b == 0x5C, position + 1 < bytes.count, bytes[position + 1] == 0x22 || bytes[position + 1] == 0x5C {
                value.append(bytes[position + 1])
                position += 2
                continue
            }
            value.append(b)
            position += 1
        }
        throw Failure(offset: start, message: "string not closed: missing '\"'")
    }

    private mutating func lexWord() throws(Failure) -> Token {
        let start = position
        while position < bytes.count, isIdentifierByte(bytes[position]) { position += 1 }
        if position - start == 1, bytes[start] == 0x58 {  // X
            return Token(kind: .variable(try lexReference(start)), start: start, end: position)
        }
        let word = text(start, position)
        if let known = Word(rawValue: word) {
            return Token(kind: .word(known), start: start, end: position)
        }
        if Word(rawValue: word.uppercased()) != nil || word == "x" {
            throw Failure(
                offset: start,
                message: "unknown word \(word.quotedForMessage()) (write it in capitals: '\(word.uppercased())')")
        }
        throw Failure(
            offset: start,
            message: "unknown name \(word.quotedForMessage()) (the value is X, X@P, X@N or X.Name)")
    }

    /// After `X`: `@P`, `@N`, `.Name`, then optionally `@P`.
    private mutating func lexReference(_ start: Int) throws(Failure) -> VariableReference {
        var reference = VariableReference()
        if position < bytes.count, bytes[position] == 0x2E {
            position += 1
            let nameStart = position
            guard position < bytes.count, isIdentifierStart(bytes[position]) else {
                throw Failure(offset: nameStart, message: "expected a field name after 'X.'")
            }
            while position < bytes.count, isIdentifierByte(bytes[position]) { position += 1 }
            reference.field = .name(text(nameStart, position))
        }
        while position < bytes.count, bytes[position] == 0x40 {
            let at = position
            position += 1
            if position < bytes.count, bytes[position] == 0x50,
                position + 1 >= bytes.count || !isIdentifierByte(bytes[position + 1])
            {
                if reference.previous {
                    throw Failure(offset: at, message: "'@P' given twice")
                }
                reference.previous = true
                position += 1
                continue
            }
            let digitsStart = position
            while position < bytes.count, isDigit(bytes[position]) { position += 1 }
            guard position > digitsStart, position - digitsStart <= 4,
                position >= bytes.count || !isIdentifierByte(bytes[position]),
                reference.field == nil, !reference.previous
            else {
                var end = position
                while end < bytes.count, isIdentifierByte(bytes[end]) { end += 1 }
                throw Failure(
                    offset: at,
                    message: "malformed operand \(text(start, end).quotedForMessage()) (expected X@P, X@N or X.Name@P)")
            }
            reference.field = .index(Int(text(digitsStart, position))!)
        }
        return reference
    }

    private mutating func lexPunct() throws(Failure) -> Punct {
        let b = bytes[position]
        let next: UInt8 = position + 1 < bytes.count ? bytes[position + 1] : 0
        let pair: Punct? =
            switch (b, next) {
            case (0x3C, 0x3C): .shl  // <<
            case (0x3E, 0x3E): .shr  // >>
            case (0x3C, 0x3D): .le  // <=
            case (0x3E, 0x3D): .ge  // >=
            case (0x3D, 0x3D): .eqeq  // ==
            case (0x21, 0x3D): .ne  // !=
            case (0x3C, 0x3E): .ltgt  // <>
            case (0x3D, 0x7E): .match  // =~
            case (0x21, 0x7E): .nomatch  // !~
            case (0x7C, 0x3C): .pipeLt  // |<
            case (0x3E, 0x3C): .gtLt  // ><
            case (0x3F, 0x3D): .qEq  // ?=
            case (0x21, 0x3F): .bangQ  // !?
            case (0x26, 0x26): .ampamp  // &&
            case (0x7C, 0x7C): .pipepipe  // ||
            default: nil
            }
        if let pair {
            position += 2
            return pair
        }
        let single: Punct? =
            switch b {
            case 0x28: .lparen
            case 0x29: .rparen
            case 0x7B: .lbrace
            case 0x7D: .rbrace
            case 0x2C: .comma
            case 0x21: .bang
            case 0x7E: .tilde
            case 0x2D: .minus
            case 0x2A: .star
            case 0x2F: .slash
            case 0x25: .percent
            case 0x2B: .plus
            case 0x3C: .lt
            case 0x3E: .gt
            case 0x3D: .eq
            case 0x26: .amp
            case 0x5E: .caret
            case 0x7C: .pipe
            default: nil
            }
        if let single {
            position += 1
            return single
        }
        // A whole UTF-8 character, for the message.
        var end = position + 1
        while end < bytes.count, bytes[end] & 0xC0 == 0x80 { end += 1 }
        throw Failure(offset: position, message: "unexpected character \(text(position, end).quotedForMessage())")
    }

    // MARK: Parser

    mutating func parsePredicate() throws(Failure) -> Predicate {
        try advance()
        if case .end = token.kind {
            throw Failure(offset: 0, message: "empty expression")
        }
        let (expression, _) = try parseExpression(minimumPrecedence: 0, depth: 0)
        var qualifier: Qualifier?
        if case .word(let word) = token.kind, word == .qualCount || word == .qualRate {
            qualifier = try parseQualifier()
        } else if isAndBeforeQualifier() {
            try advance()
            qualifier = try parseQualifier()
        }
        guard case .end = token.kind else {
            throw unexpected(expected: "an operator")
        }
        return Predicate(expression: expression, qualifier: qualifier)
    }

    /// `&& __QUAL_...` or `AND __QUAL_...`: the qualifier joined to the expression.
    private func isAndBeforeQualifier() -> Bool {
        switch token.kind {
        case .punct(.ampamp), .word(.and): break
        default: return false
        }
        var p = token.end
        while p < bytes.count, bytes[p] == 0x20 || bytes[p] == 0x09 { p += 1 }
        let rest = bytes[p...]
        return rest.starts(with: "__QUAL_COUNT".utf8) || rest.starts(with: "__QUAL_RATE".utf8)
    }

    private mutating func parseQualifier() throws(Failure) -> Qualifier {
        guard case .word(let word) = token.kind else {
            throw Failure(offset: token.start, message: "expected __QUAL_COUNT or __QUAL_RATE")
        }
        let qualifierStart = token.start
        try advance()
        try expect(.lparen, "'(' after \(word.rawValue)")
        let (first, firstAt) = try parseQualifierNumber()
        try expect(.comma, "',' between the qualifier's numbers")
        let (second, secondAt) = try parseQualifierNumber()
        try expect(.rparen, "')' after the qualifier's numbers")
        guard first >= 1, first == first.rounded(), first <= 1_000_000 else {
            throw Failure(offset: firstAt, message: "\(word.rawValue): the count must be a whole number from 1")
        }
        let n = Int(first)
        switch word {
        case .qualCount:
            guard second == second.rounded(), second >= first, second <= 1_000_000 else {
                throw Failure(
                    offset: secondAt,
                    message: "__QUAL_COUNT(n, m): m must be a whole number no smaller than n (at most 1000000)")
            }
            _ = qualifierStart
            return .count(n, of: Int(second))
        default:
            guard second > 0 else {
                throw Failure(offset: secondAt, message: "__QUAL_RATE(n, s): s must be a number of seconds above 0")
            }
            return .rate(n, withinSeconds: second)
        }
    }

    private mutating func parseQualifierNumber() throws(Failure) -> (Double, Int) {
        guard case .number(let value) = token.kind else {
            throw unexpected(expected: "a number")
        }
        let at = token.start
        try advance()
        return (value, at)
    }

    private mutating func expect(_ punct: Punct, _ what: String) throws(Failure) {
        guard case .punct(punct) = token.kind else {
            throw unexpected(expected: "\(what)")
        }
        try advance()
    }

    /// The binary operator at the current token, and how many tokens it spans (`NOT IN` is two).
    private func peekBinary() throws(Failure) -> BinaryOperator? {
        switch token.kind {
        case .punct(let p): return p.binary
        case .word(.and): return isAndBeforeQualifier() ? nil : .and
        case .word(.or): return .or
        case .word(.isIn): return .isIn
        case .word(.like): return .like
        case .word(.not):
            // In operator position `NOT` must start `NOT IN` or `NOT LIKE`.
            var copy = self
            try copy.advance()
            switch copy.token.kind {
            case .word(.isIn): return .notIn
            case .word(.like): return .notLike
            default:
                throw Failure(
                    offset: token.start, message: "unexpected token 'NOT' (expected an operator; NOT IN or NOT LIKE?)")
            }
        default: return nil
        }
    }

    /// Precedence climbing. Operators of one precedence that `chain` are gathered into one
    /// `.chain` (iteratively: a flat run of `||` of any length is one level deep); only real
    /// nesting (parentheses, unary operators, a tighter operator inside a looser one) counts
    /// toward `maximumDepth`.
    private mutating func parseExpression(minimumPrecedence: Int, depth: Int) throws(Failure) -> (Expression, Int) {
        var (first, firstDepth) = try parsePrefix(depth: depth)
        // The run being gathered: `first`, then `links`, all of `precedence`; its height.
        var links: [ChainLink] = []
        var precedence = -1
        var height = firstDepth
        while let op = try peekBinary(), op.precedence >= minimumPrecedence {
            if case .punct(.ampamp) = token.kind, isAndBeforeQualifier() { break }
            let at = token.start
            if case .word(.not) = token.kind { try advance() }  // the NOT of NOT IN, NOT LIKE
            try advance()
            let (rhs, rhsDepth) = try parseExpression(minimumPrecedence: op.precedence + 1, depth: depth + 1)
            if !op.chains || op.precedence != precedence {
                first = Self.join(first, links)
                firstDepth = height
                links = []
                precedence = op.chains ? op.precedence : -1
            }
            links.append(ChainLink(op, rhs, at: at))
            height = max(firstDepth, rhsDepth, height - 1) + 1
            if depth + height > PredicateParser.maximumDepth {
                throw tooDeep(at)
            }
            if !op.chains {
                first = Self.join(first, links)
                firstDepth = height
                links = []
            }
        }
        return (Self.join(first, links), height)
    }

    /// `first` alone, a `.binary` of one link, or a `.chain` of more.
    private static func join(_ first: Expression, _ links: [ChainLink]) -> Expression {
        switch links.count {
        case 0: first
        case 1: .binary(links[0].op, first, links[0].operand, at: links[0].at)
        default: .chain(first, links)
        }
    }

    private func tooDeep(_ at: Int) -> Failure {
        Failure(offset: at, message: "expression nested too deeply (more than \(PredicateParser.maximumDepth) levels)")
    }

    private mutating func parsePrefix(depth: Int) throws(Failure) -> (Expression, Int) {
        if depth > PredicateParser.maximumDepth { throw tooDeep(token.start) }
        let at = token.start
        switch token.kind {
        case .number(let value):
            try advance()
            return (.literal(.number(value), at: at), 1)
        case .string(let value):
            try advance()
            return (.literal(.string(value), at: at), 1)
        case .variable(let reference):
            try advance()
            return (.variable(reference, at: at), 1)
        case .punct(.lbrace):
            return (try parseList(), 1)
        case .punct(.lparen):
            try advance()
            let (inner, innerDepth) = try parseExpression(minimumPrecedence: 0, depth: depth + 1)
            guard case .punct(.rparen) = token.kind else {
                throw unexpected(expected: "')'")
            }
            try advance()
            return (inner, innerDepth)
        case .punct(.bang), .punct(.tilde), .punct(.minus):
            let op: UnaryOperator =
                switch token.kind {
                case .punct(.bang): .not
                case .punct(.tilde): .complement
                default: .negate
                }
            try advance()
            let (operand, operandDepth) = try parsePrefix(depth: depth + 1)
            if op == .negate, case .literal(.number(let value), _) = operand {
                return (.literal(.number(-value), at: at), 1)
            }
            return (.unary(op, operand, at: at), operandDepth + 1)
        case .punct(.nomatch):
            // `!~X` in operand position is `!` applied to `~X`.
            try advance()
            let (operand, operandDepth) = try parsePrefix(depth: depth + 2)
            return (.unary(.not, .unary(.complement, operand, at: at + 1), at: at), operandDepth + 2)
        case .word(.not):
            try advance()
            let (operand, operandDepth) = try parseExpression(minimumPrecedence: 0, depth: depth + 1)
            return (.unary(.not, operand, at: at), operandDepth + 1)
        default:
            throw unexpected(expected: "an operand")
        }
    }

    private mutating func parseList() throws(Failure) -> Expression {
        let at = token.start
        try advance()
        var items: [Literal] = []
        if case .punct(.rbrace) = token.kind {
            try advance()
            return .list(items, at: at)
        }
        while true {
            var sign = 1.0
            if case .punct(.minus) = token.kind {
                sign = -1
                try advance()
            }
            switch token.kind {
            case .number(let value): items.append(.number(sign * value))
            case .string(let value) where sign > 0: items.append(.string(value))
            default:
                throw unexpected(expected: "a number or a string in the list")
            }
            try advance()
            if case .punct(.comma) = token.kind {
                try advance()
                continue
            }
            guard case .punct(.rbrace) = token.kind else {
                throw unexpected(expected: "',' or '}' in the list")
            }
            try advance()
            return .list(items, at: at)
        }
    }
}
