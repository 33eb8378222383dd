import Foundation

/// What the service writes to its journal and reads back for `history` and `mon`; the SQLite
/// `Journal` is the implementation.
public protocol EventJournal: Sendable {
    func append(_ entry: JournalEntry, at time: Date) throws
    /// Several entries in one transaction (one commit, one fsync), in order: all or none.
    func append(contentsOf entries: [JournalEntry], at time: Date) throws
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws
    func note(_ text: String, kind: String, at time: Date) throws
    /// The newest `limit` events, newest first, as text and as JSON.
    func historyReport(limit: Int) throws -> (text: String, json: String)
    /// Log lines after `rowID` (all when nil: the last `limit`), with the row id of the last.
    func logLines(after rowID: Int64?, limit: Int) throws -> (lines: [String], last: Int64?)
}

extension EventJournal {
    /// For journals without transactions: one `append` per entry.
    public func append(contentsOf entries: [JournalEntry], at time: Date) throws {
        for entry in entries { try append(entry, at: time) }
    }
}
