import RulesParser

// The closures of the operators, generic over their operands' concrete source types. Each
// visitor receives an operand as a concrete type from `NumberNode.visit` /
// `StringNode.visit`, so every closure here is compiled for the exact sources it reads.

extension PredicateCompiler {
    protocol NumberVisitor {
        associatedtype Output
        func visit<Source: NumberSource>(_ source: Source) -> Output
    }

    protocol StringVisitor {
        associatedtype Output
        func visit<Source: StringSource>(_ source: Source) -> Output
    }

    /// A number as a truth value: non-zero and not missing.
    struct IsTrue: NumberVisitor {
        func visit<Source: NumberSource>(_ source: Source) -> TruthFunction {
            TruthFunction { current, previous, divisionByZero in
                let value = source.read(current, previous, &divisionByZero)
                return value != 0 && !value.isNaN
            }
        }
    }

    /// `!` of a number in a truth context: zero (a missing number stays missing, so false).
    struct IsZero: NumberVisitor {
        func visit<Source: NumberSource>(_ source: Source) -> TruthFunction {
            TruthFunction { source.read($0, $1, &$2) == 0 }
        }
    }

    struct Unary: NumberVisitor {
        let op: UnaryOperator

        func visit<Source: NumberSource>(_ source: Source) -> NumberFunction {
            switch op {
            case .negate:
                return .init { -source.read($0, $1, &$2) }
            case .complement:
                return .init { current, previous, divisionByZero in
                    guard let value = PredicateCompiler.integer(source.read(current, previous, &divisionByZero)) else {
                        return .nan
                    }
                    return Double(~value)
                }
            case .not:
                return .init { current, previous, divisionByZero in
                    let value = source.read(current, previous, &divisionByZero)
                    return value.isNaN ? .nan : value == 0 ? 1 : 0
                }
            }
        }
    }

    struct Arithmetic: NumberVisitor {
        let op: BinaryOperator
        let right: NumberNode

        func visit<Left: NumberSource>(_ left: Left) -> NumberFunction {
            right.visit(Both(op: op, left: left))
        }

        struct Both<Left: NumberSource>: NumberVisitor {
            let op: BinaryOperator
            let left: Left

            func visit<Right: NumberSource>(_ right: Right) -> NumberFunction {
                let left = self.left
                switch op {
                case .multiply:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a * right.read(current, previous, &divisionByZero)
                    }
                case .add:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a + right.read(current, previous, &divisionByZero)
                    }
                case .subtract:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a - right.read(current, previous, &divisionByZero)
                    }
                case .divide:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        let b = right.read(current, previous, &divisionByZero)
                        if b == 0, !a.isNaN {
                            divisionByZero = true
                            return .nan
                        }
                        return a / b
                    }
                case .remainder:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        let b = right.read(current, previous, &divisionByZero)
                        if b == 0, !a.isNaN {
                            divisionByZero = true
                            return .nan
                        }
                        return a.truncatingRemainder(dividingBy: b)
                    }
                // Swift's shifts never trap; the count is clamped first all the same.
                case .shiftLeft: return integerOperation { $0 << min(max($1, -64), 64) }
                case .shiftRight: return integerOperation { $0 >> min(max($1, -64), 64) }
                case .bitAnd: return integerOperation { $0 & $1 }
                case .bitXor: return integerOperation { $0 ^ $1 }
                case .bitOr: return integerOperation { $0 | $1 }
                default: return .init { _, _, _ in .nan }
                }

                func integerOperation(_ operation: @escaping @Sendable (Int64, Int64) -> Int64) -> NumberFunction {
                    NumberFunction { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        let b = right.read(current, previous, &divisionByZero)
                        guard let x = PredicateCompiler.integer(a), let y = PredicateCompiler.integer(b) else {
                            return .nan
                        }
                        return Double(operation(x, y))
                    }
                }
            }
        }
    }

    struct NumberComparison: NumberVisitor {
        let op: BinaryOperator
        let right: NumberNode

        func visit<Left: NumberSource>(_ left: Left) -> TruthFunction {
            right.visit(Both(op: op, left: left))
        }

        struct Both<Left: NumberSource>: NumberVisitor {
            let op: BinaryOperator
            let left: Left

            func visit<Right: NumberSource>(_ right: Right) -> TruthFunction {
                let left = self.left
                switch op {
                case .less:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a < right.read(current, previous, &divisionByZero)
                    }
                case .lessOrEqual:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a <= right.read(current, previous, &divisionByZero)
                    }
                case .greater:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a > right.read(current, previous, &divisionByZero)
                    }
                case .greaterOrEqual:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a >= right.read(current, previous, &divisionByZero)
                    }
                case .equal:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        return a == right.read(current, previous, &divisionByZero)
                    }
                case .notEqual:
                    return .init { current, previous, divisionByZero in
                        let a = left.read(current, previous, &divisionByZero)
                        let b = right.read(current, previous, &divisionByZero)
                        return a != b && !a.isNaN && !b.isNaN
                    }
                default:
                    return .init { _, _, _ in false }
                }
            }
        }
    }

    struct StringComparison: StringVisitor {
        let op: BinaryOperator
        let right: StringNode

        /// nil when the right side is not a string.
        func visit<Left: StringSource>(_ left: Left) -> TruthFunction? {
            right.visit(Both(op: op, left: left))
        }

        struct Both<Left: StringSource>: StringVisitor {
            let op: BinaryOperator
            let left: Left

            func visit<Right: StringSource>(_ right: Right) -> TruthFunction {
                let left = self.left
                switch op {
                case .less:
                    return .init { current, previous, _ in
                        guard let a = left.read(current, previous), let b = right.read(current, previous) else {
                            return false
                        }
                        return a < b
                    }
                case .lessOrEqual:
                    return .init { current, previous, _ in
                        guard let a = left.read(current, previous), let b = right.read(current, previous) else {
                            return false
                        }
                        return a <= b
                    }
                case .greater:
                    return .init { current, previous, _ in
                        guard let a = left.read(current, previous), let b = right.read(current, previous) else {
                            return false
                        }
                        return a > b
                    }
                case .greaterOrEqual:
                    return .init { current, previous, _ in
                        guard let a = left.read(current, previous), let b = right.read(current, previous) else {
                            return false
                        }
                        return a >= b
                    }
                case .equal:
                    return .init { current, previous, _ in
                        guard let a = left.read(current, previous), let b = right.read(current, previous) else {
                            return false
                        }
                        return a == b
                    }
                case .notEqual:
                    return .init { current, previous, _ in
                        guard let a = left.read(current, previous), let b = right.read(current, previous) else {
                            return false
                        }
                        return a != b
                    }
                default:
                    return .init { _, _, _ in false }
                }
            }
        }
    }

    /// `IN` / `NOT IN` a list of numbers: a linear scan for short lists, a set for long ones.
    struct NumberMembership: NumberVisitor {
        let items: [Double]
        let negated: Bool

        func visit<Source: NumberSource>(_ source: Source) -> TruthFunction {
            let negated = self.negated
            if items.count > 8 {
                let set = Set(items)
                return .init { current, previous, divisionByZero in
                    let value = source.read(current, previous, &divisionByZero)
                    return !value.isNaN && set.contains(value) != negated
                }
            }
            let items = self.items
            return .init { current, previous, divisionByZero in
                let value = source.read(current, previous, &divisionByZero)
                return !value.isNaN && items.contains(value) != negated
            }
        }
    }

    struct StringMembership: StringVisitor {
        let items: [String]
        let negated: Bool

        func visit<Source: StringSource>(_ source: Source) -> TruthFunction {
            let negated = self.negated
            if items.count > 8 {
                let set = Set(items)
                return .init { current, previous, _ in
                    guard let value = source.read(current, previous) else { return false }
                    return set.contains(value) != negated
                }
            }
            let items = self.items
            return .init { current, previous, _ in
                guard let value = source.read(current, previous) else { return false }
                return items.contains(value) != negated
            }
        }
    }

    /// `=~` / `LIKE` with a pattern compiled once.
    struct Matching: StringVisitor {
        let negated: Bool
        let matches: @Sendable (String) -> Bool

        func visit<Source: StringSource>(_ source: Source) -> TruthFunction {
            let negated = self.negated
            let matches = self.matches
            return .init { current, previous, _ in
                guard let value = source.read(current, previous) else { return false }
                return matches(value) != negated
            }
        }
    }

    /// `=~` / `LIKE` with a pattern read from the sample, compiled at each evaluation. A regular
    /// expression that does not compile makes the comparison false.
    struct DynamicMatching: StringVisitor {
        let pattern: OperandReader
        let negated: Bool
        let regular: Bool

        func visit<Source: StringSource>(_ source: Source) -> TruthFunction {
            let pattern = self.pattern
            let negated = self.negated
            if regular {
                return .init { current, previous, _ in
                    guard let value = source.read(current, previous), let text = pattern.string(current, previous),
                        let expression = try? PosixRegularExpression(text)
                    else { return false }
                    return expression.matches(value) != negated
                }
            }
            return .init { current, previous, _ in
                guard let value = source.read(current, previous), let text = pattern.string(current, previous) else {
                    return false
                }
                return LikePattern(text).matches(value) != negated
            }
        }
    }
}
