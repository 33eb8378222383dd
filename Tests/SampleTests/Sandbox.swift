import Foundation
import TestSupport
import Testing

/// The repository's root, from this file's place in it (Tests/SampleTests/Sandbox.swift).
let repositoryRoot: String = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// A place to run the shipped and sample scripts for real, with nothing real to break.
///
/// - `PATH` is `bin/` (the stand-ins) then `safe/` (symbolic links to a few read-only or
///   file-local tools: sh, awk, sed, ...). Nothing else is on it, so a script that asks for
///   `ip`, `mount`, `db2`, `systemctl` ... without a stand-in gets "not found" (127), never
///   the real one (the tests run as root).
/// - Every stand-in appends one line to `log`: its name and its arguments, an argument quoted
///   ('...') when it holds anything but letters, digits and `_./:=@%+,-`. It then runs the
///   shell `body` it was given (with `$@`), which can print an answer and choose its status.
/// - Scripts run with exactly the environment given (plus PATH, HOME, STANDIN_LOG and
///   HAMN_SYSLOG=0): none of the test process's.
final class Sandbox: @unchecked Sendable {
    let root: String
    var bin: String { root + "/bin" }
    var safe: String { root + "/safe" }
    var logPath: String { root + "/log" }

    static let safeTools = [
        "sh", "cat", "awk", "sed", "grep", "tr", "cut", "sort", "head", "tail", "wc", "date", "mkdir", "rm", "mv",
        "cp", "chmod", "touch", "stat", "id", "uname", "sleep", "setsid", "env", "basename", "dirname",
    ]

    init() throws {
        var template = Array((NSTemporaryDirectory() + "hamn-samples-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
        root = String(cString: made)
        chmod(root, 0o755)
        for directory in ["bin", "safe", "etc", "out"] {
            try FileManager.default.createDirectory(atPath: root + "/" + directory, withIntermediateDirectories: true)
            chmod(root + "/" + directory, 0o755)
        }
        for tool in Self.safeTools {
            guard
                let path = ["/usr/bin/", "/bin/", "/usr/sbin/", "/sbin/"].map({ $0 + tool }).first(where: {
                    FileManager.default.isExecutableFile(atPath: $0)
                })
            else { continue }
            try FileManager.default.createSymbolicLink(atPath: safe + "/" + tool, withDestinationPath: path)
        }
        try write(logPath, "")
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        chmod(path, mode)
    }

    func read(_ path: String) -> String? {
        FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// A stand-in for `name` on PATH: records its arguments, then runs `body`.
    func standIn(_ name: String, _ body: String = "exit 0") throws {
        try write(bin + "/" + name, standInScript(name, log: "$STANDIN_LOG", body: body), mode: 0o755)
    }

    /// Stand-ins that only record and succeed.
    func standIns(_ names: [String]) throws {
        for name in names { try standIn(name) }
    }

    /// The commands the stand-ins recorded, in order.
    var commands: [String] {
        (read(logPath) ?? "").split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    func clearLog() throws { try write(logPath, "") }

    struct Result {
        var status: Int32
        var out: String
        var err: String
        /// The lines of standard error.
        var logLines: [String] { err.split(separator: "\n").map(String.init) }
    }

    var baseEnvironment: [String: String] {
        ["PATH": bin + ":" + safe, "HOME": root, "STANDIN_LOG": logPath, "HAMN_SYSLOG": "0"]
    }

    /// Runs `path ARGS` with the base environment and `environment` over it.
    func run(_ path: String, _ arguments: [String] = [], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = baseEnvironment.merging(environment) { _, new in new }
        process.currentDirectoryURL = URL(fileURLWithPath: root)
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(
            status: process.terminationStatus, out: String(decoding: outData, as: UTF8.self),
            err: String(decoding: errData, as: UTF8.self))
    }

    /// Polls until `condition` holds, up to `seconds`.
    func eventually(_ seconds: Double = 10, _ condition: () -> Bool) -> Bool {
        holdsWithin(.seconds(seconds), poll: .milliseconds(50), condition)
    }
}

/// Paths in the repository.
enum Repo {
    static let events = repositoryRoot + "/rules/etc/hamn/events"
    static let functions = events + "/hamn_functions"
    static let db2Bin = repositoryRoot + "/samples/db2/usr/local/sbin"
    static let xcatBin = repositoryRoot + "/samples/xcat-hamn/usr/local/sbin"
}
