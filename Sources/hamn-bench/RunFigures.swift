/// The figures of a benchmark's runs over one input: per run, best, median, and peak memory
/// against the input's size. MB are 10^6 bytes (as disks and throughput are quoted), MiB
/// 2^20 bytes (as memory is).
struct RunFigures {
    struct Rate {
        var seconds: Double
        var megabytesPerSecond: Double
        var definitionsPerSecond: Double
    }

    var inputBytes: Int
    var definitions: Int
    var runs: [ChildRun]

    private func rate(_ seconds: Double) -> Rate {
        Rate(
            seconds: seconds, megabytesPerSecond: Double(inputBytes) / 1e6 / seconds,
            definitionsPerSecond: Double(definitions) / seconds)
    }

    var best: Rate { rate(runs.map(\.wallSeconds).min()!) }

    var median: Rate {
        let sorted = runs.map(\.wallSeconds).sorted()
        let middle = sorted.count / 2
        return rate(sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2)
    }

    /// The largest peak over the runs: what the machine must have.
    var peakRSSBytes: Int { runs.map(\.peakRSSBytes).max()! }

    var rssMultiple: Double { Double(peakRSSBytes) / Double(inputBytes) }
}

extension Double {
    /// `digits` decimal places, without Foundation's formatting.
    func fixed(_ digits: Int) -> String {
        var scale = 1.0
        for _ in 0..<digits { scale *= 10 }
        let scaled = (self * scale).rounded()
        guard scaled.isFinite, abs(scaled) < 9e15 else { return String(self) }
        let whole = Int64(scaled)
        let sign = whole < 0 ? "-" : ""
        let magnitude = whole.magnitude
        let divisor = UInt64(scale)
        guard digits > 0 else { return sign + String(magnitude) }
        let fraction = String(magnitude % divisor)
        return sign + String(magnitude / divisor) + "." + String(repeating: "0", count: digits - fraction.count)
            + fraction
    }
}
