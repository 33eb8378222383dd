import Foundation
import HamnService
import RulesEngine
import Testing

/// Helpers of the Monitor*Tests files.

/// A directory under the system temporary directory, removed when released.
final class MonitorTempDirectory: @unchecked Sendable {
    let path: String

    init() throws {
        let base = NSTemporaryDirectory() + "hamn-monitor-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true)
        path = base
    }

    deinit {
        try? FileManager.default.removeItem(atPath: path)
    }

    /// Writes `text` to `relative` (directories created), returning the full path.
    @discardableResult
    func write(_ relative: String, _ text: String, executable: Bool = false) throws -> String {
        let full = path + "/" + relative
        let directory = (full as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(text.utf8).write(to: URL(fileURLWithPath: full))
        if executable {
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: full)
        }
        return full
    }

    func writeBytes(_ relative: String, _ bytes: [UInt8]) throws {
        let full = path + "/" + relative
        let directory = (full as NSString).deletingLastPathComponent
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: full))
    }
}

/// Collects values from concurrent callbacks.
actor MonitorCollector<Value: Sendable> {
    private(set) var values: [Value] = []

    func append(_ value: Value) {
        values.append(value)
    }

    /// Waits (polling) until `condition` holds for the values, at most `timeout`; whether it did.
    func waitUntil(timeout: Duration = .seconds(3), _ condition: ([Value]) -> Bool) async -> Bool {
        let clock = ContinuousClock()
        let end = clock.now.advanced(by: timeout)
        while clock.now < end {
            if condition(values) { return true }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return condition(values)
    }
}

let monitorTestNode = ClusterNode(name: "aixmn1", number: 1)

/// The fields of a structured value by name.
func monitorFields(_ value: SampleValue) -> [String: SampleValue.Scalar] {
    guard case .fields(let fields) = value else { return [:] }
    return Dictionary(fields.map { ($0.name, $0.value) }, uniquingKeysWith: { first, _ in first })
}

func monitorNumber(_ value: SampleValue) -> Double? {
    guard case .scalar(.number(let number)) = value else { return nil }
    return number
}

func monitorSeconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
}
