import Foundation
import Testing
import TestSupport

/// A service under test: a temporary tree with rules, scripts and a configuration, the real
/// `hamn-events run` started as a process, and the command line to drive it.
final class ServiceHarness: @unchecked Sendable {
    let root: String
    private(set) var process: Process?
    private var errorPipe: Pipe?
    var stderrText = ""

    var configPath: String { root + "/hamn.yaml" }
    var rulesPath: String { root + "/etc/rules.hacmprd" }
    var journalPath: String { root + "/state/journal.sqlite" }
    var socketPath: String { root + "/run/control.sock" }
    var outputDirectory: String { root + "/out" }

    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["HAMN_EVENTS_BIN"] { return explicit }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("hamn-events").path
    }

    /// `definitions`: (name, state, rp text, resource variable fields 6-9 or nil).
    init(definitions: [(String, Int, String, [String]?)], extraConfiguration: String = "") throws {
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

    func start() throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["run", "--config", configPath]
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
        for _ in 0..<100 {
            if (try? cli(["status"]))?.status == 0 { return }
            guard process.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.1)
        }
        throw ServiceError("the service did not come up:\n\(stderrText)")
    }

    private let lock = NSLock()

    private func append(_ text: String) {
        lock.lock()
        stderrText += text
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
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning, Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        guard !process.isRunning else { return nil }
        return process.terminationStatus
    }

    /// Polls until `condition` holds, up to `seconds`.
    func eventually(_ seconds: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return try condition()
    }

    func read(_ relative: String) -> String? {
        FileManager.default.contents(atPath: outputDirectory + "/" + relative).map { String(decoding: $0, as: UTF8.self) }
    }
}

struct ServiceError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
