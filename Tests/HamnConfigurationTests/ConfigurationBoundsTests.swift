import Foundation
import HamnConfiguration
import RulesParser
import Testing

/// Every number the configuration takes is bounded where it is read, with an error at its
/// line and column: `validate --config` refuses what `run` could not take (issue 16,
/// finding 1: `network_interval: 1e19` passed and then crashed `run`).
@Suite("configuration bounds")
struct ConfigurationBoundsTests {
    let defaults = ConfigurationLoader.Defaults(
        hostName: "host", rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil, stateDirectory: "/var/lib/h",
        runtimeDirectory: "/run/h")

    /// (the document, the line and column of the error, a part of its message)
    static let outOfRange: [(String, Int, Int, String)] = [
        ("node: a\nnetwork_interval: 1e19\n", 2, 19, "longer than the longest duration accepted, 365d"),
        ("default_interval: 366d\n", 1, 19, "longer than the longest duration"),
        ("config_too_long: 1e300\n", 1, 18, "longer than the longest duration"),
        ("timeouts:\n  default: 1e300\n", 2, 12, "longer than the longest duration"),
        ("timeouts:\n  node_up: 9.3e18\n", 2, 12, "longer than the longest duration"),
        ("corosync:\n  form_timeout: 1e19s\n", 2, 17, "longer than the longest duration"),
        ("monitors:\n  - {variable: IBM.PSSP.aixos.CPU.glidle, interval: 1e19ms}\n", 2, 53, "longer than"),
        ("variables:\n  - {name: A.B, command: /bin/true, interval: 1e17}\n", 2, 47, "longer than"),
        ("variables:\n  - {name: A.B, command: /bin/true, timeout: 1e10h}\n", 2, 46, "longer than"),
        ("stop:\n  timeout: 1e19\n", 2, 12, "longer than"),
        ("no_quorum_policy: {action: stop, delay: 1e19}\n", 1, 41, "longer than"),
        ("watchdog: {timeout: 1e19, device: /dev/null}\n", 1, 21, "longer than"),
        ("network_interval: inf\n", 1, 19, "expected a duration"),
        ("network_interval: nan\n", 1, 19, "expected a duration"),
        ("network_interval: -1s\n", 1, 19, "expected a duration"),
        ("priorities: {x: 1001}\n", 1, 17, "a priority from -1000 to 1000"),
        ("priorities: {x: -9223372036854775808}\n", 1, 17, "a priority from -1000 to 1000"),
        ("nodes:\n  - {name: a, number: 2147483648}\n", 2, 5, "a number from 1 to 2147483647"),
        ("control_connections: 0\n", 1, 22, "from 1 to 10000"),
        ("control_connections: 100000\n", 1, 22, "from 1 to 10000"),
    ]

    @Test("a number out of range is an error at its line and column", arguments: outOfRange)
    func refused(_ text: String, _ line: Int, _ column: Int, _ message: String) {
        do {
            let configuration = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
            Issue.record("accepted: \(text) (\(configuration.networkInterval))")
        } catch {
            #expect(error.file == "c.yaml")
            #expect(error.line == line && error.column == column, "\(error)")
            #expect(error.message.contains(message), "\(error)")
        }
    }

    @Test("the longest duration itself is accepted, and every duration becomes a Duration without trapping")
    func longest() throws {
        let configuration = try ConfigurationLoader.parse(
            "network_interval: 365d\nconfig_too_long: 31536000\ntimeouts: {default: 365d}\n", file: "c.yaml",
            defaults: defaults)
        #expect(configuration.networkInterval == BoundedDuration.maximumSeconds)
        #expect(configuration.commandTimeout(for: "x") == .seconds(31_536_000))
    }

    @Test("timeouts: 0 is no timeout, for the default and for one event (as systemd's TimeoutSec=0)")
    func zeroTimeout() throws {
        let none = try ConfigurationLoader.parse("timeouts: {default: 0}\n", file: "c.yaml", defaults: defaults)
        #expect(none.commandTimeout(for: "node_up") == nil)
        let one = try ConfigurationLoader.parse(
            "timeouts: {default: 10s, backup: 0s}\n", file: "c.yaml", defaults: defaults)
        #expect(one.commandTimeout(for: "backup") == nil)
        #expect(one.commandTimeout(for: "node_up") == .seconds(10))
        let unset = try ConfigurationLoader.parse("", file: "c.yaml", defaults: defaults)
        #expect(unset.commandTimeout(for: "node_up") == nil)
    }
}
