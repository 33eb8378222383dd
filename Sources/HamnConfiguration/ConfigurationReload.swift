import HamnYAML

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// What a SIGHUP does with a changed `hamn.yaml` (README, "Reloading"): the keys that are safe
/// to apply live are taken up; the others keep their old value until a restart and are named.
public struct ConfigurationReload: Sendable {
    /// The configuration the service runs from now on: the old one with the live keys' new values.
    public var configuration: ServiceConfiguration
    /// The live keys that changed (YAML names: `monitors`, `fencing`, ...), in `liveKeys` order.
    public var applied: [String]
    /// The keys that changed but keep their old value until a restart, in `restartKeys` order.
    public var needsRestart: [String]

    /// Keys applied on a reload: read where they are used (the monitors, which restart; the
    /// commands and fences that start from then on; the coordinator's priorities, timers and
    /// fencing policy, changed at the reload's place in the agreed order on every node).
    public static let liveKeys = [
        "rules", "rules_root", "event_scripts", "priorities", "timeouts", "config_too_long", "start_command",
        "networks", "network_interval", "monitors", "default_interval", "variables", "fencing", "queue_limit",
    ]
    /// Keys something was opened or set up with at start (the node's identity, the transport,
    /// the journal, the control socket, the watchdog device, the stop handler, the quorum rule).
    public static let restartKeys = [
        "node", "nodes", "transport", "journal", "socket", "control_connections", "corosync.group",
        "corosync.form_timeout", "corosync.realtime", "stop.mode", "stop.timeout", "no_quorum_policy", "watchdog",
        "http",
    ]

    /// Compares `old` (the configuration running) with `new` (the file just read), key by key.
    public init(from old: ServiceConfiguration, to new: ServiceConfiguration) {
        var result = old
        var applied: [String] = []
        func live<Value: Equatable>(
            _ key: String, _ path: WritableKeyPath<ServiceConfiguration, Value>
        ) {
            guard old[keyPath: path] != new[keyPath: path] else { return }
            result[keyPath: path] = new[keyPath: path]
            if applied.last != key { applied.append(key) }
        }
        live("rules", \.rules)
        live("rules_root", \.rulesRoot)
        live("event_scripts", \.eventScripts)
        live("priorities", \.priorities)
        live("timeouts", \.timeouts)
        live("timeouts", \.defaultTimeout)
        live("config_too_long", \.configTooLong)
        live("start_command", \.startCommand)
        live("networks", \.networks)
        live("network_interval", \.networkInterval)
        live("monitors", \.monitors)
        live("default_interval", \.defaultInterval)
        live("variables", \.variables)
        live("fencing", \.fencing)
        live("queue_limit", \.queueLimit)
        // Which cluster-wide file was read: no key of its own, its keys are compared above.
        result.clusterFile = new.clusterFile

        var restart: [String] = []
        func fixed<Value: Equatable>(_ key: String, _ path: KeyPath<ServiceConfiguration, Value>) {
            if old[keyPath: path] != new[keyPath: path], restart.last != key { restart.append(key) }
        }
        fixed("node", \.node)
        fixed("nodes", \.nodes)
        fixed("transport", \.transport)
        fixed("journal", \.journal)
        fixed("socket", \.socket)
        fixed("control_connections", \.controlConnections)
        fixed("corosync.group", \.corosyncGroup)
        fixed("corosync.form_timeout", \.formTimeout)
        fixed("corosync.realtime", \.realtime)
        fixed("stop.mode", \.stopMode)
        fixed("stop.timeout", \.stopTimeout)
        fixed("no_quorum_policy", \.noQuorumPolicy)
        fixed("watchdog", \.watchdog)
        fixed("http", \.http)
        configuration = result
        self.applied = applied
        needsRestart = restart
    }

    /// Whether the file changed anything at all.
    public var isEmpty: Bool { applied.isEmpty && needsRestart.isEmpty }
}

/// The configuration file a service was started with, read again on SIGHUP.
public struct ConfigurationSource: Sendable {
    public var path: String
    public var defaults: ConfigurationLoader.Defaults

    public init(path: String, defaults: ConfigurationLoader.Defaults) {
        self.path = path
        self.defaults = defaults
    }

    /// The file read and parsed (with the cluster-wide file beside the rules, when there is
    /// one), with a function that gives where a key is set (`FILE:LINE:COLUMN`, for the keys
    /// that need a restart); the error names the file, line and column.
    public func load() -> Result<
        (configuration: ServiceConfiguration, position: @Sendable (String) -> String), YAMLError
    > {
        let text: String
        switch ConfigurationLoader.readText(path) {
        case .success(let read):
            text = read
        case .failure(let problem):
            return .failure(
                YAMLError(file: path, line: 1, column: 1, message: "cannot read the configuration: \(problem.reason)"))
        }
        do {
            let (configuration, clusterText) = try ConfigurationLoader.parseWithClusterFile(
                text, file: path, defaults: defaults)
            let (file, cluster) = (path, configuration.clusterFile)
            return .success(
                (
                    configuration,
                    { key in
                        ConfigurationLoader.setPosition(of: key, in: clusterText ?? "", file: cluster ?? "")
                            ?? ConfigurationLoader.position(of: key, in: text, file: file)
                    }
                ))
        } catch {
            return .failure(error)
        }
    }
}

extension ConfigurationLoader {
    /// Where `key` (`node`, or `corosync.group`: a key of a mapping under a top-level key) is
    /// set in the configuration `text`, as `FILE:LINE:COLUMN` (its value's position); the file's
    /// first line when the key is not set there (it went back to its default).
    public static func position(of key: String, in text: String, file: String) -> String {
        setPosition(of: key, in: text, file: file) ?? "\(file):1:1"
    }

    /// `position(of:in:file:)`, nil when the key is not set in `text`.
    static func setPosition(of key: String, in text: String, file: String) -> String? {
        let parts = key.split(separator: ".").map(String.init)
        var value = try? YAMLValue.parse(text, file: file)
        for part in parts {
            value = (try? value?.mapping(allowed: nil))?.first { $0.key == part }?.value
        }
        guard let value else { return nil }
        return "\(file):\(value.line):\(value.column)"
    }
}
