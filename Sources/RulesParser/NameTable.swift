#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Hashes bytes eight at a time (a multiply-xorshift mix of each word): the names, paths and
/// predicates a rules file repeats are hashed once per definition, so a byte-at-a-time hash
/// was a visible share of `validate` on files of small definitions.
@inline(__always)
func hashBytes(_ bytes: UnsafeBufferPointer<UInt8>, salt: UInt64 = 0) -> UInt64 {
    var hash: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ salt ^ UInt64(truncatingIfNeeded: bytes.count)
    guard let base = bytes.baseAddress.map(UnsafeRawPointer.init) else { return mix(hash) }
    var offset = 0
    let count = bytes.count
    while count - offset >= 8 {
        hash = mix(hash ^ base.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        offset += 8
    }
    if offset < count {
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while offset < count {
            tail |= UInt64(base.load(fromByteOffset: offset, as: UInt8.self)) << shift
            shift += 8
            offset += 1
        }
        hash = mix(hash ^ tail)
    }
    return hash
}

@inline(__always)
private func mix(_ value: UInt64) -> UInt64 {
    var x = value &* 0xBF58_476D_1CE4_E5B9
    x ^= x >> 31
    x = x &* 0x94D0_49BB_1331_11EB
    return x ^ (x >> 29)
}

/// R005 and R006: the states each event name is defined with, the names kept as byte ranges
/// of the file being parsed (never as `String`s: a name is only made a `String` for a
/// message). Open addressing over a table sized once for the most names the file can hold.
struct NameTable {
    /// The states a name is defined with, each with the line of its first definition, in file
    /// order: `first`, then those in `extra[more]` (for a built-in trigger's states and for
    /// names R006 reports).
    private struct Entry {
        var start: Int
        var count: Int
        var firstState: Int
        var firstLine: Int
        var more: Int32
    }

    /// Each slot: the entry's index plus one (0: free) and 32 bits of its hash.
    private var slots: [(index: UInt32, tag: UInt32)]
    private var entries: [Entry] = []
    private var extra: [[(state: Int, line: Int)]] = []
    private let mask: Int
    private let bytes: UnsafeBufferPointer<UInt8>
    /// The `most` it was made for.
    let expected: Int

    /// Room for `most` names (at most half full): no more may be entered. `bytes` (the file)
    /// must outlive the table.
    init(bytes: UnsafeBufferPointer<UInt8>, most: Int) {
        var capacity = 16
        while capacity < most * 2 { capacity <<= 1 }
        slots = Array(repeating: (0, 0), count: capacity)
        mask = capacity - 1
        entries.reserveCapacity(most)
        self.bytes = bytes
        expected = most
    }

    enum Entered {
        case first
        case duplicate(of: Int)
        case another(besides: (state: Int, line: Int))
    }

    /// What a definition of the name in `start..<end` with `state` at `line` is: the name's
    /// first, a duplicate of the state first defined at the line returned (R005), or a state
    /// beside the first.
    mutating func enter(start: Int, end: Int, state: Int, line: Int) -> Entered {
        let name = UnsafeBufferPointer(rebasing: bytes[start..<end])
        let hash = hashBytes(name)
        let tag = UInt32(truncatingIfNeeded: hash >> 32)
        var slot = Int(truncatingIfNeeded: hash) & mask
        while true {
            let (index, slotTag) = slots[slot]
            if index == 0 { break }
            if slotTag == tag {
                let i = Int(index) - 1
                if entries[i].count == name.count, same(entries[i].start, name) {
                    return enterAgain(i, state, line)
                }
            }
            slot = (slot + 1) & mask
        }
        precondition(entries.count < expected, "more names than the table was made for")
        entries.append(Entry(start: start, count: end - start, firstState: state, firstLine: line, more: -1))
        slots[slot] = (UInt32(entries.count), tag)
        return .first
    }

    private func same(_ start: Int, _ name: UnsafeBufferPointer<UInt8>) -> Bool {
        guard let base = bytes.baseAddress, let other = name.baseAddress else { return true }
        return memcmp(base + start, other, name.count) == 0
    }

    private mutating func enterAgain(_ i: Int, _ state: Int, _ line: Int) -> Entered {
        let entry = entries[i]
        if entry.firstState == state { return .duplicate(of: entry.firstLine) }
        if entry.more >= 0 {
            if let earlier = extra[Int(entry.more)].first(where: { $0.state == state }) {
                return .duplicate(of: earlier.line)
            }
            extra[Int(entry.more)].append((state, line))
        } else {
            entries[i].more = Int32(extra.count)
            extra.append([(state, line)])
        }
        return .another(besides: (entry.firstState, entry.firstLine))
    }
}
