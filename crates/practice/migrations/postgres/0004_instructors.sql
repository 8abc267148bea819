-- sluice practice store, version 4 (PostgreSQL): what instructors see of their class.
--
-- session_reads: every time an instructor opened a student's session; the
-- student lists them. No foreign key to the session: the record outlives it.
CREATE TABLE session_reads (
    id          BIGSERIAL PRIMARY KEY,
    session_id  BIGINT NOT NULL,
    class_id    BIGINT NOT NULL,
    student_id  BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reader_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    read_at     TEXT NOT NULL
);
CREATE INDEX session_reads_student ON session_reads(student_id, id);
-- budgets: limits per class (user_id 0: the class as a whole) and per student;
-- NULL is no limit.
CREATE TABLE budgets (
    class_id         BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id          BIGINT NOT NULL,
    tokens_per_day   BIGINT,
    tokens_per_week  BIGINT,
    runs_per_hour    BIGINT,
    cost_per_month   DOUBLE PRECISION,
    updated_at       TEXT NOT NULL,
    PRIMARY KEY (class_id, user_id)
);
-- usage_runs: one row per run (a new session or a next turn). Written before
-- any model is called with the run's worst case (settled false), then settled
-- with what it really used. Budgets sum these rows; sessions may be deleted,
-- usage stays.
CREATE TABLE usage_runs (
    id        BIGSERIAL PRIMARY KEY,
    class_id  BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL,
    at_ms     BIGINT NOT NULL,
    settled   BOOLEAN NOT NULL,
    tokens    BIGINT NOT NULL,
    cost      DOUBLE PRECISION NOT NULL
);
CREATE INDEX usage_runs_class ON usage_runs(class_id, at_ms);
CREATE INDEX usage_runs_user ON usage_runs(class_id, user_id, at_ms);
-- usage_events: one row per model call of a settled run.
CREATE TABLE usage_events (
    id                 BIGSERIAL PRIMARY KEY,
    run_id             BIGINT NOT NULL,
    class_id           BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id            BIGINT NOT NULL,
    session_id         BIGINT,
    agent_id           BIGINT,
    model_name         TEXT NOT NULL,
    at_ms              BIGINT NOT NULL,
    day                TEXT NOT NULL,
    prompt_tokens      BIGINT NOT NULL,
    completion_tokens  BIGINT NOT NULL,
    error_kind         TEXT,
    latency_ms         BIGINT NOT NULL,
    cost               DOUBLE PRECISION
);
CREATE INDEX usage_events_class ON usage_events(class_id, at_ms);
