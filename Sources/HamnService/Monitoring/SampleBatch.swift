import RulesEngine

/// An instance a sampler could not sample this time, and why. The other instances of the same
/// sample are still reported.
public struct SampleProblem: Sendable, Hashable, CustomStringConvertible {
    /// The instance, as ``SampleObservation/instanceText`` names it (`Name=/var;NodeNum=1`).
    public var instance: String
    public var message: String
    /// What the instance names is not installed on this machine (the user of
    /// `UserName=db2inst1` does not exist): reported once at info level, not as a fault.
    public var notInstalled: Bool

    public init(instance: String, message: String, notInstalled: Bool = false) {
        self.instance = instance
        self.message = message
        self.notInstalled = notInstalled
    }

    public var description: String { "\(instance): \(message)" }
}

/// What one sample gave: the instances it could sample and those it could not.
public struct SampleBatch: Sendable, Hashable {
    public var observations: [SampleObservation]
    public var problems: [SampleProblem]

    public init(observations: [SampleObservation] = [], problems: [SampleProblem] = []) {
        self.observations = observations
        self.problems = problems
    }
}

/// A sampler of several instances that reports the instances it could not sample beside those
/// it could (a missing file for `HAMN.File.Age`, a database `db2pd` does not know).
///
/// Its ``ResourceSampler/sample(node:)`` returns the observations alone, and throws when there
/// are problems and no observation at all; ``MonitorScheduler`` calls ``sampleBatch(node:)``.
public protocol InstanceReportingSampler: ResourceSampler {
    func sampleBatch(node: ClusterNode) async throws(SamplerError) -> SampleBatch
}

extension InstanceReportingSampler {
    public func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation] {
        let batch = try await sampleBatch(node: node)
        if batch.observations.isEmpty, !batch.problems.isEmpty {
            throw SamplerError(
                batch.problems.map(\.description).joined(separator: "; "),
                notInstalled: batch.problems.allSatisfy(\.notInstalled))
        }
        return batch.observations
    }
}

extension ClusterNode {
    /// The `NodeNum` element of this node's instances.
    var instanceNumber: String { String(number) }
}

/// An instance's name for a ``SampleProblem``, as ``SampleObservation/instanceText`` would give it.
func monitorInstanceText(_ elements: [String: String]) -> String {
    SampleObservation(variable: "", instance: elements, value: .number(0)).instanceText
}
