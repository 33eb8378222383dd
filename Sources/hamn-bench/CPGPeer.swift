import ArgumentParser
import CorosyncTransport
import Dispatch
import Foundation
import RulesEngine
import Synchronization

/// `hamn-bench cpg-peer`: one member of a barrier over raw CPG, no engine: each round it runs
/// COMMAND (if given) and waits for it, multicasts the round's number and waits until every
/// peer's has come. `hamn-bench cluster` starts one in each namespace: the barrier the
/// substrate alone gives, measured like the engines' (last peer ready → last peer released).
struct CPGPeer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cpg-peer",
        abstract: "One peer of a raw CPG barrier (started by `hamn-bench cluster`).",
        shouldDisplay: false
    )

    @Option(help: "The CPG group.") var group: String
    @Option(help: "How many peers make the barrier.") var peers = 3
    @Option(help: "Rounds.") var rounds = 300
    @Option(help: "Run this program (no arguments) before each round, as a segment's command.") var command: String?
    @Option(help: "Where to write 'ROUND READY RELEASED' lines (CLOCK_REALTIME seconds).") var out: String

    private final class Rounds: Sendable {
        let counts = Mutex<(members: Int, received: [Int: Int])>((0, [:]))
        let changed = DispatchSemaphore(value: 0)
    }

    func run() throws {
        let state = Rounds()
        let connection = try CPGConnection(group: group, trackQuorum: false) { event in
            switch event {
            case .configuration(let members, _, _):
                state.counts.withLock { $0.members = members.count }
            case .message(_, let bytes):
                guard let round = Int(String(decoding: bytes, as: UTF8.self)) else { return }
                state.counts.withLock { $0.received[round, default: 0] += 1 }
            default:
                break
            }
            state.changed.signal()
        }
        defer { connection.close() }
        let deadline = Date().addingTimeInterval(30)
        while state.counts.withLock({ $0.members }) < peers {
            guard Date() < deadline else { throw BenchError("cpg-peer: fewer than \(peers) peers after 30 s") }
            _ = state.changed.wait(timeout: .now() + 0.1)
        }
        var lines: [String] = []
        for round in 0..<rounds {
            if let command { try Self.runAndWait(command) }
            let ready = Self.wallClock()
            let bytes = Array("\(round)".utf8)
            while try !connection.trySend(bytes) { usleep(200) }
            while state.counts.withLock({ $0.received[round, default: 0] }) < peers {
                guard state.changed.wait(timeout: .now() + 10) == .success else {
                    throw BenchError("cpg-peer: round \(round) did not complete in 10 s")
                }
            }
            lines.append(String(format: "%d %.6f %.6f", round, ready, Self.wallClock()))
        }
        // Leaving does not take back what was sent: the others get this peer's last round.
        try (lines.joined(separator: "\n") + "\n").write(toFile: out, atomically: true, encoding: .utf8)
    }

    static func wallClock() -> Double {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
    }

    static func runAndWait(_ path: String) throws {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
        defer { for pointer in argv { free(pointer) } }
        let spawned = posix_spawn(&pid, path, nil, nil, argv, environ)
        guard spawned == 0 else { throw BenchError("cpg-peer: cannot start \(path): errno \(spawned)") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0, errno == EINTR {}
    }
}
