import Dispatch
import Foundation
import Logging
import Synchronization

/// The service's journal writes, off its actor.
///
/// The actor queues each step's writes, in order, and goes on at once; one serial queue commits
/// everything queued since its last commit in one transaction (group commit: the three
/// `segmentDone`s that reach a barrier together cost one fsync, not three fsyncs one after the
/// other ahead of the one that passes the barrier). What must be on disk before something
/// happens waits for its ticket: an event's commands wait for the event's start, `wait-event`
/// callers for the event's end, `history` for everything queued before it.
///
/// A journal that cannot be written (a full disk, an I/O error, its file deleted: a
/// `JournalError` with `storage`, or `EventJournal.storageProblem()`) keeps every write queued,
/// in order, and tries again every second; tickets are not written meanwhile, so no event's
/// commands start (`problem` says why, for `status`, and the log says it once). When the
/// journal takes writes again, the held ones are committed first and the service goes on. Only
/// at the service's stop are held writes given up (and logged).
///
/// A kill -9 loses what was queued and not yet committed: at most the writes of the last commit
/// in progress, about a millisecond. The journal is never corrupted, and the next start marks
/// an event left unfinished `interrupted`, as before.
final class JournalWrites: Sendable {
    typealias Ticket = UInt64

    private struct Pending {
        var writes: [TimedJournalWrite] = []
        var afterCommit: [@Sendable () -> Void] = []
        /// Tickets handed out, and the last one committed (or failed: see `commit`).
        var queued: Ticket = 0
        var written: Ticket = 0
        var draining = false
        var closed = false
        /// Why the last commit could not be made (writes held), nil when the journal takes writes.
        var problem: String?
        var problemSince: Date?
        /// The service stops: held writes are given up rather than retried.
        var closing = false
        var waiters: [(ticket: Ticket, continuation: CheckedContinuation<Void, Never>)] = []
    }

    private let journal: any EventJournal
    private let logger: Logger
    /// Told after each commit (on the writer's queue: it must not wait). `mon` follows the log
    /// this way (`MonFeed.committed`).
    private let committed: (@Sendable () -> Void)?
    /// How long each batch took to commit, in seconds (the metrics' histogram).
    private let commitTime: (@Sendable (Double) -> Void)?
    private let pending = Mutex(Pending())
    private let queue = DispatchQueue(label: "hamn-events.journal", qos: .userInitiated)

    init(
        journal: any EventJournal, logger: Logger, committed: (@Sendable () -> Void)? = nil,
        commitTime: (@Sendable (Double) -> Void)? = nil
    ) {
        self.journal = journal
        self.logger = logger
        self.committed = committed
        self.commitTime = commitTime
    }

    /// Queues `writes` (all at `time`); `afterCommit` runs once they are committed. Returns the
    /// ticket to wait for. After `close()` the writes are only logged.
    @discardableResult
    func enqueue(_ writes: [JournalWrite], at time: Date = Date(), afterCommit: (@Sendable () -> Void)? = nil) -> Ticket
    {
        let (ticket, start, closed) = pending.withLock { pending -> (Ticket, Bool, Bool) in
            guard !pending.closed else { return (pending.queued, false, true) }
            pending.writes += writes.map { TimedJournalWrite($0, at: time) }
            if let afterCommit { pending.afterCommit.append(afterCommit) }
            pending.queued += 1
            let start = !pending.draining
            pending.draining = true
            return (pending.queued, start, false)
        }
        if closed {
            logger.error("journal closed: \(writes.count) write(s) not recorded")
            afterCommit?()
        }
        if start { queue.async { self.drain() } }
        return ticket
    }

    /// Returns once the writes of `ticket` (and all before them) are committed, or failed and
    /// logged.
    func written(_ ticket: Ticket) async {
        await withCheckedContinuation { continuation in
            let ready = pending.withLock { pending -> Bool in
                guard pending.written < ticket else { return true }
                pending.waiters.append((ticket, continuation))
                return false
            }
            if ready { continuation.resume() }
        }
    }

    /// Why the journal cannot be written now (writes are held and events wait), with the
    /// number of writes held; nil when it takes writes.
    var problem: (reason: String, since: Date, held: Int)? {
        pending.withLock { pending in
            pending.problem.map { ($0, pending.problemSince ?? Date(), pending.writes.count) }
        }
    }

    /// The last ticket committed: what a reader of the journal sees once this has changed (the
    /// web view reads the history again only then).
    var committedTicket: Ticket { pending.withLock { $0.written } }

    /// The last ticket handed out: waiting for it waits for everything queued so far.
    var lastTicket: Ticket { pending.withLock { $0.queued } }

    /// Asks the journal whether its files are still in place (every second, from the service's
    /// tick), so that a deleted journal is noticed with no write pending.
    func check() {
        queue.async {
            let problem = self.journal.storageProblem()
            let changed = self.pending.withLock { pending -> Bool in
                guard let problem, pending.problem != problem else { return false }
                pending.problem = problem
                pending.problemSince = Date()
                return true
            }
            if changed, let problem { self.logger.critical("\(Self.message(problem))") }
        }
    }

    /// What the log and `status` say while writes are held.
    static func message(_ reason: String) -> String {
        "journal cannot write: \(reason); events wait"
    }

    /// Returns once everything queued so far is committed.
    func flush() async {
        await written(pending.withLock { $0.queued })
    }

    /// Commits what is queued, then records the end of the run; later writes are only logged.
    func close() async {
        let retry = pending.withLock { pending -> Bool in
            pending.closing = true
            return pending.problem != nil && !pending.draining
        }
        if retry { queue.async { self.drain() } }
        await flush()
        pending.withLock { $0.closed = true }
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            queue.async {
                do {
                    try self.journal.close()
                } catch {
                    self.logger.error("journal: \(error)")
                }
                continuation.resume()
            }
        }
    }

    private func drain() {
        while true {
            let batch = pending.withLock {
                pending -> (writes: [TimedJournalWrite], afterCommit: [@Sendable () -> Void], upTo: Ticket)? in
                guard pending.written < pending.queued else {
                    pending.draining = false
                    return nil
                }
                defer {
                    pending.writes = []
                    pending.afterCommit = []
                }
                return (pending.writes, pending.afterCommit, pending.queued)
            }
            guard let batch else { return }
            if let (problem, from) = commit(batch.writes) {
                let (first, closing) = pending.withLock { pending -> (Bool, Bool) in
                    let first = pending.problem == nil
                    if first { pending.problemSince = Date() }
                    pending.problem = problem
                    return (first, pending.closing)
                }
                if first { logger.critical("\(Self.message(problem))") }
                if !closing {
                    // Held, in order, ahead of anything queued since; tried again in a second.
                    pending.withLock { pending in
                        pending.writes = Array(batch.writes[from...]) + pending.writes
                        pending.afterCommit = batch.afterCommit + pending.afterCommit
                    }
                    queue.asyncAfter(deadline: .now() + 1) { self.drain() }
                    return
                }
                logger.error(
                    "journal: the service stops: \(batch.writes.count - from) write(s) held since the journal could not write are not recorded"
                )
            } else {
                let recovered = pending.withLock { pending -> TimeInterval? in
                    defer {
                        pending.problem = nil
                        pending.problemSince = nil
                    }
                    return pending.problem == nil ? nil : Date().timeIntervalSince(pending.problemSince ?? Date())
                }
                if let recovered {
                    logger.notice(
                        "journal writes again after \(Int(recovered)) s: \(batch.writes.count) held write(s) recorded; events go on"
                    )
                }
            }
            let ready = pending.withLock { pending -> [CheckedContinuation<Void, Never>] in
                pending.written = batch.upTo
                let ready = pending.waiters.filter { $0.ticket <= batch.upTo }.map(\.continuation)
                pending.waiters.removeAll { $0.ticket <= batch.upTo }
                return ready
            }
            for action in batch.afterCommit { action() }
            for continuation in ready { continuation.resume() }
            committed?()
        }
    }

    /// One transaction; if it fails, one write at a time, so that a write the journal refuses
    /// does not take the others with it. Those failures are logged: the service goes on. A want
    /// of storage (or a journal whose files are gone) is returned instead, with the index of the
    /// first write not written (the writes from there on are to be held).
    private func commit(_ writes: [TimedJournalWrite]) -> (problem: String, from: Int)? {
        guard !writes.isEmpty else { return nil }
        if let problem = journal.storageProblem() { return (problem, 0) }
        do {
            let started = ContinuousClock.now
            try journal.write(writes)
            if let commitTime {
                let elapsed = ContinuousClock.now - started
                commitTime(Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
            }
        } catch {
            if let storage = (error as? JournalError)?.storage { return (storage, 0) }
            logger.error("journal: \(error)")
            guard writes.count > 1 else { return nil }
            for (index, write) in writes.enumerated() {
                do {
                    try journal.write([write])
                } catch {
                    if let storage = (error as? JournalError)?.storage { return (storage, index) }
                    logger.error("journal: \(error)")
                }
            }
        }
        return nil
    }
}
