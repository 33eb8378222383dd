/// The size a POSIX extended regular expression takes once glibc's `regcomp` has expanded it,
/// estimated before `regcomp` sees it, so that a short pattern cannot cost gigabytes.
///
/// glibc copies the operand of every bounded repetition once per allowed occurrence
/// (`X{1,100}` holds 100 copies of `X`), so nested repetitions multiply:
/// `((a{1,100}){1,100}){1,100}`, 27 bytes, is a million positions and 1.2 GB of memory;
/// and its epsilon closures can grow with the square of the positions. The estimate counts
/// positions the way `regcomp` builds them (every atom, group, alternative and operator, the
/// operand of `{m,n}` times `n`, of `{m,}` times `m + 1`, of `+` twice), and apart the optional
/// and alternative branches among them, and refuses a pattern over ``positionLimit`` or
/// ``branchLimit``, as PostgreSQL refuses one that "is too complex". At the limits, `regcomp`
/// takes a few tens of megabytes at most, whatever the shape (docs/decisions.md, Predicates).
public enum RegularExpressionCost {
    /// The most positions a pattern may expand to (about 220 bytes each: 100,000 is 22 MB).
    public static let positionLimit = 100_000
    /// The most optional or alternative branches (`?`, `*`, `|`, the optional copies of
    /// `{m,n}`) it may expand to: their epsilon closures grow with the square of their number
    /// (`a{0,3990}` costs 127 MB; 1,000 of them at most about 10 MB).
    public static let branchLimit = 1000

    /// What a pattern expands to.
    public struct Cost: Sendable, Hashable {
        public var positions: Int
        public var branches: Int
    }

    /// Why `pattern` is refused, nil when it is within both limits. Syntax errors are left to
    /// `regcomp`, which names them.
    public static func problem(_ pattern: String) -> String? {
        let cost = estimate(pattern)
        func shown(_ count: Int) -> String { count >= cap ? "more than a trillion" : "\(count)" }
        if cost.branches > branchLimit {
            return
                "too complex: it expands to \(shown(cost.branches)) optional or alternative branches, more than \(branchLimit) (nested or large repetition counts multiply); repeat less"
        }
        if cost.positions > positionLimit {
            return
                "too complex: it expands to \(shown(cost.positions)) positions, more than \(positionLimit); shorten it or repeat less"
        }
        return nil
    }

    /// Estimates saturate here: enough to say "too complex", small enough never to overflow.
    static let cap = 1 << 40

    /// The positions and branches `pattern` expands to, each at most ``cap``.
    public static func estimate(_ pattern: String) -> Cost {
        /// One level of parentheses: the pieces closed so far and the last piece, which a
        /// repetition operator applies to.
        struct Level {
            var total = Cost(positions: 0, branches: 0)
            var last = Cost(positions: 0, branches: 0)
            mutating func add(_ piece: Cost) {
                total = total + last
                last = piece
            }
        }
        let atom = Cost(positions: 1, branches: 0)
        let bytes = Array(pattern.utf8)
        var levels = [Level()]
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            index += 1
            let top = levels.count - 1
            switch byte {
            case UInt8(ascii: "\\"):
                if index < bytes.count { index += 1 }
                levels[top].add(atom)
            case UInt8(ascii: "["):
                index = bracketEnd(bytes, from: index)
                levels[top].add(atom)
            case UInt8(ascii: "("):
                levels.append(Level())
            case UInt8(ascii: ")") where levels.count > 1:
                let group = levels.removeLast()
                levels[top - 1].add(group.total + group.last + Cost(positions: 2, branches: 0))
            case UInt8(ascii: "|"):
                levels[top].total = levels[top].total + levels[top].last + Cost(positions: 1, branches: 1)
                levels[top].last = Cost(positions: 0, branches: 0)
            case UInt8(ascii: "*"), UInt8(ascii: "?"):
                levels[top].last = levels[top].last + Cost(positions: 1, branches: 1)
            case UInt8(ascii: "+"):
                // glibc makes `X+` of `XX*`.
                levels[top].last = levels[top].last * 2 + Cost(positions: 1, branches: 1)
            case UInt8(ascii: "{"):
                guard let (mandatory, optional, end) = interval(bytes, from: index) else {
                    levels[top].add(atom)
                    continue
                }
                index = end
                // `X{m,n}`: m copies of X, then n - m optional ones (`X{m,}`: a starred one).
                let copies = sum(max(mandatory, 1), optional)
                levels[top].last = levels[top].last * copies + Cost(positions: 1, branches: optional)
            default:
                levels[top].add(atom)
            }
        }
        // Groups left open: regcomp refuses them, but count what they hold.
        var cost = Cost(positions: 0, branches: 0)
        for level in levels { cost = cost + level.total + level.last }
        return cost
    }

    /// The index after the `]` closing a bracket expression that starts at `start` (after its
    /// `[`): a leading `^`, a `]` first in the list, and `[:class:]`, `[.x.]`, `[=x=]` are part of it.
    private static func bracketEnd(_ bytes: [UInt8], from start: Int) -> Int {
        var index = start
        if index < bytes.count, bytes[index] == UInt8(ascii: "^") { index += 1 }
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1 }
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "]") { return index + 1 }
            if byte == UInt8(ascii: "["), index + 1 < bytes.count,
                [UInt8(ascii: ":"), UInt8(ascii: "."), UInt8(ascii: "=")].contains(bytes[index + 1])
            {
                let kind = bytes[index + 1]
                var scan = index + 2
                while scan + 1 < bytes.count, !(bytes[scan] == kind && bytes[scan + 1] == UInt8(ascii: "]")) {
                    scan += 1
                }
                index = scan + 2
                continue
            }
            index += 1
        }
        return bytes.count
    }

    /// `{m}`, `{m,}`, `{m,n}` or `{,n}` starting after its `{`: how many mandatory and
    /// optional copies of the operand regcomp makes, and the index after the `}`; nil when it
    /// is not an interval.
    private static func interval(_ bytes: [UInt8], from start: Int) -> (mandatory: Int, optional: Int, end: Int)? {
        var index = start
        func number() -> Int? {
            var value: Int?
            while index < bytes.count, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                value = min(cap, (value ?? 0) * 10 + Int(bytes[index] - UInt8(ascii: "0")))
                index += 1
            }
            return value
        }
        let low = number()
        var high = low
        var bounded = true
        if index < bytes.count, bytes[index] == UInt8(ascii: ",") {
            index += 1
            high = number()
            bounded = high != nil
        }
        guard index < bytes.count, bytes[index] == UInt8(ascii: "}"), low != nil || high != nil else { return nil }
        let mandatory = low ?? 0
        let optional = bounded ? max(0, (high ?? 0) - mandatory) : 1
        return (mandatory, optional, index + 1)
    }
}

extension RegularExpressionCost.Cost {
    static func + (a: Self, b: Self) -> Self {
        Self(positions: sum(a.positions, b.positions), branches: sum(a.branches, b.branches))
    }

    static func * (a: Self, factor: Int) -> Self {
        Self(positions: product(a.positions, factor), branches: product(a.branches, factor))
    }
}

private func sum(_ a: Int, _ b: Int) -> Int {
    min(RegularExpressionCost.cap, a + b)
}

private func product(_ a: Int, _ b: Int) -> Int {
    let (value, overflow) = a.multipliedReportingOverflow(by: b)
    return overflow ? RegularExpressionCost.cap : min(RegularExpressionCost.cap, value)
}
