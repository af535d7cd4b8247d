-- Issue 20: blocks and mutes. Who receives what changes through `route.filter` records of the
-- event log; these tables are the state those records lead to (and what reads filter by).

CREATE TABLE blocks (
    blocker_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (blocker_id, blocked_id),
    CHECK (blocker_id <> blocked_id)
);
-- Who blocked me (the other direction of every check).
CREATE INDEX blocks_blocked_idx ON blocks (blocked_id, blocker_id);

CREATE TABLE mutes (
    muter_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    muted_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- NULL: until unmuted. Reads hide while `until IS NULL OR until > now()`; the sweep deletes
    -- a passed mute and writes its end into the log.
    until timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (muter_id, muted_id),
    CHECK (muter_id <> muted_id)
);
CREATE INDEX mutes_muted_idx ON mutes (muted_id, muter_id);
-- The sweep's walk: timed mutes by their end.
CREATE INDEX mutes_until_idx ON mutes (until) WHERE until IS NOT NULL;
