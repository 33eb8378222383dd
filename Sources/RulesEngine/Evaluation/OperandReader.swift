import RulesParser

/// An operand `X`, `X@P`, `X@N`, `X.Name` or `X.Name@P`, resolved for reading.
///
/// It names nothing (missing) in `X` of a structured value, a field of a single value, a field
/// number or name the sample lacks, and `@P` before any previous sample. A sample should not
/// have two fields of one name: if it has, the one at the catalogue's position for the name is
/// read, else the first.
struct OperandReader: Sendable {
    enum Selector: Sendable {
        case whole
        case index(Int)
        /// A field by name; `hint` is where the catalogue puts it (-1: unknown), tried first.
        case name(String, hint: Int)
    }

    let selector: Selector
    let previous: Bool

    /// `variable` gives the position of a named field, so that reading it usually takes one
    /// comparison of names.
    init(_ reference: VariableReference, variable: ResourceVariable?) {
        switch reference.field {
        case nil: selector = .whole
        case .index(let n): selector = .index(n)
        case .name(let name):
            var hint = -1
            if case .structured(let fields)? = variable?.kind {
                hint = fields.firstIndex { $0.name == name } ?? -1
            }
            selector = .name(name, hint: hint)
        }
        previous = reference.previous
    }

    /// Where the operand's field is in `fields`, nil when it is not there.
    @inline(__always)
    private func position(in fields: [SampleValue.Field]) -> Int? {
        switch selector {
        case .whole:
            return nil
        case .index(let n):
            return n >= 0 && n < fields.count ? n : nil
        case .name(let name, let hint):
            if hint >= 0, hint < fields.count, fields[hint].name == name { return hint }
            return fields.firstIndex { $0.name == name }
        }
    }

    /// The operand as a number; NaN (missing) when absent or a string.
    @inline(__always)
    func number(_ current: SampleValue, _ previous: SampleValue?) -> Double {
        if self.previous {
            guard let previous else { return .nan }
            return number(previous)
        }
        return number(current)
    }

    @inline(__always)
    private func number(_ value: SampleValue) -> Double {
        switch value {
        case .scalar(let scalar):
            guard case .whole = selector, case .number(let number) = scalar else { return .nan }
            return number
        case .fields(let fields):
            guard let index = position(in: fields), case .number(let number) = fields[index].value else { return .nan }
            return number
        }
    }

    /// The operand as a string; nil (missing) when absent or a number.
    @inline(__always)
    func string(_ current: SampleValue, _ previous: SampleValue?) -> String? {
        if self.previous {
            guard let previous else { return nil }
            return string(previous)
        }
        return string(current)
    }

    @inline(__always)
    private func string(_ value: SampleValue) -> String? {
        switch value {
        case .scalar(let scalar):
            guard case .whole = selector, case .string(let string) = scalar else { return nil }
            return string
        case .fields(let fields):
            guard let index = position(in: fields), case .string(let string) = fields[index].value else { return nil }
            return string
        }
    }

    /// The operand as it is, for comparisons whose types only the sample tells.
    func scalar(_ current: SampleValue, _ previous: SampleValue?) -> SampleValue.Scalar? {
        if self.previous {
            guard let previous else { return nil }
            return scalar(previous)
        }
        return scalar(current)
    }

    private func scalar(_ value: SampleValue) -> SampleValue.Scalar? {
        switch value {
        case .scalar(let scalar):
            guard case .whole = selector else { return nil }
            return scalar
        case .fields(let fields):
            guard let index = position(in: fields) else { return nil }
            return fields[index].value
        }
    }
}
