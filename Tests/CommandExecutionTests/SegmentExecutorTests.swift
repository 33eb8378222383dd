import Foundation
import RecoveryPrograms
import RulesParser
import Testing

@testable import CommandExecution

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// These tests run real processes, through /bin/sh or directly (commands without shell syntax).
// None asserts a timing threshold: overlap is shown by a rendezvous, kills by the pid being gone.

func step(_ command: String, _ expected: ExpectedStatus = .exactly(0), line: Int = 1) -> CommandStep {
    CommandStep(relationship: .all, command: command, expected: expected, line: line, column: 5)
}

/// A fresh directory, removed when `body` ends.
func withTemporaryDirectory<T>(_ body: (String) async throws -> T) async throws -> T {
    let path = NSTemporaryDirectory() + "hamn-exec-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try await body(path)
}

/// The file's text, read to end of file (so /proc files, whose size is 0, work too).
func read(_ path: String) -> String? {
    guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
    defer { try? handle.close() }
    guard let data = try? handle.readToEnd() else { return "" }
    return String(decoding: data, as: UTF8.self)
}

func exists(_ path: String) -> Bool {
    FileManager.default.fileExists(atPath: path)
}

/// The command name and state of `pid` from /proc, nil when it is gone.
func processStatus(_ pid: pid_t) -> (name: Substring, state: Character?)? {
    guard kill(pid, 0) == 0 || errno == EPERM else { return nil }
    guard let stat = read("/proc/\(pid)/stat"),
        let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
    else { return nil }
    return (stat[stat.index(after: open)..<close], stat[stat.index(close, offsetBy: 2)...].first)
}

/// Whether `pid` runs: not gone, and not a zombie waiting for an init that may never reap it.
func isAlive(_ pid: pid_t) -> Bool {
    guard let status = processStatus(pid) else { return false }
    return status.state != "Z" && status.state != "X"
}

/// Whether `pid` runs `sleep` (a forked subshell is still named `sh` until it has exec'd).
func isLiveSleep(_ pid: pid_t) -> Bool {
    isAlive(pid) && processStatus(pid)?.name == "sleep"
}

/// Polls up to `seconds` until `condition` holds.
func eventually(seconds: Double = 5, _ condition: () -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
    while ContinuousClock.now < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

func pid(in file: String) async -> pid_t? {
    _ = await eventually(seconds: 20) {
        (read(file).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) != nil
    }
    return read(file).flatMap { pid_t($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
}

let event: [String: String] = [
    "HAMN_EVENT": "TE_JOIN_NODE", "HAMN_EVENT_STATE": "0", "HAMN_EVENT_ID": "42",
    "HAMN_EVENT_NODE": "n2", "HAMN_LOCAL_NODE": "n1",
]

@Suite("segment executor")
struct SegmentExecutorTests {
    let executor = SegmentExecutor()

    @Test("commands of one segment run in parallel: each waits until all have started")
    func parallel() async throws {
        try await withTemporaryDirectory { dir in
            // Each command marks its start, then waits (at most 10 s) until all three marks
            // exist, and succeeds only if they do. Run one after another, the first would give
            // up and fail: all three succeeding means all started before any ended.
            let commands = (1...3).map { i in
                step(
                    """
                    touch \(dir)/started.\(i); n=0
                    while [ "$(ls \(dir) | grep -c started)" -lt 3 ] && [ $n -lt 200 ]; do sleep 0.05; n=$((n+1)); done
                    [ "$(ls \(dir) | grep -c started)" -eq 3 ] && touch \(dir)/saw-all.\(i)
                    """, line: i)
            }
            let results = await executor.run(commands, environment: event)
            #expect(results.map(\.termination) == [.exited(0), .exited(0), .exited(0)])
            #expect(results.allSatisfy { $0.accepted })
            #expect((1...3).allSatisfy { exists("\(dir)/saw-all.\($0)") })
        }
    }

    @Test("results come back in the order of the commands, not of completion")
    func order() async {
        let results = await executor.run(
            [
                step("sleep 0.3; exit 1", .exactly(1), line: 1), step("exit 2", .exactly(2), line: 2),
                step("exit 0", line: 3),
            ],
            environment: [:])
        #expect(results.map(\.line) == [1, 2, 3])
        #expect(results.map(\.termination) == [.exited(1), .exited(2), .exited(0)])
        #expect(results.allSatisfy { $0.accepted })
        #expect(await executor.run([], environment: [:]).isEmpty)
    }

    @Test("a timeout kills the command's whole process group, background children included")
    func timeoutKillsGroup() async throws {
        try await withTemporaryDirectory { dir in
            // 1 s leaves the shell time to write the pid file even on a loaded machine.
            let executor = SegmentExecutor(timeout: .seconds(1))
            let result = await executor.run(step("sleep 30 & echo $! > \(dir)/pid; wait"), environment: event)
            #expect(result.termination == .timedOut)
            #expect(!result.accepted)
            #expect(result.duration < 25)  // far below the 30 s sleep; generous for a loaded machine
            let child = try #require(await pid(in: "\(dir)/pid"))
            #expect(await eventually { !isAlive(child) }, "background sleep \(child) survived the timeout")
        }
    }

    @Test("the timeout still applies when the command closed its output early")
    func timeoutAfterOutputClosed() async {
        let executor = SegmentExecutor(timeout: .seconds(1))
        let result = await executor.run(step("echo before; exec >/dev/null 2>&1; sleep 30", .any), environment: [:])
        #expect(result.termination == .timedOut)
        #expect(!result.accepted)  // even with x: a timeout is never accepted
        #expect(["before\n", ""].contains(result.outputTail))  // "" only if the shell had not even started
        #expect(result.duration < 25)  // far below the 30 s sleep; generous for a loaded machine
    }

    @Test("a command that ends before its timeout is not killed")
    func withinTimeout() async {
        let executor = SegmentExecutor(timeout: .seconds(20))
        let result = await executor.run(step("echo ok"), environment: [:])
        #expect(result.termination == .exited(0))
        #expect(result.outputTail == "ok\n")
    }

    @Test("a background process left by a finished command keeps running and does not hold the segment")
    func daemonSurvives() async throws {
        try await withTemporaryDirectory { dir in
            // The background sleep inherits the output pipe and keeps it open for 30 s; the
            // command must still end when the shell does.
            let executor = SegmentExecutor(timeout: .seconds(20))
            let result = await executor.run(step("sleep 30 & echo $! > \(dir)/pid; echo started"), environment: [:])
            let child = try #require(await pid(in: "\(dir)/pid"))
            defer { kill(child, SIGKILL) }
            #expect(result.termination == .exited(0))
            #expect(result.outputTail == "started\n")
            #expect(result.duration < 25)  // far below the 30 s sleep; generous for a loaded machine
            #expect(
                await eventually(seconds: 2) { isLiveSleep(child) },
                "the background sleep \(child) of a finished command was killed")
            #expect(isAlive(child))
        }
    }

    @Test("the event reaches the command through its environment")
    func environmentCarriesEvent() async throws {
        try await withTemporaryDirectory { dir in
            let result = await executor.run(
                step(#"echo "$HAMN_EVENT $HAMN_EVENT_NODE $HAMN_EVENT_STATE $HAMN_EVENT_ID" > "# + "\(dir)/out"),
                environment: event)
            #expect(result.termination == .exited(0))
            #expect(read("\(dir)/out") == "TE_JOIN_NODE n2 0 42\n")
        }
    }

    @Test("shell metacharacters in an event value arrive literally and run nothing")
    func metacharactersStayData() async throws {
        try await withTemporaryDirectory { dir in
            let value =
                "a; rm -rf \(dir)/x $(touch \(dir)/pwned1) `touch \(dir)/pwned2` && touch \(dir)/pwned3 | \" ' \\ * ?"
            try FileManager.default.createDirectory(atPath: "\(dir)/x", withIntermediateDirectories: false)
            let result = await executor.run(
                step(#"printf '%s' "$HAMN_RV_VALUE" > "# + "\(dir)/value; echo $HAMN_RV_VALUE > \(dir)/unquoted"),
                environment: ["HAMN_RV_VALUE": value])
            #expect(result.termination == .exited(0))
            #expect(read("\(dir)/value") == value)
            #expect(!exists("\(dir)/pwned1") && !exists("\(dir)/pwned2") && !exists("\(dir)/pwned3"))
            #expect(exists("\(dir)/x"))
        }
    }

    @Test("environment: event over base, PATH kept or defaulted, script directory only for relative commands")
    func environmentMerge() {
        let executor = SegmentExecutor(
            eventScriptDirectory: "/usr/lib/hamn/events",
            baseEnvironment: ["PATH": "/opt/bin:/usr/bin", "HOME": "/root", "HAMN_EVENT": "stale"])
        let absolute = executor.environment(for: step("/usr/bin/true"), event: event)
        #expect(absolute["PATH"] == "/opt/bin:/usr/bin")
        #expect(absolute["HOME"] == "/root")
        #expect(absolute["HAMN_EVENT"] == "TE_JOIN_NODE")
        let relative = executor.environment(for: step("LANG=C node_up_local arg"), event: event)
        #expect(relative["PATH"] == "/usr/lib/hamn/events:/opt/bin:/usr/bin")
        let bare = SegmentExecutor(baseEnvironment: [:]).environment(for: step("node_up_local"), event: [:])
        #expect(bare["PATH"] == SegmentExecutor.defaultPath)
        #expect(SegmentExecutor.isRelative(step("node_up_local")))
        #expect(!SegmentExecutor.isRelative(step("/usr/sbin/x")))
        #expect(!SegmentExecutor.isRelative(step("  ")))
        // The default base environment is this process's.
        #expect(SegmentExecutor().baseEnvironment["PATH"] == ProcessInfo.processInfo.environment["PATH"])
    }

    @Test("expected status: exit codes are results, checked against the expected status")
    func expectedStatus() async {
        let results = await executor.run(
            [
                step("exit 3", .exactly(3)), step("exit 3", .exactly(0)), step("exit 3", .any),
                step("exit 0", .any), step("kill -TERM $$", .exactly(0)), step("kill -TERM $$", .any),
                step("exit 255", .exactly(255)),
            ],
            environment: [:])
        #expect(
            results.map(\.termination) == [
                .exited(3), .exited(3), .exited(3), .exited(0), .signaled(15), .signaled(15), .exited(255),
            ])
        #expect(results.map(\.accepted) == [true, false, true, true, false, false, true])
    }

    @Test("a missing program is a start failure with the shell's message, never accepted")
    func missingProgram() async {
        let result = await executor.run(step("/nonexistent/x"), environment: [:])
        #expect(
            result.termination
                == .couldNotStart("/nonexistent/x: not found (exit 127: /bin/sh: 1: /nonexistent/x: not found)"))
        #expect(!result.accepted)
        #expect(result.outputTail.contains("/nonexistent/x"))
    }

    /// SPEC section 3: a command that cannot be started fails the event, even with `x`.
    @Test(
        "with expected status x, a missing, non-executable or not-found command is not accepted; a script's own 127 is")
    func cannotStartWithAnyStatus() async throws {
        try await withTemporaryDirectory { dir in
            let missing = await executor.run(step("/nonexistent/x arg", .any), environment: [:])
            #expect(
                missing.termination
                    == .couldNotStart("/nonexistent/x: not found (exit 127: /bin/sh: 1: /nonexistent/x: not found)"))
            #expect(!missing.accepted)
            let bare = await executor.run(step("no_such_program_hamn", .any), environment: [:])
            #expect(!bare.accepted)
            #expect(bare.termination.description.hasPrefix("could not start: no_such_program_hamn: not found"))
            try "#!/bin/sh\nexit 0\n".write(toFile: "\(dir)/plain", atomically: true, encoding: .utf8)
            chmod("\(dir)/plain", 0o644)
            let plain = await executor.run(step("\(dir)/plain", .any), environment: [:])
            #expect(!plain.accepted)
            #expect(plain.termination.description.hasPrefix("could not start: \(dir)/plain: not executable (exit 126"))
            // Through the shell: the program found, a later command of the line not.
            let later = await executor.run(step("/bin/true && no_such_program_hamn", .any), environment: [:])
            #expect(later.termination == .couldNotStart("/bin/sh: 1: no_such_program_hamn: not found (exit 127)"))
            #expect(!later.accepted)
            // A script that ran and ended with 127 itself (its own missing command, or exit 127)
            // started: `x` accepts it.
            try "#!/bin/sh\nno_such_program_hamn\n".write(toFile: "\(dir)/inner", atomically: true, encoding: .utf8)
            chmod("\(dir)/inner", 0o755)
            let inner = await executor.run(step("\(dir)/inner", .any), environment: [:])
            #expect(inner.termination == .exited(127))
            #expect(inner.accepted)
            let exits = await executor.run(step("/bin/sh -c 'exit 127'", .any), environment: [:])
            #expect(exits.termination == .exited(127))
            #expect(exits.accepted)
        }
    }

    @Test("a shell that cannot be executed is couldNotStart")
    func couldNotStart() async {
        let executor = SegmentExecutor(shellPath: "/nonexistent/sh")
        let result = await executor.run(step("true", .any), environment: [:])
        guard case .couldNotStart(let why) = result.termination else {
            Issue.record("expected couldNotStart, got \(result.termination)")
            return
        }
        #expect(!why.isEmpty)
        #expect(!result.accepted)
        // So is an environment the kernel cannot take.
        let bad = await SegmentExecutor().run(step("true"), environment: ["A=B": "x"])
        #expect({ if case .couldNotStart = bad.termination { true } else { false } }())
    }

    @Test("output: only the tail is kept, a large output neither hangs nor is held in memory")
    func largeOutput() async {
        let result = await executor.run(step("yes | head -c 5000000"), environment: [:])
        #expect(result.termination == .exited(0))
        #expect(result.outputTail.utf8.count == 4096)
        #expect(result.outputTail == String(repeating: "y\n", count: 2048))

        let small = SegmentExecutor(outputTailBytes: 10)
        let both = await small.run(step("yes | head -c 10000000 >&2; printf 'the end'"), environment: [:])
        #expect(both.termination == .exited(0))
        #expect(both.outputTail == "\ny\nthe end")

        let none = await SegmentExecutor(outputTailBytes: 0).run(step("echo hi"), environment: [:])
        #expect(none.outputTail == "")
    }

    @Test("standard output and standard error are interleaved as written; standard input is empty")
    func interleaving() async {
        let result = await executor.run(step("echo out1; echo err1 >&2; echo out2; cat; echo end"), environment: [:])
        #expect(result.termination == .exited(0))
        #expect(result.outputTail == "out1\nerr1\nout2\nend\n")
    }

    @Test("a relative bundled script is found in the event-script directory")
    func bundledScript() async throws {
        try await withTemporaryDirectory { dir in
            let script = "\(dir)/node_up_local"
            try "#!/bin/sh\necho \"local $1 $HAMN_EVENT\"\n".write(toFile: script, atomically: true, encoding: .utf8)
            chmod(script, 0o755)
            let executor = SegmentExecutor(eventScriptDirectory: dir)
            let result = await executor.run(step("node_up_local arg"), environment: event)
            #expect(result.termination == .exited(0))
            #expect(result.outputTail == "local arg TE_JOIN_NODE\n")
            // Without the directory the shell does not find it.
            let without = await SegmentExecutor(baseEnvironment: ["PATH": "/usr/bin:/bin"]).run(
                step("node_up_local arg"), environment: event)
            #expect(without.termination.description.hasPrefix("could not start: node_up_local: not found (exit 127"))
        }
    }

    @Test("cancelling the caller kills the running commands' process groups")
    func cancellation() async throws {
        try await withTemporaryDirectory { dir in
            let executor = SegmentExecutor()
            let commands = (1...2).map { i in step("sleep 30 & echo $! > \(dir)/pid\(i); wait", line: i) }
            let task = Task { await executor.run(commands, environment: event) }
            let children = [await pid(in: "\(dir)/pid1"), await pid(in: "\(dir)/pid2")].compactMap { $0 }
            try #require(children.count == 2)
            task.cancel()
            let results = await task.value
            #expect(results.count == 2)
            #expect(results.allSatisfy { !$0.accepted })
            #expect(results.map(\.termination) == [.signaled(SIGKILL), .signaled(SIGKILL)])
            #expect(results.allSatisfy { $0.duration < 25 })
            for child in children {
                #expect(await eventually { !isAlive(child) }, "background sleep \(child) survived cancellation")
            }
            // A task cancelled before it starts anything starts nothing.
            let late = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return await executor.run([step("touch \(dir)/ran")], environment: [:])
            }
            let lateResults = await late.value
            #expect({ if case .couldNotStart = lateResults.first?.termination { true } else { false } }())
            #expect(!exists("\(dir)/ran"))
        }
    }
}

/// A directory with `probe` (writes its `$#`, its arguments one a line, its parent pid and
/// `$PWD` to `out`), `spawner` (starts a background `sleep 30`, writes its pid to `pid`, waits)
/// and `fakesh` (appends a line to `shell-used`, then execs /bin/sh): a `SegmentExecutor` with
/// `shellPath: fakesh` leaves a trace of every command it ran through the shell.
private func withProbes<T>(_ body: (String) async throws -> T) async throws -> T {
    try await withTemporaryDirectory { dir in
        let scripts = [
            "probe":
                "#!/bin/sh\n{ echo \"$#\"; for a in \"$@\"; do echo \"$a\"; done; cut -d' ' -f4 /proc/$$/stat; echo \"$PWD\"; } > \(dir)/out\n",
            "spawner": "#!/bin/sh\nsleep 30 &\necho $! > \(dir)/pid\nwait\n",
            "fakesh": "#!/bin/sh\necho \"$2\" >> \(dir)/shell-used\nexec /bin/sh \"$@\"\n",
        ]
        for (name, text) in scripts {
            try text.write(toFile: "\(dir)/\(name)", atomically: true, encoding: .utf8)
            chmod("\(dir)/\(name)", 0o755)
        }
        return try await body(dir)
    }
}

private func shellUses(_ dir: String) -> [String] {
    (read("\(dir)/shell-used") ?? "").split(separator: "\n").map(String.init)
}

@Suite("segment executor: direct execution")
struct DirectExecutionTests {
    @Test(
        "plain words are split; any shell syntax, builtin or reserved word, assignment or odd spacing is left to the shell"
    )
    func selection() throws {
        #expect(
            SegmentExecutor.plainWords("/usr/bin/x a,b k=v +1 @h %p -q --o=a:b ./rel ../up")
                == ["/usr/bin/x", "a,b", "k=v", "+1", "@h", "%p", "-q", "--o=a:b", "./rel", "../up"])
        #expect(SegmentExecutor.plainWords("node_up_local") == ["node_up_local"])
        let shellSyntax = [
            "", " ", "x  y", " x", "x ", "x\ty", "x\ny", "x 'a'", "x \"a\"", "x $HOME", "x ${A}", "x `id`", "x $(id)",
            "x *", "x a?", "x [ab]", "x > f", "x < f", "x 2>&1", "x; y", "x && y", "x | y", "x &", "x \\a", "~/x",
            "x ~", "x # c", "x {a,b}", "!x", "(x)", "A=1 x", "A=1", "x é", "x\u{0}",
        ]
        for command in shellSyntax {
            #expect(SegmentExecutor.plainWords(command) == nil, "\(command.debugDescription) has shell syntax")
        }
        let executor = SegmentExecutor(baseEnvironment: ["PATH": "/usr/bin:/bin"])
        func launch(_ command: String, path: String? = nil) -> SegmentExecutor.Launch {
            var environment = executor.environment(for: step(command), event: [:])
            if let path { environment["PATH"] = path }
            return executor.launch(for: step(command), environment: environment)
        }
        #expect(
            launch("/bin/cat /proc/self/stat") == .direct(path: "/bin/cat", words: ["/bin/cat", "/proc/self/stat"]))
        #expect(launch("cat a") == .direct(path: "/usr/bin/cat", words: ["cat", "a"]))
        #expect(launch("cat a", path: "/nonexistent:/bin") == .direct(path: "/bin/cat", words: ["cat", "a"]))
        for builtin in [
            "echo hi", "true", "false", "kill -TERM 1", "test -e x", "exit 3", "cd /", "exec /bin/true",
            "printf x", "pwd", "wait", ". x", "if", "time cat",
        ] {
            #expect(launch(builtin) == .shell, "\(builtin) is the shell's")
        }
        #expect(launch("cat $HOME") == .shell)
        #expect(launch("no_such_program_hamn x") == .shell)  // not found: the shell's 127
        #expect(launch("/nonexistent/x") == .shell)
        #expect(launch("/tmp") == .shell)  // a directory: the shell's 126
        #expect(launch("bin/cat x") == .shell)  // relative to the working directory
        #expect(launch("cat x", path: ":/usr/bin") == .shell)  // PATH searches the working directory
        #expect(launch("cat x", path: "bin:/usr/bin") == .shell)
    }

    @Test("a command without shell syntax runs directly: no shell, arguments intact, its parent is this process")
    func direct() async throws {
        try await withProbes { dir in
            let executor = SegmentExecutor(shellPath: "\(dir)/fakesh", workingDirectory: dir)
            let result = await executor.run(
                step("\(dir)/probe a,b k=v +1 @host %p -q --opt=a:b:c ../x"), environment: event)
            #expect(result.termination == .exited(0))
            #expect(result.accepted)
            #expect(shellUses(dir) == [])
            let resolved = try #require(realpath(dir, nil))
            defer { free(resolved) }
            #expect(
                read("\(dir)/out")
                    == "8\na,b\nk=v\n+1\n@host\n%p\n-q\n--opt=a:b:c\n../x\n\(getpid())\n\(String(cString: resolved))\n")
            // argv[0] as written, as the shell passes it (a script's $0 is its path: ask cat).
            let cat = await executor.run(step("cat /proc/self/cmdline"), environment: [:])
            #expect(cat.outputTail == "cat\0/proc/self/cmdline\0")
            #expect(shellUses(dir) == [])
            // A bundled event script, found in the event-script directory as the shell found it.
            let bundled = await SegmentExecutor(eventScriptDirectory: dir, shellPath: "\(dir)/fakesh").run(
                step("probe x"), environment: event)
            #expect(bundled.termination == .exited(0))
            #expect(read("\(dir)/out")?.hasPrefix("1\nx\n\(getpid())\n") == true)
            #expect(shellUses(dir) == [])
        }
    }

    @Test("any shell syntax runs through the shell, as before")
    func throughShell() async throws {
        try await withProbes { dir in
            let executor = SegmentExecutor(shellPath: "\(dir)/fakesh")
            let commands = [
                "\(dir)/probe 'a b'", "\(dir)/probe $HAMN_EVENT", "X=1 \(dir)/probe", "\(dir)/probe a;", "echo hi",
                "\(dir)/probe  two-spaces",
            ]
            for command in commands {
                let result = await executor.run(step(command), environment: event)
                #expect(result.termination == .exited(0), "\(command)")
            }
            #expect(shellUses(dir) == commands)
            // The probe's parent was the shell, not this process.
            #expect(read("\(dir)/out")?.hasPrefix("1\ntwo-spaces\n\(getpid())\n") == false)
        }
    }

    @Test("the environment of a direct command is the one the shell gave it, PWD included")
    func sameEnvironment() async throws {
        try await withProbes { dir in
            let executor = SegmentExecutor(shellPath: "\(dir)/fakesh", workingDirectory: dir)
            let direct = await executor.run(step("/usr/bin/env"), environment: event)
            let shell = await executor.run(step("/usr/bin/env;"), environment: event)
            #expect(shellUses(dir) == ["/usr/bin/env;"])
            func lines(_ text: String) -> [Substring] { text.split(separator: "\n").sorted() }
            #expect(lines(direct.outputTail) == lines(shell.outputTail))
            #expect(lines(direct.outputTail).contains { $0.hasPrefix("PWD=/") })
            #expect(lines(direct.outputTail).contains("HAMN_EVENT=TE_JOIN_NODE"))
        }
    }

    @Test("a missing, non-executable or #!-less program gets the shell's outcome: 127, 126, run by sh")
    func notDirectlyExecutable() async throws {
        try await withProbes { dir in
            let executor = SegmentExecutor(eventScriptDirectory: dir, shellPath: "\(dir)/fakesh")
            let missing = await executor.run(step("no_such_program_hamn arg"), environment: [:])
            #expect(
                missing.termination.description.hasPrefix("could not start: no_such_program_hamn: not found (exit 127"))
            #expect(missing.outputTail.contains("no_such_program_hamn: not found"))
            let absent = await executor.run(step("\(dir)/absent arg"), environment: [:])
            #expect(absent.termination.description.hasPrefix("could not start: \(dir)/absent: not found (exit 127"))
            try "#!/bin/sh\nexit 0\n".write(toFile: "\(dir)/plain", atomically: true, encoding: .utf8)
            chmod("\(dir)/plain", 0o644)
            let notExecutable = await executor.run(step("\(dir)/plain"), environment: [:])
            #expect(
                notExecutable.termination.description.hasPrefix(
                    "could not start: \(dir)/plain: not executable (exit 126"))
            #expect(notExecutable.outputTail.contains("Permission denied"))
            // No #! line: the kernel refuses it (ENOEXEC), the direct start falls back to sh,
            // which runs it as a shell script, as it always did.
            try "echo \"no shebang $1\"\nexit 4\n".write(toFile: "\(dir)/legacy", atomically: true, encoding: .utf8)
            chmod("\(dir)/legacy", 0o755)
            let legacy = await executor.run(step("legacy arg", .exactly(4)), environment: [:])
            #expect(legacy.termination == .exited(4))
            #expect(legacy.accepted)
            #expect(legacy.outputTail == "no shebang arg\n")
            #expect(shellUses(dir) == ["no_such_program_hamn arg", "\(dir)/absent arg", "\(dir)/plain", "legacy arg"])
        }
    }

    @Test("a timeout still kills a direct command's whole process group")
    func timeoutKillsDirectGroup() async throws {
        try await withProbes { dir in
            let executor = SegmentExecutor(timeout: .seconds(1), shellPath: "\(dir)/fakesh")
            let result = await executor.run(step("\(dir)/spawner"), environment: event)
            #expect(result.termination == .timedOut)
            #expect(!result.accepted)
            #expect(result.duration < 25)
            #expect(shellUses(dir) == [])
            let child = try #require(await pid(in: "\(dir)/pid"))
            #expect(await eventually { !isAlive(child) }, "background sleep \(child) survived the timeout")
        }
    }

    @Test("cancelling the caller kills a direct command's process group")
    func cancellationKillsDirectGroup() async throws {
        try await withProbes { dir in
            let executor = SegmentExecutor(shellPath: "\(dir)/fakesh")
            let task = Task { await executor.run([step("\(dir)/spawner")], environment: event) }
            let child = try #require(await pid(in: "\(dir)/pid"))
            task.cancel()
            let results = await task.value
            #expect(results.map(\.termination) == [.signaled(SIGKILL)])
            #expect(shellUses(dir) == [])
            #expect(await eventually { !isAlive(child) }, "background sleep \(child) survived cancellation")
        }
    }
}

@Suite("output tail")
struct OutputTailTests {
    @Test("keeps the newest bytes in bounded storage")
    func bounded() {
        var tail = OutputTail(limit: 4)
        tail.append(Array("ab".utf8))
        #expect(tail.text == "ab" && !tail.truncated)
        tail.append(Array("cdef".utf8))
        #expect(tail.text == "cdef" && tail.truncated)
        for _ in 0..<1000 {
            tail.append(Array("xyz".utf8))
            #expect(tail.storedByteCount <= 8)
        }
        #expect(tail.text == "zxyz")
        tail.append(Array("0123456789".utf8))
        #expect(tail.text == "6789")
        #expect(tail.totalBytes == 2 + 4 + 3000 + 10)
    }

    @Test("a UTF-8 sequence cut at the front is dropped, not mangled")
    func utf8Cut() {
        var tail = OutputTail(limit: 5)
        tail.append(Array("zé€".utf8))  // z(1) é(2) €(3): 6 bytes, the z is cut
        #expect(tail.text == "é€")
        var cut = OutputTail(limit: 4)
        cut.append(Array("zé€".utf8))  // the é's first byte is cut: its second is dropped
        #expect(cut.text == "€")
    }
}
