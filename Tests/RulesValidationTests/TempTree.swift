import Foundation
import TestSupport

/// A directory of real files for a test, removed when the test ends.
final class TempTree {
    let root: String

    init() throws {
        let template = NSTemporaryDirectory() + "hamn-test-XXXXXX"
        var bytes = Array(template.utf8CString)
        guard let made = mkdtemp(&bytes) else { throw CocoaError(.fileWriteUnknown) }
        root = String(cString: made)
        chmod(root, 0o755)
    }

    deinit {
        try? FileManager.default.removeItem(atPath: root)
    }

    func path(_ relative: String) -> String {
        relative.hasPrefix("/") ? root + relative : root + "/" + relative
    }

    /// Writes `text` at `relative` with `mode`, creating the directories on the way.
    @discardableResult
    func write(_ relative: String, _ text: String, mode: mode_t = 0o644) throws -> String {
        let full = path(relative)
        let directory = (full as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        chmod(directory, 0o755)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        chmod(full, mode)
        return full
    }

    func script(_ relative: String) throws -> String {
        try write(relative, "#!/bin/sh\nexit 0\n", mode: 0o755)
    }
}

/// Nine fields, one per line.
func definition(
    _ name: String, _ program: String, state: Int = 0, variable: String = "", instances: String = "",
    predicate: String = "", rearm: String = ""
) -> String {
    [name, "\(state)", program, "2", "0", variable, instances, predicate, rearm].joined(separator: "\n") + "\n"
}

/// The `hamn-events` executable built beside the test bundle.
func hamnEventsBinary() -> String {
    if let explicit = ProcessInfo.processInfo.environment["HAMN_EVENTS_BIN"] { return explicit }
    let bundle = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    return bundle.appendingPathComponent("hamn-events").path
}

/// Runs the CLI and returns its exit status, standard output and standard error.
func runCLI(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
    try runTool(hamnEventsBinary(), arguments)
}
