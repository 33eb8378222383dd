#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What was made of a byte string, kept for the next time the same bytes come: a rules file
/// names the same few `.rp` paths, variables, instance vectors and predicates over and over,
/// and making a `String` (an allocation) or parsing each anew was much of `validate`'s time on
/// files of small definitions. A direct-mapped table of `slots` entries, keyed by a hash of the
/// bytes and a salt, and checked by comparing both: a collision only costs the work the cache
/// saves.
///
/// The keys are not copied: the bytes given must stay where they are for the cache's life
/// (they are the buffer of the file being parsed).
struct ByteKeyCache<Value> {
    private struct Entry {
        var hash: UInt64
        var salt: UInt64
        var key: UnsafeBufferPointer<UInt8>
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

    /// The slot of `bytes` with `salt`, its hash and the value kept there for them, if any.
    private func find(_ bytes: UnsafeBufferPointer<UInt8>, _ salt: UInt64) -> (slot: Int, hash: UInt64, value: Value?) {
        let hash = hashBytes(bytes, salt: salt)
        let slot = Int(truncatingIfNeeded: hash ^ (hash >> 29)) & mask
        guard let entry = entries[slot], entry.hash == hash, entry.salt == salt, entry.key.count == bytes.count,
            bytes.isEmpty || memcmp(entry.key.baseAddress!, bytes.baseAddress!, bytes.count) == 0
        else { return (slot, hash, nil) }
        return (slot, hash, entry.value)
    }

    /// The value kept for `bytes` with `salt` (for values that depend on more than the bytes),
    /// nil when there is none.
    func cached(for bytes: UnsafeBufferPointer<UInt8>, salt: UInt64 = 0) -> Value? {
        find(bytes, salt).value
    }

    /// Keeps `value` for `bytes` with `salt`, in place of what shared its slot.
    mutating func store(_ value: Value, for bytes: UnsafeBufferPointer<UInt8>, salt: UInt64 = 0) {
        let (slot, hash, _) = find(bytes, salt)
        entries[slot] = Entry(hash: hash, salt: salt, key: bytes, value: value)
    }

    /// The value made of `bytes` (with `salt`), made by `make` when not kept.
    mutating func value(
        for bytes: UnsafeBufferPointer<UInt8>, salt: UInt64 = 0, make: (UnsafeBufferPointer<UInt8>) -> Value
    ) -> Value {
        valueNotingKept(for: bytes, salt: salt, make: make).value
    }

    /// As `value(for:salt:make:)`, with whether the value was kept from an earlier call (the
    /// same bytes came before); not kept does not mean they did not: another may have taken
    /// their slot since.
    mutating func valueNotingKept(
        for bytes: UnsafeBufferPointer<UInt8>, salt: UInt64 = 0, make: (UnsafeBufferPointer<UInt8>) -> Value
    ) -> (value: Value, kept: Bool) {
        let (slot, hash, kept) = find(bytes, salt)
        if let kept { return (kept, true) }
        let value = make(bytes)
        entries[slot] = Entry(hash: hash, salt: salt, key: bytes, value: value)
        return (value, false)
    }
}
