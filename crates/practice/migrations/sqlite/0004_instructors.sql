-- sluice practice store, version 4 (SQLite): what instructors see of their class.
--
-- session_reads: every time an instructor opened a student's session; the
-- student lists them. No foreign key to the session: the record outlives it.
CREATE TABLE session_reads (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    session_id  INTEGER NOT NULL,
    class_id    INTEGER NOT NULL,
    student_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reader_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    read_at     TEXT NOT NULL
);
CREATE INDEX session_reads_student ON session_reads(student_id, id);
-- budgets: limits per class (user_id 0: the class as a whole) and per student;
-- NULL is no limit.
CREATE TABLE budgets (
    class_id         INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id          INTEGER NOT NULL,
    tokens_per_day   INTEGER,
    tokens_per_week  INTEGER,
    runs_per_hour    INTEGER,
    cost_per_month   REAL,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (class_id, user_id)
);
-- usage_runs: one row per run (a new session or a next turn). Written before
-- any model is called with the run's worst case (settled = 0), then settled
-- with what it really used. Budgets sum these rows; sessions may be deleted,
-- usage stays.
CREATE TABLE usage_runs (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    class_id  INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL,
    at_ms     INTEGER NOT NULL,
    settled   BOOLEAN NOT NULL,
    tokens    INTEGER NOT NULL,
    cost      REAL NOT NULL
);
CREATE INDEX usage_runs_class ON usage_runs(class_id, at_ms);
CREATE INDEX usage_runs_user ON usage_runs(class_id, user_id, at_ms);
-- usage_events: one row per model call of a settled run.
CREATE TABLE usage_events (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id             INTEGER NOT NULL,
    class_id           INTEGER NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id            INTEGER NOT NULL,
    session_id         INTEGER,
    agent_id           INTEGER,
    model_name         TEXT NOT NULL,
    at_ms              INTEGER NOT NULL,
    day                TEXT NOT NULL,
    prompt_tokens      INTEGER NOT NULL,
    completion_tokens  INTEGER NOT NULL,
    error_kind         TEXT,
    latency_ms         INTEGER NOT NULL,
    cost               REAL
);
CREATE INDEX usage_events_class ON usage_events(class_id, at_ms);
