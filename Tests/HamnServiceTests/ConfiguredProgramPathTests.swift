import Foundation
import HamnConfiguration
import RulesEngine
import Testing

@testable import HamnService

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 16, finding 4's class: programs the configuration names run as root too (fence
/// agents, command variables, `start_command`), so R020's whole-path check runs as each starts,
/// as it does for recovery commands: a program under a directory others can write is refused.
@Suite("programs of the configuration: R020 as each starts", .timeLimit(.minutes(1)))
struct ConfiguredProgramPathTests {
    let directory: String

    init() throws {
        directory = NSTemporaryDirectory() + "configured-programs-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
    }

    /// `directory/NAME/program`, in a directory of `mode`; it touches `ran` and prints 42.
    private func program(in name: String, mode: mode_t) throws -> (path: String, ran: String) {
        let folder = directory + "/" + name
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/program"
        let ran = folder + "/ran"
        try "#!/bin/sh\ncat >/dev/null 2>&1 </dev/null\ntouch \(ran)\necho 42\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        chmod(folder, mode)
        return (path, ran)
    }

    @Test("a fence agent in a directory others can write is refused before it runs; in a safe one it runs")
    func fenceAgent() async throws {
        let open = try program(in: "open", mode: 0o777)
        let refused = await NodeService.agent(
            for: ServiceConfiguration.FenceDevice(node: "n3", agent: open.path, options: [:])
        ).run()
        guard case .couldNotStart(let why) = refused.termination else {
            Issue.record("ran: \(refused.termination)")
            return
        }
        #expect(why.hasPrefix("refused: \(open.path) "), "\(why)")
        #expect(why.contains("mode 777"), "\(why)")
        #expect(!FileManager.default.fileExists(atPath: open.ran))

        let safe = try program(in: "safe", mode: 0o755)
        let ran = await NodeService.agent(
            for: ServiceConfiguration.FenceDevice(node: "n3", agent: safe.path, options: [:])
        ).run()
        #expect(ran.succeeded, "\(ran.summary)")
        #expect(FileManager.default.fileExists(atPath: safe.ran))
    }

    @Test("a command variable whose program others can replace fails its sample without running; a safe one samples")
    func commandVariable() async throws {
        let open = try program(in: "open-variable", mode: 0o777)
        let variable = ServiceConfiguration.Variable(name: "A", command: open.path, parser: .number, timeout: 5)
        do {
            _ = try await CommandVariableSampler(variable, environment: ["PATH": "/usr/bin:/bin"])
                .sample(node: monitorTestNode)
            Issue.record("the sample ran")
        } catch {
            #expect(error.message.hasPrefix("refused: \(open.path) "), "\(error.message)")
        }
        #expect(!FileManager.default.fileExists(atPath: open.ran))

        let safe = try program(in: "safe-variable", mode: 0o755)
        let sampled = try await CommandVariableSampler(
            ServiceConfiguration.Variable(name: "A", command: safe.path, parser: .number, timeout: 5),
            environment: ["PATH": "/usr/bin:/bin"]
        ).sample(node: monitorTestNode)
        #expect(sampled.first?.value == .number(42))
    }
}
