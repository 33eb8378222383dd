import Foundation
import TestSupport
import Testing

/// A service under test: a temporary tree with rules, scripts and a configuration, the real
/// `hamn-events run` started as a process, and the command line to drive it.
final class ServiceHarness: @unchecked Sendable {
    let root: String
    private(set) var process: Process?
    private var errorPipe: Pipe?
    private var collected = ""
    /// What the service has written to its standard output and error so far.
    var stderrText: String {
        lock.lock()
        defer { lock.unlock() }
        return collected
    }

    var configPath: String { root + "/hamn.yaml" }
    var rulesPath: String { root + "/etc/rules.hacmprd" }
    var journalPath: String { root + "/state/journal.sqlite" }
    var socketPath: String { root + "/run/control.sock" }
    var outputDirectory: String { root + "/out" }

    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["HAMN_EVENTS_BIN"] { return explicit }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "hamn-events"
        ).path
    }

    /// `definitions`: (name, state, rp text, resource variable fields 6-9 or nil).
    /// `http`: the `http:` key (by default a free port: services of several tests run at once).
    init(
        definitions: [(String, Int, String, [String]?)], extraConfiguration: String = "", http: String = "{port: 0}"
    ) throws {
        var template = Array((NSTemporaryDirectory() + "hamn-svc-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        root = String(cString: made)
        chmod(root, 0o755)
        for directory in ["etc", "etc/events", "bin", "out", "state"] {
            try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            chmod(root + "/" + directory, 0o755)
        }
        try writeRules(definitions)
        try write(
            configPath,
            """
            node: n1
            rules: \(rulesPath)
            journal: \(journalPath)
            socket: \(socketPath)
            config_too_long: 300s
            \(extraConfiguration)
            http: \(http)
            """)
    }

    deinit {
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        try? FileManager.default.removeItem(atPath: root)
    }

    func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    /// A script in bin/ that runs `body` with /bin/sh.
    @discardableResult
    func script(_ name: String, _ body: String) throws -> String {
        let path = root + "/bin/" + name
        try write(path, "#!/bin/sh\n" + body + "\n", mode: 0o755)
        return path
    }

    func writeRules(_ definitions: [(String, Int, String, [String]?)]) throws {
        var text = ""
        for (name, state, program, monitoring) in definitions {
            let rp = root + "/etc/\(name)_\(state).rp"
            try write(rp, program)
            let fields = monitoring ?? ["", "", "", ""]
            text += ([name, "\(state)", rp, "2", "0"] + fields).joined(separator: "\n") + "\n"
        }
        try write(rulesPath, text)
    }

    /// A program that runs the service, with its arguments (e.g. `prlimit --nofile=256`); it
    /// must exec the service so that the process is the service.
    var launcher: [String] = []

    /// Starts `hamn-events run --config CONFIG` (or `arguments`), under `launcher`, with
    /// `environment` added to this process's, and waits until `status` answers.
    func start(arguments: [String]? = nil, environment: [String: String] = [:]) throws {
        let process = Process()
        let command = launcher + [Self.binary] + (arguments ?? ["run", "--config", configPath])
        process.executableURL = URL(fileURLWithPath: command[0])
        process.arguments = Array(command.dropFirst())
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        let pipe = Pipe()
        process.standardError = pipe
        process.standardOutput = pipe
        pipe.fileHandleForReading.readabilityHandler = { [weak self] handle in
            let data = handle.availableData
            guard !data.isEmpty else { return }
            self?.append(String(decoding: data, as: UTF8.self))
        }
        try process.run()
        self.process = process
        errorPipe = pipe
        // Up when `status` answers.
        try waitUntil("the service to answer `status`", poll: .milliseconds(50), observed: { self.stderrText }) {
            guard process.isRunning else {
                throw ServiceError("the service exited while starting:\n\(self.stderrText)")
            }
            return (try? self.cli(["status"]))?.status == 0
        }
    }

    private let lock = NSLock()

    private func append(_ text: String) {
        lock.lock()
        collected += text
        lock.unlock()
    }

    /// Runs `hamn-events ARGS --socket ...` (the socket option after the subcommand).
    @discardableResult
    func cli(_ arguments: [String], input: String? = nil) throws -> (status: Int32, out: String, err: String) {
        var full = arguments
        if let first = arguments.first, !["validate", "simulate", "test", "run", "maintenance"].contains(first) {
            full = [first, "--socket", socketPath] + arguments.dropFirst()
        }
        return try runTool(Self.binary, full)
    }

    func signal(_ signal: Int32) {
        if let process { kill(process.processIdentifier, signal) }
    }

    /// Waits for the service to exit; its status, or nil after `seconds`.
    func waitForExit(seconds: Double) -> Int32? {
        guard let process else { return nil }
        guard holdsWithin(.seconds(seconds), { !process.isRunning }) else { return nil }
        return process.terminationStatus
    }

    /// Polls until `condition` holds, up to `seconds`.
    func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        try holdsWithin(.seconds(seconds), poll: .milliseconds(50), condition)
    }

    /// `hamn-events status`'s text ("" when it does not answer).
    var status: String { (try? cli(["status"]))?.out ?? "" }

    /// Waits until `status` shows `text`; fails naming it, with the last status, if it does not.
    func waitForStatus(_ text: String, timeout: Duration = .seconds(10)) throws {
        try waitUntil(
            "status to show \"\(text)\"", timeout: timeout, poll: .milliseconds(50), observed: { self.status }
        ) {
            status.contains(text)
        }
    }

    /// Waits until `history` shows `event` (`slow state 0`) and a failure.
    func waitForFailure(of event: String) throws {
        try waitUntil("\(event) to fail", observed: { self.status }) {
            let history = (try? cli(["history"]))?.out ?? ""
            return history.contains(event) && history.contains("failed")
        }
    }

    /// Waits until the service's output (its log on standard error) shows `text`.
    func waitForOutput(_ text: String, timeout: Duration = .seconds(10)) throws {
        try waitUntil("the service to log \"\(text)\"", timeout: timeout, observed: { self.stderrText }) {
            stderrText.contains(text)
        }
    }

    /// How many connections to the control socket are open (from /proc/net/unix: the listening
    /// socket and the service's end of each connection carry the socket's path).
    /// Read to its end: `String(contentsOfFile:)` stops after the first 4 KiB of a /proc file,
    /// and a busy machine's table is longer.
    var openControlConnections: Int {
        let data = FileHandle(forReadingAtPath: "/proc/net/unix")?.readDataToEndOfFile() ?? Data()
        let table = String(decoding: data, as: UTF8.self)
        let bound = table.split(separator: "\n").filter { $0.hasSuffix(" " + socketPath) }.count
        return max(bound - 1, 0)
    }

    /// The journal's service notes, oldest first.
    var serviceNotes: String {
        (try? runTool("/usr/bin/sqlite3", [journalPath, "SELECT text FROM log WHERE kind = 'service';"]))?.out ?? ""
    }

    func read(_ relative: String) -> String? {
        FileManager.default.contents(atPath: outputDirectory + "/" + relative).map {
            String(decoding: $0, as: UTF8.self)
        }
    }
}

struct ServiceError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
