/// A resource variable a predicate can watch: its value's shape and the elements that name
/// an instance of it (SPEC section 5).
public struct ResourceVariable: Sendable, Hashable {
    /// The type of a value or of a field of a structured value.
    public enum ValueType: String, Sendable, Hashable {
        case number
        case string
    }

    public struct Field: Sendable, Hashable {
        public var name: String
        public var type: ValueType

        public init(_ name: String, _ type: ValueType) {
            self.name = name
            self.type = type
        }
    }

    public enum Kind: Sendable, Hashable {
        /// `X` is one value of this type.
        case scalar(ValueType)
        /// `X@N` / `X.Name` select a field; `X` alone is not a value to compare.
        case structured([Field])
        /// An administrator's variable whose fields are only known once it runs: no type checks.
        case dynamic
    }

    public var name: String
    public var kind: Kind
    public var instanceElements: [String]
    public var summary: String

    public init(name: String, kind: Kind, instanceElements: [String], summary: String) {
        self.name = name
        self.kind = kind
        self.instanceElements = instanceElements
        self.summary = summary
    }
}

/// The variables `validate` and the service know: the built-in ones, plus those the
/// configuration adds.
public struct VariableCatalogue: Sendable {
    public private(set) var variables: [String: ResourceVariable]

    public init(_ variables: [ResourceVariable]) {
        self.variables = Dictionary(variables.map { ($0.name, $0) }, uniquingKeysWith: { _, last in last })
    }

    public subscript(name: String) -> ResourceVariable? { variables[name] }

    /// The catalogue with `configured` added; a configured variable replaces a built-in one of
    /// the same name.
    public func adding(_ configured: [ResourceVariable]) -> VariableCatalogue {
        var copy = self
        for variable in configured { copy.variables[variable.name] = variable }
        return copy
    }

    /// The variables of SPEC section 5, sampled from Linux's own sources.
    public static let builtIn = VariableCatalogue([
        ResourceVariable(
            name: "IBM.PSSP.aixos.PagSp.%totalused", kind: .scalar(.number), instanceElements: ["NodeNum"],
            summary: "swap space used, percent"),
        ResourceVariable(
            name: "IBM.PSSP.aixos.PagSp.%totalfree", kind: .scalar(.number), instanceElements: ["NodeNum"],
            summary: "swap space free, percent"),
        ResourceVariable(
            name: "IBM.PSSP.aixos.Mem.Real.%free", kind: .scalar(.number), instanceElements: ["NodeNum"],
            summary: "available memory, percent"),
        ResourceVariable(
            name: "IBM.PSSP.aixos.FS.%totused", kind: .scalar(.number), instanceElements: ["NodeNum", "Name"],
            summary: "file system used, percent; Name is the mount point"),
        ResourceVariable(
            name: "IBM.PSSP.aixos.CPU.glidle", kind: .scalar(.number), instanceElements: ["NodeNum"],
            summary: "CPU idle, percent"),
        ResourceVariable(
            name: "IBM.PSSP.Prog.pcount",
            kind: .structured([
                .init("CurPIDCount", .number), .init("PrevPIDCount", .number), .init("CurPIDList", .string),
            ]),
            instanceElements: ["ProgName", "UserName", "NodeNum"],
            summary: "live processes of a program: X@0 count now, X@1 count before, X@2 their PIDs"),
        ResourceVariable(
            name: "HAMN.DB2.HADR",
            kind: .structured([
                .init("Role", .string), .init("State", .string), .init("SyncMode", .string),
                .init("ConnectStatus", .string), .init("HeartBeatsMissed", .number), .init("LogGap", .number),
            ]),
            instanceElements: ["Database", "NodeNum"],
            summary: "DB2 HADR state from db2pd -hadr or the database snapshot"),
        ResourceVariable(
            name: "HAMN.File.Age", kind: .scalar(.number), instanceElements: ["Name", "NodeNum"],
            summary: "seconds since a file's last modification; Name is the path"),
    ])
}
