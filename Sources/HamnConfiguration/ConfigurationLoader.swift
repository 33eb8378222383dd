import HamnYAML
import RulesEngine
import RulesParser

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reads the service's YAML configuration (README, "Configuration"): unknown keys and wrong
/// types are errors naming the key and its line; everything left out has a default.
public enum ConfigurationLoader {
    /// Where things live by default: the system's places for root, the user's for others
    /// (so the service and its tests can run without root).
    public struct Defaults: Sendable {
        public var hostName: String
        public var rules: String
        /// The root of the shipped rules' tree, when `rules` is them.
        public var rulesRoot: String?
        public var stateDirectory: String
        public var runtimeDirectory: String
        /// This host's addresses (every interface's), matched against corosync's `ring0_addr`.
        public var hostAddresses: [String]
        /// This host's name as `gethostname` gives it (perhaps with a domain).
        public var fullHostName: String
        /// The corosync configuration whose nodelist names this node when the configuration
        /// does not (`transport: corosync`); `corosync: {conf: PATH}` names another.
        public var corosyncConf: String

        public init(
            hostName: String, rules: String, rulesRoot: String?, stateDirectory: String, runtimeDirectory: String,
            hostAddresses: [String] = [], fullHostName: String? = nil,
            corosyncConf: String = "/etc/corosync/corosync.conf"
        ) {
            self.hostName = hostName
            self.rules = rules
            self.rulesRoot = rulesRoot
            self.stateDirectory = stateDirectory
            self.runtimeDirectory = runtimeDirectory
            self.hostAddresses = hostAddresses
            self.fullHostName = fullHostName ?? hostName
            self.corosyncConf = corosyncConf
        }

        /// - Parameter shipped: the shipped rules file and the root of its tree, used when no rules
        ///   are installed in /etc/hamn.
        public static func forThisProcess(shipped: (rules: String, root: String)? = nil) -> Defaults {
            let root = geteuid() == 0
            let home = environment("HOME") ?? "/tmp"
            let state =
                root
                ? "/var/lib/hamn-events" : (environment("XDG_STATE_HOME") ?? home + "/.local/state") + "/hamn-events"
            let runtime = runtimeDirectory(
                user: geteuid(), runtimeDirectory: environment("XDG_RUNTIME_DIR"), stateDirectory: state,
                ownsRunUser: ownsPrivateDirectory("/run/user/\(geteuid())"))
            let installed = "/etc/hamn/rules.hacmprd"
            let useShipped = access(installed, R_OK) != 0 && shipped != nil
            return Defaults(
                hostName: hostName(), rules: useShipped ? shipped!.rules : installed,
                rulesRoot: useShipped ? shipped!.root : nil, stateDirectory: state, runtimeDirectory: runtime,
                hostAddresses: interfaceAddresses(), fullHostName: fullHostName())
        }

        /// The addresses of this host's interfaces (IPv4 and IPv6, numeric; an IPv6 address
        /// without its `%interface`).
        public static func interfaceAddresses() -> [String] {
            var list: UnsafeMutablePointer<ifaddrs>?
            guard getifaddrs(&list) == 0, let first = list else { return [] }
            defer { freeifaddrs(list) }
            var addresses: [String] = []
            var cursor: UnsafeMutablePointer<ifaddrs>? = first
            while let entry = cursor {
                defer { cursor = entry.pointee.ifa_next }
                guard let address = entry.pointee.ifa_addr else { continue }
                let family = Int32(address.pointee.sa_family)
                guard family == AF_INET || family == AF_INET6 else { continue }
                var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                let length = socklen_t(
                    family == AF_INET ? MemoryLayout<sockaddr_in>.size : MemoryLayout<sockaddr_in6>.size)
                guard getnameinfo(address, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST) == 0 else {
                    continue
                }
                let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                addresses.append(String(text.split(separator: "%").first ?? text[...]))
            }
            return addresses
        }

        /// `gethostname` as it is.
        public static func fullHostName() -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
            return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }

        /// The directory of the control socket: `/run/hamn-events` for root; for another user
        /// `$XDG_RUNTIME_DIR/hamn-events`, else `/run/user/UID/hamn-events` when that directory
        /// is the user's own (systemd-logind's), else `run` in the state directory (under the
        /// home directory). Never a fixed name in a directory every user can write (`/tmp`),
        /// where another user could create it first (the service checks it as tmux does all the
        /// same: `ControlServer`).
        public static func runtimeDirectory(
            user: uid_t, runtimeDirectory: String?, stateDirectory: String, ownsRunUser: Bool
        ) -> String {
            if user == 0 { return "/run/hamn-events" }
            if let runtimeDirectory { return runtimeDirectory + "/hamn-events" }
            if ownsRunUser { return "/run/user/\(user)/hamn-events" }
            return stateDirectory + "/run"
        }

        /// The runtime directory of this process's default configuration.
        public static func runtimeDirectoryForThisProcess() -> String {
            forThisProcess().runtimeDirectory
        }

        /// Whether `path` is a directory (not a link) of this user's with mode 0700.
        private static func ownsPrivateDirectory(_ path: String) -> Bool {
            var info = stat()
            return lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFDIR && info.st_uid == geteuid()
                && info.st_mode & 0o077 == 0
        }

        private static func environment(_ name: String) -> String? {
            getenv(name).map { String(cString: $0) }.flatMap { $0.isEmpty ? nil : $0 }
        }

        /// The host name up to its first dot, as cluster node names are written.
        public static func hostName() -> String {
            var buffer = [CChar](repeating: 0, count: 256)
            guard gethostname(&buffer, buffer.count - 1) == 0 else { return "localhost" }
            let name = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            return name.split(separator: ".").first.map(String.init) ?? "localhost"
        }
    }

    /// The embedded default: a one-node cluster named after the host, the local transport,
    /// the installed (or shipped) rules, a journal in the state directory.
    public static func embeddedDefault(_ defaults: Defaults) -> ServiceConfiguration {
        let node = ClusterNode(name: defaults.hostName, number: 1)
        var configuration = ServiceConfiguration(
            node: node, nodes: [node], rules: defaults.rules, journal: defaults.stateDirectory + "/journal.sqlite",
            socket: defaults.runtimeDirectory + "/control.sock")
        configuration.rulesRoot = defaults.rulesRoot
        return configuration
    }

    public static let keys: Set<String> = [
        "node", "nodes", "transport", "rules", "rules_root", "event_scripts", "journal", "socket", "priorities",
        "timeouts",
        "config_too_long", "start_command", "networks", "network_interval", "monitors", "default_interval", "variables",
        "corosync", "stop", "fencing", "no_quorum_policy", "watchdog", "queue_limit", "control_connections",
        "http",
    ]

    /// The keys every node must hold alike, which may be set in the cluster-wide file
    /// (`cluster.yaml` in the rules tree, carried by `sync`) instead of each node's `hamn.yaml`:
    /// the coordinator's fields (`priorities`, `config_too_long`, `fencing`,
    /// `no_quorum_policy`: every engine decides from the same messages with them) and the
    /// commands' `timeouts` (a recovery step must end alike on every node). The others name
    /// this node, what it opened, or its own machine's paths and devices.
    public static let clusterKeys: Set<String> = [
        "priorities", "timeouts", "config_too_long", "fencing", "no_quorum_policy",
    ]

    /// The cluster-wide file's name; it lives beside the rules file.
    public static let clusterFileName = "cluster.yaml"

    /// The cluster-wide file of a configuration whose rules file is `rules`: `cluster.yaml` in
    /// the rules file's directory, the root of the tree `sync` carries.
    public static func clusterFile(rules: String) -> String {
        guard let slash = rules.lastIndex(of: "/") else { return clusterFileName }
        return String(rules[...slash]) + clusterFileName
    }

    /// The configuration `text` (the file `file`), then the cluster-wide file beside its rules
    /// file when there is one (`clusterFile(rules:)`): it may set `clusterKeys` only, and none
    /// that `text` sets too. `clusterFile` false: `text` alone (the operator commands, which
    /// only look for the control socket).
    public static func parse(
        _ text: String, file: String, defaults: Defaults, clusterFile: Bool = true
    ) throws(YAMLError) -> ServiceConfiguration {
        try parseWithClusterFile(text, file: file, defaults: defaults, clusterFile: clusterFile).configuration
    }

    /// `parse`, with the cluster-wide file's text when one was read (for the positions of its keys).
    static func parseWithClusterFile(
        _ text: String, file: String, defaults: Defaults, clusterFile readsClusterFile: Bool = true
    ) throws(YAMLError) -> (
        configuration: ServiceConfiguration, clusterText: String?
    ) {
        var configuration = embeddedDefault(defaults)
        // An empty file sets nothing; the cluster-wide file is read all the same.
        let document = try YAMLValue.parse(text, file: file) ?? YAMLValue.emptyMapping(file: file)
        let directory = file.contains("/") ? String(file[...file.lastIndex(of: "/")!]) : ""
        func path(_ value: YAMLValue) throws(YAMLError) -> String {
            let text = try value.string()
            guard !text.isEmpty else { throw value.error("expected a path") }
            return text.hasPrefix("/") ? text : directory + text
        }
        var nodeName: String?
        var nodeValue: YAMLValue?
        var nodes: [ClusterNode]?
        var rulesGiven = false
        var rulesRoot: String?
        var fencingValue: YAMLValue?
        var corosyncConf: String?
        func apply(_ key: String, _ value: YAMLValue) throws(YAMLError) {
            switch key {
            case "node":
                nodeName = try value.string()
                nodeValue = value
            case "nodes": nodes = try parseNodes(value)
            case "transport":
                guard let kind = ServiceConfiguration.TransportKind(rawValue: try value.string()) else {
                    throw value.error("expected local or corosync")
                }
                configuration.transport = kind
            case "rules":
                configuration.rules = try path(value)
                rulesGiven = true
            case "rules_root": rulesRoot = try path(value)
            case "event_scripts": configuration.eventScripts = try path(value)
            case "journal": configuration.journal = try path(value)
            case "socket": configuration.socket = try path(value)
            case "control_connections":
                let number = try value.int()
                guard ServiceConfiguration.controlConnectionRange.contains(number) else {
                    throw value.error("from 1 to \(ServiceConfiguration.controlConnectionRange.upperBound) connections")
                }
                configuration.controlConnections = number
            case "priorities":
                for (name, priority) in try value.mapping(allowed: nil) {
                    let number = try priority.int()
                    guard ServiceConfiguration.priorityRange.contains(number) else {
                        throw priority.error("a priority from -1000 to 1000 (larger first), not \(number)")
                    }
                    configuration.priorities[name] = number
                }
            case "timeouts":
                for (name, timeout) in try value.mapping(allowed: nil) {
                    if name == "default" {
                        configuration.defaultTimeout = try timeout.duration()
                    } else {
                        configuration.timeouts[name] = try timeout.duration()
                    }
                }
            case "config_too_long":
                configuration.configTooLong = try value.duration()
                guard configuration.configTooLong > 0 else { throw value.error("must be above 0") }
            case "start_command": configuration.startCommand = try value.string()
            case "networks":
                configuration.networks = try value.sequence().map { item throws(YAMLError) in try item.string() }
            case "network_interval": configuration.networkInterval = try positiveDuration(value)
            case "default_interval": configuration.defaultInterval = try positiveDuration(value)
            case "monitors": configuration.monitors = try value.sequence().map(parseMonitor)
            case "variables": configuration.variables = try value.sequence().map(parseVariable)
            case "corosync":
                for (name, field) in try value.mapping(allowed: ["group", "form_timeout", "realtime", "conf"]) {
                    if name == "conf" {
                        corosyncConf = try path(field)
                    } else if name == "realtime" {
                        configuration.realtime = try field.bool()
                    } else if name == "group" {
                        let group = try field.string()
                        // CPG group names are at most 128 bytes.
                        guard !group.isEmpty, group.utf8.count <= 127 else {
                            throw field.error("a group name of 1 to 127 bytes")
                        }
                        configuration.corosyncGroup = group
                    } else {
                        configuration.formTimeout = try positiveDuration(field)
                    }
                }
            case "stop": try parseStop(value, into: &configuration)
            case "fencing": fencingValue = value
            case "no_quorum_policy": configuration.noQuorumPolicy = try NoQuorumPolicy.parse(value)
            case "watchdog": configuration.watchdog = try parseWatchdog(value)
            case "http": configuration.http = try parseHTTP(value)
            case "queue_limit":
                let limit = try value.int()
                guard (1...1_000_000).contains(limit) else { throw value.error("must be 1 to 1000000") }
                configuration.queueLimit = limit
            default: break
            }
        }
        let entries = try document.keyedMapping(allowed: keys)
        for (key, _, value) in entries { try apply(key, value) }
        var clusterText: String?
        if readsClusterFile, let cluster = try clusterDocument(rules: configuration.rules) {
            clusterText = cluster.text
            if let document = cluster.document {
                for (key, _, value) in try clusterEntries(document, set: entries, file: file) { try apply(key, value) }
            }
            configuration.clusterFile = cluster.path
        }
        if rulesGiven || rulesRoot != nil { configuration.rulesRoot = rulesRoot }
        if configuration.transport == .corosync { configuration.corosyncConf = corosyncConf ?? defaults.corosyncConf }
        if nodeName == nil, configuration.transport == .corosync {
            let found = try nodeFromCorosync(
                conf: corosyncConf ?? defaults.corosyncConf, nodes: nodes, defaults: defaults, document: document)
            if let found {
                nodes = found.nodes
                nodeName = found.node
                configuration.nodeOrigin = found.origin
            }
        }
        if let nodes {
            configuration.nodes = nodes
            let name = nodeName ?? defaults.hostName
            guard let node = nodes.first(where: { $0.name == name }) else {
                throw (nodeValue ?? document).error(
                    "this node, '\(name)', is not among the nodes (\(nodes.map(\.name).joined(separator: ", "))); set node:"
                )
            }
            configuration.node = node
        } else if let nodeName {
            configuration.node = ClusterNode(name: nodeName, number: 1)
            configuration.nodes = [configuration.node]
        }
        if let fencingValue { configuration.fencing = try parseFencing(fencingValue, nodes: configuration.nodes) }
        return (configuration, clusterText)
    }

    /// The cluster-wide file beside `rules`: nil when there is none; its document is nil when it is empty.
    private static func clusterDocument(rules: String) throws(YAMLError) -> (
        path: String, text: String, document: YAMLValue?
    )? {
        let path = clusterFile(rules: rules)
        var status = stat()
        guard stat(path, &status) == 0 else {
            if errno == ENOENT { return nil }
            throw YAMLError(file: path, line: 1, column: 1, message: "cannot read: \(String(cString: strerror(errno)))")
        }
        switch readText(path) {
        case .failure(let problem):
            throw YAMLError(file: path, line: 1, column: 1, message: "cannot read: \(problem.reason)")
        case .success(let text):
            return (path, text, try YAMLValue.parse(text, file: path))
        }
    }

    /// The cluster-wide file's entries: each a key of `clusterKeys` (a node's own key is an
    /// error at its place) that the configuration file `file` does not set too (`set`: an error
    /// naming both places).
    private static func clusterEntries(
        _ document: YAMLValue, set: [(key: String, at: YAMLValue, value: YAMLValue)], file: String
    ) throws(YAMLError) -> [(key: String, at: YAMLValue, value: YAMLValue)] {
        let entries = try document.keyedMapping(allowed: nil)
        let cluster = clusterKeys.sorted().joined(separator: ", ")
        for (key, at, _) in entries {
            guard keys.contains(key) else {
                throw at.error("unknown key '\(key)' (a cluster-wide file holds: \(cluster))")
            }
            guard clusterKeys.contains(key) else {
                throw at.error(
                    "\(key) is this node's own: set it in each node's configuration, not in \(clusterFileName) (it holds: \(cluster))"
                )
            }
            if let mine = set.first(where: { $0.key == key }) {
                throw at.error(
                    "\(key) is set here and in \(file):\(mine.at.line):\(mine.at.column): a key every node must agree on is set in one of them (here, for the whole cluster)"
                )
            }
        }
        return entries
    }

    /// This node (and, when `nodes:` is not given, every node) from corosync's nodelist in
    /// `conf`: the entry whose `ring0_addr` is one of this host's addresses or its name, or
    /// whose `name` is the host name. nil when there is no such file, or `nodes:` is given and
    /// the file does not list this host: the host name then names the node, as without corosync.
    static func nodeFromCorosync(conf: String, nodes: [ClusterNode]?, defaults: Defaults, document: YAMLValue)
        throws(YAMLError) -> (node: String, nodes: [ClusterNode], origin: String)?
    {
        guard case .success(let text) = readText(conf) else {
            // No corosync.conf at all: the host name names the node, as without corosync.
            guard access(conf, F_OK) == 0 else { return nil }
            throw document.error(
                "transport: corosync without node: takes this node from corosync's nodelist, but \(conf) cannot be read: set node:, or corosync: {conf: PATH}"
            )
        }
        let nodelist = try CorosyncNodelist.parse(text, file: conf)
        guard
            let local = nodelist.local(
                hostNames: [defaults.hostName, defaults.fullHostName], addresses: defaults.hostAddresses)
        else {
            guard nodes == nil else { return nil }
            throw document.error(
                "this host (\(defaults.fullHostName), addresses \(defaults.hostAddresses.joined(separator: " "))) is not in the nodelist of \(conf) (no ring0_addr or name of its own): set node:"
            )
        }
        let origin =
            "\(conf):\(local.line) (nodeid \(local.nodeid)\(local.ring0.map { ", ring0_addr \($0)" } ?? ""))"
        guard let nodes else {
            guard !nodelist.entries.isEmpty else { return nil }
            return (local.nodeName, nodelist.nodes, origin)
        }
        guard
            let node = nodes.first(where: { $0.name == local.nodeName })
                ?? nodes.first(where: { $0.number == local.nodeid })
        else {
            throw document.error(
                "this host is \(local.nodeName) (nodeid \(local.nodeid)) in \(conf):\(local.line), which is not among the nodes (\(nodes.map(\.name).joined(separator: ", "))) by name or number: set node:"
            )
        }
        return (node.name, nodes, origin)
    }

    /// A small file's text, read whole: why not when it cannot be opened or read, or is larger
    /// than `limit` bytes (a configuration or a corosync.conf is small).
    static func readText(_ path: String, limit: Int = 4 << 20) -> Result<String, ReadProblem> {
        guard let file = fopen(path, "re") else { return .failure(ReadProblem(String(cString: strerror(errno)))) }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let count = fread(&buffer, 1, buffer.count, file)
            if count > 0 { bytes += buffer[0..<count] }
            if count < buffer.count { break }
            if bytes.count > limit { return .failure(ReadProblem("larger than \(limit >> 20) MB")) }
        }
        guard ferror(file) == 0 else { return .failure(ReadProblem(String(cString: strerror(errno)))) }
        return .success(String(decoding: bytes, as: UTF8.self))
    }

    struct ReadProblem: Error {
        var reason: String
        init(_ reason: String) { self.reason = reason }
    }

    private static func positiveDuration(_ value: YAMLValue) throws(YAMLError) -> Double {
        let seconds = try value.duration()
        guard seconds > 0 else { throw value.error("must be above 0") }
        return seconds
    }

    /// `stop: {mode: graceful | takeover, timeout: DURATION}`: what SIGTERM does.
    private static func parseStop(_ value: YAMLValue, into configuration: inout ServiceConfiguration) throws(YAMLError)
    {
        for (name, field) in try value.mapping(allowed: ["mode", "timeout"]) {
            if name == "mode" {
                let text = try field.string()
                guard let mode = StopMode(rawValue: text), mode != .forced else {
                    throw field.error(
                        text == StopMode.forced.rawValue
                            ? "forced is for ha-cmd FORCE only (it leaves the resources where they are); expected graceful or takeover"
                            : "expected graceful (TE_FAIL_NODE state 1) or takeover (state 2), not '\(text)'")
                }
                configuration.stopMode = mode
            } else {
                let seconds = try field.duration()
                guard seconds > 0, seconds <= ServiceConfiguration.maximumStopTimeout else {
                    throw field.error("must be above 0 and at most 1d (86400s)")
                }
                configuration.stopTimeout = seconds
            }
        }
    }

    /// `watchdog: {device: PATH, timeout: DURATION}` (timeout 2s to 1h, default 10s); the device
    /// must pass `watchdogDeviceProblem`, checked here on this machine.
    /// `http: {address: 127.0.0.1, port: 9665, enabled: true}`, each key optional.
    private static func parseHTTP(_ value: YAMLValue) throws(YAMLError) -> ServiceConfiguration.HTTP? {
        var http = ServiceConfiguration.HTTP()
        var enabled = true
        for (key, field) in try value.mapping(allowed: ["address", "port", "enabled"]) {
            switch key {
            case "address":
                let address = try field.string()
                guard isAddressLiteral(address) else {
                    throw field.error("an IPv4 or IPv6 address (127.0.0.1, ::1, 0.0.0.0), not '\(address)'")
                }
                http.address = address
            case "port":
                let port = try field.int()
                guard (0...65535).contains(port) else { throw field.error("a port from 0 to 65535, not \(port)") }
                http.port = port
            default: enabled = try field.bool()
            }
        }
        return enabled ? http : nil
    }

    /// Whether `text` is an IPv4 or IPv6 address literal.
    static func isAddressLiteral(_ text: String) -> Bool {
        var buffer = in6_addr()
        return inet_pton(AF_INET, text, &buffer) == 1 || inet_pton(AF_INET6, text, &buffer) == 1
    }

    private static func parseWatchdog(_ value: YAMLValue) throws(YAMLError) -> ServiceConfiguration.Watchdog {
        var device: String?
        var timeout = 10.0
        for (key, field) in try value.mapping(allowed: ["device", "timeout"]) {
            if key == "device" {
                let path = try field.string()
                if let problem = watchdogDeviceProblem(path) { throw field.error(problem) }
                device = path
            } else {
                timeout = try field.duration()
                guard timeout >= 2, timeout <= 3600 else { throw field.error("the timeout must be from 2s to 1h") }
            }
        }
        guard let device else { throw value.error("missing key 'device' (e.g. /dev/watchdog)") }
        return ServiceConfiguration.Watchdog(device: device, timeout: timeout)
    }

    /// Why `path` may not be the watchdog, or nil. The service writes to it, as root on a real
    /// node, so: an absolute path, not a symbolic link; a character device only if it is
    /// `/dev/watchdog` or `/dev/watchdogN` (the kernel's watchdog devices: writing to any other
    /// device could harm it); a FIFO or regular file (a stand-in for tests) only if it is owned
    /// by root or by this process's user and nobody else may write it.
    public static func watchdogDeviceProblem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "the watchdog device's absolute path, e.g. /dev/watchdog" }
        var info = stat()
        guard lstat(path, &info) == 0 else {
            return "cannot use the watchdog device \(path): \(String(cString: strerror(errno)))"
        }
        let kind = info.st_mode & S_IFMT
        switch kind {
        case S_IFCHR:
            let name = path.dropFirst("/dev/".count)
            let digits = name.dropFirst("watchdog".count)
            guard path.hasPrefix("/dev/watchdog"), digits.allSatisfy(\.isNumber) else {
                return
                    "\(path) is a character device but not a watchdog (only /dev/watchdog and /dev/watchdogN are fed)"
            }
            return nil
        case S_IFIFO, S_IFREG:
            guard info.st_uid == 0 || info.st_uid == geteuid() else {
                return "\(path) belongs to user \(info.st_uid): a stand-in watchdog must be root's or this user's"
            }
            guard info.st_mode & (S_IWGRP | S_IWOTH) == 0 else {
                return "others can write \(path): a stand-in watchdog must be writable by its owner only"
            }
            return nil
        case S_IFLNK:
            return "\(path) is a symbolic link: name the watchdog device itself"
        default:
            return
                "\(path) is not a watchdog: expected /dev/watchdog[N] (a character device), or a FIFO or regular file as a stand-in"
        }
    }

    /// `fencing: none`, or `fencing: {attempts: N, devices: {NODE: {agent:, options:, ...}}}`.
    private static func parseFencing(_ value: YAMLValue, nodes: [ClusterNode]) throws(YAMLError)
        -> ServiceConfiguration.Fencing
    {
        if !value.isMapping {
            guard try value.string() == "none" else {
                throw value.error("expected none, or a mapping with devices (a fence device per node)")
            }
            return .none
        }
        var attempts = 3
        var window = FencingPolicy.defaultWindow
        var devices: [String: ServiceConfiguration.FenceDevice] = [:]
        for (key, field) in try value.mapping(allowed: ["attempts", "devices", "join_window"]) {
            if key == "attempts" {
                attempts = try field.int()
                guard (1...100).contains(attempts) else { throw field.error("from 1 to 100") }
                continue
            }
            if key == "join_window" {
                window = try field.duration()
                guard window >= 0, window <= 3600 else { throw field.error("from 0 to 1h") }
                continue
            }
            for (name, item) in try field.mapping(allowed: nil) {
                guard nodes.contains(where: { $0.name == name }) else {
                    throw item.error("'\(name)' is not among the nodes (\(nodes.map(\.name).joined(separator: ", ")))")
                }
                devices[name] = try parseFenceDevice(item, node: name)
            }
        }
        guard !devices.isEmpty else {
            throw value.error("no devices: give a fence device per node, or write fencing: none")
        }
        return .devices(devices, attempts: attempts, joinWindow: window)
    }

    private static func parseFenceDevice(_ value: YAMLValue, node: String) throws(YAMLError)
        -> ServiceConfiguration.FenceDevice
    {
        var device = ServiceConfiguration.FenceDevice(node: node, agent: "")
        let allowed: Set<String> = ["agent", "options", "password_file", "action", "timeout", "delay", "delay_max"]
        for (key, field) in try value.mapping(allowed: allowed) {
            switch key {
            case "agent":
                device.agent = try field.string()
                guard device.agent.hasPrefix("/") else {
                    throw field.error("the agent's absolute path, e.g. /usr/sbin/fence_ipmilan")
                }
            case "options":
                for (option, text) in try field.mapping(allowed: nil) {
                    // The agent reads key=value lines: a line break or '=' in a key, or a line
                    // break in a value, would smuggle in another option.
                    guard !option.isEmpty, option.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
                    else {
                        throw text.error("option names are letters, digits, '_' and '-'")
                    }
                    guard !["action", "password", "passwd", "nodename"].contains(option) else {
                        throw text.error(
                            option.hasPrefix("pass")
                                ? "no password in the configuration: put it in password_file (readable by root only)"
                                : "'\(option)' is set by the service, not in options")
                    }
                    let string = try text.string()
                    guard !string.contains("\n"), !string.contains("\r") else {
                        throw text.error("a value on one line")
                    }
                    device.options[option] = string
                }
            case "password_file":
                device.passwordFile = try field.string()
                guard device.passwordFile!.hasPrefix("/") else { throw field.error("an absolute path") }
            case "action":
                device.action = try field.string()
                guard ["reboot", "off"].contains(device.action) else { throw field.error("reboot or off") }
            case "timeout":
                device.timeout = try field.duration()
                guard device.timeout > 0, device.timeout <= 3600 else { throw field.error("above 0 and at most 1h") }
            case "delay", "delay_max":
                let seconds = try field.duration()
                guard seconds >= 0, seconds <= 3600 else { throw field.error("from 0 to 1h") }
                if key == "delay" { device.delay = seconds } else { device.delayMax = seconds }
            default: break
            }
        }
        guard !device.agent.isEmpty else { throw value.error("the device of \(node) needs its agent") }
        return device
    }

    private static func parseNodes(_ value: YAMLValue) throws(YAMLError) -> [ClusterNode] {
        var nodes: [ClusterNode] = []
        for (index, item) in try value.sequence().enumerated() {
            let node: ClusterNode
            if item.isMapping {
                var name: String?
                var number: Int?
                for (key, field) in try item.mapping(allowed: ["name", "number"]) {
                    if key == "name" { name = try field.string() } else { number = try field.int() }
                }
                guard let name, let number, ServiceConfiguration.nodeNumberRange.contains(number) else {
                    throw item.error(
                        "a node needs a name and a number from 1 to \(ServiceConfiguration.nodeNumberRange.upperBound)")
                }
                node = ClusterNode(name: name, number: number)
            } else {
                node = ClusterNode(name: try item.string(), number: index + 1)
            }
            if nodes.contains(where: { $0.name == node.name || $0.number == node.number }) {
                throw item.error("node '\(node.name)' (number \(node.number)) given twice")
            }
            nodes.append(node)
        }
        guard !nodes.isEmpty else { throw value.error("at least one node") }
        return nodes
    }

    private static func parseMonitor(_ value: YAMLValue) throws(YAMLError) -> ServiceConfiguration.Monitor {
        var monitor = ServiceConfiguration.Monitor(variable: "", interval: 10)
        for (key, field) in try value.mapping(allowed: ["variable", "interval", "command"]) {
            switch key {
            case "variable": monitor.variable = try field.string()
            case "interval": monitor.interval = try positiveDuration(field)
            default: monitor.command = try field.string()
            }
        }
        guard !monitor.variable.isEmpty else { throw value.error("a monitor needs its variable") }
        return monitor
    }

    private static func parseVariable(_ value: YAMLValue) throws(YAMLError) -> ServiceConfiguration.Variable {
        var variable = ServiceConfiguration.Variable(name: "", command: "")
        for (key, field) in try value.mapping(allowed: [
            "name", "command", "interval", "parser", "fields", "instance", "timeout",
        ]) {
            switch key {
            case "name": variable.name = try field.string()
            case "command": variable.command = try field.string()
            case "interval": variable.interval = try positiveDuration(field)
            case "timeout": variable.timeout = try positiveDuration(field)
            case "parser":
                guard let parser = ServiceConfiguration.Variable.Parser(rawValue: try field.string()) else {
                    throw field.error("expected one of number, string, fields, db2-hadr")
                }
                variable.parser = parser
            case "fields":
                var fields: [(name: String, isNumber: Bool)] = []
                for (name, type) in try field.mapping(allowed: nil) {
                    switch try type.string() {
                    case "number": fields.append((name, true))
                    case "string": fields.append((name, false))
                    default: throw type.error("a field is number or string")
                    }
                }
                variable.fields = fields
            default:
                variable.instanceElements = try field.sequence().map { item throws(YAMLError) in try item.string() }
            }
        }
        guard !variable.name.isEmpty, !variable.name.contains(" ") else {
            throw value.error("a variable needs a name without blanks")
        }
        guard variable.command.hasPrefix("/") else {
            throw value.error("variable \(variable.name): command must start with an absolute path")
        }
        if variable.fields != nil, variable.parser != .fields {
            throw value.error("variable \(variable.name): fields go with parser: fields")
        }
        return variable
    }
}

extension ServiceConfiguration {
    /// The administrator-defined variables as the rules checker and evaluator know variables.
    public var resourceVariables: [ResourceVariable] {
        variables.map { variable in
            let kind: ResourceVariable.Kind
            switch variable.parser {
            case .number: kind = .scalar(.number)
            case .string: kind = .scalar(.string)
            case .db2Hadr: kind = VariableCatalogue.builtIn["HAMN.DB2.HADR"]!.kind
            case .fields:
                kind =
                    variable.fields.map { fields in
                        .structured(fields.map { .init($0.name, $0.isNumber ? .number : .string) })
                    } ?? .dynamic
            }
            return ResourceVariable(
                name: variable.name, kind: kind, instanceElements: variable.instanceElements, summary: variable.command)
        }
    }
}
