import Foundation
import RecoveryPrograms
import Testing

@testable import CommandExecution

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// The launcher itself: real processes; kills shown by the pid being gone, never by timings.

private func shell(_ command: String) -> ProcessLauncher.Program {
    .shell(command: command, shellPath: "/bin/sh")
}

private let plainEnvironment = ["PATH": "/usr/bin:/bin"]

@Suite("process launcher")
struct ProcessLauncherTests {
    @Test("exit status, an argument vector passed as is, the environment exactly as given")
    func exitStatus() async {
        let exited = await ProcessLauncher(shell("exit 7"), environment: plainEnvironment).run()
        #expect(exited.termination == .exited(7))
        #expect(exited.startError == nil)

        let argv = await ProcessLauncher(
            .executable(
                path: "/bin/sh",
                arguments: [
                    "name0", "-c",
                    "printf '%s|' \"$0\" \"$1\" \"$ONLY\"; head -c 5 /proc/$$/cmdline; echo; env | wc -l", "zero",
                    "a b",
                ]),
            environment: ["ONLY": "x y"]
        ).run()
        #expect(argv.termination == .exited(0))
        // argv[0] as given, "a b" one argument; the environment: ONLY, plus what sh adds (PWD at most).
        let lines = argv.output.text.split(separator: "\n")
        #expect(lines.first == "zero|a b|x y|name0")
        #expect(lines.count == 2 && Int(lines[1].trimmingCharacters(in: .whitespaces)).map { $0 <= 3 } == true)
    }

    @Test("a process ended by a signal is signaled, with default signal actions and an empty mask")
    func signalDeath() async {
        let result = await ProcessLauncher(shell("kill -USR1 $$; sleep 5"), environment: plainEnvironment).run()
        #expect(result.termination == .signaled(SIGUSR1))
        // SIGPIPE and SIGTERM at their default actions, even if this process ignores them (a
        // shell cannot undo an ignored signal it inherited).
        for signal in [SIGPIPE, SIGTERM] {
            let killed = await ProcessLauncher(shell("kill -\(signal) $$; exit 0"), environment: plainEnvironment).run()
            #expect(killed.termination == .signaled(signal))
        }
    }

    @Test("standard input: the bytes given, then end of file; /dev/null when none")
    func standardInput() async {
        let lines = Array("node=n2\naction=off\n".utf8)
        let echoed = await ProcessLauncher(
            .executable(path: "/bin/cat", arguments: ["cat"]), environment: [:], standardInput: lines
        ).run()
        #expect(echoed.termination == .exited(0))
        #expect(echoed.output.bytes == lines)

        // More than a pipe holds (64 KiB), written as the child reads.
        let large = [UInt8](repeating: UInt8(ascii: "k"), count: 1 << 20)
        let counted = await ProcessLauncher(
            shell("wc -c"), environment: plainEnvironment, standardInput: large
        ).run()
        #expect(counted.output.text.trimmingCharacters(in: .whitespacesAndNewlines) == "1048576")

        // A child that does not read its input: no SIGPIPE for this process, a normal result.
        let ignoring = await ProcessLauncher(shell("exit 3"), environment: plainEnvironment, standardInput: large).run()
        #expect(ignoring.termination == .exited(3))

        let none = await ProcessLauncher(shell("cat; echo end"), environment: plainEnvironment).run()
        #expect(none.output.text == "end\n")
        let empty = await ProcessLauncher(shell("cat; echo end"), environment: plainEnvironment, standardInput: [])
            .run()
        #expect(empty.output.text == "end\n")
    }

    @Test("standard output and standard error, merged or separate, bounded")
    func outputs() async {
        let merged = await ProcessLauncher(
            shell("echo out; echo err >&2; echo out2"), environment: plainEnvironment, output: .merged(tail: 9)
        ).run()
        #expect(merged.output.text == "err\nout2\n")
        #expect(merged.output.truncated)
        let separate = await ProcessLauncher(
            shell("printf 0123456789; printf abcdef >&2"), environment: plainEnvironment,
            output: .separate(head: 4, errorTail: 3)
        ).run()
        #expect(separate.output.text == "0123")
        #expect(separate.output.truncated)
        #expect(separate.errorOutput.text == "def")
    }

    @Test("the working directory, and a program that cannot be started")
    func workingDirectoryAndStartFailure() async {
        let here = await ProcessLauncher(shell("pwd"), environment: plainEnvironment, workingDirectory: "/proc").run()
        #expect(here.output.text == "/proc\n")
        let missing = await ProcessLauncher(.executable(path: "/nonexistent/x", arguments: ["x"]), environment: [:])
            .run()
        #expect(missing.startError?.code == ENOENT)
        #expect({ if case .couldNotStart = missing.termination { true } else { false } }())
        let badName = await ProcessLauncher(shell("true"), environment: ["A=B": "x"]).run()
        #expect(badName.startError?.code == EINVAL)
    }

    @Test("a timeout kills the whole process group, a grandchild too")
    func timeoutKillsGroup() async throws {
        try await withTemporaryDirectory { dir in
            // The grandchild is started by a child shell, not by the leader.
            let result = await ProcessLauncher(
                shell("sh -c 'sleep 30 & echo $! > \(dir)/pid; wait' & wait"), environment: plainEnvironment,
                timeout: .seconds(1)
            ).run()
            #expect(result.termination == .timedOut)
            let grandchild = try #require(await pid(in: "\(dir)/pid"))
            #expect(await eventually { !isAlive(grandchild) }, "grandchild \(grandchild) survived the timeout")
        }
    }

    @Test("with a grace: SIGTERM first, SIGKILL for the group after the grace")
    func grace() async throws {
        try await withTemporaryDirectory { dir in
            // The leader exits on SIGTERM; its child ignores SIGTERM and must get the SIGKILL.
            let result = await ProcessLauncher(
                shell("(trap '' TERM; exec sleep 30) & echo $! > \(dir)/pid; wait"), environment: plainEnvironment,
                timeout: .milliseconds(500), killGrace: .milliseconds(300)
            ).run()
            #expect(result.termination == .timedOut)
            let child = try #require(await pid(in: "\(dir)/pid"))
            #expect(await eventually { !isAlive(child) }, "the child \(child) that ignores SIGTERM survived")
        }
    }

    @Test("cancelling the caller kills the group; a cancelled caller starts nothing")
    func cancellation() async throws {
        try await withTemporaryDirectory { dir in
            let task = Task {
                await ProcessLauncher(shell("sleep 30 & echo $! > \(dir)/pid; wait"), environment: plainEnvironment)
                    .run()
            }
            let child = try #require(await pid(in: "\(dir)/pid"))
            task.cancel()
            let result = await task.value
            #expect(result.termination == .signaled(SIGKILL))
            #expect(await eventually { !isAlive(child) }, "background sleep \(child) survived cancellation")

            let late = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return await ProcessLauncher(shell("touch \(dir)/ran"), environment: plainEnvironment).run()
            }
            #expect(await late.value.startError?.code == ECANCELED)
            #expect(!exists("\(dir)/ran"))
        }
    }

    @Test("no descriptor of this process leaks into a child, close-on-exec or not")
    func noDescriptorLeak() async {
        let leaky = open("/dev/null", O_RDONLY)  // deliberately without O_CLOEXEC
        defer { close(leaky) }
        #expect(leaky > 2)
        let listed = await ProcessLauncher(
            .executable(path: "/bin/ls", arguments: ["ls", "/proc/self/fd"]), environment: [:]
        ).run()
        #expect(listed.termination == .exited(0))
        // 0, 1, 2 and the directory ls itself opened to list them.
        #expect(listed.output.text.split(separator: "\n") == ["0", "1", "2", "3"])
    }

    @Test("many children at once are each reaped and get their own status")
    func manyChildren() async {
        let codes = await withTaskGroup(of: Int32?.self, returning: [Int32].self) { group in
            for code in 0..<40 {
                group.addTask {
                    let result = await ProcessLauncher(shell("exit \(code)"), environment: plainEnvironment).run()
                    if case .exited(let status) = result.termination { return status }
                    return nil
                }
            }
            var codes: [Int32] = []
            for await code in group { if let code { codes.append(code) } }
            return codes.sorted()
        }
        #expect(codes == Array(0..<40))
    }
}

@Suite("program lookup")
struct ProgramLookupTests {
    @Test("one rule: absolute names as is, bare names in PATH, the working directory left undecided")
    func lookup() {
        #expect(ProgramLookup.locate("/bin/cat", path: nil) == .file("/bin/cat"))
        #expect(ProgramLookup.locate("cat", path: "/nonexistent:/bin") == .file("/bin/cat"))
        #expect(ProgramLookup.locate("cat", path: "") == ProgramLookup.locate("cat", path: ProgramLookup.defaultPath))
        #expect(ProgramLookup.locate("no_such_program_hamn", path: "/bin") == .notFound)
        #expect(ProgramLookup.locate("/tmp", path: nil) == .notFound)
        #expect(ProgramLookup.locate("bin/cat", path: nil) == .dependsOnWorkingDirectory)
        #expect(ProgramLookup.locate("cat", path: ":/bin") == .dependsOnWorkingDirectory)
        #expect(ProgramLookup.locate("cat", path: "/bin:relative") == .file("/bin/cat"))
        #expect(MonitorCommand.locate("cat", path: "bin:/bin") == nil)
    }
}
