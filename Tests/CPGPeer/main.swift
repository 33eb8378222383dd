import CPGTestSupport
import CorosyncTransport
import Foundation
import RulesEngine

#if canImport(Glibc)
    import Glibc
#endif

/// The peer member of the CPG tests (Tests/CorosyncTests/CPGConnectionTests.swift): the tests
/// start it in the cluster's namespace with HAMN_CPG_PEER_GROUP and HAMN_CPG_PEER_LOG set; it
/// joins the group, writes a line per event to the log (`cpgLine`), and obeys commands
/// multicast in the group ("peer:<its pid or *> <command>"):
///   send N TAG      multicast N messages "TAG-<pid>-<i>", one after the other
///   pattern SIZE    multicast cpgPattern(SIZE)
///   leave           CPGConnection.leave()
///   exit            close the connection and end
/// It ends when its event stream ends (left, lost) or on `exit`, writing "end" last; after two
/// minutes at most.
@main
struct CPGPeerMain {
    static func main() async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let group = environment[CPGPeerEnvironment.group], let logPath = environment[CPGPeerEnvironment.log]
        else {
            FileHandle.standardError.write(
                Data("cpg-peer: set \(CPGPeerEnvironment.group) and \(CPGPeerEnvironment.log)\n".utf8))
            exit(2)
        }
        let log = open(logPath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        defer { close(log) }
        func write(_ line: String) {
            let bytes = Array((line + "\n").utf8)
            _ = bytes.withUnsafeBytes { Glibc.write(log, $0.baseAddress, $0.count) }
        }
        let connection: CPGConnection
        do {
            connection = try CPGConnection(group: group)
        } catch {
            write("peer error \(error)")
            write("end")
            throw error
        }
        let me = String(getpid())
        write("peer \(connection.local) max \(connection.maxMessageSize)")
        let timeout = Task {
            try await Task.sleep(nanoseconds: 120_000_000_000)
            connection.close()
        }
        defer { timeout.cancel() }
        // Sends run in order on a task of their own, so that the events keep being logged.
        let (commands, queue) = AsyncStream<[UInt8]>.makeStream()
        let sender = Task {
            for await bytes in commands {
                do {
                    try await connection.multicast(bytes)
                } catch {
                    write("peer send error \(error)")
                }
            }
        }
        loop: for await event in connection.events {
            write(cpgLine(event))
            guard case .message(_, let bytes) = event, bytes.starts(with: Array("peer:".utf8)) else { continue }
            let words = String(decoding: bytes.dropFirst(5), as: UTF8.self).split(separator: " ").map(String.init)
            guard words.count >= 2, words[0] == "*" || words[0] == me else { continue }
            switch words[1] {
            case "send" where words.count == 4:
                for index in 0..<(Int(words[2]) ?? 0) { queue.yield(Array("\(words[3])-\(me)-\(index)".utf8)) }
            case "pattern" where words.count == 3:
                queue.yield(cpgPattern(Int(words[2]) ?? 0))
            case "leave":
                connection.leave()
            case "exit":
                break loop
            default:
                write("peer unknown command \(words)")
            }
        }
        queue.finish()
        await sender.value
        connection.close()
        write("end")
    }
}
