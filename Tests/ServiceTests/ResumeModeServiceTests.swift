import Foundation
import TestSupport
import Testing

/// `resume --retry`, `resume --continue` and the re-arm on `recovery on`, on the real service
/// driven by the command line.
@Suite("resume modes and re-arm on the service", .serialized, .timeLimit(.minutes(1)))
struct ResumeModeServiceTests {
    /// The user running the tests, as the service names the control socket's peer.
    static var userName: String {
        guard let entry = getpwuid(geteuid()), let name = entry.pointee.pw_name else { return "uid \(geteuid())" }
        return String(cString: name)
    }

    static func journalLines(_ harness: ServiceHarness, kind: String) throws -> String {
        try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT text FROM log WHERE kind = '\(kind)' ORDER BY rowid;"]
        )
        .out
    }

    @Test("resume --retry runs the failed command again: held while it fails, then the event goes on")
    func retry() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        // Fails until the marker file exists: what an administrator fixes.
        let flaky = try harness.script("flaky", "echo run >> \(out)/runs\n[ -f \(out)/fixed ] || exit 3")
        try harness.writeRules([
            ("work", 0, "all \"\(flaky)\" 0 NULL\nbarrier\nall \"/bin/touch \(out)/after\" 0 NULL\n", nil),
            ("next", 0, "all \"/bin/touch \(out)/next\" 0 NULL\n", nil),
        ])
        try harness.start()
        try harness.cli(["trigger", "work"])
        try harness.waitForStatus("FAILED on n1 in segment 0")
        try harness.cli(["trigger", "next"])
        try harness.waitForStatus("queue: next state 0 node n1")
        // Not fixed yet: the retry fails again and the event stays held.
        let first = try harness.cli(["resume", "--retry"])
        #expect(first.status == 0, "\(first.err)")
        try waitUntil("the retry to run the command again", observed: { harness.read("runs") ?? "" }) {
            harness.read("runs") == "run\nrun\n"
        }
        try harness.waitForStatus("FAILED on n1 in segment 0")
        #expect(harness.read("after") == nil, "a retry that fails goes no further")
        #expect(harness.read("next") == nil, "the queue still waits")
        try harness.write(out + "/fixed", "")
        #expect(try harness.cli(["resume", "--retry"]).status == 0)
        #expect(harness.eventually { harness.read("after") != nil && harness.read("next") != nil })
        #expect(harness.read("runs") == "run\nrun\nrun\n", "only the failed command ran again, once per retry")
        #expect(
            harness.eventually {
                (try? harness.cli(["history"]))?.out.contains("event 1: work state 0 node n1 completed") == true
            }, "\((try? harness.cli(["history"]))?.out ?? "")")
        let resumes = try Self.journalLines(harness, kind: "resume")
        #expect(
            resumes
                == """
                RESUME --retry by \(Self.userName) on n1: work 0 (node n1, event 1) segment 0: the failed commands run again on n1
                RESUME --retry by \(Self.userName) on n1: work 0 (node n1, event 1) segment 0: the failed commands run again on n1

                """)
        let statuses = try runTool(
            "/usr/bin/sqlite3", [harness.journalPath, "SELECT exit_status FROM command WHERE command = '\(flaky)';"])
        #expect(statuses.out == "3\n3\n0\n")
    }

    @Test("resume --continue goes on with the next segment without running the failed command again")
    func continueNext() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        let failing = try harness.script("failing", "echo run >> \(out)/runs\nexit 3")
        try harness.writeRules([
            ("work", 0, "all \"\(failing)\" 0 NULL\nbarrier\nall \"/bin/touch \(out)/after\" 0 NULL\n", nil)
        ])
        try harness.start()
        try harness.cli(["trigger", "work"])
        try harness.waitForStatus("FAILED on n1 in segment 0")
        let resume = try harness.cli(["resume", "--continue"])
        #expect(resume.status == 0, "\(resume.err)")
        #expect(resume.out.contains("resume --continue sent"))
        #expect(harness.eventually { harness.read("after") != nil })
        #expect(
            harness.eventually {
                (try? harness.cli(["history"]))?.out.contains("event 1: work state 0 node n1 completed") == true
            })
        #expect(harness.read("runs") == "run\n")
        #expect(
            try Self.journalLines(harness, kind: "resume")
                == "RESUME --continue by \(Self.userName) on n1: work 0 (node n1, event 1) segment 0: goes on with the next segment as if the failed commands on n1 had succeeded\n"
        )
        #expect(try harness.cli(["resume", "--retry", "--continue"]).status == 2, "the modes exclude each other")
    }

    @Test("recovery on re-arms an instance whose event was suppressed: a condition still true raises it")
    func rearmOnRecovery() throws {
        let (harness, paging) = try ServiceHarness.paging()
        try harness.start()
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: armed, last 40")
        #expect(try harness.cli(["recovery", "off", "n1"]).status == 0)
        try harness.waitForStatus("recovery off: n1")
        try harness.write(paging, "85\n")
        try harness.waitForStatus("db2_paging state 0 NodeNum=1: disarmed, last 85")
        #expect(harness.eventually { (try? harness.cli(["history"]))?.out.contains("suppressed") == true })
        #expect(harness.read("paged") == nil)
        #expect(try harness.cli(["recovery", "on", "n1"]).status == 0)
        // Still above 70 and never below 60: only the re-arm lets it fire.
        #expect(harness.eventually { harness.read("paged") == "85\n" }, "\(harness.status)")
        #expect(
            try Self.journalLines(harness, kind: "arming").contains(
                "RE-ARMED: recovery back on for n1: db2_paging 0 NodeNum=1 (events suppressed while it was off) evaluated afresh at the next sample"
            ))
    }
}
