import Foundation
import RulesEngine

/// Why the journal could not do what was asked: it cannot be opened (a directory at the path,
/// permission denied, a file that is not SQLite, a schema from a newer version), or a read or
/// write failed. The journal never crashes the process; it throws this.
public struct JournalError: Error, Sendable, Hashable, CustomStringConvertible {
    public var message: String
    /// Set when the write failed for want of storage (a full disk, an I/O error, a journal
    /// that was deleted): the writes are kept and tried again, and nothing that needs them on
    /// disk goes on meanwhile. The short reason: `No space left on device`.
    public var storage: String?

    public init(_ message: String, storage: String? = nil) {
        self.message = message
        self.storage = storage
    }

    public var description: String { message }
}

/// One event as the journal knows it: what the cluster agreed on, when it was queued,
/// started and finished, who took part, what every command did and when barriers were passed.
///
/// Events are keyed by `(run, id)`: the coordinator numbers events from 1 each time a cluster
/// forms, so an id alone is unique only within one run of the journal.
public struct JournalEvent: Sendable, Hashable, Codable {
    /// The journal run (see `JournalRun`) the event belongs to.
    public var run: Int64
    /// The coordinator's event id: the same on every node.
    public var id: Int
    public var name: String
    public var state: Int
    /// The node where the event occurred.
    public var node: ClusterNode
    /// The rule's display name; nil until the event started (never, for a suppressed event).
    public var displayName: String?
    public var priority: Int
    /// The position in which its request was delivered.
    public var arrival: Int
    /// For Event Management events: what made the predicate true.
    public var resource: ResourceObservation?
    /// How it ended; nil while queued or running (or held after a failure, see `failure`).
    public var outcome: EventOutcome?
    public var queuedAt: Date?
    public var startedAt: Date?
    public var finishedAt: Date?
    /// The members at its start, each with the time it left if it left while the event ran.
    public var participants: [JournalParticipant]
    /// The first command that failed its expected status, or nil: the failure the event is held
    /// for (`resume --retry` and `--continue` clear it; a failure after them is recorded anew).
    public var failure: JournalFailure?
    /// Every command of every participant, in the order the results were delivered.
    public var commands: [JournalCommand]
    /// Barrier passages, in order.
    public var barriers: [JournalBarrier]

    /// `queued`, `running`, `held` (failed, waiting for `resume`) or the outcome.
    public var status: String {
        if let outcome { return outcome.rawValue }
        if failure != nil { return "held" }
        return startedAt == nil ? "queued" : "running"
    }
}

public struct JournalParticipant: Sendable, Hashable, Codable {
    public var node: ClusterNode
    /// When it left the cluster while the event ran (it was dropped from the barriers it had
    /// not reached); nil if it stayed.
    public var leftAt: Date?
}

public struct JournalFailure: Sendable, Hashable, Codable {
    /// The node whose command failed its expected status.
    public var node: ClusterNode
    public var segment: Int
    public var at: Date
}

/// What one command of a segment did on one node.
public struct JournalCommand: Sendable, Hashable, Codable {
    public var node: ClusterNode
    public var segment: Int
    /// The command text as the `.rp` file gives it, and its line there.
    public var command: String
    public var line: Int
    /// `exit 0`, `signal 9`, `timed out`, `could not start: ...` (`Termination.description`).
    public var termination: String
    /// The exit status when it exited; nil when a signal or a timeout ended it or it could not start.
    public var exitStatus: Int32?
    /// The signal that ended it, or nil.
    public var signal: Int32?
    /// Whether the termination satisfied the expected status.
    public var accepted: Bool
    /// Wall time, in seconds.
    public var duration: Double
    /// The last bytes of its standard output and standard error.
    public var outputTail: String
    /// When the result was journaled.
    public var finishedAt: Date
    /// When the node that ran it saw it end, on its own clock (nil in journals before v2).
    public var endedAt: Date? = nil
}

/// Every remaining participant reached barrier `index` (the end of segment `index`).
public struct JournalBarrier: Sendable, Hashable, Codable {
    public var index: Int
    public var passedAt: Date
    public var participants: [ClusterNode]
}

/// One line of the event log, in the style of HACMP's `hacmp.out`: what `mon` follows.
public struct JournalLogLine: Sendable, Hashable, Codable {
    /// Increases with every line ever written, never reused: follow with `log(after:)`.
    public var rowID: Int64
    public var run: Int64
    public var time: Date
    /// `membership`, `unmatched`, `queued`, `start`, `barrier`, `command`, `participant`,
    /// `failed`, `finished`, `recovery`, `resume`, `stop`, `synchronised`, `arming`, `run`,
    /// or the kind given to `Journal.note`.
    public var kind: String
    /// The node the line is about (the event node, the node that ran the command, the node that
    /// failed or left), or nil for cluster-wide lines.
    public var node: String?
    /// The event the line is about, or nil.
    public var eventID: Int?
    /// The line without its time stamp, e.g. `EVENT START: db2_paging 0 (node n2, event 7)`.
    public var text: String

    /// `Nov 23 09:12:01 EVENT START: db2_paging 0 (node n2, event 7)`.
    public func formatted(timeZone: TimeZone = .current) -> String {
        JournalText.stamp(time, timeZone: timeZone) + " " + text
    }
}

/// One run of the journal: from `Journal.init` to `close()`. A run without an end is a service
/// that was killed or crashed.
public struct JournalRun: Sendable, Hashable, Codable {
    public var run: Int64
    public var startedAt: Date
    /// nil: the run is the current one, or it crashed (`crashed`).
    public var endedAt: Date?
    /// `shutdown`, or why the journal started a new run while the service kept running.
    public var endReason: String?
    public var pid: Int32
    public var host: String
    /// Ended without `close()`: noticed by a later run.
    public var crashed: Bool
    /// The cluster history it records (`synchronised` starts one): nil before the first.
    public var epoch: Int64? = nil
}

/// A predicate instance was armed or disarmed.
public struct JournalArmingChange: Sendable, Hashable, Codable {
    public var rowID: Int64
    public var run: Int64
    public var time: Date
    /// The event name of the rule.
    public var trigger: String
    public var state: Int
    /// The instance's elements, e.g. `NodeNum=2;ProgName=nfsd`.
    public var instance: String
    public var armed: Bool
    /// The value that made the change.
    public var value: String
}

/// A journaled change of membership.
public struct JournalMembershipChange: Sendable, Hashable, Codable {
    public var rowID: Int64
    public var run: Int64
    public var time: Date
    public var view: Int
    public var members: [ClusterNode]
    public var joined: [ClusterNode]
    public var left: [ClusterNode]
}
