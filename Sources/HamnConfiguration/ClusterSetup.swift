/// `hamn-events cluster setup NODE=ADDRESS...`: the `corosync.conf` and `hamn.yaml` of a new
/// cluster, the same on every node (README, "Install on a cluster").
public struct ClusterSetup: Sendable, Hashable {
    public struct Node: Sendable, Hashable {
        public var name: String
        public var address: String
        public init(name: String, address: String) {
            self.name = name
            self.address = address
        }
    }

    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
        public init(description: String) { self.description = description }
    }

    public var nodes: [Node]
    /// corosync's `cluster_name` (at most 31 bytes: corosync's limit with knet).
    public var clusterName: String
    /// corosync's token timeout, milliseconds.
    public var token: Int
    /// `totem.keyfile`, when the authkey is not corosync's default `/etc/corosync/authkey`.
    public var keyfile: String?

    /// Parses `NODE=ADDRESS` arguments. Names are node names (letters, digits, `.`, `_`, `-`);
    /// an address is an IP address or a host name, given once.
    public static func parse(
        _ arguments: [String], clusterName: String = "hamn", token: Int = 3000, keyfile: String? = nil
    ) throws(Failure) -> ClusterSetup {
        guard !arguments.isEmpty else { throw Failure(description: "give every node as NODE=ADDRESS") }
        guard arguments.count <= 32 else {
            throw Failure(description: "\(arguments.count) nodes: corosync's knet takes at most 32")
        }
        var nodes: [Node] = []
        for argument in arguments {
            let parts = argument.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw Failure(description: "'\(argument)': expected NODE=ADDRESS")
            }
            let name = String(parts[0])
            let address = String(parts[1])
            guard name.utf8.allSatisfy(Self.nameByte), address.utf8.allSatisfy(Self.addressByte) else {
                throw Failure(
                    description:
                        "'\(argument)': a node name and an address of letters, digits and . _ - (an address may also have :)"
                )
            }
            if nodes.contains(where: { $0.name == name }) {
                throw Failure(description: "node \(name) is given twice")
            }
            if let other = nodes.first(where: { $0.address == address }) {
                throw Failure(description: "\(name) and \(other.name) have the same address \(address)")
            }
            nodes.append(Node(name: name, address: address))
        }
        guard !clusterName.isEmpty, clusterName.utf8.count <= 31, clusterName.utf8.allSatisfy(Self.nameByte) else {
            throw Failure(description: "the cluster name: 1 to 31 letters, digits, . _ -")
        }
        guard (200...60000).contains(token) else {
            throw Failure(description: "the token timeout: 200 to 60000 ms, not \(token)")
        }
        if let keyfile, !keyfile.hasPrefix("/") || keyfile.contains(where: { $0 == "\n" || $0 == " " }) {
            throw Failure(description: "the key file: an absolute path without blanks, not '\(keyfile)'")
        }
        return ClusterSetup(nodes: nodes, clusterName: clusterName, token: token, keyfile: keyfile)
    }

    private static func nameByte(_ byte: UInt8) -> Bool {
        (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
            || byte == UInt8(ascii: ".") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: "-")
    }

    private static func addressByte(_ byte: UInt8) -> Bool { nameByte(byte) || byte == UInt8(ascii: ":") }

    /// Two nodes: votequorum's `two_node` (each side of a 1|1 split keeps quorum; fencing
    /// decides), which implies `wait_for_all`.
    public var twoNode: Bool { nodes.count == 2 }

    /// corosync.conf: knet, crypto on (AES-256, SHA-256, with the authkey), votequorum, the
    /// nodelist numbered from 1 in the order given.
    public var corosyncConf: String {
        var text = """
            # corosync.conf written by `hamn-events cluster setup` for \(nodes.map(\.name).joined(separator: ", ")).
            # The same file on every node, with the same authkey (\(keyfile ?? "/etc/corosync/authkey"), mode 0400).
            totem {
                version: 2
                cluster_name: \(clusterName)
                transport: knet
                # Messages are encrypted and authenticated with the authkey.
                crypto_cipher: aes256
                crypto_hash: sha256

            """
        if let keyfile { text += "    keyfile: \(keyfile)\n" }
        text += """
                # A node that stops answering is declared lost after the token timeout (plus 650 ms
                # per node beyond two), and the new membership forms after the consensus (1.2 x
                # that) more: about 2.2 x (token + 650 x (nodes - 2)) ms before the takeover starts.
                token: \(token)
            }
            logging {
                to_syslog: yes
                to_stderr: no
                timestamp: on
            }
            quorum {
                provider: corosync_votequorum

            """
        if twoNode {
            text += "    # Two nodes: each side of a split keeps quorum (fencing decides); implies wait_for_all.\n"
            text += "    two_node: 1\n"
        }
        text += "}\nnodelist {\n"
        for (index, node) in nodes.enumerated() {
            text +=
                "    node {\n        name: \(node.name)\n        nodeid: \(index + 1)\n        ring0_addr: \(node.address)\n    }\n"
        }
        return text + "}\n"
    }

    /// hamn.yaml: the same on every node; each node finds itself in corosync's nodelist.
    public var hamnYAML: String {
        var text = """
            # /etc/hamn/hamn.yaml written by `hamn-events cluster setup`: the same file on every node.
            # Each node is its own entry of corosync's nodelist (node: and nodes: are not needed).
            transport: corosync

            """
        text += "# Fencing: a device per node before a takeover (README, \"Fencing and quorum\"), e.g.\n"
        text += "# fencing:\n#   devices:\n"
        for node in nodes {
            text +=
                "#     \(node.name): {agent: /usr/sbin/fence_ipmilan, options: {ip: BMC-OF-\(node.name), username: admin, lanplus: 1}, password_file: /etc/hamn/fence/\(node.name).pass}\n"
        }
        return text
    }
}
