#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Checks that a predicate compares values of the right types for its resource variable
/// (R023), and that its regular expressions compile (reported with the syntax errors).
public enum PredicateTypeChecker {
    public struct Problem: Sendable, Hashable {
        public enum Kind: Sendable, Hashable {
            /// A field or value of the wrong type: R023.
            case type
            /// A regular expression that does not compile: a syntax error of the predicate.
            case regularExpression
        }

        public var kind: Kind
        public var offset: Int
        public var message: String
    }

    private indirect enum Inferred: Equatable {
        case number
        case string
        case list(ResourceVariable.ValueType?)
        case structured
        /// Not known before run time (an unknown or dynamic variable): never an error.
        case unknown

        var name: String {
            switch self {
            case .number: "a number"
            case .string: "a string"
            case .list: "a list"
            case .structured: "a structured value"
            case .unknown: "a value"
            }
        }

        init(_ type: ResourceVariable.ValueType) {
            self = type == .number ? .number : .string
        }
    }

    /// `variable` is nil when the variable is unknown: then only the literals are checked.
    public static func check(_ predicate: Predicate, variable: ResourceVariable?) -> [Problem] {
        var cache: [String: String?] = [:]
        return check(predicate, variable: variable, regularExpressions: &cache)
    }

    /// As `check(_:variable:)`, remembering in `regularExpressions` what `regcomp` said of each
    /// pattern, for files that repeat their patterns.
    public static func check(
        _ predicate: Predicate, variable: ResourceVariable?, regularExpressions: inout [String: String?]
    ) -> [Problem] {
        var problems: [Problem] = []
        var checker = Checker(variable: variable, regularExpressions: regularExpressions)
        let type = checker.infer(predicate.expression, &problems)
        requireTruth(type, predicate.expression, &problems)
        regularExpressions = checker.regularExpressions
        return problems
    }

    /// The variable being checked against and the patterns compiled so far.
    private struct Checker {
        let variable: ResourceVariable?
        var regularExpressions: [String: String?]

        mutating func infer(_ expression: Expression, _ problems: inout [Problem]) -> Inferred {
            PredicateTypeChecker.infer(expression, variable, &problems, &self)
        }

        mutating func regularExpressionError(_ pattern: String) -> String? {
            if let known = regularExpressions[pattern] { return known }
            let error = PredicateTypeChecker.regularExpressionError(pattern)
            regularExpressions[pattern] = .some(error)
            return error
        }
    }

    private static func requireTruth(_ type: Inferred, _ expression: Expression, _ problems: inout [Problem]) {
        switch type {
        case .number, .unknown: break
        case .structured:
            problems.append(
                Problem(
                    kind: .type, offset: expression.offset,
                    message: "X is a structured value: select a field with X@N or X.Name"))
        default:
            problems.append(
                Problem(
                    kind: .type, offset: expression.offset, message: "\(type.name) is not a truth value; compare it"))
        }
    }

    private static func infer(
        _ expression: Expression, _ variable: ResourceVariable?, _ problems: inout [Problem], _ checker: inout Checker
    ) -> Inferred {
        switch expression {
        case .literal(.number, _): return .number
        case .literal(.string, _): return .string
        case .list(let items, let at):
            let hasNumber = items.contains { if case .number = $0 { true } else { false } }
            let hasString = items.contains { if case .string = $0 { true } else { false } }
            if hasNumber && hasString {
                problems.append(Problem(kind: .type, offset: at, message: "list mixes numbers and strings"))
                return .list(nil)
            }
            return .list(hasNumber ? .number : hasString ? .string : nil)
        case .variable(let reference, let at):
            return infer(reference, at, variable, &problems)
        case .unary(let op, let operand, let at):
            let type = infer(operand, variable, &problems, &checker)
            if op == .not {
                requireTruth(type, operand, &problems)
            } else if !isNumeric(type) {
                problems.append(
                    Problem(kind: .type, offset: at, message: "'\(op.rawValue)' needs a number, not \(type.name)"))
            }
            return .number
        case .binary(let op, let lhs, let rhs, let at):
            let left = infer(lhs, variable, &problems, &checker)
            let right = infer(rhs, variable, &problems, &checker)
            checkBinary(op, left, right, lhs, rhs, at, &problems, &checker)
            return .number
        case .chain(let first, let links):
            // As the nested tree it stands for, in the same order: each link checks the value so
            // far (a number after the first link) against its operand.
            var left = infer(first, variable, &problems, &checker)
            for link in links {
                let right = infer(link.operand, variable, &problems, &checker)
                checkBinary(link.op, left, right, first, link.operand, link.at, &problems, &checker)
                left = .number
            }
            return .number
        }
    }

    private static func isNumeric(_ type: Inferred) -> Bool {
        type == .number || type == .unknown
    }

    private static func infer(
        _ reference: VariableReference, _ at: Int, _ variable: ResourceVariable?, _ problems: inout [Problem]
    ) -> Inferred {
        guard let variable else { return .unknown }
        switch (variable.kind, reference.field) {
        case (.dynamic, _): return .unknown
        case (.scalar(let type), nil): return Inferred(type)
        case (.scalar, .some):
            problems.append(
                Problem(
                    kind: .type, offset: at,
                    message: "\(variable.name) is a single value and has no fields; use X"))
            return .unknown
        case (.structured, nil): return .structured
        case (.structured(let fields), .index(let n)):
            guard n < fields.count else {
                problems.append(
                    Problem(
                        kind: .type, offset: at,
                        message:
                            "\(variable.name) has no field \(n) (fields 0 to \(fields.count - 1): \(fields.map(\.name).joined(separator: ", ")))"
                    ))
                return .unknown
            }
            return Inferred(fields[n].type)
        case (.structured(let fields), .name(let name)):
            guard let field = fields.first(where: { $0.name == name }) else {
                problems.append(
                    Problem(
                        kind: .type, offset: at,
                        message:
                            "\(variable.name) has no field \(name.quotedForMessage()) (it has \(fields.map(\.name).joined(separator: ", ")))"
                    ))
                return .unknown
            }
            return Inferred(field.type)
        }
    }

    private static func checkBinary(
        _ op: BinaryOperator, _ left: Inferred, _ right: Inferred, _ lhs: Expression, _ rhs: Expression,
        _ at: Int, _ problems: inout [Problem], _ checker: inout Checker
    ) {
        func fail(_ message: String) {
            problems.append(Problem(kind: .type, offset: at, message: message))
        }
        if case .list = left {
            fail("a list can only stand on the right of IN or NOT IN")
            return
        }
        if case .structured = left {
            requireTruth(left, lhs, &problems)
            return
        }
        if case .structured = right {
            requireTruth(right, rhs, &problems)
            return
        }
        switch op {
        case .isIn, .notIn:
            guard case .list(let element) = right else {
                if right != .unknown {
                    fail("'\(op.rawValue)' needs a list on its right, like {1, 2}, not \(right.name)")
                }
                return
            }
            if let element, left != .unknown, left != Inferred(element) {
                fail(
                    "'\(op.rawValue)' compares \(left.name) with a list of \(element == .number ? "numbers" : "strings")"
                )
            }
        case _ where isList(right):
            fail("a list can only stand on the right of IN or NOT IN")
        case .matches, .notMatches, .like, .notLike:
            for (side, type) in [("left", left), ("right", right)] where type != .string && type != .unknown {
                fail("'\(op.rawValue)' compares strings, but its \(side) side is \(type.name)")
            }
            if op == .matches || op == .notMatches, case .literal(.string(let pattern), let patternAt) = rhs,
                let error = checker.regularExpressionError(pattern)
            {
                problems.append(
                    Problem(
                        kind: .regularExpression, offset: patternAt,
                        message: "regular expression does not compile: \(error)"))
            }
        case .less, .lessOrEqual, .greater, .greaterOrEqual, .equal, .notEqual:
            if left != .unknown, right != .unknown, left != right {
                fail("'\(op.rawValue)' compares \(left.name) with \(right.name)")
            }
        case .and, .or:
            requireTruth(left, lhs, &problems)
            requireTruth(right, rhs, &problems)
        default:
            for (side, type) in [("left", left), ("right", right)] where !isNumeric(type) {
                fail("'\(op.rawValue)' needs numbers, but its \(side) side is \(type.name)")
            }
        }
    }

    private static func isList(_ type: Inferred) -> Bool {
        if case .list = type { return true }
        return false
    }

    /// The message of `regcomp` for a POSIX extended regular expression, nil when it compiles;
    /// a pattern that would expand past a ``RegularExpressionCost`` limit is refused before
    /// `regcomp` sees it.
    public static func regularExpressionError(_ pattern: String) -> String? {
        if let tooComplex = RegularExpressionCost.problem(pattern) { return tooComplex }
        var regex = regex_t()
        let status = regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB)
        defer { if status == 0 { regfree(&regex) } }
        guard status != 0 else { return nil }
        var buffer = [CChar](repeating: 0, count: 256)
        regerror(status, &regex, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
