import Foundation
import Logging
import RulesEngine
import Synchronization
import Testing

@testable import HamnService

/// A journal that records the batches it is given; its first `write` can be held until the
/// test lets it go, and a note reading "bad" makes a batch fail.
private final class BatchJournal: EventJournal {
    struct Failure: Error {}
    let batches = Mutex<[[String]]>([])
    let closed = Mutex(false)
    let hold = DispatchSemaphore(value: 0)
    /// Signalled when the held first write has begun.
    let entered = DispatchSemaphore(value: 0)
    let holding: Bool
    private let first = Mutex(true)

    init(holding: Bool) {
        self.holding = holding
    }

    func write(_ writes: [TimedJournalWrite]) throws {
        if holding,
            first.withLock({
                let was = $0
                $0 = false
                return was
            })
        {
            entered.signal()
            hold.wait()
        }
        let texts = writes.map { item -> String in
            if case .note(let text, _) = item.write { text } else { "?" }
        }
        if texts.contains("bad") { throw Failure() }
        batches.withLock { $0.append(texts) }
    }

    func close() throws { closed.withLock { $0 = true } }
    func append(_ entry: JournalEntry, at time: Date) throws {}
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws {
    }
    func note(_ text: String, kind: String, at time: Date) throws {}
    func historyReport(limit: Int) throws -> (text: String, json: String) { ("", "") }
    func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine] { [] }
}

/// Waits, off the cooperative threads, until the journal's held write has begun.
private func waitEntered(_ journal: BatchJournal) async {
    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            journal.entered.wait()
            continuation.resume()
        }
    }
}

@Suite("journal writes off the service's actor", .timeLimit(.minutes(1)))
struct JournalWritesTests {
    @Test("what is queued while a commit runs goes in the next one, in order; a ticket waits for its commit")
    func groupCommit() async throws {
        let journal = BatchJournal(holding: true)
        let writes = JournalWrites(journal: journal, logger: Logger(label: "test"))
        writes.enqueue([.note("a", kind: "t")])
        // "a" is being committed (held); these queue behind it.
        await waitEntered(journal)
        writes.enqueue([.note("b", kind: "t"), .note("c", kind: "t")])
        let committed = Mutex(false)
        let last = writes.enqueue([.note("d", kind: "t")], afterCommit: { committed.withLock { $0 = true } })
        let waiting = Task {
            await writes.written(last)
            return journal.batches.withLock { $0 }
        }
        // The behaviour under test: while the first commit is held, nothing is committed and the
        // ticket's waiter is not released, however long it waits.
        try await Task.sleep(for: .milliseconds(100))
        #expect(journal.batches.withLock { $0 }.isEmpty)
        #expect(!committed.withLock { $0 })
        journal.hold.signal()
        #expect(await waiting.value == [["a"], ["b", "c", "d"]])
        #expect(committed.withLock { $0 })
    }

    @Test("a batch the journal refuses is written one entry at a time: the others are kept")
    func failedBatch() async {
        let journal = BatchJournal(holding: true)
        let writes = JournalWrites(journal: journal, logger: Logger(label: "test"))
        writes.enqueue([.note("first", kind: "t")])
        await waitEntered(journal)
        writes.enqueue([.note("ok", kind: "t"), .note("bad", kind: "t")])
        writes.enqueue([.note("after", kind: "t")])
        journal.hold.signal()
        await writes.flush()
        #expect(journal.batches.withLock { $0 } == [["first"], ["ok"], ["after"]])
    }

    @Test("close commits what is queued, then closes the journal; later writes are not written")
    func close() async {
        let journal = BatchJournal(holding: false)
        let writes = JournalWrites(journal: journal, logger: Logger(label: "test"))
        writes.enqueue([.note("last", kind: "t")])
        await writes.close()
        #expect(journal.batches.withLock { $0 } == [["last"]])
        #expect(journal.closed.withLock { $0 })
        let released = Mutex(false)
        writes.enqueue([.note("late", kind: "t")], afterCommit: { released.withLock { $0 = true } })
        await writes.flush()
        #expect(journal.batches.withLock { $0 } == [["last"]])
        #expect(released.withLock { $0 }, "a wait-event caller is not left hanging")
    }

    @Test("a journal out of space holds the writes, in order, and their tickets; when space returns they are committed")
    func outOfSpace() async throws {
        let journal = FullJournal()
        journal.full.withLock { $0 = true }
        let writes = JournalWrites(journal: journal, logger: Logger(label: "test"))
        let committed = Mutex(false)
        writes.enqueue([.note("a", kind: "t")])
        let ticket = writes.enqueue([.note("b", kind: "t")], afterCommit: { committed.withLock { $0 = true } })
        let written = Mutex(false)
        let waiting = Task {
            await writes.written(ticket)
            written.withLock { $0 = true }
        }
        // Both writes held (the writer may have tried "a" alone first: the count then grows).
        try await waitUntil("the writer to report the problem with both writes held") {
            writes.problem?.held == 2
        }
        #expect(writes.problem?.reason == "No space left on device")
        #expect(
            JournalWrites.message(writes.problem?.reason ?? "")
                == "journal cannot write: No space left on device; events wait")
        // Tried again (at least once more) while full: still held.
        try await waitUntil("a retry") { journal.attempts.withLock { $0 } >= 2 }
        #expect(!written.withLock { $0 }, "the ticket is not written while the journal is full")
        #expect(!committed.withLock { $0 })
        #expect(journal.batches.withLock { $0 }.isEmpty)
        journal.full.withLock { $0 = false }
        await waiting.value
        #expect(journal.batches.withLock { $0 } == [["a", "b"]])
        #expect(committed.withLock { $0 })
        #expect(writes.problem == nil)
    }
}

/// A journal whose writes fail for want of space while `full`.
private final class FullJournal: EventJournal {
    let full = Mutex(false)
    let attempts = Mutex(0)
    let batches = Mutex<[[String]]>([])

    func write(_ writes: [TimedJournalWrite]) throws {
        attempts.withLock { $0 += 1 }
        if full.withLock({ $0 }) {
            throw JournalError("could not write: database or disk is full", storage: "No space left on device")
        }
        batches.withLock { $0.append(writes.map { if case .note(let text, _) = $0.write { text } else { "?" } }) }
    }

    func append(_ entry: JournalEntry, at time: Date) throws {}
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws {
    }
    func note(_ text: String, kind: String, at time: Date) throws {}
    func historyReport(limit: Int) throws -> (text: String, json: String) { ("", "") }
    func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine] { [] }
}

private struct NotSeen: Error, CustomStringConvertible {
    var description: String
}

/// Polls `condition` every 20 ms until it holds; throws naming `what` after 10 s.
private func waitUntil(_ what: String, _ condition: () -> Bool) async throws {
    let deadline = ContinuousClock.now + .seconds(10)
    while !condition() {
        guard ContinuousClock.now < deadline else { throw NotSeen(description: "timed out waiting for \(what)") }
        try await Task.sleep(for: .milliseconds(20))
    }
}
