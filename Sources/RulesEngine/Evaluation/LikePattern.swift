/// An SQL `LIKE` pattern: `%` matches any run of characters (none included), `_` exactly one
/// character (one Unicode scalar), every other character itself, case sensitively. There is no
/// escape character: `%` and `_` are always wildcards.
///
/// Matching works on UTF-8 bytes with the classic single-backtrack wildcard algorithm: at most
/// O(subject × pattern) steps, never the exponential backtracking of a naive recursive matcher.
/// The common shapes (`abc`, `abc%`, `%abc`, `%abc%`, `%`) take a direct path.
struct LikePattern: Sendable, Hashable {
    /// Pattern bytes, `one` for `_` and `any` for a run of `%`.
    private let tokens: [UInt16]
    private let shape: Shape

    private static let one: UInt16 = 0x100
    private static let any: UInt16 = 0x101

    private enum Shape: Sendable, Hashable {
        case everything
        case exactly([UInt8])
        case prefix([UInt8])
        case suffix([UInt8])
        case contains([UInt8])
        case general
    }

    init(_ pattern: String) {
        var tokens: [UInt16] = []
        for byte in pattern.utf8 {
            switch byte {
            case 0x25:  // %
                if tokens.last != Self.any { tokens.append(Self.any) }
            case 0x5F: tokens.append(Self.one)  // _
            default: tokens.append(UInt16(byte))
            }
        }
        self.tokens = tokens
        self.shape = Self.shape(of: tokens)
    }

    private static func shape(of tokens: [UInt16]) -> Shape {
        guard !tokens.contains(one) else { return .general }
        let anyCount = tokens.count { $0 == any }
        let literal = tokens.filter { $0 != any }.map { UInt8(truncatingIfNeeded: $0) }
        switch anyCount {
        case 0: return .exactly(literal)
        case 1 where tokens.count == 1: return .everything
        case 1 where tokens.last == any: return .prefix(literal)
        case 1 where tokens.first == any: return .suffix(literal)
        case 2 where tokens.first == any && tokens.last == any: return .contains(literal)
        default: return .general
        }
    }

    func matches(_ subject: String) -> Bool {
        if case .everything = shape { return true }
        var subject = subject
        return subject.withUTF8 { bytes in
            switch shape {
            case .everything: true
            case .exactly(let literal): bytes.elementsEqual(literal)
            case .prefix(let literal):
                bytes.count >= literal.count && bytes.prefix(literal.count).elementsEqual(literal)
            case .suffix(let literal):
                bytes.count >= literal.count && bytes.suffix(literal.count).elementsEqual(literal)
            case .contains(let literal): Self.contains(bytes, literal)
            case .general: Self.general(bytes, tokens)
            }
        }
    }

    private static func contains(_ bytes: UnsafeBufferPointer<UInt8>, _ literal: [UInt8]) -> Bool {
        guard literal.count <= bytes.count else { return false }
        guard let first = literal.first else { return true }
        var start = 0
        while start + literal.count <= bytes.count {
            if bytes[start] == first, bytes[start..<start + literal.count].elementsEqual(literal) { return true }
            start += 1
        }
        return false
    }

    /// The length of the UTF-8 sequence a lead byte starts (1 for a stray continuation byte),
    /// never past the end.
    @inline(__always)
    private static func scalarLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int {
        let lead = bytes[index]
        let length = lead < 0xC0 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4
        return min(length, bytes.count - index)
    }

    /// Greedy matching that remembers only the last `%`: on a mismatch the last `%` takes one
    /// more character and matching resumes after it.
    private static func general(_ bytes: UnsafeBufferPointer<UInt8>, _ tokens: [UInt16]) -> Bool {
        var i = 0
        var p = 0
        var star = -1
        var mark = 0
        while i < bytes.count {
            if p < tokens.count {
                let token = tokens[p]
                if token == any {
                    star = p
                    mark = i
                    p += 1
                    continue
                }
                if token == one {
                    i += scalarLength(bytes, at: i)
                    p += 1
                    continue
                }
                if UInt8(truncatingIfNeeded: token) == bytes[i] {
                    i += 1
                    p += 1
                    continue
                }
            }
            guard star >= 0 else { return false }
            mark += scalarLength(bytes, at: mark)
            i = mark
            p = star + 1
        }
        while p < tokens.count, tokens[p] == any { p += 1 }
        return p == tokens.count
    }
}
