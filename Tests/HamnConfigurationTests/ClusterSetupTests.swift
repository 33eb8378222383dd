import HamnConfiguration
import Testing

@Suite("cluster setup")
struct ClusterSetupTests {
    @Test("three nodes: knet, crypto on, votequorum without two_node, the nodelist in the order given")
    func three() throws {
        let setup = try ClusterSetup.parse(["a=10.0.0.1", "b=10.0.0.2", "c=10.0.0.3"])
        let conf = setup.corosyncConf
        for line in [
            "    transport: knet", "    crypto_cipher: aes256", "    crypto_hash: sha256", "    token: 3000",
            "    provider: corosync_votequorum", "    cluster_name: hamn",
        ] {
            #expect(conf.contains(line + "\n"), "\(line)")
        }
        #expect(!conf.contains("two_node") && !conf.contains("keyfile"))
        #expect(
            conf.hasSuffix(
                """
                nodelist {
                    node {
                        name: a
                        nodeid: 1
                        ring0_addr: 10.0.0.1
                    }
                    node {
                        name: b
                        nodeid: 2
                        ring0_addr: 10.0.0.2
                    }
                    node {
                        name: c
                        nodeid: 3
                        ring0_addr: 10.0.0.3
                    }
                }

                """))
        // Its nodelist reads back as the nodes, numbered 1, 2, 3.
        let nodelist = try CorosyncNodelist.parse(conf, file: "corosync.conf")
        #expect(nodelist.nodes.map(\.name) == ["a", "b", "c"] && nodelist.nodes.map(\.number) == [1, 2, 3])
        #expect(setup.hamnYAML.contains("\ntransport: corosync\n"))
        #expect(!setup.hamnYAML.contains("\nnode:"))
    }

    @Test("two nodes: two_node; the token and keyfile given")
    func two() throws {
        let setup = try ClusterSetup.parse(
            ["x=fe80::1", "y=node-y.example.com"], clusterName: "pair", token: 1000, keyfile: "/etc/hamn/authkey")
        #expect(setup.corosyncConf.contains("    two_node: 1\n"))
        #expect(setup.corosyncConf.contains("    token: 1000\n"))
        #expect(setup.corosyncConf.contains("    keyfile: /etc/hamn/authkey\n"))
        #expect(setup.corosyncConf.contains("    cluster_name: pair\n"))
    }

    @Test(
        "refused, with why",
        arguments: [
            (["a"], "'a': expected NODE=ADDRESS"),
            (["a=1.1.1.1", "a=1.1.1.2"], "node a is given twice"),
            (["a=1.1.1.1", "b=1.1.1.1"], "b and a have the same address 1.1.1.1"),
            (
                ["a b=1.1.1.1"],
                "'a b=1.1.1.1': a node name and an address of letters, digits and . _ - (an address may also have :)"
            ),
            ([], "give every node as NODE=ADDRESS"),
        ])
    func refused(_ arguments: [String], _ message: String) {
        #expect(throws: ClusterSetup.Failure(description: message)) { try ClusterSetup.parse(arguments) }
    }

    @Test("a token out of range, a bad cluster name, a relative keyfile")
    func options() {
        #expect(throws: ClusterSetup.Failure.self) { try ClusterSetup.parse(["a=1.1.1.1"], token: 50) }
        #expect(throws: ClusterSetup.Failure.self) {
            try ClusterSetup.parse(["a=1.1.1.1"], clusterName: String(repeating: "n", count: 32))
        }
        #expect(throws: ClusterSetup.Failure.self) { try ClusterSetup.parse(["a=1.1.1.1"], keyfile: "authkey") }
    }
}
