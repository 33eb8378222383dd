import Foundation
import HamnService
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 16, findings 3 and 4, on the real service: the control socket's directory is checked
/// as tmux checks its own (service and command line), and R020 runs again as each command starts.
@Suite("the service: socket directory and command paths", .serialized, .timeLimit(.minutes(1)))
struct PathHardeningTests {
    static let nobody: uid_t = 65534

    @Test("a command whose directory became writable by others, and whose script was swapped, is refused at start")
    func swappedScriptRefusedAtStart() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try FileManager.default.createDirectory(atPath: harness.root + "/bin/site", withIntermediateDirectories: true)
        chmod(harness.root + "/bin/site", 0o755)
        let action = harness.root + "/bin/site/action"
        try harness.write(action, "#!/bin/sh\ntouch \(out)/genuine\n", mode: 0o755)
        try harness.writeRules([("work", 0, "all \"\(action)\" x NULL\n", nil)])
        try harness.start()
        // After the load: the directory is opened to everyone and the script replaced.
        chmod(harness.root + "/bin/site", 0o777)
        try harness.write(action + ".new", "#!/bin/sh\ntouch \(out)/swapped\n", mode: 0o755)
        rename(action + ".new", action)
        #expect(try harness.cli(["trigger", "work"]).status == 0)
        #expect(
            harness.eventually { (try? harness.cli(["status"]))?.out.contains("FAILED on n1 in segment 0") == true })
        let history = try harness.cli(["history", "--format", "json"])
        #expect(history.out.contains("could not start: refused: \(action) is under \(harness.root)/bin/site"))
        #expect(history.out.contains("writable by others (mode 777)"))
        #expect(harness.read("swapped") == nil, "the swapped script must not run")
        #expect(harness.read("genuine") == nil)
    }

    @Test("the service refuses a socket directory another user created", arguments: [false, true])
    func foreignSocketDirectory(ownedByNobody: Bool) throws {
        let harness = try ServiceHarness(definitions: [])
        let directory = harness.root + "/run"
        mkdir(directory, 0o700)
        if ownedByNobody {
            chown(directory, Self.nobody, Self.nobody)
        } else {
            chmod(directory, 0o777)
        }
        let error = #expect(throws: ServiceError.self) { try harness.start() }
        let text = error.map { "\($0)" } ?? ""
        #expect(text.contains("refusing the control socket's directory \(directory)"), "\(text)")
        #expect(text.contains(ownedByNobody ? "owned by uid 65534" : "writable by group or others (mode 777)"))
        #expect(!FileManager.default.fileExists(atPath: harness.socketPath))
    }

    @Test("the command line refuses to talk to a socket in a directory another user owns, or others can write")
    func cliChecksBeforeConnecting() throws {
        var template = Array((NSTemporaryDirectory() + "hamn-sockdir-XXXXXX").utf8CString)
        let base = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: base) }
        for index in 0..<3 {
            let directory = base + "/d\(index)"
            mkdir(directory, 0o700)
            // What an attacker would leave there: a socket that listens.
            let socketPath = directory + "/control.sock"
            let listener = try listen(at: socketPath)
            defer { close(listener) }
            switch index {
            case 0: chown(directory, Self.nobody, Self.nobody)
            case 1: chmod(directory, 0o777)
            default: chmod(directory, 0o770)
            }
            // Bounded: a command line that talked to the planted socket would wait for its answer.
            let result = try runTool(
                "/usr/bin/timeout", ["-s", "KILL", "10", ServiceHarness.binary, "status", "--socket", socketPath])
            #expect(result.status == 1)
            #expect(
                result.err.contains("refusing to talk to \(socketPath): its directory \(directory)"), "\(result.err)")
            var address = sockaddr_un()
            var length = socklen_t(MemoryLayout<sockaddr_un>.size)
            let accepted = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { accept(listener, $0, &length) }
            }
            #expect(accepted < 0 && errno == EAGAIN, "the command line connected to the planted socket")
            if accepted >= 0 { close(accepted) }
        }
    }

    /// A non-blocking listening socket at `path`.
    func listen(at path: String) throws -> Int32 {
        let fd = try UnixSocket.listen(at: path, backlog: 4)
        _ = fcntl(fd, F_SETFL, O_NONBLOCK)
        return fd
    }

    @Test("a service of another user without XDG_RUNTIME_DIR keeps its socket in its state directory, not /tmp")
    func nonRootWithoutRuntimeDirectory() throws {
        var template = Array((NSTemporaryDirectory() + "hamn-home-XXXXXX").utf8CString)
        let home = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: home) }
        chown(home, Self.nobody, Self.nobody)
        chmod(home, 0o700)
        let expected = home + "/.local/state/hamn-events/run/control.sock"
        // The embedded default runs the quickstart rules of this checkout.
        let shipped = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/quickstart").path
        func asNobody(_ arguments: [String]) -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments =
                ["--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", ServiceHarness.binary]
                + arguments
            // No XDG_RUNTIME_DIR, and /run/user/65534 does not exist.
            process.environment = ["HOME": home, "PATH": "/usr/bin:/bin", "HAMN_EVENTS_SHIPPED": shipped]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            return process
        }
        let service = asNobody(["run"])
        try service.run()
        defer {
            service.terminate()
            service.waitUntilExit()
        }
        try waitUntil("the service of uid 65534 to listen on \(expected)") {
            guard service.isRunning else { throw ServiceError("the service of uid 65534 exited") }
            var info = stat()
            return lstat(expected, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK
        }
        var info = stat()
        #expect(lstat(home + "/.local/state/hamn-events/run", &info) == 0)
        #expect(info.st_uid == Self.nobody && info.st_mode & 0o777 == 0o700)
        #expect(lstat("/tmp/hamn-events-\(Self.nobody)", &info) != 0)
        // Its command line finds it there by default.
        let status = asNobody(["status"])
        try status.run()
        status.waitUntilExit()
        #expect(status.terminationStatus == 0)
    }

    @Test("the service's own runtime directory must be private: mode 0700, owned by its user")
    func privateDirectory() throws {
        var template = Array((NSTemporaryDirectory() + "hamn-private-XXXXXX").utf8CString)
        let directory = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer { rmdir(directory) }
        #expect(RuntimeDirectory.problem(directory, user: 0, isPrivate: true) == nil)
        chmod(directory, 0o755)
        #expect(
            RuntimeDirectory.problem(directory, user: 0, isPrivate: true)?.contains("has mode 755, not 0700") == true)
        // A shared directory (a configured socket's) may be readable, not writable.
        #expect(RuntimeDirectory.problem(directory, user: 0, isPrivate: false) == nil)
        chmod(directory, 0o700)
        chown(directory, Self.nobody, Self.nobody)
        #expect(RuntimeDirectory.problem(directory, user: 0, isPrivate: true)?.contains("owned by uid 65534") == true)
        let link = directory + ".link"
        symlink(directory, link)
        defer { unlink(link) }
        chown(directory, 0, 0)
        #expect(RuntimeDirectory.problem(link, user: 0, isPrivate: true)?.contains("symbolic link") == true)
    }
}
