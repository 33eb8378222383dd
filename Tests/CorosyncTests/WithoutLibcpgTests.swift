import Foundation
import TestSupport
import Testing

/// `hamn-events` without Corosync's client libraries (issue 13): the executable does not link
/// them (CorosyncTransport opens them with dlopen when a connection is made), so in a mount
/// namespace where they cannot be loaded (each file covered by /dev/null) `validate`,
/// `simulate` and `test` work, and `run` with the corosync transport stops with an error naming
/// the library and its Debian package. Root: the mount namespace.
@Suite("hamn-events without libcpg", .timeLimit(.minutes(2)))
struct WithoutLibcpgTests {
    static let libraries = ["libcpg.so.4", "libvotequorum.so.8"]

    @Test("the executable has no NEEDED entry for libcpg, libvotequorum or libqb")
    func notLinked() throws {
        let result = try runTool("/usr/bin/readelf", ["-d", EngineCluster.binary])
        try #require(result.status == 0, "\(result.err)")
        let needed = result.out.split(separator: "\n").filter { $0.contains("(NEEDED)") }.map(String.init)
        // The section was read: the executable needs libc at least.
        #expect(needed.contains { $0.contains("libc.so") }, "\(result.out)")
        #expect(
            needed.filter { $0.contains("libcpg") || $0.contains("libvotequorum") || $0.contains("libqb") } == [])
    }

    @Test("with the libraries unloadable: validate, simulate and test work; run with corosync names the library")
    func librariesUnloadable() throws {
        let repository = EngineCluster.repository
        let quickstart = repository + "/examples/quickstart"
        let validate = try withoutLibraries([
            "validate", "--root", quickstart, quickstart + "/etc/hamn/rules/rules.hacmprd",
        ])
        #expect(validate.status == 0, "\(validate.err)")
        #expect(validate.err.contains("0 errors"), "\(validate.err)")

        let simulate = try withoutLibraries(["simulate", repository + "/scenarios/db2-paging.yaml"])
        #expect(simulate.status == 0, "\(simulate.err)")
        #expect(simulate.out.contains("db2_paging"), "\(simulate.out)")

        let test = try withoutLibraries(["test", repository + "/scenarios/db2-paging.yaml"])
        #expect(test.status == 0, "\(test.out)\(test.err)")

        // The same namespace, the corosync transport: the library is indeed not loadable there.
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try write(directory + "/node_up.rp", "all \"/bin/true\" 0 NULL\n")
        try write(directory + "/rules.hacmprd", "TE_JOIN_NODE\n0\n\(directory)/node_up.rp\n2\n0\n\n\n\n\n# end\n")
        try write(
            directory + "/hamn.yaml",
            """
            node: n1
            nodes: [n1]
            transport: corosync
            fencing: none
            rules: \(directory)/rules.hacmprd
            journal: \(directory)/journal.sqlite
            socket: \(directory)/socket

            """)
        let run = try withoutLibraries(["run", "--config", directory + "/hamn.yaml"])
        #expect(run.status != 0)
        #expect(
            run.err.contains("cannot load libcpg.so.4, which the corosync transport needs (Debian package libcpg4)"),
            "\(run.err)")
        #expect(!run.err.contains("is corosync running"), "\(run.err)")
    }

    /// Runs `hamn-events ARGUMENTS` in a mount namespace of its own where each of `libraries`
    /// (as the dynamic loader finds it) is /dev/null.
    func withoutLibraries(_ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        let cache = try runTool("/sbin/ldconfig", ["-p"])
        let paths = try Self.libraries.map { library in
            let line = cache.out.split(separator: "\n").first { $0.contains(library + " (") && $0.contains("x86-64") }
            return try #require(line?.components(separatedBy: " => ").last, "\(library) is not in ldconfig's cache")
        }
        let script = """
            for library in \(paths.joined(separator: " ")); do mount --bind /dev/null "$library" || exit 99; done
            exec "$@"
            """
        return try runTool(
            "/usr/bin/unshare",
            ["--mount", "--propagation", "private", "/bin/sh", "-c", script, "sh", EngineCluster.binary] + arguments)
    }

    func temporaryDirectory() throws -> String {
        var template = Array((NSTemporaryDirectory() + "hamn-nolib-XXXXXX").utf8CString)
        guard let made = mkdtemp(&template) else { throw EngineClusterError("mkdtemp failed") }
        let path = String(cString: made)
        chmod(path, 0o755)
        return path
    }

    func write(_ path: String, _ text: String) throws {
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        chmod(path, 0o644)
    }
}
