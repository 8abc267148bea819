-- sluice practice store, version 5 (PostgreSQL): blind-comparison votes and answer
-- ratings. A vote copies what the leaderboard filters by (the prompt, the
-- agent, the style, the router's domain) and the models compared, so it stays
-- a complete record when its session is deleted (turn_id becomes NULL).
CREATE TABLE votes (
    id            BIGSERIAL PRIMARY KEY,
    turn_id       BIGINT UNIQUE REFERENCES turns(id) ON DELETE SET NULL,
    session_id    BIGINT,
    class_id      BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    user_id       BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    verdict       TEXT NOT NULL CHECK (verdict IN ('best', 'tie', 'all_bad', 'skip')),
    best_label    TEXT,
    best_model    TEXT,
    -- JSON: the model names in label order (A first).
    models        TEXT NOT NULL,
    prompt_text   TEXT NOT NULL,
    agent_id      BIGINT,
    style_preset  TEXT NOT NULL,
    domain        TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX votes_class ON votes(class_id, id);
CREATE TABLE ratings (
    id          BIGSERIAL PRIMARY KEY,
    result_id   BIGINT NOT NULL REFERENCES results(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    class_id    BIGINT NOT NULL REFERENCES classes(id) ON DELETE CASCADE,
    model_name  TEXT NOT NULL,
    value       BIGINT NOT NULL CHECK (value IN (-1, 1)),
    comment     TEXT,
    created_at  TEXT NOT NULL,
    UNIQUE (result_id, user_id)
);
CREATE INDEX ratings_class ON ratings(class_id, id);
