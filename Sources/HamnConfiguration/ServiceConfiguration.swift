import RulesEngine
import RulesParser

/// The service's configuration: one YAML file (README, "Configuration"). Every value has a
/// default, so that `hamn-events run` with no file runs a one-node cluster.
public struct ServiceConfiguration: Sendable {
    public enum TransportKind: String, Sendable, Hashable {
        case local
        case corosync
    }

    /// How often a built-in variable is sampled, and for which instances beyond those the rules name.
    public struct Monitor: Sendable, Hashable {
        public var variable: String
        /// Seconds between samples.
        public var interval: Double
        /// For `HAMN.DB2.HADR`: the `db2pd` program (run as `db2pd -d DATABASE -hadr`).
        public var command: String?

        public init(variable: String, interval: Double, command: String? = nil) {
            self.variable = variable
            self.interval = interval
            self.command = command
        }
    }

    /// An administrator-defined variable: a command run at an interval, its output parsed.
    public struct Variable: Sendable, Hashable {
        public enum Parser: String, Sendable, Hashable, CaseIterable {
            /// The output is one number.
            case number
            /// The output, trimmed, is one string.
            case string
            /// `key = value` lines: a structured value.
            case fields
            /// `db2pd -hadr` or `db2 get snapshot` output: the fields of `HAMN.DB2.HADR`.
            case db2Hadr = "db2-hadr"
        }

        public var name: String
        /// Run by `/bin/sh -c`; must be an absolute path.
        public var command: String
        public var interval: Double
        public var parser: Parser
        /// For `fields`: the declared fields and their types (nil: any fields, no type checks).
        public var fields: [(name: String, isNumber: Bool)]?
        /// Its instance elements; `NodeNum` is always this node.
        public var instanceElements: [String]
        /// Seconds the command may run before it is killed and the sample counts as failed.
        public var timeout: Double

        public init(
            name: String, command: String, interval: Double = 10, parser: Parser = .number,
            fields: [(name: String, isNumber: Bool)]? = nil, instanceElements: [String] = ["NodeNum"],
            timeout: Double = 10
        ) {
            self.name = name
            self.command = command
            self.interval = interval
            self.parser = parser
            self.fields = fields
            self.instanceElements = instanceElements
            self.timeout = timeout
        }

        public static func == (lhs: Variable, rhs: Variable) -> Bool {
            lhs.name == rhs.name && lhs.command == rhs.command && lhs.interval == rhs.interval
                && lhs.parser == rhs.parser && lhs.instanceElements == rhs.instanceElements
                && lhs.timeout == rhs.timeout
                && lhs.fields?.map(\.name) == rhs.fields?.map(\.name)
                && lhs.fields?.map(\.isNumber) == rhs.fields?.map(\.isNumber)
        }

        public func hash(into hasher: inout Hasher) {
            hasher.combine(name)
            hasher.combine(command)
        }
    }

    /// A node's fence device: a fence agent (fence-agents' `fence_*` or any program that follows
    /// their convention: `key=value` lines on standard input, exit status 0 on success).
    public struct FenceDevice: Sendable, Hashable {
        /// The node it powers off.
        public var node: String
        /// The agent's absolute path.
        public var agent: String
        /// Its options (`ip`, `username`, `lanplus`, ...), written to its standard input as
        /// `key=value` lines after `action=`; never in the journal, `status` or logs.
        public var options: [String: String]
        /// A file (root's, mode 0600 or 0400) whose first line is given as `password=`.
        public var passwordFile: String?
        /// `reboot` (the default: the node comes back and rejoins) or `off`.
        public var action: String = "reboot"
        /// Seconds the agent may run before it is killed and the attempt counts as failed.
        public var timeout: Double = 60
        /// Seconds to wait before running it, plus a random part up to `delayMax` (Pacemaker's
        /// `pcmk_delay_base` and `pcmk_delay_max`). The node that fences this one waits: in a
        /// two-node cluster split 1|1 the node whose device has the delay wins the fence race
        /// (the other is fenced first, while its own fence of this node still waits).
        public var delay: Double = 0
        public var delayMax: Double = 0

        public init(node: String, agent: String, options: [String: String] = [:]) {
            self.node = node
            self.agent = agent
            self.options = options
        }
    }

    /// Fencing before takeover (docs/decisions.md, "Fencing").
    public enum Fencing: Sendable, Hashable {
        /// Not configured: takeovers run unprotected, and the service says so (with Corosync).
        case unset
        /// `fencing: none`: takeovers run unprotected, by the administrator's choice.
        case none
        /// Fence devices by node name; attempts per fence before the takeover waits for an
        /// administrator; seconds a node whose state is unknown has to join before it is fenced.
        case devices([String: FenceDevice], attempts: Int, joinWindow: Double = FencingPolicy.defaultWindow)
    }

    public var fencing: Fencing = .unset

    /// What the coordinator applies: fence before takeover when there are devices.
    public var fencingPolicy: FencingPolicy {
        if case .devices(_, let attempts, let window) = fencing {
            FencingPolicy(enabled: true, attempts: attempts, nodes: nodes, window: window)
        } else {
            .none
        }
    }

    /// The warning a cluster without fencing gets at start, in `status` and in `validate --config`.
    public var fencingWarning: String? {
        guard transport == .corosync, fencing == .unset else { return nil }
        return
            "no fence devices: a node that fails is taken over without making sure it is down (configure fencing: with a device per node, or fencing: none to accept the risk)"
    }

    /// What this node does when its partition loses quorum (`no_quorum_policy`).
    public var noQuorumPolicy: NoQuorumPolicy = .freeze

    /// The self-fencing watchdog (`watchdog:`): fed from the service's thread while it is
    /// healthy, so that a dead or stuck engine takes its node down.
    public struct Watchdog: Sendable, Hashable {
        /// `/dev/watchdog` or `/dev/watchdogN` (a character device), or a FIFO or regular file
        /// that is a stand-in for tests.
        public var device: String
        /// Seconds without a feed before the device resets the node; fed every quarter of it.
        public var timeout: Double

        public init(device: String, timeout: Double = 10) {
            self.device = device
            self.timeout = timeout
        }

        /// Seconds between two feeds.
        public var interval: Double { timeout / 4 }
    }

    public var watchdog: Watchdog?

    /// The HTTP listener (`http:`): the read-only web view and `/metrics` (README, "Web view").
    /// On by default on the loopback address; another address is only ever set explicitly.
    public struct HTTP: Sendable, Hashable {
        /// An IPv4 or IPv6 address literal to bind.
        public var address: String
        /// The TCP port; 0 picks a free one (tests read the URL from `status`).
        public var port: Int

        public init(address: String = HTTP.defaultAddress, port: Int = HTTP.defaultPort) {
            self.address = address
            self.port = port
        }

        public static let defaultAddress = "127.0.0.1"
        /// ha_cluster_exporter (Pacemaker's) uses 9664: the next one.
        public static let defaultPort = 9665
    }

    /// nil: `http: {enabled: false}`, no listener.
    public var http: HTTP? = HTTP()

    /// This node.
    public var node: ClusterNode
    /// Where this node's name and number came from when corosync's nodelist gave them
    /// (`FILE:LINE (nodeid N, ring0_addr A)`); nil when the configuration or the host name did.
    public var nodeOrigin: String?
    /// The cluster-wide file read with the configuration (`cluster.yaml` beside the rules
    /// file, `ConfigurationLoader.clusterFile(rules:)`); nil when there is none.
    public var clusterFile: String?
    /// Every node of the cluster, this one included.
    public var nodes: [ClusterNode]
    public var transport: TransportKind = .local
    /// The rules file.
    public var rules: String
    /// When set, the absolute `.rp` paths of the rules are looked up under this directory (as
    /// `validate --root` does), so that a tree of rules can run where it is; commands still run
    /// from the real file system. The embedded default uses it for the shipped rules.
    public var rulesRoot: String?
    /// Where bundled event scripts live; nil: `events/` beside the rules file.
    public var eventScripts: String?

    /// Where bundled event scripts are looked up: `eventScripts`, or `events/` beside the rules.
    public var eventScriptDirectory: String {
        if let eventScripts { return eventScripts }
        guard let slash = rules.lastIndex(of: "/") else { return "events" }
        return String(rules[..<slash]) + "/events"
    }
    /// The SQLite journal.
    public var journal: String
    /// The control socket.
    public var socket: String
    /// Control connections served at once (`control_connections`); nil: 100, or fewer when
    /// the file descriptor limit is low (`ControlServer`).
    public var controlConnections: Int?
    public static let controlConnectionRange = 1...10000
    /// Event priorities by event name; the defaults of `EventPriorities` otherwise.
    public var priorities: [String: Int] = [:]
    /// What `priorities:` accepts (the defaults are 10, 20 and 30).
    public static let priorityRange = -1000...1000
    /// What a node's `number` may be (it reaches commands as `HAMN_*_NODE_NUMBER` and C ints).
    public static let nodeNumberRange = 1...Int(Int32.max)
    /// Per-event command timeouts in seconds, by event name; `defaultTimeout` for the others.
    /// 0 is no timeout (as systemd's `TimeoutSec=0`): `commandTimeout(for:)` says which applies.
    public var timeouts: [String: Double] = [:]
    public var defaultTimeout: Double?
    /// How many events may wait in the queue: a raise over it (`trigger`, a monitor, an
    /// interface) is refused with an error and a journal line, never dropped silently.
    public var queueLimit: Int = 1000

    /// How long a command of `event` may run: its event's timeout, else the default; nil (no
    /// timeout) when neither is given or the one that applies is 0.
    public func commandTimeout(for event: String) -> Duration? {
        guard let seconds = timeouts[event] ?? defaultTimeout, seconds > 0 else { return nil }
        return BoundedDuration(seconds: seconds)?.duration
    }
    /// Seconds before `TE_CONFIG_TOO_LONG`, and between repeats.
    public var configTooLong: Double = 360
    /// What `ha-cmd NODES START` runs for a node that is not running the service, with
    /// `HAMN_START_NODE` in its environment, e.g. `ssh $HAMN_START_NODE systemctl start hamn-events`.
    public var startCommand: String?
    /// Cluster network interfaces to watch (`TE_FAIL_NETWORK` / `TE_JOIN_NETWORK`).
    public var networks: [String] = []
    /// Seconds between looks at the network interfaces.
    public var networkInterval: Double = 2
    /// Sampling of built-in variables; the rules' variables not listed are sampled every `defaultInterval`.
    public var monitors: [Monitor] = []
    public var defaultInterval: Double = 10
    public var variables: [Variable] = []
    /// The corosync.conf of `transport: corosync` (`corosync: {conf: PATH}`, else the default):
    /// `sync` checks its crypto settings.
    public var corosyncConf: String?
    /// The CPG group the engines of this cluster join (`transport: corosync`).
    public var corosyncGroup = "hamn-events"
    /// Seconds a joining engine waits for another engine to answer before it starts a cluster
    /// (only when other processes are in the group; see `EngineMembership`).
    public var formTimeout: Double = 5
    /// The service's thread (its actor and the Corosync dispatch) runs under SCHED_RR 1
    /// (`transport: corosync` only; see `EventLoopThread`).
    public var realtime = true
    /// SIGTERM stops this node through the cluster as `ha-cmd STOP` (graceful, `TE_FAIL_NODE`
    /// state 1) or `ha-cmd TAKE` (takeover, state 2) does (docs/decisions.md, "Stopping a node").
    public var stopMode: StopMode = .graceful
    /// Seconds SIGTERM waits for that stop event to end before stopping at once.
    public var stopTimeout: Double = ServiceConfiguration.defaultStopTimeout
    /// 5 minutes: a release of resources (a database stopped, an address taken down) fits in it,
    /// and systemd's `TimeoutStopSec` (`samples/hamn-events.service`) is this plus a margin.
    public static let defaultStopTimeout: Double = 300
    /// A day: longer is a mistake (a unit in minutes taken for seconds), not a plan.
    public static let maximumStopTimeout: Double = 86400

    public init(node: ClusterNode, nodes: [ClusterNode], rules: String, journal: String, socket: String) {
        self.node = node
        self.nodes = nodes
        self.rules = rules
        self.journal = journal
        self.socket = socket
    }
}
