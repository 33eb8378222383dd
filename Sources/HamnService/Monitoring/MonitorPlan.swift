import HamnConfiguration
import RulesEngine
import RulesParser

/// What this node samples, how often: one entry per variable, built from the definitions that
/// watch variables and the service configuration.
///
/// - Every variable some definition watches gets one entry, with the union of the instances the
///   definitions name: `IBM.PSSP.Prog.pcount` each (ProgName, UserName) pair; `FS.%totused` each
///   `Name`, or every real file system when a definition says `Name=*` or gives no `Name` (both
///   may hold: every real file system plus the named paths); `HAMN.File.Age` each `Name`;
///   `HAMN.DB2.HADR` each `Database`. The node-wide variables (paging space, real memory, CPU)
///   have one instance per node.
/// - `ProgName`, `HAMN.File.Age`'s `Name` and `Database` cannot be enumerated: a definition
///   that gives `*` (or nothing) for one of them is warned about and adds no instance.
/// - A definition whose instance vector says `NodeNum=N` for another node adds nothing here.
/// - A configured variable (``ServiceConfiguration/variables``) replaces a built-in one of the
///   same name and is always sampled, at its own interval, whether rules use it or not.
/// - A configured monitor (``ServiceConfiguration/monitors``) gives a built-in variable's
///   interval (and, for `HAMN.DB2.HADR`, its program). A monitored built-in variable that no
///   rule uses is sampled too when its instances need no naming (node-wide variables, every
///   real file system); otherwise it is warned about.
/// - The other variables are sampled every ``ServiceConfiguration/defaultInterval``. Intervals
///   shorter than 0.1 s are raised to 0.1 s.
/// - A variable the rules use that is neither built in nor configured is warned about, not
///   sampled.
public struct MonitorPlan: Sendable {
    /// Which instances an entry samples.
    public enum Target: Sendable, Hashable {
        /// One instance per node (`NodeNum`).
        case node
        case fileSystems(mountPoints: [String], everyRealFileSystem: Bool)
        case programs([ProcessCountSampler.Program])
        case files([String])
        case databases([String])
        /// An administrator-defined variable: one instance per node.
        case command(ServiceConfiguration.Variable)
    }

    public struct Entry: Sendable {
        public var variable: String
        /// Time between the starts of two samples.
        public var interval: Duration
        public var target: Target
        public var sampler: any ResourceSampler
        /// How long ``MonitorScheduler`` waits for one sample before it cancels it and reports
        /// a failure (the samplers bound their own system calls and commands well within it).
        public var deadline: Duration

        public init(
            variable: String, interval: Duration, target: Target, sampler: any ResourceSampler, deadline: Duration
        ) {
            self.variable = variable
            self.interval = interval
            self.target = target
            self.sampler = sampler
            self.deadline = deadline
        }
    }

    public var entries: [Entry]
    /// Variables and definitions that are not sampled, and why.
    public var warnings: [String]

    public init(entries: [Entry], warnings: [String] = []) {
        self.entries = entries
        self.warnings = warnings
    }

    /// The plan for ``ServiceConfiguration/node``.
    ///
    /// - Parameter procRoot: where `/proc` is (tests point it elsewhere).
    public init(definitions: [EventDefinition], configuration: ServiceConfiguration, procRoot: String = "/proc") {
        var warnings: [String] = []
        let node = configuration.node
        let configured = Dictionary(
            configuration.variables.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
        let monitors = Dictionary(
            configuration.monitors.map { ($0.variable, $0) }, uniquingKeysWith: { first, _ in first })
        let builtIn = Set(BuiltInVariable.all)

        // The definitions watching each variable, in rules order, those for other nodes left out.
        var order: [String] = []
        var watching: [String: [EventDefinition]] = [:]
        for definition in definitions {
            guard let monitoring = definition.monitoring else { continue }
            if case .exactly(let number)? = monitoring.instances["NodeNum"], number != String(node.number) { continue }
            if watching[monitoring.variable] == nil { order.append(monitoring.variable) }
            watching[monitoring.variable, default: []].append(definition)
        }

        func interval(_ seconds: Double) -> Duration {
            Self.duration(max(seconds, 0.1))
        }
        func builtInInterval(_ variable: String) -> Duration {
            interval(monitors[variable]?.interval ?? configuration.defaultInterval)
        }

        var entries: [Entry] = []
        var planned = Set<String>()
        for variable in order {
            let users = watching[variable] ?? []
            if let definition = configured[variable] {
                entries.append(Self.commandEntry(definition))
                planned.insert(variable)
                continue
            }
            guard builtIn.contains(variable) else {
                let names = users.map(\.displayName).joined(separator: ", ")
                warnings.append("\(variable) (watched by \(names)) is neither built in nor configured: not sampled")
                continue
            }
            let target = Self.target(
                variable,
                users.compactMap { definition in
                    definition.monitoring.map { (definition.displayName, $0.instances) }
                }, warnings: &warnings)
            guard let target else { continue }
            entries.append(
                Self.builtInEntry(
                    variable, target: target, interval: builtInInterval(variable), program: monitors[variable]?.command,
                    procRoot: procRoot))
            planned.insert(variable)
        }

        // Configured monitors of built-in variables no rule uses.
        for monitor in configuration.monitors where !planned.contains(monitor.variable) {
            guard configured[monitor.variable] == nil else { continue }
            guard builtIn.contains(monitor.variable) else {
                warnings.append("monitor \(monitor.variable): no such built-in variable; not sampled")
                continue
            }
            let target: Target
            switch monitor.variable {
            case BuiltInVariable.fileSystemUsed: target = .fileSystems(mountPoints: [], everyRealFileSystem: true)
            case BuiltInVariable.processCount, BuiltInVariable.fileAge, BuiltInVariable.db2HADR:
                warnings.append("monitor \(monitor.variable): no rule names an instance of it; not sampled")
                continue
            default: target = .node
            }
            entries.append(
                Self.builtInEntry(
                    monitor.variable, target: target, interval: builtInInterval(monitor.variable),
                    program: monitor.command,
                    procRoot: procRoot))
            planned.insert(monitor.variable)
        }

        // Configured variables no rule uses: sampled all the same.
        for definition in configuration.variables where !planned.contains(definition.name) {
            entries.append(Self.commandEntry(definition))
            planned.insert(definition.name)
        }

        self.entries = entries
        self.warnings = warnings
    }

    /// The plan for the monitored definitions of a rule book.
    public init(rules: RuleBook, configuration: ServiceConfiguration, procRoot: String = "/proc") {
        self.init(definitions: rules.monitored, configuration: configuration, procRoot: procRoot)
    }

    // MARK: - Building entries

    static func duration(_ seconds: Double) -> Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    private static func commandEntry(_ definition: ServiceConfiguration.Variable) -> Entry {
        Entry(
            variable: definition.name, interval: duration(max(definition.interval, 0.1)), target: .command(definition),
            sampler: CommandVariableSampler(definition), deadline: duration(max(definition.timeout, 0.001) + 5))
    }

    private static func builtInEntry(
        _ variable: String, target: Target, interval: Duration, program: String?, procRoot: String
    ) -> Entry {
        let sampler: any ResourceSampler
        var deadline = Duration.seconds(15)
        switch (variable, target) {
        case (BuiltInVariable.pagingSpaceUsed, _): sampler = PagingSpaceSampler(.used, procRoot: procRoot)
        case (BuiltInVariable.pagingSpaceFree, _): sampler = PagingSpaceSampler(.free, procRoot: procRoot)
        case (BuiltInVariable.realMemoryFree, _): sampler = RealMemorySampler(procRoot: procRoot)
        case (BuiltInVariable.cpuIdle, _): sampler = CPUIdleSampler(procRoot: procRoot)
        case (_, .fileSystems(let mountPoints, let every)):
            sampler = FileSystemSampler(mountPoints: mountPoints, everyRealFileSystem: every, procRoot: procRoot)
        case (_, .programs(let programs)):
            sampler = ProcessCountSampler(programs: programs, procRoot: procRoot)
        case (_, .files(let paths)):
            sampler = FileAgeSampler(paths: paths)
        case (_, .databases(let databases)):
            // db2pd may take its time; not longer than the interval, at most 30 s, at least 1 s.
            let timeout = min(max(interval, .seconds(1)), .seconds(30))
            sampler = HADRSampler(databases: databases, program: program, timeout: timeout)
            deadline = timeout + .seconds(5)
        default:
            sampler = RealMemorySampler(procRoot: procRoot)  // not reached: every built-in is above
        }
        return Entry(variable: variable, interval: interval, target: target, sampler: sampler, deadline: deadline)
    }

    /// The instances the definitions name, for a built-in variable; nil (and warnings) when
    /// none can be sampled.
    private static func target(
        _ variable: String, _ users: [(name: String, instances: InstanceVector)], warnings: inout [String]
    ) -> Target? {
        func named(_ element: String, what: String) -> [String] {
            var values: [String] = []
            for (name, instances) in users {
                if case .exactly(let value)? = instances[element] {
                    if !values.contains(value) { values.append(value) }
                } else {
                    warnings.append(
                        "\(name): \(variable) needs \(element)=\(what) (\(element)=* cannot be enumerated); not sampled for it"
                    )
                }
            }
            return values
        }
        switch variable {
        case BuiltInVariable.fileSystemUsed:
            var mountPoints: [String] = []
            var every = false
            for (_, instances) in users {
                if case .exactly(let value)? = instances["Name"] {
                    if !mountPoints.contains(value) { mountPoints.append(value) }
                } else {
                    every = true
                }
            }
            return .fileSystems(mountPoints: mountPoints, everyRealFileSystem: every)
        case BuiltInVariable.processCount:
            var programs: [ProcessCountSampler.Program] = []
            for (name, instances) in users {
                guard case .exactly(let program)? = instances["ProgName"] else {
                    warnings.append(
                        "\(name): \(variable) needs ProgName=PROGRAM (ProgName=* cannot be enumerated); not sampled for it"
                    )
                    continue
                }
                var user: String? = nil
                if case .exactly(let value)? = instances["UserName"] { user = value }
                let entry = ProcessCountSampler.Program(name: program, user: user)
                if !programs.contains(entry) { programs.append(entry) }
            }
            return programs.isEmpty ? nil : .programs(programs)
        case BuiltInVariable.fileAge:
            let paths = named("Name", what: "PATH")
            return paths.isEmpty ? nil : .files(paths)
        case BuiltInVariable.db2HADR:
            let databases = named("Database", what: "DATABASE")
            return databases.isEmpty ? nil : .databases(databases)
        default:
            return .node
        }
    }
}
