#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What was made of a byte string, kept for the next time the same bytes come: a rules file
/// names the same few `.rp` paths, variables and instance vectors over and over, and making a
/// `String` (an allocation) or parsing each anew was much of `validate`'s time on files of
/// small definitions. A direct-mapped table of `slots` entries, keyed by an FNV-1a hash of the
/// bytes and checked by comparing them: a collision only costs the work the cache saves.
struct ByteKeyCache<Value> {
    private struct Entry {
        var hash: UInt64
        var key: [UInt8]
        var value: Value
    }

    private var entries: [Entry?]
    private let mask: Int

    /// `slots`: a power of two.
    init(slots: Int = 256) {
        precondition(slots > 0 && slots & (slots - 1) == 0, "slots must be a power of two")
        entries = Array(repeating: nil, count: slots)
        mask = slots - 1
    }

    /// FNV-1a of the bytes, from a basis changed by `salt`.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>, salt: UInt64 = 0) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ salt
        for byte in bytes {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return hash
    }

    /// The value made of `bytes` (with `salt`, for values that depend on more than the bytes),
    /// made by `make` when not kept.
    mutating func value(
        for bytes: UnsafeBufferPointer<UInt8>, salt: UInt64 = 0, make: (UnsafeBufferPointer<UInt8>) -> Value
    ) -> Value {
        let hash = Self.hash(bytes, salt: salt)
        let slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        if let entry = entries[slot], entry.hash == hash, entry.key.count == bytes.count,
            entry.key.withUnsafeBufferPointer({ key in
                bytes.isEmpty || memcmp(key.baseAddress!, bytes.baseAddress!, bytes.count) == 0
            })
        {
            return entry.value
        }
        let value = make(bytes)
        entries[slot] = Entry(hash: hash, key: Array(bytes), value: value)
        return value
    }
}
