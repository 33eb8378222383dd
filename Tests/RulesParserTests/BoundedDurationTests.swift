import Foundation
import RulesParser
import Testing

/// The one duration type: what it reads, where it stops, and that its `Duration` never traps.
@Suite("durations")
struct BoundedDurationTests {
    @Test(
        "durations read",
        arguments: [
            ("10s", 10.0), ("5m", 300), ("1h", 3600), ("250ms", 0.25), ("1d", 86400), ("2.5", 2.5), ("0", 0),
            ("365d", 31_536_000), ("31536000", 31_536_000), ("1e3", 1000),
        ])
    func reads(_ text: String, _ seconds: Double) throws {
        #expect(try BoundedDuration(parsing: text).seconds == seconds)
    }

    @Test(
        "beyond a year, or not a duration, is refused with a message",
        arguments: [
            ("1e19", "longer than the longest duration accepted, 365d (31536000s)"),
            ("366d", "longer than"), ("9.3e18", "longer than"), ("1e300", "longer than"), ("8761h", "longer than"),
            ("1e19ms", "longer than"), ("31536000.001", "longer than"),
            ("inf", "expected a duration"), ("nan", "expected a duration"), ("-1", "expected a duration"),
            ("", "expected a duration"), ("10 parsecs", "expected a duration"), ("1e400", "expected a duration"),
        ])
    func refused(_ text: String, _ message: String) {
        #expect {
            _ = try BoundedDuration(parsing: text)
        } throws: { error in
            (error as? BoundedDuration.ParseError)?.message.contains(message) == true
        }
    }

    @Test("the longest one converts to a Duration exactly; from a number only what is in range")
    func conversion() {
        #expect(BoundedDuration.maximum.duration == .seconds(31_536_000))
        #expect(BoundedDuration(seconds: 0.25)?.duration == .milliseconds(250))
        #expect(BoundedDuration(seconds: 1e19) == nil)
        #expect(BoundedDuration(seconds: .infinity) == nil)
        #expect(BoundedDuration(seconds: -0.5) == nil)
    }

    @Test("on the wire a number of seconds; out of range does not decode")
    func codable() throws {
        let encoded = try JSONEncoder().encode([BoundedDuration(seconds: 1.5)!])
        #expect(String(decoding: encoded, as: UTF8.self) == "[1.5]")
        #expect(try JSONDecoder().decode([BoundedDuration].self, from: Data("[100]".utf8)) == [.init(seconds: 100)!])
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode([BoundedDuration].self, from: Data("[1e19]".utf8))
        }
    }

    @Test("node ranges: numbers beyond a node's are refused, never counted")
    func nodeRanges() throws {
        #expect(throws: NodeRange.SyntaxError.self) { try NodeRange.parse("0-9223372036854775807") }
        #expect(throws: NodeRange.SyntaxError.self) { try NodeRange.parse("2147483648") }
        let wide = try NodeRange.parse("0-2147483647")
        let nodes = [NodeRange.Node(name: "a", number: 1)]
        #expect(wide.resolve(in: nodes).selected == nodes)
        let none = try NodeRange.parse("5-2147483647")
        #expect(none.resolve(in: nodes).unmatched == ["5-2147483647"])
    }
}
