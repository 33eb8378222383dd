import ArgumentParser
import Foundation
import RecoveryPrograms
import RulesEngine

/// `hamn-bench wire`: the cost of the wire format on the barrier's path: encoding and decoding
/// one `segmentDone` with one result, as each engine does for every participant's message.
struct WireBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wire",
        abstract: "Time to encode and decode a segmentDone message (the barrier's message)."
    )

    @Option(help: "Messages encoded and decoded.") var count = 20_000

    func run() throws {
        let result = CommandResult(
            command: "/var/tmp/hamn-bench/stamp n1 s42 /var/tmp/hamn-bench/stamps", line: 85,
            termination: .exited(0), accepted: true, duration: 0.0012, outputTail: "", endedAt: 1_795_450_534.117812)
        let message = WireMessage.cluster(.segmentDone(eventID: 3, segment: 42, results: [result]))
        let bytes = WireFormat.encode(message)
        for _ in 0..<200 { _ = try WireFormat.decode(WireFormat.encode(message)) }  // warm-up
        let clock = ContinuousClock()
        let encoding = clock.measure {
            for _ in 0..<count { _ = WireFormat.encode(message) }
        }
        let decoding = try clock.measure {
            for _ in 0..<count { _ = try WireFormat.decode(bytes) }
        }
        func perMessage(_ duration: Duration) -> String {
            let seconds = Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
            return String(format: "%.1f µs", seconds / Double(count) * 1e6)
        }
        print("segmentDone with one result: \(bytes.count) bytes")
        print(
            "encode: \(perMessage(encoding)) per message; decode: \(perMessage(decoding)) per message (\(count) each)")
    }
}
