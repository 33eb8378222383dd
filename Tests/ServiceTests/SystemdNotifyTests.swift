import Foundation
import HamnService
import TestSupport
import Testing

/// A datagram socket standing in for systemd's notification socket: what the service sends to
/// `$NOTIFY_SOCKET`, one datagram per notification.
final class NotifyReceiver: @unchecked Sendable {
    let address: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []

    /// `path`: a file system path, or `@NAME` for the abstract namespace.
    init(_ path: String) throws {
        address = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        let abstract = bytes.first == UInt8(ascii: "@")
        if abstract { bytes[0] = 0 }
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count + (abstract ? 0 : 1))
        let bound = withUnsafePointer(to: &socketAddress) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard fd >= 0, bound == 0 else { throw ServiceError("cannot bind \(path): errno \(errno)") }
    }

    deinit { close(fd) }

    /// Every datagram received so far (those waiting are read first, without blocking).
    var datagrams: [String] {
        lock.lock()
        defer { lock.unlock() }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            guard count > 0 else { break }
            received.append(String(decoding: buffer[0..<count], as: UTF8.self))
        }
        return received
    }
}

@Suite("systemd notification", .serialized, .timeLimit(.minutes(1)))
struct SystemdNotifyTests {
    @Test("a datagram to a path or an abstract socket, exactly the lines given; nothing without NOTIFY_SOCKET")
    func protocolDatagrams() throws {
        let directory = NSTemporaryDirectory() + "hamn-notify-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let onPath = try NotifyReceiver(directory + "/notify")
        try SystemdNotify(socket: onPath.address).send(["READY=1", "STATUS=up"])
        #expect(onPath.datagrams == ["READY=1\nSTATUS=up"])
        let abstract = try NotifyReceiver("@hamn-notify-test-\(getpid())")
        try SystemdNotify(socket: abstract.address).send(["STOPPING=1"])
        #expect(abstract.datagrams == ["STOPPING=1"])
        // Not under systemd: no socket, nothing sent, no error.
        try SystemdNotify(socket: nil).send(["READY=1"])
        try SystemdNotify(socket: "").send(["READY=1"])
        #expect(throws: SystemdNotify.Failure.self) { try SystemdNotify(socket: "relative/notify").send(["READY=1"]) }
        #expect(throws: SystemdNotify.Failure.self) {
            try SystemdNotify(socket: directory + "/absent").send(["READY=1"])
        }
    }

    @Test(
        "the service: READY=1 once it is a member with its rules loaded, STOPPING=1 at SIGTERM; commands do not inherit NOTIFY_SOCKET"
    )
    func serviceNotifies() throws {
        let harness = try ServiceHarness(definitions: [])
        let out = harness.outputDirectory
        let record = try harness.script("record", "echo \"${NOTIFY_SOCKET:-unset}\" > \(out)/notify-socket")
        try harness.writeRules([("probe", 0, "all \"\(record)\" 0 NULL\n", nil)])
        let receiver = try NotifyReceiver(harness.root + "/notify")
        try harness.start(environment: ["NOTIFY_SOCKET": receiver.address])
        try waitUntil("READY=1", observed: { "\(receiver.datagrams)\n\(harness.stderrText)" }) {
            receiver.datagrams.contains { $0.hasPrefix("READY=1\n") }
        }
        #expect(receiver.datagrams == ["READY=1\nSTATUS=node n1 is a member of the cluster"])
        #expect(harness.status.contains("n1"))
        try harness.cli(["trigger", "probe"])
        try waitUntil("the probe's output") { harness.read("notify-socket") != nil }
        #expect(harness.read("notify-socket") == "unset\n")
        harness.signal(SIGTERM)
        #expect(harness.waitForExit(seconds: 20) == 0, "\(harness.stderrText)")
        #expect(
            receiver.datagrams == [
                "READY=1\nSTATUS=node n1 is a member of the cluster", "STOPPING=1\nSTATUS=stopping",
            ])
    }

    @Test(
        "run without --config reads the default file ($HAMN_EVENTS_CONFIG here, /etc/hamn/hamn.yaml installed) and says so; status finds its socket"
    )
    func defaultConfigurationFile() throws {
        let harness = try ServiceHarness(definitions: [])
        try harness.writeRules([("probe", 0, "all \"/bin/true\" 0 NULL\n", nil)])
        let environment = ["HAMN_EVENTS_CONFIG": harness.configPath]
        try harness.start(arguments: ["run"], environment: environment)
        try harness.waitForOutput("configuration: \(harness.configPath)")
        // The operator commands read it too: no --socket, no --config.
        let process = Process()
        process.executableURL = URL(fileURLWithPath: ServiceHarness.binary)
        process.arguments = ["status"]
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(output)")
        #expect(output.contains("n1"))
        harness.signal(SIGTERM)
        #expect(harness.waitForExit(seconds: 20) == 0)
    }
}
