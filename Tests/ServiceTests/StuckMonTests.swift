import Foundation
import TestSupport
import Testing

/// A `mon` client that stops reading (`hamn-events mon | less`, paused) must cost the node
/// nothing: its lines are pushed to a bounded buffer, never waited for, and the client is
/// dropped when the buffer is full. Before, `mon` ran on the service's thread and its send
/// waited up to 5 s for a client that did not read: every barrier on the node waited with it.
@Suite("a stuck mon client", .serialized, .timeLimit(.minutes(2)))
struct StuckMonTests {
    /// Segments of the chatty event: two log lines each (the command, the barrier), several
    /// times what the stuck client's buffers hold (its socket's and the service's 1,000 lines).
    static let segments = 1000

    @Test("a mon client that never reads delays no barrier and no event, and is dropped")
    func stuckClientDelaysNothing() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        // Each segment notes when it ran: the gap between two notes is a barrier's passage
        // plus one short command.
        let stamp = try harness.script("stamp", "/bin/date +%s.%N >> \(out)/stamps")
        let chatty =
            Array(repeating: "all \"\(stamp)\" 0 NULL", count: Self.segments).joined(separator: "\nbarrier\n") + "\n"
        try harness.writeRules([
            ("chatty", 0, chatty, nil),
            ("ping", 0, "all \"/bin/true\" 0 NULL\nbarrier\nall \"/bin/true\" 0 NULL\n", nil),
        ])
        try harness.start()
        let live = try MonProcess(socket: harness.socketPath)
        let stuck = try StuckClient(socket: harness.socketPath, request: "{\"mon\":{}}\n")
        try waitUntil(
            "the two mon clients' connections",
            observed: {
                "\(harness.openControlConnections) connection(s); mon: \(live.text.suffix(300)) \(live.errorText)"
            }
        ) { harness.openControlConnections >= 2 }

        let started = ContinuousClock.now
        let chattyWaiter = try Self.waiter(harness, for: "chatty", timeout: 90)
        #expect(try harness.cli(["trigger", "chatty"]).status == 0)
        chattyWaiter.waitUntilExit()
        let elapsed = ContinuousClock.now - started
        #expect(chattyWaiter.terminationStatus == 0)

        let stamps = (harness.read("stamps") ?? "").split(separator: "\n").compactMap { Double($0) }
        #expect(stamps.count == Self.segments)
        let gaps = zip(stamps.dropFirst(), stamps).map { $0 - $1 }
        let longest = gaps.max() ?? 0
        let sorted = gaps.sorted()
        let median = sorted.isEmpty ? 0 : sorted[sorted.count / 2]
        // The figures, for the record.
        print(
            "stuck mon: \(Self.segments) segments in \(elapsed); gap between segments: median \(Int(median * 1000)) ms, longest \(Int(longest * 1000)) ms"
        )
        // With the old blocking send, one gap was 5 s (the send timeout) or more.
        #expect(longest < 1.5, "a barrier waited \(longest) s")

        // The stuck client was dropped while the event ran, not after it: the window in which a
        // blocking send would have stalled the node was inside the measured event.
        let log = harness.stderrText
        let dropped = try #require(log.range(of: "mon: client too slow, dropped after "), "\(log.suffix(2000))")
        print("stuck mon: \(log[dropped.lowerBound...].prefix { $0 != "\n" })")
        let completed = try #require(log.range(of: "chatty state 0 node n1: completed"))
        #expect(dropped.lowerBound < completed.lowerBound)
        try waitUntil("the service to close the stuck client's connection") {
            harness.openControlConnections <= 1  // the live mon's
        }

        // Another event completes at its usual pace, and the live mon saw everything.
        let pingWaiter = try Self.waiter(harness, for: "ping", timeout: 10)
        let pingStarted = ContinuousClock.now
        #expect(try harness.cli(["trigger", "ping"]).status == 0)
        pingWaiter.waitUntilExit()
        let ping = ContinuousClock.now - pingStarted
        #expect(pingWaiter.terminationStatus == 0)
        print("stuck mon: ping (two segments, one barrier) completed in \(ping)")
        #expect(ping < .seconds(3))
        #expect(
            harness.eventually { live.lines.contains { $0.contains("EVENT COMPLETED: ping") } },
            "\(live.text.suffix(500))")
        #expect(live.lines.filter { $0.contains("EVENT BARRIER: chatty") }.count == Self.segments - 1)

        // What the stuck client has when it reads at last: lines, then the end of the stream.
        let received = stuck.readToEnd(timeout: .seconds(10))
        #expect(received.ended, "the service closed the stuck client's connection")
        #expect(received.lines > 0 && received.lines < 2 * Self.segments)
    }

    /// `wait-event NAME` in the background, once its request is with the service (so that an
    /// event triggered next cannot end before it waits).
    static func waiter(_ harness: ServiceHarness, for name: String, timeout: Int) throws -> Process {
        let before = harness.openControlConnections
        let waiter = Process()
        waiter.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
        waiter.arguments = ["wait-event", "--socket", harness.socketPath, name, "--timeout", String(timeout)]
        waiter.standardOutput = FileHandle.nullDevice
        try waiter.run()
        try waitUntil("wait-event \(name) to connect") { harness.openControlConnections > before }
        return waiter
    }
}

/// A client of the control socket that sends one request and reads nothing until asked.
final class StuckClient: @unchecked Sendable {
    let fd: Int32

    init(socket path: String, request: String) throws {
        fd = try UnixSocket.connect(path)
        let bytes = Array(request.utf8)
        guard send(fd, bytes, bytes.count, Int32(MSG_NOSIGNAL)) == bytes.count else {
            close(fd)
            throw ServiceError("send: \(String(cString: strerror(errno)))")
        }
    }

    deinit { close(fd) }

    /// Reads until the service closes the connection or `timeout` passes: the number of lines,
    /// and whether the stream ended.
    func readToEnd(timeout: Duration) -> (lines: Int, ended: Bool) {
        let deadline = ContinuousClock.now + timeout
        var lines = 0
        var buffer = [UInt8](repeating: 0, count: 65536)
        while ContinuousClock.now < deadline {
            var pollfd = Glibc.pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&pollfd, 1, 200) > 0 else { continue }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (lines, n == 0) }
            lines += buffer[0..<n].filter { $0 == 0x0A }.count
        }
        return (lines, false)
    }
}
