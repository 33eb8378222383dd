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

/// The nine fields of one definition, indexed 0 to 8: the parser's own nine slots, never
/// copied (an array of them was copied and emptied for each definition).
private struct UnsafeFields {
    let base: UnsafeMutablePointer<Field>

    subscript(_ index: Int) -> Field { base[index] }
}

extension BuiltInTrigger {
    /// `init(rawValue:)` of a name's bytes, answering nil at once for a name that does not
    /// start `TE_` (nearly every user-defined one) without making it a `String`.
    init?(nameBytes name: UnsafeBufferPointer<UInt8>) {
        guard name.count > 3, name[0] == 0x54, name[1] == 0x45, name[2] == 0x5F else { return nil }
        self.init(rawValue: String(decoding: name, as: UTF8.self))
    }
}

private struct ParseState {
    let bytes: UnsafeBufferPointer<UInt8>
    let file: String
    let catalogue: VariableCatalogue
    /// The fields of the definition being read (at most nine: each nine are built into a
    /// definition as the ninth is read, so the file's fields are never all held at once).
    var fields = UnsafeFields(base: .allocate(capacity: 9))
    /// How many of `fields` the definition being read has.
    var fieldsRead = 0
    /// Fields read so far, in every definition.
    var fieldCount = 0
    /// The latest display name from a `Beginning of the Event Definition:` comment, with the
    /// index of the definition it names.
    var displayName: (definition: Int, name: String)?
    /// R005 and R006, one lookup a definition: the states each name has, in file order.
    var names: NameTable
    var diagnostics: [Diagnostic] = []
    var errorCount = 0
    var references: [RulesFile.Reference] = []
    var keepsDefinitions = true
    /// `.rp` paths, variables (with what the catalogue says of them) and instance vectors
    /// already made from the same bytes (`ByteKeyCache`). Room for thousands of paths: with
    /// 256 slots, the 1,000 paths of the benchmark's large corpus kept replacing each other.
    var programPaths = ByteKeyCache<String>(slots: 4096)
    var variables = ByteKeyCache<KnownVariable>(slots: 64)
    var instanceVectors = ByteKeyCache<(InstanceVector, [InstanceVector.Problem])>()
    var predicates = ByteKeyCache<PredicateOutcome>(slots: 4096)
    /// What `regcomp` said of each pattern already seen.
    var regularExpressions: [String: String?] = [:]
    var definitions: [EventDefinition] = []

    init(bytes: UnsafeBufferPointer<UInt8>, file: String, catalogue: VariableCatalogue) {
        self.bytes = bytes
        self.file = file
        self.catalogue = catalogue
        // At most a ninth of the lines are definitions: room for them all at once, so that the
        // names' table never grows (a count of newlines costs little beside a resize).
        names = NameTable(bytes: bytes, most: (Self.newlines(bytes) + 9) / 9)
    }

    static func newlines(_ bytes: UnsafeBufferPointer<UInt8>) -> Int {
        guard var p = bytes.baseAddress else { return 0 }
        let end = p + bytes.count
        var count = 0
        while p < end, let found = memchr(p, 0x0A, end - p) {
            count += 1
            p = UnsafePointer(found.assumingMemoryBound(to: UInt8.self)) + 1
        }
        return count
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
        defer { fields.base.deallocate() }
        references.reserveCapacity(names.expected)
        if keepsDefinitions { definitions.reserveCapacity(names.expected) }
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
            (fields.base + fieldsRead).initialize(
                to: Field(line: line.number, lineStart: line.start, start: start, end: end))
            fieldsRead += 1
            fieldCount += 1
            if fieldsRead == 9 {
                buildDefinition(index: fieldCount / 9 - 1)
                fieldsRead = 0
            }
        }
        finish()
    }

    /// `##### Beginning of the Event Definition: NAME` names the next definition to start.
    mutating func noteDisplayName(from start: Int, to end: Int) {
        // Only a kept definition has a display name.
        guard keepsDefinitions else { return }
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
        let f = fields
        let builtIn = BuiltInTrigger(nameBytes: buffer(f[0]))
        guard let (state, definition) = buildDefinition(f, builtIn, displayName: name) else { return }
        checkTrigger(f[0], state, builtIn)
        checkBuiltInState(f[0], state, builtIn)
        if errorCount == errorsBefore, let definition {
            definitions.append(definition)
        }
    }

    /// The end of the file: fields left over, or no definition at all.
    mutating func finish() {
        let complete = fieldCount / 9
        let remainder = Array(UnsafeBufferPointer(start: fields.base, count: fieldsRead))
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

    /// R005: a trigger (name and state) defined twice. R006: one event name with several
    /// states, except the states SPEC section 6 gives a built-in trigger. `name`: field 1.
    mutating func checkTrigger(_ name: Field, _ state: Int, _ builtIn: BuiltInTrigger?) {
        // One hash of the name's bytes: looked up and, when new, entered in place.
        let seen: (state: Int, line: Int)
        switch names.enter(start: name.start, end: name.end, state: state, line: name.line) {
        case .first:
            return
        case .duplicate(let first):
            report(
                name.line, 1, .R005,
                "duplicate trigger \(text(name).quotedForMessage()) state \(state) (first defined at line \(first))"
            )
            return
        case .another(let first):
            seen = first
        }
        if let builtIn, builtIn.states.contains(state), builtIn.states.contains(seen.state) {
            return
        }
        report(
            name.line, 1, .R006,
            "event \(text(name).quotedForMessage()) is defined with state \(state) here and state \(seen.state) at line \(seen.line)"
        )
    }

    /// R024: a built-in trigger with a state it is never raised with: the definition never runs.
    mutating func checkBuiltInState(_ name: Field, _ state: Int, _ builtIn: BuiltInTrigger?) {
        guard let builtIn, !builtIn.states.contains(state) else {
            return
        }
        let states = builtIn.states
        report(
            name.line, 1, .R024,
            "\(builtIn.rawValue) is raised with state \(states.count == 1 ? "\(states.lowerBound) only" : "\(states.lowerBound) to \(states.upperBound)"), never \(state): this definition never runs"
        )
    }

    /// The state of a definition with the values that could be read, and the definition when
    /// definitions are kept; nil when field 1 or 2 is unusable. Errors are reported as found.
    mutating func buildDefinition(
        _ f: UnsafeFields, _ builtIn: BuiltInTrigger?, displayName commented: String?
    ) -> (Int, EventDefinition?)? {
        // Field 1: the event name (made a `String` only where one is needed).
        if f[0].isEmpty {
            report(f[0].line, 1, .R003, "event name is empty")
        } else if let blank = bytes[f[0].start..<f[0].end].firstIndex(where: isBlank) {
            report(
                f[0].line, blank - f[0].lineStart + 1, .R003,
                "event name \(text(f[0]).quotedForMessage()) contains white space")
        }
        // Fields 2, 4, 5: integers.
        let state = integer(f[1], "state")
        let recoveryType = integer(f[3], "recovery type")
        let recoveryLevel = integer(f[4], "recovery level")
        // Field 3: the recovery program.
        let (program, repeated) = programPaths.valueNotingKept(for: buffer(f[2])) {
            String(decoding: $0, as: UTF8.self)
        }
        if f[2].isEmpty {
            report(f[2].line, 1, .R008, "recovery program path is empty")
        } else if bytes[f[2].start] != 0x2F {
            report(
                f[2].line, f[2].column, .R008,
                "recovery program path \(program.quotedForMessage()) is not absolute")
        } else {
            references.append(
                .init(
                    path: program, line: f[2].line, column: f[2].column, event: builtIn?.rawValue ?? "",
                    repeatsEarlier: repeated))
        }
        let monitoring = buildMonitoring(f)
        guard let state, !f[0].isEmpty else { return nil }
        guard keepsDefinitions else { return (state, nil) }
        let name = text(f[0])
        var displayName = commented ?? ""
        if displayName.isEmpty {
            displayName = programBaseName(f[2])
        }
        return (
            state,
            EventDefinition(
                trigger: .init(name: name, state: state), displayName: displayName, recoveryProgram: program,
                recoveryType: recoveryType ?? 0, recoveryLevel: recoveryLevel ?? 0, monitoring: monitoring,
                line: f[0].line, recoveryProgramLine: f[2].line)
        )
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
            // Checked before making the list of them: most cluster events have all three empty.
            guard !f[6].isEmpty || !f[7].isEmpty || !f[8].isEmpty else { return nil }
            for (field, what) in [(f[6], "instance vector"), (f[7], "predicate"), (f[8], "rearm predicate")]
            where !field.isEmpty {
                report(
                    field.line, field.column, .R012,
                    "\(what) without a resource variable (fields 7 to 9 must be empty when field 6 is)")
            }
            return nil
        }
        let catalogue = self.catalogue
        let known = variables.value(for: buffer(f[5])) { bytes in
            let name = String(decoding: bytes, as: UTF8.self)
            return KnownVariable(name: name, variable: catalogue[name], salt: hashBytes(bytes))
        }
        let name = known.name
        if known.variable == nil {
            report(
                f[5].line, f[5].column, .R014,
                "resource variable \(name.quotedForMessage()) is neither built in nor configured")
        }
        var instances = InstanceVector.everyNode
        if f[6].isEmpty {
            report(f[6].line, 1, .R021, "resource variable with an empty instance vector (taken as NodeNum=*)")
        } else {
            // The same text means the same vector for the same variable (the salt: its name's hash).
            let (parsed, problems) = instanceVectors.value(for: buffer(f[6]), salt: known.salt) { bytes in
                InstanceVector.parse(bytes: Array(bytes), allowedNames: known.variable?.instanceElements)
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
            predicate = parsePredicate(f[7], known, .R015, "predicate")
        }
        var rearm: Predicate?
        if !f[8].isEmpty {
            rearm = parsePredicate(f[8], known, .R016, "rearm predicate")
            if let rearm, let predicate, rearm.isSame(as: predicate) {
                report(
                    f[8].line, f[8].column, .R022,
                    "rearm predicate is identical to the predicate (the instance would rearm as soon as it fires)")
            }
        }
        guard keepsDefinitions, let predicate else { return nil }
        return .init(variable: name, instances: instances, predicate: predicate, rearmPredicate: rearm)
    }

    /// A predicate or rearm predicate, reported under `code` as `what`; nil when it has errors.
    /// The same text over the same variable is parsed and checked once (most rules files
    /// repeat a few comparisons).
    mutating func parsePredicate(
        _ field: Field, _ variable: KnownVariable, _ code: DiagnosticCode, _ what: String
    ) -> Predicate? {
        let text = buffer(field)
        let outcome: PredicateOutcome
        if let kept = predicates.cached(for: text, salt: variable.salt) {
            outcome = kept
        } else {
            do {
                let predicate = try PredicateParser.parse(bytes: rawBytes(field))
                outcome = .checked(
                    predicate,
                    PredicateTypeChecker.check(
                        predicate, variable: variable.variable, regularExpressions: &regularExpressions))
            } catch {
                outcome = .syntax(error)
            }
            predicates.store(outcome, for: text, salt: variable.salt)
        }
        switch outcome {
        case .syntax(let error):
            report(field.line, field.column + error.offset, code, "\(what): \(error.message)")
            return nil
        case .checked(let predicate, let problems):
            for problem in problems {
                report(
                    field.line, field.column + problem.offset, problem.kind == .type ? .R023 : code,
                    "\(what): \(problem.message)")
            }
            return problems.isEmpty ? predicate : nil
        }
    }
}

/// A resource variable's name, what the catalogue says of it and the hash of its name (the
/// salt of what depends on it), kept by reference: a `ResourceVariable` is many fields, and
/// copying it out of the cache for each definition was a visible share of the run.
private final class KnownVariable {
    let name: String
    let variable: ResourceVariable?
    let salt: UInt64

    init(name: String, variable: ResourceVariable?, salt: UInt64) {
        self.name = name
        self.variable = variable
        self.salt = salt
    }
}

/// What parsing and checking a predicate's text gave.
private enum PredicateOutcome {
    case syntax(PredicateSyntaxError)
    case checked(Predicate, [PredicateTypeChecker.Problem])
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
