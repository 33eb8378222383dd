import Foundation

/// libqb's ring buffers in /dev/shm of the corosyncs `scripts/ns-cluster` started for one
/// cluster: `qb-corosync-PID-blackbox-*` and `qb-PID-CLIENT-*` (its clients' connections, the
/// engines' and the CPG peers' among them). `ns-cluster kill`, `poweroff` and `down` remove them;
/// the harnesses' `tearDown` checks that none is left (issue 17, item 6b).
enum SharedMemoryLeft {
    /// Every pid started for a node of the cluster in `clusterDirectory` (`nodeK/corosync.pids`),
    /// read before `ns-cluster down` removes the lists.
    static func corosyncPids(_ clusterDirectory: String) -> [Int32] {
        let nodes = (try? FileManager.default.contentsOfDirectory(atPath: clusterDirectory)) ?? []
        return nodes.filter { $0.hasPrefix("node") }.flatMap { node -> [Int32] in
            let list = try? String(contentsOfFile: clusterDirectory + "/" + node + "/corosync.pids", encoding: .utf8)
            return (list ?? "").split(whereSeparator: \.isNewline).compactMap { Int32($0) }
        }
    }

    /// The entries of /dev/shm that belong to these pids (no other process's).
    static func entries(of pids: [Int32]) -> [String] {
        let shm = (try? FileManager.default.contentsOfDirectory(atPath: "/dev/shm")) ?? []
        return shm.filter { name in
            pids.contains { name.hasPrefix("qb-corosync-\($0)-") || name.hasPrefix("qb-\($0)-") }
        }.sorted()
    }
}
