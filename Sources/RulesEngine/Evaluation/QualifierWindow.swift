import RulesParser

/// The history a qualifier needs, for one predicate of one instance: it records the truth of
/// the expression at every observation and says whether the qualified predicate holds.
///
/// - `__QUAL_COUNT(n, m)`: true in at least n of the last m observations. Before m
///   observations have been made, the ones made so far are the window.
/// - `__QUAL_RATE(n, s)`: true at least n times in the last s seconds: at time t, the n-th
///   most recent true observation was made at t - s or later (both ends count).
///
/// Either can hold at an observation where the expression itself is false, if the window
/// still has enough true observations. Times are the caller's (virtual or wall clock), in
/// seconds; they should not go backwards: a true observation later than the current time
/// counts as recent. Non-finite times never satisfy a rate.
struct QualifierWindow: Sendable, Hashable {
    private var kind: Kind

    private enum Kind: Sendable, Hashable {
        case none
        case count(CountWindow)
        case rate(RateWindow)
    }

    init(_ qualifier: Qualifier?) {
        switch qualifier {
        case nil: kind = .none
        case .count(let n, let m): kind = .count(CountWindow(needed: max(n, 1), size: max(m, n, 1)))
        case .rate(let n, let s): kind = .rate(RateWindow(needed: max(n, 1), seconds: s))
        }
    }

    /// Whether there is a qualifier, so that the expression must be evaluated at every
    /// observation to keep its history.
    var keepsHistory: Bool {
        if case .none = kind { return false }
        return true
    }

    /// Records one observation; returns whether the qualified predicate holds.
    mutating func record(_ value: Bool, at time: Double) -> Bool {
        switch kind {
        case .none:
            return value
        case .count(var window):
            kind = .none  // keeps the window's storage uniquely referenced while it changes
            defer { kind = .count(window) }
            return window.record(value)
        case .rate(var window):
            kind = .none
            defer { kind = .rate(window) }
            return window.record(value, at: time)
        }
    }
}

/// The last `size` truth values as a ring of bits, with the number of trues among them.
private struct CountWindow: Sendable, Hashable {
    let needed: Int
    let size: Int
    private var bits: [UInt64] = []
    private var position = 0
    private var filled = 0
    private var trueCount = 0

    init(needed: Int, size: Int) {
        self.needed = needed
        self.size = size
    }

    mutating func record(_ value: Bool) -> Bool {
        if bits.isEmpty { bits = Array(repeating: 0, count: (size + 63) / 64) }
        let word = position >> 6
        let bit = UInt64(1) << UInt64(position & 63)
        if filled == size {
            if bits[word] & bit != 0 { trueCount -= 1 }
        } else {
            filled += 1
        }
        if value {
            bits[word] |= bit
            trueCount += 1
        } else {
            bits[word] &= ~bit
        }
        position += 1
        if position == size { position = 0 }
        return trueCount >= needed
    }
}

/// The times of the last `needed` true observations, as a ring.
private struct RateWindow: Sendable, Hashable {
    let needed: Int
    let seconds: Double
    private var times: [Double] = []
    /// The oldest entry once the ring is full.
    private var oldest = 0

    init(needed: Int, seconds: Double) {
        self.needed = needed
        self.seconds = seconds
    }

    mutating func record(_ value: Bool, at time: Double) -> Bool {
        if value {
            if times.count < needed {
                times.append(time)
            } else {
                times[oldest] = time
                oldest += 1
                if oldest == needed { oldest = 0 }
            }
        }
        guard times.count == needed else { return false }
        return time - times[oldest] <= seconds
    }
}
