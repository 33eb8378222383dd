/// A pcp/pexec-style node range as `ha-cmd`, `recovery` and `maintenance` take it:
/// `1-16`, `1,2,3,4`, `1-4,7`, `aixmn1,aixmn2`, `node1-node4`, `all`.
public struct NodeRange: Sendable, Hashable, CustomStringConvertible {
    public enum Item: Sendable, Hashable {
        case all
        case numbers(ClosedRange<Int>)
        case name(String)
        /// `node1-node4`: the names `prefix` followed by each number of the range.
        case names(prefix: String, ClosedRange<Int>)
    }

    public var items: [Item]
    public let text: String

    public var description: String { text }

    public struct SyntaxError: Error, Sendable, Hashable, CustomStringConvertible {
        public var offset: Int
        public var message: String
        public var description: String { message }
    }

    /// A node as the cluster configuration lists it.
    public struct Node: Sendable, Hashable {
        public var name: String
        public var number: Int

        public init(name: String, number: Int) {
            self.name = name
            self.number = number
        }
    }

    /// The largest node number a range may name (a node's number is at most this too).
    public static let largestNumber = Int(Int32.max)

    public static func parse(_ text: String) throws(SyntaxError) -> NodeRange {
        var items: [Item] = []
        var offset = 0
        let pieces = text.split(separator: ",", omittingEmptySubsequences: false)
        for piece in pieces {
            defer { offset += piece.utf8.count + 1 }
            let item = piece.trimmingBlanks()
            if item.isEmpty {
                throw SyntaxError(offset: offset, message: "empty element in node range \(text.quotedForMessage())")
            }
            if item == "all" {
                items.append(.all)
                continue
            }
            if let number = Int(item), number >= 0 {
                guard number <= Self.largestNumber else {
                    throw SyntaxError(offset: offset, message: "node number \(number) is above \(Self.largestNumber)")
                }
                items.append(.numbers(number...number))
                continue
            }
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false)
            if bounds.count == 2 {
                if let lo = Int(bounds[0]), let hi = Int(bounds[1]), lo >= 0 {
                    guard hi <= Self.largestNumber else {
                        throw SyntaxError(offset: offset, message: "node number \(hi) is above \(Self.largestNumber)")
                    }
                    guard lo <= hi else {
                        throw SyntaxError(
                            offset: offset, message: "node range \(item.quotedForMessage()) runs backwards")
                    }
                    items.append(.numbers(lo...hi))
                    continue
                }
                let (prefix1, lo) = splitNumericSuffix(bounds[0])
                let (prefix2, hi) = splitNumericSuffix(bounds[1])
                if let lo, let hi, !prefix1.isEmpty, prefix1 == prefix2, isName(prefix1) {
                    guard lo <= hi else {
                        throw SyntaxError(
                            offset: offset, message: "node range \(item.quotedForMessage()) runs backwards")
                    }
                    items.append(.names(prefix: prefix1, lo...hi))
                    continue
                }
            }
            guard isName(item) else {
                throw SyntaxError(
                    offset: offset,
                    message: "\(item.quotedForMessage()) is not a node number, a range like 1-4, a node name or all")
            }
            items.append(.name(item))
        }
        return NodeRange(items: items, text: text)
    }

    /// The nodes of `nodes` this range selects, in the order of `nodes`, and the names or
    /// numbers of the range that matched no node.
    public func resolve(in nodes: [Node]) -> (selected: [Node], unmatched: [String]) {
        var selected = Set<Node>()
        var unmatched: [String] = []
        for item in items {
            let hits: [Node]
            switch item {
            case .all: hits = nodes
            case .numbers(let range): hits = nodes.filter { range.contains($0.number) }
            case .name(let name): hits = nodes.filter { $0.name == name }
            case .names(let prefix, let range):
                hits = nodes.filter { node in
                    let (p, n) = NodeRange.splitNumericSuffix(Substring(node.name))
                    return p == prefix && n.map(range.contains) == true
                }
            }
            if hits.isEmpty {
                switch item {
                case .all: break
                case .numbers(let r):
                    unmatched.append(
                        r.lowerBound == r.upperBound ? "\(r.lowerBound)" : "\(r.lowerBound)-\(r.upperBound)")
                case .name(let name): unmatched.append(name)
                case .names(let p, let r): unmatched.append("\(p)\(r.lowerBound)-\(p)\(r.upperBound)")
                }
            }
            selected.formUnion(hits)
        }
        return (nodes.filter(selected.contains), unmatched)
    }

    private static func splitNumericSuffix(_ text: Substring) -> (String, Int?) {
        let digits = text.reversed().prefix { $0.isASCII && $0.isNumber }
        guard !digits.isEmpty, digits.count <= 9 else { return (String(text), nil) }
        return (String(text.dropLast(digits.count)), Int(String(digits.reversed())))
    }

    private static func isName(_ text: some StringProtocol) -> Bool {
        guard let first = text.first, first.isASCII, first.isLetter || first == "_" else { return false }
        return text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" || $0 == ".") }
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    package func trimmingBlanks() -> String {
        var view = Substring(self)
        while let first = view.first, first == " " || first == "\t" { view = view.dropFirst() }
        while let last = view.last, last == " " || last == "\t" { view = view.dropLast() }
        return String(view)
    }
}
