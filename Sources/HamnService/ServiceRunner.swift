import ClusterTransport
import CommandExecution
import CorosyncTransport
import Foundation
import HamnConfiguration
import HamnMetrics
import HamnWeb
import Logging
import RulesEngine
import RulesParser
import RulesValidation
import ServiceLifecycle
import UnixSignals

/// `hamn-events run`: loads the rules, opens the journal, joins the cluster, listens on the
/// control socket, samples the monitors, and runs until SIGTERM (or until this node stops
/// cluster services). Lifecycle through swift-service-lifecycle.
public enum ServiceRunner {
    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        /// The rules' findings, when that is why.
        public var report: ValidationReport?
        public var description: String { message }
    }

    /// The rules of `configuration`, validated; nil with the report when they have errors.
    public static func loadRules(_ configuration: ServiceConfiguration) -> (
        RuleBook?, ValidationReport, VariableCatalogue
    ) {
        let catalogue = VariableCatalogue.builtIn.adding(configuration.resourceVariables)
        var options = Validator.Options(
            root: configuration.rulesRoot, catalogue: catalogue, eventScriptDirectory: configuration.eventScripts)
        options.commandsUnderRoot = false
        let (loaded, report) = Validator(options: options).load(configuration.rules)
        guard let loaded else { return (nil, report, catalogue) }
        let book = RuleBook(
            loaded.definitions.map { RuleBook.Rule(definition: $0, program: loaded.programs[$0.recoveryProgram]!) })
        return (book, report, catalogue)
    }

    /// What a reload takes up: the configuration file read again (its live keys applied to
    /// `current`, the others named with their positions) and the rules validated against it.
    public struct PreparedReload: Sendable {
        /// Why the configuration file was refused (`FILE:LINE:COLUMN: error: ...`); nothing is taken up.
        public var configurationError: String?
        /// The configuration to run with: `current` when there is no file or it was refused.
        public var configuration: ServiceConfiguration
        /// The live keys that changed.
        public var applied: [String] = []
        /// The keys that changed and keep their old value, each with where it is set.
        public var needsRestart: [(key: String, position: String)] = []
        public var rules: RuleBook?
        public var report: ValidationReport
        public var catalogue: VariableCatalogue
    }

    /// Reads `source` (when the service was started from a file) and the rules (blocking work).
    public static func prepareReload(current: ServiceConfiguration, source: ConfigurationSource?) -> PreparedReload {
        var configuration = current
        var applied: [String] = []
        var needsRestart: [(key: String, position: String)] = []
        if let source {
            switch source.load() {
            case .failure(let error):
                return PreparedReload(
                    configurationError: error.description, configuration: current, rules: nil,
                    report: ValidationReport(diagnostics: [], definitions: 0), catalogue: .builtIn)
            case .success(let loaded):
                let reload = ConfigurationReload(from: current, to: loaded.configuration)
                configuration = reload.configuration
                applied = reload.applied
                needsRestart = reload.needsRestart.map { ($0, loaded.position($0)) }
            }
        }
        let (rules, report, catalogue) = loadRules(configuration)
        return PreparedReload(
            configuration: configuration, applied: applied, needsRestart: needsRestart, rules: rules, report: report,
            catalogue: catalogue)
    }

    /// Runs the service to its end.
    /// - Parameters:
    ///   - openJournal: opens the journal at a path.
    ///   - monitoring: samples the monitors into the service until cancelled.
    public static func run(
        configuration: ServiceConfiguration, logger: Logger,
        configurationSource: ConfigurationSource? = nil,
        openJournal: (String) throws -> any EventJournal,
        monitoring: @escaping @Sendable (NodeService, RuleBook, VariableCatalogue, ServiceConfiguration) async -> Void
    ) async throws {
        // Taken (and removed from the environment) first: recovery commands do not inherit it.
        let notify = SystemdNotify.fromEnvironment()
        let (rules, report, catalogue) = loadRules(configuration)
        guard let rules else {
            throw Failure(message: "the rules in \(configuration.rules) have errors: \(report.summary)", report: report)
        }
        for warning in report.diagnostics { logger.warning("\(warning.formatted)") }
        let descriptors = raiseDescriptorLimit()
        if descriptors < 1024 {
            logger.warning(
                "file descriptor limit \(descriptors): commands start in waves of \(LaunchSlots.capacity(forDescriptorLimit: descriptors)) at most"
            )
        }
        let journal: any EventJournal
        do {
            journal = try openJournal(configuration.journal)
        } catch {
            throw Failure(message: "cannot open the journal \(configuration.journal): \(error)")
        }
        // The service's thread: its actor runs there, and so does the Corosync dispatch.
        let loop: EventLoopThread
        do {
            loop = try EventLoopThread(
                name: "hamn-service", realtime: configuration.transport == .corosync && configuration.realtime)
        } catch {
            throw Failure(message: "cannot start the service's thread: \(error)")
        }
        defer { loop.stop() }
        if let failure = loop.schedulingFailure {
            logger.warning(
                "\(failure): the service's thread runs as an ordinary one, and busy cores can delay barriers")
        }
        // The service's metrics (README, "Metrics"): `metrics.exposition()` is what `/metrics` serves.
        let metrics = HamnMetrics(node: configuration.node.name)
        let transport: any ClusterTransport
        switch configuration.transport {
        case .local:
            transport = await LoopbackTransport.alone(configuration.node)
        case .corosync:
            // HAMN_TEST_WIRE_MAX=2: an engine of the build before wire version 3, for the rolling
            // upgrade test (README, "Rolling upgrade"). Not for production.
            let limit = getenv("HAMN_TEST_WIRE_MAX").flatMap { Int(String(cString: $0)) }
            let info = EngineInfo(
                node: configuration.node, digest: ConfigurationDigest.of(configuration, rules: rules),
                versions: WireFormat.versions(upTo: limit))
            await waitForQuorumBeforeJoining(journal: journal, logger: logger, notify: notify)
            do {
                let corosync = try CorosyncTransport(
                    info: info, group: configuration.corosyncGroup, formTimeout: configuration.formTimeout, loop: loop)
                logger.notice(
                    "joined CPG group \(configuration.corosyncGroup) as \(corosync.address), configuration \(info.digest.combined.prefix(12))"
                )
                transport = corosync
                // Read at each scrape (a lock of the transport's, not the service's thread).
                metrics.followDroppedMessages { corosync.droppedForWire }
            } catch CPGError.libraryMissing(let library, let package, let reason) {
                // Not a question of corosync running: the client library is not there.
                throw Failure(
                    message: "\(CPGError.libraryMissing(library: library, package: package, reason: reason))")
            } catch {
                throw Failure(
                    message:
                        "cannot join the corosync group \(configuration.corosyncGroup): \(error); is corosync running?")
            }
        }
        let service = NodeService(
            configuration: configuration, rules: rules, catalogue: catalogue, transport: transport, journal: journal,
            logger: logger, loop: loop, configurationSource: configurationSource, metrics: metrics)
        let server: ControlServer
        do {
            server = try ControlServer(
                path: configuration.socket,
                connectionLimit: configuration.controlConnections
                    ?? ControlServer.connectionLimit(forDescriptorLimit: descriptors))
        } catch {
            throw Failure(message: error.message)
        }
        server.start(
            answer: { request, peer in await service.handle(request, from: peer) },
            follow: { node, after, connection in service.follow(node: node, after: after, on: connection) },
            problem: { message in logger.warning("\(message)") })
        defer { server.stop() }
        let web = await startWebView(configuration.http, service: service, journal: journal, logger: logger)
        defer { web?.stop() }
        try? journal.note(
            "service started: node \(configuration.node.name), \(rules.rules.count) definitions from \(configuration.rules)",
            kind: "service", at: Date())
        logger.notice(
            "hamn-events running: node \(configuration.node.name), \(rules.rules.count) definitions from \(configuration.rules), control socket \(configuration.socket)"
        )
        if case .stop = configuration.noQuorumPolicy, rules[BuiltInTrigger.quorumLost.rawValue, 0] == nil {
            let warning =
                "no_quorum_policy is stop but the rules define no TE_QUORUM_LOST: a node that loses quorum releases nothing"
            logger.warning("\(warning)")
            try? journal.note("WARNING: \(warning)", kind: "quorum", at: Date())
        }
        if let warning = configuration.fencingWarning {
            logger.warning("\(warning)")
            try? journal.note("WARNING: \(warning)", kind: "fence", at: Date())
        }
        // Opened once the service is up: from here on a dead or stuck engine resets the node.
        var watchdog: Watchdog?
        if let device = configuration.watchdog {
            do {
                watchdog = try Watchdog(device)
            } catch {
                await service.closeJournal()
                throw Failure(message: "cannot use the watchdog: \(error)")
            }
            watchdog?.feed()
            logger.notice(
                "watchdog \(device.device): fed every \(device.interval) s while the service is healthy (timeout \(device.timeout) s)"
            )
        }
        let node = NodeLifecycle(
            service: service, configuration: configuration, rules: rules, catalogue: catalogue, logger: logger,
            watchdog: watchdog, notify: notify, monitoring: monitoring)
        let group = ServiceGroup(
            configuration: .init(
                // The node leaving the cluster (`ha-cmd STOP`, SIGTERM) ends the service normally;
                // a fatal transport notice ends it with the Failure thrown by `NodeLifecycle`.
                // SIGTERM and SIGINT are `NodeLifecycle`'s own (`StopSignals`): the group's
                // graceful shutdown reacts to the first signal only, and a second one must stop
                // at once.
                services: [.init(service: node, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: logger))
        do {
            try await group.run()
        } catch {
            // Not a graceful stop: the watchdog is left armed, and resets the node.
            watchdog?.close(disarm: false)
            await service.closeJournal()
            throw error
        }
        // A graceful stop: 'V', the magic close, so that the node is not reset.
        watchdog?.close(disarm: true)
        // The run's end is recorded: the next start does not take this one for a crash.
        await service.closeJournal()
        logger.notice("hamn-events stopped")
    }

    /// The web view's listener (README, "Web view"), when `http:` is on. A port it cannot bind
    /// is a warning, in the log and the journal, and `status` says why: the service runs on.
    static func startWebView(
        _ http: ServiceConfiguration.HTTP?, service: NodeService, journal: any EventJournal, logger: Logger
    ) async -> WebServer? {
        guard let http else {
            await service.setWebView(.off)
            return nil
        }
        let sources = WebSources(
            snapshot: { await service.webSnapshot() },
            timeline: { run, event in await service.webTimeline(run: run, event: event) },
            // The service's metrics (README, "Metrics"): rendered on the listener's thread; it
            // reads atomics and locks of the metrics', never the service's thread.
            metricsExposition: { service.metrics.exposition() })
        do {
            let web = try await WebServer.start(
                address: http.address, port: http.port, sources: sources, logger: logger)
            await service.setWebView(.listening(url: web.url))
            logger.notice("web view: \(web.url) (read-only)")
            return web
        } catch {
            await service.setWebView(.notListening(reason: error.description))
            logger.warning("web view not listening: \(error.description)")
            try? journal.note("WARNING: web view not listening: \(error.description)", kind: "service", at: Date())
            return nil
        }
    }

    /// Raises the soft file descriptor limit to the hard one (systemd's default is 1024 soft,
    /// 524288 hard: the soft one is low only for programs that use `select`, which this one
    /// does not) and returns the soft limit now in force.
    static func raiseDescriptorLimit() -> Int {
        var limit = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0, limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max
            _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        }
        return LaunchSlots.descriptorLimit()
    }
}

/// With votequorum's `wait_for_all` (set, or implied by `two_node`), a corosync that started
/// is quorate only once it has seen every node. An engine that joined its group before then
/// would found a cluster of its own beside the one running (its node just rebooted after a
/// fence, the other's membership not merged yet), and the merge rule's tie (one engine each)
/// would keep the side with the lower node number: perhaps the fresh one, stopping the engine
/// that holds the takeover's resources. So the engine joins once quorate: by then corosync
/// has merged, and it joins the running cluster. Without wait_for_all nothing waits (a lone
/// engine founds a cluster and runs nothing until quorum, as before).
private func waitForQuorumBeforeJoining(journal: any EventJournal, logger: Logger, notify: SystemdNotify) async {
    var announced = false
    while let status = try? VotequorumStatus.read(), status.waitForAll, !status.quorate {
        if !announced {
            announced = true
            let text =
                "waiting for quorum before joining the cluster: corosync's wait_for_all\(status.twoNode ? " (two_node)" : ""): this node has not yet seen every node since corosync started"
            logger.notice("\(text)")
            try? journal.note(text, kind: "service", at: Date())
            try? notify.send(["STATUS=waiting for quorum before joining the cluster (corosync's wait_for_all)"])
        }
        try? await Task.sleep(for: .milliseconds(200))
    }
    if announced { logger.notice("quorate: joining the cluster") }
}

/// The node's service in the service group: deliveries, ticks, monitors, SIGHUP, SIGTERM and
/// SIGINT, until the node leaves.
struct NodeLifecycle: Service {
    let service: NodeService
    let configuration: ServiceConfiguration
    let rules: RuleBook
    let catalogue: VariableCatalogue
    let logger: Logger
    let watchdog: Watchdog?
    /// systemd: READY=1 once this node is a member of the cluster, STOPPING=1 at the first stop signal.
    let notify: SystemdNotify
    let monitoring: @Sendable (NodeService, RuleBook, VariableCatalogue, ServiceConfiguration) async -> Void

    func run() async throws {
        let service = self.service
        let configuration = self.configuration
        let logger = self.logger
        let monitoring = self.monitoring
        let monitors = MonitorSupervisor()
        let (rules, catalogue) = (self.rules, self.catalogue)
        // Trapped before anything else runs: from here on SIGTERM is a stop, not the default death.
        let stopSignals = await UnixSignalsSequence(trapping: .sigterm, .sigint)
        await monitors.restart { await monitoring(service, rules, catalogue, configuration) }
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await service.run()
                return true
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await service.tick()
                }
                return false
            }
            if notify.socket != nil {
                let (notify, node) = (self.notify, configuration.node.name)
                // Ready once the rules are loaded (they were, before this runs) and this node is a
                // member: alone at once, in a cluster once the engines admitted it.
                group.addTask {
                    while !Task.isCancelled, !(await service.isMember) {
                        try? await Task.sleep(for: .milliseconds(50))
                    }
                    guard !Task.isCancelled else { return false }
                    do {
                        try notify.send(["READY=1", "STATUS=node \(node) is a member of the cluster"])
                    } catch {
                        logger.warning("systemd notification: \(error)")
                    }
                    return false
                }
            }
            if let watchdog {
                // Fed on the service's own thread (the actor's): a stopped or stuck engine, or
                // one that failed, feeds it no more.
                let interval = configuration.watchdog?.interval ?? 1
                group.addTask {
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .seconds(interval))
                        if Task.isCancelled { break }
                        await service.feedWatchdog(watchdog)
                    }
                    return false
                }
            }
            group.addTask {
                for await _ in await UnixSignalsSequence(trapping: .sighup) {
                    // Checked here first: a configuration or rules with errors go no further
                    // than this node.
                    let (current, source) = await (service.configuration, service.configurationSource)
                    let prepared = await BlockingWork.run {
                        ServiceRunner.prepareReload(current: current, source: source)
                    }
                    if let error = prepared.configurationError {
                        await service.configurationRefused(error, cause: "SIGHUP")
                        continue
                    }
                    let (rules, report) = (prepared.rules, prepared.report)
                    guard rules != nil else {
                        for finding in report.diagnostics where finding.severity == .error {
                            logger.error("\(finding.formatted)")
                        }
                        await service.reloadRefused(report.summary)
                        continue
                    }
                    await service.requestReload()
                }
                return false
            }
            // The rules this node took up, when the reload came back through the cluster.
            group.addTask {
                for await reload in service.reloads {
                    await monitors.restart {
                        await monitoring(service, reload.rules, reload.catalogue, reload.configuration)
                    }
                }
                return false
            }
            group.addTask {
                let (names, forward) = AsyncStream<String>.makeStream()
                let forwarding = Task {
                    for await signal in stopSignals { forward.yield(signal == .sigint ? "SIGINT" : "SIGTERM") }
                }
                await StopSignals(
                    service: service, mode: configuration.stopMode, timeout: configuration.stopTimeout, logger: logger,
                    beforeStopping: { [notify] in
                        notify.stopping(status: "stopping")
                        await monitors.stop()
                    }
                ).handle(names)
                forwarding.cancel()
                return false
            }
            // Until `service.run()` ends: the node left the cluster.
            while let left = await group.next(), !left {}
            group.cancelAll()
        }
        // The node left (a stop signal, `ha-cmd STOP`, a fatal notice): systemd hears it first.
        notify.stopping(status: "left the cluster")
        await monitors.stop()
        if let reason = await service.fatalReason {
            throw ServiceRunner.Failure(message: "stopped: \(reason)")
        }
    }
}

/// What SIGTERM and SIGINT do (docs/decisions.md, "Stopping a node"). The first stops the node
/// through the cluster (`NodeService.beginStopThroughCluster`: `TE_FAIL_NODE` state 1 or 2, then
/// the node leaves), or at once when there is no cluster to stop through. A second signal, or
/// `timeout` seconds without the stop event's end, gives that up and stops at once
/// (`NodeService.stopAtOnce`). Later signals are only logged.
struct StopSignals: Sendable {
    let service: NodeService
    let mode: StopMode
    /// Seconds.
    let timeout: Double
    let logger: Logger
    /// Before the first signal is acted on (the monitors stop: a stopping node raises no event).
    let beforeStopping: @Sendable () async -> Void

    private enum Trigger: Sendable {
        case signal(String)
        case timeout
    }

    private enum Stage {
        case running, throughCluster, atOnce
    }

    /// Handles `signals` (their names) until cancelled.
    func handle(_ signals: AsyncStream<String>) async {
        let (triggers, trigger) = AsyncStream<Trigger>.makeStream()
        let forwarding = Task {
            for await name in signals { trigger.yield(.signal(name)) }
        }
        var stage = Stage.running
        var timer: Task<Void, Never>?
        let (service, timeout) = (self.service, self.timeout)
        for await next in triggers {
            switch (stage, next) {
            case (.running, .signal(let name)):
                await beforeStopping()
                if await service.beginStopThroughCluster(mode: mode, signal: name, timeout: timeout) {
                    stage = .throughCluster
                    timer = Task {
                        try? await Task.sleep(for: .seconds(timeout))
                        if !Task.isCancelled { trigger.yield(.timeout) }
                    }
                } else {
                    stage = .atOnce
                    // Not awaited here: later signals are still answered.
                    Task { await service.shutDown() }
                }
            case (.throughCluster, .signal(let name)):
                stage = .atOnce
                timer?.cancel()
                Task { await service.stopAtOnce(because: "a second \(name) while stopping through the cluster") }
            case (.throughCluster, .timeout):
                stage = .atOnce
                let seconds = NodeService.seconds(timeout)
                Task {
                    await service.stopAtOnce(because: "the stop through the cluster did not end within \(seconds)")
                }
            case (.atOnce, .signal(let name)):
                logger.notice(
                    "\(name): already stopping at once (running segments finish first); SIGKILL does not wait")
            case (_, .timeout):
                break
            }
        }
        // Cancelled: the node has left (a stop at once under way has made it leave).
        timer?.cancel()
        forwarding.cancel()
    }
}
