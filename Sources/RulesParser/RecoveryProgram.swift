/// Which nodes run a recovery program line (SPEC section 3).
public enum Relationship: String, Sendable, Hashable, CaseIterable {
    /// The node where the event occurred.
    case event
    /// Every participating node except the event node.
    case other
    /// Every participating node.
    case all
}

/// The exit status a command must return; `x` in the file means any.
public enum ExpectedStatus: Sendable, Hashable, CustomStringConvertible {
    case any
    case exactly(UInt8)

    public func accepts(_ status: Int32) -> Bool {
        switch self {
        case .any: true
        case .exactly(let expected): status == Int32(expected)
        }
    }

    public var description: String {
        switch self {
        case .any: "x"
        case .exactly(let code): String(code)
        }
    }
}

/// One command line of a `.rp` file.
public struct CommandStep: Sendable, Hashable {
    public var relationship: Relationship
    /// The text between the quotes, escapes resolved: what `/bin/sh -c` runs.
    public var command: String
    public var expected: ExpectedStatus
    /// 1-based line in the `.rp` file, and the column of the command's first character.
    public var line: Int
    public var column: Int

    public init(relationship: Relationship, command: String, expected: ExpectedStatus, line: Int, column: Int) {
        self.relationship = relationship
        self.command = command
        self.expected = expected
        self.line = line
        self.column = column
    }

    /// The program the command starts: its first word after any `NAME=value` assignments,
    /// with simple quotes removed. nil when the command is empty.
    public var program: String? {
        Self.program(of: command)
    }

    /// The program `command` starts (see `program`): also for a command known only by its text
    /// (the journal's, a timeline's label).
    public static func program(of command: String) -> String? {
        var rest = Substring(command)
        while true {
            rest = rest.drop { $0 == " " || $0 == "\t" }
            guard let first = rest.first else { return nil }
            var word = ""
            if first == "'" || first == "\"" {
                rest = rest.dropFirst()
                word = String(rest.prefix { $0 != first })
                rest = rest.drop { $0 != first }.dropFirst()
            } else {
                word = String(rest.prefix { $0 != " " && $0 != "\t" && $0 != ";" && $0 != "|" && $0 != "&" })
                rest = rest.dropFirst(word.count)
            }
            if let eq = word.firstIndex(of: "="), !word.hasPrefix("/"), !word[..<eq].isEmpty,
                word[..<eq].allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") })
            {
                continue
            }
            return word
        }
    }
}

public enum Step: Sendable, Hashable {
    case command(CommandStep)
    /// A cluster-wide synchronisation point, with its line in the file.
    case barrier(line: Int)
}

/// A parsed `.rp` file: its steps in file order.
public struct RecoveryProgram: Sendable, Hashable {
    public var steps: [Step]

    public init(steps: [Step]) {
        self.steps = steps
    }

    /// The commands between barriers: segment k holds the commands after the k-th barrier.
    public var segments: [[CommandStep]] {
        var result: [[CommandStep]] = [[]]
        for step in steps {
            switch step {
            case .command(let command): result[result.count - 1].append(command)
            case .barrier: result.append([])
            }
        }
        return result
    }

    public var commands: [CommandStep] {
        steps.compactMap { if case .command(let c) = $0 { c } else { nil } }
    }
}
