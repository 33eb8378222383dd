import RulesEngine

/// `IBM.PSSP.Prog.pcount`: for each program (and user) the rules name, the live processes of
/// that program, scanned from `/proc/<pid>/stat`, `/proc/<pid>/status` and `/proc/<pid>/cmdline`.
///
/// - The value is structured: `CurPIDCount` (number), `PrevPIDCount` (number: the count at this
///   instance's previous sample; at its first sample, the current count, so that `X@0 < X@1`
///   cannot fire on the first sample), `CurPIDList` (the PIDs, ascending, joined by commas;
///   empty when there are none).
/// - A process is of program P when its command name (`comm`, which the kernel cuts to 15
///   bytes) equals the first 15 bytes of P, or when the base name of its `argv[0]` is P. The
///   command name also finds kernel threads (`nfsd`) and scripts run by an interpreter (their
///   `comm` is the script's name); `argv[0]` finds programs that renamed their thread.
///   `/proc/<pid>/exe` is not used: it cannot be read for other users' processes without
///   privileges.
/// - Zombies (`Z`) and dead (`X`) processes are not live. Only processes (thread group leaders,
///   the numbered entries of `/proc`) are counted, not their threads.
/// - The user is matched on the REAL uid (the `Uid:` line's first number), compared with the
///   uid of the named user (`getpwnam_r`, looked up at each sample; a numeric name that is no
///   user's name is taken as a uid). A user that does not exist is a problem for that instance,
///   a `notInstalled` one: the product that runs as that user is not installed here (the
///   shipped DB2 definitions' `db2inst1` on a machine without DB2), reported once at info level.
/// - `user` nil (`UserName=*` or no `UserName` in the rules) counts every user's processes;
///   that instance is named `UserName=*`.
public struct ProcessCountSampler: InstanceReportingSampler {
    public struct Program: Sendable, Hashable, Comparable {
        public var name: String
        /// nil: any user.
        public var user: String?

        public init(name: String, user: String? = nil) {
            self.name = name
            self.user = user
        }

        public static func < (lhs: Program, rhs: Program) -> Bool {
            (lhs.name, lhs.user ?? "") < (rhs.name, rhs.user ?? "")
        }

        /// `UserName` of the instance: the user, or `*` for any.
        public var userElement: String { user ?? "*" }
    }

    public let programs: [Program]
    public let procRoot: String
    public let scanTimeout: Duration
    private let previousCounts = MonitorLocked<[Program: Int]>([:])
    private let calls = HungCalls()

    public init(programs: [Program], procRoot: String = "/proc", scanTimeout: Duration = .seconds(10)) {
        var seen = Set<Program>()
        self.programs = programs.filter { seen.insert($0).inserted }
        self.procRoot = procRoot
        self.scanTimeout = scanTimeout
    }

    public var variable: String { BuiltInVariable.processCount }

    public func sampleBatch(node: ClusterNode) async throws(SamplerError) -> SampleBatch {
        var batch = SampleBatch()
        let root = procRoot
        let programs = self.programs
        // User look-ups (NSS: perhaps LDAP over the network) and the scan run off the
        // cooperative pool, bounded by the scan timeout.
        let outcome = await calls.run("scan", timeout: scanTimeout) {
            () -> (Result<[Program: [Int]], MonitorSystem.CallError>, [(Program, UInt32?)], [Program]) in
            let (wanted, unknown) = Self.resolveUsers(programs)
            guard !wanted.isEmpty else { return (.success([:]), wanted, unknown) }
            let found = MonitorSystem.attempt { () throws(MonitorSystem.CallError) in
                try Self.scan(procRoot: root, wanted: wanted)
            }
            return (found, wanted, unknown)
        }
        let found: [Program: [Int]]
        let wanted: [(Program, UInt32?)]
        switch outcome {
        case .done((.success(let pids), let resolved, let unknown)):
            found = pids
            wanted = resolved
            for program in unknown {
                batch.problems.append(
                    SampleProblem(
                        instance: monitorInstanceText(elements(program, node)),
                        message: "no user named \(program.user ?? "")", notInstalled: true))
            }
        case .done((.failure(let error), _, _)): throw SamplerError(error.description)
        case .stillBlocked: throw SamplerError("the previous scan of \(root) has not returned yet")
        case .timedOut: throw SamplerError("scanning \(root) did not end within \(scanTimeout)")
        case .cancelled: throw SamplerError("cancelled")
        }
        let counted = wanted.map(\.0)
        let previous = previousCounts.withLock { counts -> [Program: Int] in
            let before = counts
            for program in counted { counts[program] = found[program]?.count ?? 0 }
            return before
        }
        for program in counted {
            let pids = (found[program] ?? []).sorted()
            let value = SampleValue.fields([
                .init("CurPIDCount", .number(Double(pids.count))),
                .init("PrevPIDCount", .number(Double(previous[program] ?? pids.count))),
                .init("CurPIDList", .string(pids.map(String.init).joined(separator: ","))),
            ])
            batch.observations.append(
                SampleObservation(variable: variable, instance: elements(program, node), value: value))
        }
        return batch
    }

    /// The uid of each program's user (nil: any user), resolved now (accounts can be added while
    /// the service runs); the programs whose user does not exist apart.
    static func resolveUsers(_ programs: [Program]) -> (wanted: [(Program, UInt32?)], unknown: [Program]) {
        var wanted: [(Program, UInt32?)] = []
        var unknown: [Program] = []
        for program in programs {
            guard let user = program.user else {
                wanted.append((program, nil))
                continue
            }
            if let uid = MonitorSystem.userID(named: user) ?? UInt32(user) {
                wanted.append((program, uid))
            } else {
                unknown.append(program)
            }
        }
        return (wanted, unknown)
    }

    private func elements(_ program: Program, _ node: ClusterNode) -> [String: String] {
        ["ProgName": program.name, "UserName": program.userElement, "NodeNum": node.instanceNumber]
    }

    /// One pass over `/proc`: the live PIDs of each wanted program (and uid, nil for any).
    static func scan(procRoot: String, wanted: [(Program, UInt32?)]) throws(MonitorSystem.CallError) -> [Program: [Int]]
    {
        var found: [Program: [Int]] = [:]
        let commandNames = wanted.map { ProcParsers.commandName(of: $0.0.name) }
        for entry in try MonitorSystem.listDirectory(procRoot) {
            guard let first = entry.utf8.first, first >= 0x30, first <= 0x39, let pid = Int(entry) else { continue }
            let directory = procRoot + "/" + entry
            // A process that ends while we look is simply not counted.
            guard let statText = try? MonitorSystem.readText(directory + "/stat", limit: 4096),
                let stat = ProcParsers.processStat(statText), stat.isLive
            else { continue }
            var argumentZero: String??  // read once, when needed
            var realUID: UInt32??
            for (index, (program, uid)) in wanted.enumerated() {
                var matches = commandNames[index] == stat.command
                if !matches {
                    if argumentZero == nil {
                        let bytes = (try? MonitorSystem.readFile(directory + "/cmdline", limit: 4096)) ?? []
                        argumentZero = .some(ProcParsers.argumentZeroBaseName(cmdline: bytes))
                    }
                    matches = argumentZero! == program.name
                }
                guard matches else { continue }
                if let uid {
                    if realUID == nil {
                        let status = try? MonitorSystem.readText(directory + "/status", limit: 16384)
                        realUID = .some(status.flatMap { ProcParsers.realUserID(status: $0) })
                    }
                    guard realUID! == uid else { continue }
                }
                found[program, default: []].append(pid)
            }
        }
        return found
    }
}
