/// One value of a resource variable's instance, as a monitor or a scenario observed it.
public enum SampleValue: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Scalar: Sendable, Hashable, Codable, CustomStringConvertible {
        case number(Double)
        case string(String)

        public var description: String {
            switch self {
            case .number(let value):
                value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
            case .string(let value): value
            }
        }
    }

    public struct Field: Sendable, Hashable, Codable {
        public var name: String
        public var value: Scalar

        public init(_ name: String, _ value: Scalar) {
            self.name = name
            self.value = value
        }
    }

    /// A single number or string: `X`.
    case scalar(Scalar)
    /// A structured value: `X@N` is field N in this order, `X.Name` the field of that name.
    case fields([Field])

    public static func number(_ value: Double) -> SampleValue { .scalar(.number(value)) }
    public static func string(_ value: String) -> SampleValue { .scalar(.string(value)) }

    public var description: String {
        switch self {
        case .scalar(let scalar): scalar.description
        case .fields(let fields): fields.map { "\($0.name)=\($0.value)" }.joined(separator: ";")
        }
    }
}
