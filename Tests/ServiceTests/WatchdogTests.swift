import Foundation
import TestSupport
import Testing

/// The self-fencing watchdog (issue 12, part 5) on a real `hamn-events run`, with a regular
/// file as the stand-in device: each feed appends "1"; 'V' (the magic close) ends a graceful
/// stop. The engine stopped with SIGSTOP feeds it no more; SIGCONT and it goes on.
@Suite("watchdog", .serialized, .timeLimit(.minutes(1)))
struct WatchdogTests {
    /// A stand-in device in a directory of its own (the configuration names it before the
    /// service's directory exists), owned by this user, mode 0600.
    private final class StandIn {
        let directory: String
        var path: String { directory + "/watchdog" }

        init() throws {
            var template = Array((NSTemporaryDirectory() + "hamn-wd-XXXXXX").utf8CString)
            guard let made = mkdtemp(&template) else { throw CocoaError(.fileWriteUnknown) }
            directory = String(cString: made)
            FileManager.default.createFile(atPath: directory + "/watchdog", contents: nil)
            chmod(directory + "/watchdog", 0o600)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }

        var text: String {
            FileManager.default.contents(atPath: path).map { String(decoding: $0, as: UTF8.self) } ?? ""
        }
    }

    /// Whether the process is stopped (state T in /proc/PID/stat).
    private func isStopped(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return false }
        return stat[stat.index(close, offsetBy: 2)] == "T"
    }

    @Test("fed while healthy; no feed while SIGSTOPped; fed again after SIGCONT; 'V' at the graceful stop")
    func feedsStopsAndDisarms() throws {
        let device = try StandIn()
        // Timeout 2 s: a feed every 0.5 s.
        let service = try ServiceHarness(
            definitions: [("TE_JOIN_NODE", 0, "event \"/bin/true\" 0 NULL\n", nil)],
            extraConfiguration: "watchdog: {device: \(device.path), timeout: 2s}")
        try service.start()
        let pid = try #require(service.process?.processIdentifier)
        try waitUntil("3 feeds", timeout: .seconds(10), observed: { device.text }) { device.text.count >= 3 }
        #expect(device.text.allSatisfy { $0 == "1" }, "\(device.text)")
        try service.waitForOutput(
            "watchdog \(device.path): fed every 0.5 s while the service is healthy (timeout 2.0 s)")

        // Stopped: no feed for 4 intervals (a real watchdog of 2 s would have reset the node).
        kill(pid, SIGSTOP)
        try waitUntil("the engine to be stopped") { isStopped(pid) }
        let before = device.text.count
        #expect(!holdsWithin(.seconds(2), poll: .milliseconds(50)) { device.text.count != before })
        #expect(device.text.count == before, "fed while stopped: \(before) -> \(device.text.count)")

        // Continued: it feeds again.
        kill(pid, SIGCONT)
        try waitUntil("feeds after SIGCONT", timeout: .seconds(10), observed: { device.text }) {
            device.text.count >= before + 2
        }

        // The graceful stop: the last byte written is 'V', and nothing after it.
        service.signal(SIGTERM)
        #expect(service.waitForExit(seconds: 30) == 0, "\(service.stderrText)")
        let text = device.text
        #expect(text.last == "V", "\(text)")
        #expect(text.dropLast().allSatisfy { $0 == "1" }, "\(text)")
    }

    @Test("killed with SIGKILL: no 'V' (a real watchdog resets the node)")
    func killLeavesItArmed() throws {
        let device = try StandIn()
        let service = try ServiceHarness(
            definitions: [("TE_JOIN_NODE", 0, "event \"/bin/true\" 0 NULL\n", nil)],
            extraConfiguration: "watchdog: {device: \(device.path), timeout: 2s}")
        try service.start()
        try waitUntil("2 feeds", timeout: .seconds(10), observed: { device.text }) { device.text.count >= 2 }
        service.signal(SIGKILL)
        #expect(service.waitForExit(seconds: 10) != nil)
        #expect(!device.text.contains("V"), "\(device.text)")
        #expect(device.text.allSatisfy { $0 == "1" }, "\(device.text)")
    }

    @Test("a device others can write is refused at start, with the configuration's file:line:col")
    func unsafeDeviceRefused() throws {
        let device = try StandIn()
        chmod(device.path, 0o666)
        let service = try ServiceHarness(
            definitions: [("TE_JOIN_NODE", 0, "event \"/bin/true\" 0 NULL\n", nil)],
            extraConfiguration: "watchdog:\n  device: \(device.path)\n")
        let result = try service.cli(["run", "--config", service.configPath])
        #expect(result.status != 0)
        #expect(
            (result.out + result.err).contains(
                "\(service.configPath):7:11: error: watchdog.device: others can write \(device.path): a stand-in watchdog must be writable by its owner only"
            ), "\(result.out)\(result.err)")
        #expect(device.text.isEmpty)
    }
}
