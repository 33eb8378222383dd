import HamnService
import RulesEngine
import Testing

@Suite("monitor network watcher", .timeLimit(.minutes(1)))
struct MonitorNetworkWatcherTests {
    @Test("operstate and carrier")
    func linkState() {
        #expect(NetworkWatcher.linkState(operstate: "up\n", carrier: "1\n") == .up)
        #expect(NetworkWatcher.linkState(operstate: "up\n", carrier: nil) == .up)
        #expect(NetworkWatcher.linkState(operstate: "unknown\n", carrier: "1\n") == .up)
        #expect(NetworkWatcher.linkState(operstate: "unknown\n", carrier: "0\n") == .down)
        #expect(NetworkWatcher.linkState(operstate: "down\n", carrier: nil) == .down)
        #expect(NetworkWatcher.linkState(operstate: "lowerlayerdown\n", carrier: "0") == .down)
        #expect(NetworkWatcher.linkState(operstate: nil, carrier: nil) == .down)
    }

    @Test("transitions: up to down fails, down to up joins, no baseline no event")
    func transitions() {
        let node = monitorTestNode
        let watcher = NetworkWatcher(interfaces: ["eth0", "eth1", "eth2"], node: node)
        let events = watcher.events(
            from: ["eth0": .up, "eth1": .down, "eth2": .up], to: ["eth0": .down, "eth1": .up, "eth2": .up])
        #expect(
            events == [
                EventRequest(
                    name: "TE_FAIL_NETWORK", state: 0, node: node,
                    resource: ResourceObservation(variable: "network", instance: "Interface=eth0", value: "down")),
                EventRequest(
                    name: "TE_JOIN_NETWORK", state: 0, node: node,
                    resource: ResourceObservation(variable: "network", instance: "Interface=eth1", value: "up")),
            ])
        #expect(watcher.events(from: [:], to: ["eth0": .down]).isEmpty)
    }

    @Test("a fake sysfs tree: flipping operstate raises TE_FAIL_NETWORK then TE_JOIN_NETWORK")
    func fakeSysfs() async throws {
        let sys = try MonitorTempDirectory()
        try sys.write("eth0/operstate", "up\n")
        try sys.write("eth0/carrier", "1\n")
        try sys.write("lo/operstate", "unknown\n")
        try sys.write("lo/carrier", "1\n")
        let node = monitorTestNode
        let watcher = NetworkWatcher(
            interfaces: ["eth0", "lo", "eth9"], node: node, interval: .milliseconds(30), sysRoot: sys.path)
        #expect(watcher.readAll() == ["eth0": .up, "lo": .up, "eth9": .down])  // eth9 does not exist: down

        let events = MonitorCollector<EventRequest>()
        let run = Task { await watcher.run { await events.append($0) } }
        // The behaviour under test: during three intervals after its start the watcher raises
        // nothing for its baseline (eth9 down included). It is also the time the watcher has to
        // read that baseline before eth0 goes down: it shows nothing outside when it has.
        try await Task.sleep(for: .milliseconds(100))
        #expect(await events.values.isEmpty)  // the baseline raises nothing, eth9 down included

        try sys.write("eth0/operstate", "down\n")
        #expect(await events.waitUntil { $0.count == 1 })
        try sys.write("eth0/operstate", "up\n")
        #expect(await events.waitUntil { $0.count == 2 })
        try sys.write("eth9/operstate", "up\n")  // it appears
        #expect(await events.waitUntil { $0.count == 3 })
        run.cancel()
        await run.value

        let seen = await events.values
        #expect(seen.map(\.name) == ["TE_FAIL_NETWORK", "TE_JOIN_NETWORK", "TE_JOIN_NETWORK"])
        #expect(seen.map { $0.resource?.instance } == ["Interface=eth0", "Interface=eth0", "Interface=eth9"])
        #expect(seen.map { $0.resource?.value } == ["down", "up", "up"])
        #expect(seen.allSatisfy { $0.node == node && $0.state == 0 && $0.resource?.variable == "network" })
    }

    @Test("the stream ends watching when its consumer stops")
    func stream() async throws {
        let sys = try MonitorTempDirectory()
        try sys.write("eth0/operstate", "up\n")
        let watcher = NetworkWatcher(
            interfaces: ["eth0"], node: monitorTestNode, interval: .milliseconds(20), sysRoot: sys.path)
        let consumer = Task { () -> EventRequest? in
            for await event in watcher.events() { return event }
            return nil
        }
        // A synchronisation that stays: the watcher has read its baseline (eth0 up) within three
        // intervals, and shows nothing outside when it has; a change before that would be its
        // baseline and raise nothing.
        try await Task.sleep(for: .milliseconds(60))
        try sys.write("eth0/operstate", "down\n")
        let event = await consumer.value
        #expect(event?.name == "TE_FAIL_NETWORK")
    }
}
