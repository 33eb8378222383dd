import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// What an `EventLoopThread` polls besides its jobs: the CPG connection's descriptors.
package protocol EventLoopSource: AnyObject, Sendable {
    /// Before each poll, on the loop's thread: the descriptors to watch and the longest wait in
    /// milliseconds (-1: no limit); nil when the source is done, and it is dropped.
    func pollSet() -> (descriptors: [Int32], timeout: Int32)?
    /// After a poll in which a descriptor of this source was ready: the `revents` of its
    /// descriptors, in the order `pollSet` gave them.
    func ready(_ revents: [Int16])
}

/// A thread of its own that runs jobs in order (a `SerialExecutor`) and, between them, polls
/// descriptors and hands what is ready to their sources.
///
/// The service's actor runs on one (its executor), and so does the Corosync connection's
/// dispatch: a message is decoded and applied on the thread that took it from corosync, with no
/// hop to a pool thread in between (on two busy cores that hop cost 1 to 8 ms). Every job and
/// every source's callback runs on this one thread, one at a time, so nothing here may block
/// for long; the commands and the journal run elsewhere.
///
/// The thread runs until `stop()`, and then until its jobs are done and its sources dropped.
public final class EventLoopThread: SerialExecutor, Sendable {
    private struct State {
        var jobs: [UnownedJob] = []
        var closures: [@Sendable () -> Void] = []
        var sources: [any EventLoopSource] = []
        /// Sources to drop at the top of the next turn, with who waits for it.
        var removals: [(source: any EventLoopSource, done: DispatchSemaphore)] = []
        /// The thread is in (or about to enter) poll: a new job must wake it.
        var polling = false
        var stopping = false
        var exited = false
        var thread: pthread_t?
    }

    private let state = Mutex(State())
    /// Set once the thread runs: nil when it got the scheduling it asked for, else why not.
    private let scheduling = Mutex<String??>(nil)
    /// A pipe: a byte written to `wakeWrite` wakes the thread from poll.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    public let name: String
    private let realtime: Bool

    /// Starts the thread. Throws only when the system has no thread or descriptor to give.
    ///
    /// `realtime`: the thread runs under `SCHED_RR` at priority 1, the lowest real-time
    /// priority, below corosync's own (it runs at 99), above every ordinary thread: the
    /// commands just started on the other nodes' barriers, the journal's commits and any other
    /// load on the machine do not hold up the next delivery. `SCHED_RESET_ON_FORK` keeps it
    /// to this thread: a thread or process started from it is ordinary. It needs root
    /// (CAP_SYS_NICE); without it the thread runs as an ordinary one (`schedulingFailure`).
    /// The kernel's real-time throttling (95 % of each second by default) bounds what a thread
    /// that spins could take.
    public init(name: String, realtime: Bool = false) throws(EventLoopError) {
        self.name = name
        self.realtime = realtime
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw EventLoopError(description: "pipe failed: errno \(errno)") }
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        (wakeRead, wakeWrite) = (fds[0], fds[1])
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { argument in
                let loop = Unmanaged<EventLoopThread>.fromOpaque(argument!).takeRetainedValue()
                loop.run()
                return nil
            }, box.toOpaque())
        guard created == 0 else {
            box.release()
            _ = Glibc.close(fds[0])
            _ = Glibc.close(fds[1])
            throw EventLoopError(description: "pthread_create failed: errno \(created)")
        }
        pthread_detach(thread)
    }

    deinit {
        _ = Glibc.close(wakeRead)
        _ = Glibc.close(wakeWrite)
    }

    /// Once the thread runs: nil when it got the scheduling asked for, else why not.
    public var schedulingFailure: String? {
        while true {
            if let outcome = scheduling.withLock({ $0 }) { return outcome }
            usleep(100)
        }
    }

    /// Whether the caller runs on this loop's thread.
    public var isCurrent: Bool {
        guard let thread = state.withLock({ $0.thread }) else { return false }
        return pthread_equal(thread, pthread_self()) != 0
    }

    // MARK: SerialExecutor

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        let wake = state.withLock { state -> Bool in
            state.jobs.append(job)
            return state.polling
        }
        if wake { self.wake() }
    }

    public func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    public func checkIsolated() {
        precondition(isCurrent, "not on the event loop thread \(name)")
    }

    public func isIsolatingCurrentContext() -> Bool? {
        isCurrent
    }

    /// Runs `work` on the loop's thread, after what is queued before it.
    public func execute(_ work: @escaping @Sendable () -> Void) {
        let wake = state.withLock { state -> Bool in
            state.closures.append(work)
            return state.polling
        }
        if wake { self.wake() }
    }

    // MARK: Sources

    package func add(_ source: any EventLoopSource) {
        state.withLock { $0.sources.append(source) }
        wake()
    }

    /// Drops `source`: from another thread, returns once the loop will not call it again;
    /// on the loop's thread, at once (it is not called again after the current callback).
    package func remove(_ source: any EventLoopSource) {
        if isCurrent {
            state.withLock { $0.sources.removeAll { $0 === source } }
            return
        }
        let done = DispatchSemaphore(value: 0)
        let waiting = state.withLock { state -> Bool in
            guard !state.exited else { return false }
            state.removals.append((source, done))
            return true
        }
        guard waiting else { return }
        wake()
        done.wait()
    }

    /// Wakes the thread, so that it asks its sources again (a new deadline, say).
    package func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)
    }

    /// The thread ends once its jobs are run and its sources dropped. A job enqueued after it
    /// ended would never run: stop the loop only when nothing can call its actor any more (the
    /// service stops it as its last step).
    public func stop() {
        state.withLock { $0.stopping = true }
        wake()
    }

    // MARK: The thread

    private func run() {
        // Its name in top, perf and /proc (pthread_setname_np is not in Glibc's module).
        let comm = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
        if comm >= 0 {
            _ = Array(name.utf8.prefix(15)).withUnsafeBytes { write(comm, $0.baseAddress, $0.count) }
            _ = Glibc.close(comm)
        }
        state.withLock { $0.thread = pthread_self() }
        var outcome: String?
        if realtime {
            // SCHED_RESET_ON_FORK (0x40000000) is not in Glibc's module.
            var parameters = sched_param(sched_priority: 1)
            if sched_setscheduler(0, SCHED_RR | 0x4000_0000, &parameters) != 0 {
                outcome = "real-time scheduling (SCHED_RR 1) refused: \(String(cString: strerror(errno)))"
            }
        }
        scheduling.withLock { $0 = .some(outcome) }
        let executor = asUnownedSerialExecutor()
        while true {
            // Jobs first, all that are queued.
            while true {
                let (jobs, closures) = state.withLock { state in
                    defer {
                        state.jobs = []
                        state.closures = []
                    }
                    return (state.jobs, state.closures)
                }
                if jobs.isEmpty, closures.isEmpty { break }
                for work in closures { work() }
                for job in jobs { job.runSynchronously(on: executor) }
            }
            let (sources, removals) = state.withLock { state in
                let removals = state.removals
                state.removals = []
                for removal in removals { state.sources.removeAll { $0 === removal.source } }
                return (state.sources, removals)
            }
            for removal in removals { removal.done.signal() }

            var descriptors = [pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)]
            var spans: [(source: any EventLoopSource, range: Range<Int>)] = []
            var timeout: Int32 = -1
            var finished: [any EventLoopSource] = []
            for source in sources {
                guard let set = source.pollSet() else {
                    finished.append(source)
                    continue
                }
                let start = descriptors.count
                descriptors += set.descriptors.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
                spans.append((source, start..<descriptors.count))
                if set.timeout >= 0 { timeout = timeout < 0 ? set.timeout : min(timeout, set.timeout) }
            }
            let proceed = state.withLock { state -> Bool? in
                for source in finished { state.sources.removeAll { $0 === source } }
                if !state.jobs.isEmpty || !state.closures.isEmpty || !state.removals.isEmpty { return true }
                if state.stopping, state.sources.isEmpty {
                    state.exited = true
                    return nil
                }
                state.polling = true
                return false
            }
            guard let proceed else { break }
            if proceed { continue }
            let ready = poll(&descriptors, nfds_t(descriptors.count), timeout)
            state.withLock { $0.polling = false }
            if ready <= 0 { continue }  // a timeout, or EINTR: the sources are asked again
            if descriptors[0].revents != 0 {
                var drain = [UInt8](repeating: 0, count: 64)
                while read(wakeRead, &drain, drain.count) > 0 {}
            }
            for (source, range) in spans where descriptors[range].contains(where: { $0.revents != 0 }) {
                // Not if it was removed by a callback before it in this turn.
                guard state.withLock({ state in state.sources.contains { $0 === source } }) else { continue }
                source.ready(descriptors[range].map(\.revents))
            }
        }
        // Anyone still waiting for a removal: the loop will not call anything again.
        let removals = state.withLock { state in
            defer { state.removals = [] }
            return state.removals
        }
        for removal in removals { removal.done.signal() }
    }
}

public struct EventLoopError: Error, CustomStringConvertible, Sendable {
    public var description: String
}
