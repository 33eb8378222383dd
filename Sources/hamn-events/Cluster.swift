import ArgumentParser
import Foundation
import HamnConfiguration

#if canImport(Glibc)
    import Glibc
#endif

extension HamnEvents {
    struct Cluster: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set up a cluster.", subcommands: [Setup.self])
    }
}

extension HamnEvents.Cluster {
    struct Setup: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the corosync.conf, authkey and hamn.yaml of a new cluster, the same for every node.",
            discussion: """
                corosync.conf: knet, crypto on (aes256/sha256 with the authkey), votequorum \
                (two_node for two nodes), the nodes numbered from 1 in the order given. hamn.yaml: \
                transport corosync; each node finds itself in corosync's nodelist. Copy \
                corosync.conf and authkey (mode 0400) to /etc/corosync/ and hamn.yaml to /etc/hamn/ \
                on every node. --print prints the two files instead (make the key with corosync-keygen).
                """)

        @Argument(help: "Every node as NODE=ADDRESS (its ring0 address).")
        var nodes: [String]

        @Option(help: "Write corosync.conf, authkey and hamn.yaml in this directory (made if missing).")
        var output: String?

        @Flag(help: "Print corosync.conf and hamn.yaml on standard output; write nothing.")
        var print = false

        @Option(help: "corosync's cluster_name.")
        var name = "hamn"

        @Option(help: "corosync's token timeout in milliseconds (failure detection; see the README).")
        var token = 3000

        @Option(help: "Where the nodes keep the authkey, when not /etc/corosync/authkey (totem.keyfile).")
        var keyfile: String?

        @Flag(help: "Replace files that exist in the output directory.")
        var force = false

        func validate() throws {
            if output == nil && !print { throw ValidationError("give --output DIR or --print") }
            if output != nil && print { throw ValidationError("--output and --print exclude each other") }
        }

        func run() throws {
            let setup: ClusterSetup
            do {
                setup = try ClusterSetup.parse(nodes, clusterName: name, token: token, keyfile: keyfile)
            } catch {
                printError("hamn-events: cluster setup: \(error)")
                throw ExitCode(2)
            }
            guard let output else {
                writeStdout("# ---- corosync.conf\n" + setup.corosyncConf + "# ---- hamn.yaml\n" + setup.hamnYAML)
                return
            }
            do {
                try write(setup, to: output)
            } catch {
                printError("hamn-events: cluster setup: \(error)")
                throw ExitCode(1)
            }
            writeStdout(
                """
                wrote \(output)/corosync.conf, \(output)/authkey (mode 0400), \(output)/hamn.yaml for \
                \(setup.nodes.map(\.name).joined(separator: ", ")). On every node:
                  install -m 0644 corosync.conf /etc/corosync/corosync.conf
                  install -m 0400 authkey \(setup.keyfile ?? "/etc/corosync/authkey")
                  install -m 0644 hamn.yaml /etc/hamn/hamn.yaml
                  systemctl restart corosync && systemctl enable --now hamn-events

                """)
        }

        private struct Failure: Error, CustomStringConvertible {
            var description: String
        }

        private func write(_ setup: ClusterSetup, to directory: String) throws {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let files = ["corosync.conf", "authkey", "hamn.yaml"].map { directory + "/" + $0 }
            if !force, let existing = files.first(where: { FileManager.default.fileExists(atPath: $0) }) {
                throw Failure(description: "\(existing) exists (--force replaces it)")
            }
            // corosync-keygen's key: 2048 bits from the system's cryptographic source
            // (SystemRandomNumberGenerator: getrandom(2) on Linux).
            var random = SystemRandomNumberGenerator()
            let key = (0..<256).map { _ in UInt8.random(in: .min ... .max, using: &random) }
            try writeFile(files[0], Array(setup.corosyncConf.utf8), mode: 0o644)
            try writeFile(files[1], key, mode: 0o400)
            try writeFile(files[2], Array(setup.hamnYAML.utf8), mode: 0o644)
        }

        /// Written to a new file of `mode` (never readable by others in between), then renamed.
        private func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t) throws {
            let temporary = path + ".tmp-\(getpid())"
            let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode)
            guard fd >= 0 else { throw Failure(description: "\(temporary): \(String(cString: strerror(errno)))") }
            let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            let synced = fsync(fd) == 0
            close(fd)
            guard written == bytes.count, synced, fchmodat(AT_FDCWD, temporary, mode, 0) == 0,
                rename(temporary, path) == 0
            else {
                let reason = String(cString: strerror(errno))
                unlink(temporary)
                throw Failure(description: "\(path): \(reason)")
            }
        }
    }
}
