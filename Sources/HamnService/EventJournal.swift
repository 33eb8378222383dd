import Foundation
import RulesEngine
import TimelineRendering

/// What the service writes to its journal and reads back for `history` and `mon`; the SQLite
/// `Journal` is the implementation.
public protocol EventJournal: Sendable {
    func append(_ entry: JournalEntry, at time: Date) throws
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws
    func note(_ text: String, kind: String, at time: Date) throws
    /// The newest `limit` events, newest first, as text and as JSON.
    func historyReport(limit: Int) throws -> (text: String, json: String)
    /// The web view's history: `historyReport`'s JSON without each event's commands and
    /// barriers (the view's table needs neither; its timeline reads them for one event), no text.
    func viewHistoryJSON(limit: Int) throws -> String
    /// The event log's lines after row `rowID`, oldest first, at most `limit`; when `rowID` is
    /// nil, the newest `limit`. What `mon` follows (each line has its row id).
    func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine]
    /// The timeline of event `id` of run `run` (nil: the newest run that has one), or nil.
    func timeline(event id: Int, run: Int64?) throws -> Timeline?
    /// Several writes of any kind, in order, in one transaction (one commit, one fsync): all or
    /// none. The service's writer commits everything queued since its last commit this way.
    func write(_ writes: [TimedJournalWrite]) throws
    /// A clean end: the run's end is recorded (so the next start does not take it for a crash).
    func close() throws
    /// Why nothing can be written now although the disk may have room (the journal's files were
    /// deleted while it is open); nil when all is well. Asked before each commit and every second.
    func storageProblem() -> String?
}

/// One write of `EventJournal.write(_:)`.
public enum JournalWrite: Sendable {
    case entry(JournalEntry)
    /// A predicate instance armed or disarmed.
    case arming(trigger: String, state: Int, instance: String, armed: Bool, value: String)
    /// A free line of the event log.
    case note(String, kind: String)
}

/// A write with the time it happened (not the time it is committed).
public struct TimedJournalWrite: Sendable {
    public var write: JournalWrite
    public var time: Date

    public init(_ write: JournalWrite, at time: Date) {
        self.write = write
        self.time = time
    }
}

extension EventJournal {
    /// For journals without transactions: one call per write.
    public func write(_ writes: [TimedJournalWrite]) throws {
        for item in writes {
            switch item.write {
            case .entry(let entry):
                try append(entry, at: item.time)
            case .arming(let trigger, let state, let instance, let armed, let value):
                try recordArming(
                    trigger: trigger, state: state, instance: instance, armed: armed, value: value, at: item.time)
            case .note(let text, let kind):
                try note(text, kind: kind, at: item.time)
            }
        }
    }

    public func close() throws {}

    /// For journals that keep no events: none.
    public func timeline(event id: Int, run: Int64?) throws -> Timeline? { nil }

    public func storageProblem() -> String? { nil }

    /// For journals that keep no commands: the history report's document.
    public func viewHistoryJSON(limit: Int) throws -> String {
        try historyReport(limit: limit).json
    }
}
