/// A span of time from 0 to `BoundedDuration.maximum` (365 days): the one type of every
/// duration the configuration, the scenarios, the control protocol and the command line accept.
///
/// The bound exists because Swift's `Duration.seconds(_:)` traps at about 9.2e18 s, and
/// deadlines computed as "now plus this" overflow well before: an input must never reach them.
/// A year is longer than any interval, timeout or delay a cluster needs (systemd's timers and
/// timeouts take "infinity" for "never"; here a timeout of 0 means no timeout), so the bound
/// costs nothing real while everything derived from it stays far from overflow.
public struct BoundedDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// 365 days, in seconds.
    public static let maximumSeconds: Double = 365 * 86400
    public static let maximum = BoundedDuration(checked: maximumSeconds)
    public static let zero = BoundedDuration(checked: 0)

    /// From 0 to `maximumSeconds`, finite.
    public let seconds: Double

    private init(checked seconds: Double) {
        self.seconds = seconds
    }

    /// Nil when `seconds` is not a number from 0 to `maximumSeconds`.
    public init?(seconds: Double) {
        guard seconds.isFinite, seconds >= 0, seconds <= Self.maximumSeconds else { return nil }
        self.seconds = seconds == 0 ? 0 : seconds  // no -0
    }

    /// Why a text is not a duration.
    public struct ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// `10s`, `5m`, `1h`, `250ms`, `1d`, or a number of seconds; at most 365 days.
    public init(parsing text: String) throws(ParseError) {
        let units: [(suffix: String, factor: Double)] = [("ms", 0.001), ("s", 1), ("m", 60), ("h", 3600), ("d", 86400)]
        var number: Double?
        var factor = 1.0
        for unit in units where text.hasSuffix(unit.suffix) {
            if let value = Double(text.dropLast(unit.suffix.count)) {
                number = value
                factor = unit.factor
                break
            }
        }
        if number == nil { number = Double(text) }
        guard let number, number.isFinite, number >= 0 else {
            throw ParseError(message: "expected a duration such as 10s, 5m, 1h or 250ms, not '\(text)'")
        }
        guard let bounded = BoundedDuration(seconds: number * factor) else {
            throw ParseError(
                message: "'\(text)' is longer than the longest duration accepted, 365d (\(Int(Self.maximumSeconds))s)")
        }
        self = bounded
    }

    /// As Swift's `Duration`: never traps, whatever the value.
    public var duration: Duration {
        .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    public static func < (lhs: BoundedDuration, rhs: BoundedDuration) -> Bool {
        lhs.seconds < rhs.seconds
    }

    /// `10s`, `1.5s`, `250ms`.
    public var description: String {
        if seconds > 0, seconds < 1 {
            let milliseconds = seconds * 1000
            return milliseconds == milliseconds.rounded() ? "\(Int(milliseconds))ms" : "\(seconds)s"
        }
        return seconds == seconds.rounded() ? "\(Int(seconds))s" : "\(seconds)s"
    }
}

/// On the wire (the control socket's JSON): a number of seconds; decoding refuses anything
/// out of range, so a request never carries a duration the service cannot take.
extension BoundedDuration: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let seconds = try container.decode(Double.self)
        guard let bounded = BoundedDuration(seconds: seconds) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription:
                    "not a number of seconds from 0 to \(Int(Self.maximumSeconds)) (365d): \(seconds)")
        }
        self = bounded
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(seconds)
    }
}
