import Foundation

/// The torture run's records (TortureTests.swift) and the checker that replays them. Pure: no
/// clock, no files; the unit tests feed it hand-made histories.
///
/// One line per record, in one file per node: `NODE ACTION MONOTONIC-NS WALL-NS [WHY…]`.
/// `acquire` is written before the resource is taken and `release` after it is let go, so a
/// record's interval covers the real ownership; `poweroff` is written once every process of the
/// node is gone (the driver's kill of the whole node, or the stand-in fence agent's), and ends
/// what the node held.
struct TortureRecord: Equatable, CustomStringConvertible {
    enum Action: String { case acquire, release, poweroff }
    var node: String
    var action: Action
    /// CLOCK_MONOTONIC, ns: one clock for every namespace (they share the kernel).
    var monotonic: Int64
    var wall: Int64
    var why: String = ""

    var description: String { "\(node) \(action.rawValue) at \(monotonic)\(why.isEmpty ? "" : " (\(why))")" }

    /// For a script's record (`why`: `EVENT STATE EVENT-NODE event ID members A,B`): the nodes
    /// its event knew of, the event's node and its members; nil for any other reason.
    var eventNodes: Set<String>? {
        let fields = why.split(separator: " ").map(String.init)
        guard fields.count == 7, fields[3] == "event", fields[5] == "members" else { return nil }
        return Set(fields[6].split(separator: ",").map(String.init) + [fields[2]])
    }

    /// Parses one line; nil for a line that is not a record (a torn last line of a killed node).
    init?(line: Substring) {
        let fields = line.split(separator: " ", maxSplits: 4, omittingEmptySubsequences: true)
        guard fields.count >= 4, let action = Action(rawValue: String(fields[1])), let monotonic = Int64(fields[2]),
            let wall = Int64(fields[3])
        else { return nil }
        self.init(
            node: String(fields[0]), action: action, monotonic: monotonic, wall: wall,
            why: fields.count > 4 ? String(fields[4]) : "")
    }

    init(node: String, action: Action, monotonic: Int64, wall: Int64 = 0, why: String = "") {
        self.node = node
        self.action = action
        self.monotonic = monotonic
        self.wall = wall
        self.why = why
    }
}

/// What the checker found wrong.
enum TortureViolation: Equatable, CustomStringConvertible {
    /// `second` acquired the resource at `at` while `first` held it (since `since`), and the
    /// event that made it acquire knew of `first` (a member, or the node it took over): a
    /// barrier or the fence before a takeover failed.
    case twoOwners(first: String, since: Int64, second: String, at: Int64)
    /// The same, but `first` was neither a member of the acquiring event nor its node: a node
    /// up and holding the resource outside the acquiring cluster, which never fenced it (its
    /// engine died with no engine left to fence it, it lost a merge, it stopped alone, or a
    /// cluster formed without it). hamn-events fences only nodes that leave its own cluster:
    /// the known gap of docs/decisions.md, "The torture run".
    case ownerOutsideTheCluster(first: String, since: Int64, second: String, at: Int64)
    /// A node acquired what it held already, or released what it did not hold: the model's
    /// scripts never do that, so the records are not to be trusted.
    case inconsistent(TortureRecord)
    /// Once the cluster settled, the owners were not exactly one node.
    case settledOwners([String])

    var description: String {
        switch self {
        case .twoOwners(let first, let since, let second, let at):
            "two owners: \(second) acquired at \(at) while \(first) held the resource (since \(since))"
        case .ownerOutsideTheCluster(let first, let since, let second, let at):
            "owner outside the cluster: \(second) acquired at \(at) while \(first), unknown to that event and never fenced, held the resource (since \(since))"
        case .inconsistent(let record): "inconsistent record: \(record)"
        case .settledOwners(let owners): "once settled, \(owners.count) owners: \(owners)"
        }
    }
}

enum TortureChecker {
    /// Replays `records` (any order: sorted here by monotonic time; at one instant a release or
    /// power-off comes before an acquire) and checks that the resource never had two owners at
    /// once, and, with `settled`, that exactly one node held it at the end.
    static func check(_ records: [TortureRecord], settled: Bool = true) -> [TortureViolation] {
        let ordered = records.enumerated().sorted { a, b in
            if a.element.monotonic != b.element.monotonic { return a.element.monotonic < b.element.monotonic }
            let (ra, rb) = (a.element.action == .acquire ? 1 : 0, b.element.action == .acquire ? 1 : 0)
            return ra != rb ? ra < rb : a.offset < b.offset
        }.map(\.element)
        var owners: [String: Int64] = [:]  // node -> since
        var violations: [TortureViolation] = []
        for record in ordered {
            switch record.action {
            case .acquire:
                if owners[record.node] != nil {
                    violations.append(.inconsistent(record))
                    continue
                }
                for (owner, since) in owners.sorted(by: { $0.value < $1.value }) {
                    if let known = record.eventNodes, !known.contains(owner) {
                        violations.append(
                            .ownerOutsideTheCluster(
                                first: owner, since: since, second: record.node, at: record.monotonic))
                    } else {
                        violations.append(
                            .twoOwners(first: owner, since: since, second: record.node, at: record.monotonic))
                    }
                }
                owners[record.node] = record.monotonic
            case .release:
                if owners.removeValue(forKey: record.node) == nil { violations.append(.inconsistent(record)) }
            case .poweroff:
                owners[record.node] = nil
            }
        }
        if settled, owners.count != 1 { violations.append(.settledOwners(owners.keys.sorted())) }
        return violations
    }

    /// Whether `violation` is of the known gap (an owner outside the acquiring cluster).
    static func isKnownGap(_ violation: TortureViolation) -> Bool {
        if case .ownerOutsideTheCluster = violation { true } else { false }
    }

    /// Every record of the files' text (one file per node).
    static func parse(_ texts: [String]) -> [TortureRecord] {
        texts.flatMap { $0.split(separator: "\n").compactMap(TortureRecord.init(line:)) }
    }
}
