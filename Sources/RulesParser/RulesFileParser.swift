#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Parses `rules.hacmprd` (SPEC section 2): every line that is not a comment is a field, fields
/// are taken nine at a time, each nine making one event definition.
///
/// This is the one place the nine-line format is defined. It is pure: the caller reads the
/// file; checks that need the file system (R009, R020) belong to the validator.
public struct RulesFileParser: Sendable {
    public var catalogue: VariableCatalogue
    /// Whether `RulesFile.definitions` is filled; a check that only wants the diagnostics
    /// (`validate`) saves building and freeing them.
    public var keepsDefinitions = true

    public init(catalogue: VariableCatalogue = .builtIn) {
        self.catalogue = catalogue
    }

    public func parse(_ text: String, file: String) -> RulesFile {
        var copy = text
        return copy.withUTF8 { parse(bytes: $0, file: file) }
    }

    public func parse(bytes: UnsafeBufferPointer<UInt8>, file: String) -> RulesFile {
        var state = ParseState(bytes: bytes, file: file, catalogue: catalogue)
        state.keepsDefinitions = keepsDefinitions
        state.parse()
        return RulesFile(
            definitions: state.definitions, diagnostics: state.diagnostics, definitionCount: state.fieldCount / 9,
            recoveryProgramReferences: state.references)
    }
}

/// One field: its line and the byte range of its text, blanks trimmed.
private struct Field {
    var line: Int
    var lineStart: Int
    var start: Int
    var end: Int

    var column: Int { start - lineStart + 1 }
    var isEmpty: Bool { start == end }
}

/// The nine fields of one definition, indexed 0 to 8 (a slice, rebased).
private struct UnsafeFields {
    let slice: ArraySlice<Field>

    init(_ slice: ArraySlice<Field>) { self.slice = slice }

    subscript(_ index: Int) -> Field { slice[slice.startIndex + index] }
}

extension BuiltInTrigger {
    /// `init(rawValue:)`, answering nil at once for a name that does not start `TE_` (nearly
    /// every user-defined one) without comparing it with each case.
    init?(fastRawValue name: String) {
        var utf8 = name.utf8.makeIterator()
        guard utf8.next() == 0x54, utf8.next() == 0x45, utf8.next() == 0x5F else { return nil }
        self.init(rawValue: name)
    }
}

private struct ParseState {
    let bytes: UnsafeBufferPointer<UInt8>
    let file: String
    let catalogue: VariableCatalogue
    /// The fields of the definition being read (at most nine: each nine are built into a
    /// definition as the ninth is read, so the file's fields are never all held at once).
    var fields: [Field] = []
    /// Fields read so far, in every definition.
    var fieldCount = 0
    /// The latest display name from a `Beginning of the Event Definition:` comment, with the
    /// index of the definition it names.
    var displayName: (definition: Int, name: String)?
    /// R005 and R006, one lookup a definition: the states each name has, in file order.
    var statesByName: [String: NameStates] = [:]
    var diagnostics: [Diagnostic] = []
    var errorCount = 0
    var references: [RulesFile.Reference] = []
    var keepsDefinitions = true
    /// `.rp` paths, variables (with what the catalogue says of them) and instance vectors
    /// already made from the same bytes (`ByteKeyCache`). Room for thousands of paths: with
    /// 256 slots, the 1,000 paths of the benchmark's large corpus kept replacing each other.
    var programPaths = ByteKeyCache<String>(slots: 4096)
    var variables = ByteKeyCache<(name: String, variable: ResourceVariable?, salt: UInt64)>(slots: 64)
    var instanceVectors = ByteKeyCache<(InstanceVector, [InstanceVector.Problem])>()
    /// What `regcomp` said of each pattern already seen.
    var regularExpressions: [String: String?] = [:]
    var definitions: [EventDefinition] = []

    init(bytes: UnsafeBufferPointer<UInt8>, file: String, catalogue: VariableCatalogue) {
        self.bytes = bytes
        self.file = file
        self.catalogue = catalogue
    }

    mutating func report(_ line: Int, _ column: Int, _ code: DiagnosticCode, _ message: String) {
        diagnostics.append(Diagnostic(file: file, line: line, column: column, code: code, message: message))
        if code.severity == .error { errorCount += 1 }
    }

    func text(_ field: Field) -> String {
        String(decoding: buffer(field), as: UTF8.self)
    }

    func buffer(_ field: Field) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: bytes[field.start..<field.end])
    }

    /// The field's bytes as they are in the file, so offsets into them are file columns.
    func rawBytes(_ field: Field) -> [UInt8] {
        Array(UnsafeBufferPointer(rebasing: bytes[field.start..<field.end]))
    }

    static let marker: [UInt8] = Array("Beginning of the Event Definition:".utf8)

    // MARK: Lines to fields

    /// Lines to fields, each nine fields to a definition, as they come.
    mutating func parse() {
        fields.reserveCapacity(9)
        // At most a ninth of the lines are definitions: room for them all at once, so that the
        // names' table never grows (a count of newlines costs little beside a resize).
        let most = (bytes.reduce(into: 0) { count, byte in if byte == 0x0A { count += 1 } } + 9) / 9
        statesByName.reserveCapacity(most)
        if keepsDefinitions { definitions.reserveCapacity(most) }
        for line in SourceLines(bytes: bytes) {
            if line.hadCarriageReturn {
                report(line.number, line.end - line.start + 1, .R017, "CRLF line end (stripped)")
            }
            var start = line.start
            while start < line.end, isBlank(bytes[start]) { start += 1 }
            if start < line.end, bytes[start] == 0x23 {
                noteDisplayName(from: start + 1, to: line.end)
                continue
            }
            var end = line.end
            while end > start, isBlank(bytes[end - 1]) { end -= 1 }
            if end < line.end || (start == line.end && line.end > line.start) {
                let blankFrom = start == line.end ? line.start : end
                report(line.number, blankFrom - line.start + 1, .R018, "trailing white space in a field (stripped)")
            }
            fields.append(Field(line: line.number, lineStart: line.start, start: start, end: end))
            fieldCount += 1
            if fields.count == 9 {
                buildDefinition(index: fieldCount / 9 - 1)
                fields.removeAll(keepingCapacity: true)
            }
        }
        finish()
    }

    /// `##### Beginning of the Event Definition: NAME` names the next definition to start.
    mutating func noteDisplayName(from start: Int, to end: Int) {
        var p = start
        while p < end, bytes[p] == 0x23 || isBlank(bytes[p]) { p += 1 }
        guard end - p > Self.marker.count, let base = bytes.baseAddress,
            memcmp(base + p, Self.marker, Self.marker.count) == 0
        else { return }
        var nameStart = p + Self.marker.count
        var nameEnd = end
        while nameStart < nameEnd, isBlank(bytes[nameStart]) { nameStart += 1 }
        while nameEnd > nameStart, isBlank(bytes[nameEnd - 1]) { nameEnd -= 1 }
        guard nameStart < nameEnd else { return }
        let name = String(decoding: UnsafeBufferPointer(rebasing: bytes[nameStart..<nameEnd]), as: UTF8.self)
        // Fields already taken belong to earlier definitions; a partly read one is the current one.
        displayName = ((fieldCount + 8) / 9, name)
    }

    // MARK: Fields to definitions

    /// The definition of the nine fields read: built, then checked against the earlier ones.
    mutating func buildDefinition(index: Int) {
        let name = displayName?.definition == index ? displayName?.name : nil
        let errorsBefore = errorCount
        guard let definition = buildDefinition(fields[0..<9], displayName: name) else { return }
        let builtIn = BuiltInTrigger(fastRawValue: definition.trigger.name)
        checkTrigger(definition, builtIn)
        checkBuiltInState(definition, builtIn)
        if errorCount == errorsBefore, keepsDefinitions {
            definitions.append(definition)
        }
    }

    /// The end of the file: fields left over, or no definition at all.
    mutating func finish() {
        let complete = fieldCount / 9
        let remainder = fields
        if let first = remainder.first {
            if remainder.allSatisfy(\.isEmpty) {
                report(
                    first.line, 1, .R002,
                    "\(remainder.count == 1 ? "an empty line" : "\(remainder.count) empty lines") at the end of the file \(remainder.count == 1 ? "starts" : "start") an incomplete event definition (HACMP ES hangs on this): delete \(remainder.count == 1 ? "it" : "them")"
                )
            } else {
                report(
                    first.line, first.column, .R001,
                    "incomplete event definition at end of file: \(remainder.count) of 9 fields (an event definition has exactly nine lines besides comments)"
                )
            }
        } else if complete == 0 {
            report(1, 1, .R019, "no event definitions")
        }
    }

    /// The states a name is defined with, each with the line of its first definition, in file
    /// order (one, but for a built-in trigger's states and for names R006 reports).
    struct NameStates {
        /// nil only while the name is being entered.
        var first: (state: Int, line: Int)?
        var more: [(state: Int, line: Int)] = []

        func line(of state: Int) -> Int? {
            first?.state == state ? first?.line : more.first { $0.state == state }?.line
        }

        /// What a definition of `state` at `line` is: the name's first, a duplicate of the
        /// state first defined at the line returned (R005), or a state beside the first.
        mutating func enter(_ state: Int, _ line: Int) -> Entry {
            guard let first else {
                self.first = (state, line)
                return .first
            }
            if let earlier = self.line(of: state) { return .duplicate(of: earlier) }
            more.append((state, line))
            return .another(besides: first)
        }

        enum Entry {
            case first
            case duplicate(of: Int)
            case another(besides: (state: Int, line: Int))
        }
    }

    /// R005: a trigger (name and state) defined twice. R006: one event name with several
    /// states, except the states SPEC section 6 gives a built-in trigger.
    mutating func checkTrigger(_ definition: EventDefinition, _ builtIn: BuiltInTrigger?) {
        let trigger = definition.trigger
        // One hash of the name: looked up and, when new, entered in place.
        let seen: (state: Int, line: Int)
        switch statesByName[trigger.name, default: NameStates()].enter(trigger.state, definition.line) {
        case .first:
            return
        case .duplicate(let first):
            report(
                definition.line, 1, .R005,
                "duplicate trigger \(trigger.name.quotedForMessage()) state \(trigger.state) (first defined at line \(first))"
            )
            return
        case .another(let first):
            seen = first
        }
        if let builtIn, builtIn.states.contains(trigger.state), builtIn.states.contains(seen.state) {
            return
        }
        report(
            definition.line, 1, .R006,
            "event \(trigger.name.quotedForMessage()) is defined with state \(trigger.state) here and state \(seen.state) at line \(seen.line)"
        )
    }

    /// R024: a built-in trigger with a state it is never raised with: the definition never runs.
    mutating func checkBuiltInState(_ definition: EventDefinition, _ builtIn: BuiltInTrigger?) {
        let trigger = definition.trigger
        guard let builtIn, !builtIn.states.contains(trigger.state) else {
            return
        }
        let states = builtIn.states
        report(
            definition.line, 1, .R024,
            "\(trigger.name) is raised with state \(states.count == 1 ? "\(states.lowerBound) only" : "\(states.lowerBound) to \(states.upperBound)"), never \(trigger.state): this definition never runs"
        )
    }

    /// A definition with the values that could be read; nil when field 1 or 2 is unusable.
    /// Errors are reported as found.
    mutating func buildDefinition(_ f: ArraySlice<Field>, displayName commented: String?) -> EventDefinition? {
        let f = UnsafeFields(f)
        // Field 1: the event name.
        let name = text(f[0])
        if f[0].isEmpty {
            report(f[0].line, 1, .R003, "event name is empty")
        } else if let blank = bytes[f[0].start..<f[0].end].firstIndex(where: isBlank) {
            report(
                f[0].line, blank - f[0].lineStart + 1, .R003,
                "event name \(name.quotedForMessage()) contains white space")
        }
        // Fields 2, 4, 5: integers.
        let state = integer(f[1], "state")
        let recoveryType = integer(f[3], "recovery type")
        let recoveryLevel = integer(f[4], "recovery level")
        // Field 3: the recovery program.
        let program = programPaths.value(for: buffer(f[2])) { String(decoding: $0, as: UTF8.self) }
        if f[2].isEmpty {
            report(f[2].line, 1, .R008, "recovery program path is empty")
        } else if bytes[f[2].start] != 0x2F {
            report(
                f[2].line, f[2].column, .R008,
                "recovery program path \(program.quotedForMessage()) is not absolute")
        } else {
            references.append(.init(path: program, line: f[2].line, column: f[2].column, event: name))
        }
        let monitoring = buildMonitoring(f)
        var displayName = commented ?? ""
        if displayName.isEmpty, keepsDefinitions {
            displayName = programBaseName(f[2])
        }
        guard let state, !f[0].isEmpty else { return nil }
        return EventDefinition(
            trigger: .init(name: name, state: state), displayName: displayName, recoveryProgram: program,
            recoveryType: recoveryType ?? 0, recoveryLevel: recoveryLevel ?? 0, monitoring: monitoring,
            line: f[0].line, recoveryProgramLine: f[2].line)
    }

    /// The program's file name without `.rp`: the definition's name when no comment gives one.
    func programBaseName(_ field: Field) -> String {
        var start = field.end
        while start > field.start, bytes[start - 1] != 0x2F { start -= 1 }
        var end = field.end
        if end - start >= 3, bytes[end - 3] == 0x2E, bytes[end - 2] == 0x72, bytes[end - 1] == 0x70 { end -= 3 }
        return String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    mutating func integer(_ field: Field, _ what: String) -> Int? {
        var p = field.start
        if p < field.end, bytes[p] == 0x2D || bytes[p] == 0x2B { p += 1 }
        let digits = field.end - p
        if digits > 0, digits <= 18, bytes[p..<field.end].allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) {
            let magnitude = bytes[p..<field.end].reduce(0) { $0 * 10 + Int($1 - 0x30) }
            return bytes[field.start] == 0x2D ? -magnitude : magnitude
        }
        report(
            field.line, field.isEmpty ? 1 : field.column, .R007,
            field.isEmpty
                ? "\(what) is empty (expected an integer)"
                : "\(what) \(text(field).quotedForMessage()) is not an integer")
        return nil
    }

    /// Fields 6 to 9.
    mutating func buildMonitoring(_ f: UnsafeFields) -> EventDefinition.Monitoring? {
        if f[5].isEmpty {
            for (field, what) in [(f[6], "instance vector"), (f[7], "predicate"), (f[8], "rearm predicate")]
            where !field.isEmpty {
                report(
                    field.line, field.column, .R012,
                    "\(what) without a resource variable (fields 7 to 9 must be empty when field 6 is)")
            }
            return nil
        }
        let catalogue = self.catalogue
        let (name, variable, salt) = variables.value(for: buffer(f[5])) { bytes in
            let name = String(decoding: bytes, as: UTF8.self)
            return (name, catalogue[name], ByteKeyCache<Never>.hash(bytes))
        }
        if variable == nil {
            report(
                f[5].line, f[5].column, .R014,
                "resource variable \(name.quotedForMessage()) is neither built in nor configured")
        }
        var instances = InstanceVector.everyNode
        if f[6].isEmpty {
            report(f[6].line, 1, .R021, "resource variable with an empty instance vector (taken as NodeNum=*)")
        } else {
            // The same text means the same vector for the same variable (the salt: its name's hash).
            let allowed = variable?.instanceElements
            let (parsed, problems) = instanceVectors.value(for: buffer(f[6]), salt: salt) { bytes in
                InstanceVector.parse(bytes: Array(bytes), allowedNames: allowed)
            }
            for problem in problems {
                report(f[6].line, f[6].column + problem.offset, .R013, problem.message)
            }
            instances = parsed
        }
        let predicate: Predicate?
        if f[7].isEmpty {
            report(f[7].line, 1, .R011, "resource variable \(name.quotedForMessage()) without a predicate")
            predicate = nil
        } else {
            predicate = parsePredicate(f[7], variable, .R015, "predicate")
        }
        var rearm: Predicate?
        if !f[8].isEmpty {
            rearm = parsePredicate(f[8], variable, .R016, "rearm predicate")
            if let rearm, let predicate, rearm.isSame(as: predicate) {
                report(
                    f[8].line, f[8].column, .R022,
                    "rearm predicate is identical to the predicate (the instance would rearm as soon as it fires)")
            }
        }
        guard let predicate else { return nil }
        return .init(variable: name, instances: instances, predicate: predicate, rearmPredicate: rearm)
    }

    mutating func parsePredicate(
        _ field: Field, _ variable: ResourceVariable?, _ code: DiagnosticCode, _ what: String
    ) -> Predicate? {
        let predicate: Predicate
        do {
            predicate = try PredicateParser.parse(bytes: rawBytes(field))
        } catch {
            report(field.line, field.column + error.offset, code, "\(what): \(error.message)")
            return nil
        }
        var ok = true
        for problem in PredicateTypeChecker.check(
            predicate, variable: variable, regularExpressions: &regularExpressions)
        {
            ok = false
            report(
                field.line, field.column + problem.offset, problem.kind == .type ? .R023 : code,
                "\(what): \(problem.message)")
        }
        return ok ? predicate : nil
    }
}

extension Predicate {
    /// Whether two predicates are the same but for spacing: the same tree, offsets aside (R022).
    func isSame(as other: Predicate) -> Bool {
        qualifier == other.qualifier && expression.isSame(as: other.expression)
    }
}

extension Expression {
    func isSame(as other: Expression) -> Bool {
        switch (self, other) {
        case (.literal(let a, _), .literal(let b, _)): a == b
        case (.list(let a, _), .list(let b, _)): a == b
        case (.variable(let a, _), .variable(let b, _)): a == b
        case (.unary(let opA, let a, _), .unary(let opB, let b, _)): opA == opB && a.isSame(as: b)
        case (.binary(let opA, let a1, let a2, _), .binary(let opB, let b1, let b2, _)):
            opA == opB && a1.isSame(as: b1) && a2.isSame(as: b2)
        case (.chain(let a, let linksA), .chain(let b, let linksB)):
            a.isSame(as: b) && linksA.count == linksB.count
                && zip(linksA, linksB).allSatisfy { $0.op == $1.op && $0.operand.isSame(as: $1.operand) }
        default: false
        }
    }
}
