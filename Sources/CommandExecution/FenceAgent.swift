import RecoveryPrograms
import RulesParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// One run of a fence agent, by fence-agents' convention: the agent is started with no
/// arguments and reads `key=value` lines on its standard input (`action=`, `nodename=`, its
/// options, `password=` from a file); exit status 0 means the action succeeded.
///
/// The options and the password reach the agent only through that pipe: never its arguments
/// (which `ps` shows), its environment, the journal or a log. What the caller gets back says how
/// the agent ended and the tail of what it printed, for the administrator.
package struct FenceAgent: Sendable {
    /// The agent's absolute path.
    package var agent: String
    /// `reboot`, `off`, `on`, `status`, `monitor`.
    package var action: String
    /// The node it acts on (`nodename=`, which agents that fence several nodes use).
    package var node: String
    /// The device's options, in key order.
    package var options: [String: String]
    /// A file whose first line is the password (`password=`): readable by its owner only, and
    /// owned by root or by the user the service runs as.
    package var passwordFile: String?
    package var timeout: Duration
    /// R020 as the agent starts (it runs as root): a problem with its path (a directory or the
    /// file writable by others) refuses it, and the fence fails with that reason.
    package var pathCheck: (@Sendable (String) -> String?)?

    package init(
        agent: String, action: String, node: String, options: [String: String], passwordFile: String?, timeout: Duration
    ) {
        self.agent = agent
        self.action = action
        self.node = node
        self.options = options
        self.passwordFile = passwordFile
        self.timeout = timeout
    }

    package struct Result: Sendable, Equatable {
        package var termination: Termination
        /// The last lines the agent printed (standard output and error).
        package var outputTail: String

        package var succeeded: Bool { termination == .exited(0) }

        /// One line for the journal and `status`: how it ended, and what it said.
        package var summary: String {
            let said = outputTail.split(whereSeparator: \.isNewline).last.map { ": \($0.trimmingBlanks())" } ?? ""
            return "\(termination)\(said)"
        }
    }

    /// Runs the agent to its end (or its timeout). Never throws.
    package func run() async -> Result {
        if let pathCheck, let problem = pathCheck(agent) {
            return Result(termination: .couldNotStart("refused: \(agent) \(problem)"), outputTail: "")
        }
        var lines = ["action=\(action)", "nodename=\(node)"]
        lines += options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        if let passwordFile {
            switch Self.readPassword(passwordFile) {
            case .success(let password): lines.append("password=\(password)")
            case .failure(let problem): return Result(termination: .couldNotStart(problem.message), outputTail: "")
            }
        }
        let input = Array((lines.joined(separator: "\n") + "\n").utf8)
        let launcher = ProcessLauncher(
            .executable(path: agent, arguments: [agent]),
            environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"],
            standardInput: input, output: .merged(tail: 2048), timeout: timeout, killGrace: .seconds(2))
        let outcome = await launcher.run()
        return Result(termination: outcome.termination, outputTail: outcome.output.text)
    }

    package struct PasswordProblem: Error, Sendable {
        package var message: String
    }

    /// The first line of `path`, if the file is safe to hold a password: a regular file, not a
    /// link, owned by root or by this process's user, and not readable or writable by others.
    package static func readPassword(_ path: String) -> Swift.Result<String, PasswordProblem> {
        let descriptor = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard descriptor >= 0 else {
            return .failure(PasswordProblem(message: "password file \(path): \(String(cString: strerror(errno)))"))
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0, (status.st_mode & S_IFMT) == S_IFREG else {
            return .failure(PasswordProblem(message: "password file \(path): not a regular file"))
        }
        guard status.st_uid == 0 || status.st_uid == geteuid() else {
            return .failure(PasswordProblem(message: "password file \(path): owned by uid \(status.st_uid), not root"))
        }
        guard status.st_mode & 0o077 == 0 else {
            return .failure(
                PasswordProblem(
                    message:
                        "password file \(path): readable or writable by others (mode \(String(status.st_mode & 0o777, radix: 8)); chmod 600 it)"
                ))
        }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while bytes.count < 65536 {
            let count = read(descriptor, &buffer, buffer.count)
            if count <= 0 { break }
            bytes += buffer[..<count]
        }
        let text = String(decoding: bytes, as: UTF8.self)
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        guard !line.isEmpty, !line.contains("\r") else {
            return .failure(PasswordProblem(message: "password file \(path): its first line is empty"))
        }
        return .success(line)
    }
}
