import RulesEngine

/// Samples one resource variable on this node: every instance it watches, now.
///
/// A sampler that cannot read its source throws; the monitor reports it and tries again at its
/// next interval. A sampler never blocks the others: each runs in its own task, and one that
/// runs commands bounds them with a timeout.
public protocol ResourceSampler: Sendable {
    /// The resource variable, e.g. `IBM.PSSP.aixos.PagSp.%totalused`.
    var variable: String { get }
    /// The instances sampled now, each with its element values (`NodeNum` included).
    func sample(node: ClusterNode) async throws(SamplerError) -> [SampleObservation]
}

/// Why a sample could not be taken.
public struct SamplerError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// What the sampler reads is not installed on this machine (`db2pd` not on `PATH`): not a
    /// fault, reported once at info level (``MonitorReport/notInstalled(variable:instance:message:)``).
    public var notInstalled: Bool

    public init(_ message: String, notInstalled: Bool = false) {
        self.message = message
        self.notInstalled = notInstalled
    }

    public var description: String { message }
}
