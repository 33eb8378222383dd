import HamnConfiguration
import RulesEngine
import Testing

@testable import HamnService

/// Issue 16, finding 17: a command variable started `/bin/sh -c COMMAND` at every sample, one
/// more process start per sample than a plain command needs.
@Suite("command variables: plain commands without the shell", .timeLimit(.minutes(1)))
struct CommandVariableShellTests {
    let environment = ["PATH": "/usr/bin:/bin"]

    @Test("a plain command samples with no shell at all; one that needs the shell goes through it")
    func withoutShell() async throws {
        let plain = ServiceConfiguration.Variable(name: "A", command: "/bin/echo 42", parser: .number, timeout: 5)
        // A shell that does not exist: only a command run without it can sample.
        let noShell = CommandVariableSampler(plain, environment: environment, shell: "/nonexistent/sh")
        #expect(try await noShell.sample(node: monitorTestNode).first?.value == .number(42))

        let arithmetic = ServiceConfiguration.Variable(
            name: "B", command: "/bin/echo $((6 * 7))", parser: .number, timeout: 5)
        await #expect(throws: SamplerError.self) {
            try await CommandVariableSampler(arithmetic, environment: environment, shell: "/nonexistent/sh")
                .sample(node: monitorTestNode)
        }
        let shell = CommandVariableSampler(arithmetic, environment: environment, shell: "/bin/sh")
        #expect(try await shell.sample(node: monitorTestNode).first?.value == .number(42))
    }

    @Test(
        "which commands are plain",
        arguments: [
            ("/bin/echo 42", ["/bin/echo", "42"]),
            ("/usr/local/sbin/queue-depth  --db=SAMPLE\t-v", ["/usr/local/sbin/queue-depth", "--db=SAMPLE", "-v"]),
            ("/opt/x/bin/check user@host:5,6 50% a+b", ["/opt/x/bin/check", "user@host:5,6", "50%", "a+b"]),
            ("echo 42", nil), ("/bin/echo $HOME", nil), ("FOO=1 /bin/x", nil), ("/bin/echo 'a b'", nil),
            ("/bin/x > /tmp/y", nil), ("/bin/x;/bin/y", nil), ("/bin/x ~", nil), ("/bin/ls *", nil),
            ("/bin/x | /bin/y", nil), ("/bin/x\n/bin/y", nil), ("/bin/x \\a", nil), ("/bin/x é", nil),
        ] as [(String, [String]?)])
    func plainArguments(_ command: String, _ expected: [String]?) {
        #expect(CommandVariableSampler.plainArguments(command) == expected)
    }
}
