import HamnYAML
import RulesEngine

/// The `nodelist` of a `corosync.conf` (corosync.conf(5)): which node this host is, so that one
/// `hamn.yaml` serves every node of a cluster (README, "Install").
///
/// The file is blocks `NAME {` ... `}` of `key: value` lines, `#` comments; only
/// `nodelist { node { nodeid: N  name: NAME  ring0_addr: ADDRESS } ... }` is read here.
public struct CorosyncNodelist: Sendable, Hashable {
    public struct Entry: Sendable, Hashable {
        public var nodeid: Int
        /// `name:`, or nil (corosync then names the node by its address).
        public var name: String?
        /// `ring0_addr:` (an address or a host name), nil if the entry has none.
        public var ring0: String?
        /// 1-based line of the entry's `node {`.
        public var line: Int

        /// The node's name for hamn-events: `name:`, else `ring0_addr`.
        public var nodeName: String { name ?? ring0 ?? "node\(nodeid)" }

        public init(nodeid: Int, name: String?, ring0: String?, line: Int) {
            self.nodeid = nodeid
            self.name = name
            self.ring0 = ring0
            self.line = line
        }
    }

    public var file: String
    public var entries: [Entry]

    /// Parses `text` (the contents of `file`). A nodelist entry without a `nodeid`, a `nodeid`
    /// that is not a number from 1, two entries with the same nodeid or name, or an unbalanced
    /// brace is an error naming the line and column.
    public static func parse(_ text: String, file: String) throws(YAMLError) -> CorosyncNodelist {
        var path: [String] = []
        var opened: [(line: Int, column: Int)] = []
        var entries: [Entry] = []
        var current: (line: Int, column: Int, fields: [String: (value: String, line: Int, column: Int)])?
        var lineNumber = 0
        for raw in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNumber += 1
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw[...]
            let indent = line.prefix { $0 == " " || $0 == "\t" }.count
            let content = line.dropFirst(indent).trimmingTrailingBlanks()
            if content.isEmpty || content.hasPrefix("#") { continue }
            let column = indent + 1
            if content.hasSuffix("{") {
                let name = String(content.dropLast()).trimmingTrailingBlanks()
                path.append(name)
                opened.append((lineNumber, column))
                if path == ["nodelist", "node"] { current = (lineNumber, column, [:]) }
            } else if content == "}" {
                guard !path.isEmpty else {
                    throw YAMLError(file: file, line: lineNumber, column: column, message: "'}' closes no block")
                }
                if path == ["nodelist", "node"], let node = current {
                    entries.append(try entry(node, file: file))
                    current = nil
                }
                path.removeLast()
                opened.removeLast()
            } else if let colon = content.firstIndex(of: ":") {
                let key = String(content[..<colon]).trimmingTrailingBlanks()
                let value = String(content[content.index(after: colon)...].drop { $0 == " " || $0 == "\t" })
                if current != nil, path == ["nodelist", "node"] {
                    current?.fields[key] = (
                        value, lineNumber, column + content.distance(from: content.startIndex, to: colon) + 2
                    )
                }
            } else {
                throw YAMLError(
                    file: file, line: lineNumber, column: column,
                    message: "expected 'key: value', 'NAME {' or '}' in corosync.conf")
            }
        }
        if let open = opened.last {
            throw YAMLError(
                file: file, line: open.line, column: open.column,
                message: "block '\(path.last!)' is not closed by the end of the file")
        }
        var seen: [Int: Int] = [:]
        var names: [String: Int] = [:]
        for entry in entries {
            if let first = seen[entry.nodeid] {
                throw YAMLError(
                    file: file, line: entry.line, column: 1,
                    message: "nodeid \(entry.nodeid) is also the node's at line \(first)")
            }
            seen[entry.nodeid] = entry.line
            if let first = names[entry.nodeName] {
                throw YAMLError(
                    file: file, line: entry.line, column: 1,
                    message: "node name '\(entry.nodeName)' is also the node's at line \(first)")
            }
            names[entry.nodeName] = entry.line
        }
        return CorosyncNodelist(file: file, entries: entries)
    }

    private static func entry(
        _ node: (line: Int, column: Int, fields: [String: (value: String, line: Int, column: Int)]), file: String
    ) throws(YAMLError) -> Entry {
        guard let id = node.fields["nodeid"] else {
            throw YAMLError(
                file: file, line: node.line, column: node.column,
                message: "nodelist node without a nodeid (hamn-events numbers its nodes by corosync's nodeid)")
        }
        guard let number = Int(id.value), number >= 1 else {
            throw YAMLError(
                file: file, line: id.line, column: id.column,
                message: "nodeid must be a number from 1, not '\(id.value)'")
        }
        let name = node.fields["name"].map(\.value).flatMap { $0.isEmpty ? nil : $0 }
        let ring0 = node.fields["ring0_addr"].map(\.value).flatMap { $0.isEmpty ? nil : $0 }
        return Entry(nodeid: number, name: name, ring0: ring0, line: node.line)
    }

    /// The entry of this host: its `ring0_addr` is one of `addresses` (the host's own) or the
    /// host name, or its `name` is the host name (short or full). Several matches: the first
    /// by address, else the first by name.
    public func local(hostNames: [String], addresses: [String]) -> Entry? {
        let hosts = Set(hostNames.flatMap { [$0, $0.split(separator: ".").first.map(String.init) ?? $0] })
        if let byAddress = entries.first(where: { $0.ring0.map { addresses.contains($0) } ?? false }) {
            return byAddress
        }
        return entries.first { entry in
            entry.name.map { hosts.contains($0) } ?? false || entry.ring0.map { hosts.contains($0) } ?? false
        }
    }

    /// The cluster's nodes for hamn-events: name and number (corosync's nodeid).
    public var nodes: [ClusterNode] { entries.map { ClusterNode(name: $0.nodeName, number: $0.nodeid) } }
}

extension Substring {
    fileprivate func trimmingTrailingBlanks() -> Substring {
        var text = self
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}

extension String {
    fileprivate func trimmingTrailingBlanks() -> String { String(self[...].trimmingTrailingBlanks()) }
}
