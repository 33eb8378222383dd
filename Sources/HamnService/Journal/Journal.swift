import Foundation
import GRDB
import RecoveryPrograms
import RulesEngine
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// The SQLite journal (SPEC section 7): events, their participants and outcome, every command
/// with node, segment, exit status, duration and the tail of its output, barrier passages,
/// arming changes, membership changes, and the event log that `mon` follows.
///
/// Durability. The database is in WAL mode. Every `append` is one transaction, and so is every
/// `write(_:)` whatever its number of entries (the service's writer commits everything it has
/// queued together). With `PRAGMA synchronous = FULL` a commit does not return before the
/// write-ahead log has been fsynced; with `NORMAL` (the usual WAL setting, and GRDB's default) a
/// commit only writes the log into the operating system's cache and fsyncs at checkpoints:
/// that survives the service being killed (SIGKILL, a crash: the kernel still writes the cache
/// out), but a power loss or a kernel crash can lose the last transactions that were reported
/// committed. Every transaction is `FULL` except one made only of an event's progress (command
/// results, barrier passages) and arming changes, which is `NORMAL`: those come at every
/// barrier, and an fsync each is most of the journal's cost there. The next `FULL` commit (the
/// event's end, a failure, a note) fsyncs the log and, with it, everything before it. So a
/// power loss can lose at most the progress of the event running since its start; that event
/// has a start and no end, and is marked `interrupted` at the next start, as after a kill.
/// Either way the database is never corrupted and a transaction is all or nothing, so a kill
/// between two entries loses nothing already appended.
///
/// Runs. Each `init` starts a new *run* (a row of `runs()`), and `close()` records its end;
/// a run without an end was killed or crashed. The coordinator numbers events from 1 each time
/// a cluster forms, so events are keyed by `(run, id)`. Opening a journal marks the events that
/// earlier runs left unfinished (queued or running) as `interrupted` and lists them in
/// `interrupted`. Each `synchronised` the coordinator journals starts a cluster history, which
/// the journal numbers as the run's `epoch`; a second one in a run (the node joined a cluster
/// anew while the service kept running) starts a new run, so ids stay unique. An id seen twice
/// within one history, which should not happen, starts a new run too rather than be lost.
///
/// All files are the service's alone: the directory is created with mode 0700 when missing,
/// the database (and SQLite's `-wal` and `-shm` files, which take its mode) has mode 0600.
///
/// Every method throws `JournalError` rather than crashing. The class is safe to use from
/// several threads: writes are serialised, reads run beside them (WAL readers see the last
/// committed entry).
public final class Journal: Sendable {
    /// The database file.
    public let path: String
    /// The events that earlier runs left queued or running, now marked `interrupted`: for the
    /// service to log at start.
    public let interrupted: [JournalEvent]

    let pool: DatabasePool
    private let current: Mutex<Current>
    private let pid: Int32
    private let host: String

    private struct Current: Sendable {
        var run: Int64
        /// The descriptor of `PATH.lock`, -1 once released.
        var lockDescriptor: Int32
        /// The database file, opened once to notice that it was deleted (its link count).
        var databaseDescriptor: Int32 = -1
        var closed = false
        /// The writer connection's `synchronous`: FULL (true) or NORMAL.
        var synchronousFull = true
    }

    /// The current run: the `run` of the events appended now.
    public var run: Int64 { current.withLock { $0.run } }

    /// Opens (creating if needed) the journal at `path`, brings its schema up to date, starts a
    /// new run and marks what earlier runs left unfinished as `interrupted`.
    ///
    /// One `Journal` at a time may have the file open: it holds an exclusive `flock` on
    /// `PATH.lock` until `close()`, its release or the end of the process (however it ends),
    /// and a second one is refused. Otherwise a second opener would take the first one's
    /// running events for interrupted ones.
    public init(path: String, now: Date = Date()) throws(JournalError) {
        let pid = getpid()
        let host = Self.hostName()
        try Self.prepareFiles(at: path)
        let lock = try Self.lock(path, pid: pid)
        let opened: Opened
        do {
            opened = try Self.openDatabase(path, now: now, pid: pid, host: host)
        } catch {
            _ = closeDescriptor(lock)
            throw error
        }
        self.path = path
        self.pid = pid
        self.host = host
        self.pool = opened.pool
        self.interrupted = opened.interrupted
        self.current = Mutex(
            Current(run: opened.run, lockDescriptor: lock, databaseDescriptor: open(path, O_RDONLY | O_CLOEXEC)))
    }

    deinit {
        current.withLock { current in
            if current.lockDescriptor >= 0 { _ = closeDescriptor(current.lockDescriptor) }
            if current.databaseDescriptor >= 0 { _ = closeDescriptor(current.databaseDescriptor) }
        }
    }

    private struct Opened {
        var pool: DatabasePool
        var run: Int64
        var interrupted: [JournalEvent]
    }

    private static func openDatabase(_ path: String, now: Date, pid: Int32, host: String) throws(JournalError) -> Opened
    {
        let pool: DatabasePool
        do {
            var configuration = Configuration()
            configuration.label = "hamn-events.journal"
            // A reader in another process makes the writer wait rather than fail.
            configuration.busyMode = .timeout(10)
            configuration.maximumReaderCount = 2
            pool = try DatabasePool(path: path, configuration: configuration)
            // GRDB sets `synchronous = NORMAL` when it turns WAL on; the writer connection is
            // the only one that commits, so this is where FULL must be.
            try pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA synchronous = FULL")
                let mode = try String.fetchOne(db, sql: "PRAGMA journal_mode")
                let synchronous = try Int.fetchOne(db, sql: "PRAGMA synchronous")
                guard mode?.lowercased() == "wal", synchronous == 2 else {
                    throw JournalError(
                        "journal_mode is \(mode ?? "?") and synchronous \(synchronous.map(String.init) ?? "?"), not wal and 2 (FULL)"
                    )
                }
            }
        } catch {
            throw Self.openError(path, error)
        }
        Self.fixModes(path)
        do {
            let migrator = JournalSchema.migrator
            if try pool.read({ try migrator.hasBeenSuperseded($0) }) {
                let applied = try pool.read { try migrator.appliedIdentifiers($0) }
                throw JournalError(
                    "it was written by a newer version of hamn-events (schema \(applied.sorted().joined(separator: ", ")); "
                        + "this one knows \(migrator.migrations.joined(separator: ", ")))")
            }
            try migrator.migrate(pool)
            let opened = try pool.write { db in
                try JournalWriter.openRun(db, time: now.timeIntervalSince1970, pid: pid, host: host)
            }
            let interrupted = try pool.read { db in try JournalReader(db: db).events(opened.interrupted) }
            return Opened(pool: pool, run: opened.run, interrupted: interrupted)
        } catch {
            throw Self.openError(path, error)
        }
    }

    /// Takes the exclusive lock on `PATH.lock` (mode 0600) and writes this process's id in it.
    private static func lock(_ path: String, pid: Int32) throws(JournalError) -> Int32 {
        let lockPath = path + ".lock"
        let descriptor = open(lockPath, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw JournalError("cannot open the journal at \(path): \(lockPath): \(String(cString: strerror(errno)))")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let reason = errno
            var holder = [UInt8](repeating: 0, count: 32)
            let count = pread(descriptor, &holder, holder.count, 0)
            _ = closeDescriptor(descriptor)
            guard reason == EWOULDBLOCK else {
                throw JournalError("cannot lock the journal at \(path): \(String(cString: strerror(reason)))")
            }
            let pid = String(decoding: holder.prefix(max(0, count)), as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            throw JournalError(
                "cannot open the journal at \(path): it is in use by another journal (process \(pid.isEmpty ? "?" : pid))"
            )
        }
        let text = Array("\(pid)\n".utf8)
        if ftruncate(descriptor, 0) == 0 {
            _ = text.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        }
        _ = fchmod(descriptor, 0o600)  // an older lock file with a wider mode; the lock holds either way
        return descriptor
    }

    // MARK: Writing

    /// Records `entry`, in a transaction of its own, with its line in the event log.
    public func append(_ entry: JournalEntry, at time: Date) throws(JournalError) {
        try write("append \(JournalWriter.kind(of: entry))", at: time) { try $0.append(entry) }
    }

    /// A predicate instance was armed (its predicate may fire) or disarmed (it fired and waits
    /// for its rearm predicate).
    public func recordArming(
        trigger: String, state: Int, instance: String, armed: Bool, value: String, at time: Date
    ) throws(JournalError) {
        try write("record an arming change", at: time) { writer in
            try writer.recordArming(trigger: trigger, state: state, instance: instance, armed: armed, value: value)
        }
    }

    /// Records `writes`, in order, each at its own time, in one transaction (one commit, one
    /// fsync): all of them, or none when one fails. Nothing for no write.
    public func write(_ writes: [TimedJournalWrite]) throws(JournalError) {
        guard let first = writes.first else { return }
        let what: String
        switch (writes.count, first.write) {
        case (1, .entry(let entry)): what = "append \(JournalWriter.kind(of: entry))"
        case (1, .arming): what = "record an arming change"
        case (1, .note): what = "note"
        default: what = "write \(writes.count) entries"
        }
        try write(what, at: first.time, durable: writes.contains { Self.isDurable($0.write) }) { writer in
            for item in writes {
                writer.time = item.time.timeIntervalSince1970
                switch item.write {
                case .entry(let entry):
                    try writer.append(entry)
                case .arming(let trigger, let state, let instance, let armed, let value):
                    try writer.recordArming(
                        trigger: trigger, state: state, instance: instance, armed: armed, value: value)
                case .note(let text, let kind):
                    try writer.log(kind, text: text)
                }
            }
        }
    }

    /// A free line in the event log: a monitor that failed, the service starting or stopping,
    /// a warning.
    public func note(_ text: String, kind: String, at time: Date) throws(JournalError) {
        try write("note", at: time) { writer in
            try writer.log(kind, text: text)
        }
    }

    /// A free line in the event log about `node` (what `mon --node` selects); returns its row id.
    @discardableResult
    public func note(_ text: String, kind: String, node: String?, at time: Date) throws(JournalError) -> Int64 {
        var rowID: Int64 = 0
        try write("note", at: time) { writer in
            rowID = try writer.log(kind, node: node, text: text)
        }
        return rowID
    }

    /// Records the end of the run (a clean shutdown): the events of this run still queued or
    /// running are marked `interrupted`, the run gets its end, the database is checkpointed
    /// and closed. Later calls throw; calling `close` again does nothing.
    public func close(at time: Date = Date()) throws(JournalError) {
        try current.withLock { (current: inout Current) throws(JournalError) in
            guard !current.closed else { return }
            let run = current.run
            do {
                try pool.write { db in
                    var writer = JournalWriter(db: db, run: run, time: time.timeIntervalSince1970, pid: pid, host: host)
                    try writer.endRun(reason: "shutdown")
                }
            } catch {
                throw JournalError(
                    "could not record the end of run \(run) in the journal at \(path): \(Self.describe(error))")
            }
            current.closed = true
            defer {
                _ = closeDescriptor(current.lockDescriptor)
                current.lockDescriptor = -1
                if current.databaseDescriptor >= 0 { _ = closeDescriptor(current.databaseDescriptor) }
                current.databaseDescriptor = -1
            }
            do {
                // Everything into the database file and the log emptied: after a clean stop
                // `journal.sqlite` alone holds the data (a copy of it without its `-wal` is whole).
                try pool.writeWithoutTransaction { db in
                    let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                    if let busy: Int = row?[0], busy != 0 {
                        throw JournalError("the checkpoint was blocked by a reader")
                    }
                }
            } catch {
                throw JournalError("could not checkpoint the journal at \(path): \(Self.describe(error))")
            }
            do {
                try pool.close()
            } catch {
                throw JournalError("could not close the journal at \(path): \(Self.describe(error))")
            }
        }
    }

    /// Whether `write` is committed with `synchronous = FULL` (see "Durability").
    static func isDurable(_ write: JournalWrite) -> Bool {
        switch write {
        case .entry(.commandFinished), .entry(.barrierPassed), .arming: false
        case .entry, .note: true
        }
    }

    private func write(
        _ what: String, at time: Date, durable: Bool = true, _ body: (inout JournalWriter) throws -> Void
    ) throws(JournalError) {
        try current.withLock { (current: inout Current) throws(JournalError) in
            guard !current.closed else { throw JournalError("cannot \(what): the journal at \(path) is closed") }
            let run = current.run
            let newRun: Int64
            do {
                if current.synchronousFull != durable {
                    // Not inside the transaction: SQLite takes the setting between them.
                    try pool.writeWithoutTransaction { db in
                        try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
                    }
                    current.synchronousFull = durable
                }
                newRun = try pool.write { db in
                    var writer = JournalWriter(db: db, run: run, time: time.timeIntervalSince1970, pid: pid, host: host)
                    try body(&writer)
                    return writer.run
                }
            } catch {
                throw JournalError(
                    "could not \(what) in the journal at \(path): \(Self.describe(error))", storage: Self.storage(error)
                )
            }
            current.run = newRun
        }
    }

    // MARK: Reading

    func read<T>(_ what: String, _ body: (JournalReader) throws -> T) throws(JournalError) -> T {
        guard !current.withLock({ $0.closed }) else {
            throw JournalError("cannot read \(what): the journal at \(path) is closed")
        }
        do {
            return try pool.read { db in try body(JournalReader(db: db)) }
        } catch {
            throw JournalError("could not read \(what) from the journal at \(path): \(Self.describe(error))")
        }
    }

    // MARK: Files and errors

    /// Creates the missing directories (0700) and the database file (0600), or checks that what
    /// is at `path` is a regular file.
    private static func prepareFiles(at path: String) throws(JournalError) {
        guard !path.isEmpty else { throw JournalError("the journal path is empty") }
        let url = URL(fileURLWithPath: path).standardizedFileURL
        try makeDirectories(url.deletingLastPathComponent().path)
        var info = stat()
        if stat(path, &info) == 0 {
            switch info.st_mode & S_IFMT {
            case S_IFREG: return
            case S_IFDIR: throw JournalError("cannot open the journal at \(path): it is a directory")
            default: throw JournalError("cannot open the journal at \(path): it is not a regular file")
            }
        }
        guard errno == ENOENT else {
            throw JournalError("cannot open the journal at \(path): \(String(cString: strerror(errno)))")
        }
        let descriptor = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        if descriptor < 0 {
            guard errno == EEXIST else {
                throw JournalError("cannot create the journal at \(path): \(String(cString: strerror(errno)))")
            }
        } else {
            _ = closeDescriptor(descriptor)
        }
    }

    private static func makeDirectories(_ directory: String) throws(JournalError) {
        var missing: [String] = []
        var candidate = URL(fileURLWithPath: directory)
        while candidate.path != "/" && !candidate.path.isEmpty {
            var info = stat()
            if stat(candidate.path, &info) == 0 {
                guard info.st_mode & S_IFMT == S_IFDIR else {
                    throw JournalError("cannot create the journal's directory: \(candidate.path) is not a directory")
                }
                break
            }
            guard errno == ENOENT else {
                throw JournalError("cannot use the directory \(candidate.path): \(String(cString: strerror(errno)))")
            }
            missing.append(candidate.path)
            candidate = candidate.deletingLastPathComponent()
        }
        for directory in missing.reversed() where mkdir(directory, 0o700) != 0 && errno != EEXIST {
            throw JournalError("cannot create the directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    /// The database and its `-wal` and `-shm` files: 0600. New files already are; an older
    /// journal with a wider mode is narrowed. Best effort: the owner of the files can always.
    private static func fixModes(_ path: String) {
        for file in [path, path + "-wal", path + "-shm"] {
            var info = stat()
            if stat(file, &info) == 0, info.st_mode & 0o777 != 0o600 {
                _ = chmod(file, 0o600)
            }
        }
    }

    /// `gethostname`: no name service look-up (ProcessInfo's `hostName` may make one).
    private static func hostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "?" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func openError(_ path: String, _ error: any Error) -> JournalError {
        if let error = error as? JournalError {
            return JournalError("cannot open the journal at \(path): \(error.message)")
        }
        guard let error = error as? DatabaseError else {
            return JournalError("cannot open the journal at \(path): \(error)")
        }
        let detail = error.message ?? "\(error)"
        switch error.resultCode {
        case .SQLITE_NOTADB:
            return JournalError("cannot open the journal at \(path): the file is not an SQLite database")
        case .SQLITE_CORRUPT:
            return JournalError("cannot open the journal at \(path): the database is corrupt (\(detail))")
        case .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_AUTH:
            return JournalError("cannot open the journal at \(path): permission denied (\(detail))")
        case .SQLITE_CANTOPEN:
            return JournalError("cannot open the journal at \(path): \(detail)")
        default:
            return JournalError("cannot open the journal at \(path): \(detail)")
        }
    }

    /// The short reason when `error` is a want of storage rather than a write the journal refuses.
    static func storage(_ error: any Error) -> String? {
        guard let error = error as? DatabaseError else { return nil }
        switch error.resultCode {
        case .SQLITE_FULL: return String(cString: strerror(ENOSPC))
        case .SQLITE_IOERR: return "disk I/O error (\(error.message ?? "\(error.extendedResultCode)"))"
        case .SQLITE_CANTOPEN, .SQLITE_READONLY: return error.message ?? "\(error.resultCode)"
        default: return nil
        }
    }

    /// Why the journal cannot be written to, when its files were deleted or replaced while it is
    /// open (checked before each commit and every second): nil when they are in place. A lock
    /// file deleted with them is made again and locked, so that a second service on the same
    /// path is still refused.
    public func storageProblem() -> String? {
        current.withLock { current -> String? in
            guard !current.closed else { return nil }
            var named = stat()
            var lock = stat()
            if current.lockDescriptor >= 0, fstat(current.lockDescriptor, &lock) == 0,
                lock.st_nlink == 0 || stat(path + ".lock", &named) != 0 || named.st_ino != lock.st_ino
            {
                // Deleted with its directory, perhaps: made and locked again (or a second
                // service got it first: then it is said).
                do {
                    try Self.makeDirectories(
                        URL(fileURLWithPath: path).standardizedFileURL.deletingLastPathComponent().path)
                    let descriptor = try Self.lock(path, pid: pid)
                    _ = closeDescriptor(current.lockDescriptor)
                    current.lockDescriptor = descriptor
                } catch {
                    return
                        "the journal's lock \(path).lock was deleted and cannot be taken again: \(Self.describe(error))"
                }
            }
            var open = stat()
            if current.databaseDescriptor >= 0, fstat(current.databaseDescriptor, &open) == 0 {
                if open.st_nlink == 0 || stat(path, &named) != 0 || named.st_ino != open.st_ino
                    || named.st_dev != open.st_dev
                {
                    return "the journal \(path) was deleted or replaced while the service runs"
                        + "; restart the service to start a new journal"
                }
            }
            return nil
        }
    }

    static func describe(_ error: any Error) -> String {
        if let error = error as? DatabaseError { return error.message ?? "\(error)" }
        if let error = error as? JournalError { return error.message }
        return "\(error)"
    }
}

/// An event's key.
struct EventKey: Sendable, Hashable {
    var run: Int64
    var id: Int
}

private func closeDescriptor(_ descriptor: Int32) -> Int32 {
    #if canImport(Glibc)
        Glibc.close(descriptor)
    #else
        Darwin.close(descriptor)
    #endif
}
