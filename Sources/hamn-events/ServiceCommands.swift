import ArgumentParser
import Foundation
import HamnConfiguration
import HamnService
import RulesEngine
import RulesParser
import RulesValidation
import TimelineRendering

#if canImport(Glibc)
    import Glibc
#endif

/// How the command line finds the service: `--socket`, else the configuration's socket, else
/// the default.
struct ServiceOptions: ParsableArguments {
    @Option(help: "The service's configuration file, to find its control socket.")
    var config: String?

    @Option(help: "The service's control socket.")
    var socket: String?

    func socketPath() throws -> String {
        if let socket { return socket }
        // hamn.yaml alone: the socket is not a cluster-wide key, and a cluster.yaml being
        // edited (a conflict `sync` would refuse, with its place) must not lock out `status`.
        return try loadConfiguration(config, clusterFile: false).socket
    }

    /// Sends one request and prints the answer: its text (or JSON) on standard output and
    /// exit 0, or its error on standard error and the error's exit status (SPEC section 8:
    /// 2 for a usage error, 1 otherwise, a `wait-event` timeout included). Every request ends
    /// with a final answer (`done`, `report` or `failed`; `mon`'s lines end with one too): a
    /// connection that ends without one (the service stopped or crashed mid-request) is exit 1.
    /// `present`: shows the answer instead of `show` (and returns the exit status it asks for).
    func send(
        _ request: ControlRequest, format: OutputFormat = .text, present: ((ControlAnswer) -> Int32)? = nil
    ) throws {
        let path = try socketPath()
        var status: Int32 = 0
        var answered = false
        do {
            try ControlClient.send(request, to: path) { answer in
                if case .logLine = answer {} else { answered = true }
                status = present?(answer) ?? show(answer, format: format)
                return true
            }
        } catch {
            printError("hamn-events: \(error.message)")
            throw ExitCode(1)
        }
        guard answered else {
            printError(
                "hamn-events: the service closed the connection before answering: it stopped or crashed (see its log)")
            throw ExitCode(1)
        }
        if status != 0 { throw ExitCode(status) }
    }

    /// Prints one answer: its text (or JSON) on standard output, or its error on standard
    /// error. Returns the exit status it asks for: 0, or the error's.
    func show(_ answer: ControlAnswer, format: OutputFormat = .text) -> Int32 {
        // Whatever the service sends, no control character reaches the terminal as one
        // (TerminalText; the service escapes its lines too).
        switch answer {
        case .done(let text), .logLine(let text, _):
            let shown = format == .json ? TerminalText.json(jsonText(text)) : TerminalText.lines(text)
            if !shown.isEmpty { writeStdout(shown + "\n") }
        case .report(let text, let json):
            let shown = format == .json ? TerminalText.json(json) : TerminalText.lines(text)
            if !shown.isEmpty { writeStdout(shown + "\n") }
        case .failed(let error):
            printError("hamn-events: \(TerminalText.lines(error.message))")
            return error.exitCode
        }
        return 0
    }

    private func jsonText(_ text: String) -> String {
        "{\"text\": \(JSON.string(text))}"
    }
}

/// The configuration file used when `--config` is not given: `$HAMN_EVENTS_CONFIG`, else
/// `/etc/hamn/hamn.yaml` (what the package installs).
func defaultConfigurationPath() -> String {
    if let path = ProcessInfo.processInfo.environment["HAMN_EVENTS_CONFIG"], !path.isEmpty { return path }
    return "/etc/hamn/hamn.yaml"
}

/// The file to read: `--config`, else the default file when it exists; nil: the embedded default.
func configurationFile(_ explicit: String?) -> String? {
    if let explicit { return explicit }
    let path = defaultConfigurationPath()
    return FileManager.default.fileExists(atPath: path) ? path : nil
}

/// The configuration named by `--config`, else the default file when it exists, else the
/// embedded default.
/// `clusterFile`: read the cluster-wide file beside the rules too (`run`, `validate`).
func loadConfiguration(_ explicit: String?, clusterFile: Bool = true) throws -> ServiceConfiguration {
    let defaults = ConfigurationLoader.Defaults.forThisProcess(shipped: shippedRules())
    guard let path = configurationFile(explicit) else { return ConfigurationLoader.embeddedDefault(defaults) }
    guard let data = FileManager.default.contents(atPath: path) else {
        printError("hamn-events: cannot read the configuration \(path)")
        throw ExitCode(2)
    }
    do {
        return try ConfigurationLoader.parse(
            String(decoding: data, as: UTF8.self), file: path, defaults: defaults, clusterFile: clusterFile)
    } catch {
        printError(error.description)
        throw ExitCode(2)
    }
}

/// The rules shipped with hamn-events and the root of their tree, for the embedded default
/// when none are installed in /etc/hamn: found from the executable up (a source checkout, or
/// the package's /usr/share/hamn-events/quickstart from /usr/sbin), or given by
/// HAMN_EVENTS_SHIPPED (the tree's root).
func shippedRules() -> (rules: String, root: String)? {
    let relative = "etc/hamn/rules/rules.hacmprd"
    if let root = ProcessInfo.processInfo.environment["HAMN_EVENTS_SHIPPED"] { return (root + "/" + relative, root) }
    // The executable's own path (argv[0] is only a name when it was found on PATH).
    let executable =
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var directory = URL(fileURLWithPath: executable).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<6 {
        for tree in ["share/hamn-events/quickstart", "examples/quickstart"] {
            let root = directory.appendingPathComponent(tree).path
            if FileManager.default.fileExists(atPath: root + "/" + relative) { return (root + "/" + relative, root) }
        }
        directory = directory.deletingLastPathComponent()
    }
    return nil
}

extension HamnEvents {
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Membership, the running event and who a barrier waits for, the queue, armed and disarmed instances.")
        @OptionGroup var service: ServiceOptions
        @Option(help: "text or json.") var format: OutputFormat = .text
        @Flag(
            help:
                "The instances of every member, asked through the cluster (a member that does not answer within 5 s is named)."
        )
        var all = false

        func run() throws { try service.send(.status(all: all ? true : nil), format: format) }
    }

    struct History: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Past events from the journal, newest first; or one event's timeline.",
            discussion: """
                With EVENT (an event id, as history lists them), the timeline of that event: \
                one lane per node, each command a bar from its start to its end, the barriers \
                between segments, who waited at each, failures and resumes. --format html writes \
                it as a standalone HTML page (inline SVG, no external resource) for an incident \
                report: hamn-events history 7 --format html > event-7.html. Event ids restart \
                when a cluster forms: --run picks the journal run (default: the newest that has \
                the event).
                """)
        @OptionGroup var service: ServiceOptions
        @Argument(help: "An event id: show its timeline.") var event: Int?
        @Option(name: .customLong("run"), help: "The journal run of EVENT (default: the newest run that has it).")
        var journalRun: Int64?
        @Option(help: "How many events.") var limit = 20
        @Option(help: "text, json, or html (with EVENT).") var format: ReportFormat = .text

        func validate() throws {
            guard limit >= 0, limit <= ControlRequest.historyLimit else {
                throw ValidationError("--limit is a number of events from 0 to \(ControlRequest.historyLimit)")
            }
            guard event != nil || (format != .html && journalRun == nil) else {
                throw ValidationError("--format html and --run show one event's timeline: give its EVENT id")
            }
            guard (event ?? 0) >= 0, (journalRun ?? 0) >= 0 else {
                throw ValidationError("EVENT and --run are not negative")
            }
        }

        func run() throws {
            guard let event else {
                try service.send(.history(limit: limit), format: format == .json ? .json : .text)
                return
            }
            guard format == .html else {
                try service.send(.timeline(event: event, run: journalRun), format: format == .json ? .json : .text)
                return
            }
            try service.send(.timeline(event: event, run: journalRun)) { answer in
                guard case .report(_, let json) = answer else { return service.show(answer) }
                guard let timeline = try? Timeline(json: json) else {
                    printError("hamn-events: the service's timeline is not one this version reads")
                    return 1
                }
                writeStdout(TimelineHTML.render([timeline], title: "hamn-events: " + timeline.title))
                return 0
            }
        }
    }

    struct Resume: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Go on with the event held in the failed state.",
            discussion: """
                Fix the cause first, then choose how the event goes on:

                resume
                  HACMP's meaning: you did the rest of the event by hand. The rest
                  is skipped on every node, the event ends failed, the queue moves on.
                resume --retry
                  The commands that failed run again, on the nodes where they failed.
                  If they now meet their expected status, the event goes on with its
                  next segment; if not, it stays held and TE_EVENT_ERROR runs again.
                resume --continue
                  The event goes on with its next segment as if the failed commands
                  had succeeded (it ends completed if that was its last segment).

                --cancel-queued also drops the events waiting in the queue, in any
                mode. The journal records each resume with the user who asked.
                """)
        @OptionGroup var service: ServiceOptions
        @Flag(help: "Run the failed commands again where they failed; go on if they succeed.") var retry = false
        @Flag(
            name: .customLong("continue"), help: "Go on with the next segment as if the failed commands had succeeded.")
        var continueNext = false
        @Flag(help: "Also drop the queued events.") var cancelQueued = false

        func validate() throws {
            guard !(retry && continueNext) else { throw ValidationError("--retry and --continue exclude each other") }
        }

        func run() throws {
            let mode: ResumeMode = retry ? .retry : continueNext ? .continue : .skip
            try service.send(.resume(mode, cancelQueued: cancelQueued))
        }
    }

    struct Trigger: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Raise an event by hand.")
        @OptionGroup var service: ServiceOptions
        @Argument(help: "The event name.") var event: String
        @Option(help: "Its state.") var state = 0
        @Option(help: "Its event node (default: this node).") var node: String?

        func validate() throws {
            guard state.magnitude <= ControlRequest.largestState.magnitude else {
                throw ValidationError("--state is an integer of at most 18 digits, as in a rules file")
            }
        }

        func run() throws { try service.send(.trigger(event: event, state: state, node: node)) }
    }

    struct Recovery: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Turn recovery off or on for nodes: events whose event node has it off are suppressed.")
        @OptionGroup var service: ServiceOptions
        @Argument(help: "off or on.") var setting: ControlRequest.RecoverySetting
        @Argument(help: "NODERANGE: 1-16, 1,2,3, 1-4,7, names, all.") var nodes: String

        func run() throws { try service.send(.recovery(setting: setting, nodes: nodes)) }
    }

    struct HaCmd: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ha-cmd", abstract: "Start or stop cluster services on nodes.",
            discussion: """
                STOP, TAKE and FORCE stop the nodes' cluster services through the cluster \
                (TE_FAIL_NODE state 1, 2 and 3: graceful, with takeover, forced). START runs the \
                configuration's start_command for each node that is not running them.
                """)
        @OptionGroup var service: ServiceOptions
        @Argument(help: "NODERANGE.") var nodes: String
        @Argument(help: "START, STOP, TAKE or FORCE.") var action: ControlRequest.ClusterServicesAction

        func run() throws { try service.send(.haCmd(action: action, nodes: nodes)) }
    }

    struct WaitEvent: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "wait-event",
            abstract: "Wait until an event of that name completes (exit 0) or the timeout passes (exit 1).")
        @OptionGroup var service: ServiceOptions
        @Argument(help: "The event name.") var name: String
        @Option(help: "Seconds, or 10s, 5m, 1h, 1d; at most 365d; 0 waits for ever.") var timeout = "0"

        func validate() throws { _ = try limit() }

        func run() throws {
            let limit = try limit()
            try service.send(.waitEvent(name: name, timeout: limit > .zero ? limit : nil))
        }

        private func limit() throws -> BoundedDuration {
            do {
                return try BoundedDuration(parsing: timeout)
            } catch {
                throw ValidationError("--timeout: \(error.message)")
            }
        }
    }

    struct Fence: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fence a node by hand, or confirm that a node is down.",
            discussion: """
                fence NODE runs this node's fence device for NODE now (its agent, with the options \
                of the configuration) and tells the cluster how it ended: a takeover waiting for \
                NODE's fence runs once it succeeds. fence confirm NODE records that you made sure \
                NODE is down (powered off, its disks and addresses released) when its agent cannot \
                do it: the takeover then runs. Confirming a node that is still up puts its \
                resources on two nodes. Both are journaled on every node.
                """)
        @OptionGroup var service: ServiceOptions
        @Argument(help: "NODE, or confirm NODE.") var words: [String]

        func validate() throws {
            guard words.count == 1 || (words.count == 2 && words[0] == "confirm") else {
                throw ValidationError("expected NODE or confirm NODE")
            }
        }

        func run() throws {
            try service.send(words.count == 2 ? .fenceConfirm(node: words[1]) : .fence(node: words[0]))
        }
    }

    struct Sync: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send this node's rules tree to every node, through the cluster.",
            discussion: """
                sync reads every file under the rules file's directory, checks it (the rules \
                validate, every .rp file is inside it, only regular files owned by root and \
                writable by root alone, not hamn.yaml or a fence password file, 512 KiB at most) \
                and sends it through the cluster; corosync's crypto must be on, since the tree \
                holds commands that every node runs as root. Every node writes it as a new \
                generation of that directory (the directory becomes a link to it), validates it \
                and reloads at the same place in the order, or keeps its old rules and says why. \
                Each node's outcome is printed; the exit status is 0 only if every node took it. \
                --rollback puts back, on every node, the tree from before the last sync.
                """)
        @OptionGroup var service: ServiceOptions
        @Flag(help: "Go back to the tree from before the last sync.") var rollback = false

        func run() throws {
            try service.send(.sync(rollback: rollback))
        }
    }

    struct Mon: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow the event log as it is written (like tail -f of hacmp.out).",
            discussion: """
                The service pushes each line as it is journaled. mon starts with the newest 50 \
                lines. When the service stops or dies, mon says so on standard error and waits \
                for it to start again; then it says so, shows the lines written meanwhile (up \
                to 500; if there were more, the newest 50 after a line saying so) and follows \
                on. With --once it ends with the service instead: exit 0 at a clean stop, 1 if \
                the connection ended without the service's last word (killed or crashed). A \
                client that does not read (output paused in a pager) is dropped once 1,000 \
                lines wait for it: mon then says so and exits 1. If no service runs when mon \
                starts, it says so and exits 1.
                """)
        @OptionGroup var service: ServiceOptions
        @Option(help: "Only lines about this node.") var node: String?
        @Flag(help: "End when the service stops, instead of waiting for it to start again.") var once = false

        /// How one connection's stream ended.
        private enum Ending {
            /// The service's last word: it stopped cleanly.
            case stopped
            /// The connection ended without one: the service was killed or crashed.
            case lost
            /// The service refused or dropped this client: exit with this status.
            case failed(Int32)
        }

        func run() throws {
            if once {
                // Lines until the service ends the stream; a drop is a failed answer (exit 1).
                try service.send(.mon(node: node))
                return
            }
            let path = try service.socketPath()
            var after: Int64?  // the id of the last line shown
            var followed = false  // the service answered on a connection
            while true {
                var ending = Ending.lost
                var answered = false  // on this connection
                do {
                    try ControlClient.send(.mon(node: node, after: after), to: path) { answer in
                        if !answered, followed {
                            printError("hamn-events mon: the service runs again; following its log")
                        }
                        answered = true
                        if case .logLine(_, let id?) = answer { after = id }
                        if case .done = answer { ending = .stopped }
                        let status = service.show(answer)
                        if status != 0 { ending = .failed(status) }
                        return true
                    }
                } catch {
                    // Down at the start: say so and end. Down while waiting: try again.
                    guard followed, error.serviceDown else {
                        printError("hamn-events: \(error.message)")
                        throw ExitCode(1)
                    }
                    Thread.sleep(forTimeInterval: 0.5)
                    continue
                }
                guard answered else {
                    // The first connection ended without a word: as every request, exit 1. A
                    // later one (the service died as it started): wait on.
                    guard followed else {
                        printError(
                            "hamn-events: the service closed the connection before answering: it stopped or crashed (see its log)"
                        )
                        throw ExitCode(1)
                    }
                    Thread.sleep(forTimeInterval: 0.5)
                    continue
                }
                followed = true
                switch ending {
                case .failed(let status):
                    throw ExitCode(status)
                case .stopped:
                    printError(
                        "hamn-events mon: the service stopped; waiting for it to start again (Ctrl-C ends mon)")
                case .lost:
                    printError(
                        "hamn-events mon: the connection ended without the service's last word (killed or crashed?); waiting for it to start again (Ctrl-C ends mon)"
                    )
                }
                Thread.sleep(forTimeInterval: 0.5)
            }
        }
    }
}

extension ControlRequest.RecoverySetting: ExpressibleByArgument {}
extension ControlRequest.ClusterServicesAction: ExpressibleByArgument {}
