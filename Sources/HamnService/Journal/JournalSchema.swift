import GRDB

/// The journal's schema, as versioned migrations: `v1` creates it; a later version registers
/// `v2`, `v3`, ... after it and never edits a migration that has shipped. GRDB records the
/// applied migrations in `grdb_migrations`, so an old journal is brought up to date when it is
/// opened, and a journal written by a newer version (one with migrations this build does not
/// know) is refused instead of being written with the wrong schema.
///
/// Times are REAL seconds since 1970 (UTC); in `sqlite3`: `datetime(time, 'unixepoch')`.
/// Lists of nodes are JSON arrays of `{"name", "number"}`.
enum JournalSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1", migrate: v1)
        migrator.registerMigration("v2", migrate: v2)
        migrator.registerMigration("v3", migrate: v3)
        return migrator
    }

    /// `run.epoch`: the cluster history this run records. The coordinator starts one each time
    /// it journals `synchronised` (it formed a cluster, got a running cluster's state, or every
    /// member that had the state left); the journal numbers them 1, 2, ... across runs. Event
    /// ids are unique within a history, and a run holds at most one: a second starts a new
    /// run. NULL until the run's first `synchronised` (and in runs before v3).
    static func v3(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE run ADD COLUMN epoch INTEGER")
    }

    /// `command.ended_at`: when the node that ran the command saw it end (its own clock);
    /// `finished_at` is when this node journaled the result.
    static func v2(_ db: Database) throws {
        try db.execute(sql: "ALTER TABLE command ADD COLUMN ended_at REAL")
    }

    static func v1(_ db: Database) throws {
        try db.execute(
            sql: """
                -- One row per run of the journal: from Journal.init to close(). A row without
                -- ended_at, other than the newest, is a run that was killed or crashed.
                CREATE TABLE run (
                    run INTEGER PRIMARY KEY AUTOINCREMENT,
                    started_at REAL NOT NULL,
                    ended_at REAL,
                    end_reason TEXT,
                    -- when a later run found it had ended without close()
                    crash_noticed_at REAL,
                    pid INTEGER NOT NULL,
                    host TEXT NOT NULL
                );

                -- One row per event, keyed by (run, id): ids restart from 1 when a cluster forms.
                CREATE TABLE event (
                    run INTEGER NOT NULL REFERENCES run(run),
                    id INTEGER NOT NULL,
                    name TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    node TEXT NOT NULL,
                    node_number INTEGER NOT NULL,
                    priority INTEGER NOT NULL,
                    arrival INTEGER NOT NULL,
                    rv_variable TEXT,
                    rv_instance TEXT,
                    rv_value TEXT,
                    display_name TEXT,
                    queued_at REAL,
                    started_at REAL,
                    finished_at REAL,
                    outcome TEXT CHECK (outcome IN ('completed', 'failed', 'skipped', 'suppressed', 'interrupted')),
                    -- the first command that failed its expected status
                    failure_node TEXT,
                    failure_node_number INTEGER,
                    failure_segment INTEGER,
                    failed_at REAL,
                    -- the log row that tells of its end (what wait-event waits for)
                    finished_log INTEGER,
                    PRIMARY KEY (run, id)
                );
                CREATE INDEX event_by_name ON event(name, outcome, finished_log);
                CREATE INDEX event_unfinished ON event(run) WHERE outcome IS NULL;

                -- The members at an event's start.
                CREATE TABLE participant (
                    run INTEGER NOT NULL,
                    event_id INTEGER NOT NULL,
                    node TEXT NOT NULL,
                    node_number INTEGER NOT NULL,
                    -- it left the cluster while the event ran
                    left_at REAL,
                    PRIMARY KEY (run, event_id, node),
                    FOREIGN KEY (run, event_id) REFERENCES event(run, id)
                );

                -- Barrier passages and command results refer to (run, event_id) without a
                -- foreign key: a node that joined while an event ran journals its end without
                -- ever having seen its start.
                CREATE TABLE barrier (
                    id INTEGER PRIMARY KEY,
                    run INTEGER NOT NULL,
                    event_id INTEGER NOT NULL,
                    barrier_index INTEGER NOT NULL,
                    passed_at REAL NOT NULL,
                    participants TEXT NOT NULL
                );
                CREATE INDEX barrier_by_event ON barrier(run, event_id);

                CREATE TABLE command (
                    id INTEGER PRIMARY KEY,
                    run INTEGER NOT NULL,
                    event_id INTEGER NOT NULL,
                    node TEXT NOT NULL,
                    node_number INTEGER NOT NULL,
                    segment INTEGER NOT NULL,
                    line INTEGER NOT NULL,
                    command TEXT NOT NULL,
                    -- exited, signaled, timedOut, couldNotStart
                    termination TEXT NOT NULL,
                    exit_status INTEGER,
                    signal INTEGER,
                    reason TEXT,
                    accepted INTEGER NOT NULL,
                    duration REAL NOT NULL,
                    output_tail TEXT NOT NULL,
                    finished_at REAL NOT NULL
                );
                CREATE INDEX command_by_event ON command(run, event_id);

                CREATE TABLE membership (
                    id INTEGER PRIMARY KEY,
                    run INTEGER NOT NULL,
                    time REAL NOT NULL,
                    view INTEGER NOT NULL,
                    members TEXT NOT NULL,
                    joined TEXT NOT NULL,
                    "left" TEXT NOT NULL
                );

                CREATE TABLE arming (
                    id INTEGER PRIMARY KEY,
                    run INTEGER NOT NULL,
                    time REAL NOT NULL,
                    "trigger" TEXT NOT NULL,
                    state INTEGER NOT NULL,
                    instance TEXT NOT NULL,
                    armed INTEGER NOT NULL,
                    value TEXT NOT NULL
                );
                CREATE INDEX arming_by_instance ON arming("trigger", state, instance);

                -- The event log: one human-readable line per journaled entry, per note and per
                -- arming change, in the style of hacmp.out. AUTOINCREMENT: row ids are never
                -- reused, so a reader can follow it with "id > last seen".
                CREATE TABLE log (
                    id INTEGER PRIMARY KEY AUTOINCREMENT,
                    run INTEGER NOT NULL,
                    time REAL NOT NULL,
                    kind TEXT NOT NULL,
                    node TEXT,
                    event_id INTEGER,
                    text TEXT NOT NULL
                );
                """)
    }
}
