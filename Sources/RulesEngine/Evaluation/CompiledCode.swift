// Compiled predicate code is a tree of closures that take the instance's current sample, its
// previous sample (nil on the first) and a flag to set on a division by zero. The samples are
// passed as borrowed parameters, so reading a field neither copies the sample nor retains it.
//
// Inside the code a missing number is NaN: IEEE arithmetic carries it through `+ - * /` and
// makes `< <= > >= ==` false by itself; `!=` and truth tests check for it.

extension PredicateCompiler {
    typealias TruthCode =
        @Sendable (_ current: SampleValue, _ previous: SampleValue?, _ divisionByZero: inout Bool) -> Bool
    typealias NumberCode =
        @Sendable (_ current: SampleValue, _ previous: SampleValue?, _ divisionByZero: inout Bool) ->
        Double

    /// Compiled code, wrapped in a struct: a closure that goes through a generic (a visitor's
    /// `Output`, an `Optional`) would otherwise keep a reabstraction thunk around it for good.
    struct TruthFunction: Sendable {
        let run: TruthCode
    }

    struct NumberFunction: Sendable {
        let run: NumberCode
    }

    // MARK: Number sources
    //
    // The compiler turns each operand of a comparison or an arithmetic operator into one of these
    // concrete types and builds the operator's closure generically over them (specialised: the
    // dispatch in `PredicateCompiler` names the concrete types), so that `X > 70` becomes one
    // closure that reads the sample and compares, with no further call.

    protocol NumberSource: Sendable {
        func read(_ current: SampleValue, _ previous: SampleValue?, _ divisionByZero: inout Bool) -> Double
    }

    struct ConstantNumber: NumberSource {
        let value: Double

        @inline(__always)
        func read(_ current: SampleValue, _ previous: SampleValue?, _ divisionByZero: inout Bool) -> Double { value }
    }

    /// `X` on a single value: the fast path.
    struct CurrentNumber: NumberSource {
        @inline(__always)
        func read(_ current: SampleValue, _ previous: SampleValue?, _ divisionByZero: inout Bool) -> Double {
            if case .scalar(.number(let value)) = current { return value }
            return .nan
        }
    }

    struct OperandNumber: NumberSource {
        let operand: OperandReader

        @inline(__always)
        func read(_ current: SampleValue, _ previous: SampleValue?, _ divisionByZero: inout Bool) -> Double {
            operand.number(current, previous)
        }
    }

    struct ComputedNumber: NumberSource {
        let code: NumberFunction

        @inline(__always)
        func read(_ current: SampleValue, _ previous: SampleValue?, _ divisionByZero: inout Bool) -> Double {
            code.run(current, previous, &divisionByZero)
        }
    }

    // MARK: String sources

    protocol StringSource: Sendable {
        func read(_ current: SampleValue, _ previous: SampleValue?) -> String?
    }

    struct ConstantString: StringSource {
        let value: String

        @inline(__always)
        func read(_ current: SampleValue, _ previous: SampleValue?) -> String? { value }
    }

    struct OperandString: StringSource {
        let operand: OperandReader

        @inline(__always)
        func read(_ current: SampleValue, _ previous: SampleValue?) -> String? { operand.string(current, previous) }
    }
}
