-- The AI persona and what the AI was asked to do.

-- `ai` is the one handle shorter than three characters: no person can sign in with it.
ALTER TABLE users DROP CONSTRAINT users_handle_check;
ALTER TABLE users ADD CONSTRAINT users_handle_check
    CHECK (handle ~ '^[a-z0-9_]{3,30}$' OR handle = 'ai');
INSERT INTO users (handle, display_name, bio)
VALUES ('ai', 'AI', 'The network''s AI. Mention @ai in a post and it answers in the thread.')
ON CONFLICT (handle) DO NOTHING;

-- One row per AI request, whatever its outcome: who asked, what for, and what it cost.
CREATE TABLE ai_usage (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id    UUID NOT NULL UNIQUE,
    user_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('mention', 'compose', 'summary')),
    model         TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    attempts      INT NOT NULL DEFAULT 0,
    prompt_tokens INT NOT NULL DEFAULT 0,
    output_tokens INT NOT NULL DEFAULT 0,
    total_tokens  INT NOT NULL DEFAULT 0,
    queued_ms     INT NOT NULL DEFAULT 0,
    duration_ms   INT NOT NULL DEFAULT 0,
    post_id       BIGINT REFERENCES posts (id) ON DELETE SET NULL,
    reply_id      BIGINT REFERENCES posts (id) ON DELETE SET NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX ai_usage_user_idx ON ai_usage (user_id, created_at DESC);
