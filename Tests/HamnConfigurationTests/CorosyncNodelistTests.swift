import Foundation
import HamnConfiguration
import RulesEngine
import Testing

/// One hamn.yaml for every node: this node's name and number from corosync's nodelist.
@Suite("corosync nodelist")
struct CorosyncNodelistTests {
    static let conf = """
        # corosync.conf of three nodes
        totem {
            version: 2
            cluster_name: hamn
            interface {
                linknumber: 0
            }
        }
        quorum {
            provider: corosync_votequorum
        }
        nodelist {
            node {
                name: aixmn1
                nodeid: 1
                ring0_addr: 10.0.0.1
            }
            node {
                nodeid: 2
                name: aixmn2
                ring0_addr: 10.0.0.2
            }
            node {
                ring0_addr: aixmn3.example.com
                nodeid: 7
            }
        }
        """

    /// A corosync.conf written to a temporary file; the defaults of a host with `addresses`.
    static func setup(_ text: String = conf, host: String = "other", addresses: [String] = []) throws -> (
        path: String, defaults: ConfigurationLoader.Defaults
    ) {
        let path = NSTemporaryDirectory() + "corosync-\(UUID().uuidString).conf"
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        let defaults = ConfigurationLoader.Defaults(
            hostName: String(host.split(separator: ".").first!), rules: "/etc/hamn/rules.hacmprd", rulesRoot: nil,
            stateDirectory: "/var/lib/h", runtimeDirectory: "/run/h", hostAddresses: ["127.0.0.1"] + addresses,
            fullHostName: host, corosyncConf: path)
        return (path, defaults)
    }

    @Test("entries: nodeid, name, ring0_addr and the line of each")
    func parse() throws {
        let nodelist = try CorosyncNodelist.parse(Self.conf, file: "c.conf")
        #expect(
            nodelist.entries == [
                .init(nodeid: 1, name: "aixmn1", ring0: "10.0.0.1", line: 13),
                .init(nodeid: 2, name: "aixmn2", ring0: "10.0.0.2", line: 18),
                .init(nodeid: 7, name: nil, ring0: "aixmn3.example.com", line: 23),
            ])
        #expect(
            nodelist.nodes == [
                ClusterNode(name: "aixmn1", number: 1), ClusterNode(name: "aixmn2", number: 2),
                ClusterNode(name: "aixmn3.example.com", number: 7),
            ])
    }

    @Test("this host: by ring0_addr among its addresses, else by name or ring0_addr against the host name")
    func local() throws {
        let nodelist = try CorosyncNodelist.parse(Self.conf, file: "c.conf")
        #expect(nodelist.local(hostNames: ["x"], addresses: ["127.0.0.1", "10.0.0.2"])?.nodeid == 2)
        #expect(nodelist.local(hostNames: ["aixmn1.example.com"], addresses: ["10.9.9.9"])?.nodeid == 1)
        #expect(nodelist.local(hostNames: ["aixmn3.example.com"], addresses: [])?.nodeid == 7)
        // An address wins over a name: the host aixmn1 with aixmn2's address is aixmn2.
        #expect(nodelist.local(hostNames: ["aixmn1"], addresses: ["10.0.0.2"])?.nodeid == 2)
        #expect(nodelist.local(hostNames: ["other"], addresses: ["10.0.0.9"]) == nil)
    }

    @Test(
        "malformed: an error naming the line and column",
        arguments: [
            (
                "nodelist {\n    node {\n        name: a\n    }\n}\n",
                "c.conf:2:5: error: nodelist node without a nodeid"
            ),
            (
                "nodelist {\n    node {\n        nodeid: x1\n    }\n}\n",
                "c.conf:3:17: error: nodeid must be a number from 1, not 'x1'"
            ),
            ("nodelist {\n    node {\n        nodeid: 1\n    }\n", "c.conf:1:1: error: block 'nodelist' is not closed"),
            ("totem {\n}\n}\n", "c.conf:3:1: error: '}' closes no block"),
            ("totem {\n    version 2\n}\n", "c.conf:2:5: error: expected 'key: value'"),
            (
                "nodelist {\n node {\n  nodeid: 1\n }\n node {\n  nodeid: 1\n }\n}\n",
                "c.conf:5:1: error: nodeid 1 is also the node's at line 2"
            ),
        ])
    func malformed(_ text: String, _ expected: String) throws {
        let error = #expect(throws: (any Error).self) { try CorosyncNodelist.parse(text, file: "c.conf") }
        #expect(error.map { "\($0)" }?.hasPrefix(expected) == true, "\(error.map { "\($0)" } ?? "")")
    }

    @Test("one hamn.yaml for every node: no node: or nodes:, each host finds itself in the nodelist")
    func oneFileForEveryNode() throws {
        let yaml = "transport: corosync\nfencing: none\n"
        for (address, name, number) in [("10.0.0.1", "aixmn1", 1), ("10.0.0.2", "aixmn2", 2)] {
            let (path, defaults) = try Self.setup(addresses: [address])
            defer { try? FileManager.default.removeItem(atPath: path) }
            let configuration = try ConfigurationLoader.parse(yaml, file: "/etc/hamn/hamn.yaml", defaults: defaults)
            #expect(configuration.node == ClusterNode(name: name, number: number))
            #expect(configuration.nodes.map(\.number) == [1, 2, 7])
            #expect(configuration.nodeOrigin?.hasPrefix("\(path):\(number == 1 ? 13 : 18) (nodeid \(number)") == true)
        }
        // The third entry has no name: its ring0_addr names it, and the host name matches it.
        let (path, defaults) = try Self.setup(host: "aixmn3.example.com")
        defer { try? FileManager.default.removeItem(atPath: path) }
        let third = try ConfigurationLoader.parse(yaml, file: "/etc/hamn/hamn.yaml", defaults: defaults)
        #expect(third.node == ClusterNode(name: "aixmn3.example.com", number: 7))
    }

    @Test("nodes: given, node: not: this node is the nodelist's entry, matched by name, else by number")
    func nodesGiven() throws {
        let (path, defaults) = try Self.setup(addresses: ["10.0.0.2"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let byName = try ConfigurationLoader.parse(
            "transport: corosync\nnodes: [{name: aixmn1, number: 1}, {name: aixmn2, number: 2}]\n", file: "h.yaml",
            defaults: defaults)
        #expect(byName.node == ClusterNode(name: "aixmn2", number: 2))
        let byNumber = try ConfigurationLoader.parse(
            "transport: corosync\nnodes: [{name: a, number: 1}, {name: b, number: 2}]\n", file: "h.yaml",
            defaults: defaults)
        #expect(byNumber.node == ClusterNode(name: "b", number: 2))
        let neither = #expect(throws: (any Error).self) {
            try ConfigurationLoader.parse(
                "transport: corosync\nnodes: [{name: a, number: 1}, {name: c, number: 3}]\n", file: "h.yaml",
                defaults: defaults)
        }
        #expect(
            neither.map { "\($0)" }?.hasPrefix(
                "h.yaml:1:1: error: this host is aixmn2 (nodeid 2) in \(path):18, which is not among the nodes (a, c)")
                == true, "\(neither.map { "\($0)" } ?? "")")
        // node: given wins: the nodelist is not read.
        let given = try ConfigurationLoader.parse(
            "transport: corosync\nnode: a\nnodes: [{name: a, number: 1}, {name: b, number: 2}]\n", file: "h.yaml",
            defaults: defaults)
        #expect(given.node == ClusterNode(name: "a", number: 1) && given.nodeOrigin == nil)
    }

    @Test("a host not in the nodelist, with no nodes: given: an error that says to set node:")
    func notListed() throws {
        let (path, defaults) = try Self.setup(host: "stranger", addresses: ["10.0.0.9"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = #expect(throws: (any Error).self) {
            try ConfigurationLoader.parse("transport: corosync\n", file: "h.yaml", defaults: defaults)
        }
        #expect(
            error.map { "\($0)" }
                == "h.yaml:1:1: error: this host (stranger, addresses 127.0.0.1 10.0.0.9) is not in the nodelist of \(path) (no ring0_addr or name of its own): set node:"
        )
    }

    @Test("corosync: {conf: PATH} names the file; the local transport never reads it")
    func confKey() throws {
        let (path, defaults) = try Self.setup(addresses: ["10.0.0.1"])
        defer { try? FileManager.default.removeItem(atPath: path) }
        var elsewhere = defaults
        elsewhere.corosyncConf = "/nonexistent/corosync.conf"
        let named = try ConfigurationLoader.parse(
            "transport: corosync\ncorosync: {conf: \(path)}\n", file: "h.yaml", defaults: elsewhere)
        #expect(named.node == ClusterNode(name: "aixmn1", number: 1))
        // No corosync.conf at all: the host name, one node, as before.
        let absent = try ConfigurationLoader.parse("transport: corosync\n", file: "h.yaml", defaults: elsewhere)
        #expect(absent.node == ClusterNode(name: "other", number: 1) && absent.nodes == [absent.node])
        let local = try ConfigurationLoader.parse("nodes: [other, aixmn1]\n", file: "h.yaml", defaults: defaults)
        #expect(local.node == ClusterNode(name: "other", number: 1))
    }
}
