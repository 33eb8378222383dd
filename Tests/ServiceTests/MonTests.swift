import Foundation
import TestSupport
import Testing

/// `hamn-events mon`: follows the service's event log, one hacmp.out-style line per entry, for
/// as long as the service runs. Driven like an operator does: the real service, `mon` as a
/// child process, an event raised with `trigger`.
@Suite("mon", .serialized, .timeLimit(.minutes(1)))
struct MonTests {
    @Test("mon shows a triggered event's start, commands with their exit status and completion, in order")
    func followsAnEvent() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([
            ("mon_work", 0, "all \"/bin/true\" 0 NULL\nbarrier\nall \"/bin/sh -c 'exit 3'\" 3 NULL\n", nil)
        ])
        try harness.start()
        let mon = try MonProcess(socket: harness.socketPath)
        // It starts with the newest lines of the log, among them the service's start.
        #expect(
            harness.eventually {
                mon.lines.contains { $0.hasSuffix("SYNCHRONISED: has the cluster's state as of view 1") }
            }, "\(mon.text)")
        #expect(try harness.cli(["trigger", "mon_work"]).status == 0)
        #expect(harness.eventually { mon.lines.contains { $0.contains("EVENT COMPLETED: mon_work") } }, "\(mon.text)")

        let lines = mon.lines
        for line in lines {
            #expect(MonProcess.isStamped(line), "every line starts with its time stamp: \(line)")
        }
        let texts = lines.map(MonProcess.withoutStamp)
        let event = try #require(
            texts.first { $0.hasPrefix("EVENT START: mon_work 0 ") }.flatMap { MonProcess.eventID(in: $0) },
            "\(mon.text)")
        let rp = harness.root + "/etc/mon_work_0.rp"
        let about = texts.filter {
            $0.contains("(node n1, event \(event))") || $0.contains("event \(event) ")
                || $0.contains("(event \(event))")
        }
        #expect(
            about.map(MonProcess.withoutDurations) == [
                "EVENT QUEUED: mon_work 0 (node n1, event \(event)) priority 10",
                "EVENT START: mon_work 0 (node n1, event \(event)) \"\(MonProcess.displayName(rp))\", participants n1",
                "COMMAND: n1 event \(event) segment 0 line 1 \"/bin/true\" exit 0 (D s)",
                "EVENT BARRIER: mon_work 0 (event \(event)) barrier 0 passed by n1",
                "COMMAND: n1 event \(event) segment 1 line 3 \"/bin/sh -c 'exit 3'\" exit 3 (D s)",
                "EVENT COMPLETED: mon_work 0 (node n1, event \(event))",
            ], "\(mon.text)")
        // The event's lines come one after the other: nothing else happened meanwhile.
        if let first = texts.firstIndex(where: { $0.hasPrefix("EVENT QUEUED: mon_work") }) {
            #expect(Array(texts[first...].prefix(about.count)) == about)
        }
        // Nothing is printed twice as mon polls on: the behaviour under test is that three more
        // of its polls (every 0.2 s) add no such line.
        Thread.sleep(forTimeInterval: 0.6)
        #expect(mon.lines.filter { $0.contains("EVENT COMPLETED: mon_work") }.count == 1)
    }

    @Test("mon ends when it is killed, and the service goes on")
    func endsWhenKilled() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("one", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        try harness.start()
        for signal in [SIGINT, SIGTERM] {
            let mon = try MonProcess(socket: harness.socketPath)
            #expect(harness.eventually { !mon.lines.isEmpty })
            mon.kill(signal)
            #expect(mon.waitForExit(seconds: 5), "mon still runs after signal \(signal)")
            #expect(mon.ending == .signaled(signal))
        }
        // The service noticed nothing wrong: it answers and still runs events.
        #expect(try harness.cli(["status"]).status == 0)
        try harness.cli(["trigger", "one"])
        #expect(harness.eventually { (try? harness.cli(["history"]))?.out.contains("completed") == true })
    }

    @Test("mon --once ends when the service stops (SIGTERM: exit 0) or dies (SIGKILL: exit 1)")
    func endsWithTheService() throws {
        for (signal, status) in [(SIGTERM, Int32(0)), (SIGKILL, 1)] {
            let harness = try ServiceHarness(definitions: [])
            try harness.writeRules([("one", 0, "all \"/bin/true\" 0 NULL\n", nil)])
            try harness.start()
            let mon = try MonProcess(socket: harness.socketPath, arguments: ["--once"])
            #expect(harness.eventually { !mon.lines.isEmpty })
            harness.signal(signal)
            #expect(harness.waitForExit(seconds: 10) != nil)
            #expect(mon.waitForExit(seconds: 5), "mon still runs after the service got signal \(signal)")
            // It ends by itself, not by a signal or a crash.
            #expect(mon.ending == .exited(status), "\(String(describing: mon.ending)) \(mon.errorText)")
        }
    }

    @Test(
        "mon follows the service across a stop and a kill: it says so, waits, and goes on with the lines written meanwhile, none twice"
    )
    func followsAcrossRestarts() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([
            ("before", 0, "all \"/bin/true\" 0 NULL\n", nil), ("after", 0, "all \"/bin/true\" 0 NULL\n", nil),
        ])
        try harness.start()
        let mon = try MonProcess(socket: harness.socketPath)
        try harness.cli(["trigger", "before"])
        #expect(harness.eventually { mon.lines.contains { $0.contains("EVENT COMPLETED: before") } }, "\(mon.text)")
        for (signal, said) in [
            (SIGTERM, "the service stopped; waiting for it to start again"),
            (SIGKILL, "the connection ended without the service's last word"),
        ] {
            let runsBefore = mon.errorText.components(separatedBy: "the service runs again").count
            harness.signal(signal)
            #expect(harness.waitForExit(seconds: 10) != nil)
            #expect(harness.eventually { mon.errorText.contains(said) }, "\(mon.errorText)")
            #expect(mon.ending == nil, "mon waits for the service")
            try harness.start()
            #expect(
                harness.eventually {
                    mon.errorText.components(separatedBy: "the service runs again").count == runsBefore + 1
                }, "\(mon.errorText)")
        }
        try harness.cli(["trigger", "after"])
        #expect(harness.eventually { mon.lines.contains { $0.contains("EVENT COMPLETED: after") } }, "\(mon.text)")
        let texts = mon.lines.map(MonProcess.withoutStamp)
        // Each of the three starts' lines exactly once (lines of two starts in one second are
        // alike: counted, not compared): the reconnections went on after the last line shown,
        // and the lines the service wrote while mon was away came.
        for start in [
            "service started: node n1", "MEMBERSHIP: view 1: n1 joined",
            "SYNCHRONISED: has the cluster's state as of view 1",
        ] {
            #expect(texts.filter { $0.hasPrefix(start) }.count == 3, "\(start)\n\(mon.text)")
        }
        #expect(texts.filter { $0.hasPrefix("EVENT COMPLETED: before") }.count == 1)
        #expect(texts.filter { $0.hasPrefix("EVENT COMPLETED: after") }.count == 1)
        mon.kill(SIGTERM)
        #expect(mon.waitForExit(seconds: 5))
    }

    @Test("mon with the service down says so and exits 1")
    func serviceDown() throws {
        let harness = try ServiceHarness(definitions: [])
        let mon = try MonProcess(socket: harness.socketPath)
        #expect(mon.waitForExit(seconds: 10), "mon waits although nothing listens")
        #expect(mon.ending == .exited(1))
        #expect(mon.errorText.contains("not running"), "\(mon.errorText)")
        #expect(mon.text.isEmpty)
    }
}

/// `hamn-events mon --socket PATH` running in the background, its output collected as it comes.
///
/// Started with posix_spawn and a clean signal state (empty mask, default dispositions), as a
/// shell starts it: Foundation's `Process` passes on the mask of the thread that calls `run()`,
/// and the test's threads block SIGINT and SIGTERM, which `mon` would then never see.
final class MonProcess: @unchecked Sendable {
    enum Ending: Equatable {
        case exited(Int32)
        case signaled(Int32)
    }

    let pid: pid_t
    private let lock = NSLock()
    private var output = ""
    private var errors = ""
    private var ended: Ending?
    /// Standard output and error have each reached their end (read by `reader`).
    private var drained = [false, false]

    init(socket: String, arguments: [String] = []) throws {
        var outPipe: [Int32] = [0, 0]
        var errPipe: [Int32] = [0, 0]
        // Close-on-exec from the start: a process another thread starts meanwhile must not
        // inherit a write end, or the end of mon's output would wait for that process too.
        // (`pipe2` is declared under _GNU_SOURCE, which Glibc's module does not import.)
        typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
        guard let address = dlsym(nil, "pipe2") else { throw ServiceError("no pipe2 in this libc") }
        let pipe2 = unsafeBitCast(address, to: Pipe2.self)
        guard pipe2(&outPipe, O_CLOEXEC) == 0, pipe2(&errPipe, O_CLOEXEC) == 0 else {
            throw ServiceError("pipe2: \(String(cString: strerror(errno)))")
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, outPipe[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var none = sigset_t()
        sigemptyset(&none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        let argv: [UnsafeMutablePointer<CChar>?] =
            ([ServiceHarness.binary, "mon", "--socket", socket] + arguments).map { strdup($0) } + [nil]
        defer { for argument in argv { free(argument) } }
        var pid = pid_t()
        let spawned = argv.withUnsafeBufferPointer {
            posix_spawn(&pid, ServiceHarness.binary, &actions, &attributes, $0.baseAddress!, environ)
        }
        close(outPipe[1])
        close(errPipe[1])
        guard spawned == 0 else {
            close(outPipe[0])
            close(errPipe[0])
            throw ServiceError("cannot run \(ServiceHarness.binary): \(String(cString: strerror(spawned)))")
        }
        self.pid = pid
        // One thread per pipe, reading until its end: a blocking read sees the end of the
        // stream for certain (a FileHandle readability handler missed it under load once).
        for (index, fd) in [outPipe[0], errPipe[0]].enumerated() {
            Thread.detachNewThread { [weak self] in
                defer { close(fd) }
                var buffer = [UInt8](repeating: 0, count: 4096)
                while true {
                    let count = read(fd, &buffer, buffer.count)
                    if count < 0, errno == EINTR { continue }
                    guard count > 0 else { break }
                    self?.append(String(decoding: buffer[0..<count], as: UTF8.self), error: index == 1)
                }
                self?.reachedEnd(index)
            }
        }
    }

    deinit {
        if ending == nil {
            Glibc.kill(pid, SIGKILL)
            // Reaped; its output is not read any more (the handlers hold this object weakly).
            _ = holdsWithin(.seconds(5)) { ending != nil }
        }
    }

    private func reachedEnd(_ index: Int) {
        lock.lock()
        drained[index] = true
        lock.unlock()
    }

    private var isDrained: Bool {
        lock.lock()
        defer { lock.unlock() }
        return !drained.contains(false)
    }

    private func append(_ text: String, error: Bool) {
        lock.lock()
        if error { errors += text } else { output += text }
        lock.unlock()
    }

    var text: String {
        lock.lock()
        defer { lock.unlock() }
        return output
    }

    var errorText: String {
        lock.lock()
        defer { lock.unlock() }
        return errors
    }

    /// The complete lines so far.
    var lines: [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        lines.removeLast()  // after the last newline: empty, or a line not complete yet
        return lines
    }

    /// How it ended, once it has (reaped here).
    var ending: Ending? {
        lock.lock()
        defer { lock.unlock() }
        if ended == nil {
            var status: Int32 = 0
            if waitpid(pid, &status, WNOHANG) == pid {
                ended = status & 0x7F == 0 ? .exited((status >> 8) & 0xFF) : .signaled(status & 0x7F)
            }
        }
        return ended
    }

    func kill(_ signal: Int32) {
        if ending == nil { Glibc.kill(pid, signal) }
    }

    /// Whether it ended within `seconds`; its output is then all read.
    func waitForExit(seconds: Double) -> Bool {
        // Ended, and the readability handlers have read both pipes to their end.
        holdsWithin(.seconds(seconds)) { ending != nil && isDrained }
    }

    /// `Nov 23 09:12:01 TEXT`: month, day padded with a blank, time, then the text.
    static func isStamped(_ line: String) -> Bool {
        line.wholeMatch(of: /[A-Z][a-z]{2} [ 1-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-6][0-9] .+/) != nil
    }

    static func withoutStamp(_ line: String) -> String {
        String(line.dropFirst(16))
    }

    /// `(0.84 s)` -> `(D s)`: how long a command took is not known in advance.
    static func withoutDurations(_ text: String) -> String {
        text.replacing(/\([0-9]+\.[0-9]{2} s\)/, with: "(D s)")
    }

    /// The `N` of `(node n1, event N)`.
    static func eventID(in text: String) -> Int? {
        (try? /, event ([0-9]+)\)/.firstMatch(in: text)).flatMap { Int($0.1) }
    }

    /// A definition without the HACMP comment header is named after its `.rp` file.
    static func displayName(_ rp: String) -> String {
        let base = rp.split(separator: "/").last.map(String.init) ?? rp
        return base.hasSuffix(".rp") ? String(base.dropLast(3)) : base
    }
}
