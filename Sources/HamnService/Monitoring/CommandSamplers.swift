import CommandExecution
import HamnConfiguration
import RulesEngine
import RulesParser

/// `HAMN.DB2.HADR`: runs `db2pd -d DATABASE -hadr` for each database the rules name and
/// parses its output with ``HADRStatusParser``.
///
/// - The program is ``program`` (``ServiceConfiguration/Monitor/command``), default `db2pd`,
///   looked up on `PATH` at each sample when it has no `/`. It is one program, not a command
///   line: to run `db2pd` as the instance owner (`su - db2inst1 -c ...`) point it at a wrapper
///   script that passes its arguments on.
/// - It is run WITHOUT a shell: the argument vector is `[program, "-d", DATABASE, "-hadr"]`, the
///   database name one argument, never spliced into a command text. New session, standard
///   input from `/dev/null`, killed with its process group after ``timeout``
///   (``MonitorCommand``).
/// - The databases are sampled in parallel. Each database whose run fails (cannot start, timed
///   out, output without HADR status, whatever its exit status) is a problem for its instance;
///   the exit status and standard error are in the message. The output is parsed whatever the
///   exit status is.
public struct HADRSampler: InstanceReportingSampler {
    public let databases: [String]
    public let program: String
    public let timeout: Duration
    let environment: [String: String]

    public init(databases: [String], program: String? = nil, timeout: Duration = .seconds(10)) {
        self.init(
            databases: databases, program: program, timeout: timeout, environment: MonitorCommand.defaultEnvironment())
    }

    init(databases: [String], program: String?, timeout: Duration, environment: [String: String]) {
        var seen = Set<String>()
        self.databases = databases.filter { seen.insert($0).inserted }
        self.program = program.flatMap { $0.isEmpty ? nil : $0 } ?? "db2pd"
        self.timeout = timeout
        self.environment = environment
    }

    public var variable: String { BuiltInVariable.db2HADR }

    public func sampleBatch(node: ClusterNode) async throws(SamplerError) -> SampleBatch {
        guard let path = MonitorCommand.locate(program, path: environment["PATH"]) else {
            // A configured path is the administrator's: a fault. `db2pd` not on PATH: DB2 is not
            // installed here, reported once at info level.
            throw program.contains("/")
                ? SamplerError("\(program) is not an executable file")
                : SamplerError(
                    "\(program) is not found on PATH (\(environment["PATH"] ?? ""))", notInstalled: true)
        }
        let variable = self.variable
        let timeout = self.timeout
        let environment = self.environment
        let results = await withTaskGroup(of: (Int, SampleObservation?, SampleProblem?).self) { group in
            for (index, database) in databases.enumerated() {
                group.addTask {
                    let instance = ["Database": database, "NodeNum": node.instanceNumber]
                    let command = MonitorCommand(
                        arguments: [path, "-d", database, "-hadr"], timeout: timeout, environment: environment)
                    let result = await command.run()
                    let problem: String
                    switch result.termination {
                    case .couldNotStart(let why):
                        problem = "\(path) could not start: \(why)"
                    case .timedOut:
                        problem = "\(path) -d \(database) -hadr did not end within \(timeout); killed"
                    case .exited, .signaled:
                        do throws(HADRStatusParser.ParseError) {
                            let status = try HADRStatusParser.parse(result.output)
                            return (
                                index, SampleObservation(variable: variable, instance: instance, value: status.value),
                                nil
                            )
                        } catch {
                            problem = "\(error.message) (\(path) -d \(database) -hadr: \(result.summary))"
                        }
                    }
                    return (index, nil, SampleProblem(instance: monitorInstanceText(instance), message: problem))
                }
            }
            var collected: [(Int, SampleObservation?, SampleProblem?)] = []
            for await result in group { collected.append(result) }
            return collected.sorted { $0.0 < $1.0 }
        }
        return SampleBatch(observations: results.compactMap(\.1), problems: results.compactMap(\.2))
    }
}

/// An administrator-defined variable (``ServiceConfiguration/Variable``): its command run by
/// `/bin/sh -c`, or directly when the shell would only split it into words
/// (``plainArguments(_:)``) (in a new session, standard input from `/dev/null`, its process group killed
/// after the variable's timeout), its standard output parsed by the variable's parser
/// (``CommandOutputParser``).
///
/// - A command that exits with a status other than 0, is ended by a signal, times out or
///   cannot start is a failed sample (``SamplerError``, with the end of its standard error);
///   its output is not used.
/// - Output beyond 256 KiB is a failed sample.
/// - One instance per node: `NodeNum` = this node. Other instance elements the variable
///   declares are not set by the command (rules can only select them with `*`).
public struct CommandVariableSampler: ResourceSampler {
    public let definition: ServiceConfiguration.Variable
    let environment: [String: String]
    let shell: String

    public init(_ definition: ServiceConfiguration.Variable) {
        self.init(definition, environment: MonitorCommand.defaultEnvironment())
    }

    init(_ definition: ServiceConfiguration.Variable, environment: [String: String], shell: String = "/bin/sh") {
        self.definition = definition
        self.environment = environment
        self.shell = shell
    }

    public var variable: String { definition.name }

    public var timeout: Duration { .milliseconds(Int64(max(0.001, definition.timeout) * 1000)) }

    public func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        // R020 at each sample (it runs as root): a program swapped, or made replaceable, since
        // the configuration was loaded is refused.
        if let program = CommandStep(
            relationship: .all, command: definition.command, expected: .any, line: 0, column: 0
        ).program, program.hasPrefix("/"), let problem = NodeService.pathCheck(program) {
            throw SamplerError("refused: \(program) \(problem)")
        }
        let command = MonitorCommand(
            arguments: Self.plainArguments(definition.command) ?? [shell, "-c", definition.command], timeout: timeout,
            environment: environment)
        let result = await command.run()
        switch result.termination {
        case .exited(0):
            break
        case .timedOut:
            throw SamplerError("the command did not end within \(definition.timeout) s; its process group was killed")
        case .couldNotStart(let why):
            throw SamplerError("the command could not start: \(why)")
        case .exited, .signaled:
            throw SamplerError("the command failed (\(result.summary))")
        }
        guard !result.outputTruncated else {
            throw SamplerError("the command printed more than \(command.outputLimit / 1024) KiB")
        }
        let value = try CommandOutputParser.parse(result.output, parser: definition.parser, fields: definition.fields)
        return [SampleObservation(variable: variable, instance: ["NodeNum": node.instanceNumber], value: value)]
    }
}

extension CommandVariableSampler {
    /// The words of a command that the shell would only split at blanks (an absolute program,
    /// then letters, digits and `/ . _ , : + @ % = -`): run without `/bin/sh`, which saves a
    /// process start at every sample (100 variables at 1 s: 100 shells a second). nil for
    /// anything else (quotes, `$`, globs, redirections, `~`, `;`, an assignment before the
    /// program...), which `/bin/sh -c` runs as written.
    static func plainArguments(_ command: String) -> [String]? {
        let words = command.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard let program = words.first, program.hasPrefix("/"), !program.contains("=") else { return nil }
        let allowed: Set<Character> = ["/", ".", "_", ",", ":", "+", "@", "%", "=", "-", " ", "\t"]
        guard command.allSatisfy({ ($0.isASCII && ($0.isLetter || $0.isNumber)) || allowed.contains($0) }) else {
            return nil
        }
        return words
    }
}

extension MonitorCommand.Result {
    /// `exit 3`, with the end of standard error when there is some.
    var summary: String {
        let error = errorTail.monitorTrimmedString
        return error.isEmpty ? termination.description : "\(termination.description): \(String(error.suffix(300)))"
    }
}
