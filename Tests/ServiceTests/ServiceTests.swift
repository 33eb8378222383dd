import Foundation
import TestSupport
import Testing

/// The real service, started as a process on the loopback transport and driven only through
/// the command line.
@Suite("the service", .serialized, .timeLimit(.minutes(1)))
struct ServiceTests {
    @Test("a triggered event runs its commands with the event in the environment and shows in history")
    func triggerRunsCommands() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        let record = try harness.script(
            "record",
            "echo \"$HAMN_EVENT $HAMN_EVENT_STATE $HAMN_EVENT_NODE $HAMN_LOCAL_NODE $HAMN_MEMBERS $1\" >> \(out)/ran")
        try harness.writeRules([
            ("db2_proc_restart", 0, "event \"\(record) first\" 0 NULL\nbarrier\nall \"\(record) second\" 0 NULL\n", nil)
        ])
        try harness.start()
        let trigger = try harness.cli(["trigger", "db2_proc_restart"])
        #expect(trigger.status == 0, "\(trigger.err)")
        #expect(harness.eventually { harness.read("ran")?.components(separatedBy: "\n").count == 3 })
        #expect(harness.read("ran") == "db2_proc_restart 0 n1 n1 n1 first\ndb2_proc_restart 0 n1 n1 n1 second\n")
        #expect(harness.eventually { (try? harness.cli(["history"]))?.out.contains("completed") == true })
        let history = try harness.cli(["history", "--format", "json"])
        #expect(history.status == 0)
        #expect(history.out.contains("\"db2_proc_restart\""))
        #expect(history.out.contains(record + " second"))
    }

    @Test("a failing command shows the failed state in status, and resume moves on")
    func failureAndResume() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([
            ("work", 0, "all \"/bin/sh -c 'exit 3'\" 0 NULL\nbarrier\nall \"/bin/touch \(out)/skipped\" 0 NULL\n", nil),
            ("next", 0, "all \"/bin/touch \(out)/next\" 0 NULL\n", nil),
        ])
        try harness.start()
        try harness.cli(["trigger", "work"])
        #expect(
            harness.eventually { (try? harness.cli(["status"]))?.out.contains("FAILED on n1 in segment 0") == true })
        try harness.cli(["trigger", "next"])
        try harness.waitForStatus("queue: next state 0 node n1")
        #expect(harness.read("next") == nil, "the queue waits behind the failed event")
        let status = try harness.cli(["status", "--format", "json"])
        #expect(status.out.contains("\"failed_on\":\"n1\""))
        #expect(harness.status.contains("queue: next state 0 node n1"), "still queued until resume")
        #expect(harness.read("next") == nil, "the queue waits behind the failed event")
        #expect(try harness.cli(["resume"]).status == 0)
        #expect(harness.eventually { harness.read("next") != nil })
        #expect(harness.read("skipped") == nil, "resume skips the rest of the failed event")
        #expect(try harness.cli(["resume"]).status == 1, "nothing left to resume")
        let history = try harness.cli(["history"])
        #expect(history.out.contains("work") && history.out.contains("failed"))
    }

    @Test("wait-event returns 0 when the event completes and 1 on timeout")
    func waitEvent() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("network_up_complete", 0, "all \"/bin/sleep 0.5\" 0 NULL\n", nil)])
        try harness.start()
        let timedOut = try harness.cli(["wait-event", "network_up_complete", "--timeout", "1"])
        #expect(timedOut.status == 1)
        let waiter = Process()
        waiter.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
        waiter.arguments = ["wait-event", "--socket", harness.socketPath, "network_up_complete", "--timeout", "20"]
        try waitUntil("the earlier commands' connections to close") { harness.openControlConnections == 0 }
        try waiter.run()
        // The waiter's request is with the service before the impatient caller's (the service
        // reads a request as soon as it is connected; the impatient one waits 1 s).
        try waitUntil("the 20 s waiter to connect to the control socket") { harness.openControlConnections >= 1 }
        // Another caller's timeout ends only that caller's wait.
        let impatient = try harness.cli(["wait-event", "network_up_complete", "--timeout", "1"])
        #expect(impatient.status == 1)
        // The behaviour under test is that nothing happens to the waiter: a timeout that ended
        // every wait would have it answered and exited within this time.
        Thread.sleep(forTimeInterval: 0.5)
        #expect(waiter.isRunning, "the 20 s waiter still waits after the 1 s waiter timed out")
        try harness.cli(["trigger", "network_up_complete"])
        waiter.waitUntilExit()
        #expect(waiter.terminationStatus == 0)
    }

    @Test("maintenance holds recovery off, survives SIGINT, and turns it on when the command ends")
    func maintenance() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([("work", 0, "all \"/bin/touch \(out)/ran\" 0 NULL\n", nil)])
        try harness.start()
        let window = try harness.script(
            "window",
            "trap 'echo interrupted >> \(out)/window' INT\necho started >> \(out)/window\nsleep 2 & wait\nsleep 1\necho ended >> \(out)/window"
        )
        let maintenance = Process()
        maintenance.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
        maintenance.arguments = ["maintenance", "--socket", harness.socketPath, "n1", "--", window]
        try maintenance.run()
        #expect(harness.eventually { harness.read("window")?.contains("started") == true })
        #expect(try harness.cli(["status"]).out.contains("recovery off: n1"))
        kill(maintenance.processIdentifier, SIGINT)
        // The interrupt has reached the window's command (its trap wrote the line); the command
        // then runs on for a second, the window with it.
        try waitUntil("the window's command to note the interrupt", observed: { harness.read("window") ?? "" }) {
            harness.read("window")?.contains("interrupted") == true
        }
        #expect(maintenance.isRunning, "an interrupt does not end the window")
        try harness.cli(["trigger", "work"])
        maintenance.waitUntilExit()
        #expect(harness.read("window") == "started\ninterrupted\nended\n")
        #expect(maintenance.terminationStatus == 0)
        #expect(!(try harness.cli(["status"]).out.contains("recovery off")))
        #expect(harness.read("ran") == nil, "the event raised in the window was suppressed")
        #expect(harness.eventually { (try? harness.cli(["history"]))?.out.contains("suppressed") == true })
    }

    @Test("SIGKILL in the middle of an event, then restart: journal intact, event marked interrupted")
    func killAndRestart() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([
            ("long", 0, "all \"/bin/touch \(out)/first\" 0 NULL\nbarrier\nall \"/bin/sleep 30\" 0 NULL\n", nil)
        ])
        try harness.start()
        try harness.cli(["trigger", "long"])
        #expect(harness.eventually { harness.read("first") != nil })
        // In the middle of the event: its second segment (the 30 s sleep) runs, and the first
        // segment's command is in the journal.
        try harness.waitForStatus("running: event 1 long state 0 node n1")
        try harness.waitForStatus("segment 1 of segments 0-1")
        try waitUntil("the journal to hold the first segment's command") {
            (try? harness.cli(["history", "--format", "json"]))?.out.contains("/bin/touch \(out)/first") == true
        }
        harness.signal(SIGKILL)
        #expect(harness.waitForExit(seconds: 5) != nil, "SIGKILL ends the service")
        let integrity = try runTool("/usr/bin/sqlite3", [harness.journalPath, "PRAGMA integrity_check;"])
        #expect(integrity.out == "ok\n", "\(integrity)")
        try harness.start()
        let history = try harness.cli(["history", "--format", "json"])
        #expect(history.out.contains("\"interrupted\""), "\(history.out)")
        #expect(history.out.contains("/bin/touch \(out)/first"), "the command run before the kill is still journaled")
    }

    @Test("SIGTERM lets the running segment finish, journals it and exits 0")
    func sigterm() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([
            (
                "slow", 0,
                "all \"/bin/sh -c 'sleep 1; touch \(out)/finished'\" 0 NULL\nbarrier\nall \"/bin/touch \(out)/after\" 0 NULL\n",
                nil
            )
        ])
        try harness.start()
        try harness.cli(["trigger", "slow"])
        // The segment runs (its command takes a second) when the signal comes.
        try harness.waitForStatus("running: event 1 slow state 0 node n1")
        harness.signal(SIGTERM)
        #expect(harness.waitForExit(seconds: 10) == 0, "\(harness.stderrText)")
        #expect(harness.read("finished") != nil)
        #expect(harness.read("after") == nil, "no new segment starts while stopping")
        let rows = try runTool("/usr/bin/sqlite3", [harness.journalPath, "SELECT count(*) FROM command;"])
        #expect(rows.out == "1\n", "\(rows)")
        // The run's end is recorded (the next start will not take it for a crash), and the
        // event it left unfinished is marked at once.
        let run = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT end_reason, crash_noticed_at IS NULL FROM run;"])
        #expect(run.out == "shutdown|1\n", "\(run)")
        let event = try runTool("/usr/bin/sqlite3", [harness.journalPath, "SELECT name, outcome FROM event;"])
        #expect(event.out == "slow|interrupted\n", "\(event)")
    }

    @Test("a paging predicate fires from real samples (a configured variable stands in for the swap monitor)")
    func pagingFromSamples() throws {
        let (harness, paging) = try ServiceHarness.paging()
        try harness.start()
        // Sampled at 40 and still armed: no event.
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: armed, last 40")
        #expect(harness.read("paged") == nil)
        try harness.write(paging, "85\n")
        #expect(harness.eventually { harness.read("paged") == "85\n" })
        try harness.write(paging, "90\n")
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: disarmed, last 90")
        // The behaviour under test: three more samples at 90 (every 0.2 s) raise nothing.
        Thread.sleep(forTimeInterval: 0.6)
        #expect(harness.read("paged") == "85\n", "one event per crossing, not one per sample")
        try harness.write(paging, "50\n")
        // Re-armed by the sample below 60 before the next crossing.
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: armed, last 50")
        try harness.write(paging, "75\n")
        #expect(harness.eventually { harness.read("paged") == "85\n75\n" })
        #expect(try harness.cli(["status"]).out.contains("db2_paging state 0 NodeNum=1: disarmed, last 75"))
    }

    @Test("SIGHUP re-reads the rules, keeping the old ones when the new ones have errors")
    func reload() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        try harness.writeRules([("one", 0, "all \"/bin/touch \(out)/one\" 0 NULL\n", nil)])
        try harness.start()
        try harness.write(harness.rulesPath, "broken\n0\n")
        harness.signal(SIGHUP)
        try harness.waitForOutput("rules not reloaded")
        try harness.cli(["trigger", "one"])
        #expect(harness.eventually { harness.read("one") != nil }, "the old rules stay")
        try harness.writeRules([("two", 0, "all \"/bin/touch \(out)/two\" 0 NULL\n", nil)])
        harness.signal(SIGHUP)
        try harness.waitForOutput("rules reloaded:")
        try harness.cli(["trigger", "two"])
        #expect(harness.eventually { harness.read("two") != nil })
        #expect(harness.stderrText.contains("rules not reloaded"))
    }

    @Test("with the service down, each command says so and exits 1")
    func serviceDown() throws {
        let harness = try ServiceHarness(definitions: [])
        for arguments in [
            ["status"], ["history"], ["resume"], ["trigger", "x"], ["recovery", "off", "1"], ["wait-event", "x"],
        ] {
            let result = try harness.cli(arguments)
            #expect(result.status == 1, "\(arguments)")
            #expect(result.err.contains("not running"), "\(arguments): \(result.err)")
        }
    }

    @Test("the control socket is mode 0600")
    func socketMode() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("one", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        try harness.start()
        var info = stat()
        #expect(stat(harness.socketPath, &info) == 0)
        #expect(info.st_mode & 0o777 == 0o600)
    }
}
