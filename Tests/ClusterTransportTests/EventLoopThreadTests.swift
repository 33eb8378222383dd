import Foundation
import Synchronization
import Testing

@testable import ClusterTransport

#if canImport(Glibc)
    import Glibc
#endif

/// An actor that runs on an `EventLoopThread`, as the service does.
private actor OnLoop {
    nonisolated let loop: EventLoopThread
    nonisolated var unownedExecutor: UnownedSerialExecutor { loop.asUnownedSerialExecutor() }
    var calls: [Int] = []
    var offLoop = 0

    init(loop: EventLoopThread) { self.loop = loop }

    func call(_ number: Int) {
        if !loop.isCurrent { offLoop += 1 }
        calls.append(number)
    }
}

/// A pipe the loop polls; what it reads, and on which thread.
private final class PipeSource: EventLoopSource {
    let read: Int32
    let write: Int32
    let loop: EventLoopThread
    let seen = Mutex<(bytes: [UInt8], offLoop: Int)>(([], 0))

    init(loop: EventLoopThread) {
        var fds: [Int32] = [-1, -1]
        _ = pipe(&fds)
        (read, write, self.loop) = (fds[0], fds[1], loop)
    }

    deinit {
        _ = close(read)
        _ = close(write)
    }

    func pollSet() -> (descriptors: [Int32], timeout: Int32)? { ([read], -1) }

    func ready(_ revents: [Int16]) {
        var byte: UInt8 = 0
        let got = Glibc.read(read, &byte, 1)
        let current = loop.isCurrent
        seen.withLock {
            if got == 1 { $0.bytes.append(byte) }
            if !current { $0.offLoop += 1 }
        }
    }

    func send(_ byte: UInt8) {
        var value = byte
        _ = Glibc.write(write, &value, 1)
    }
}

private func eventually(_ seconds: Double, _ condition: () -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        usleep(2_000)
    }
    return condition()
}

@Suite("the service's event loop thread", .timeLimit(.minutes(1)))
struct EventLoopThreadTests {
    @Test("an actor on the loop runs there, its calls in order, from many tasks at once")
    func actorJobs() async throws {
        let loop = try EventLoopThread(name: "test-jobs")
        defer { loop.stop() }
        let actor = OnLoop(loop: loop)
        for number in 0..<500 { await actor.call(number) }
        await withTaskGroup(of: Void.self) { group in
            for number in 500..<1_000 { group.addTask { await actor.call(number) } }
        }
        let calls = await actor.calls
        #expect(Array(calls.prefix(500)) == Array(0..<500))
        #expect(calls.sorted() == Array(0..<1_000))
        #expect(await actor.offLoop == 0)
        #expect(!loop.isCurrent)
        #expect(loop.isIsolatingCurrentContext() == false)
    }

    @Test("a source is polled on the loop, between jobs; execute runs there too; after remove it is not called")
    func sources() throws {
        let loop = try EventLoopThread(name: "test-sources")
        defer { loop.stop() }
        let source = PipeSource(loop: loop)
        loop.add(source)
        for byte: UInt8 in 1...50 { source.send(byte) }
        #expect(eventually(10) { source.seen.withLock { $0.bytes.count } == 50 })
        #expect(source.seen.withLock { $0.bytes } == Array(1...50))
        let ran = Mutex<Bool?>(nil)
        loop.execute { ran.withLock { $0 = loop.isCurrent } }
        #expect(eventually(10) { ran.withLock { $0 } != nil })
        #expect(ran.withLock { $0 } == true)
        loop.remove(source)
        source.send(99)
        // The behaviour under test: a removed source with a byte ready is not called during
        // this time (an active one is called within microseconds).
        usleep(100_000)
        #expect(source.seen.withLock { $0.bytes.count } == 50)
        #expect(source.seen.withLock { $0.offLoop } == 0)
    }

    @Test("a source whose poll set is nil is dropped; stop ends the thread once nothing is left")
    func stopAndDone() throws {
        final class Once: EventLoopSource {
            let asked = Mutex(0)
            func pollSet() -> (descriptors: [Int32], timeout: Int32)? {
                asked.withLock { $0 += 1 }
                return nil
            }
            func ready(_ revents: [Int16]) {}
        }
        let loop = try EventLoopThread(name: "test-stop")
        let once = Once()
        loop.add(once)
        #expect(eventually(10) { once.asked.withLock { $0 } >= 1 })
        loop.stop()
        // Removing from a stopped loop returns at once.
        loop.remove(once)
        #expect(once.asked.withLock { $0 } == 1)
    }

    @Test("realtime: SCHED_RR 1 as root, not passed on to threads started from it; refused with a reason otherwise")
    func realtime() async throws {
        let loop = try EventLoopThread(name: "test-rt", realtime: true)
        defer { loop.stop() }
        let policies = Mutex<(own: Int32, child: Int32)?>(nil)
        loop.execute {
            let own = sched_getscheduler(0)
            var child: Int32 = -1
            var thread = pthread_t()
            withUnsafeMutablePointer(to: &child) { pointer in
                _ = pthread_create(
                    &thread, nil,
                    { argument in
                        argument!.assumingMemoryBound(to: Int32.self).pointee = sched_getscheduler(0)
                        return nil
                    }, pointer)
                pthread_join(thread, nil)
            }
            policies.withLock { $0 = (own, child) }
        }
        #expect(eventually(10) { policies.withLock { $0 } != nil })
        let (own, child) = try #require(policies.withLock { $0 })
        if geteuid() == 0 {
            #expect(loop.schedulingFailure == nil)
            #expect(own == SCHED_RR | 0x4000_0000)  // with SCHED_RESET_ON_FORK
            #expect(child == SCHED_OTHER)
        } else {
            #expect(loop.schedulingFailure?.contains("real-time scheduling (SCHED_RR 1) refused") == true)
            #expect(own == SCHED_OTHER)
        }
        let ordinary = try EventLoopThread(name: "test-ordinary")
        defer { ordinary.stop() }
        #expect(ordinary.schedulingFailure == nil)
    }
}
