import Prometheus
import RulesEngine
import Synchronization

/// One service's Prometheus metrics: a registry of its own (the global `MetricsSystem` is never
/// bootstrapped, so that several services in one process, as in the tests, keep theirs apart),
/// and what feeds it.
///
/// - The journal's entries, as the service records them (`record(_:at:)`): events by name and
///   outcome, event and segment durations, barrier waits, the held event, fencing outcomes.
/// - The service's state after each delivery (`setState(queue:members:coordinatorQuorate:)`):
///   three atomic stores, so a scrape never visits the service's thread.
/// - The monitors' samples and failures (`monitorSampled(variable:observations:failed:)`), from
///   the monitors' tasks.
/// - The journal's commits (`journalCommitted(seconds:)`), from the journal's queue.
/// - What is read at scrape time (`onScrape(_:)`): the transport's count of dropped messages
///   and its quorum flag (`followQuorum(_:)`), the one `status` shows.
///
/// `exposition()` is what `/metrics` serves (text format 0.0.4).
public final class HamnMetrics: Sendable {
    /// The registry the metrics are in; swift-metrics code reaches it through `factory`.
    public let registry: PrometheusCollectorRegistry
    /// For code that speaks swift-metrics: `Counter(label:dimensions:factory: metrics.factory)`
    /// lands in this service's registry, not in a global one.
    public let factory: PrometheusMetricsFactory

    /// Histogram buckets, in seconds.
    public enum Buckets {
        /// Events: from a command that exits at once to an hour's takeover.
        public static let event: [Double] = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600]
        /// Segments: the commands of one node and the barrier after them.
        public static let segment: [Double] = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600]
        /// Barrier waits: milliseconds when the nodes' commands end together (the barrier's own
        /// cost), up to minutes behind a slow node.
        public static let barrier: [Double] = [
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
        ]
        /// Journal commits: an fsync'd SQLite transaction.
        public static let journal: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5]
    }

    private let node: String
    private let queueLength: Gauge
    private let members: Gauge
    private let quorate: Gauge
    private let coordinatorQuorate: Gauge
    private let journalCommit: ValueHistogram
    private let wireDropped: Counter

    /// What `record(_:at:)` remembers between entries: when each running event and its
    /// segment started, when this node's commands of that segment last finished.
    private struct Running {
        var name: String
        var started: Double
        var segmentStarted: Double
        var segment: Int
        var localDone: Double?
    }

    private struct Instance: Hashable {
        var variable: String
        var instance: [String: String]
        var field: String
    }

    private struct State {
        var running: [Int: Running] = [:]
        var held: [String: Gauge] = [:]
        var events: [String: EventSeries] = [:]
        var outcomes: [Key: Counter] = [:]
        var fences: [Key: Counter] = [:]
        var samples: [String: (samples: Counter, failures: Counter)] = [:]
        var values: [Instance: Gauge] = [:]
        /// The variables the monitors sample (`monitoring(variables:)`); nil until they say.
        var monitored: Set<String>?
        var scrapeHooks: [@Sendable () -> Void] = []
    }

    private struct Key: Hashable {
        var name: String
        var value: String
    }

    private struct EventSeries {
        var duration: ValueHistogram
        var segment: ValueHistogram
        var barrier: ValueHistogram
    }

    private let state = Mutex(State())

    /// - Parameter node: this node's name (a barrier wait is how long this node's commands
    ///   waited for the other nodes'); not a label: Prometheus adds the target's.
    public init(node: String) {
        self.node = node
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        factory = PrometheusMetricsFactory(registry: registry)
        queueLength = registry.makeGauge(
            descriptor: Self.name("queue", "length", "Events waiting in the cluster's queue, as this node sees it."))
        members = registry.makeGauge(
            descriptor: Self.name("members", "", "Nodes in the cluster's membership, as this node sees it."))
        quorate = registry.makeGauge(
            descriptor: Self.name(
                "quorate", "",
                "1 while this node's partition has quorum (votequorum's flag, what `status` shows as quorum), 0 without."
            ))
        coordinatorQuorate = registry.makeGauge(
            descriptor: Self.name(
                "coordinator_quorate", "",
                "1 while recovery programs may run: quorum as the coordinator applied it, in the deliveries' order "
                    + "(lost with the membership change that lost it, back only once the change that came with it is applied)."
            ))
        journalCommit = registry.makeValueHistogram(
            descriptor: Self.name("journal_commit", "seconds", "Time to commit one batch of journal writes."),
            buckets: Buckets.journal)
        wireDropped = registry.makeCounter(
            descriptor: Self.name(
                "wire_messages_dropped", "total",
                "Messages not sent because they need a wire version above the one the cluster agreed on."))
        quorate.set(to: 1)
        coordinatorQuorate.set(to: 1)
    }

    private static func name(_ metric: String, _ unit: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(namespace: "hamn", metricName: metric, unitName: unit, helpText: help)
    }

    // MARK: Scraping

    /// The metrics in Prometheus's text format: what `/metrics` serves. Runs the scrape hooks
    /// first (on the caller's thread, not the service's).
    public func exposition() -> String {
        let hooks = state.withLock { $0.scrapeHooks }
        for hook in hooks { hook() }
        return registry.emitToString()
    }

    /// Runs `hook` before each exposition: for values another component keeps, read when
    /// scraped. It must be quick and must not wait for the service's thread.
    public func onScrape(_ hook: @escaping @Sendable () -> Void) {
        state.withLock { $0.scrapeHooks.append(hook) }
    }

    /// Follows a count kept elsewhere (the transport's dropped messages): read at each scrape,
    /// the counter goes up by what it grew since the last.
    public func followDroppedMessages(_ read: @escaping @Sendable () -> Int) {
        let seen = Mutex(0)
        let counter = wireDropped
        onScrape {
            let now = read()
            let grown = seen.withLock { last -> Int in
                defer { last = max(last, now) }
                return max(0, now - last)
            }
            if grown > 0 { counter.increment(by: Int64(grown)) }
        }
    }

    /// `hamn_quorate` follows the transport's quorum flag (what `status` shows as quorum), read
    /// at each scrape: the flag changes on the transport's thread, between deliveries.
    public func followQuorum(_ read: @escaping @Sendable () -> Bool) {
        let gauge = quorate
        onScrape { gauge.set(to: read() ? 1 : 0) }
    }

    // MARK: The service's state

    /// After each delivery, from the service's thread: three atomic stores.
    /// `coordinatorQuorate` is the coordinator's quorum (`hamn_coordinator_quorate`), which lags
    /// the transport's flag when quorum comes back.
    public func setState(queue: Int, members count: Int, coordinatorQuorate isQuorate: Bool) {
        queueLength.set(to: Double(queue))
        members.set(to: Double(count))
        coordinatorQuorate.set(to: isQuorate ? 1 : 0)
    }

    // MARK: The journal's entries

    /// The entries the service journals in one step, at `time` (seconds on a monotonic clock).
    public func record(_ entries: [JournalEntry], at time: Double) {
        state.withLock { state in
            for entry in entries { record(entry, at: time, in: &state) }
        }
    }

    private func record(_ entry: JournalEntry, at time: Double, in state: inout State) {
        switch entry {
        case .started(let event, _, _):
            state.running[event.id] = Running(name: event.name, started: time, segmentStarted: time, segment: 0)
        case .commandFinished(let eventID, let node, let segment, _):
            if node.name == self.node, state.running[eventID]?.segment == segment {
                state.running[eventID]?.localDone = time
            }
        case .barrierPassed(let eventID, let index, _):
            guard var run = state.running[eventID], run.segment == index else { return }
            segmentEnded(run, series: eventSeries(run.name, in: &state), at: time)
            run.segment = index + 1
            run.segmentStarted = time
            run.localDone = nil
            state.running[eventID] = run
        case .failed(let event, _, _):
            heldGauge(event.name, in: &state).set(to: 1)
        case .resumed(let resume):
            // `retry` and `continue` take the event on; `skip` ends it (its end follows).
            if let event = resume.event, resume.mode != .skip { heldGauge(event.name, in: &state).set(to: 0) }
        case .finished(let event, let outcome):
            let series = eventSeries(event.name, in: &state)
            if let run = state.running.removeValue(forKey: event.id) {
                // The last segment ends with the event, without a barrier entry of its own.
                if outcome == .completed { segmentEnded(run, series: series, at: time) }
                series.duration.record(time - run.started)
            }
            state.held[event.name]?.set(to: 0)
            outcomeCounter(event.name, outcome.rawValue, in: &state).increment()
        case .fence(.outcome(let node, let outcome, _, _)):
            let name: String
            switch outcome {
            case .fenced: name = "fenced"
            case .failed: name = "failed"
            case .confirmed: name = "confirmed"
            }
            fenceCounter(node, name, in: &state).increment()
        case .fence(.gaveUp(let node, _)):
            fenceCounter(node.name, "gave_up", in: &state).increment()
        default:
            break
        }
    }

    /// A segment's end: its duration, and how long this node waited at its barrier (from its
    /// own commands' end, or from the segment's start when it ran none in it).
    private func segmentEnded(_ run: Running, series: EventSeries, at time: Double) {
        series.segment.record(time - run.segmentStarted)
        series.barrier.record(time - (run.localDone ?? run.segmentStarted))
    }

    private func eventSeries(_ name: String, in state: inout State) -> EventSeries {
        if let series = state.events[name] { return series }
        let labels = [("event", name)]
        let series = EventSeries(
            duration: registry.makeValueHistogram(
                descriptor: Self.name("event_duration", "seconds", "Time from an event's start to its end."),
                labels: labels, buckets: Buckets.event),
            segment: registry.makeValueHistogram(
                descriptor: Self.name(
                    "segment_duration", "seconds",
                    "Time from a segment's start to its barrier (the next segment's start)."),
                labels: labels, buckets: Buckets.segment),
            barrier: registry.makeValueHistogram(
                descriptor: Self.name(
                    "barrier_wait", "seconds",
                    "Time this node waited at a barrier, from the end of its own commands of the segment."),
                labels: labels, buckets: Buckets.barrier))
        state.events[name] = series
        return series
    }

    private func heldGauge(_ name: String, in state: inout State) -> Gauge {
        if let gauge = state.held[name] { return gauge }
        let gauge = registry.makeGauge(
            descriptor: Self.name(
                "event_held", "", "1 while the event is held after a failed command, until `hamn-events resume`."),
            labels: [("event", name)])
        state.held[name] = gauge
        return gauge
    }

    private func outcomeCounter(_ name: String, _ outcome: String, in state: inout State) -> Counter {
        counter(
            Self.name("events", "total", "Events that ended, by name and outcome."), ("event", name),
            ("outcome", outcome), in: &state.outcomes)
    }

    private func fenceCounter(_ node: String, _ outcome: String, in state: inout State) -> Counter {
        counter(
            Self.name("fence_outcomes", "total", "Fencing outcomes, by fenced node and outcome."), ("node", node),
            ("outcome", outcome), in: &state.fences)
    }

    /// The counter of `family` with these two labels, made on first use and kept in `cache`.
    private func counter(
        _ family: MetricNameDescriptor, _ first: (String, String), _ second: (String, String),
        in cache: inout [Key: Counter]
    ) -> Counter {
        let key = Key(name: first.1, value: second.1)
        if let counter = cache[key] { return counter }
        let counter = registry.makeCounter(descriptor: family, labels: [first, second])
        cache[key] = counter
        return counter
    }

    // MARK: Monitors

    /// One sample of `variable`, from the monitors' task: counted (a failure too when the
    /// sample, or one of its instances, failed); each observed instance's numeric value (each
    /// numeric field of a structured one) kept as a gauge.
    ///
    /// `observations` is the sample's whole batch: an instance (or field) of `variable` that
    /// had a gauge and is not in it with a number (gone, or reported as a problem) loses its
    /// series, rather than keep its last value. nil: the sample failed as a whole and says
    /// nothing about the instances; their series are kept.
    public func monitorSampled(variable: String, observations: [SampleObservation]? = nil, failed: Bool = false) {
        state.withLock { state in
            let counters = monitorCounters(variable, in: &state)
            counters.samples.increment()
            if failed { counters.failures.increment() }
            guard let observations else { return }
            var present: Set<Instance> = []
            // A sample of the monitors before a reload, ending after it, makes no series for a
            // variable the new ones no longer sample.
            for observation in observations where state.monitored?.contains(observation.variable) ?? true {
                switch observation.value {
                case .scalar(.number(let value)):
                    present.insert(setValue(observation, field: "", to: value, in: &state))
                case .scalar(.string):
                    break  // not a number: not a gauge
                case .fields(let fields):
                    for field in fields {
                        if case .number(let value) = field.value {
                            present.insert(setValue(observation, field: field.name, to: value, in: &state))
                        }
                    }
                }
            }
            // The batch's variables: the entry's, which its sampler's observations are named by.
            let sampled = Set(observations.map(\.variable)).union([variable])
            removeValues(in: &state) { sampled.contains($0.variable) && !present.contains($0) }
        }
    }

    /// The variables the monitors sample from now on (the monitors start, or start again with
    /// reloaded rules): the instances' series of any other variable are removed, and not made
    /// again by a late sample of the monitors before.
    public func monitoring(variables: Set<String>) {
        state.withLock { state in
            state.monitored = variables
            removeValues(in: &state) { !variables.contains($0.variable) }
        }
    }

    private func removeValues(in state: inout State, where gone: (Instance) -> Bool) {
        for key in state.values.keys where gone(key) {
            if let gauge = state.values.removeValue(forKey: key) { registry.unregisterGauge(gauge) }
        }
    }

    private func monitorCounters(_ variable: String, in state: inout State) -> (samples: Counter, failures: Counter) {
        if let counters = state.samples[variable] { return counters }
        let labels = [("variable", variable)]
        let counters = (
            samples: registry.makeCounter(
                descriptor: Self.name("monitor_samples", "total", "Samples taken by the monitors, by variable."),
                labels: labels),
            failures: registry.makeCounter(
                descriptor: Self.name("monitor_failures", "total", "Samples that failed, by variable."),
                labels: labels)
        )
        state.samples[variable] = counters
        return counters
    }

    /// Sets an instance's gauge (of one field; "" for a plain number), made at its first
    /// sample; returns its key.
    private func setValue(
        _ observation: SampleObservation, field: String, to value: Double, in state: inout State
    ) -> Instance {
        let key = Instance(variable: observation.variable, instance: observation.instance, field: field)
        if let gauge = state.values[key] {
            gauge.set(to: value)
            return key
        }
        let gauge = registry.makeGauge(
            descriptor: Self.name(
                "variable_value", "",
                "The last sampled value of a resource-variable instance (field: of a structured value), while its monitor reports it."
            ),
            labels: [("variable", observation.variable), ("instance", observation.instanceText), ("field", field)])
        gauge.set(to: value)
        state.values[key] = gauge
        return key
    }

    // MARK: The journal's commits

    /// One batch of journal writes committed, from the journal's queue.
    public func journalCommitted(seconds: Double) {
        journalCommit.record(seconds)
    }
}
