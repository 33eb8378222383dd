import Foundation
import RecoveryPrograms
import Testing

@testable import CommandExecution

// A fence agent by fence-agents' convention: options on standard input, never in its arguments
// or environment; a password only from a file only its owner can read.

@Suite("fence agent")
struct FenceAgentTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "fence-agent-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    }

    /// A stand-in agent: writes what it read on stdin, its arguments and its environment's
    /// size into `record`, then runs `then`.
    private func agent(_ then: String = "exit 0") throws -> (path: String, record: String) {
        let path = directory + "/fence_test"
        let record = directory + "/record"
        try """
        #!/bin/sh
        cat > \(record).stdin
        echo "$#" > \(record).argc
        env | grep -c PASS > \(record).env || true
        \(then)
        """.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return (path, record)
    }

    private func password(_ text: String, mode: mode_t) throws -> String {
        let path = directory + "/password"
        try? FileManager.default.removeItem(atPath: path)
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, mode)
        return path
    }

    @Test(
        "action, nodename, the options in key order and the password reach the agent on stdin only; exit 0 is success")
    func success() async throws {
        let (path, record) = try agent()
        let result = await FenceAgent(
            agent: path, action: "reboot", node: "aixmn1", options: ["username": "admin", "ip": "10.0.0.11"],
            passwordFile: try password("s3cret\nignored\n", mode: 0o600), timeout: .seconds(10)
        ).run()
        #expect(result.succeeded)
        #expect(
            try String(contentsOfFile: record + ".stdin", encoding: .utf8)
                == "action=reboot\nnodename=aixmn1\nip=10.0.0.11\nusername=admin\npassword=s3cret\n")
        #expect(try String(contentsOfFile: record + ".argc", encoding: .utf8) == "0\n")
        #expect(try String(contentsOfFile: record + ".env", encoding: .utf8) == "0\n")
    }

    @Test("a failing agent: its status and its last line, for the journal")
    func failure() async throws {
        let (path, _) = try agent(
            "echo 'Failed: Unable to obtain correct plug status or plug is not available' >&2; exit 1")
        let result = await FenceAgent(
            agent: path, action: "off", node: "n3", options: [:], passwordFile: nil, timeout: .seconds(10)
        ).run()
        #expect(!result.succeeded)
        #expect(result.summary == "exit 1: Failed: Unable to obtain correct plug status or plug is not available")
    }

    @Test("an agent that hangs is killed at its timeout; a missing one could not start")
    func timeoutAndMissing() async throws {
        let (path, _) = try agent("sleep 30")
        let hung = await FenceAgent(
            agent: path, action: "off", node: "n3", options: [:], passwordFile: nil, timeout: .milliseconds(300)
        ).run()
        #expect(hung.termination == .timedOut)
        let missing = await FenceAgent(
            agent: directory + "/no_such_agent", action: "off", node: "n3", options: [:], passwordFile: nil,
            timeout: .seconds(5)
        ).run()
        guard case .couldNotStart = missing.termination else {
            Issue.record("a missing agent: \(missing.termination)")
            return
        }
    }

    @Test("a password file others can read, a link, or an empty one: refused, the agent not run")
    func unsafePassword() async throws {
        let (path, record) = try agent()
        let open = try password("s3cret\n", mode: 0o644)
        let refused = await FenceAgent(
            agent: path, action: "off", node: "n3", options: [:], passwordFile: open, timeout: .seconds(5)
        ).run()
        #expect(refused.summary.contains("readable or writable by others (mode 644; chmod 600 it)"))
        #expect(!FileManager.default.fileExists(atPath: record + ".stdin"))
        let link = directory + "/link"
        try FileManager.default.createSymbolicLink(
            atPath: link, withDestinationPath: try password("s3cret\n", mode: 0o600))
        #expect(FenceAgent.readPassword(link).isFailure)
        #expect(FenceAgent.readPassword(try password("\n", mode: 0o600)).isFailure)
        #expect((try? FenceAgent.readPassword(try password("pw\n", mode: 0o400)).get()) == "pw")
    }
}

extension Result {
    fileprivate var isFailure: Bool { if case .failure = self { true } else { false } }
}
