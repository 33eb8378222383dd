import Foundation
import HamnConfiguration
import Testing

/// Issue 16, finding 16: errors of a configuration that does not parse as YAML were reported at
/// FILE:1:1 (a control character, a key given twice) or at column 1 of their line; 40,000 keys
/// took 68 s (a search of the keys seen for each key).
@Suite("configuration errors at their line and column; keys checked in linear time")
struct ConfigurationPositionTests {
    let defaults = ConfigurationLoader.Defaults(
        hostName: "n1", rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil, stateDirectory: "/var/lib/h",
        runtimeDirectory: "/run/h")

    /// A valid configuration, and mutations of it such as the fuzzers make, each with the exact
    /// position and the start of its message.
    static let base = """
        # hamn.yaml
        node: n1
        nodes: [n1, n2]
        timeouts:
          default: 30m
          db2_paging: 10m
        stop: {mode: graceful, timeout: 300s}

        """

    static let mutations: [(String, String, String)] = [
        // A control character in a flow sequence (libyaml's reader: an offset, not a mark).
        ("nodes: [n1, n2]", "nodes: [n1, \u{1}n2]", "c.yaml:3:13: error: not valid YAML: control characters"),
        // A key given twice: at the key's first occurrence (Yams gives no other).
        ("stop: {", "node: n2\nstop: {", "c.yaml:2:1: error: not valid YAML: key 'node' given twice"),
        // A flow sequence left open: where libyaml noticed, with its column.
        ("nodes: [n1, n2]", "nodes: [n1, n2", "c.yaml:4:9: error: not valid YAML: did not find expected ',' or ']'"),
        // A tab in the indentation.
        ("  db2_paging", "\tdb2_paging", "c.yaml:6:1: error: not valid YAML: found a tab character"),
        // A mapping value where none may be.
        ("default: 30m", "default: 30m: 5", "c.yaml:5:15: error: not valid YAML: mapping values are not allowed"),
        // A lone carriage return: libyaml counts a line there, an editor does not.
        ("  default: 30m", "  default:\r 30m", "c.yaml:5:11: error: a carriage return that does not end a line"),
        ("n1, n2]", "n1,\u{2028} n2]", "c.yaml:3:12: error: a line break character U+2028"),
        // Errors of the loader itself, for comparison: at the value.
        ("default: 30m", "default: soon", "c.yaml:5:12: error: timeouts.default: expected a duration"),
        ("stop: {mode: graceful", "stop: {mode: gentle", "c.yaml:7:14: error: stop.mode: expected graceful"),
    ]

    @Test("mutated configurations: each error at its exact file:line:col", arguments: Self.mutations)
    func positions(_ find: String, _ replace: String, _ expected: String) throws {
        _ = try ConfigurationLoader.parse(Self.base, file: "c.yaml", defaults: defaults)
        let text = Self.base.replacingOccurrences(of: find, with: replace)
        #expect(text != Self.base)
        do {
            _ = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
            Issue.record("no error for \(text.debugDescription)")
        } catch {
            #expect(error.description.hasPrefix(expected), "\(error.description)")
        }
    }

    @Test("10 times the keys take about 10 times as long, not 100 (40,000 keys took 68 s)")
    func manyKeys() throws {
        func seconds(_ count: Int) throws -> Double {
            let text = "priorities:\n" + (0..<count).map { "  e\($0): \($0 % 50)\n" }.joined()
            let clock = ContinuousClock()
            var best = Double.infinity
            // The best of 3: a loaded machine slows a run, it never speeds one up.
            for _ in 0..<3 {
                var configuration: ServiceConfiguration?
                let elapsed = try clock.measure {
                    configuration = try ConfigurationLoader.parse(text, file: "c.yaml", defaults: defaults)
                }
                #expect(configuration?.priorities.count == count)
                best = min(best, Double(elapsed.components.attoseconds) / 1e18 + Double(elapsed.components.seconds))
            }
            return best
        }
        let small = try seconds(1_500)
        let large = try seconds(15_000)
        // Linear: about 10; quadratic: about 100. 35 leaves room for a loaded machine.
        #expect(large / small < 35, "1,500 keys: \(small) s, 15,000 keys: \(large) s")
    }
}
