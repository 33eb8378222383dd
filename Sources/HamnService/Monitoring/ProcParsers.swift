/// Pure parsers of the Linux files the built-in samplers read (`/proc/meminfo`, `/proc/stat`,
/// `/proc/self/mounts`, `/proc/<pid>/stat`, `/proc/<pid>/status`, `/proc/<pid>/cmdline`) and the
/// arithmetic on what they give. No I/O here: the samplers read, these compute.
public enum ProcParsers {
    // MARK: - /proc/meminfo

    /// `/proc/meminfo` as `name → kB` (`MemTotal:  16318480 kB` → `MemTotal: 16318480`).
    /// Lines that do not parse are skipped.
    public static func memInfo(_ text: String) -> [String: UInt64] {
        var values: [String: UInt64] = [:]
        for line in text.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let name = line[..<colon].monitorTrimmed
            let words = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard !name.isEmpty, let first = words.first, let value = UInt64(first) else { continue }
            values[String(name)] = value
        }
        return values
    }

    /// Swap used and free, percent of `SwapTotal`. A node without swap (`SwapTotal` 0) is
    /// 0 % used and 100 % free: nothing to page out to is not a full paging space.
    public static func swapPercent(memInfo: [String: UInt64]) -> (used: Double, free: Double)? {
        guard let total = memInfo["SwapTotal"], let free = memInfo["SwapFree"] else { return nil }
        guard total > 0 else { return (0, 100) }
        let freePercent = min(100, Double(free) / Double(total) * 100)
        return (roundedPercent(100 - freePercent), roundedPercent(freePercent))
    }

    /// Available real memory, percent of `MemTotal`: `MemAvailable` (the kernel's estimate of
    /// what can be allocated without swapping); before Linux 3.14, which lacks it,
    /// `MemFree + Buffers + Cached`.
    public static func memoryFreePercent(memInfo: [String: UInt64]) -> Double? {
        guard let total = memInfo["MemTotal"], total > 0 else { return nil }
        let available: UInt64
        if let value = memInfo["MemAvailable"] {
            available = value
        } else if let free = memInfo["MemFree"] {
            available = free + (memInfo["Buffers"] ?? 0) + (memInfo["Cached"] ?? 0)
        } else {
            return nil
        }
        return roundedPercent(min(100, Double(available) / Double(total) * 100))
    }

    // MARK: - /proc/stat

    /// The aggregate `cpu` line of `/proc/stat`, in clock ticks.
    public struct CPUTimes: Sendable, Hashable {
        /// user + nice + system + idle + iowait + irq + softirq + steal (guest and guest_nice
        /// are already counted in user and nice).
        public var total: UInt64
        /// idle + iowait.
        public var idle: UInt64

        public init(total: UInt64, idle: UInt64) {
            self.total = total
            self.idle = idle
        }
    }

    public static func cpuTimes(_ procStat: String) -> CPUTimes? {
        for line in procStat.split(whereSeparator: \.isNewline) {
            let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            guard words.first == "cpu" else { continue }
            let numbers = words.dropFirst().prefix(8).compactMap { UInt64($0) }
            guard numbers.count >= 4 else { return nil }
            let idle = numbers[3] + (numbers.count > 4 ? numbers[4] : 0)
            return CPUTimes(total: numbers.reduce(0, +), idle: idle)
        }
        return nil
    }

    /// CPU idle percent between two readings; nil when no tick elapsed between them. A counter
    /// that went backwards (iowait can) counts as no change.
    public static func idlePercent(from old: CPUTimes, to new: CPUTimes) -> Double? {
        let total = new.total &- old.total
        guard new.total > old.total, total > 0 else { return nil }
        let idle = new.idle > old.idle ? new.idle - old.idle : 0
        return roundedPercent(min(100, Double(idle) / Double(total) * 100))
    }

    // MARK: - /proc/self/mounts

    public struct Mount: Sendable, Hashable {
        public var device: String
        public var mountPoint: String
        public var type: String

        public init(device: String, mountPoint: String, type: String) {
            self.device = device
            self.mountPoint = mountPoint
            self.type = type
        }
    }

    /// The entries of `/proc/self/mounts` (`device mountpoint type options 0 0`), with the
    /// kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`) decoded.
    public static func mounts(_ text: String) -> [Mount] {
        text.split(whereSeparator: \.isNewline).compactMap { line in
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard words.count >= 3 else { return nil }
            return Mount(
                device: unescapeMountField(words[0]), mountPoint: unescapeMountField(words[1]),
                type: unescapeMountField(words[2]))
        }
    }

    static func unescapeMountField(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var bytes: [UInt8] = []
        let source = Array(field.utf8)
        var index = 0
        while index < source.count {
            if source[index] == 0x5C, index + 3 < source.count,
                source[(index + 1)...(index + 3)].allSatisfy({ $0 >= 0x30 && $0 <= 0x37 })
            {
                let digits = source[(index + 1)...(index + 3)].map { Int($0 - 0x30) }
                let value = digits[0] * 64 + digits[1] * 8 + digits[2]
                if value < 256 {
                    bytes.append(UInt8(value))
                    index += 4
                    continue
                }
            }
            bytes.append(source[index])
            index += 1
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// File system types that `IBM.PSSP.aixos.FS.%totused` skips when the rules ask for every
    /// file system (`Name=*`): kernel pseudo file systems, memory-backed ones (`tmpfs`,
    /// `devtmpfs`, `ramfs`: name their mount point to watch one) and read-only images that are
    /// always 100 % full (`squashfs`, `iso9660`).
    public static let pseudoFileSystemTypes: Set<String> = [
        "proc", "sysfs", "cgroup", "cgroup2", "devpts", "devtmpfs", "tmpfs", "ramfs", "mqueue",
        "securityfs", "debugfs", "tracefs", "pstore", "bpf", "configfs", "fusectl", "hugetlbfs",
        "autofs", "binfmt_misc", "rpc_pipefs", "nfsd", "nsfs", "efivarfs", "selinuxfs", "squashfs",
        "iso9660", "fuse.gvfsd-fuse", "fuse.portal", "fuse.lxcfs", "rootfs",
        "usbfs", "xenfs", "sockfs", "pipefs", "anon_inodefs", "cpuset", "devfs", "kernfs",
    ]

    /// The mount points of every real file system, in mount order, each once (a mount point
    /// mounted over again is the file system seen there now, the last one).
    public static func realMountPoints(_ mounts: [Mount]) -> [String] {
        var order: [String] = []
        var last: [String: Mount] = [:]
        for mount in mounts {
            if last[mount.mountPoint] == nil { order.append(mount.mountPoint) }
            last[mount.mountPoint] = mount
        }
        return order.filter { point in
            guard let mount = last[point] else { return false }
            return !pseudoFileSystemTypes.contains(mount.type) && !mount.type.hasPrefix("cgroup")
        }
    }

    /// Percent used as `df` computes it: used / (used + available to non-root), rounded to
    /// a hundredth, where used = blocks - free. Nil for a file system with no blocks.
    public static func fileSystemUsedPercent(blocks: UInt64, free: UInt64, available: UInt64) -> Double? {
        let used = blocks >= free ? blocks - free : 0
        let denominator = used + available
        guard blocks > 0, denominator > 0 else { return nil }
        return roundedPercent(min(100, Double(used) / Double(denominator) * 100))
    }

    // MARK: - /proc/<pid>/stat, status, cmdline

    public struct ProcessStat: Sendable, Hashable {
        public var pid: Int
        /// The command name (`comm`, at most 15 bytes), without its parentheses.
        public var command: String
        /// The state letter: `R`, `S`, `D`, `Z` (zombie), `X` (dead), ...
        public var state: Character

        public init(pid: Int, command: String, state: Character) {
            self.pid = pid
            self.command = command
            self.state = state
        }

        /// A zombie or dead process is not a live one.
        public var isLive: Bool { state != "Z" && state != "X" && state != "x" }
    }

    /// `/proc/<pid>/stat`: `pid (comm) state ...`. The command name may hold spaces and
    /// parentheses, so it runs from the first `(` to the LAST `)`.
    public static func processStat(_ text: String) -> ProcessStat? {
        guard let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")"), open < close,
            let pid = Int(text[..<open].monitorTrimmed)
        else { return nil }
        let command = String(text[text.index(after: open)..<close])
        let rest = text[text.index(after: close)...].drop { $0 == " " }
        guard let state = rest.first, state != "\n" else { return nil }
        return ProcessStat(pid: pid, command: command, state: state)
    }

    /// The real uid from `/proc/<pid>/status` (`Uid:\treal\teffective\tsaved\tfs`).
    public static func realUserID(status text: String) -> UInt32? {
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("Uid:") {
            let words = line.dropFirst(4).split(whereSeparator: { $0 == " " || $0 == "\t" })
            return words.first.flatMap { UInt32($0) }
        }
        return nil
    }

    /// The base name of `argv[0]` from `/proc/<pid>/cmdline` (NUL-separated arguments); nil for
    /// a kernel thread or a process that cleared it.
    public static func argumentZeroBaseName(cmdline bytes: [UInt8]) -> String? {
        let first = bytes.prefix { $0 != 0 }
        guard !first.isEmpty else { return nil }
        let start = first.lastIndex(of: 0x2F).map { $0 + 1 } ?? first.startIndex
        let base = first[start...]
        return base.isEmpty ? nil : String(decoding: base, as: UTF8.self)
    }

    /// Whether a process is an instance of `program`: its command name is the program name as
    /// the kernel keeps it (the first 15 bytes), or the base name of its `argv[0]` is the
    /// program name.
    public static func processMatches(program: String, command: String, argumentZero: String?) -> Bool {
        if command == commandName(of: program) { return true }
        return argumentZero == program
    }

    /// A program name as the kernel keeps it in `comm`: its first 15 bytes.
    public static func commandName(of program: String) -> String {
        let bytes = Array(program.utf8)
        guard bytes.count > 15 else { return program }
        return String(decoding: bytes.prefix(15), as: UTF8.self)
    }

    /// Percentages are kept to a hundredth.
    static func roundedPercent(_ value: Double) -> Double {
        (value * 100).rounded() / 100
    }
}

extension Substring {
    var monitorTrimmed: Substring {
        var slice = self
        while let first = slice.first, first.isWhitespace { slice = slice.dropFirst() }
        while let last = slice.last, last.isWhitespace { slice = slice.dropLast() }
        return slice
    }
}
