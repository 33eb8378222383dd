import Dispatch

/// Work that may block (SQLite reads, reading and hashing files): on threads of its own, never
/// on the service's thread nor the tasks' shared pool; the caller awaits the result.
enum BlockingWork {
    private static let queue = DispatchQueue(label: "hamn-events.blocking", qos: .utility, attributes: .concurrent)

    static func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { continuation in
            queue.async { continuation.resume(returning: body()) }
        }
    }
}
