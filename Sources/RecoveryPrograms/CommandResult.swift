import RulesParser

/// How a command ended.
public enum Termination: Sendable, Hashable, Codable, CustomStringConvertible {
    /// It exited with this status.
    case exited(Int32)
    /// A signal ended it.
    case signaled(Int32)
    /// It ran past its timeout; its whole process group was killed.
    case timedOut
    /// It could not be started; why.
    case couldNotStart(String)

    public var description: String {
        switch self {
        case .exited(let status): "exit \(status)"
        case .signaled(let signal): "signal \(signal)"
        case .timedOut: "timed out"
        case .couldNotStart(let why): "could not start: \(why)"
        }
    }
}

/// What one command of a segment did. A status that differs from the expected one is a
/// result (`accepted == false`), not an error.
public struct CommandResult: Sendable, Hashable, Codable {
    /// The command text as the `.rp` file gives it.
    public var command: String
    /// Its line in the `.rp` file.
    public var line: Int
    public var termination: Termination
    /// Whether the termination satisfies the expected status: an exit with that status, or
    /// any exit for `x`. A signal, a timeout or a failure to start is never accepted.
    public var accepted: Bool
    /// Wall time, in seconds.
    public var duration: Double
    /// The last bytes of its standard output and standard error, interleaved as written.
    public var outputTail: String
    /// When the node that ran it saw it end (seconds since 1970, that node's clock); nil for
    /// simulated commands. With a barrier's passage, it gives the barrier's latency.
    public var endedAt: Double?

    public init(
        command: String, line: Int, termination: Termination, accepted: Bool, duration: Double, outputTail: String,
        endedAt: Double? = nil
    ) {
        self.command = command
        self.line = line
        self.termination = termination
        self.accepted = accepted
        self.duration = duration
        self.outputTail = outputTail
        self.endedAt = endedAt
    }

    /// Whether `termination` satisfies `expected`.
    public static func accepts(_ expected: ExpectedStatus, _ termination: Termination) -> Bool {
        guard case .exited(let status) = termination else { return false }
        return expected.accepts(status)
    }
}
