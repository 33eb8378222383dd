import Foundation
import RulesEngine
import Synchronization
import Testing

@testable import HamnService

#if canImport(Glibc)
    import Glibc
#endif

/// The web view's rendering runs at the lowest CPU priority, on one thread of its own, so that
/// an open view never takes a core from the service or from a recovery command being started.
@Suite("the web view's work")
struct ViewWorkTests {
    /// The kernel's name of the calling thread (Foundation's `Thread.current.name` once read
    /// the pool thread's name here although the job ran on the view's thread at nice 19).
    private static func threadName() -> String {
        let comm = (try? String(contentsOfFile: "/proc/thread-self/comm", encoding: .utf8)) ?? ""
        return comm.trimmingCharacters(in: .newlines)
    }

    @Test("runs at SCHED_IDLE and nice 19 on one thread, not the caller's, and in the order given")
    func lowestPriority() async {
        let caller = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        let callerPolicy = sched_getscheduler(0)
        let (nice, policy, name) = await ViewWork.shared.run {
            (getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0), sched_getscheduler(0), Self.threadName())
        }
        #expect(nice == 19)
        // SCHED_IDLE (5): a waking thread of the service's policy preempts it at once.
        #expect(policy == 5)
        #expect(name == "hamn-view")
        #expect(caller != 19)
        #expect(callerPolicy == SCHED_OTHER)
        var order: [Int] = []
        for index in 0..<5 { order.append(await ViewWork.shared.run { index }) }
        #expect(order == [0, 1, 2, 3, 4])
    }
}

/// The view polls every 200 ms; the history is read from the journal only once it committed.
@Suite("the web view's history")
struct ViewHistoryTests {
    @Test("read once per committed ticket and per limit; a failed read is not kept")
    func readOncePerCommit() {
        let journal = CountingHistory()
        let history = ViewHistory()
        #expect(history.json(limit: 20, journal: journal, committed: 0) == #"{"read":1}"#)
        #expect(history.json(limit: 20, journal: journal, committed: 0) == #"{"read":1}"#)
        #expect(history.json(limit: 20, journal: journal, committed: 3) == #"{"read":2}"#)
        #expect(history.json(limit: 5, journal: journal, committed: 3) == #"{"read":3}"#)
        #expect(history.json(limit: 5, journal: journal, committed: 3) == #"{"read":3}"#)
        journal.failing.withLock { $0 = true }
        #expect(history.json(limit: 5, journal: journal, committed: 4) == #"{"events":[]}"#)
        journal.failing.withLock { $0 = false }
        #expect(history.json(limit: 5, journal: journal, committed: 4) == #"{"read":5}"#)
        #expect(journal.reads.withLock { $0 } == 5)
    }
}

/// The instances (most of the view's state) are listed at most once a second.
@Suite("the web view's instances")
struct ViewInstancesTests {
    @Test("rendered again only once the interval has passed")
    func renderedOncePerInterval() {
        let instances = ViewInstances(interval: .seconds(1))
        let start = ContinuousClock.now
        var renders = 0
        func list(at offset: Duration) -> [UInt8] {
            instances.instances(at: start + offset) {
                renders += 1
                return Array("[\(renders)]".utf8)
            }
        }
        #expect(instances.isDue(at: start))
        #expect(list(at: .zero) == Array("[1]".utf8))
        #expect(!instances.isDue(at: start + .milliseconds(999)))
        #expect(instances.isDue(at: start + .seconds(1)))
        #expect(list(at: .milliseconds(200)) == Array("[1]".utf8))
        #expect(list(at: .milliseconds(999)) == Array("[1]".utf8))
        #expect(list(at: .seconds(1)) == Array("[2]".utf8))
        #expect(list(at: .milliseconds(1900)) == Array("[2]".utf8))
        #expect(list(at: .milliseconds(2100)) == Array("[3]".utf8))
        #expect(renders == 3)
    }
}

/// A journal whose history says how many times it was read.
private final class CountingHistory: EventJournal {
    let reads = Mutex(0)
    let failing = Mutex(false)

    func historyReport(limit: Int) throws -> (text: String, json: String) {
        let count = reads.withLock {
            $0 += 1
            return $0
        }
        if failing.withLock({ $0 }) { throw JournalError("disk gone") }
        return ("", #"{"read":\#(count)}"#)
    }

    func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine] { [] }
    func append(_ entry: JournalEntry, at time: Date) throws {}
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws {
    }
    func note(_ text: String, kind: String, at time: Date) throws {}
    func write(_ writes: [TimedJournalWrite]) throws {}
    func close() throws {}
    func storageProblem() -> String? { nil }
}
