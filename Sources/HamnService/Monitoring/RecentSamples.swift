import RulesEngine

/// The last few numeric samples of each variable instance, for the web view's sparklines:
/// at most `capacity` values each, for at most `instanceLimit` instances (those seen first);
/// a sample with no number (a string) is not kept.
struct RecentSamples: Sendable {
    static let capacity = 30
    static let instanceLimit = 1000

    private var values: [String: [Double]] = [:]

    mutating func record(variable: String, instance: String, value: SampleValue) {
        guard let number = Self.number(value) else { return }
        let key = variable + " " + instance
        if values[key] == nil, values.count >= Self.instanceLimit { return }
        values[key, default: []].append(number)
        if let count = values[key]?.count, count > Self.capacity {
            values[key]?.removeFirst(count - Self.capacity)
        }
    }

    /// Oldest first; empty when none was kept.
    func recent(variable: String, instance: String) -> [Double] {
        values[variable + " " + instance] ?? []
    }

    var instanceCount: Int { values.count }

    /// A scalar number, or a structured value's first numeric field.
    static func number(_ value: SampleValue) -> Double? {
        switch value {
        case .scalar(.number(let number)): return number
        case .scalar(.string): return nil
        case .fields(let fields):
            for field in fields { if case .number(let number) = field.value { return number } }
            return nil
        }
    }
}
