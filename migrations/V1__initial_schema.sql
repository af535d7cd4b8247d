-- The first schema: users, the follow graph, posts, likes, notifications, the durable event
-- log, refresh tokens and the audit log.

CREATE TABLE users (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    handle          TEXT NOT NULL UNIQUE CHECK (handle ~ '^[a-z0-9_]{3,30}$'),
    google_sub      TEXT UNIQUE,
    email           TEXT,
    display_name    TEXT NOT NULL DEFAULT '' CHECK (char_length(display_name) <= 100),
    bio             TEXT NOT NULL DEFAULT '' CHECK (char_length(bio) <= 500),
    role            TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin')),
    followers_count BIGINT NOT NULL DEFAULT 0,
    following_count BIGINT NOT NULL DEFAULT 0,
    posts_count     BIGINT NOT NULL DEFAULT 0,
    disabled_at     TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE follows (
    follower_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    followee_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (follower_id, followee_id),
    CHECK (follower_id <> followee_id)
);
-- Followers of a user, in the order they followed (the primary key serves "following").
CREATE INDEX follows_followee_idx ON follows (followee_id, follower_id);

CREATE TABLE posts (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author_id       BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body            TEXT NOT NULL CHECK (char_length(body) BETWEEN 1 AND 1000),
    reply_to        BIGINT REFERENCES posts (id),
    root_id         BIGINT REFERENCES posts (id),
    reply_count     BIGINT NOT NULL DEFAULT 0,
    like_count      BIGINT NOT NULL DEFAULT 0,
    idempotency_key TEXT CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    deleted_at      TIMESTAMPTZ,
    CHECK ((reply_to IS NULL) = (root_id IS NULL))
);
-- One post per (author, Idempotency-Key).
CREATE UNIQUE INDEX posts_idempotency_idx ON posts (author_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- A user's posts and the home timeline, newest first, one index scan per author.
CREATE INDEX posts_author_idx ON posts (author_id, id DESC) WHERE deleted_at IS NULL;
CREATE INDEX posts_reply_to_idx ON posts (reply_to, id) WHERE reply_to IS NOT NULL;

CREATE TABLE likes (
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id    BIGINT NOT NULL REFERENCES posts (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, post_id)
);
CREATE INDEX likes_post_idx ON likes (post_id);

CREATE TABLE notifications (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind       TEXT NOT NULL CHECK (kind IN ('like', 'follow', 'reply', 'mention')),
    actor_id   BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id    BIGINT REFERENCES posts (id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    read_at    TIMESTAMPTZ
);
CREATE INDEX notifications_user_idx ON notifications (user_id, id DESC);

-- The durable event log. Ids are not a sequence: each writing transaction takes the next ids
-- from event_counter while holding its row lock until COMMIT, so ids are dense and in commit
-- order on every node (see actors/src/event_log.rs).
CREATE TABLE event_counter (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id   BIGINT NOT NULL
);
INSERT INTO event_counter (singleton, last_id) VALUES (true, 0);

CREATE TABLE events (
    id           BIGINT PRIMARY KEY,
    kind         TEXT NOT NULL,
    -- Addressed to the author and their followers ...
    author_id    BIGINT REFERENCES users (id) ON DELETE CASCADE,
    -- ... or to one user.
    recipient_id BIGINT REFERENCES users (id) ON DELETE CASCADE,
    payload      JSONB NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((author_id IS NULL) <> (recipient_id IS NULL))
);
CREATE INDEX events_author_idx ON events (author_id, id) WHERE author_id IS NOT NULL;
CREATE INDEX events_recipient_idx ON events (recipient_id, id) WHERE recipient_id IS NOT NULL;
CREATE INDEX events_created_idx ON events (created_at);

CREATE TABLE refresh_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    family_id   BIGINT NOT NULL,
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- SHA-256 of the token; the token itself is never stored.
    token_hash  BYTEA NOT NULL UNIQUE CHECK (octet_length(token_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    rotated_at  TIMESTAMPTZ,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE audit_log (
    id       BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action   TEXT NOT NULL,
    target   TEXT,
    detail   JSONB NOT NULL DEFAULT '{}'::jsonb,
    ip       INET
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
