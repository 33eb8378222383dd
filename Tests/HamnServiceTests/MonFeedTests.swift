import Foundation
import Logging
import RulesEngine
import Testing

@testable import HamnService

#if canImport(Glibc)
    import Glibc
#endif

/// Where a `mon` client starts: the newest lines, or, reconnecting, the lines after the last
/// one it showed. Driven through a socket pair: the feed writes, the test reads what came.
@Suite("mon's feed: where a client starts", .serialized, .timeLimit(.minutes(1)))
struct MonFeedTests {
    @Test(
        "after N: the lines after it; nothing written since: none; a newer journal (ids below N): its newest lines; no N: the newest 50",
        arguments: [
            (Int64?.none, 80, Array(31...80)), (Int64?.some(75), 80, Array(76...80)), (Int64?.some(80), 80, []),
            (Int64?.some(500), 80, Array(31...80)), (Int64?.some(10), 80, Array(11...80)),
        ])
    func start(after: Int64?, lines count: Int, expected: [Int]) throws {
        #expect(try received(after: after, log: FixedLog(count: count)) == expected.map { "line \($0)" })
    }

    @Test("more lines than half the buffer since N: the newest 50, after a line that says some are not shown")
    func tooManyMissed() throws {
        let got = try received(after: 10, log: FixedLog(count: 2_000))
        #expect(got.first == "mon: more lines were written while it was away than it shows; see `hamn-events history`")
        #expect(Array(got.dropFirst()) == (1951...2000).map { "line \($0)" })
    }

    /// The texts of the log lines a follower starting `after` gets before the feed ends.
    private func received(after: Int64?, log: FixedLog) throws -> [String] {
        var fds: [Int32] = [0, 0]
        try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        defer { close(fds[1]) }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let feed = MonFeed(journal: log, logger: Logger(label: "test"))
        let server = fds[0]
        Thread.detachNewThread {
            feed.follow(node: nil, after: after, on: ControlConnection(fd: server))
            close(server)
        }
        let deadline = ContinuousClock.now + .seconds(5)
        while feed.followerCount == 0, ContinuousClock.now < deadline { usleep(1_000) }
        try #require(feed.followerCount == 1)
        feed.end()  // after the follower's start: what it got, then the service's last word
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fds[1], &buffer, buffer.count, 0)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        var texts: [String] = []
        var ended = false
        for line in bytes.split(separator: 0x0A) {
            switch try JSONDecoder.control.decode(ControlAnswer.self, from: Data(line)) {
            case .logLine(let text, _): texts.append(String(text.dropFirst(16)))  // the time stamp
            case .done: ended = true
            default: Issue.record("unexpected answer: \(String(decoding: line, as: UTF8.self))")
            }
        }
        #expect(ended, "the stream ends with the service's last word")
        return texts
    }
}

/// A log of `count` lines, ids 1 to `count`, "line ID".
private final class FixedLog: EventJournal {
    let count: Int
    init(count: Int) { self.count = count }

    private func line(_ id: Int) -> JournalLogLine {
        JournalLogLine(
            rowID: Int64(id), run: 1, time: Date(timeIntervalSince1970: 0), kind: "t", node: nil, eventID: nil,
            text: "line \(id)")
    }

    func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine] {
        guard count > 0 else { return [] }
        guard let rowID else { return (max(1, count - limit + 1)...count).map(line) }
        let first = Int(rowID) + 1
        return first > count ? [] : (first...min(count, first + limit - 1)).map(line)
    }

    func append(_ entry: JournalEntry, at time: Date) throws {}
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws {
    }
    func note(_ text: String, kind: String, at time: Date) throws {}
    func historyReport(limit: Int) throws -> (text: String, json: String) { ("", "") }
    func write(_ writes: [TimedJournalWrite]) throws {}
    func close() throws {}
    func storageProblem() -> String? { nil }
}
