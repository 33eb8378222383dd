/// The last `limit` bytes of a stream, kept in bounded memory however much is appended.
///
/// Storage never exceeds `2 * limit` bytes: appending trims from the front once that
/// is reached, so a command that prints gigabytes costs O(limit) memory.
struct OutputTail: Sendable {
    let limit: Int
    private var bytes: [UInt8] = []
    /// All bytes ever appended.
    private(set) var totalBytes = 0

    init(limit: Int) {
        self.limit = max(0, limit)
        bytes.reserveCapacity(min(self.limit, 1 << 19) * 2)
    }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        totalBytes += chunk.count
        guard limit > 0 else { return }
        if chunk.count >= limit {
            bytes.removeAll(keepingCapacity: true)
            bytes.append(contentsOf: chunk[(chunk.count - limit)...])
            return
        }
        bytes.append(contentsOf: chunk)
        if bytes.count > 2 * limit {
            bytes.removeFirst(bytes.count - limit)
        }
    }

    mutating func append(_ array: [UInt8]) {
        array.withUnsafeBytes { append($0) }
    }

    /// The kept bytes: at most `limit`, the newest.
    var kept: ArraySlice<UInt8> {
        bytes.count > limit ? bytes[(bytes.count - limit)...] : bytes[...]
    }

    /// Bytes held in storage: at most `2 * limit`.
    var storedByteCount: Int { bytes.count }

    /// Whether bytes were dropped from the front.
    var truncated: Bool { totalBytes > kept.count }

    /// The kept bytes as text. When the front was cut, a partial UTF-8 sequence at the cut is
    /// dropped rather than shown as a replacement character; other invalid UTF-8 is repaired.
    var text: String {
        var slice = kept
        if truncated {
            var dropped = 0
            while dropped < 3, let first = slice.first, first & 0xC0 == 0x80 {
                slice = slice.dropFirst()
                dropped += 1
            }
        }
        return String(decoding: slice, as: UTF8.self)
    }
}
