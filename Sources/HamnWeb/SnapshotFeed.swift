import Synchronization

/// One poller for every open view: while anyone watches, it asks the service for its state
/// every `interval` (a copy, off the service's thread) and hands each change to every
/// watcher; nobody watching, nothing polls. Each watcher keeps only the newest update, so a
/// slow client costs one string, never a queue.
final class SnapshotFeed: Sendable {
    enum Update: Sendable {
        case snapshot(String)
        case heartbeat
    }

    private struct State {
        var latest: String?
        var watchers: [Int: AsyncStream<Update>.Continuation] = [:]
        var next = 0
        var poller: Task<Void, Never>?
        var stopped = false
    }

    private let snapshot: @Sendable () async -> String
    private let interval: Duration
    private let heartbeat: Duration
    private let state = Mutex(State())

    init(snapshot: @escaping @Sendable () async -> String, interval: Duration, heartbeat: Duration) {
        self.snapshot = snapshot
        self.interval = interval
        self.heartbeat = heartbeat
    }

    /// The updates for one watcher: the current state first (once known), then each change.
    func subscribe() -> (AsyncStream<Update>, Int) {
        let (stream, continuation) = AsyncStream<Update>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let id: Int = state.withLock { state in
            let id = state.next
            state.next += 1
            if state.stopped {
                continuation.finish()
                return id
            }
            state.watchers[id] = continuation
            if let latest = state.latest { continuation.yield(.snapshot(latest)) }
            if state.poller == nil { state.poller = Task(executorPreference: WebThreads.tasks) { await self.poll() } }
            return id
        }
        return (stream, id)
    }

    func unsubscribe(_ id: Int) {
        let poller: Task<Void, Never>? = state.withLock { state in
            state.watchers[id]?.finish()
            state.watchers[id] = nil
            guard state.watchers.isEmpty else { return nil }
            defer {
                state.poller = nil
                state.latest = nil
            }
            return state.poller
        }
        poller?.cancel()
    }

    /// Ends every watcher's stream; no poller starts again.
    func stop() {
        let (watchers, poller) = state.withLock { state in
            state.stopped = true
            defer {
                state.watchers = [:]
                state.poller = nil
            }
            return (Array(state.watchers.values), state.poller)
        }
        poller?.cancel()
        for watcher in watchers { watcher.finish() }
    }

    private func poll() async {
        let clock = ContinuousClock()
        var quietSince = clock.now
        while !Task.isCancelled {
            let text = await snapshot()
            let now = clock.now
            let (changed, watchers) = state.withLock { state in
                let changed = state.latest != text
                state.latest = text
                return (changed, Array(state.watchers.values))
            }
            if changed {
                quietSince = now
                for watcher in watchers { watcher.yield(.snapshot(text)) }
            } else if now - quietSince >= heartbeat {
                quietSince = now
                for watcher in watchers { watcher.yield(.heartbeat) }
            }
            try? await Task.sleep(for: interval)
        }
    }
}
