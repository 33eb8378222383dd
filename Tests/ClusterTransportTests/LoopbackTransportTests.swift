import ClusterTransport
import RulesEngine
import Testing

@Suite("loopback transport", .timeLimit(.minutes(1)))
struct LoopbackTransportTests {
    static func take(_ count: Int, from transport: LoopbackTransport) async -> [Delivery] {
        var deliveries: [Delivery] = []
        for await delivery in transport.deliveries {
            deliveries.append(delivery)
            if deliveries.count == count { break }
        }
        return deliveries
    }

    @Test("every member gets the same deliveries in the same order")
    func agreedOrder() async throws {
        let hub = LoopbackHub(seed: 7)
        let nodes = (1...3).map { ClusterNode(name: "n\($0)", number: $0) }
        var transports: [LoopbackTransport] = []
        for node in nodes { transports.append(await hub.join(node)) }
        for round in 0..<20 {
            for transport in transports {
                await transport.multicast(.resume(cancelQueued: round % 2 == 0))
            }
        }
        // n3 joined last: it sees its own join, then the 60 messages.
        let members = transports
        let seen = await withTaskGroup(of: (Int, [Delivery]).self) { group in
            for (index, transport) in members.enumerated() {
                let count = members.count - index + 60
                group.addTask { (index, await Self.take(count, from: transport)) }
            }
            var all: [Int: [Delivery]] = [:]
            for await (index, deliveries) in group { all[index] = deliveries }
            return all
        }
        let tails = try (0..<3).map { Array(try #require(seen[$0]).suffix(60)) }
        #expect(tails[0] == tails[1])
        #expect(tails[1] == tails[2])
        // Each sender's messages in the order it sent them.
        for sender in nodes {
            let flags = tails[0].compactMap { delivery -> Bool? in
                if case .message(let from, .resume(let cancel, _, _)) = delivery, from == sender { cancel } else { nil }
            }
            #expect(flags == (0..<20).map { $0 % 2 == 0 })
        }
    }

    @Test("a crash is a membership change for the others; the crashed node's stream ends")
    func crash() async {
        let hub = LoopbackHub()
        let n1 = ClusterNode(name: "n1", number: 1)
        let n2 = ClusterNode(name: "n2", number: 2)
        let first = await hub.join(n1)
        let second = await hub.join(n2)
        await hub.crash(n2)
        let deliveries = await Self.take(3, from: first)
        #expect(
            deliveries == [
                .membership(MembershipChange(view: 1, members: [n1], joined: [n1], left: [])),
                .membership(MembershipChange(view: 2, members: [n1, n2], joined: [n2], left: [])),
                .membership(MembershipChange(view: 3, members: [n1], joined: [], left: [n2])),
            ])
        var count = 0
        for await _ in second.deliveries { count += 1 }
        #expect(count == 1)  // its own join, then the end
    }

    @Test("one node alone: the embedded default")
    func alone() async {
        let node = ClusterNode(name: "host", number: 1)
        let transport = await LoopbackTransport.alone(node)
        await transport.multicast(.recovery(enabled: false, nodes: ["host"]))
        let deliveries = await Self.take(2, from: transport)
        #expect(
            deliveries == [
                .membership(MembershipChange(view: 1, members: [node], joined: [node], left: [])),
                .message(from: node, .recovery(enabled: false, nodes: ["host"])),
            ])
    }
}
