import Foundation
import RecoveryPrograms
import RulesEngine
import Testing

@Suite("The wire format: binary segmentDone, JSON for the rest, every malformed message refused")
struct WireFormatTests {
    static let results = [
        CommandResult(
            command: "/usr/bin/stamp n1 s42", line: 85, termination: .exited(0), accepted: true, duration: 0.0012,
            outputTail: "", endedAt: 1_795_450_534.117812),
        CommandResult(
            command: "kill -TERM $$", line: 3, termination: .signaled(15), accepted: false, duration: 0.25,
            outputTail: "Terminé ✓\n", endedAt: nil),
        CommandResult(
            command: "sleep 600", line: 4, termination: .timedOut, accepted: false, duration: 30, outputTail: "x",
            endedAt: -1.5),
        CommandResult(
            command: "/nonexistent", line: Int(Int32.max), termination: .couldNotStart("no such file"), accepted: false,
            duration: 0, outputTail: String(repeating: "z", count: 4096), endedAt: 0),
        CommandResult(
            command: "", line: 0, termination: .exited(-1), accepted: false, duration: .infinity, outputTail: "",
            endedAt: nil),
    ]

    static let segmentDone = WireMessage.cluster(.segmentDone(eventID: 1 << 40, segment: 7, results: results))

    @Test("segmentDone round-trips every termination, non-ASCII text, nil and extreme values, in a binary body")
    func segmentDoneRoundTrip() throws {
        let bytes = WireFormat.encode(Self.segmentDone)
        #expect(Array(bytes.prefix(6)) == Array("HAMN".utf8) + [3, 1])
        #expect(try WireFormat.decode(bytes) == Self.segmentDone)
        // Version 2: the same body after another version byte.
        let old = try #require(WireFormat.encode(Self.segmentDone, version: 2))
        #expect(old == Array("HAMN".utf8) + [2] + bytes.dropFirst(5))
        #expect(try WireFormat.decode(old) == Self.segmentDone)
        let empty = WireMessage.cluster(.segmentDone(eventID: 0, segment: -3, results: []))
        #expect(try WireFormat.decode(WireFormat.encode(empty)) == empty)
    }

    @Test("the other messages are JSON after the encoding byte 0, and round-trip")
    func jsonRoundTrip() throws {
        let node = ClusterNode(name: "n1", number: 1)
        let messages: [WireMessage] = [
            .form,
            .cluster(.resume(cancelQueued: true)),
            .cluster(.raise(EventRequest(name: "TE_PAGING", state: 2, node: node))),
            .cluster(.reloadRules),
            .cluster(
                .syncTree(
                    request: "n1/1",
                    tree: ConfigurationTree(files: [.init(path: "a.rp", mode: 0o644, contents: Data([0, 255, 10]))]))),
            .cluster(.syncRollback(request: "n1/2")),
            .cluster(.syncOutcome(request: "n1/1", node: "n2", digest: nil, problem: "rules.hacmprd:3:1: error")),
            .cluster(.instancesAsked(request: "n1/1")),
            .cluster(
                .instances(
                    request: "n1/1", node: "n2",
                    instances: [.init(event: "db2_paging", state: 0, instance: "NodeNum=2", armed: true, last: nil)])),
        ]
        for message in messages {
            for version: UInt8 in [2, 3] {
                let bytes = try #require(WireFormat.encode(message, version: version))
                #expect(Array(bytes.prefix(6)) == Array("HAMN".utf8) + [version, 0])
                #expect(try WireFormat.decode(bytes) == message)
            }
        }
    }

    /// Version 3 is version 2 with resume's modes: a resume with a mode is not encoded in 2, and
    /// a version 2 resume that carries one anyway is the plain resume.
    @Test("resume's modes are version 3: not encoded in 2; in a version 2 message, the plain resume")
    func resumeModes() throws {
        let retry = WireMessage.cluster(.resume(.retry, cancelQueued: true, user: "root"))
        let plain = WireMessage.cluster(.resume(.skip, cancelQueued: true, user: "root"))
        #expect(WireFormat.lowestVersion(for: retry) == 3)
        #expect(WireFormat.lowestVersion(for: plain) == 2)
        #expect(WireFormat.encode(retry, version: 2) == nil)
        #expect(WireFormat.encode(.cluster(.resume(.continue, cancelQueued: false, user: nil)), version: 2) == nil)
        #expect(WireFormat.encode(plain, version: 2) != nil)
        let v3 = try #require(WireFormat.encode(retry, version: 3))
        #expect(try WireFormat.decode(v3) == retry)
        // The same body after version byte 2 (a sender that should not have): the plain resume.
        #expect(try WireFormat.decode(Array("HAMN".utf8) + [2] + v3.dropFirst(5)) == plain)
        // An engine limited to 2 refuses 3, naming what it speaks.
        #expect(
            failure(v3, accepting: [2]) == "message format version 3; this engine speaks version 2")
        #expect(
            failure(Array("HAMN".utf8) + [4, 0], accepting: WireFormat.versions)
                == "message format version 4; this engine speaks versions 2 and 3")
        #expect(WireFormat.versions(upTo: 2) == [2])
        #expect(WireFormat.versions(upTo: nil) == [2, 3])
        #expect(WireFormat.versions(upTo: 1) == [2])
    }

    @Test("every truncation of a segmentDone is refused with a reason, never a crash")
    func truncations() {
        let bytes = WireFormat.encode(Self.segmentDone)
        for length in 0..<bytes.count {
            #expect(throws: WireFormat.DecodingFailure.self) { try WireFormat.decode(Array(bytes.prefix(length))) }
        }
    }

    private func failure(_ bytes: [UInt8], accepting: [UInt8] = WireFormat.versions) -> String {
        do {
            _ = try WireFormat.decode(bytes, accepting: accepting)
            return "decoded"
        } catch {
            return error.description
        }
    }

    @Test("malformed binary bodies: each refused with what is wrong")
    func malformedBodies() throws {
        let header = Array("HAMN".utf8) + [3, 1]
        let ids = [UInt8](repeating: 0, count: 16)
        // 2^32-1 results announced in a few bytes: refused before anything is reserved.
        #expect(failure(header + ids + [0xFF, 0xFF, 0xFF, 0xFF]).contains("4294967295 results in 0 bytes"))
        // A string longer than what is left.
        let oneResult = ids + [1, 0, 0, 0] + [0xFF, 0, 0, 0] + [UInt8](repeating: 0, count: 40)
        #expect(failure(header + oneResult).contains("command: 255 bytes announced"))
        // Invalid UTF-8 in the command.
        let good = WireFormat.encode(.cluster(.segmentDone(eventID: 1, segment: 1, results: [Self.results[2]])))
        var bad = good
        bad[6 + 20 + 4] = 0xC3
        bad[6 + 20 + 5] = 0x28
        #expect(failure(bad).contains("command: not UTF-8"))
        // An unknown termination tag: after the ids, the count, "sleep 600" and the line.
        var tag = good
        tag[6 + 20 + 4 + 9 + 8] = 9
        #expect(failure(tag).contains("unknown termination 9"))
        // A flag that is neither 0 nor 1 (accepted follows the tag of .timedOut).
        var flag = good
        flag[6 + 20 + 4 + 9 + 8 + 1] = 2
        #expect(failure(flag).contains("accepted: 2 is not 0 or 1"))
        // Bytes after the last result.
        #expect(failure(good + [0]).contains("1 bytes after the last result"))
        // An encoding this engine does not know.
        #expect(failure(Array("HAMN".utf8) + [2, 9, 1, 2]).contains("unknown body encoding 9"))
        #expect(failure(Array("HAMN".utf8) + [3]).contains("malformed version 3 message (5 bytes): no body"))
        #expect(
            failure(Array("HAMN".utf8) + [1] + Array("{}".utf8)).contains(
                "version 1; this engine speaks versions 2 and 3"))
        #expect(
            try WireFormat.decode(good) == .cluster(.segmentDone(eventID: 1, segment: 1, results: [Self.results[2]])))
    }

    @Test("random bytes after a valid header are refused, never a crash (10,000 seeds)")
    func randomBodies() {
        var generator = SeededGenerator(seed: 42)
        for _ in 0..<10_000 {
            let length = Int(generator.next() % 200)
            let body = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            let version = UInt8(2 + generator.next() % 2)
            let bytes = Array("HAMN".utf8) + [version, 1] + body
            // Either a failure with a reason, or (rarely) a valid message that re-encodes to itself.
            if let message = try? WireFormat.decode(bytes) {
                #expect(WireFormat.encode(message, version: version) == bytes)
            }
        }
    }
}
