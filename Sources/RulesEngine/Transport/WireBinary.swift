import RecoveryPrograms

/// The binary body of `segmentDone`, the message every participant multicasts at every barrier
/// (see `WireFormat`): fixed-width little-endian integers, IEEE doubles by their bits, strings
/// as a 32-bit byte count and UTF-8. Decoding checks every count against the bytes that are
/// left, every string for valid UTF-8, every flag and tag for a known value, and that nothing
/// is left over: a malformed body is an error, never a crash or an allocation the sender chose.
enum SegmentDoneBody {
    static func encode(eventID: Int, segment: Int, results: [CommandResult], into bytes: inout [UInt8]) {
        var writer = ByteWriter(bytes: bytes)
        bytes = []  // the writer's copy is then the only one: appended to in place
        writer.integer(Int64(eventID))
        writer.integer(Int64(segment))
        writer.integer(UInt32(results.count))
        for result in results {
            writer.string(result.command)
            writer.integer(Int64(result.line))
            switch result.termination {
            case .exited(let status):
                writer.integer(UInt8(0))
                writer.integer(status)
            case .signaled(let signal):
                writer.integer(UInt8(1))
                writer.integer(signal)
            case .timedOut:
                writer.integer(UInt8(2))
            case .couldNotStart(let why):
                writer.integer(UInt8(3))
                writer.string(why)
            }
            writer.integer(UInt8(result.accepted ? 1 : 0))
            writer.integer(result.duration.bitPattern)
            writer.string(result.outputTail)
            if let endedAt = result.endedAt {
                writer.integer(UInt8(1))
                writer.integer(endedAt.bitPattern)
            } else {
                writer.integer(UInt8(0))
            }
        }
        bytes = writer.bytes
    }

    static func decode(_ bytes: ArraySlice<UInt8>) throws(ByteReader.Failure) -> ClusterMessage {
        var reader = ByteReader(bytes: bytes)
        let eventID = try reader.int()
        let segment = try reader.int()
        let count = Int(try reader.integer(UInt32.self))
        // Each result takes at least 27 bytes: a sender cannot make this reserve more than it sent.
        guard count <= reader.remaining / 27 else {
            throw ByteReader.Failure(description: "\(count) results in \(reader.remaining) bytes")
        }
        var results: [CommandResult] = []
        results.reserveCapacity(count)
        for _ in 0..<count {
            let command = try reader.string("command")
            let line = try reader.int()
            let termination: Termination
            switch try reader.integer(UInt8.self) {
            case 0: termination = .exited(try reader.integer(Int32.self))
            case 1: termination = .signaled(try reader.integer(Int32.self))
            case 2: termination = .timedOut
            case 3: termination = .couldNotStart(try reader.string("reason"))
            case let tag: throw ByteReader.Failure(description: "unknown termination \(tag)")
            }
            let accepted = try reader.flag("accepted")
            let duration = Double(bitPattern: try reader.integer(UInt64.self))
            let outputTail = try reader.string("output")
            let endedAt = try reader.flag("ended-at") ? Double(bitPattern: try reader.integer(UInt64.self)) : nil
            results.append(
                CommandResult(
                    command: command, line: line, termination: termination, accepted: accepted, duration: duration,
                    outputTail: outputTail, endedAt: endedAt))
        }
        guard reader.remaining == 0 else {
            throw ByteReader.Failure(description: "\(reader.remaining) bytes after the last result")
        }
        return .segmentDone(eventID: eventID, segment: segment, results: results)
    }
}

struct ByteWriter {
    var bytes: [UInt8]

    mutating func integer<T: FixedWidthInteger>(_ value: T) {
        withUnsafeBytes(of: value.littleEndian) { bytes.append(contentsOf: $0) }
    }

    mutating func string(_ text: String) {
        let utf8 = text.utf8
        integer(UInt32(utf8.count))
        bytes.append(contentsOf: utf8)
    }
}

struct ByteReader {
    struct Failure: Error, CustomStringConvertible, Equatable {
        var description: String
    }

    private let bytes: ArraySlice<UInt8>
    private var position: Int

    init(bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        position = bytes.startIndex
    }

    var remaining: Int { bytes.endIndex - position }

    mutating func integer<T: FixedWidthInteger>(_: T.Type) throws(Failure) -> T {
        let size = MemoryLayout<T>.size
        guard remaining >= size else {
            throw Failure(description: "ends after \(position - bytes.startIndex) bytes, inside a \(size)-byte field")
        }
        var value = T.zero
        for offset in 0..<size {
            value |= T(truncatingIfNeeded: bytes[position + offset]) << (offset * 8)
        }
        position += size
        return value
    }

    /// An Int64 that fits this platform's Int.
    mutating func int() throws(Failure) -> Int {
        let value = try integer(Int64.self)
        guard let int = Int(exactly: value) else { throw Failure(description: "integer \(value) out of range") }
        return int
    }

    mutating func flag(_ name: String) throws(Failure) -> Bool {
        switch try integer(UInt8.self) {
        case 0: return false
        case 1: return true
        case let other: throw Failure(description: "\(name): \(other) is not 0 or 1")
        }
    }

    mutating func string(_ name: String) throws(Failure) -> String {
        let count = Int(try integer(UInt32.self))
        guard count <= remaining else {
            throw Failure(description: "\(name): \(count) bytes announced, \(remaining) left")
        }
        let slice = bytes[position..<position + count]
        guard let text = String(validating: slice, as: UTF8.self) else {
            throw Failure(description: "\(name): not UTF-8")
        }
        position += count
        return text
    }
}
