import Foundation
import TestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 17, item 6a: `hamn-events run` with the embedded default (no configuration) prints
/// nothing at warning level or above on a machine without DB2, also with the shipped DB2
/// definition of `db2sysc` run by `db2inst1` in its rules.
@Suite("the service: a clean first screen", .serialized, .timeLimit(.minutes(1)))
struct FirstScreenTests {
    static let nobody: uid_t = 65534
    static let quickstart = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("examples/quickstart").path

    /// The DB2 sample's `db2_proc_restart` (samples/db2), with the quickstart's recovery program.
    static let db2Definition =
        [
            "##### Beginning of the Event Definition: db2_proc_restart", "db2_proc_restart", "0",
            "/etc/hamn/rules/db2_paging.rp", "2", "0", "IBM.PSSP.Prog.pcount",
            "ProgName=db2sysc;UserName=db2inst1;NodeNum=*", "X@0 < X@1", "",
        ].joined(separator: "\n") + "\n"

    /// Runs the embedded default on a copy of the quickstart tree (plus `extraRules`) as a
    /// user of its own home (nobody when root, so nothing lands in /var/lib or /run) until
    /// `ready` holds of its standard error; returns standard output and standard error.
    func firstScreen(extraRules: String, ready: (String) -> Bool) throws -> (out: String, err: String) {
        var template = Array((NSTemporaryDirectory() + "hamn-first-XXXXXX").utf8CString)
        let home = try #require(mkdtemp(&template).map { String(cString: $0) })
        defer { try? FileManager.default.removeItem(atPath: home) }
        let tree = home + "/quickstart"
        try FileManager.default.copyItem(atPath: Self.quickstart, toPath: tree)
        let rules = tree + "/etc/hamn/rules/rules.hacmprd"
        let shipped = try String(contentsOfFile: rules, encoding: .utf8)
        try (shipped + extraRules).write(toFile: rules, atomically: true, encoding: .utf8)
        let asRoot = getuid() == 0
        if asRoot {
            for path in [home] + (FileManager.default.subpaths(atPath: home) ?? []).map({ home + "/" + $0 }) {
                chown(path, Self.nobody, Self.nobody)
            }
        }
        chmod(home, 0o700)
        let process = Process()
        if asRoot {
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = [
                "--reuid=\(Self.nobody)", "--regid=\(Self.nobody)", "--clear-groups", ServiceHarness.binary, "run",
            ]
        } else {
            process.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
            process.arguments = ["run"]
        }
        // No configuration: the embedded default, its state and socket in this home.
        process.environment = [
            "HOME": home, "PATH": "/usr/bin:/bin", "HAMN_EVENTS_SHIPPED": tree,
            "HAMN_EVENTS_CONFIG": home + "/none.yaml",
        ]
        process.currentDirectoryURL = URL(fileURLWithPath: home)
        let outPath = home + "/out"
        let errPath = home + "/err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        defer {
            try? out.close()
            try? err.close()
        }
        process.standardOutput = out
        process.standardError = err
        try process.run()
        defer {
            if process.isRunning {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
            }
        }
        func read(_ path: String) -> String { (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        try waitUntil("the service's first screen", timeout: .seconds(30), observed: { read(errPath) }) {
            guard process.isRunning else { throw ServiceError("the service exited:\n\(read(errPath))") }
            return ready(read(errPath))
        }
        process.terminate()
        process.waitUntilExit()
        return (read(outPath), read(errPath))
    }

    /// Lines at warning level or above, and lines that are not log lines at all.
    static func loud(_ text: String) -> [Substring] {
        text.split(separator: "\n").filter { line in
            let words = line.split(separator: " ", maxSplits: 2)
            return words.count < 2 || !["trace", "debug", "info", "notice"].contains(words[1])
        }
    }

    @Test("the embedded default as shipped: nothing at warning level or above")
    func asShipped() throws {
        let (out, err) = try firstScreen(extraRules: "") {
            $0.contains("TE_JOIN_NODE state 0 node") && $0.contains(": completed")
        }
        #expect(out.isEmpty, "\(out)")
        #expect(Self.loud(err).isEmpty, "\(err)")
        #expect(err.contains("configuration: the embedded default"))
    }

    @Test("the shipped DB2 definition without DB2: its user's absence once, at info level")
    func withoutDB2() throws {
        let db2Installed = getpwnam("db2inst1") != nil
        let (out, err) = try firstScreen(extraRules: Self.db2Definition) {
            db2Installed
                ? $0.contains(": completed")
                : $0.contains("no user named db2inst1") && $0.contains(": completed")
        }
        #expect(out.isEmpty, "\(out)")
        #expect(Self.loud(err).isEmpty, "\(err)")
        if !db2Installed {
            let lines = err.split(separator: "\n").filter { $0.contains("no user named db2inst1") }
            #expect(lines.count == 1, "\(err)")
            #expect(
                lines.first?.contains(
                    " info hamn-events: [HamnService] monitor IBM.PSSP.Prog.pcount NodeNum=1;ProgName=db2sysc;UserName=db2inst1: not sampled: no user named db2inst1"
                ) == true, "\(err)")
        }
    }
}
