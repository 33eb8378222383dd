import Foundation
import HamnWeb
import Synchronization

/// The web view's rendering (the status document, the history read): on one thread of its own
/// at the lowest CPU priority (`SCHED_IDLE`, nice 19: HamnWeb's `WebThreads`), so that it never
/// takes a core from the service's thread or from a recovery command being started. Rendering
/// the state of 1,000 tracked pairs takes about 17 ms of CPU; at the BlockingWork threads'
/// priority, every 200 ms while a view was open, it doubled the sample-to-command p99 of
/// `hamn-bench service` on 2 cores. One thread: a second view waits for the first's document
/// instead of taking a second core. Not the listener's thread (`WebThreads.tasks`): a scrape of
/// `/metrics` does not wait behind a rendering.
enum ViewWork {
    static let shared = LowPriorityExecutor(name: "hamn-view")
}

/// The history the web view shows, read from the journal again only once it committed since
/// the last read: the view polls every 200 ms, and most polls follow no commit.
final class ViewHistory: Sendable {
    private let last = Mutex<(committed: JournalWrites.Ticket, limit: Int, json: String)?>(nil)

    /// `history --format json`'s document of the newest `limit` events. `committed` is the
    /// journal's committed ticket taken before this call: a commit during the read is read again.
    func json(limit: Int, journal: any EventJournal, committed: JournalWrites.Ticket) -> String {
        if let last = last.withLock({ $0 }), last.committed == committed, last.limit == limit { return last.json }
        // A read that failed is not kept: the next poll tries again.
        guard let json = try? journal.viewHistoryJSON(limit: limit) else { return #"{"events":[]}"# }
        last.withLock { $0 = (committed, limit, json) }
        return json
    }
}

/// The web view's list of instances: rendered at most once per `interval` (a second), while the
/// rest of the status is rendered at every poll (200 ms), so an event shows running as soon as
/// it starts. With 1,000 instances and their sparklines the list is most of the view's work.
final class ViewInstances: Sendable {
    private let interval: Duration
    private let last = Mutex<(at: ContinuousClock.Instant, bytes: [UInt8])?>(nil)

    init(interval: Duration = .seconds(1)) {
        self.interval = interval
    }

    /// Whether the list is to be rendered again at `now` (the report must then carry the monitors).
    func isDue(at now: ContinuousClock.Instant) -> Bool {
        last.withLock { last in last.map { now - $0.at >= interval } ?? true }
    }

    /// The status document of `report`, its instances as they were at most `interval` ago. A
    /// report without the monitors (`isDue` was false) uses the list kept.
    func json(_ report: StatusReport, now: ContinuousClock.Instant = .now) -> String {
        let instances =
            report.monitors == nil
            ? last.withLock { $0?.bytes } ?? Array("[]".utf8)
            : instances(at: now) { StatusJSON.Instance.rendered(report.instanceDocuments) }
        return report.document(listingInstances: false).text(instances: instances)
    }

    /// The list rendered last, or `render()`'s when that was `interval` ago or more.
    func instances(at now: ContinuousClock.Instant, render: () -> [UInt8]) -> [UInt8] {
        if let kept = last.withLock({ last in last.flatMap { now - $0.at < interval ? $0.bytes : nil } }) {
            return kept
        }
        let bytes = render()
        last.withLock { $0 = (now, bytes) }
        return bytes
    }
}
