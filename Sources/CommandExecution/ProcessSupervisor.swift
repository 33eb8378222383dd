import RecoveryPrograms
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The one thread that watches every child ``ProcessLauncher`` started: it polls each child's
/// pidfd (readable once the child has exited), its output pipes and its standard input pipe,
/// fires timeouts, signals process groups and reaps. Each child is reaped by pid
/// (`waitid(P_PID)`), never `waitpid(-1)`: children started by anything else in the process
/// are not touched.
///
/// Killing and reaping happen on this thread only, so a group is signalled only while its
/// leader is unreaped, when its id cannot belong to anyone else. With a kill grace, a leader
/// that exits on `SIGTERM` stays unreaped (a zombie still holding the group id) until the
/// `SIGKILL` for the rest of its group has been sent.
///
/// The thread blocks every signal, so a write to a standard input whose reader is gone is
/// `EPIPE` instead of `SIGPIPE` for the whole process.
final class ProcessSupervisor: Sendable {
    static let shared = ProcessSupervisor()

    private let incoming = Mutex<[SupervisedChild]>([])
    /// Written to wake the thread (a new child, a cancellation); read end polled.
    private let wakeRead: Int32
    private let wakeWrite: Int32

    private init() {
        guard case .success(let ends) = GNUExtensions.closeOnExecPipe() else {
            fatalError("ProcessSupervisor: cannot create its wake-up pipe: \(String(cString: strerror(errno)))")
        }
        wakeRead = ends.read
        wakeWrite = ends.write
        _ = fcntl(wakeRead, F_SETFL, fcntl(wakeRead, F_GETFL) | O_NONBLOCK)
        _ = fcntl(wakeWrite, F_SETFL, fcntl(wakeWrite, F_GETFL) | O_NONBLOCK)
        let box = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let created = pthread_create(
            &thread, nil,
            { context in
                let supervisor = Unmanaged<ProcessSupervisor>.fromOpaque(context!).takeRetainedValue()
                supervisor.loop()
                return nil
            }, box.toOpaque())
        guard created == 0 else { fatalError("ProcessSupervisor: pthread_create: \(created)") }
        pthread_detach(thread)
    }

    /// Hands `child` (already started, its continuation set) to the thread.
    func supervise(_ child: SupervisedChild) {
        incoming.withLock { $0.append(child) }
        wake()
    }

    func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWrite, &byte, 1)  // EAGAIN: a wake-up is pending already
    }

    // MARK: The thread

    private func loop() {
        var blocked = sigset_t()
        sigfillset(&blocked)
        pthread_sigmask(SIG_SETMASK, &blocked, nil)
        GNUExtensions.setThreadName?(pthread_self(), "hamn-children")

        let bufferSize = 65536
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: bufferSize, alignment: 8)
        var children: [SupervisedChild] = []
        var fds: [pollfd] = []
        // What each pollfd after the first (the wake pipe) is for.
        var owners: [(child: SupervisedChild, stream: SupervisedChild.Stream)] = []

        while true {
            children += incoming.withLock { list in
                defer { list.removeAll(keepingCapacity: true) }
                return list
            }
            let now = monotonicNanoseconds()
            var nextWake: UInt64? = nil
            func wakeAt(_ time: UInt64) { nextWake = min(nextWake ?? time, time) }
            for child in children {
                child.startClock(now)
                child.applyDeadlines(now: now)
                if child.exitSeen { child.finishIfDue(now: now) }
                if let time = child.nextDeadline { wakeAt(time) }
                if child.pidfd < 0, !child.exitSeen { wakeAt(now + 5_000_000) }  // no pidfd: poll for the exit
            }
            children.removeAll { $0.finished }

            fds.removeAll(keepingCapacity: true)
            owners.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0))
            for child in children {
                for (stream, fd, events) in child.polled() {
                    fds.append(pollfd(fd: fd, events: events, revents: 0))
                    owners.append((child, stream))
                }
            }
            let timeout: Int32
            if let nextWake {
                let nanoseconds = nextWake > now ? nextWake - now : 0
                timeout = Int32(min((nanoseconds + 999_999) / 1_000_000, 60_000))
            } else {
                timeout = -1
            }
            let ready = poll(&fds, nfds_t(fds.count), timeout)
            if ready < 0 {
                if errno == EINTR { continue }
                fatalError("ProcessSupervisor: poll: \(String(cString: strerror(errno)))")
            }
            if fds[0].revents != 0 {
                while read(wakeRead, buffer.baseAddress, bufferSize) > 0 {}
            }
            for index in fds.indices.dropFirst() where fds[index].revents != 0 {
                let (child, stream) = owners[index - 1]
                child.ready(stream, buffer: buffer)
            }
            for child in children where child.pidfd < 0 && !child.exitSeen {
                child.checkExitWithoutPidfd()
            }
        }
    }
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}

extension Duration {
    var nanoseconds: UInt64 {
        let (seconds, attoseconds) = components
        guard seconds >= 0, attoseconds >= 0 else { return 0 }
        let (whole, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1_000_000_000)
        return overflow ? UInt64.max / 2 : whole + UInt64(attoseconds / 1_000_000_000)
    }
}

/// One started child, as the supervisor keeps it. Everything but ``cancelRequested`` and the
/// continuation (set before it is handed over) is touched only by the supervisor's thread.
final class SupervisedChild: @unchecked Sendable {
    enum Stream { case exit, output, error, input }

    let pid: pid_t
    let pidfd: Int32
    private var outputFD: Int32
    private var errorFD: Int32
    private var inputFD: Int32
    private var inputBytes: [UInt8]
    private var inputOffset = 0
    private var outputCapture: Capture
    private var errorCapture: Capture
    private let timeout: Duration?
    private let killGrace: Duration?
    private let killGroupOnExit: Bool
    var continuation: CheckedContinuation<ProcessLauncher.Outcome, Never>?

    private let cancelRequested = Atomic<Bool>(false)
    private var cancelHandled = false
    private var deadline: UInt64?
    private var killAt: UInt64?
    private var timedOut = false
    private var clockStarted = false
    private(set) var exitSeen = false
    private(set) var finished = false

    init(
        pid: pid_t, pidfd: Int32, output: Int32, error: Int32?, input: Int32?, inputBytes: [UInt8],
        capture: ProcessLauncher.Output, timeout: Duration?, killGrace: Duration?, killGroupOnExit: Bool
    ) {
        self.pid = pid
        self.pidfd = pidfd
        self.outputFD = output
        self.errorFD = error ?? -1
        self.inputFD = input ?? -1
        self.inputBytes = inputBytes
        switch capture {
        case .merged(let tail):
            outputCapture = .tail(limit: tail)
            errorCapture = .head(limit: 0)
        case .separate(let head, let errorTail):
            outputCapture = .head(limit: head)
            errorCapture = .tail(limit: errorTail)
        }
        self.timeout = timeout
        self.killGrace = killGrace
        self.killGroupOnExit = killGroupOnExit
        if input != nil, inputBytes.isEmpty { closeInput() }
    }

    /// Any thread: the caller's task was cancelled.
    func requestCancellation() {
        cancelRequested.store(true, ordering: .releasing)
        ProcessSupervisor.shared.wake()
    }

    func startClock(_ now: UInt64) {
        guard !clockStarted else { return }
        clockStarted = true
        if let timeout { deadline = now &+ timeout.nanoseconds }
    }

    var nextDeadline: UInt64? {
        switch (deadline, killAt) {
        case (let a?, let b?): min(a, b)
        case (let a?, nil): a
        case (nil, let b?): b
        case (nil, nil): nil
        }
    }

    /// Timeout, cancellation and the end of the kill grace, as due at `now`.
    func applyDeadlines(now: UInt64) {
        guard !finished else { return }
        if !cancelHandled, cancelRequested.load(ordering: .acquiring) {
            cancelHandled = true
            deadline = nil
            terminate(now: now, becauseOfTimeout: false)
        }
        if let due = deadline, now >= due {
            deadline = nil
            terminate(now: now, becauseOfTimeout: true)
        }
        if let due = killAt, now >= due {
            killAt = nil
            _ = kill(-pid, SIGKILL)
        }
    }

    /// Ends the group of a leader that is still running: `SIGKILL`, or `SIGTERM` and later
    /// `SIGKILL` with a grace. A leader that has exited already is not a timeout.
    private func terminate(now: UInt64, becauseOfTimeout: Bool) {
        guard !exitSeen, !leaderHasExited() else { return }
        if becauseOfTimeout { timedOut = true }
        if let killGrace, killGrace > .zero {
            guard killAt == nil else { return }
            _ = kill(-pid, SIGTERM)
            killAt = now &+ killGrace.nanoseconds
        } else {
            killAt = nil
            _ = kill(-pid, SIGKILL)
        }
    }

    /// Whether the leader has exited, without reaping it.
    private func leaderHasExited() -> Bool {
        var info = siginfo_t()
        while true {
            if waitid(P_PID, id_t(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 {
                return info._sifields._sigchld.si_pid != 0
            }
            if errno != EINTR { return true }
        }
    }

    /// The descriptors to poll, and for what.
    func polled() -> [(Stream, Int32, Int16)] {
        var list: [(Stream, Int32, Int16)] = []
        if !exitSeen, pidfd >= 0 { list.append((.exit, pidfd, Int16(POLLIN))) }
        if outputFD >= 0 { list.append((.output, outputFD, Int16(POLLIN))) }
        if errorFD >= 0 { list.append((.error, errorFD, Int16(POLLIN))) }
        if inputFD >= 0 { list.append((.input, inputFD, Int16(POLLOUT))) }
        return list
    }

    func ready(_ stream: Stream, buffer: UnsafeMutableRawBufferPointer) {
        switch stream {
        case .output: readAvailable(output: true, buffer: buffer, drain: false)
        case .error: readAvailable(output: false, buffer: buffer, drain: false)
        case .input: writeInput()
        case .exit: exited()
        }
    }

    func checkExitWithoutPidfd() {
        if leaderHasExited() { exited() }
    }

    /// The leader has exited (it is a zombie): drain and close the pipes, kill its group's
    /// leftovers when asked, and reap it, unless a kill grace is running: then the zombie
    /// keeps the group id until the `SIGKILL` (``finishIfDue(now:)``).
    private func exited() {
        exitSeen = true
        deadline = nil
        finishIfDue(now: monotonicNanoseconds())
    }

    func finishIfDue(now: UInt64) {
        guard !finished else { return }
        if killAt != nil { return }  // the grace runs; applyDeadlines sends SIGKILL, then we come back
        if killGroupOnExit { _ = kill(-pid, SIGKILL) }
        var info = siginfo_t()
        var reaped: Int32
        repeat { reaped = waitid(P_PID, id_t(pid), &info, WEXITED) } while reaped != 0 && errno == EINTR
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 8)
        defer { buffer.deallocate() }
        // What the process wrote before it exited is in the pipes; what its background
        // children write later is not waited for.
        if outputFD >= 0 { readAvailable(output: true, buffer: buffer, drain: true) }
        if errorFD >= 0 { readAvailable(output: false, buffer: buffer, drain: true) }
        closeDescriptor(&outputFD)
        closeDescriptor(&errorFD)
        closeInput()
        if pidfd >= 0 { close(pidfd) }
        finished = true

        let termination: Termination
        if timedOut {
            termination = .timedOut
        } else if reaped != 0 {
            termination = .couldNotStart(
                "lost track of the process after it started: waitid: \(String(cString: strerror(errno)))")
        } else {
            let status = info._sifields._sigchld.si_status
            termination = info.si_code == Int32(CLD_EXITED) ? .exited(status) : .signaled(status)
        }
        let outcome = ProcessLauncher.Outcome(
            termination: termination, startError: nil, output: outputCapture.captured,
            errorOutput: errorCapture.captured)
        let continuation = self.continuation
        self.continuation = nil
        continuation?.resume(returning: outcome)
    }

    private func readAvailable(output: Bool, buffer: UnsafeMutableRawBufferPointer, drain: Bool) {
        var reads = 0
        while true {
            let fd = output ? outputFD : errorFD
            guard fd >= 0 else { return }
            let count = read(fd, buffer.baseAddress, buffer.count)
            if count > 0 {
                let chunk = UnsafeRawBufferPointer(rebasing: buffer[0..<count])
                if output { outputCapture.append(chunk) } else { errorCapture.append(chunk) }
                reads += 1
                // Drained at exit: bounded, a background writer may never stop.
                if drain && reads < 64 { continue }
                return
            }
            if count < 0, errno == EINTR { continue }
            if count < 0, errno == EAGAIN || errno == EWOULDBLOCK { return }
            // End of file, or an error: this stream is done.
            if output { closeDescriptor(&outputFD) } else { closeDescriptor(&errorFD) }
            return
        }
    }

    private func writeInput() {
        while inputFD >= 0, inputOffset < inputBytes.count {
            let written = inputBytes.withUnsafeBytes { bytes in
                write(inputFD, bytes.baseAddress! + inputOffset, bytes.count - inputOffset)
            }
            if written > 0 {
                inputOffset += written
            } else if written < 0, errno == EINTR {
                continue
            } else if written < 0, errno == EAGAIN || errno == EWOULDBLOCK {
                return
            } else {
                break  // EPIPE: the process does not read its input
            }
        }
        closeInput()
    }

    private func closeInput() {
        closeDescriptor(&inputFD)
        inputBytes = []
    }

    private func closeDescriptor(_ fd: inout Int32) {
        if fd >= 0 { close(fd) }
        fd = -1
    }
}

/// How one output stream is kept: its first `limit` bytes, or its last (``OutputTail``).
struct Capture {
    private var head: [UInt8] = []
    private var headLimit = 0
    private var headTruncated = false
    private var tail: OutputTail?

    static func head(limit: Int) -> Capture {
        var capture = Capture()
        capture.headLimit = max(0, limit)
        return capture
    }

    static func tail(limit: Int) -> Capture {
        var capture = Capture()
        capture.tail = OutputTail(limit: limit)
        return capture
    }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        if tail != nil {
            tail!.append(chunk)
            return
        }
        let room = headLimit - head.count
        if chunk.count > room { headTruncated = true }
        if room > 0 { head.append(contentsOf: chunk.prefix(room)) }
    }

    var captured: CapturedOutput {
        if let tail { return CapturedOutput(tail: tail) }
        return CapturedOutput(head: head, truncated: headTruncated)
    }
}
