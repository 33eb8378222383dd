import HamnConfiguration
import RulesEngine
import RulesParser

/// Watches the cluster's network interfaces (``ServiceConfiguration/networks``) and asks for
/// `TE_FAIL_NETWORK` when one goes down, `TE_JOIN_NETWORK` when it comes back.
///
/// - Every ``interval`` it reads `<sysRoot>/<interface>/operstate` (and `carrier`). An interface
///   is up when `operstate` is `up`, or `unknown` (loopback, some virtual devices) with
///   `carrier` 1; anything else (`down`, `lowerlayerdown`, `dormant`, ...) is down. An interface
///   that does not exist (or cannot be read) is down.
/// - The first reading is the baseline: no event for it, whatever it is (an interface down when
///   the service starts is not a failure the service saw happen).
/// - On each up→down change: `EventRequest(name: "TE_FAIL_NETWORK", state: 0, node: node,
///   resource: ResourceObservation(variable: "network", instance: "Interface=eth0", value: "down"))`;
///   on down→up the same with `TE_JOIN_NETWORK` and `"up"`. A change shorter than the interval
///   can go unseen.
/// - ``sysRoot`` (default `/sys/class/net`) is injectable: tests point it at a directory of
///   their own and write the files.
public struct NetworkWatcher: Sendable {
    public enum LinkState: String, Sendable, Hashable {
        case up
        case down
    }

    public var interfaces: [String]
    public var node: ClusterNode
    public var interval: Duration
    public var sysRoot: String

    public init(
        interfaces: [String], node: ClusterNode, interval: Duration = .seconds(2), sysRoot: String = "/sys/class/net"
    ) {
        var seen = Set<String>()
        self.interfaces = interfaces.filter { seen.insert($0).inserted }
        self.node = node
        self.interval = interval
        self.sysRoot = sysRoot
    }

    /// The watcher of a configuration: its networks, node and network interval.
    public init(configuration: ServiceConfiguration, sysRoot: String = "/sys/class/net") {
        self.init(
            interfaces: configuration.networks, node: configuration.node,
            interval: MonitorPlan.duration(max(configuration.networkInterval, 0.1)), sysRoot: sysRoot)
    }

    /// Whether `operstate` and `carrier` (their file texts, nil when unreadable) mean up.
    public static func linkState(operstate: String?, carrier: String?) -> LinkState {
        switch operstate?.monitorTrimmedString.lowercased() {
        case "up"?: return .up
        case "unknown"?: return carrier?.monitorTrimmedString == "1" ? .up : .down
        default: return .down
        }
    }

    /// An interface's state now.
    public func read(_ interface: String) -> LinkState {
        // An interface name never holds a '/': such a name is no interface.
        guard !interface.isEmpty, !interface.contains("/"), interface != ".", interface != ".." else { return .down }
        let directory = sysRoot + "/" + interface
        let operstate = try? MonitorSystem.readText(directory + "/operstate", limit: 256)
        let carrier = try? MonitorSystem.readText(directory + "/carrier", limit: 256)
        return Self.linkState(operstate: operstate, carrier: carrier)
    }

    /// Every interface's state now.
    public func readAll() -> [String: LinkState] {
        Dictionary(interfaces.map { ($0, read($0)) }, uniquingKeysWith: { first, _ in first })
    }

    /// The events for the changes from `old` to `new`, in ``interfaces`` order. An interface
    /// missing from `old` has no baseline yet: no event.
    public func events(from old: [String: LinkState], to new: [String: LinkState]) -> [EventRequest] {
        interfaces.compactMap { interface in
            guard let before = old[interface], let after = new[interface], before != after else { return nil }
            return EventRequest(
                name: after == .down ? BuiltInTrigger.failNetwork.rawValue : BuiltInTrigger.joinNetwork.rawValue,
                state: 0, node: node,
                resource: ResourceObservation(
                    variable: "network", instance: "Interface=\(interface)", value: after.rawValue))
        }
    }

    /// Watches until the calling task is cancelled, calling `onEvent` for each change; returns
    /// at once when there is no interface to watch.
    public func run(_ onEvent: @Sendable (EventRequest) async -> Void) async {
        guard !interfaces.isEmpty else { return }
        let clock = ContinuousClock()
        var states = readAll()
        var next = clock.now.advanced(by: interval)
        while !Task.isCancelled {
            do {
                try await Task.sleep(until: next, clock: clock)
            } catch {
                return
            }
            let now = readAll()
            for event in events(from: states, to: now) {
                await onEvent(event)
            }
            states = now
            next = next.advanced(by: interval)
            if next < clock.now { next = clock.now.advanced(by: interval) }
        }
    }

    /// The events as an asynchronous sequence; watching stops when the consumer stops iterating.
    public func events() -> AsyncStream<EventRequest> {
        AsyncStream { continuation in
            let task = Task {
                await run { continuation.yield($0) }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }
}
