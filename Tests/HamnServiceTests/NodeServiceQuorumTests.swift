import ClusterTransport
import Foundation
import HamnConfiguration
import Logging
import RecoveryPrograms
import RulesEngine
import RulesParser
import Synchronization
import Testing

@testable import HamnService

/// A transport driven by the test: it hands out the deliveries it is given, echoes this node's
/// multicasts, and reports the quorum flag it is set to. Its notices are given separately, so a
/// test can hold a quorum notice back (as a busy notice task does on the real transport).
private final class ScriptedTransport: ClusterTransport {
    let node: ClusterNode
    let deliveries: AsyncStream<Delivery>
    let notices: AsyncStream<TransportNotice>
    let deliver: AsyncStream<Delivery>.Continuation
    let notice: AsyncStream<TransportNotice>.Continuation
    let quorate = Mutex(true)
    let eventLoop: EventLoopThread?
    /// What `wireAgreement` says (nil: an in-process transport's).
    let wire = Mutex<WireAgreement?>(nil)
    var wireAgreement: WireAgreement? { wire.withLock { $0 } }

    init(node: ClusterNode, eventLoop: EventLoopThread? = nil) {
        self.node = node
        self.eventLoop = eventLoop
        (deliveries, deliver) = AsyncStream.makeStream()
        (notices, notice) = AsyncStream.makeStream()
    }

    var isQuorate: Bool { quorate.withLock { $0 } }

    /// What this node multicast, in order.
    let sent = Mutex<[ClusterMessage]>([])

    func multicast(_ message: ClusterMessage) async {
        sent.withLock { $0.append(message) }
        deliver.yield(.message(from: node, message))
    }

    func leave() async {
        deliver.finish()
        notice.finish()
    }
}

/// The journal's entries and notes, in memory.
private final class NotesJournal: EventJournal {
    let notes = Mutex<[String]>([])
    let entries = Mutex<[JournalEntry]>([])

    func append(_ entry: JournalEntry, at time: Date) throws {
        entries.withLock { $0.append(entry) }
    }
    func recordArming(trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date) throws {
    }
    func note(_ text: String, kind: String, at time: Date) throws {
        notes.withLock { $0.append(text) }
    }
    func historyReport(limit: Int) throws -> (text: String, json: String) { ("", "[]") }
    func logTail(after rowID: Int64?, limit: Int) throws -> [JournalLogLine] { [] }
}

/// A rule book from (name, state, .rp text) triples; each .rp must parse cleanly.
private func ruleBook(_ entries: [(String, Int, String)]) -> RuleBook {
    RuleBook(
        entries.map { name, state, text in
            let (program, diagnostics) = RecoveryProgramParser.parse(text, file: "\(name).rp")
            precondition(diagnostics.allSatisfy { $0.severity == .warning }, "\(diagnostics)")
            let definition = EventDefinition(
                trigger: .init(name: name, state: state), displayName: name, recoveryProgram: "/rp/\(name)_\(state).rp",
                recoveryType: 2, recoveryLevel: 0, monitoring: nil, line: 1, recoveryProgramLine: 3)
            return RuleBook.Rule(definition: definition, program: program)
        })
}

private func eventually(_ seconds: Double, _ condition: () -> Bool) async -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while Date() < deadline {
        if condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return condition()
}

/// A new scratch directory (the caller removes it), and node n1's configuration in a cluster of
/// n1 and n2 with its files there.
private func twoNodes(_ prefix: String) throws -> (URL, ClusterNode, ClusterNode, ServiceConfiguration) {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let n1 = ClusterNode(name: "n1", number: 1)
    let n2 = ClusterNode(name: "n2", number: 2)
    let configuration = ServiceConfiguration(
        node: n1, nodes: [n1, n2], rules: directory.path + "/rules.hacmprd", journal: directory.path + "/journal.db",
        socket: directory.path + "/socket")
    return (directory, n1, n2, configuration)
}

@Suite("the service and quorum", .timeLimit(.minutes(1)))
struct NodeServiceQuorumTests {
    /// Two faults this guards against: a membership change that lost quorum, applied before the
    /// quorum notice (on a stream of its own), started a TE_FAIL_NODE segment; and quorum coming
    /// back (the notice) released the waiting segments before the membership change that came
    /// with it (a heal, whose merge rule was about to stop this node). Quorum now reaches the
    /// coordinator in the deliveries' order only.
    @Test(
        "quorum is applied in the deliveries' order: lost before the change, regained only by its delivery, never by the notice"
    )
    func quorumInDeliveryOrder() async throws {
        let (directory, n1, n2, configuration) = try twoNodes("hamn-quorum")
        defer { try? FileManager.default.removeItem(at: directory) }
        let marker = directory.appendingPathComponent("ran").path

        let rules = ruleBook([("TE_FAIL_NODE", 0, "other \"/usr/bin/touch \(marker)\" 0 NULL\n")])
        let transport = ScriptedTransport(node: n1)
        let journal = NotesJournal()
        let service = NodeService(
            configuration: configuration, rules: rules, catalogue: .builtIn, transport: transport, journal: journal,
            logger: Logger(label: "test"), loop: try EventLoopThread(name: "quorum-test"))
        let running = Task { await service.run() }

        transport.deliver.yield(.membership(MembershipChange(view: 1, members: [n1, n2], joined: [n1, n2], left: [])))
        // Quorum goes with n2: lost first, then the change.
        transport.quorate.withLock { $0 = false }
        transport.deliver.yield(.quorum(false))
        transport.deliver.yield(.membership(MembershipChange(view: 2, members: [n1], joined: [], left: [n2])))

        let waits = JournalEntry.waitsForQuorum(eventID: 1, name: "TE_FAIL_NODE", segment: 0)
        #expect(await eventually(5) { journal.entries.withLock { $0.contains(waits) } })
        #expect(
            journal.entries.withLock { $0.first { if case .quorum = $0 { true } else { false } } }
                == .quorum(false, waiting: 0))

        // votequorum says quorum is back (the notice and the flag), but the membership has not
        // delivered it: nothing runs.
        transport.quorate.withLock { $0 = true }
        transport.notice.yield(.quorum(true))
        // The behaviour under test: the notice alone runs nothing, however long it is given.
        try await Task.sleep(for: .milliseconds(500))
        #expect(!FileManager.default.fileExists(atPath: marker))

        // Delivered: the waiting segment runs.
        transport.deliver.yield(.quorum(true))
        #expect(await eventually(10) { FileManager.default.fileExists(atPath: marker) })
        #expect(journal.entries.withLock { $0.contains(.quorum(true, waiting: 1)) })

        await transport.leave()
        await running.value
    }

    /// `hamn_quorate` once showed the coordinator's quorum, which comes back only with the
    /// delivery: while `status` said "quorum: yes (back; ...)", the gauge still said 0.
    @Test(
        "hamn_quorate is the quorum status shows (the transport's flag); hamn_coordinator_quorate the coordinator's, back only with the delivery"
    )
    func quorumMetrics() async throws {
        let (directory, n1, n2, configuration) = try twoNodes("hamn-quorum-metrics")
        defer { try? FileManager.default.removeItem(at: directory) }
        let transport = ScriptedTransport(node: n1)
        let journal = NotesJournal()
        let service = NodeService(
            configuration: configuration, rules: ruleBook([]), catalogue: .builtIn, transport: transport,
            journal: journal, logger: Logger(label: "test"), loop: try EventLoopThread(name: "quorum-metrics"))
        let running = Task { await service.run() }
        /// The quorum gauges' lines of the exposition (sorted: the families come in no set order), and `status`'s quorate flag.
        func observed() async -> (gauges: [String], status: Bool?) {
            let gauges = service.metrics.exposition().split(separator: "\n").map(String.init).filter {
                $0.hasPrefix("hamn_quorate ") || $0.hasPrefix("hamn_coordinator_quorate ")
            }.sorted()
            guard case .report(_, let json) = await service.handle(.status()) else { return (gauges, nil) }
            return (gauges, json.contains("\"quorate\":true") ? true : json.contains("\"quorate\":false") ? false : nil)
        }

        transport.deliver.yield(.membership(MembershipChange(view: 1, members: [n1, n2], joined: [n1, n2], left: [])))
        transport.quorate.withLock { $0 = false }
        transport.deliver.yield(.quorum(false))
        transport.deliver.yield(.membership(MembershipChange(view: 2, members: [n1], joined: [], left: [n2])))
        #expect(await eventually(5) { journal.entries.withLock { $0.contains(.quorum(false, waiting: 0)) } })
        var now = await observed()
        #expect(now.status == false)
        #expect(now.gauges == ["hamn_coordinator_quorate 0.0", "hamn_quorate 0.0"])

        // votequorum says quorum is back; the coordinator has not had it delivered.
        transport.quorate.withLock { $0 = true }
        transport.notice.yield(.quorum(true))
        now = await observed()
        #expect(now.status == true)
        #expect(now.gauges == ["hamn_coordinator_quorate 0.0", "hamn_quorate 1.0"])

        transport.deliver.yield(.quorum(true))
        #expect(await eventually(5) { journal.entries.withLock { $0.contains(.quorum(true, waiting: 0)) } })
        now = await observed()
        #expect(now.status == true)
        #expect(now.gauges == ["hamn_coordinator_quorate 1.0", "hamn_quorate 1.0"])

        await transport.leave()
        await running.value
    }

    @Test("a transport that delivers on another thread than the service's is a fatal error, not a silent hang")
    func foreignLoop() async throws {
        let n1 = ClusterNode(name: "n1", number: 1)
        let configuration = ServiceConfiguration(
            node: n1, nodes: [n1], rules: "/nonexistent/rules.hacmprd", journal: "/nonexistent/journal.db",
            socket: "/nonexistent/socket")
        let other = try EventLoopThread(name: "other-loop")
        let own = try EventLoopThread(name: "service-loop")
        defer {
            other.stop()
            own.stop()
        }
        let transport = ScriptedTransport(node: n1, eventLoop: other)
        let service = NodeService(
            configuration: configuration, rules: ruleBook([]), catalogue: .builtIn, transport: transport,
            journal: NotesJournal(), logger: Logger(label: "test"), loop: own)
        await service.run()
        #expect(
            await service.fatalReason
                == "the transport delivers on the thread other-loop, not on the service's (service-loop)")
    }

    /// The control socket answers a moment before the web view's listener is bound: `status`
    /// says so then, not "off" (the browser test once read "off" and failed).
    @Test("status before the web view listens: starting (off only when not configured); then its URL")
    func webViewStarting() async throws {
        let (directory, n1, _, configured) = try twoNodes("hamn-webstart")
        defer { try? FileManager.default.removeItem(at: directory) }
        for http in [true, false] {
            var configuration = configured
            if !http { configuration.http = nil }
            let transport = ScriptedTransport(node: n1)
            let service = NodeService(
                configuration: configuration, rules: ruleBook([]), catalogue: .builtIn, transport: transport,
                journal: NotesJournal(), logger: Logger(label: "test"), loop: try EventLoopThread(name: "web-test"))
            guard case .report(let text, let json) = await service.handle(.status()) else {
                Issue.record("status is not a report")
                return
            }
            let line = text.split(separator: "\n").first { $0.hasPrefix("web view:") }
            #expect(line == (http ? "web view: starting" : "web view: off (http: enabled: false)"))
            #expect(json.contains(http ? #""reason":"starting""# : #""reason":"off""#))
            await service.setWebView(.listening(url: "http://127.0.0.1:9665/"))
            guard case .report(let after, _) = await service.handle(.status()) else { return }
            #expect(
                after.contains("web view: http://127.0.0.1:9665/ (read-only; metrics at http://127.0.0.1:9665/metrics)")
            )
        }
    }

    /// Rolling upgrades: resume's modes are wire version 3; while a member speaks only 2 the
    /// service refuses them (the transport could not send them), and says who is behind.
    @Test(
        "resume --retry/--continue and sync while the cluster speaks wire 2: refused (wire-version); the plain resume is not"
    )
    func resumeModesNeedWireThree() async throws {
        let (directory, n1, n2, configuration) = try twoNodes("hamn-wire")
        defer { try? FileManager.default.removeItem(at: directory) }
        let transport = ScriptedTransport(node: n1)
        let member = { (node: ClusterNode, versions: [Int]) in
            WireAgreement.Member(
                address: CPGAddress(nodeID: UInt32(node.number), pid: 7), name: node.name, versions: versions)
        }
        let mixed = WireAgreement(members: [member(n1, [2, 3]), member(n2, [2])])
        transport.wire.withLock { $0 = mixed }
        let journal = NotesJournal()
        let service = NodeService(
            configuration: configuration, rules: ruleBook([]), catalogue: .builtIn, transport: transport,
            journal: journal, logger: Logger(label: "test"), loop: try EventLoopThread(name: "wire-test"))
        let running = Task { await service.run() }
        transport.deliver.yield(.membership(MembershipChange(view: 1, members: [n1, n2], joined: [n1, n2], left: [])))
        transport.notice.yield(.wire(mixed))
        #expect(await eventually(5) { journal.notes.withLock { $0 == ["wire version 2 agreed (members n1 n2)"] } })

        let refused = ControlAnswer.failed(
            ControlError(.wireVersion, "not every member speaks wire 3 (node n2 speaks 2): upgrade every node first"))
        #expect(await service.handle(.resumeRetry(cancelQueued: true)) == refused)
        #expect(await service.handle(.resumeContinue(cancelQueued: true)) == refused)
        // sync too: n2's build has no sync, and would drop the tree without answering.
        #expect(
            await service.handle(.sync(rollback: false))
                == .failed(
                    ControlError(
                        .wireVersion,
                        "sync: not every member speaks wire 3 (node n2 speaks 2): upgrade every node first")))
        #expect(
            await service.handle(.resume(cancelQueued: true))
                == .done(text: "resume sent: the rest of the failed event is skipped (queued events cancelled)"))
        guard case .report(_, let json) = await service.handle(.status()) else {
            Issue.record("status is not a report")
            return
        }
        #expect(json.contains("\"wire_version\":2"))

        // n2 upgraded: every member speaks 3.
        transport.wire.withLock { $0 = WireAgreement(members: [member(n1, [2, 3]), member(n2, [2, 3])]) }
        #expect(
            await service.handle(.resumeRetry(cancelQueued: true))
                == .done(
                    text:
                        "resume --retry sent: the failed commands run again where they failed (queued events cancelled)"
                ))
        await transport.leave()
        await running.value
    }
}

/// `status --all` (issue 15, item 4): the question goes through the cluster, every member
/// answers with its instances; the answer names the members that left or did not answer.
@Suite("status --all", .timeLimit(.minutes(1)))
struct StatusAllTests {
    @Test("each member's instances as it answered; a member that left, and one silent for 5 s, named")
    func everyMember() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("hamn-all-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let (n1, n2, n3) = (
            ClusterNode(name: "n1", number: 1), ClusterNode(name: "n2", number: 2), ClusterNode(name: "n3", number: 3)
        )
        let configuration = ServiceConfiguration(
            node: n1, nodes: [n1, n2, n3], rules: directory.path + "/rules.hacmprd",
            journal: directory.path + "/journal.db", socket: directory.path + "/socket")
        let transport = ScriptedTransport(node: n1)
        let service = NodeService(
            configuration: configuration, rules: ruleBook([]), catalogue: .builtIn, transport: transport,
            journal: NotesJournal(), logger: Logger(label: "test"), loop: try EventLoopThread(name: "all-test"))
        let running = Task { await service.run() }
        transport.deliver.yield(
            .membership(MembershipChange(view: 1, members: [n1, n2, n3], joined: [n1, n2, n3], left: [])))
        var member = false
        for _ in 0..<250 where !member {
            member = await service.isMember
            if !member { try await Task.sleep(for: .milliseconds(20)) }
        }
        #expect(member)

        func asked(_ request: String) async -> Bool {
            await eventually(5) { transport.sent.withLock { $0.contains(.instancesAsked(request: request)) } }
        }
        // n1 answers itself (its question and answer are echoed), n2 answers, n3 leaves.
        let first = Task { await service.handle(.status(all: true)) }
        #expect(await asked("n1/1"))
        let paging = InstanceSummary(event: "db2_paging", state: 0, instance: "NodeNum=2", armed: true, last: "40")
        transport.deliver.yield(.message(from: n2, .instances(request: "n1/1", node: "n2", instances: [paging])))
        transport.deliver.yield(.membership(MembershipChange(view: 2, members: [n1, n2], joined: [], left: [n3])))
        #expect(
            await first.value
                == .report(
                    text:
                        "n1: no instances\nn2: instances:\n  db2_paging state 0 NodeNum=2: armed, last 40\nn3: left the cluster before answering",
                    json:
                        #"{"nodes":{"n1":[],"n2":[{"armed":true,"event":"db2_paging","instance":"NodeNum=2","last":"40","state":0}]},"not_answered":{"n3":"left the cluster before answering"}}"#
                ))
        #expect(transport.sent.withLock { $0.contains(.instances(request: "n1/1", node: "n1", instances: [])) })

        // n2 does not answer: named once the wait is over.
        let second = await service.handle(.status(all: true))
        #expect(
            second.text
                == "n1: no instances\nn2: NO ANSWER within 5 s (an engine from before status --all drops the question)")
        await transport.leave()
        await running.value
    }
}
