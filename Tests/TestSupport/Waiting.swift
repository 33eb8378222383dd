import Foundation

/// A wait that did not see what it waited for: thrown by `waitUntil`, so the test fails with
/// what it was waiting for (and, when the caller says, what was seen instead).
public struct WaitTimedOut: Error, CustomStringConvertible {
    public let description: String
}

/// Polls `condition` every `poll` until it holds. Throws `WaitTimedOut` naming `what` when
/// `timeout` passes first, or at once when the test is cancelled (as its time limit does).
/// `observed`, when given, is added to the message: what there was instead.
///
/// Tests wait with this for the thing they check (a file, a journal line, a `status` answer, a
/// process's end), not for a fixed time.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(10), poll: Duration = .milliseconds(20),
    observed: (() -> String)? = nil, _ condition: () throws -> Bool
) throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try condition() { return }
        if Task.isCancelled || clock.now >= deadline { break }
        Thread.sleep(forTimeInterval: seconds(poll))
    }
    throw timedOut(what, timeout, observed)
}

/// `waitUntil` for async code: the condition may suspend, and the polling does not block a thread.
public func waitUntil(
    _ what: String, timeout: Duration = .seconds(10), poll: Duration = .milliseconds(20),
    observed: (() async -> String)? = nil, _ condition: () async throws -> Bool
) async throws {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try await condition() { return }
        if Task.isCancelled || clock.now >= deadline { break }
        try? await Task.sleep(for: poll)
    }
    let seen = await observed?()
    throw timedOut(what, timeout, seen.map { text in { text } })
}

/// Whether `condition` came to hold within `timeout` (polled every `poll`; false at once when
/// the test is cancelled). For `#expect(holdsWithin ...)`, where the test goes on either way.
public func holdsWithin(
    _ timeout: Duration, poll: Duration = .milliseconds(20), _ condition: () throws -> Bool
) rethrows -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: timeout)
    while true {
        if try condition() { return true }
        if Task.isCancelled || clock.now >= deadline { return false }
        Thread.sleep(forTimeInterval: seconds(poll))
    }
}

private func seconds(_ duration: Duration) -> Double {
    let parts = duration.components
    return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
}

private func timedOut(_ what: String, _ timeout: Duration, _ observed: (() -> String)?) -> WaitTimedOut {
    let why = Task.isCancelled ? "cancelled (time limit?)" : "timed out after \(timeout)"
    var text = "\(why) waiting for \(what)"
    if let observed { text += "\nobserved:\n\(observed())" }
    return WaitTimedOut(description: text)
}
