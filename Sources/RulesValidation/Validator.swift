import RulesParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Checks rules files and recovery programs as `hamn-events validate` does (SPEC section 8):
/// reads them, runs RulesParser over them, and adds what needs the file system: R009 (a `.rp`
/// that is not there), R020 (files others could change), P006 and P007 (the commands).
public struct Validator: Sendable {
    public struct Options: Sendable {
        /// Absolute paths named in rules and `.rp` files are looked up under this directory;
        /// command existence (P007) is not checked.
        public var root: String?
        /// Built-in variables and those of the configuration.
        public var catalogue: VariableCatalogue
        /// Where bundled event scripts (relative commands) live; by default `events/` beside the
        /// rules file (or beside a `.rp` given directly).
        public var eventScriptDirectory: String?
        /// The user the service runs as: files must belong to it or to root (R020).
        public var serviceUser: UInt32
        /// Larger rules or `.rp` files are refused (F003) rather than read.
        public var sizeLimit: Int
        /// Whether absolute commands must exist and be executable (P007). Off under `root`,
        /// and for simulations, which run no command.
        public var checksCommandsExist = true
        /// Whether `root` applies to commands too (`validate --root`: a staged tree), or only
        /// to rules and `.rp` paths (the service's `rules_root`: commands run from the real
        /// file system, so they are checked there).
        public var commandsUnderRoot = true

        public init(
            root: String? = nil, catalogue: VariableCatalogue = .builtIn, eventScriptDirectory: String? = nil,
            serviceUser: UInt32 = UInt32(geteuid()), sizeLimit: Int = 64 << 20
        ) {
            self.root = root
            self.catalogue = catalogue
            self.eventScriptDirectory = eventScriptDirectory
            self.serviceUser = serviceUser
            self.sizeLimit = sizeLimit
        }
    }

    public var options: Options
    public var fileSystem: any FileSystem

    public init(options: Options = Options(), fileSystem: any FileSystem = LocalFileSystem()) {
        self.options = options
        self.fileSystem = fileSystem
    }

    /// Validates each path: a name ending in `.rp` is a recovery program, anything else a rules
    /// file whose `.rp` files are validated too, each once however often it is named.
    public func validate(_ paths: [String]) -> ValidationReport {
        var run = Run(validator: self)
        for path in paths {
            let path = staged(path)
            if path.hasSuffix(".rp") {
                run.validateRecoveryProgram(at: path, shownAs: path, eventScripts: eventScripts(beside: path))
            } else {
                run.validateRules(at: path)
            }
        }
        return ValidationReport(diagnostics: run.diagnostics, definitions: run.definitions)
    }

    /// Validates a rules file and, when it has no errors, returns its definitions with their
    /// parsed recovery programs: what the service and the simulator run. Warnings are allowed.
    public func load(_ rulesFile: String) -> (rules: LoadedRules?, report: ValidationReport) {
        var run = Run(validator: self)
        run.keepsDefinitions = true
        run.validateRules(at: staged(rulesFile))
        let report = ValidationReport(diagnostics: run.diagnostics, definitions: run.definitions)
        guard report.errorCount == 0 else { return (nil, report) }
        var programs: [String: RecoveryProgram] = [:]
        for definition in run.loadedDefinitions {
            guard case .ok(let program?) = run.programs[resolve(definition.recoveryProgram)] else {
                return (nil, report)
            }
            programs[definition.recoveryProgram] = program
        }
        return (LoadedRules(definitions: run.loadedDefinitions, programs: programs), report)
    }

    /// `path` under `--root`, when one is given: its links are followed inside the root,
    /// never out of it (``PathSafety/resolve(_:under:fileSystem:)``).
    func resolve(_ path: String) -> String {
        guard let root = options.root, path.hasPrefix("/") else { return path }
        return PathSafety.resolve(path, under: root, fileSystem: fileSystem)
    }

    func eventScripts(beside file: String) -> String {
        if let configured = options.eventScriptDirectory { return resolve(configured) }
        guard let slash = file.lastIndex(of: "/") else { return "events" }
        return String(file[..<slash]) + "/events"
    }

    /// R020's finding for a file itself, nil when only root or the service user can change it
    /// (``PathSafety`` adds the directories above it).
    func ownershipProblem(_ status: FileStatus) -> String? {
        PathSafety(trustedUser: options.serviceUser, fileSystem: fileSystem).fileProblem(status)
    }

    /// A path given to `validate`: under `--root`, one inside the staged tree is resolved
    /// there too, so that a link in the tree cannot lead out of it.
    func staged(_ path: String) -> String {
        guard let root = options.root, path.hasPrefix("/") else { return path }
        var base = root
        while base.hasSuffix("/") { base.removeLast() }
        guard !base.isEmpty, path.hasPrefix(base + "/") else { return path }
        return PathSafety.resolve(String(path.dropFirst(base.count)), under: base, fileSystem: fileSystem)
    }
}

/// The state of one `validate` call.
private struct Run {
    let validator: Validator
    var diagnostics: [Diagnostic] = []
    var definitions = 0
    /// The error-free definitions of every rules file, in file order, when loading.
    var loadedDefinitions: [EventDefinition] = []
    var keepsDefinitions = false
    /// Recovery programs already validated, by resolved path, with what was found of them.
    var programs: [String: ProgramCheck] = [:]
    /// Commands already looked up, by resolved path.
    var commands: [String: FileStatus?] = [:]
    /// R020's verdict on each command path already checked: many commands start the same
    /// programs, and the whole-path check costs a system call per directory above each.
    var commandProblems: [String: String?] = [:]
    /// R020 over each file and the directories above it.
    var safety: PathSafety

    enum ProgramCheck {
        case ok(RecoveryProgram?)
        case missing(String)
    }

    init(validator: Validator) {
        self.validator = validator
        safety = PathSafety(trustedUser: validator.options.serviceUser, fileSystem: validator.fileSystem)
    }

    var fileSystem: any FileSystem { validator.fileSystem }

    mutating func report(_ file: String, _ line: Int, _ column: Int, _ code: DiagnosticCode, _ message: String) {
        diagnostics.append(Diagnostic(file: file, line: line, column: column, code: code, message: message))
    }

    /// Why a file's text cannot be had: where, the code and what to say after "the file".
    struct Unreadable: Error {
        var line = 1
        var column = 1
        var code: DiagnosticCode
        var why: String
    }

    func load(_ path: String) -> Result<[UInt8], Unreadable> {
        let bytes: [UInt8]
        do {
            bytes = try fileSystem.read(path, limit: validator.options.sizeLimit)
        } catch {
            switch error {
            case .cannotRead(let why): return .failure(Unreadable(code: .F001, why: "cannot be read: \(why)"))
            case .notRegularFile: return .failure(Unreadable(code: .F001, why: "is not a regular file"))
            case .tooLarge(let size, let limit):
                return .failure(
                    Unreadable(
                        code: .F003,
                        why: "is \(byteCount(size)); the validator reads files of up to \(byteCount(limit))"))
            }
        }
        if let nul = Self.firstNUL(bytes) {
            let line = bytes[..<nul].reduce(1) { $1 == 0x0A ? $0 + 1 : $0 }
            let lineStart = bytes[..<nul].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            return .failure(
                Unreadable(line: line, column: nul - lineStart + 1, code: .F002, why: "is not a text file (NUL byte)"))
        }
        return .success(bytes)
    }

    static func firstNUL(_ bytes: [UInt8]) -> Int? {
        bytes.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress, let found = memchr(base, 0, buffer.count) else { return nil }
            return base.distance(to: found.assumingMemoryBound(to: UInt8.self))
        }
    }

    /// The file's bytes, or nil after reporting why they cannot be had.
    mutating func readText(_ path: String, shownAs shown: String) -> [UInt8]? {
        switch load(path) {
        case .success(let bytes): return bytes
        case .failure(let problem):
            report(shown, problem.line, problem.column, problem.code, "the file \(problem.why)")
            return nil
        }
    }

    mutating func checkOwnership(_ path: String, shownAs shown: String, what: String) {
        guard let problem = safety.problem(path) else { return }
        report(shown, 1, 1, .R020, "\(what) \(problem)")
    }

    mutating func validateRules(at path: String) {
        guard let bytes = readText(path, shownAs: path) else { return }
        checkOwnership(path, shownAs: path, what: "rules file")
        var parser = RulesFileParser(catalogue: validator.options.catalogue)
        parser.keepsDefinitions = keepsDefinitions
        let rules = bytes.withUnsafeBufferPointer { parser.parse(bytes: $0, file: path) }
        definitions += rules.definitionCount
        if keepsDefinitions { loadedDefinitions += rules.definitions }
        var found = rules.diagnostics
        // The rules file's findings come first, in line order; those of its .rp files after.
        let earlier = diagnostics
        diagnostics = []
        let eventScripts = validator.eventScripts(beside: path)
        for reference in rules.recoveryProgramReferences {
            // A path named before was checked then; only P011 below looks at it again.
            if reference.repeatsEarlier, reference.event.isEmpty { continue }
            let resolved = validator.resolve(reference.path)
            let known = programs[resolved]
            let check =
                known
                ?? validateRecoveryProgram(at: resolved, shownAs: resolved, eventScripts: eventScripts, quiet: true)
            if known == nil { programs[resolved] = check }
            if reference.event == BuiltInTrigger.quorumLost.rawValue, case .ok(let program?) = check {
                // P011: the local event runs on this node alone.
                for step in program.commands where step.relationship == .other {
                    diagnostics.append(
                        Diagnostic(
                            file: resolved, line: step.line, column: 1, code: .P011,
                            message:
                                "TE_QUORUM_LOST runs on the node that lost quorum alone: this 'other' step never runs (use event or all)"
                        ))
                }
            }
            guard known == nil else { continue }
            if case .missing(let why) = check {
                found.append(
                    Diagnostic(
                        file: path, line: reference.line, column: reference.column, code: .R009,
                        message: "recovery program \(reference.path.quotedForMessage(limit: 200)) \(why)"))
            }
        }
        diagnostics = earlier + found.sorted { ($0.line, $0.column) < ($1.line, $1.column) } + diagnostics
    }

    /// Validates one `.rp` file. `quiet`: a file that cannot be had is returned as `.missing`
    /// for the rules file to report (R009) rather than reported here.
    @discardableResult
    mutating func validateRecoveryProgram(
        at path: String, shownAs shown: String, eventScripts: String, quiet: Bool = false
    ) -> ProgramCheck {
        let text: [UInt8]
        if quiet {
            guard fileSystem.status(path) != nil else { return .missing("not found") }
            switch load(path) {
            case .success(let bytes): text = bytes
            case .failure(let problem): return .missing(problem.why)
            }
        } else {
            guard let bytes = readText(path, shownAs: shown) else { return .ok(nil) }
            text = bytes
        }
        checkOwnership(path, shownAs: shown, what: "recovery program")
        let (program, found) = text.withUnsafeBufferPointer { RecoveryProgramParser.parse(bytes: $0, file: shown) }
        let programErrors = found.contains { $0.severity == .error }
        diagnostics += found
        for step in program.commands {
            checkCommand(step, in: shown, eventScripts: eventScripts)
        }
        return .ok(programErrors ? nil : program)
    }

    /// P006, P007 and R020 for the program a command starts.
    mutating func checkCommand(_ step: CommandStep, in file: String, eventScripts: String) {
        guard let program = step.program, !program.isEmpty else { return }
        let skipsExistence =
            (validator.options.root != nil && validator.options.commandsUnderRoot)
            || !validator.options.checksCommandsExist
        let shownProgram = program.quotedForMessage(limit: 200)
        let path: String
        if program.hasPrefix("/") {
            path = validator.options.commandsUnderRoot ? validator.resolve(program) : program
        } else if program.contains("/") {
            report(
                file, step.line, step.column, .P006,
                "relative command path \(shownProgram): only bundled event scripts may be relative; give the absolute path"
            )
            return
        } else {
            path = eventScripts + "/" + program
            if lookUp(path).map(\.isRegularFile) != true {
                report(
                    file, step.line, step.column, .P006,
                    "\(shownProgram) is not a bundled event script (none in \(eventScripts)); give the absolute path")
                return
            }
        }
        guard let status = lookUp(path) else {
            if !skipsExistence { report(file, step.line, step.column, .P007, "command \(shownProgram) not found") }
            return
        }
        if !status.isExecutable {
            if !skipsExistence {
                report(file, step.line, step.column, .P007, "command \(shownProgram) is not an executable file")
            }
            return
        }
        let problem: String?
        if let known = commandProblems[path] {
            problem = known
        } else {
            problem = safety.problem(path)
            commandProblems[path] = .some(problem)
        }
        if let problem {
            report(file, step.line, step.column, .R020, "command \(shownProgram) \(problem)")
        }
    }

    mutating func lookUp(_ path: String) -> FileStatus? {
        if let known = commands[path] { return known }
        let status = fileSystem.status(path)
        commands[path] = status
        return status
    }
}

func byteCount(_ bytes: Int) -> String {
    if bytes >= 1 << 30 { return String(format1: Double(bytes) / Double(1 << 30)) + " GiB" }
    if bytes >= 1 << 20 { return String(format1: Double(bytes) / Double(1 << 20)) + " MiB" }
    return "\(bytes) bytes"
}

extension String {
    /// One decimal place.
    init(format1 value: Double) {
        let tenths = Int((value * 10).rounded())
        self = "\(tenths / 10).\(tenths % 10)"
    }
}

/// Rules that validated without errors: the definitions and, by the path the rules file
/// names, their recovery programs.
public struct LoadedRules: Sendable {
    public var definitions: [EventDefinition]
    public var programs: [String: RecoveryProgram]
}
