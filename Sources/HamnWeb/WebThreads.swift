import Foundation
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The threads the web view runs on, all at the lowest CPU priority Linux has (`SCHED_IDLE`,
/// and nice 19 for `top` and `ps`), so that the listener only ever takes a core nobody else
/// wants: not from the service's thread, its monitors, or a recovery command being started.
/// What a scrape or an open view costs is then paid from idle time; on a node busy with
/// recovery, the view answers later, the event does not start later (docs/decisions.md, "The
/// web view's cost on the service").
///
/// Why `SCHED_IDLE` and not nice 19 alone: a nice-19 thread that has the core keeps it until its
/// slice ends when a service thread wakes (EEVDF protects a running task's slice); traced under
/// the scrape load, the view's thread held a core for 2 to 2.5 ms while a service thread waited.
/// A waking thread of the normal policy preempts a `SCHED_IDLE` one at once (sched(7)).
///
/// - `eventLoops`: SwiftNIO's one event loop for the listener's sockets (accepting, reading,
///   writing), instead of NIO's shared singleton at the service's priority;
/// - `tasks`: the task executor every request is answered on (routing, `/metrics`' rendering,
///   the live feed's polling and writing): the listener's tasks prefer it, and their child
///   tasks inherit the preference.
///
/// One of each for the whole process: servers started and stopped (the tests start many)
/// share them, and they are never shut down.
package enum WebThreads {
    /// The nice value of the web view's threads.
    static let niceness: Int32 = 19
    /// `SCHED_IDLE` from <sched.h>, which Swift's Glibc module leaves out (it needs _GNU_SOURCE).
    package static let idlePolicy: Int32 = 5

    static let eventLoops: MultiThreadedEventLoopGroup = {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        // The loop's first job, before any socket is registered on it.
        group.next().execute { lowerPriority(naming: "hamn-web-io") }
        return group
    }()

    static let tasks = LowPriorityExecutor(name: "hamn-web")

    /// Gives the calling thread `SCHED_IDLE`, nice 19 and `name` (as `top -H` shows it).
    package static func lowerPriority(naming name: String) {
        // Linux: a scheduling policy and a nice value are a thread's own, and pid 0 names the
        // calling thread (sched_setscheduler(2), setpriority(2), NOTES), not the process.
        // Lowering either needs no privilege.
        var parameters = sched_param()
        _ = sched_setscheduler(0, idlePolicy, &parameters)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, niceness)
        try? name.write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
    }
}

/// A task executor of one thread at the lowest priority (`WebThreads.lowerPriority`) that runs
/// its jobs in order.
package final class LowPriorityExecutor: TaskExecutor, @unchecked Sendable {
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var jobs: [UnownedJob] = []

    package init(name: String) {
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

    /// Runs `body` on this executor's thread and returns its result.
    package func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withTaskExecutorPreference(self) { body() }
    }

    package func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        condition.lock()
        jobs.append(job)
        condition.signal()
        condition.unlock()
    }
}
