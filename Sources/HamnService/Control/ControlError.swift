/// What failed, in an answer of the control socket: a code for the command line's exit status
/// and for machines, a message for people.
///
/// A struct with an open set of codes (as swift-service-lifecycle's errors are), so that a
/// newer service's code still decodes in an older command line (it exits 1 then).
public struct ControlError: Error, Sendable, Hashable, Codable, CustomStringConvertible {
    public struct Code: RawRepresentable, Sendable, Hashable, Codable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The request line is not JSON, or not a request this service knows.
        public static let malformedRequest = Code(rawValue: "malformed-request")
        /// A value of the request is wrong: an event name with blanks, an unknown node, a bad
        /// node range, a negative limit.
        public static let invalidArgument = Code(rawValue: "invalid-argument")
        /// The client is neither root nor the service's user.
        public static let permissionDenied = Code(rawValue: "permission-denied")
        /// `wait-event`: the event did not complete within the timeout.
        public static let timeout = Code(rawValue: "timeout")
        /// `resume` with no event held in the failed state.
        public static let nothingToResume = Code(rawValue: "nothing-to-resume")
        /// `resume --retry`/`--continue` while a member of the cluster does not speak wire
        /// version 3, which carries them (a rolling upgrade not finished).
        public static let wireVersion = Code(rawValue: "wire-version")
        /// The configuration lacks what the request needs (`ha-cmd START` without `start_command`).
        public static let notConfigured = Code(rawValue: "not-configured")
        /// A command the service ran for the request did not end as expected (`ha-cmd START`).
        public static let commandFailed = Code(rawValue: "command-failed")
        /// The journal could not be read.
        public static let journal = Code(rawValue: "journal")
        /// The service serves as many control connections as it takes, or is out of file
        /// descriptors: try again shortly.
        public static let busy = Code(rawValue: "busy")
        /// `mon`: the client did not read its lines fast enough and was dropped.
        public static let clientTooSlow = Code(rawValue: "client-too-slow")
        /// The service stopped before the request was done (`wait-event`, `mon`'s end after a
        /// clean stop is not this: it ends with a `done`).
        public static let serviceStopped = Code(rawValue: "service-stopped")
        /// `trigger`: sent to the cluster, but not recorded in the journal (it cannot write,
        /// or the raise did not come back in time): it may or may not run.
        public static let notRecorded = Code(rawValue: "not-recorded")
        /// `trigger`: `queue_limit` events wait already; the event was refused.
        public static let queueFull = Code(rawValue: "queue-full")
        /// `sync`: refused on the node asked (nothing sent), or not taken by every node.
        public static let syncRefused = Code(rawValue: "sync-refused")
        /// `status --all` on a node that is not a member: it cannot ask the others.
        public static let notMember = Code(rawValue: "not-member")
        /// `history EVENT`: the journal has no such event.
        public static let noSuchEvent = Code(rawValue: "no-such-event")
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    /// The command line's exit status (SPEC section 8): 2 for a usage error, 1 otherwise.
    public var exitCode: Int32 {
        code == .malformedRequest || code == .invalidArgument ? 2 : 1
    }

    public var description: String { message }
}
