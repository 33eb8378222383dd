import Foundation

/// A JSON document written directly as UTF-8 bytes: the bytes `JSONEncoder` writes with
/// `.sortedKeys`, `.withoutEscapingSlashes` and snake-case keys, for the documents the web view
/// renders several times a second (`StatusJSON`). `JSONEncoder` took about 17 ms for a status
/// of 1,000 instances with their sparklines, enough CPU on a 2-core node to delay a sample's
/// predicate (`hamn-bench service --scrape-rate`); this takes well under a millisecond.
/// The caller writes the keys of each object in sorted order; `JSONTextTests` holds every
/// document to `JSONEncoder`'s output.
struct JSONText {
    private(set) var bytes: [UInt8] = []
    /// Whether the innermost open object or array has a member yet (a comma goes before the next).
    private var started: [Bool] = []

    init(capacity: Int = 4096) {
        bytes.reserveCapacity(capacity)
    }

    var text: String { String(decoding: bytes, as: UTF8.self) }

    // MARK: Containers

    mutating func object(_ body: (inout JSONText) -> Void) {
        open(UInt8(ascii: "{"))
        body(&self)
        close(UInt8(ascii: "}"))
    }

    mutating func array(_ body: (inout JSONText) -> Void) {
        open(UInt8(ascii: "["))
        body(&self)
        close(UInt8(ascii: "]"))
    }

    /// The next member's key, in an object (`name` is written as is: ASCII, no escapes).
    mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        raw("\":")
        // The value follows the colon without a comma.
        started[started.count - 1] = false
    }

    /// Where the next array element or member value starts: a comma after the first.
    private mutating func separate() {
        guard let last = started.last else { return }
        if last { bytes.append(UInt8(ascii: ",")) }
        started[started.count - 1] = true
    }

    private mutating func open(_ byte: UInt8) {
        separate()
        bytes.append(byte)
        started.append(false)
    }

    private mutating func close(_ byte: UInt8) {
        started.removeLast()
        bytes.append(byte)
    }

    // MARK: Values

    mutating func string(_ value: String) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex: [UInt8] = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)],
                    hex[Int(byte & 0xF)],
                ])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    mutating func string(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    mutating func int(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// As `JSONEncoder` writes a `Double`: its shortest description, without a trailing `.0`.
    /// A value that is not finite (which `JSONEncoder` refuses, failing the whole document) is
    /// `null`.
    mutating func double(_ value: Double) {
        guard value.isFinite else { return null() }
        separate()
        let text = value.description
        if text.hasSuffix(".0") {
            bytes.append(contentsOf: text.utf8.dropLast(2))
        } else {
            bytes.append(contentsOf: text.utf8)
        }
    }

    mutating func bool(_ value: Bool) {
        separate()
        raw(value ? "true" : "false")
    }

    mutating func null() {
        separate()
        raw("null")
    }

    private mutating func raw(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    mutating func strings(_ values: [String]) {
        array { for value in values { $0.string(value) } }
    }

    mutating func ints(_ values: [Int]) {
        array { for value in values { $0.int(value) } }
    }

    /// One value rendered on its own (`JSONText().…` then `.bytes`), written as is.
    mutating func value(_ rendered: [UInt8]) {
        separate()
        bytes.append(contentsOf: rendered)
    }
}

extension JSONText {
    /// An object of string values, its keys as given (not snake-cased, as `JSONEncoder` leaves
    /// a dictionary's keys) in the order `.sortedKeys` gives them.
    mutating func dictionary(_ values: [String: String]) {
        object { json in
            for (key, value) in values.sorted(by: { $0.key < $1.key }) {
                json.separateKey(key)
                json.string(value)
            }
        }
    }

    /// A key that is data (escaped as a string).
    private mutating func separateKey(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
        started[started.count - 1] = false
    }
}
