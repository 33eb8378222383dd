import Foundation
import HamnConfiguration
import RulesEngine
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `hamn-events sync`'s tree on disk: what is read, what is refused and why, how a new
/// generation replaces the old one, and corosync's crypto.
@Suite("sync: the rules tree")
struct ConfigurationTreeTests {
    /// A directory holding `rules/` with a rules file, a `.rp` file and an event script.
    final class Tree {
        let base = NSTemporaryDirectory() + "hamn-tree-" + UUID().uuidString
        var root: String { base + "/rules" }

        init() throws {
            try FileManager.default.createDirectory(atPath: root + "/events", withIntermediateDirectories: true)
            chmod(base, 0o755)
            try write("rules.hacmprd", "# rules\n")
            try write("a.rp", "echo one\n")
            try write("events/notify", "#!/bin/sh\n", mode: 0o755)
        }

        func write(_ path: String, _ text: String, mode: mode_t = 0o644) throws {
            try text.write(toFile: root + "/" + path, atomically: false, encoding: .utf8)
            chmod(root + "/" + path, mode)
        }

        func text(_ path: String) -> String? {
            FileManager.default.contents(atPath: root + "/" + path).map { String(decoding: $0, as: UTF8.self) }
        }

        deinit { try? FileManager.default.removeItem(atPath: base) }
    }

    @Test("every regular file, by relative path with its mode; the digest follows the contents")
    func reads() throws {
        let tree = try Tree()
        let read = try ConfigurationTreeFiles.read(root: tree.root).get()
        #expect(read.files.map(\.path) == ["a.rp", "events/notify", "rules.hacmprd"])
        #expect(read.files.map(\.mode) == [0o644, 0o755, 0o644])
        #expect(String(decoding: read.files[0].contents, as: UTF8.self) == "echo one\n")
        #expect(read.size == 27)
        try tree.write("a.rp", "echo two\n")
        let changed = try ConfigurationTreeFiles.read(root: tree.root).get()
        #expect(changed.digest != read.digest)
        #expect(changed.digest == ConfigurationTree(files: changed.files.reversed()).digest)
    }

    @Test("refused, each with its path and why")
    func refusals() throws {
        let tree = try Tree()
        try tree.write("group.rp", "x\n", mode: 0o664)
        try tree.write("setuid", "x\n", mode: 0o4755)
        try tree.write("other.rp", "x\n")
        chown(tree.root + "/other.rp", 1, 0)
        symlink("/etc/passwd", tree.root + "/link")
        mkfifo(tree.root + "/fifo", 0o600)
        try tree.write("hamn.yaml", "transport: local\n")
        let refusal = ConfigurationTreeFiles.read(
            root: tree.root, forbidden: [(tree.root + "/hamn.yaml", "the service's configuration")])
        let root = tree.root
        #expect(
            refusal.failureProblems == [
                "\(root)/hamn.yaml: the service's configuration is inside the rules tree \(root): each node keeps its own",
                "\(root)/fifo: not a regular file or directory: sync takes regular files only",
                "\(root)/group.rp: writable by group or others (mode 0664)",
                "\(root)/link: a symbolic link: sync takes regular files only",
                "\(root)/other.rp: owned by uid 1, not 0",
                "\(root)/setuid: setuid or setgid (mode 4755): refused",
            ])
    }

    @Test("a tree over 512 KiB is refused: it goes in one corosync message")
    func tooLarge() throws {
        let tree = try Tree()
        try tree.write("big", String(repeating: "x", count: ConfigurationTree.sizeLimit))
        #expect(
            ConfigurationTreeFiles.read(root: tree.root).failureProblems == [
                "\(tree.root): the tree's files are 524315 bytes, more than sync's limit of 524288 (it goes in one corosync message)"
            ])
    }

    @Test("a write: generation 0 kept, ROOT a link to the new one; revert goes back; keep records both trees")
    func writes() throws {
        let tree = try Tree()
        let old = try ConfigurationTreeFiles.read(root: tree.root).get()
        var files = old.files
        files[0].contents = Data("echo two\n".utf8)
        files.append(.init(path: "sub/dir/b.rp", mode: 0o600, contents: Data("b\n".utf8)))
        let new = ConfigurationTree(files: files)

        let staged = try ConfigurationTreeFiles.stage(new, root: tree.root)
        #expect(staged.previousTarget == "rules.gen-0" && staged.target == "rules.gen-1")
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree.root) == "rules.gen-1")
        #expect(tree.text("a.rp") == "echo two\n" && tree.text("sub/dir/b.rp") == "b\n")
        #expect(FileManager.default.fileExists(atPath: tree.base + "/rules.gen-0/a.rp"))
        #expect(try ConfigurationTreeFiles.read(root: tree.root).get() == new)

        try ConfigurationTreeFiles.revert(staged)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: tree.root) == "rules.gen-0")
        #expect(tree.text("a.rp") == "echo one\n")
        #expect(!FileManager.default.fileExists(atPath: tree.base + "/rules.gen-1"))

        let again = try ConfigurationTreeFiles.stage(new, root: tree.root)
        ConfigurationTreeFiles.keep(again, tree: new, replaced: old)
        #expect(ConfigurationTreeFiles.savedTree(root: tree.root, which: .last) == new)
        #expect(ConfigurationTreeFiles.savedTree(root: tree.root, which: .previous) == old)
        var status = stat()
        lstat(tree.root + ".last.tree", &status)
        #expect(status.st_mode & 0o777 == 0o600)

        // Rollback: the previous tree written as the next generation.
        let back = try ConfigurationTreeFiles.stage(old, root: tree.root)
        ConfigurationTreeFiles.keep(back, tree: old, replaced: new)
        #expect(back.target == "rules.gen-2" && tree.text("a.rp") == "echo one\n")
        #expect(!FileManager.default.fileExists(atPath: tree.root + "/sub"))
        #expect(ConfigurationTreeFiles.savedTree(root: tree.root, which: .previous) == new)
    }

    @Test("corosync's crypto: on as cluster setup writes it; off or missing named at its line and column")
    func crypto() throws {
        let setup = try ClusterSetup.parse(["a=10.0.0.1", "b=10.0.0.2"])
        #expect(CorosyncCrypto.problem(in: setup.corosyncConf, file: "c.conf") == nil)
        let why = "sync sends commands that run as root on every node, so corosync must authenticate its traffic"
        let off = setup.corosyncConf.replacingOccurrences(of: "crypto_cipher: aes256", with: "crypto_cipher: none")
        let line = off.split(separator: "\n", omittingEmptySubsequences: false).firstIndex {
            $0.contains("crypto_cipher")
        }!
        #expect(CorosyncCrypto.problem(in: off, file: "c.conf") == "c.conf:\(line + 1):20: crypto_cipher: none: \(why)")
        #expect(
            CorosyncCrypto.problem(in: "# c\ntotem {\n  version: 2\n  crypto_cipher: aes256\n}\n", file: "c.conf")
                == "c.conf:2:1: totem sets no crypto_hash (corosync's default is none): \(why)")
        #expect(
            CorosyncCrypto.problem(in: "nodelist {\n}\n", file: "c.conf")
                == "c.conf:1:1: no totem { } block, so crypto_cipher and crypto_hash are none: \(why)")
    }
}

extension Result where Failure == ConfigurationTreeFiles.Refusal {
    fileprivate var failureProblems: [String] {
        if case .failure(let refusal) = self { refusal.problems } else { [] }
    }
}
