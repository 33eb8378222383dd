import RulesEngine

/// The variable names of SPEC section 5.
public enum BuiltInVariable {
    public static let pagingSpaceUsed = "IBM.PSSP.aixos.PagSp.%totalused"
    public static let pagingSpaceFree = "IBM.PSSP.aixos.PagSp.%totalfree"
    public static let realMemoryFree = "IBM.PSSP.aixos.Mem.Real.%free"
    public static let fileSystemUsed = "IBM.PSSP.aixos.FS.%totused"
    public static let cpuIdle = "IBM.PSSP.aixos.CPU.glidle"
    public static let processCount = "IBM.PSSP.Prog.pcount"
    public static let db2HADR = "HAMN.DB2.HADR"
    public static let fileAge = "HAMN.File.Age"

    public static let all: [String] = [
        pagingSpaceUsed, pagingSpaceFree, realMemoryFree, fileSystemUsed, cpuIdle, processCount, db2HADR, fileAge,
    ]
}

/// Reads a `/proc` file off the cooperative pool; a read that does not return within 5 s is an
/// error.
private func readProcFile(_ path: String, calls: HungCalls, timeout: Duration = .seconds(5)) async throws(SamplerError)
    -> String
{
    let outcome = await calls.run(path, timeout: timeout) {
        MonitorSystem.attempt { () throws(MonitorSystem.CallError) in try MonitorSystem.readText(path) }
    }
    switch outcome {
    case .done(.success(let text)): return text
    case .done(.failure(let error)): throw SamplerError(error.description)
    case .stillBlocked: throw SamplerError("the previous read of \(path) has not returned yet")
    case .timedOut: throw SamplerError("reading \(path) did not return within \(timeout)")
    case .cancelled: throw SamplerError("cancelled")
    }
}

// MARK: - Paging space

/// `IBM.PSSP.aixos.PagSp.%totalused` or `.%totalfree`: swap used or free, percent, from
/// `SwapTotal` and `SwapFree` of `/proc/meminfo`. A node without swap is 0 % used, 100 % free.
public struct PagingSpaceSampler: ResourceSampler {
    public enum Measure: Sendable, Hashable {
        case used
        case free
    }

    public let measure: Measure
    public let procRoot: String
    private let calls = HungCalls()

    public init(_ measure: Measure, procRoot: String = "/proc") {
        self.measure = measure
        self.procRoot = procRoot
    }

    public var variable: String {
        measure == .used ? BuiltInVariable.pagingSpaceUsed : BuiltInVariable.pagingSpaceFree
    }

    public func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        let path = procRoot + "/meminfo"
        let text = try await readProcFile(path, calls: calls)
        guard let percent = ProcParsers.swapPercent(memInfo: ProcParsers.memInfo(text)) else {
            throw SamplerError("\(path) has no SwapTotal and SwapFree")
        }
        return [
            SampleObservation(
                variable: variable, instance: ["NodeNum": node.instanceNumber],
                value: .number(measure == .used ? percent.used : percent.free))
        ]
    }
}

// MARK: - Real memory

/// `IBM.PSSP.aixos.Mem.Real.%free`: `MemAvailable` / `MemTotal` of `/proc/meminfo`, percent.
public struct RealMemorySampler: ResourceSampler {
    public let procRoot: String
    private let calls = HungCalls()

    public init(procRoot: String = "/proc") {
        self.procRoot = procRoot
    }

    public var variable: String { BuiltInVariable.realMemoryFree }

    public func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        let path = procRoot + "/meminfo"
        let text = try await readProcFile(path, calls: calls)
        guard let percent = ProcParsers.memoryFreePercent(memInfo: ProcParsers.memInfo(text)) else {
            throw SamplerError("\(path) has no MemTotal and MemAvailable")
        }
        return [
            SampleObservation(variable: variable, instance: ["NodeNum": node.instanceNumber], value: .number(percent))
        ]
    }
}

// MARK: - CPU idle

/// `IBM.PSSP.aixos.CPU.glidle`: CPU idle percent, (idle + iowait) over all ticks of the `cpu`
/// line of `/proc/stat` between this sample and the previous one. The first sample takes its
/// baseline reading ``baselineDelay`` (100 ms) before its own, so a value is there from the
/// first sample on.
public struct CPUIdleSampler: ResourceSampler {
    public let procRoot: String
    public let baselineDelay: Duration
    private let previous = MonitorLocked<ProcParsers.CPUTimes?>(nil)
    private let calls = HungCalls()

    public init(procRoot: String = "/proc", baselineDelay: Duration = .milliseconds(100)) {
        self.procRoot = procRoot
        self.baselineDelay = baselineDelay
    }

    public var variable: String { BuiltInVariable.cpuIdle }

    public func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        var baseline = previous.withLock { $0 }
        if baseline == nil {
            baseline = try await read()
            do {
                try await Task.sleep(for: baselineDelay)
            } catch {
                throw SamplerError("cancelled")
            }
        }
        let now = try await read()
        guard let baseline, let percent = ProcParsers.idlePercent(from: baseline, to: now) else {
            previous.withLock { $0 = now }
            throw SamplerError("no CPU time elapsed between two readings of \(procRoot)/stat")
        }
        previous.withLock { $0 = now }
        return [
            SampleObservation(variable: variable, instance: ["NodeNum": node.instanceNumber], value: .number(percent))
        ]
    }

    private func read() async throws(SamplerError) -> ProcParsers.CPUTimes {
        let path = procRoot + "/stat"
        let text = try await readProcFile(path, calls: calls)
        guard let times = ProcParsers.cpuTimes(text) else { throw SamplerError("\(path) has no cpu line") }
        return times
    }
}

// MARK: - File systems

/// `IBM.PSSP.aixos.FS.%totused`: percent used as `df` computes it, from `statvfs`, for each
/// mount point (instance element `Name`).
///
/// With ``everyRealFileSystem`` (the rules say `Name=*` or nothing), every real file system of
/// `/proc/self/mounts` (``ProcParsers/realMountPoints(_:)``: pseudo and memory-backed file
/// systems skipped), read at each sample, plus ``mountPoints``. A path named explicitly is
/// sampled whatever it is: a directory that is not a mount point gives the file system that
/// holds it, a `tmpfs` mount point is watched, a path that does not exist is a problem. A
/// `statvfs` that fails or does not return within ``callTimeout`` (a hung NFS server) is a
/// problem for that instance; while it stays blocked it is not called again.
public struct FileSystemSampler: InstanceReportingSampler {
    /// Mount points (or paths) named by the rules.
    public let mountPoints: [String]
    public let everyRealFileSystem: Bool
    public let procRoot: String
    public let callTimeout: Duration
    private let calls = HungCalls()

    public init(
        mountPoints: [String] = [], everyRealFileSystem: Bool = false, procRoot: String = "/proc",
        callTimeout: Duration = .seconds(5)
    ) {
        var seen = Set<String>()
        self.mountPoints = mountPoints.filter { seen.insert($0).inserted }
        self.everyRealFileSystem = everyRealFileSystem
        self.procRoot = procRoot
        self.callTimeout = callTimeout
    }

    public var variable: String { BuiltInVariable.fileSystemUsed }

    public func sampleBatch(node: ClusterNode) async throws(SamplerError) -> SampleBatch {
        let named = Set(mountPoints)
        var points = mountPoints
        if everyRealFileSystem {
            let text = try await readProcFile(procRoot + "/self/mounts", calls: calls)
            let mounted = ProcParsers.realMountPoints(ProcParsers.mounts(text)).filter { !named.contains($0) }
            points = mounted + mountPoints
        }
        let variable = self.variable
        let calls = self.calls
        let timeout = callTimeout
        let results = await withTaskGroup(of: (Int, SampleObservation?, SampleProblem?).self) { group in
            for (index, point) in points.enumerated() {
                group.addTask {
                    let instance = ["NodeNum": node.instanceNumber, "Name": point]
                    let outcome = await calls.run(point, timeout: timeout) {
                        MonitorSystem.attempt { () throws(MonitorSystem.CallError) in
                            try MonitorSystem.fileSystemBlocks(point)
                        }
                    }
                    let problem: String
                    switch outcome {
                    case .done(.success(let blocks)):
                        if let percent = ProcParsers.fileSystemUsedPercent(
                            blocks: blocks.blocks, free: blocks.free, available: blocks.available)
                        {
                            return (
                                index,
                                SampleObservation(variable: variable, instance: instance, value: .number(percent)), nil
                            )
                        }
                        guard named.contains(point) else { return (index, nil, nil) }  // a file system with no blocks
                        problem = "\(point) has no blocks"
                    case .done(.failure(let error)): problem = error.description
                    case .stillBlocked: problem = "the previous statvfs of \(point) has not returned yet"
                    case .timedOut: problem = "statvfs \(point) did not return within \(timeout)"
                    case .cancelled: problem = "cancelled"
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

// MARK: - File age

/// `HAMN.File.Age`: seconds (whole, rounded down) since each path's last modification, `stat`
/// following symbolic links. A modification time in the future (clock skew) counts as age 0.
/// A path that cannot be `stat`ed (missing) is a problem for that instance, skipped this time.
public struct FileAgeSampler: InstanceReportingSampler {
    public let paths: [String]
    public let callTimeout: Duration
    /// The wall clock, seconds since the epoch; injectable for tests.
    let now: @Sendable () -> Double
    private let calls = HungCalls()

    public init(paths: [String], callTimeout: Duration = .seconds(5)) {
        self.init(paths: paths, callTimeout: callTimeout, now: MonitorSystem.now)
    }

    init(paths: [String], callTimeout: Duration, now: @escaping @Sendable () -> Double) {
        self.paths = paths
        self.callTimeout = callTimeout
        self.now = now
    }

    public var variable: String { BuiltInVariable.fileAge }

    public func sampleBatch(node: ClusterNode) async throws(SamplerError) -> SampleBatch {
        var batch = SampleBatch()
        for path in paths {
            let instance = ["NodeNum": node.instanceNumber, "Name": path]
            let outcome = await calls.run(path, timeout: callTimeout) {
                MonitorSystem.attempt { () throws(MonitorSystem.CallError) in try MonitorSystem.modificationTime(path) }
            }
            switch outcome {
            case .done(.success(let modified)):
                let age = max(0, (now() - modified).rounded(.down))
                batch.observations.append(
                    SampleObservation(variable: variable, instance: instance, value: .number(age)))
            case .done(.failure(let error)):
                batch.problems.append(
                    SampleProblem(instance: monitorInstanceText(instance), message: error.description))
            case .stillBlocked:
                batch.problems.append(
                    SampleProblem(
                        instance: monitorInstanceText(instance),
                        message: "the previous stat of \(path) has not returned yet"))
            case .timedOut:
                batch.problems.append(
                    SampleProblem(
                        instance: monitorInstanceText(instance),
                        message: "stat \(path) did not return within \(callTimeout)"))
            case .cancelled:
                throw SamplerError("cancelled")
            }
        }
        return batch
    }
}
