import RulesParser

/// Turns an `Expression` into closures (the semantics are documented on `CompiledPredicate`).
///
/// Every operator is specialised at compile time: the operator is chosen by a `switch` here, not
/// at each evaluation; operands are concrete `NumberSource` / `StringSource` types, so the
/// closure of `X > 70` reads the sample and compares inline; constant operands are folded;
/// comparisons pick the number or string comparison from the literal's type, or from the
/// catalogue's type of the fields compared.
struct PredicateCompiler {
    let variable: ResourceVariable?

    /// The parser allows 200 levels; this only guards trees built by hand.
    static let maximumDepth = 1_000

    typealias Failure = PredicateCompilationError

    enum TruthNode {
        case constant(Bool)
        case code(TruthFunction)
    }

    enum NumberNode {
        case constant(Double)
        /// `X` of the current sample.
        case current
        case operand(OperandReader)
        case computed(NumberFunction)

        /// Calls `visitor` with this node as a concrete `NumberSource`.
        func visit<V: NumberVisitor>(_ visitor: V) -> V.Output {
            switch self {
            case .constant(let value): visitor.visit(ConstantNumber(value: value))
            case .current: visitor.visit(CurrentNumber())
            case .operand(let operand): visitor.visit(OperandNumber(operand: operand))
            case .computed(let code): visitor.visit(ComputedNumber(code: code))
            }
        }

        var isConstant: Bool {
            if case .constant = self { return true }
            return false
        }
    }

    enum StringNode {
        case constant(String)
        case operand(OperandReader)
        /// Not a string at all (a number, a list, an operation): every comparison is false.
        case missing

        /// Calls `visitor` with this node as a concrete `StringSource`; nil when missing.
        func visit<V: StringVisitor>(_ visitor: V) -> V.Output? {
            switch self {
            case .constant(let value): visitor.visit(ConstantString(value: value))
            case .operand(let operand): visitor.visit(OperandString(operand: operand))
            case .missing: nil
            }
        }

        var isConstant: Bool {
            if case .constant = self { return true }
            return false
        }
    }

    /// What an expression yields, as far as the compiler can tell.
    enum StaticType {
        case number, string, list, unknown
    }

    // MARK: Truth

    func truth(_ expression: Expression, depth: Int) throws(Failure) -> TruthNode {
        try checkDepth(expression, depth)
        switch expression {
        case .literal(.number(let value), _):
            return .constant(value != 0 && !value.isNaN)
        case .literal(.string, _), .list:
            return .constant(false)
        case .unary(.not, let operand, _):
            if Self.isTruthValued(operand) {
                switch try truth(operand, depth: depth + 1) {
                case .constant(let value): return .constant(!value)
                case .code(let code): return .code(.init { !code.run($0, $1, &$2) })
                }
            }
            // `!` of a missing number is missing, which is false here.
            let inner = try number(operand, depth: depth + 1)
            if case .constant(let value) = inner { return .constant(value == 0) }
            return .code(inner.visit(IsZero()))
        case .binary(let op, let lhs, let rhs, let at):
            switch op {
            case .and, .or:
                return Self.logical(op, try truth(lhs, depth: depth + 1), try truth(rhs, depth: depth + 1))
            case .less, .lessOrEqual, .greater, .greaterOrEqual, .equal, .notEqual:
                return try comparison(op, lhs, rhs, depth: depth)
            case .isIn, .notIn:
                return try membership(op == .notIn, lhs, rhs, at: at, depth: depth)
            case .matches, .notMatches:
                return try regularExpression(op == .notMatches, lhs, rhs)
            case .like, .notLike:
                return like(op == .notLike, lhs, rhs)
            default:
                break
            }
        case .chain(let first, let links) where links[0].op == .and || links[0].op == .or:
            return try logicalChain(links[0].op == .and, [first] + links.map(\.operand), depth: depth)
        case .variable, .unary, .chain:
            break
        }
        let value = try number(expression, depth: depth)
        if case .constant(let constant) = value { return .constant(constant != 0 && !constant.isNaN) }
        return .code(value.visit(IsTrue()))
    }

    private static func logical(_ op: BinaryOperator, _ lhs: TruthNode, _ rhs: TruthNode) -> TruthNode {
        let isAnd = op == .and
        switch (lhs, rhs) {
        case (.constant(let value), _):
            return value == isAnd ? rhs : .constant(value)
        case (.code(let left), .constant(let value)):
            // Still evaluate the left side: it may divide by zero.
            return value == isAnd
                ? .code(left)
                : .code(
                    .init {
                        _ = left.run($0, $1, &$2)
                        return value
                    })
        case (.code(let left), .code(let right)):
            return isAnd
                ? .code(.init { left.run($0, $1, &$2) && right.run($0, $1, &$2) })
                : .code(.init { left.run($0, $1, &$2) || right.run($0, $1, &$2) })
        }
    }

    /// `a && b && c ...` (or `||`), one level deep whatever its length: the operands' code in an
    /// array, run in order in one loop, stopping at the first that decides. The same as the nested
    /// `logical` it stands for: every operand is compiled; a constant that does not decide is
    /// dropped; the first constant that decides ends the run (the code before it still runs).
    private func logicalChain(_ isAnd: Bool, _ operands: [Expression], depth: Int) throws(Failure) -> TruthNode {
        var codes: [TruthFunction] = []
        var decided = false
        for operand in operands {
            let node = try truth(operand, depth: depth + 1)
            guard !decided else { continue }
            switch node {
            case .constant(let value): decided = value != isAnd
            case .code(let code): codes.append(code)
            }
        }
        // With every operand run and none deciding: true for `&&`, false for `||`.
        let end = decided != isAnd
        switch codes.count {
        case 0: return .constant(end)
        case 1 where !decided: return .code(codes[0])
        default:
            return isAnd
                ? .code(
                    .init { [codes] current, previous, divisionByZero in
                        for code in codes where !code.run(current, previous, &divisionByZero) { return false }
                        return end
                    })
                : .code(
                    .init { [codes] current, previous, divisionByZero in
                        for code in codes where code.run(current, previous, &divisionByZero) { return true }
                        return end
                    })
        }
    }

    // MARK: Numbers

    func number(_ expression: Expression, depth: Int) throws(Failure) -> NumberNode {
        try checkDepth(expression, depth)
        switch expression {
        case .literal(.number(let value), _):
            return .constant(value)
        case .literal(.string, _), .list:
            return .constant(.nan)
        case .variable(let reference, _):
            return reference == VariableReference() ? .current : .operand(OperandReader(reference, variable: variable))
        case .unary(let op, let operand, _):
            if op == .not, Self.isTruthValued(operand) {
                switch try truth(operand, depth: depth + 1) {
                case .constant(let value): return .constant(value ? 0 : 1)
                case .code(let code): return .computed(.init { code.run($0, $1, &$2) ? 0 : 1 })
                }
            }
            let inner = try number(operand, depth: depth + 1)
            return Self.fold(inner.visit(Unary(op: op)), [inner])
        case .binary(let op, let lhs, let rhs, _):
            switch op {
            case .multiply, .divide, .remainder, .add, .subtract, .shiftLeft, .shiftRight, .bitAnd, .bitXor, .bitOr:
                let left = try number(lhs, depth: depth + 1)
                let right = try number(rhs, depth: depth + 1)
                return Self.fold(left.visit(Arithmetic(op: op, right: right)), [left, right])
            default:
                return try truthAsNumber(expression, depth: depth)
            }
        case .chain(let first, let links):
            guard links[0].op != .and, links[0].op != .or else { return try truthAsNumber(expression, depth: depth) }
            return try arithmeticChain(first, links, depth: depth)
        }
    }

    private func truthAsNumber(_ expression: Expression, depth: Int) throws(Failure) -> NumberNode {
        switch try truth(expression, depth: depth) {
        case .constant(let value): return .constant(value ? 1 : 0)
        case .code(let code): return .computed(.init { code.run($0, $1, &$2) ? 1 : 0 })
        }
    }

    /// `a + b - c ...` (one precedence), one level deep whatever its length: the operands' code in
    /// an array, applied left to right in one loop; a constant when every operand is one.
    private func arithmeticChain(_ first: Expression, _ links: [ChainLink], depth: Int) throws(Failure)
        -> NumberNode
    {
        let start = try number(first, depth: depth + 1)
        var nodes = [start]
        var steps: [(op: BinaryOperator, operand: NumberFunction)] = []
        for link in links {
            let node = try number(link.operand, depth: depth + 1)
            nodes.append(node)
            steps.append((link.op, Self.function(node)))
        }
        let head = Self.function(start)
        let code = NumberFunction { [steps] current, previous, divisionByZero in
            var value = head.run(current, previous, &divisionByZero)
            for step in steps {
                value = Self.arithmetic(
                    step.op, value, step.operand.run(current, previous, &divisionByZero), &divisionByZero)
            }
            return value
        }
        return Self.fold(code, nodes)
    }

    private static func function(_ node: NumberNode) -> NumberFunction {
        switch node {
        case .constant(let value): NumberFunction { _, _, _ in value }
        case .current: NumberFunction { CurrentNumber().read($0, $1, &$2) }
        case .operand(let operand): NumberFunction { current, previous, _ in operand.number(current, previous) }
        case .computed(let code): code
        }
    }

    /// One arithmetic step, as `Arithmetic` computes it.
    static func arithmetic(_ op: BinaryOperator, _ a: Double, _ b: Double, _ divisionByZero: inout Bool) -> Double {
        switch op {
        case .multiply: return a * b
        case .add: return a + b
        case .subtract: return a - b
        case .divide, .remainder:
            if b == 0, !a.isNaN {
                divisionByZero = true
                return .nan
            }
            return op == .divide ? a / b : a.truncatingRemainder(dividingBy: b)
        case .shiftLeft, .shiftRight, .bitAnd, .bitXor, .bitOr:
            guard let x = integer(a), let y = integer(b) else { return .nan }
            switch op {
            case .shiftLeft: return Double(x << min(max(y, -64), 64))
            case .shiftRight: return Double(x >> min(max(y, -64), 64))
            case .bitAnd: return Double(x & y)
            case .bitXor: return Double(x ^ y)
            default: return Double(x | y)
            }
        default: return .nan
        }
    }

    /// Whether an expression always yields 0 or 1, never a missing value.
    private static func isTruthValued(_ expression: Expression) -> Bool {
        switch expression {
        case .binary(let op, _, _, _):
            switch op {
            case .less, .lessOrEqual, .greater, .greaterOrEqual, .equal, .notEqual, .matches, .notMatches, .isIn,
                .notIn, .like, .notLike, .and, .or:
                return true
            default:
                return false
            }
        case .chain(_, let links):
            return links[0].op == .and || links[0].op == .or
        case .unary(.not, let operand, _):
            return isTruthValued(operand)
        default:
            return false
        }
    }

    /// A constant when every operand is one and the operation does not divide by zero.
    private static func fold(_ code: NumberFunction, _ operands: [NumberNode]) -> NumberNode {
        guard operands.allSatisfy(\.isConstant) else { return .computed(code) }
        var divisionByZero = false
        let value = code.run(.number(.nan), nil, &divisionByZero)
        return divisionByZero ? .computed(code) : .constant(value)
    }

    private static func fold(_ code: TruthFunction, constant: Bool) -> TruthNode {
        guard constant else { return .code(code) }
        var divisionByZero = false
        let value = code.run(.number(.nan), nil, &divisionByZero)
        return divisionByZero ? .code(code) : .constant(value)
    }

    /// A number as an `Int64` for the bitwise operators: truncated toward zero and clamped;
    /// nil (missing) for NaN and the infinities.
    @inline(__always)
    static func integer(_ value: Double) -> Int64? {
        guard value.isFinite else { return nil }
        if value >= 0x1p63 { return .max }
        if value <= -0x1p63 { return .min }
        return Int64(value)
    }

    // MARK: Comparisons

    private func staticType(_ expression: Expression) -> StaticType {
        switch expression {
        case .literal(.number, _): return .number
        case .literal(.string, _): return .string
        case .list: return .list
        case .unary, .binary, .chain: return .number
        case .variable(let reference, _):
            guard let variable else { return .unknown }
            let type: ResourceVariable.ValueType?
            switch (variable.kind, reference.field) {
            case (.scalar(let scalar), nil): type = scalar
            case (.structured(let fields), .index(let n)): type = n >= 0 && n < fields.count ? fields[n].type : nil
            case (.structured(let fields), .name(let name)): type = fields.first { $0.name == name }?.type
            default: type = nil
            }
            switch type {
            case .number: return .number
            case .string: return .string
            case nil: return .unknown
            }
        }
    }

    private func comparison(_ op: BinaryOperator, _ lhs: Expression, _ rhs: Expression, depth: Int)
        throws(Failure) -> TruthNode
    {
        switch (staticType(lhs), staticType(rhs)) {
        case (.list, _), (_, .list):
            return .constant(false)
        case (.number, _), (_, .number):
            let left = try number(lhs, depth: depth + 1)
            let right = try number(rhs, depth: depth + 1)
            return Self.fold(
                left.visit(NumberComparison(op: op, right: right)), constant: left.isConstant && right.isConstant)
        case (.string, _), (_, .string):
            let left = string(lhs)
            let right = string(rhs)
            guard let code = left.visit(StringComparison(op: op, right: right)) ?? nil else { return .constant(false) }
            return Self.fold(code, constant: left.isConstant && right.isConstant)
        case (.unknown, .unknown):
            // Two operands whose types only the sample tells.
            guard case .variable(let left, _) = lhs, case .variable(let right, _) = rhs else { return .constant(false) }
            let l = OperandReader(left, variable: variable)
            let r = OperandReader(right, variable: variable)
            return .code(
                .init { current, previous, _ in
                    guard let a = l.scalar(current, previous), let b = r.scalar(current, previous) else { return false }
                    return Self.compare(op, a, b)
                })
        }
    }

    private func string(_ expression: Expression) -> StringNode {
        switch expression {
        case .literal(.string(let value), _): .constant(value)
        case .variable(let reference, _): .operand(OperandReader(reference, variable: variable))
        default: .missing
        }
    }

    /// A comparison decided at run time: numbers with numbers, strings with strings.
    private static func compare(_ op: BinaryOperator, _ lhs: SampleValue.Scalar, _ rhs: SampleValue.Scalar) -> Bool {
        switch (lhs, rhs) {
        case (.number(let a), .number(let b)):
            switch op {
            case .less: return a < b
            case .lessOrEqual: return a <= b
            case .greater: return a > b
            case .greaterOrEqual: return a >= b
            case .equal: return a == b
            case .notEqual: return a != b && !a.isNaN && !b.isNaN
            default: return false
            }
        case (.string(let a), .string(let b)):
            switch op {
            case .less: return a < b
            case .lessOrEqual: return a <= b
            case .greater: return a > b
            case .greaterOrEqual: return a >= b
            case .equal: return a == b
            case .notEqual: return a != b
            default: return false
            }
        default:
            return false
        }
    }

    // MARK: IN, =~, LIKE

    private func membership(_ negated: Bool, _ lhs: Expression, _ rhs: Expression, at: Int, depth: Int)
        throws(Failure) -> TruthNode
    {
        guard case .list(let items, _) = rhs else {
            // One value on the right (validation refuses it): equality.
            return try comparison(negated ? .notEqual : .equal, lhs, rhs, depth: depth)
        }
        var numbers: [Double] = []
        var strings: [String] = []
        for item in items {
            switch item {
            case .number(let value): numbers.append(value)
            case .string(let value): strings.append(value)
            }
        }
        let type = staticType(lhs)
        if type == .number || (type == .unknown && strings.isEmpty && !numbers.isEmpty) {
            let left = try number(lhs, depth: depth + 1)
            return Self.fold(
                left.visit(NumberMembership(items: numbers, negated: negated)), constant: left.isConstant)
        }
        if type == .string || (type == .unknown && numbers.isEmpty && !strings.isEmpty) {
            let left = string(lhs)
            guard let code = left.visit(StringMembership(items: strings, negated: negated)) else {
                return .constant(false)
            }
            return Self.fold(code, constant: left.isConstant)
        }
        // An operand whose type only the sample tells, against an empty or mixed list.
        guard case .variable(let reference, _) = lhs else { return .constant(false) }
        let operand = OperandReader(reference, variable: variable)
        return .code(
            .init { [numbers, strings] current, previous, _ in
                switch operand.scalar(current, previous) {
                case .number(let value)?: !value.isNaN && numbers.contains(value) != negated
                case .string(let value)?: strings.contains(value) != negated
                case nil: false
                }
            })
    }

    private func regularExpression(_ negated: Bool, _ lhs: Expression, _ rhs: Expression) throws(Failure)
        -> TruthNode
    {
        let subject = string(lhs)
        switch string(rhs) {
        case .missing:
            return .constant(false)
        case .constant(let pattern):
            let expression: PosixRegularExpression
            do {
                expression = try PosixRegularExpression(pattern)
            } catch {
                throw Failure(offset: rhs.offset, message: "regular expression does not compile: \(error.message)")
            }
            guard let code = subject.visit(Matching(negated: negated) { expression.matches($0) }) else {
                return .constant(false)
            }
            return Self.fold(code, constant: subject.isConstant)
        case .operand(let operand):
            // A pattern read from the sample is compiled at each evaluation; one that does not
            // compile makes the comparison false.
            guard let code = subject.visit(DynamicMatching(pattern: operand, negated: negated, regular: true)) else {
                return .constant(false)
            }
            return .code(code)
        }
    }

    private func like(_ negated: Bool, _ lhs: Expression, _ rhs: Expression) -> TruthNode {
        let subject = string(lhs)
        switch string(rhs) {
        case .missing:
            return .constant(false)
        case .constant(let text):
            let pattern = LikePattern(text)
            guard let code = subject.visit(Matching(negated: negated) { pattern.matches($0) }) else {
                return .constant(false)
            }
            return Self.fold(code, constant: subject.isConstant)
        case .operand(let operand):
            guard let code = subject.visit(DynamicMatching(pattern: operand, negated: negated, regular: false)) else {
                return .constant(false)
            }
            return .code(code)
        }
    }

    private func checkDepth(_ expression: Expression, _ depth: Int) throws(Failure) {
        if depth > Self.maximumDepth {
            throw Failure(offset: expression.offset, message: "expression nested too deeply")
        }
    }
}
