-- sluice practice store, version 1 (PostgreSQL). Times are RFC 3339 UTC text written
-- by sluice; JSON columns are text. The SQLite schema mirrors this one.
CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);
CREATE TABLE api_keys (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    key_hash    TEXT NOT NULL UNIQUE,
    prefix      TEXT NOT NULL,
    label       TEXT,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE TABLE classes (
    id             BIGSERIAL PRIMARY KEY,
    name           TEXT NOT NULL,
    primary_model  TEXT NOT NULL,
    created_at     TEXT NOT NULL
);
CREATE TABLE class_members (
    class_id  BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id   BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role      TEXT NOT NULL CHECK (role IN ('instructor', 'student')),
    PRIMARY KEY (class_id, user_id)
);
CREATE INDEX class_members_user ON class_members(user_id);
CREATE TABLE class_models (
    class_id    BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    model_name  TEXT NOT NULL,
    position    BIGINT NOT NULL,
    PRIMARY KEY (class_id, model_name)
);
CREATE TABLE agents (
    id                 BIGSERIAL PRIMARY KEY,
    owner_id           BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    class_id           BIGINT REFERENCES classes(id) ON DELETE SET NULL,
    name               TEXT NOT NULL,
    instructions       TEXT NOT NULL,
    model_name         TEXT,
    style_preset       TEXT,
    style_params       TEXT,
    generation_params  TEXT,
    created_at         TEXT NOT NULL,
    updated_at         TEXT NOT NULL
);
CREATE INDEX agents_owner ON agents(owner_id);
CREATE TABLE projects (
    id           BIGSERIAL PRIMARY KEY,
    owner_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    class_id     BIGINT REFERENCES classes(id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX projects_owner ON projects(owner_id);
CREATE TABLE knowledge_bases (
    id           BIGSERIAL PRIMARY KEY,
    owner_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    class_id     BIGINT REFERENCES classes(id) ON DELETE SET NULL,
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    -- BM25 statistics, kept with every write so a search reads one row per base.
    passage_count  BIGINT NOT NULL DEFAULT 0,
    term_total     BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every change to its passages: in-memory indexes are checked against it.
    revision       BIGINT NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX knowledge_bases_owner ON knowledge_bases(owner_id);
CREATE TABLE documents (
    id            BIGSERIAL PRIMARY KEY,
    knowledge_id  BIGINT NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    title         TEXT NOT NULL,
    format        TEXT NOT NULL,
    bytes         BIGINT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX documents_knowledge ON documents(knowledge_id);
CREATE TABLE passages (
    id            BIGSERIAL PRIMARY KEY,
    document_id   BIGINT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
    knowledge_id  BIGINT NOT NULL,
    position      BIGINT NOT NULL,
    text          TEXT NOT NULL,
    term_count    BIGINT NOT NULL
);
CREATE INDEX passages_document ON passages(document_id);
CREATE INDEX passages_knowledge ON passages(knowledge_id);
CREATE TABLE passage_terms (
    knowledge_id  BIGINT NOT NULL,
    term          TEXT NOT NULL,
    passage_id    BIGINT NOT NULL REFERENCES passages(id) ON DELETE CASCADE,
    tf            BIGINT NOT NULL,
    passage_len   BIGINT NOT NULL,
    PRIMARY KEY (knowledge_id, term, passage_id)
);
CREATE INDEX passage_terms_passage ON passage_terms(passage_id);
CREATE TABLE few_shot_examples (
    id          BIGSERIAL PRIMARY KEY,
    owner_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    class_id    BIGINT REFERENCES classes(id) ON DELETE SET NULL,
    input       TEXT NOT NULL,
    output      TEXT NOT NULL,
    note        TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX few_shot_examples_owner ON few_shot_examples(owner_id);
CREATE TABLE sessions (
    id             BIGSERIAL PRIMARY KEY,
    user_id        BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    class_id       BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    project_id     BIGINT REFERENCES projects(id) ON DELETE SET NULL,
    agent_id       BIGINT REFERENCES agents(id) ON DELETE SET NULL,
    title          TEXT,
    knowledge_ids  TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id, id);
CREATE TABLE session_models (
    id          BIGSERIAL PRIMARY KEY,
    session_id  BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    model_name  TEXT NOT NULL,
    position    BIGINT NOT NULL,
    UNIQUE (session_id, model_name)
);
CREATE TABLE turns (
    id           BIGSERIAL PRIMARY KEY,
    session_id   BIGINT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    prompt_text  TEXT NOT NULL,
    settings     TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    UNIQUE (session_id, position)
);
CREATE TABLE results (
    id                 BIGSERIAL PRIMARY KEY,
    turn_id            BIGINT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
    session_model_id   BIGINT NOT NULL REFERENCES session_models(id) ON DELETE CASCADE,
    model_name         TEXT NOT NULL,
    is_primary         BOOLEAN NOT NULL,
    response_text      TEXT,
    error              TEXT,
    token_usage        TEXT NOT NULL,
    latency_ms         BIGINT NOT NULL,
    generation_params  TEXT NOT NULL,
    request            TEXT NOT NULL,
    finish_reason      TEXT,
    upstream_id        TEXT,
    created_at         TEXT NOT NULL
);
CREATE INDEX results_turn ON results(turn_id);
