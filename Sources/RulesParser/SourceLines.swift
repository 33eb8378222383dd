/// Walks a file's bytes line by line, without copying them: the line's byte range without its
/// line end, its 1-based number, and whether it ended in CRLF.
struct SourceLines: Sequence {
    struct Line {
        var number: Int
        /// The bytes of the line, without `\r\n` or `\n`.
        var start: Int
        var end: Int
        /// The `\r` of a CRLF line end was stripped.
        var hadCarriageReturn: Bool
    }

    let bytes: UnsafeBufferPointer<UInt8>

    func makeIterator() -> Iterator { Iterator(bytes: bytes) }

    struct Iterator: IteratorProtocol {
        let bytes: UnsafeBufferPointer<UInt8>
        var position = 0
        var number = 0

        mutating func next() -> Line? {
            // The newline that ends the last line starts no further line.
            guard position < bytes.count else { return nil }
            number += 1
            let start = position
            var end = start
            if let base = bytes.baseAddress,
                let found = memchr(base + start, 0x0A, bytes.count - start)
            {
                end = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                position = end + 1
            } else {
                end = bytes.count
                position = end
            }
            var hadCR = false
            if end > start, bytes[end - 1] == 0x0D {
                end -= 1
                hadCR = true
            }
            return Line(number: number, start: start, end: end, hadCarriageReturn: hadCR)
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

@inline(__always)
func isBlank(_ b: UInt8) -> Bool {
    b == 0x20 || b == 0x09 || b == 0x0B || b == 0x0C
}
