/// Which wire version a cluster speaks: the highest one every member of the CPG group speaks.
///
/// Engines announce their versions in their `hello` (`EngineInfo.versions`); an engine of an
/// earlier build announces none, and its `software` says them (`hamn-events wire 2,3`), or
/// else it speaks 2. A group member that has not said hello (a joiner, a foreign process)
/// counts as speaking 2 only: it may be an engine of an earlier build. `EngineMembership`
/// computes the agreement after each configuration change and hello, at the same place in the
/// agreed order on every engine, and the transport sends nothing that needs a higher version
/// (`WireFormat.encode(_:agreed:)`): no engine is sent a version it cannot read. Pure.
public struct WireAgreement: Sendable, Hashable {
    /// One member of the group: an engine (its node's name), or a process that has not said who
    /// it is (`name` nil).
    public struct Member: Sendable, Hashable {
        public var address: CPGAddress
        public var name: String?
        public var versions: [Int]

        public init(address: CPGAddress, name: String?, versions: [Int]) {
            self.address = address
            self.name = name
            self.versions = versions
        }

        /// `node n3`, or `group member 2:1234` for one that has not said who it is.
        public var described: String { name.map { "node \($0)" } ?? "group member \(address)" }
    }

    /// The version a member that has not said which it speaks is taken to speak.
    public static let oldest = 2

    public var version: Int
    /// In the group's order.
    public var members: [Member]

    /// The highest version every member speaks; `oldest` when there is none (or no member).
    public init(members: [Member]) {
        self.members = members
        var common = Set(members.first?.versions ?? [Self.oldest])
        for member in members.dropFirst() { common.formIntersection(member.versions) }
        version = common.max() ?? Self.oldest
    }

    /// What `info` says it speaks: `versions`, else what `software` says, else `oldest`.
    public static func versions(of info: EngineInfo) -> [Int] {
        info.versions ?? versions(software: info.software) ?? [oldest]
    }

    /// `hamn-events wire 2,3` -> [2, 3]; nil when the text names no versions.
    public static func versions(software: String) -> [Int]? {
        let prefix = "hamn-events wire "
        guard software.hasPrefix(prefix) else { return nil }
        let list = software.dropFirst(prefix.count).prefix { $0 != " " }
        let numbers = list.split(separator: ",").compactMap { Int($0) }
        return numbers.isEmpty ? nil : numbers.sorted()
    }

    /// The members that do not speak `version`.
    public func lacking(_ version: Int) -> [Member] {
        members.filter { !$0.versions.contains(version) }
    }

    /// `wire version 3 agreed (members n1 n2 n3)`; group members that have not said who they are
    /// are counted after the engines.
    public var summary: String {
        let names = members.compactMap(\.name).sorted()
        let unnamed = members.count - names.count
        var text = "wire version \(version) agreed (members \(names.joined(separator: " "))"
        if unnamed > 0 {
            text += names.isEmpty ? "" : ", "
            text += "\(unnamed) group member\(unnamed == 1 ? "" : "s") not yet announced"
        }
        return text + ")"
    }

    /// Why `version` cannot be used now, or nil when it can: `not every member speaks wire 3
    /// (node n3 speaks 2): upgrade every node first`.
    public func refusal(needing version: Int) -> String? {
        let lacking = lacking(version)
        guard !lacking.isEmpty else { return nil }
        let who = lacking.map { member in
            member.name == nil
                ? "\(member.described) has not said which it speaks"
                : "\(member.described) speaks \(member.versions.map(String.init).joined(separator: ","))"
        }
        return "not every member speaks wire \(version) (\(who.joined(separator: "; "))): upgrade every node first"
    }
}
