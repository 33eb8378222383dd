import Foundation
import TestSupport
import Testing

// Issue 11: partitions that heal, and SIGTERM, on a three-node cluster of network namespaces,
// checked through what a resource model in the event scripts did.
//
// The model: node nK owns resource RK. A node's held resources are the files in
// out/held/NODE; every action of the scripts is a file of its own in out/actions (the
// namespaces share the file system), so that who owned what, when, can be replayed.
//
// - TE_JOIN_NODE 0: the node holding R<event node> as a takeover releases it (other line);
//   barrier; the event node acquires it (event line).
// - TE_FAIL_NODE 0 (crash takeover, other line): the lowest-numbered member other than the
//   event node acquires R<event node>; the others do nothing.
// - TE_FAIL_NODE 1 (graceful stop): the stopping node releases everything it holds (event
//   line); barrier; the others acknowledge (other line, no action).
// - TE_FAIL_NODE 2 (stop with takeover): the stopping node releases everything; barrier; one
//   survivor (as for state 0) acquires R<event node>.
// - ping 0: every node records that it ran (all line).

private let allNodes = ["n1", "n2", "n3"]

/// One action of the resource script: `acquire`, `release`, `none` (the command did nothing)
/// or `ping`.
private struct ResourceAction: CustomStringConvertible {
    var node: String
    var command: String
    var action: String
    var resource: String
    var event: String
    var state: Int
    var eventNode: String
    var eventID: Int
    /// The command's start and the action's time, wall clock, ns.
    var start: Int64
    var at: Int64

    /// What the tests compare: `TE_JOIN_NODE 0 n3 join-release: release R3`.
    var description: String {
        "\(event) \(state) \(eventNode) \(command): \(action)\(resource == "-" ? "" : " " + resource)"
    }
}

private func nowNS() -> Int64 { Int64(Date().timeIntervalSince1970 * 1e9) }

private func seconds(_ from: Int64, _ to: Int64) -> String { String(format: "%.2f s", Double(to - from) / 1e9) }

private final class ResourceModel: @unchecked Sendable {
    let cluster: EngineCluster
    let rules: String
    var actionsDirectory: String { cluster.outputDirectory + "/actions" }
    var heldDirectory: String { cluster.outputDirectory + "/held" }

    init(_ cluster: EngineCluster) throws {
        self.cluster = cluster
        for directory in [cluster.outputDirectory + "/actions", cluster.outputDirectory + "/held"] {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            chmod(directory, 0o777)
        }
        let out = cluster.outputDirectory
        let script = cluster.binDirectory + "/res"
        try cluster.write(
            script,
            """
            #!/bin/sh
            # res COMMAND: the resource model of HealTests.swift. One file per action in
            # \(out)/actions: node command action resource event state event-node event-id start-ns at-ns
            set -e
            start=$(date +%s%N)
            held=\(out)/held/$HAMN_LOCAL_NODE
            mkdir -p "$held"
            resource=R$HAMN_EVENT_NODE_NUMBER
            record() {
                at=$(date +%s%N)
                file=\(out)/actions/$at.$HAMN_LOCAL_NODE.$$.$2
                echo "$HAMN_LOCAL_NODE $1 $2 $3 $HAMN_EVENT $HAMN_EVENT_STATE $HAMN_EVENT_NODE $HAMN_EVENT_ID $start $at" > "$file.tmp"
                mv "$file.tmp" "$file"
            }
            case "$1" in
            acquire)
                touch "$held/$resource"
                record "$1" acquire "$resource" ;;
            join-release)
                if [ -e "$held/$resource" ]; then rm "$held/$resource"; record "$1" release "$resource"
                else record "$1" none -; fi ;;
            takeover)
                chosen=$(for m in $HAMN_MEMBERS; do [ "$m" = "$HAMN_EVENT_NODE" ] || echo "$m"; done | sort -V | head -n 1)
                if [ "$chosen" = "$HAMN_LOCAL_NODE" ]; then touch "$held/$resource"; record "$1" acquire "$resource"
                else record "$1" none -; fi ;;
            release-all)
                released=no
                for file in "$held"/*; do
                    [ -e "$file" ] || continue
                    rm "$file"
                    record "$1" release "${file##*/}"
                    released=yes
                done
                [ $released = yes ] || record "$1" none - ;;
            ack) record "$1" none - ;;
            ping) record "$1" ping - ;;
            *) echo "res: unknown command $1" >&2; exit 2 ;;
            esac
            """, mode: 0o755)
        rules = try cluster.writeRules([
            (
                "TE_JOIN_NODE", 0,
                """
                other "\(script) join-release" 0 NULL
                barrier
                event "\(script) acquire" 0 NULL
                """
            ),
            ("TE_FAIL_NODE", 0, "other \"\(script) takeover\" 0 NULL\n"),
            (
                "TE_FAIL_NODE", 1,
                """
                event "\(script) release-all" 0 NULL
                barrier
                other "\(script) ack" 0 NULL
                """
            ),
            (
                "TE_FAIL_NODE", 2,
                """
                event "\(script) release-all" 0 NULL
                barrier
                other "\(script) takeover" 0 NULL
                """
            ),
            ("ping", 0, "all \"\(script) ping\" 0 NULL\n"),
        ])
    }

    /// Every action recorded, in time order.
    func actions() -> [ResourceAction] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: actionsDirectory)) ?? []
        return names.filter { !$0.hasSuffix(".tmp") }.compactMap { name -> ResourceAction? in
            guard let data = FileManager.default.contents(atPath: actionsDirectory + "/" + name) else { return nil }
            let fields = String(decoding: data, as: UTF8.self).split(whereSeparator: \.isWhitespace).map(String.init)
            guard fields.count == 10, let state = Int(fields[5]), let id = Int(fields[7]), let start = Int64(fields[8]),
                let at = Int64(fields[9])
            else { return nil }
            return ResourceAction(
                node: fields[0], command: fields[1], action: fields[2], resource: fields[3], event: fields[4],
                state: state,
                eventNode: fields[6], eventID: id, start: start, at: at)
        }.sorted { $0.at < $1.at }
    }

    func actions(since: Int64) -> [ResourceAction] { actions().filter { $0.at >= since } }

    /// What each node did since `since`, in its order.
    func commands(since: Int64) -> [String: [String]] {
        var result = Dictionary(uniqueKeysWithValues: allNodes.map { ($0, [String]()) })
        for action in actions(since: since) { result[action.node, default: []].append(action.description) }
        return result
    }

    /// The owners of each resource after replaying every acquire and release up to `until`.
    func owners(until: Int64 = .max) -> [String: Set<String>] {
        var owners = Dictionary(uniqueKeysWithValues: allNodes.indices.map { ("R\($0 + 1)", Set<String>()) })
        for action in actions() where action.at <= until {
            if action.action == "acquire" { owners[action.resource, default: []].insert(action.node) }
            if action.action == "release" { owners[action.resource, default: []].remove(action.node) }
        }
        return owners
    }

    /// What the held directories say now (they must agree with the replay).
    func heldNow() -> [String: Set<String>] {
        var owners = Dictionary(uniqueKeysWithValues: allNodes.indices.map { ("R\($0 + 1)", Set<String>()) })
        for node in allNodes {
            for resource in (try? FileManager.default.contentsOfDirectory(atPath: heldDirectory + "/" + node)) ?? [] {
                owners[resource, default: []].insert(node)
            }
        }
        return owners
    }

    /// The stretches of time during which a resource had two owners or more: (resource, from,
    /// to (nil: still), owners).
    func multipleOwnership() -> [(resource: String, from: Int64, to: Int64?, owners: Set<String>)] {
        var owners: [String: Set<String>] = [:]
        var open: [String: (Int64, Set<String>)] = [:]
        var result: [(resource: String, from: Int64, to: Int64?, owners: Set<String>)] = []
        for action in actions() where action.action == "acquire" || action.action == "release" {
            if action.action == "acquire" { owners[action.resource, default: []].insert(action.node) }
            if action.action == "release" { owners[action.resource, default: []].remove(action.node) }
            let now = owners[action.resource] ?? []
            if now.count > 1 {
                if let (from, seen) = open[action.resource] {
                    open[action.resource] = (from, seen.union(now))
                } else {
                    open[action.resource] = (action.at, now)
                }
            } else if let (from, seen) = open.removeValue(forKey: action.resource) {
                result.append((action.resource, from, action.at, seen))
            }
        }
        for (resource, (from, seen)) in open { result.append((resource, from, nil, seen)) }
        return result
    }

    /// Each resource owned by its own node only.
    static var home: [String: Set<String>] {
        Dictionary(uniqueKeysWithValues: allNodes.enumerated().map { ("R\($0.offset + 1)", [$0.element]) })
    }
}

/// Members `nodes` on each of them, synchronised, nothing running, nothing queued.
private func settled(_ cluster: EngineCluster, _ nodes: [String]) -> Bool {
    nodes.allSatisfy { node in
        guard let status = cluster.status(node) else { return false }
        return status["members"] as? [String] == nodes && status["synchronised"] as? Bool == true
            && (status["running"] as? [Any])?.isEmpty == true && (status["queue"] as? [Any])?.isEmpty == true
    }
}

private func describe(_ commands: [String: [String]]) -> String {
    allNodes.map { "\($0): \(commands[$0] ?? [])" }.joined(separator: "\n")
}

/// Waits until `name` (node `number`) has acquired its resource in its TE_JOIN_NODE since
/// `mark`, and `members` are settled.
private func waitForJoin(_ model: ResourceModel, _ name: String, number: Int, members: [String], since mark: Int64)
    throws
{
    try #require(
        model.cluster.eventually(60) {
            model.actions(since: mark).contains {
                $0.description == "TE_JOIN_NODE 0 \(name) acquire: acquire R\(number)"
            }
                && settled(model.cluster, members)
        }, "\(name) did not join \(members.filter { $0 != name }):\n\(describe(model.commands(since: mark)))")
}

/// Starts (or, with `restart`, starts again after they ended) n1, n2, n3 one after the other,
/// each once the cluster before it has settled, and checks what each join did.
private func startInOrder(_ model: ResourceModel, restart: Bool = false, extra: String = "") throws {
    let cluster = model.cluster
    let mark = nowNS()
    for (index, name) in allNodes.enumerated() {
        if restart {
            try cluster.restartEngine(name)
        } else {
            try cluster.startEngine(name, corosyncNode: index + 1, rules: model.rules, extra: extra)
        }
        try waitForJoin(model, name, number: index + 1, members: Array(allNodes.prefix(index + 1)), since: mark)
    }
    let commands = model.commands(since: mark)
    #expect(
        commands["n1"] == [
            "TE_JOIN_NODE 0 n1 acquire: acquire R1", "TE_JOIN_NODE 0 n2 join-release: none",
            "TE_JOIN_NODE 0 n3 join-release: none",
        ], "\(describe(commands))")
    #expect(
        commands["n2"] == ["TE_JOIN_NODE 0 n2 acquire: acquire R2", "TE_JOIN_NODE 0 n3 join-release: none"],
        "\(describe(commands))")
    #expect(commands["n3"] == ["TE_JOIN_NODE 0 n3 acquire: acquire R3"], "\(describe(commands))")
    #expect(model.owners() == ResourceModel.home)
}

/// A ping triggered on `from` runs on the three nodes, once each; returns when it has.
private func pingAll(_ model: ResourceModel, from: String, eventNode: String) throws {
    let cluster = model.cluster
    let mark = nowNS()
    let trigger = try cluster.cli(from, ["trigger", "ping", "--node", eventNode])
    try #require(trigger.status == 0, "trigger ping on \(from): \(trigger.err)")
    try #require(
        cluster.eventually(30) {
            model.actions(since: mark).filter { $0.event == "ping" }.count == 3 && settled(cluster, allNodes)
        }, "ping did not run on every node:\n\(describe(model.commands(since: mark)))")
    let pings = model.actions(since: mark).filter { $0.event == "ping" }
    #expect(pings.map(\.node).sorted() == allNodes)
}

private struct CycleTiming: CustomStringConvertible {
    var cycle: Int
    /// Link down → the survivor's takeover acquire; link up → the isolated engine's exit;
    /// restart → the join settled; the whole cycle.
    var split, heal, rejoin, total: String
    var description: String {
        "cycle \(cycle): takeover \(split) after the cut, exit \(heal) after the heal, rejoined \(rejoin) after the restart, cycle \(total)"
    }
}

/// One partition of `isolated` (1-based) from the two others, its heal, the isolated engine's
/// exit and restart, and a ping; checks every node's commands in the cycle.
private func partitionCycle(_ model: ResourceModel, isolated number: Int, cycle: Int) throws -> (
    CycleTiming, window: ClosedRange<Int64>
) {
    let cluster = model.cluster
    let isolated = "n\(number)"
    let resource = "R\(number)"
    let majority = allNodes.filter { $0 != isolated }
    let survivor = majority[0]  // the lowest-numbered: the takeover script's choice
    let bystander = majority[1]
    try #require(settled(cluster, allNodes))
    let mark = nowNS()

    // The split: the majority takes the isolated node's resource over (no fencing yet); the
    // isolated node has no quorum and runs nothing.
    try cluster.link(number, up: false)
    try #require(
        cluster.eventually(30) {
            model.actions(since: mark).filter { $0.event == "TE_FAIL_NODE" && majority.contains($0.node) }.count == 2
                && settled(cluster, majority)
        }, "the majority did not take \(isolated) over:\n\(describe(model.commands(since: mark)))")
    let takeover = model.actions(since: mark).first { $0.action == "acquire" }?.at ?? mark
    try #require(
        cluster.eventually(30) { cluster.status(isolated)?["quorate"] as? Bool == false },
        "\(isolated) still says it has quorum: \((try? cluster.cli(isolated, ["status"]))?.out ?? "")")
    // Time for the isolated node to run something if it were going to.
    Thread.sleep(forTimeInterval: 1)
    #expect(
        model.actions(since: mark).filter { $0.node == isolated }.isEmpty,
        "\(isolated) ran commands while split:\n\(describe(model.commands(since: mark)))")

    // The heal: the smaller side stops (exit 1) and runs nothing more.
    try cluster.link(number, up: true)
    let healed = nowNS()
    let exited = cluster.eventually(20) { cluster.engineExitStatus(isolated) != nil }
    let ended = nowNS()
    #expect(
        model.actions(since: mark).filter { $0.node == isolated }.isEmpty,
        "\(isolated) ran commands at the heal:\n\(describe(model.commands(since: mark)))")
    try #require(
        exited,
        "\(isolated)'s engine still runs 20 s after the heal:\n\((try? cluster.cli(isolated, ["status"]))?.out ?? "")\ncommands this cycle:\n\(describe(model.commands(since: mark)))"
    )
    #expect(cluster.engineExitStatus(isolated) == 1)
    #expect(
        cluster.engineLog(isolated).components(separatedBy: "merged with a larger one").count - 1 >= cycle,
        "\(cluster.engineLog(isolated).suffix(3000))")
    #expect(cluster.journal(isolated, containing: "merged with a larger one").count == cycle)
    // The larger side goes on, as it was.
    #expect(settled(cluster, majority), "\(majority.map { cluster.status($0) ?? [:] })")
    #expect(majority.allSatisfy { cluster.status($0)?["quorate"] as? Bool == true })

    // The restart (systemd): it rejoins, the takeover is given back.
    let restarted = nowNS()
    try cluster.restartEngine(isolated)
    try #require(
        cluster.eventually(60) {
            model.actions(since: mark).contains { $0.node == isolated && $0.event == "TE_JOIN_NODE" }
                && settled(cluster, allNodes)
        }, "\(isolated) did not rejoin:\n\(describe(model.commands(since: mark)))")
    let rejoined = nowNS()
    #expect(model.owners() == ResourceModel.home, "\(model.owners())")
    #expect(model.heldNow() == ResourceModel.home, "\(model.heldNow())")
    try pingAll(model, from: isolated, eventNode: isolated)

    let commands = model.commands(since: mark)
    #expect(
        commands[survivor] == [
            "TE_FAIL_NODE 0 \(isolated) takeover: acquire \(resource)",
            "TE_JOIN_NODE 0 \(isolated) join-release: release \(resource)",
            "ping 0 \(isolated) ping: ping",
        ], "cycle \(cycle):\n\(describe(commands))")
    #expect(
        commands[bystander] == [
            "TE_FAIL_NODE 0 \(isolated) takeover: none", "TE_JOIN_NODE 0 \(isolated) join-release: none",
            "ping 0 \(isolated) ping: ping",
        ], "cycle \(cycle):\n\(describe(commands))")
    #expect(
        commands[isolated] == [
            "TE_JOIN_NODE 0 \(isolated) acquire: acquire \(resource)", "ping 0 \(isolated) ping: ping",
        ],
        "cycle \(cycle):\n\(describe(commands))")
    // The barrier of TE_JOIN_NODE: the release before the acquire.
    let join = model.actions(since: mark).filter { $0.event == "TE_JOIN_NODE" }
    if let release = join.first(where: { $0.action == "release" }),
        let acquire = join.first(where: { $0.action == "acquire" })
    {
        #expect(release.at < acquire.start)
    }
    let done = nowNS()
    return (
        CycleTiming(
            cycle: cycle, split: seconds(mark, takeover), heal: seconds(healed, ended),
            rejoin: seconds(restarted, rejoined),
            total: seconds(mark, done)),
        mark...rejoined
    )
}

/// Checks over a whole run of cycles: the isolated node never ran a takeover, and two owners
/// of a resource only ever while a cycle's split lasted (until the rejoin settled).
private func checkRun(_ model: ResourceModel, isolated: String, windows: [ClosedRange<Int64>]) {
    let takeovers = model.actions().filter { $0.node == isolated && $0.event == "TE_FAIL_NODE" }
    #expect(takeovers.isEmpty, "\(isolated) ran TE_FAIL_NODE: \(takeovers)")
    for stretch in model.multipleOwnership() {
        let inside = windows.contains { window in
            guard let to = stretch.to else { return false }
            return window.contains(stretch.from) && window.contains(to)
        }
        #expect(
            inside,
            "\(stretch.resource) owned by \(stretch.owners.sorted()) outside a split (from \(stretch.from) to \(stretch.to.map(String.init) ?? "now"))"
        )
    }
}

@Suite(
    "Partitions that heal, and SIGTERM (issue 11)", .serialized,
    .enabled(if: namespaceClustersAvailable, "needs root, corosync and scripts/ns-cluster"))
struct HealTests {
    static let cycles = 5

    @Test(
        "heal of a 2|1 partition, the late joiner isolated: it takes nothing over, exits 1 at the heal, rejoins on restart"
    )
    func healLateJoinerIsolated() throws {
        try healCycles(isolated: 3, label: "late joiner (n3)", restartAllBetweenCycles: false)
    }

    @Test(
        "heal of a 2|1 partition, the founder isolated: it takes nothing over, exits 1 at the heal, rejoins on restart")
    func healFounderIsolated() throws {
        // n1 the founder again each cycle: the engines end at once and start one after the other.
        try healCycles(isolated: 1, label: "founder (n1)", restartAllBetweenCycles: true)
    }

    /// `cycles` partitions of node `isolated` from the two others, each healed, on one cluster
    /// started in order n1, n2, n3; then the checks over the whole run.
    private func healCycles(isolated: Int, label: String, restartAllBetweenCycles: Bool) throws {
        try withCluster(corosyncNodes: 3, nodes: allNodes) { cluster in
            let model = try ResourceModel(cluster)
            try startInOrder(model)
            var windows: [ClosedRange<Int64>] = []
            var totals: [String] = []
            for cycle in 1...Self.cycles {
                if cycle > 1, restartAllBetweenCycles {
                    try cluster.killEnginesTogether(allNodes)
                    try startInOrder(model, restart: true)
                }
                let (timing, window) = try partitionCycle(model, isolated: isolated, cycle: cycle)
                windows.append(window)
                print("heal, \(label) isolated, \(timing)")
                totals.append(timing.total)
            }
            print(
                "heal, \(label) isolated: \(Self.cycles) cycles of partition, heal, restart: \(totals.joined(separator: ", "))"
            )
            checkRun(model, isolated: "n\(isolated)", windows: windows)
        }
    }

    private func sigterm(state: Int, extra: String) throws {
        try withCluster(corosyncNodes: 3, nodes: allNodes) { cluster in
            let model = try ResourceModel(cluster)
            try startInOrder(model, extra: extra)
            let mark = nowNS()
            try #require(cluster.signalEngine("n2", SIGTERM))
            let exited = cluster.eventually(30) { cluster.engineExitStatus("n2") != nil }
            let ended = nowNS()
            let left = cluster.eventually(30) {
                model.actions(since: mark).filter { $0.node != "n2" }.count == 2 && settled(cluster, ["n1", "n3"])
            }
            let commands = model.commands(since: mark)
            #expect(exited, "n2's engine still runs 30 s after SIGTERM:\n\(cluster.engineLog("n2").suffix(3000))")
            #expect(cluster.engineExitStatus("n2") == 0)
            #expect(left, "n1 and n3 did not settle without n2:\n\(describe(commands))")
            #expect(cluster.members("n1") == ["n1", "n3"])
            #expect(cluster.members("n3") == ["n1", "n3"])
            #expect(commands["n2"] == ["TE_FAIL_NODE \(state) n2 release-all: release R2"], "\(describe(commands))")
            let others = state == 1 ? ("ack: none", "ack: none") : ("takeover: acquire R2", "takeover: none")
            #expect(commands["n1"] == ["TE_FAIL_NODE \(state) n2 \(others.0)"], "\(describe(commands))")
            #expect(commands["n3"] == ["TE_FAIL_NODE \(state) n2 \(others.1)"], "\(describe(commands))")
            #expect(model.actions().filter { $0.event == "TE_FAIL_NODE" && $0.state == 0 }.isEmpty)
            // n2 released before anyone ran what follows the barrier.
            let actions = model.actions(since: mark)
            if let release = actions.first(where: { $0.node == "n2" }) {
                let after = actions.filter { $0.node != "n2" }.map(\.start)
                #expect(
                    after.allSatisfy { release.at < $0 }, "n2 released at \(release.at); the others started at \(after)"
                )
            }
            var expected = ResourceModel.home
            expected["R2"] = state == 1 ? [] : ["n1"]
            #expect(model.owners() == expected, "\(model.owners())")
            print("SIGTERM (state \(state)): n2 exited \(seconds(mark, ended)) after the signal")

            // The stopped engine started again: it takes its resource back.
            let restarted = nowNS()
            if !exited { cluster.killEngine("n2") }
            try #require(cluster.eventually(10) { cluster.engineExitStatus("n2") != nil })
            try cluster.restartEngine("n2")
            try waitForJoin(model, "n2", number: 2, members: allNodes, since: restarted)
            let rejoin = model.commands(since: restarted)
            #expect(
                rejoin["n1"] == ["TE_JOIN_NODE 0 n2 join-release: \(state == 1 ? "none" : "release R2")"],
                "\(describe(rejoin))")
            #expect(rejoin["n3"] == ["TE_JOIN_NODE 0 n2 join-release: none"], "\(describe(rejoin))")
            #expect(rejoin["n2"] == ["TE_JOIN_NODE 0 n2 acquire: acquire R2"], "\(describe(rejoin))")
            #expect(model.owners() == ResourceModel.home, "\(model.owners())")
            #expect(model.heldNow() == ResourceModel.home, "\(model.heldNow())")
            #expect(model.multipleOwnership().isEmpty, "\(model.multipleOwnership())")
        }
    }

    @Test(
        "SIGTERM of one engine (default stop mode, graceful): the peers run TE_FAIL_NODE state 1, the stopping node releases first, exit 0"
    )
    func sigtermGraceful() throws {
        try sigterm(state: 1, extra: "")
    }

    @Test("SIGTERM of one engine with stop mode takeover: TE_FAIL_NODE state 2, one survivor takes the resource")
    func sigtermTakeover() throws {
        try sigterm(state: 2, extra: "stop: {mode: takeover}")
    }
}
