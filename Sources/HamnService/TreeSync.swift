import Foundation
import HamnConfiguration
import RulesEngine

/// `hamn-events sync`'s blocking parts (README, "sync"): the sender's checks and the tree it
/// reads; on every node, the tree written as a new generation of the rules directory and
/// validated there, kept or taken back. The service runs them off its thread, holding the
/// deliveries after the sync's place in the order meanwhile (as a reload does).
enum TreeSync {
    /// The rules tree's directory: the rules file's.
    static func root(of configuration: ServiceConfiguration) -> String {
        guard let slash = configuration.rules.lastIndex(of: "/") else { return "." }
        return slash == configuration.rules.startIndex ? "/" : String(configuration.rules[..<slash])
    }

    /// On the node asked: corosync's crypto (with `transport: corosync`), the rules as they are
    /// on disk, every `.rp` file inside the tree, and the tree's own refusals. The problems are
    /// one a line, `FILE:LINE:COLUMN: ...` where there is a line.
    static func prepare(_ configuration: ServiceConfiguration, source: ConfigurationSource?) -> Result<
        ConfigurationTree, ConfigurationTreeFiles.Refusal
    > {
        if configuration.transport == .corosync {
            let conf = configuration.corosyncConf ?? "/etc/corosync/corosync.conf"
            guard let data = FileManager.default.contents(atPath: conf) else {
                return .failure(.init(["\(conf): cannot be read: sync needs corosync's crypto settings"]))
            }
            if let problem = CorosyncCrypto.problem(in: String(decoding: data, as: UTF8.self), file: conf) {
                return .failure(.init([problem]))
            }
        }
        // The configuration with the tree's cluster-wide file as it is on disk: every node
        // reads it with its own configuration, which is usually the same file as this one's.
        if let source, case .failure(let error) = source.load() {
            return .failure(.init([error.description]))
        }
        let (rules, report, _) = ServiceRunner.loadRules(configuration)
        guard let rules else {
            let errors = report.diagnostics.filter { $0.severity == .error }.map(\.formatted)
            return .failure(.init(errors + ["\(configuration.rules): \(report.summary): nothing sent"]))
        }
        let root = root(of: configuration)
        let realRoot = ConfigurationTreeFiles.realPath(root) ?? root
        var problems: [String] = []
        for rule in rules.rules.values.sorted(by: { $0.definition.line < $1.definition.line }) {
            let program = rule.definition.recoveryProgram
            let path =
                configuration.rulesRoot.map { ($0.hasSuffix("/") ? String($0.dropLast()) : $0) + program }
                ?? program
            guard let real = ConfigurationTreeFiles.realPath(path), real.hasPrefix(realRoot + "/") else {
                problems.append(
                    "\(configuration.rules):\(rule.definition.recoveryProgramLine):1: recovery program \(program) is outside the tree \(root): sync sends the files under it only"
                )
                continue
            }
        }
        var forbidden: [(path: String, what: String)] = []
        if let source { forbidden.append((source.path, "the service's configuration")) }
        if case .devices(let devices, _, _) = configuration.fencing {
            for device in devices.values.sorted(by: { $0.node < $1.node }) {
                if let file = device.passwordFile { forbidden.append((file, "\(device.node)'s fence password file")) }
            }
        }
        switch ConfigurationTreeFiles.read(root: root, forbidden: forbidden) {
        case .success(let tree):
            return problems.isEmpty ? .success(tree) : .failure(.init(problems))
        case .failure(let refusal):
            return .failure(.init(problems + refusal.problems))
        }
    }

    /// What a node did with a sync: the reload to take up, or why it kept its old tree.
    struct Applied: Sendable {
        var prepared: ServiceRunner.PreparedReload?
        var digest: String?
        var problem: String?
    }

    /// On every node, at the sync's place in the order: `tree` (nil: the previous tree, for
    /// `--rollback`) written as ROOT's next generation and validated with this node's
    /// configuration; kept when it validates, else ROOT goes back to the old generation.
    static func apply(
        _ tree: ConfigurationTree?, configuration: ServiceConfiguration, source: ConfigurationSource?
    ) -> Applied {
        let root = root(of: configuration)
        // The previous tree is the last one synced: the files on disk may have been edited
        // since they were loaded (on the node asked, they were), so they are not a way back.
        let last = ConfigurationTreeFiles.savedTree(root: root, which: .last)
        let incoming: ConfigurationTree
        if let tree {
            incoming = tree
        } else if let previous = ConfigurationTreeFiles.savedTree(root: root, which: .previous) {
            incoming = previous
        } else {
            return Applied(
                digest: last?.digest,
                problem: "\(root).previous.tree: no tree synced before the last one to go back to")
        }
        if incoming.digest == last?.digest {
            return Applied(digest: incoming.digest)
        }
        let staged: ConfigurationTreeFiles.Staged
        do {
            staged = try ConfigurationTreeFiles.stage(incoming, root: root)
        } catch {
            return Applied(problem: "cannot write the tree: \(error)")
        }
        let prepared = ServiceRunner.prepareReload(current: configuration, source: source)
        guard prepared.configurationError == nil, prepared.rules != nil else {
            try? ConfigurationTreeFiles.revert(staged)
            // A configuration refused with the tree's cluster-wide file: the rules were not read.
            let errors =
                prepared.configurationError.map { [$0, "the configuration with this tree: the old tree stays"] }
                ?? (prepared.report.diagnostics.filter { $0.severity == .error }.prefix(5).map(\.formatted)
                    + ["\(prepared.report.summary): the old rules stay"])
            return Applied(
                digest: last?.digest ?? (try? ConfigurationTreeFiles.read(root: root).get())?.digest,
                problem: errors.joined(separator: "; "))
        }
        ConfigurationTreeFiles.keep(staged, tree: incoming, replaced: last)
        return Applied(prepared: prepared, digest: incoming.digest)
    }

    /// The digest of the tree this node runs: the last one synced, else the tree on disk.
    static func digest(_ configuration: ServiceConfiguration) -> String? {
        let root = root(of: configuration)
        return
            (ConfigurationTreeFiles.savedTree(root: root, which: .last)
            ?? (try? ConfigurationTreeFiles.read(root: root).get()))?.digest
    }
}
