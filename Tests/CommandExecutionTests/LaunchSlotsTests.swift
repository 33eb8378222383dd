import Testing

@testable import CommandExecution

/// The descriptor budget of ``ProcessLauncher``: slots from the limit, waiting in order,
/// cancellation while waiting.
@Suite("launch slots")
struct LaunchSlotsTests {
    @Test(
        "slots from the descriptor limit: half (at most 256) kept for the service, 6 per child",
        arguments: [(64, 5), (256, 21), (1024, 128), (524_288, 87_338), (8, 4)])
    func capacity(_ limit: Int, _ slots: Int) {
        #expect(LaunchSlots.capacity(forDescriptorLimit: limit) == slots)
    }

    @Test("beyond the capacity a launch waits for a release, first come first served")
    func waits() async {
        let slots = LaunchSlots(capacity: 2)
        #expect(await slots.acquire())
        #expect(await slots.acquire())
        #expect(slots.free == 0)
        let third = Task { await slots.acquire() }
        try? await Task.sleep(for: .milliseconds(50))
        #expect(slots.free == 0)
        slots.release()
        #expect(await third.value)
        #expect(slots.free == 0)
        slots.release()
        slots.release()
        #expect(slots.free == 2)
    }

    @Test("a waiter that is cancelled gets no slot and takes none")
    func cancelled() async {
        let slots = LaunchSlots(capacity: 1)
        #expect(await slots.acquire())
        let waiter = Task { await slots.acquire() }
        try? await Task.sleep(for: .milliseconds(50))
        waiter.cancel()
        #expect(await waiter.value == false)
        slots.release()
        #expect(slots.free == 1)
    }
}
