import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The threads the web view runs on, both at the lowest CPU priority (nice 19), so that the
/// listener only ever takes a core nobody else wants: not from the service's thread, its
/// monitors, or a recovery command being started. What a scrape or an open view costs is then
/// paid from idle time; on a node busy with recovery, the view answers later, the event does
/// not start later (docs/decisions.md, "The web view's cost on the service").
///
/// - `eventLoops`: SwiftNIO's one event loop for the listener's sockets (accepting, reading,
///   writing), instead of NIO's shared singleton at the service's priority;
/// - `tasks`: the task executor every request is answered on (routing, `/metrics`' rendering,
///   the live feed's polling and writing): the listener's tasks prefer it, and their child
///   tasks inherit the preference.
///
/// One of each for the whole process: servers started and stopped (the tests start many)
/// share them, and they are never shut down.
enum WebThreads {
    /// The nice value of both threads.
    static let niceness: Int32 = 19

    static let eventLoops: MultiThreadedEventLoopGroup = {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The loop's first job, before any socket is registered on it.
        group.next().execute { lowerPriority(naming: "hamn-web-io") }
        return group
    }()

    static let tasks = LowPriorityExecutor(name: "hamn-web")

    /// Gives the calling thread nice 19 and `name` (as `top -H` shows it).
    static func lowerPriority(naming name: String) {
        // Linux: a nice value is a thread's own, and `who` 0 names the calling thread
        // (setpriority(2), NOTES), not the process.
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        try? name.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
    }
}

/// A task executor of one thread at nice 19 that runs its jobs in order.
final class LowPriorityExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var jobs: [UnownedJob] = []

    init(name: String) {
        let thread = Thread { [self] in
            WebThreads.lowerPriority(naming: name)
            while true {
                condition.lock()
                while jobs.isEmpty { condition.wait() }
                let batch = jobs
                jobs.removeAll(keepingCapacity: true)
                condition.unlock()
                for job in batch { job.runSynchronously(on: asUnownedTaskExecutor()) }
            }
        }
        thread.start()
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }
}
