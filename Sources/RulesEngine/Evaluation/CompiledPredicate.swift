import RulesParser

/// A predicate or rearm predicate compiled once into a tree of specialised closures, ready to be
/// evaluated against every sample of every instance (SPEC section 4).
///
/// Semantics, where SPEC leaves a choice:
/// - **Truth.** A number is true when it is not zero. Comparisons, `&&`, `||`, `IN`, `LIKE` and
///   `=~` give 1 or 0; `&&` and `||` short-circuit as in C.
/// - **Numbers** are `Double`s: `/` divides without truncating, `%` is `fmod` (for whole numbers
///   the same as C's integer remainder, with the sign of the dividend). `& ^ | ~ << >>` work on
///   `Int64`: the operands are truncated toward zero and clamped to the `Int64` range. A shift by
///   64 or more gives 0 (-1 for a negative number shifted right); a negative count shifts the
///   other way.
/// - **Strings** compare with strings, lexicographically by Unicode scalar (as Swift compares
///   `String`s: UTF-8 byte order of canonically equivalent text). A number never equals a
///   string.
/// - **Missing values.** An operand with no value (`X@P` on the first sample, a field the sample
///   does not have, a string where a number is needed, a number where a string is needed, a
///   NaN, an infinite number used by a bitwise operator) is *missing*. Arithmetic and the unary
///   operators on a missing operand give missing (`!X@P` too); every comparison (`< <= > >= ==
///   != =~ !~ IN NOT IN LIKE NOT LIKE`) with a missing side is false, so `!(X@P > 5)` is true on
///   the first sample; `&&`, `||` and the result of the whole expression read a missing value as
///   false. A list anywhere but on the right of `IN` is missing too.
/// - **Division by zero** (`/` or `%` with a zero divisor and a dividend that has a value) makes
///   the whole expression false, whatever else it holds (`X / 0 > 1 || 1` is false), and is
///   reported in `PredicateEvaluation.divisionByZero` so the caller can log it once. A division
///   that short-circuiting skips is not performed.
/// - **Qualifiers** need history: they are applied by `InstanceArming`, not here.
///
/// Evaluation never traps and never throws.
public struct CompiledPredicate: Sendable {
    /// What was compiled.
    public let predicate: Predicate
    private let code: PredicateCompiler.TruthCode

    /// Compiles `predicate`; `variable` (from the catalogue, nil when unknown) lets comparisons
    /// between two fields pick the number or string comparison at compile time.
    ///
    /// Throws for a regular expression that does not compile, which validation reports before
    /// rules are loaded (R015 / R016), and for a tree deeper than 1000 levels, which the parser
    /// never builds.
    public init(_ predicate: Predicate, variable: ResourceVariable? = nil) throws(PredicateCompilationError) {
        self.predicate = predicate
        let compiler = PredicateCompiler(variable: variable)
        switch try compiler.truth(predicate.expression, depth: 0) {
        case .constant(let value): code = { _, _, _ in value }
        case .code(let code): self.code = code.run
        }
    }

    /// Parses and compiles predicate text, for tests and tools. Throws `PredicateSyntaxError` or
    /// `PredicateCompilationError`.
    public init(parsing text: String, variable: ResourceVariable? = nil) throws {
        try self.init(PredicateParser.parse(text), variable: variable)
    }

    /// The qualifier appended to the expression, applied by `InstanceArming`.
    public var qualifier: Qualifier? { predicate.qualifier }

    /// Evaluates the expression (not its qualifier) on an instance's current sample and the
    /// sample observed before it (nil on the first).
    public func evaluate(_ current: SampleValue, previous: SampleValue? = nil) -> PredicateEvaluation {
        var divisionByZero = false
        let value = code(current, previous, &divisionByZero)
        return divisionByZero ? .divisionByZero : (value ? .true : .false)
    }
}

/// The result of evaluating a predicate once.
public struct PredicateEvaluation: Sendable, Hashable, CustomStringConvertible {
    /// Whether the expression holds. False whenever `divisionByZero` is set.
    public var isTrue: Bool
    /// A division or remainder by zero made the whole expression false.
    public var divisionByZero: Bool

    public init(isTrue: Bool, divisionByZero: Bool) {
        self.isTrue = isTrue && !divisionByZero
        self.divisionByZero = divisionByZero
    }

    public static let `true` = PredicateEvaluation(isTrue: true, divisionByZero: false)
    public static let `false` = PredicateEvaluation(isTrue: false, divisionByZero: false)
    public static let divisionByZero = PredicateEvaluation(isTrue: false, divisionByZero: true)

    public var description: String {
        divisionByZero ? "false (division by zero)" : isTrue ? "true" : "false"
    }
}

/// A predicate that cannot be compiled: a regular expression `regcomp` refuses (`offset` is the
/// byte offset of the pattern's string in the predicate text), or a tree built too deep.
public struct PredicateCompilationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var offset: Int
    public var message: String

    public init(offset: Int, message: String) {
        self.offset = offset
        self.message = message
    }

    public var description: String { "column \(offset + 1): \(message)" }
}
