import CPGTestSupport
import ClusterTransport
import CorosyncTransport
import Foundation
import RulesEngine
import Synchronization
import Testing

/// CPGConnection against a real corosync: a one-node cluster in a network namespace per test
/// (see CPGHarness.swift), with peer members in processes of their own.
@Suite(
    "CPGConnection on a real corosync", .serialized,
    .enabled(if: CPGHarness.available, "needs root, corosync and scripts/ns-cluster"),
    .timeLimit(.minutes(2)))
struct CPGConnectionTests {
    private func group() -> String { "hamn-cpg-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))" }

    /// Whether `line` is a configuration change in which `member` (alone) joined.
    private func isJoin(_ line: String, of member: CPGAddress) -> Bool {
        line.hasPrefix("c ") && line.contains(" j=\(member) ")
    }

    /// The lines of `lines` from the first configuration change that shows `member` joining.
    private func from(joinOf member: CPGAddress, _ lines: [String]) -> ArraySlice<String> {
        let joined = lines.firstIndex { isJoin($0, of: member) } ?? lines.endIndex
        return lines[joined...]
    }

    /// Up to and including the first line `line`.
    private func upTo(_ line: String, _ lines: ArraySlice<String>) -> ArraySlice<String> {
        guard let index = lines.firstIndex(of: line) else { return lines }
        return lines[...index]
    }

    @Test("members of one group see the same joins, in the same order")
    func joinsInOneOrder() async throws {
        try await withCPGCluster { cluster in
            let group = group()
            let a = CPGRecorder(try await cluster.connect(group: group))
            #expect(await a.wait { $0.contains { if case .configuration = $0 { true } else { false } } })
            let me = a.connection.local
            #expect(me.nodeID == 1)
            #expect(me.pid == UInt32(getpid()))
            #expect(a.configurations.first.map { ($0.members, $0.joined, $0.left) } ?? ([], [], []) == ([me], [me], []))

            // Two peers start at once: corosync decides their order; every member sees that one.
            let b = try cluster.startPeer(group: group, name: "b")
            let c = try cluster.startPeer(group: group, name: "c")
            #expect(await a.wait(30) { _ in a.configurations.count == 3 }, "\(b.diagnostics)\n\(c.diagnostics)")
            let configurations = a.configurations
            #expect(Set(configurations.last?.members ?? []) == [me, b.address, c.address])
            #expect(Set(configurations.dropFirst().flatMap(\.joined)) == [b.address, c.address])
            #expect(configurations.dropFirst().allSatisfy { $0.joined.count == 1 && $0.left.isEmpty })

            let mark = Array("mark".utf8)
            try await a.connection.multicast(mark)
            let markLine = "m \(me) 4 \(cpgHash(mark))"
            #expect(await b.waitForLine { $0 == markLine })
            #expect(await c.waitForLine { $0 == markLine })
            let expected = Array(upTo(markLine, a.lines[...]))
            #expect(Array(upTo(markLine, b.lines[...])) == Array(from(joinOf: b.address, expected)), "\(b.diagnostics)")
            #expect(Array(upTo(markLine, c.lines[...])) == Array(from(joinOf: c.address, expected)), "\(c.diagnostics)")

            try await a.connection.multicast(cpgCommand("*", "exit"))
            #expect(await b.wait() == 0)
            #expect(await c.wait() == 0)
            // Their connections closed: both left, as A sees.
            #expect(await a.wait { _ in a.configurations.last?.members == [me] })
            #expect(Set(a.configurations.suffix(2).flatMap(\.left)) == [b.address, c.address])
            a.connection.close()
        }
    }

    @Test("messages from three senders arrive in one agreed order at every member, each sender's in its order")
    func agreedOrder() async throws {
        try await withCPGCluster { cluster in
            let group = group()
            let a = CPGRecorder(try await cluster.connect(group: group, trackQuorum: false))
            let b = try cluster.startPeer(group: group, name: "b")
            let c = try cluster.startPeer(group: group, name: "c")
            #expect(
                await a.wait(30) { _ in a.configurations.last?.members.count == 3 },
                "\(b.diagnostics)\n\(c.diagnostics)")
            let count = 200
            try await a.connection.multicast(cpgCommand("*", "send \(count) x"))
            for index in 0..<count {
                try await a.connection.multicast(Array("x-\(getpid())-\(index)".utf8))
            }
            let data: @Sendable ([CPGEvent]) -> Int = { events in
                events.filter {
                    if case .message(_, let bytes) = $0 { bytes.starts(with: Array("x-".utf8)) } else { false }
                }.count
            }
            #expect(await a.wait(60) { data($0) == 3 * count })
            let done = Array("done".utf8)
            try await a.connection.multicast(done)
            let doneLine = "m \(a.connection.local) 4 \(cpgHash(done))"
            #expect(await b.waitForLine { $0 == doneLine })
            #expect(await c.waitForLine { $0 == doneLine })

            // Every member: the same sequence, from the configuration change where all three were in.
            let lines = a.lines
            let joins = [b.address, c.address].map { peer in lines.firstIndex { isJoin($0, of: peer) } ?? -1 }
            let lastJoin = joins[0] > joins[1] ? b.address : c.address
            let common = Array(upTo(doneLine, from(joinOf: lastJoin, lines)))
            #expect(common.count == 3 * count + 3)  // the last join, the command, 600 messages, done
            #expect(Array(upTo(doneLine, from(joinOf: lastJoin, b.lines))) == common, "\(b.diagnostics)")
            #expect(Array(upTo(doneLine, from(joinOf: lastJoin, c.lines))) == common, "\(c.diagnostics)")

            // Each sender's messages in the order it sent them.
            for sender in [a.connection.local, b.address, c.address] {
                let texts = a.messages.filter { $0.0 == sender }.map { String(decoding: $0.1, as: UTF8.self) }.filter {
                    $0.hasPrefix("x-")
                }
                #expect(texts == (0..<count).map { "x-\(sender.pid)-\($0)" })
            }
            // The senders interleave: agreed order is not one sender after the other here.
            let senders = a.messages.filter { $0.1.starts(with: Array("x-".utf8)) }.map(\.0)
            let switches = zip(senders, senders.dropFirst()).filter { $0 != $1 }.count
            print("agreed order: \(3 * count) messages from 3 senders, \(switches) sender switches")
            try await a.connection.multicast(cpgCommand("*", "exit"))
            #expect(await b.wait() == 0)
            #expect(await c.wait() == 0)
            a.connection.close()
        }
    }

    @Test("bytes arrive as sent: empty, zero bytes, every value, 1,000,000 bytes and the limit; beyond it is refused")
    func bytesIntact() async throws {
        try await withCPGCluster { cluster in
            let group = group()
            let a = CPGRecorder(try await cluster.connect(group: group, trackQuorum: false))
            let limit = a.connection.maxMessageSize
            // corosync 3.1.7: IPC_REQUEST_SIZE (1 MiB) less 1 KiB for its headers.
            #expect(limit == 1_047_552)
            let b = try cluster.startPeer(group: group, name: "b")
            #expect(await a.wait(30) { _ in a.configurations.last?.members.count == 2 }, "\(b.diagnostics)")

            let payloads: [[UInt8]] = [
                [], [0], [0, 0, 0, 1, 0], Array(0...255), Array(repeating: 0, count: 4096),
                cpgPattern(1_000_000), cpgPattern(limit, seed: 11),
            ]
            for payload in payloads { try await a.connection.multicast(payload) }
            await #expect(throws: CPGError.messageTooBig(size: limit + 1, limit: limit)) {
                try await a.connection.multicast(cpgPattern(limit + 1))
            }
            let me = a.connection.local
            #expect(await a.wait(30) { _ in a.messages.filter { $0.0 == me }.count == payloads.count })
            #expect(a.messages.filter { $0.0 == me }.map(\.1) == payloads)
            // The peer got the same bytes (length and hash of each).
            let lines = payloads.map { "m \(me) \($0.count) \(cpgHash($0))" }
            #expect(await b.waitForLine(30) { $0 == lines.last! }, "\(b.diagnostics)")
            #expect(b.lines.filter { $0.hasPrefix("m \(me) ") } == lines)

            // And the other way: the limit from the peer, byte for byte.
            try await a.connection.multicast(cpgCommand("*", "pattern \(limit)"))
            #expect(await a.wait(30) { _ in a.messages.contains { $0.0 == b.address } })
            #expect(a.messages.first { $0.0 == b.address }?.1 == cpgPattern(limit))
            try await a.connection.multicast(cpgCommand("*", "exit"))
            #expect(await b.wait() == 0)
            a.connection.close()
        }
    }

    @Test("leave(): the other member sees it in `left`; the leaver's stream ends after its own leave")
    func leave() async throws {
        try await withCPGCluster { cluster in
            let group = group()
            let a = CPGRecorder(try await cluster.connect(group: group))
            let b = try cluster.startPeer(group: group, name: "b")
            let me = a.connection.local
            #expect(await a.wait(30) { _ in a.configurations.last?.members.count == 2 }, "\(b.diagnostics)")

            try await a.connection.multicast(cpgCommand(String(b.pid), "leave"))
            #expect(await a.wait { _ in a.configurations.last?.left == [b.address] })
            let last = a.configurations.last
            #expect(last?.members == [me])
            #expect(last?.joined == [])
            // The peer's stream ended right after the same change.
            #expect(await b.wait() == 0, "\(b.diagnostics)")
            #expect(b.lines.last == "c m=\(me) j= l=\(b.address)", "\(b.diagnostics)")
            #expect(b.ended)

            // Now this process leaves.
            let start = Date()
            a.connection.leave()
            #expect(await a.waitForEnd(5))
            let took = Date().timeIntervalSince(start)
            #expect(a.configurations.last.map { ($0.members, $0.joined, $0.left) } ?? ([me], [], []) == ([], [], [me]))
            #expect(took < 1, "the stream should end at the configuration change, not at the 2 s deadline: \(took) s")
            print("leave: stream ended \(Int(took * 1000)) ms after leave()")
            // Sending after leaving is an error (corosync itself would take the message silently).
            await #expect(throws: CPGError.left) { try await a.connection.multicast([1]) }
            a.connection.close()
        }
    }

    @Test(
        "handler mode: events on the dispatch thread in corosync's order, trySend from inside the handler, nil at the end",
        arguments: [false, true])
    func handlerMode(sharedLoop: Bool) async throws {
        // With a loop given (as the service gives its own), every event comes on that loop's
        // thread, and closing the connection leaves the loop running.
        let loop = sharedLoop ? try EventLoopThread(name: "test-shared") : nil
        defer { loop?.stop() }
        let offLoop = Mutex(0)
        try await withCPGCluster { cluster in
            let group = group()
            // The handler sends "ping 0" at its own join, then "ping k+1" on each "ping k":
            // 100 round trips, each started from inside cpg_dispatch.
            let seen = Mutex<[String]>([])
            let connection = Mutex<CPGConnection?>(nil)
            // "ping 0" goes once: from the handler if the connection is known by the join, else
            // from here after it is.
            let pinged = Mutex(false)
            let firstPing: @Sendable (CPGConnection) -> Void = { connection in
                guard
                    pinged.withLock({
                        let was = $0
                        $0 = true
                        return !was
                    })
                else { return }
                #expect((try? connection.trySend(Array("ping 0".utf8))) == true)
            }
            let handler: @Sendable (CPGEvent?) -> Void = { event in
                if let loop, !loop.isCurrent, event != nil { offLoop.withLock { $0 += 1 } }
                var next: Int?
                switch event {
                case nil:
                    seen.withLock { $0.append("end") }
                case .configuration(_, let joined, _):
                    seen.withLock { $0.append("join") }
                    if !joined.isEmpty, let connection = connection.withLock({ $0 }) { firstPing(connection) }
                case .message(_, let bytes):
                    let text = String(decoding: bytes, as: UTF8.self)
                    seen.withLock { $0.append(text) }
                    if let k = Int(text.dropFirst(5)), k < 99 { next = k + 1 }
                default:
                    break
                }
                if let next, let connection = connection.withLock({ $0 }) {
                    #expect((try? connection.trySend(Array("ping \(next)".utf8))) == true)
                }
            }
            let made = try await CPGTestCluster.inNamespace(cluster.namespace(1)) {
                try CPGConnection(group: group, trackQuorum: false, loop: loop, handler: handler)
            }
            connection.withLock { $0 = made }
            // The join may have come before `connection` was set: start the pings here then.
            if seen.withLock({ $0.contains("join") }) { firstPing(made) }
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline, !seen.withLock({ $0.contains("ping 99") }) {
                try await Task.sleep(for: .milliseconds(20))
            }
            made.leave()
            while Date() < deadline, seen.withLock({ $0.last }) != "end" {
                try await Task.sleep(for: .milliseconds(20))
            }
            let lines = seen.withLock { $0 }
            #expect(lines.first == "join")
            #expect(lines.filter { $0.hasPrefix("ping ") } == (0...99).map { "ping \($0)" }, "\(lines)")
            #expect(lines.last == "end")
            #expect(lines.filter { $0 == "end" }.count == 1)
            made.close()
            #expect(offLoop.withLock { $0 } == 0)
            if let loop {
                let ran = Mutex(false)
                loop.execute { ran.withLock { $0 = true } }
                while Date() < deadline, !ran.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(20)) }
                #expect(ran.withLock { $0 }, "the shared loop still runs after close()")
            }
        }
    }

    @Test("kill -9 of corosync: .lost on every connection, no hang; multicast then throws")
    func lostWhenCorosyncDies() async throws {
        try await withCPGCluster { cluster in
            let group = group()
            let a = CPGRecorder(try await cluster.connect(group: group))
            let b = try cluster.startPeer(group: group, name: "b")
            #expect(await a.wait(30) { _ in a.configurations.last?.members.count == 2 }, "\(b.diagnostics)")
            #expect(await a.wait { $0.contains(.quorum(quorate: true)) })

            let killed = Date()
            try await cluster.script("kill", ["1"])
            #expect(await a.waitForEnd(5))
            let took = Date().timeIntervalSince(killed)
            guard case .lost(let reason) = a.events.last else {
                Issue.record("the last event is not .lost: \(a.events.suffix(3))")
                return
            }
            print("lost \(Int(took * 1000)) ms after kill -9: \(reason)")
            await #expect(throws: CPGError.lost(reason: reason)) { try await a.connection.multicast([1]) }
            let closing = Date()
            a.connection.close()
            a.connection.close()
            #expect(Date().timeIntervalSince(closing) < 1)
            // The peer too: it logged .lost and ended.
            #expect(await b.wait() == 0, "\(b.diagnostics)")
            #expect(b.lines.last?.hasPrefix("lost ") == true, "\(b.diagnostics)")
        }
    }

    @Test("connecting while corosync is not running throws an error naming the cs_error_t")
    func notRunning() async throws {
        try await withCPGCluster { cluster in
            try await cluster.script("kill", ["1"])
            let start = Date()
            do {
                _ = try await cluster.connect(group: group())
                Issue.record("connected without corosync")
            } catch let error as CPGError {
                guard case .notRunning(let function, let code) = error else {
                    Issue.record("unexpected \(error)")
                    return
                }
                #expect(function == "cpg_model_initialize")
                #expect(code.name.hasPrefix("CS_ERR_"))
                #expect("\(error)".contains(code.name))
                #expect("\(error)".contains("is corosync running"))
                print("without corosync: \(error)")
            }
            #expect(Date().timeIntervalSince(start) < 5)
        }
    }

    @Test("votequorum: the one-node cluster is reported quorate first thing; trackQuorum false reports nothing")
    func quorum() async throws {
        try await withCPGCluster { cluster in
            let group = group()
            let a = CPGRecorder(try await cluster.connect(group: group))
            #expect(await a.wait { $0.contains(.quorum(quorate: true)) })
            #expect(a.connection.quorate == true)
            #expect(a.events.filter { if case .quorum = $0 { true } else { false } } == [.quorum(quorate: true)])
            #expect(a.connection.nodes == [1])

            // Another group from the same process, without votequorum.
            let other = CPGRecorder(try await cluster.connect(group: group + "-raw", trackQuorum: false))
            #expect(await other.wait { _ in !other.configurations.isEmpty })
            try await other.connection.multicast([42])
            #expect(await other.wait { _ in !other.messages.isEmpty })
            #expect(!other.events.contains { if case .quorum = $0 { true } else { false } })
            #expect(other.connection.quorate == nil)
            // Groups are apart: A saw nothing of the other group.
            #expect(a.messages.isEmpty)
            other.connection.close()
            a.connection.close()
            #expect(await a.waitForEnd(2))
        }
    }

    @Test("one process cannot join one group twice (a member is node id + pid): CS_ERR_EXIST")
    func sameGroupTwice() async throws {
        try await withCPGCluster { cluster in
            let group = group()
            let a = try await cluster.connect(group: group, trackQuorum: false)
            await #expect(throws: CPGError.call(function: "cpg_join", error: CSError(rawValue: 14))) {
                _ = try await cluster.connect(group: group, trackQuorum: false)
            }
            a.close()
            // Once closed, the group can be joined again.
            let again = try await cluster.connect(group: group, trackQuorum: false)
            again.close()
        }
    }
}

/// CPGConnection on a cluster of three namespaces: one corosync each, a member on each.
@Suite(
    "CPGConnection across three corosync nodes", .serialized,
    .enabled(if: CPGHarness.available, "needs root, corosync and scripts/ns-cluster"),
    .timeLimit(.minutes(3)))
struct CPGThreeNodeTests {
    @Test(
        "one agreed order across nodes; a killed node's member shows in `left`; a partitioned node loses quorum and merges back"
    )
    func threeNodes() async throws {
        try await withCPGCluster(nodes: 3) { cluster in
            let group = "hamn-cpg-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            let a = CPGRecorder(try await cluster.connect(group: group, node: 1))
            let b = try cluster.startPeer(group: group, name: "b", node: 2)
            let c = try cluster.startPeer(group: group, name: "c", node: 3)
            let me = a.connection.local
            #expect(me.nodeID == 1)
            #expect(
                await a.wait(30) { _ in a.configurations.last?.members.count == 3 },
                "\(b.diagnostics)\n\(c.diagnostics)")
            #expect(Set(a.configurations.last?.members ?? []) == [me, b.address, c.address])
            #expect(b.node == 2 && c.node == 3)
            #expect(a.connection.nodes == [1, 2, 3])
            #expect(await a.wait { $0.contains(.quorum(quorate: true)) })

            // One order across the three nodes.
            let count = 50
            try await a.connection.multicast(cpgCommand("*", "send \(count) y"))
            for index in 0..<count { try await a.connection.multicast(Array("y-\(getpid())-\(index)".utf8)) }
            #expect(
                await a.wait(30) { _ in a.messages.filter { $0.1.starts(with: Array("y-".utf8)) }.count == 3 * count })
            let done = Array("done".utf8)
            try await a.connection.multicast(done)
            let doneLine = "m \(me) 4 \(cpgHash(done))"
            #expect(await b.waitForLine { $0 == doneLine })
            #expect(await c.waitForLine { $0 == doneLine })
            let command =
                "m \(me) \(cpgCommand("*", "send \(count) y").count) \(cpgHash(cpgCommand("*", "send \(count) y")))"
            func slice(_ lines: [String]) -> [String] {
                guard let from = lines.firstIndex(of: command), let to = lines.firstIndex(of: doneLine) else {
                    return []
                }
                return Array(lines[from...to])
            }
            #expect(slice(a.lines).count == 3 * count + 2)
            #expect(slice(b.lines) == slice(a.lines), "\(b.diagnostics)")
            #expect(slice(c.lines) == slice(a.lines), "\(c.diagnostics)")

            // kill -9 of node 3's corosync: its member leaves the others' group.
            let killed = Date()
            try await cluster.script("kill", ["3"])
            #expect(await a.wait(20) { _ in a.configurations.last?.left == [c.address] })
            let membership = Date().timeIntervalSince(killed)
            print("three nodes: node 3 killed, its member left after \(String(format: "%.2f", membership)) s")
            #expect(Set(a.configurations.last?.members ?? []) == [me, b.address])
            #expect(a.connection.nodes == [1, 2])
            #expect(a.connection.quorate == true)
            #expect(await c.wait() == 0, "\(c.diagnostics)")
            #expect(c.lines.last?.hasPrefix("lost ") == true, "\(c.diagnostics)")
            let leftLine = a.lines.last!
            #expect(await b.waitForLine { $0 == leftLine }, "\(b.diagnostics)")

            // Node 1's link down: alone of 3, no quorum; B leaves A's view.
            let cut = Date()
            try await cluster.script("link", ["1", "down"])
            #expect(
                await a.wait(20) {
                    $0.last == .quorum(quorate: false)
                        || (a.connection.quorate == false && a.configurations.last?.left == [b.address])
                })
            #expect(await a.wait(5) { _ in a.configurations.last?.left == [b.address] })
            print(
                "three nodes: link 1 down, quorum lost after \(String(format: "%.2f", Date().timeIntervalSince(cut))) s"
            )
            #expect(a.connection.quorate == false)
            #expect(a.configurations.last?.members == [me])
            // The loss of quorum comes before the configuration change that shows B gone, so that
            // nothing looks quorate in between.
            let lostQuorum = a.events.lastIndex(of: .quorum(quorate: false))
            let bGone = a.events.lastIndex {
                if case .configuration(_, _, let left) = $0 { left == [b.address] } else { false }
            }
            #expect(lostQuorum != nil && bGone != nil && lostQuorum! < bGone!, "\(a.events.suffix(4))")

            // Back: the two partitions merge, quorate again, B joins A's view.
            let healed = Date()
            try await cluster.script("link", ["1", "up"])
            #expect(
                await a.wait(30) { _ in a.connection.quorate == true && a.configurations.last?.joined == [b.address] })
            print("three nodes: link 1 up, merged after \(String(format: "%.2f", Date().timeIntervalSince(healed))) s")
            #expect(Set(a.configurations.last?.members ?? []) == [me, b.address])
            let quorum = a.events.compactMap { if case .quorum(let quorate) = $0 { quorate } else { nil } }
            #expect(quorum == [true, false, true])
            let regained = a.events.lastIndex(of: .quorum(quorate: true))
            let bBack = a.events.lastIndex {
                if case .configuration(_, let joined, _) = $0 { joined == [b.address] } else { false }
            }
            print(
                "three nodes: after the merge, quorum \(regained! < bBack! ? "before" : "after") the configuration change"
            )

            try await a.connection.multicast(cpgCommand("*", "exit"))
            #expect(await b.wait() == 0, "\(b.diagnostics)")
            a.connection.close()
        }
    }
}
