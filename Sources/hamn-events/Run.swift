import ArgumentParser
import Foundation
import HamnConfiguration
import HamnService
import Logging
import RulesEngine

extension HamnEvents {
    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run the service in the foreground (systemd runs it).",
            discussion: """
                The configuration is --config, else /etc/hamn/hamn.yaml when it exists \
                ($HAMN_EVENTS_CONFIG names another); the service logs which. Without node:, \
                a corosync node is named and numbered by corosync's nodelist for this host. \
                With no configuration: one node named after the host, the local transport, the \
                rules installed in /etc/hamn/rules.hacmprd (or the shipped example), a journal in \
                the state directory. SIGTERM stops this node through the cluster (TE_FAIL_NODE \
                state 1, or 2 with stop.mode: takeover), then exits 0; a node alone or without \
                quorum, a second SIGTERM, or stop.timeout stop at once (the running segment \
                finishes). SIGHUP re-reads the configuration and the rules: the configuration's live keys \
                are taken up, the others are named as needing a restart; a configuration or \
                rules with errors are refused whole, the old ones stay.
                """)

        @Option(help: "The configuration file (YAML); default /etc/hamn/hamn.yaml when it exists.")
        var config: String?

        @Option(help: "Log level: trace, debug, info, notice, warning, error.")
        var logLevel: Logger.Level = .info

        func run() async throws {
            let level = logLevel
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = level
                return handler
            }
            let logger = Logger(label: "hamn-events")
            let configuration = try loadConfiguration(config)
            if let file = configurationFile(config) {
                logger.notice("configuration: \(file)")
            } else {
                logger.notice("configuration: the embedded default (no \(defaultConfigurationPath()))")
            }
            if let cluster = configuration.clusterFile {
                logger.notice("cluster-wide keys: \(cluster)")
            }
            if let origin = configuration.nodeOrigin {
                logger.notice(
                    "node \(configuration.node.name), number \(configuration.node.number): from corosync's nodelist, \(origin)"
                )
            }
            // SIGHUP reads the same file again (its live keys are taken up).
            let source = configurationFile(config).map {
                ConfigurationSource(
                    path: $0, defaults: ConfigurationLoader.Defaults.forThisProcess(shipped: shippedRules()))
            }
            do {
                try await ServiceRunner.run(
                    configuration: configuration, logger: logger, configurationSource: source,
                    openJournal: { try Journal(path: $0) },
                    monitoring: { service, rules, catalogue, configuration in
                        await Monitoring.run(
                            service: service, rules: rules, catalogue: catalogue, configuration: configuration)
                    })
            } catch let failure as ServiceRunner.Failure {
                if let report = failure.report { writeStdout(report.text) }
                printError("hamn-events: \(failure.message)")
                throw ExitCode(1)
            }
        }
    }
}

// swift-format-ignore: AvoidRetroactiveConformances
// `--log-level debug`: swift-log's level as an argument; neither package declares it.
extension Logger.Level: @retroactive ExpressibleByArgument {}
