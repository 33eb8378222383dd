import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How many processes ``ProcessLauncher`` runs at once: as many as the file descriptor limit
/// leaves room for, so that 400 commands in one segment or 300 command variables never run
/// the service out of descriptors (and its journal, its control socket and corosync with it).
///
/// A supervised child holds up to ``descriptorsPerChild`` descriptors (its output pipes, its
/// standard input, its pidfd, and while it is spawned the child's ends). Of the soft
/// `RLIMIT_NOFILE` (which the service raises to the hard limit at start, as systemd advises
/// for programs that do not use `select`), a reserve of half, at most 256, is kept for the
/// rest of the service; the remainder sets the slots. A launch beyond them waits for a slot
/// (first come, first served): under a low limit a large segment starts in waves instead of
/// failing. At systemd's default hard limit (524288) nothing ever waits.
package final class LaunchSlots: Sendable {
    package static let descriptorsPerChild = 6

    package static let shared = LaunchSlots(capacity: LaunchSlots.capacity(forDescriptorLimit: descriptorLimit()))

    /// The slots for a soft descriptor limit of `limit`: at least 4.
    package static func capacity(forDescriptorLimit limit: Int) -> Int {
        let reserve = min(limit / 2, 256)
        return max(4, (limit - reserve) / descriptorsPerChild)
    }

    /// The soft `RLIMIT_NOFILE` of this process.
    package static func descriptorLimit() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return 1024 }
        return limit.rlim_cur == rlim_t.max ? Int(Int32.max) : Int(clamping: limit.rlim_cur)
    }

    private struct State {
        var free: Int
        var waiting: [(id: Int, continuation: CheckedContinuation<Bool, Never>)] = []
        var nextID = 0
    }

    package let capacity: Int
    private let state: Mutex<State>

    package init(capacity: Int) {
        self.capacity = capacity
        state = Mutex(State(free: capacity))
    }

    /// Takes a slot, waiting for one if none is free; false when the task is cancelled
    /// before it got one (then it holds none).
    package func acquire() async -> Bool {
        if state.withLock({ state -> Bool in
            guard state.free > 0 else { return false }
            state.free -= 1
            return true
        }) {
            return true
        }
        let id = state.withLock { state -> Int in
            state.nextID += 1
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                // Under the lock that `onCancel` takes too: a cancellation either is seen here
                // or finds the waiter.
                let granted = state.withLock { state -> Bool? in
                    if state.free > 0 {
                        state.free -= 1
                        return true
                    }
                    if Task.isCancelled { return false }
                    state.waiting.append((id, continuation))
                    return nil
                }
                if let granted { continuation.resume(returning: granted) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard let index = state.waiting.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiting.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
    }

    /// Gives a slot back: to the first waiter, if any.
    package func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard !state.waiting.isEmpty else {
                state.free += 1
                return nil
            }
            return state.waiting.removeFirst().continuation
        }
        next?.resume(returning: true)
    }

    /// Slots free now (for tests and `status`).
    package var free: Int { state.withLock { $0.free } }
}
