import Foundation
import HamnConfiguration
import RulesEngine
import RulesParser

/// The web view's listener, as `status` tells it.
public enum WebViewStatus: Sendable, Hashable {
    /// `http: {enabled: false}`.
    case off
    /// Configured, the listener not bound yet: the control socket answers a moment before it.
    case starting
    /// Listening at this URL.
    case listening(url: String)
    /// It could not bind (the port is in use, ...): why.
    case notListening(reason: String)
}

/// What `status` shows, copied from the service's actor in one step; rendered as text and
/// JSON off it (`rendered()`).
struct StatusReport: Sendable {
    typealias Instance = (trigger: EventDefinition.Trigger, instance: String, armed: Bool, last: SampleValue?)

    var node: ClusterNode
    var transport: ServiceConfiguration.TransportKind
    var synchronised: Bool
    var members: [ClusterNode]
    /// The transport's flag (votequorum's), and the coordinator's (in the deliveries' order).
    var quorate: Bool
    var coordinatorQuorate: Bool
    var waitingForQuorum: Int
    var engines: [EngineEntry]
    /// The wire version the cluster agreed on (`WireAgreement`).
    var wireVersion: Int
    var configurationDifferences: [String]
    var recoveryOff: [String]
    var running: [RunningEvent]
    var queue: [ClusterEvent]
    /// The monitors, the rules and the recent samples, copied on the service's actor (copy on
    /// write: O(1)); the instances are listed, sorted and paired with their samples when the
    /// report is rendered, off it. Listing 1,000 pairs there took milliseconds, enough to delay
    /// a sample's predicate while the web view polled (`hamn-bench service --scrape-rate`).
    /// nil when the caller does not list the instances (the web view between its once-a-second
    /// lists: sharing the monitors' storage would make the next sample copy it on the actor).
    var monitors: NodeMonitors?
    var rules: RuleBook
    var recent: RecentSamples
    var instances: [Instance] { monitors?.instances ?? [] }
    var monitorFailures: [String: String]
    var fencingWarning: String?
    var pendingFences: [PendingFence]
    var fenceAttempts: Int
    /// Why the journal cannot write (events wait), nil when it can.
    var journalProblem: String?
    var queueLimit: Int
    /// Each node's rules tree digest, as its last `sync` outcome said (README, "sync").
    var treeDigests: [String: String] = [:]
    var webView: WebViewStatus = .off

    /// One line: the tree this node runs, and whether every member runs the same; nil before
    /// any node said (no sync, and no member joined since this one started).
    var treeLine: String? {
        guard let own = treeDigests[node.name] else { return nil }
        let differing = members.filter { $0 != node && treeDigests[$0.name] != own }
        guard !differing.isEmpty else { return "rules tree: \(own.prefix(12)), the same on every member" }
        let others = differing.map { "\($0.name) \(treeDigests[$0.name].map { String($0.prefix(12)) } ?? "unknown")" }
        return "rules tree: \(own.prefix(12)) here; DIFFERS: \(others.joined(separator: ", "))"
    }

    /// The text for people and the JSON document (`status --format json`).
    func rendered() -> ControlAnswer {
        var lines: [String] = []
        lines.append(
            "node \(node.name) (\(node.number)), transport \(transport.rawValue)\(synchronised ? "" : ", waiting for the cluster's state")"
        )
        if let journalProblem { lines.append("JOURNAL: \(journalProblem)") }
        switch webView {
        case .off: lines.append("web view: off (http: enabled: false)")
        case .starting: lines.append("web view: starting")
        case .listening(let url): lines.append("web view: \(url) (read-only; metrics at \(url)metrics)")
        case .notListening(let reason): lines.append("web view: NOT listening: \(reason)")
        }
        lines.append("members: \(members.map(\.name).joined(separator: " "))")
        if let treeLine { lines.append(treeLine) }
        if transport == .corosync {
            var line = "quorum: \(quorate ? "yes" : "NO: no recovery program runs")"
            if quorate && !coordinatorQuorate {
                line += " (back; recovery waits until the membership change that came with it settles)"
            }
            if waitingForQuorum > 0 { line += ", \(waitingForQuorum) segment(s) waiting" }
            lines.append(line)
            lines.append("wire version: \(wireVersion)")
            for engine in engines {
                lines.append(
                    "  engine \(engine.info.node.name) (\(engine.info.node.number)) at corosync \(engine.address), configuration \(engine.info.digest.combined.prefix(12)), wire \(Self.wire(engine))"
                )
            }
            for line in configurationDifferences { lines.append("WARNING: \(line)") }
        }
        if let fencingWarning { lines.append("WARNING: \(fencingWarning)") }
        for fence in pendingFences {
            var line = "fencing \(fence.node.name): by \(fence.fencer?.name ?? "nobody yet")"
            switch fence.reason {
            case .left: break
            case .unseen: line += " unless it joins (not a member when the cluster formed)"
            case .outside: line += " unless it joins again (its engine lost a merge while the node was alive)"
            }
            if fence.failures > 0 {
                line +=
                    ", failed \(fence.failures) time\(fence.failures == 1 ? "" : "s") (last: \(fence.lastError ?? "?"))"
            }
            let waits = fence.reason == .left ? "takeover waits" : "events wait"
            line +=
                fence.failures >= fenceAttempts
                ? "; \(waits): hamn-events fence \(fence.node.name), or fence confirm \(fence.node.name) once it is down"
                : "; \(waits)"
            lines.append(line)
        }
        if !recoveryOff.isEmpty { lines.append("recovery off: \(recoveryOff.joined(separator: " "))") }
        for run in running {
            var line =
                "running: event \(run.event.id) \(run.event.name) state \(run.event.state) node \(run.event.node.name) (\(run.displayName)), segment \(run.segment) of segments 0-\(run.segmentCount - 1)"
            if let failure = run.failure {
                line +=
                    "; FAILED on \(failure.node.name) in segment \(failure.segment): held until `hamn-events resume`"
            } else {
                line += "; waiting for \(run.waitingFor.map(\.name).joined(separator: " "))"
            }
            lines.append(line)
        }
        if running.isEmpty { lines.append("running: nothing") }
        if queue.count >= queueLimit {
            lines.append("queue FULL: \(queue.count) events wait (queue_limit \(queueLimit)): new events are refused")
        }
        lines.append(
            "queue: \(queue.isEmpty ? "empty" : queue.map { "\($0.name) state \($0.state) node \($0.node.name)" }.joined(separator: "; "))"
        )
        if !instances.isEmpty { lines.append("instances:") }
        for instance in instances {
            lines.append(
                Self.instanceLine(
                    event: instance.trigger.name, state: instance.trigger.state, instance: instance.instance,
                    armed: instance.armed, last: instance.last?.description))
        }
        for (variable, message) in monitorFailures.sorted(by: { $0.key < $1.key }) {
            lines.append("monitor failing: \(variable): \(message)")
        }
        // Names, values and messages may hold anything: each line is one line on a terminal.
        return .report(text: lines.map(TerminalText.line).joined(separator: "\n"), json: json)
    }

    /// The document of `status --format json` alone (the web view needs no text).
    var json: String { document().text }

    /// An instance as `status` shows it: `  db2_paging state 0 NodeNum=1: armed, last 40`.
    static func instanceLine(event: String, state: Int, instance: String, armed: Bool, last: String?) -> String {
        "  \(event) state \(state) \(instance): \(armed ? "armed" : "disarmed"), last \(last ?? "none")"
    }

    /// The versions an engine speaks: `2,3`.
    private static func wire(_ engine: EngineEntry) -> String {
        WireAgreement.versions(of: engine.info).map(String.init).joined(separator: ",")
    }

    private var web: StatusJSON.Web {
        switch webView {
        case .off: .init(listening: false, url: nil, reason: "off")
        case .starting: .init(listening: false, url: nil, reason: "starting")
        case .listening(let url): .init(listening: true, url: url, reason: nil)
        case .notListening(let reason): .init(listening: false, url: nil, reason: reason)
        }
    }

    /// The instances with their sparklines, as the document lists them.
    var instanceDocuments: [StatusJSON.Instance] {
        instances.map { instance in
            .init(
                event: instance.trigger.name, state: instance.trigger.state, instance: instance.instance,
                armed: instance.armed, last: instance.last?.description,
                recent: recent.recent(
                    variable: rules[instance.trigger.name, instance.trigger.state]?.definition.monitoring?.variable
                        ?? "", instance: instance.instance))
        }
    }

    /// `status --format json`'s document; without its instances when `listingInstances` is false
    /// (the web view lists them at most once a second: `ViewInstances`).
    func document(listingInstances: Bool = true) -> StatusJSON {
        StatusJSON(
            node: node.name, number: node.number, transport: transport.rawValue, synchronised: synchronised,
            members: members.map(\.name), quorate: quorate, waitingForQuorum: waitingForQuorum,
            wireVersion: wireVersion,
            engines: engines.map {
                .init(
                    node: $0.info.node.name, number: $0.info.node.number, address: $0.address.description,
                    configuration: $0.info.digest.combined, wire: WireAgreement.versions(of: $0.info))
            },
            configurationDifferences: configurationDifferences,
            recoveryOff: recoveryOff,
            running: running.map {
                .init(
                    id: $0.event.id, name: $0.event.name, state: $0.event.state, node: $0.event.node.name,
                    displayName: $0.displayName, segment: $0.segment, segments: $0.segmentCount,
                    waitingFor: $0.waitingFor.map(\.name), failedOn: $0.failure?.node.name)
            },
            queue: queue.map { .init(id: $0.id, name: $0.name, state: $0.state, node: $0.node.name) },
            instances: listingInstances ? instanceDocuments : [],
            monitorFailures: monitorFailures, fencingWarning: fencingWarning, journalProblem: journalProblem,
            queueLimit: queueLimit, rulesTrees: treeDigests, web: web,
            fencing: pendingFences.map {
                .init(
                    node: $0.node.name, reason: $0.reason.rawValue, fencer: $0.fencer?.name, failures: $0.failures,
                    lastError: $0.lastError, waitsForAdministrator: $0.failures >= fenceAttempts)
            })
    }
}

/// `status --format json`.
struct StatusJSON: Encodable {
    struct Running: Encodable {
        var id: Int
        var name: String
        var state: Int
        var node: String
        var displayName: String
        var segment: Int
        var segments: Int
        var waitingFor: [String]
        var failedOn: String?
    }

    struct Queued: Encodable {
        var id: Int
        var name: String
        var state: Int
        var node: String
    }

    struct Instance: Encodable {
        var event: String
        var state: Int
        var instance: String
        var armed: Bool
        var last: String?
        /// The last numeric samples, oldest first (the web view's sparkline); this node's only
        /// (`status --all` leaves it out for the other nodes' instances).
        var recent: [Double]? = nil
    }

    struct Engine: Encodable {
        var node: String
        var number: Int
        var address: String
        var configuration: String
        /// The wire versions it speaks.
        var wire: [Int]
    }

    var node: String
    var number: Int
    var transport: String
    var synchronised: Bool
    var members: [String]
    var quorate: Bool
    var waitingForQuorum: Int
    var wireVersion: Int
    var engines: [Engine]
    var configurationDifferences: [String]
    var recoveryOff: [String]
    var running: [Running]
    var queue: [Queued]
    var instances: [Instance]
    var monitorFailures: [String: String]
    var fencingWarning: String?
    var journalProblem: String?
    var queueLimit: Int
    /// Each node's rules tree digest as it last said (`sync`).
    var rulesTrees: [String: String]
    /// The web view: its URL when listening, else why not.
    var web: Web
    var fencing: [Fence]

    struct Web: Encodable {
        var listening: Bool
        var url: String?
        var reason: String?
    }

    struct Fence: Encodable {
        var node: String
        /// left, unseen or outside (`FenceReason`).
        var reason: String
        var fencer: String?
        var failures: Int
        var lastError: String?
        var waitsForAdministrator: Bool
    }
}

extension StatusJSON {
    /// The document as `JSONEncoder` (snake-case keys, sorted, slashes unescaped) writes it,
    /// written directly (`JSONText`): the web view renders it several times a second.
    var text: String {
        var json = JSONText(capacity: 256 + instances.count * 160)
        write(to: &json)
        return json.text
    }

    /// The document with `instances` already rendered (`Instance.rendered`) in place of its own.
    func text(instances rendered: [UInt8]) -> String {
        var json = JSONText(capacity: 4096 + rendered.count)
        write(to: &json, instances: rendered)
        return json.text
    }

    func write(to json: inout JSONText, instances rendered: [UInt8]? = nil) {
        json.object { json in
            json.key("configuration_differences")
            json.strings(configurationDifferences)
            json.key("engines")
            json.array { json in for engine in engines { engine.write(to: &json) } }
            json.key("fencing")
            json.array { json in for fence in fencing { fence.write(to: &json) } }
            if let fencingWarning {
                json.key("fencing_warning")
                json.string(fencingWarning)
            }
            json.key("instances")
            if let rendered { json.value(rendered) } else { Instance.write(instances, to: &json) }
            if let journalProblem {
                json.key("journal_problem")
                json.string(journalProblem)
            }
            json.key("members")
            json.strings(members)
            json.key("monitor_failures")
            json.dictionary(monitorFailures)
            json.key("node")
            json.string(node)
            json.key("number")
            json.int(number)
            json.key("queue")
            json.array { json in for event in queue { event.write(to: &json) } }
            json.key("queue_limit")
            json.int(queueLimit)
            json.key("quorate")
            json.bool(quorate)
            json.key("recovery_off")
            json.strings(recoveryOff)
            json.key("rules_trees")
            json.dictionary(rulesTrees)
            json.key("running")
            json.array { json in for event in running { event.write(to: &json) } }
            json.key("synchronised")
            json.bool(synchronised)
            json.key("transport")
            json.string(transport)
            json.key("waiting_for_quorum")
            json.int(waitingForQuorum)
            json.key("web")
            web.write(to: &json)
            json.key("wire_version")
            json.int(wireVersion)
        }
    }
}

extension StatusJSON.Instance {
    /// The instances; a sparkline several instances share (one variable instance watched by
    /// several events) is formatted once and its bytes copied.
    /// The instances as one JSON array.
    static func rendered(_ instances: [Self]) -> [UInt8] {
        var json = JSONText(capacity: 2 + instances.count * 160)
        write(instances, to: &json)
        return json.bytes
    }

    static func write(_ instances: [Self], to json: inout JSONText) {
        var written: [[Double]: [UInt8]] = [:]
        json.array { json in
            for instance in instances {
                json.object { json in
                    json.key("armed")
                    json.bool(instance.armed)
                    json.key("event")
                    json.string(instance.event)
                    json.key("instance")
                    json.string(instance.instance)
                    if let last = instance.last {
                        json.key("last")
                        json.string(last)
                    }
                    if let recent = instance.recent {
                        json.key("recent")
                        if let rendered = written[recent] {
                            json.value(rendered)
                        } else {
                            var sparkline = JSONText(capacity: recent.count * 8 + 2)
                            sparkline.array { json in for value in recent { json.double(value) } }
                            written[recent] = sparkline.bytes
                            json.value(sparkline.bytes)
                        }
                    }
                    json.key("state")
                    json.int(instance.state)
                }
            }
        }
    }
}

extension StatusJSON.Engine {
    func write(to json: inout JSONText) {
        json.object { json in
            json.key("address")
            json.string(address)
            json.key("configuration")
            json.string(configuration)
            json.key("node")
            json.string(node)
            json.key("number")
            json.int(number)
            json.key("wire")
            json.ints(wire)
        }
    }
}

extension StatusJSON.Fence {
    func write(to json: inout JSONText) {
        json.object { json in
            json.key("failures")
            json.int(failures)
            if let fencer {
                json.key("fencer")
                json.string(fencer)
            }
            if let lastError {
                json.key("last_error")
                json.string(lastError)
            }
            json.key("node")
            json.string(node)
            json.key("reason")
            json.string(reason)
            json.key("waits_for_administrator")
            json.bool(waitsForAdministrator)
        }
    }
}

extension StatusJSON.Queued {
    func write(to json: inout JSONText) {
        json.object { json in
            json.key("id")
            json.int(id)
            json.key("name")
            json.string(name)
            json.key("node")
            json.string(node)
            json.key("state")
            json.int(state)
        }
    }
}

extension StatusJSON.Running {
    func write(to json: inout JSONText) {
        json.object { json in
            json.key("display_name")
            json.string(displayName)
            if let failedOn {
                json.key("failed_on")
                json.string(failedOn)
            }
            json.key("id")
            json.int(id)
            json.key("name")
            json.string(name)
            json.key("node")
            json.string(node)
            json.key("segment")
            json.int(segment)
            json.key("segments")
            json.int(segments)
            json.key("state")
            json.int(state)
            json.key("waiting_for")
            json.strings(waitingFor)
        }
    }
}

extension StatusJSON.Web {
    func write(to json: inout JSONText) {
        json.object { json in
            json.key("listening")
            json.bool(listening)
            if let reason {
                json.key("reason")
                json.string(reason)
            }
            if let url {
                json.key("url")
                json.string(url)
            }
        }
    }
}
