import Foundation
import TestSupport
import Testing

/// Issue 16, findings 7 to 11 and 14: what the journal, the control answers and the queue do
/// when the disk fills, the journal is deleted, the service is killed or stops mid-request, and
/// the queue is long. The real service, driven through the command line and its socket.
@Suite("hardening: journal, answers, queue", .serialized, .timeLimit(.minutes(3)))
struct HardeningTests {
    /// A script that appends its event's id to out/ran.
    private static func recorder(_ harness: ServiceHarness) throws -> String {
        try harness.script("record", "echo \"$HAMN_EVENT_ID\" >> \(harness.outputDirectory)/ran")
    }

    private static func lines(_ text: String?) -> Int {
        (text ?? "").split(separator: "\n").count
    }

    // MARK: 7: disk full

    @Test(
        "disk full: no command runs unrecorded, status, log and trigger say why, and the service goes on when space returns",
        .enabled(if: geteuid() == 0, "mounts a tmpfs: root only"))
    func diskFull() throws {
        let harness = try ServiceHarness(definitions: [])
        let record = try Self.recorder(harness)
        try harness.writeRules([("work", 0, "all \"\(record)\" 0 NULL\n", nil)])
        let state = harness.root + "/state"
        let mounted = try runTool("/bin/mount", ["-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", state])
        try #require(mounted.status == 0, "mount: \(mounted.err)")
        defer { _ = try? runTool("/bin/umount", ["-l", state]) }
        try harness.start()
        #expect(try harness.cli(["trigger", "work"]).status == 0)
        try waitUntil("the first event's command") { Self.lines(harness.read("ran")) == 1 }
        try waitUntil("the first event to complete") {
            (try? harness.cli(["history"]))?.out.contains("completed") == true
        }
        // Fill the file system the journal is on.
        let fill = try runTool("/bin/dd", ["if=/dev/zero", "of=\(state)/filler", "bs=4096"])
        #expect(fill.err.contains("No space left on device"), "\(fill.err)")
        let refused = try harness.cli(["trigger", "work"])
        #expect(refused.status == 1, "\(refused)")
        #expect(
            refused.err.contains(
                "raised work state 0 on n1, but it is not recorded in the journal: journal cannot write: No space left on device; events wait"
            ), "\(refused.err)")
        #expect(harness.status.contains("JOURNAL: journal cannot write: No space left on device; events wait"))
        try harness.waitForOutput("journal cannot write: No space left on device; events wait")
        // The trigger waited 5 s for its record: the command would have run by now.
        #expect(Self.lines(harness.read("ran")) == 1, "no command runs whose start is not on disk")
        // Space returns: the held writes are committed, the event runs, the service goes on.
        try FileManager.default.removeItem(atPath: state + "/filler")
        try waitUntil("the held event's command", timeout: .seconds(15), observed: { harness.stderrText }) {
            Self.lines(harness.read("ran")) == 2
        }
        try harness.waitForOutput("journal writes again")
        #expect(!harness.status.contains("JOURNAL:"))
        #expect(try harness.cli(["trigger", "work"]).status == 0)
        try waitUntil("the third event's command") { Self.lines(harness.read("ran")) == 3 }
        try waitUntil("three completed events in history", observed: { harness.status }) {
            (try? harness.cli(["history"]))?.out.components(separatedBy: " completed").count == 4
        }
        harness.signal(SIGTERM)
        #expect(harness.waitForExit(seconds: 10) == 0)
    }

    // MARK: 8: a deleted journal

    @Test("a journal deleted while the service runs is reported, events wait, and a second service is refused")
    func deletedJournal() throws {
        let harness = try ServiceHarness(definitions: [])
        let record = try Self.recorder(harness)
        try harness.writeRules([("work", 0, "all \"\(record)\" 0 NULL\n", nil)])
        try harness.start()
        #expect(try harness.cli(["trigger", "work"]).status == 0)
        try waitUntil("the first event's command") { Self.lines(harness.read("ran")) == 1 }
        // The whole directory: the database, its -wal and -shm, and the lock file.
        try FileManager.default.removeItem(atPath: harness.root + "/state")
        let deleted =
            "journal cannot write: the journal \(harness.journalPath) was deleted or replaced while the service runs"
        try harness.waitForOutput(deleted)
        try harness.waitForStatus("JOURNAL: \(deleted)")
        let refused = try harness.cli(["trigger", "work"])
        #expect(refused.status == 1 && refused.err.contains("not recorded in the journal"), "\(refused)")
        #expect(Self.lines(harness.read("ran")) == 1, "nothing runs unrecorded")
        // A second service on the same journal path is refused.
        try harness.write(
            harness.root + "/second.yaml",
            """
            node: n1
            rules: \(harness.rulesPath)
            journal: \(harness.journalPath)
            socket: \(harness.root)/run/second.sock
            """)
        let second = Process()
        second.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
        second.arguments = ["run", "--config", harness.root + "/second.yaml"]
        let output = Pipe()
        second.standardError = output
        second.standardOutput = output
        try second.run()
        defer {
            if second.isRunning {
                kill(second.processIdentifier, SIGKILL)
                second.waitUntilExit()
            }
        }
        try waitUntil("the second service to exit", timeout: .seconds(15)) { !second.isRunning }
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(second.terminationStatus != 0)
        #expect(
            text.contains("it is in use by another journal (process \(harness.process?.processIdentifier ?? 0))"),
            "\(text)")
    }

    // MARK: 9: an answered trigger is durable

    @Test("every trigger answered 'raised' is in the journal, however soon the service is killed after the answer")
    func answeredTriggerIsDurable() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("work", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        var answered = 0
        for _ in 0..<30 {
            try harness.start()
            let answer = try Self.request(harness.socketPath, #"{"trigger":{"event":"work","state":0}}"#)
            // At once: nothing more may reach the disk after the answer.
            harness.signal(SIGKILL)
            #expect(harness.waitForExit(seconds: 5) != nil)
            if answer.contains("\"done\"") { answered += 1 }
        }
        #expect(answered == 30)
        let count = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT count(*) FROM event WHERE name = 'work';"])
        #expect(Int(count.out.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1 >= answered, "\(count)")
    }

    /// Sends one request line on the control socket and returns the first answer line.
    private static func request(_ path: String, _ line: String) throws -> String {
        let fd = try UnixSocket.connect(path)
        defer { close(fd) }
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var answer: [UInt8] = []
        var byte: UInt8 = 0
        while recv(fd, &byte, 1, 0) == 1, byte != 0x0A { answer.append(byte) }
        return String(decoding: answer, as: UTF8.self)
    }

    // MARK: 10: a clean stop checkpoints

    @Test("after a clean stop journal.sqlite alone holds the data (the WAL was checkpointed)")
    func cleanStopCheckpoints() throws {
        let harness = try ServiceHarness(definitions: [])
        let record = try Self.recorder(harness)
        try harness.writeRules([("work", 0, "all \"\(record)\" 0 NULL\n", nil)])
        try harness.start()
        #expect(try harness.cli(["trigger", "work"]).status == 0)
        try waitUntil("the event to complete") { (try? harness.cli(["history"]))?.out.contains("completed") == true }
        harness.signal(SIGTERM)
        #expect(harness.waitForExit(seconds: 10) == 0)
        let copy = harness.root + "/copy"
        try FileManager.default.createDirectory(atPath: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: harness.journalPath, toPath: copy + "/journal.sqlite")
        let events = try runTool(
            "/usr/bin/sqlite3",
            [copy + "/journal.sqlite", "SELECT name, outcome FROM event; SELECT count(*) FROM run;"])
        #expect(events.out == "work|completed\n1\n", "\(events)")
        let wal = (try? FileManager.default.attributesOfItem(atPath: harness.journalPath + "-wal"))?[.size] as? Int
        #expect(wal == nil || wal == 0, "the -wal file is empty or gone")
    }

    // MARK: 11: every CLI exit path

    @Test("every operator command exits 1 when the service closes the connection without answering")
    func noAnswerIsAnError() throws {
        let harness = try ServiceHarness(definitions: [])
        // A stand-in service: reads each request line and hangs up without answering.
        try FileManager.default.createDirectory(atPath: harness.root + "/run", withIntermediateDirectories: true)
        let fd = try UnixSocket.listen(at: harness.socketPath, backlog: 16)
        let server = Thread {
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }
                var byte: UInt8 = 0
                while recv(client, &byte, 1, 0) == 1, byte != 0x0A {}
                close(client)
            }
        }
        server.start()
        defer {
            shutdown(fd, Int32(SHUT_RDWR))
            close(fd)
        }
        let commands: [[String]] = [
            ["status"], ["history"], ["resume"], ["trigger", "work"], ["recovery", "off", "n1"],
            ["ha-cmd", "n1", "STOP"],
            ["wait-event", "work"], ["fence", "n2"], ["fence", "confirm", "n2"], ["mon"],
        ]
        for command in commands {
            let result = try harness.cli(command)
            #expect(result.status == 1, "\(command): \(result)")
            #expect(
                result.err.contains("the service closed the connection before answering: it stopped or crashed"),
                "\(command): \(result.err)")
        }
    }

    @Test(
        "wait-event exits 1 when the service is killed or stopped while it waits; mon --once exits 0 on a clean stop, 1 on a kill"
    )
    func waitEventAndMonWhenTheServiceEnds() throws {
        for ending in [SIGKILL, SIGTERM] {
            let harness = try ServiceHarness(definitions: [])
            try harness.writeRules([("work", 0, "all \"/bin/true\" 0 NULL\n", nil)])
            try harness.start()
            let waiter = try Self.background(harness, ["wait-event", "--socket", harness.socketPath, "work"])
            try waitUntil(
                "wait-event to connect", timeout: .seconds(30),
                observed: { "\(harness.openControlConnections) connections" }
            ) {
                harness.openControlConnections == 1
            }
            let monOutput = harness.outputDirectory + "/mon-\(ending)"
            let mon = try Self.background(
                harness, ["mon", "--once", "--socket", harness.socketPath], stdout: monOutput)
            // mon prints the log's last lines as soon as it follows.
            try waitUntil("mon to follow the log", timeout: .seconds(30)) {
                harness.read("mon-\(ending)")?.contains("service started") == true
            }
            harness.signal(ending)
            #expect(harness.waitForExit(seconds: 10) != nil)
            try waitUntil("the clients to exit", timeout: .seconds(15)) {
                !waiter.process.isRunning && !mon.process.isRunning
            }
            let said = waiter.text()
            #expect(waiter.process.terminationStatus == 1, "wait-event after signal \(ending): \(said)")
            #expect(!said.contains("work completed"), "\(said)")
            if ending == SIGTERM {
                #expect(said.contains("wait-event: work: the service stopped before it completed"), "\(said)")
                #expect(mon.process.terminationStatus == 0, "mon after a clean stop: \(mon.text())")
            } else {
                #expect(said.contains("it stopped or crashed"), "\(said)")
                #expect(mon.process.terminationStatus == 1, "mon after a kill: \(mon.text())")
            }
        }
    }

    @Test("mon exits 1 on permission denied", .enabled(if: geteuid() == 0, "runs a client as nobody: root only"))
    func monPermissionDenied() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.start()
        // Reachable by anyone, so that the service's own check (SO_PEERCRED) answers.
        chmod(harness.root + "/run", 0o755)
        chmod(harness.socketPath, 0o777)
        for command in [["mon"], ["status"], ["wait-event", "work"]] {
            let result = try runTool(
                "/usr/bin/setpriv",
                [
                    "--reuid=65534", "--regid=65534", "--clear-groups", ServiceHarness.binary, command[0], "--socket",
                    harness.socketPath,
                ]
                    + command.dropFirst())
            #expect(result.status == 1, "\(command): \(result)")
            #expect(
                result.err.contains("permission denied: the control socket is for root"), "\(command): \(result.err)")
        }
    }

    private struct Background {
        let process: Process
        let output: Pipe
        func text() -> String { String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self) }
    }

    private static func background(_ harness: ServiceHarness, _ arguments: [String], stdout: String? = nil) throws
        -> Background
    {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
        process.arguments = arguments
        let output = Pipe()
        process.standardError = output
        if let stdout {
            FileManager.default.createFile(atPath: stdout, contents: nil)
            process.standardOutput = FileHandle(forWritingAtPath: stdout)
        } else {
            process.standardOutput = FileHandle.nullDevice
        }
        try process.run()
        return Background(process: process, output: output)
    }

    // MARK: 14: the queue is bounded

    @Test(
        "over queue_limit a trigger is refused with an error and a journal line; the queue drains and takes events again"
    )
    func boundedQueue() throws {
        let harness = try ServiceHarness(definitions: [], extraConfiguration: "queue_limit: 3")
        let gate = harness.outputDirectory + "/open"
        let record = try Self.recorder(harness)
        let wait = try harness.script("wait", "while [ ! -e \(gate) ]; do sleep 0.05; done")
        try harness.writeRules([("work", 0, "all \"\(wait)\" 0 NULL\nbarrier\nall \"\(record)\" 0 NULL\n", nil)])
        try harness.start()
        // One runs (held by the gate), three wait: the queue is full.
        for _ in 0..<4 { #expect(try harness.cli(["trigger", "work"]).status == 0) }
        try harness.waitForStatus("queue FULL: 3 events wait (queue_limit 3): new events are refused")
        let refused = try harness.cli(["trigger", "work"])
        #expect(refused.status == 1, "\(refused)")
        #expect(
            refused.err
                == "hamn-events: queue full (3 events wait, queue_limit 3): work state 0 on n1 (trigger) refused\n",
            "\(refused.err)")
        try waitUntil("the refusal in the event log") {
            (try? runTool("/usr/bin/sqlite3", [harness.journalPath, "SELECT text FROM log WHERE kind = 'queue';"]))?
                .out.contains("queue full (3 events wait, queue_limit 3): work state 0 on n1 (trigger) refused") == true
        }
        try harness.write(gate, "")
        try waitUntil("the four accepted events to run", observed: { harness.read("ran") ?? "" }) {
            Self.lines(harness.read("ran")) == 4
        }
        #expect(harness.read("ran") == "1\n2\n3\n4\n", "the refused trigger never became an event")
        #expect(try harness.cli(["trigger", "work"]).status == 0, "the queue takes events again")
        try waitUntil("the fifth event") { Self.lines(harness.read("ran")) == 5 }
    }
}
