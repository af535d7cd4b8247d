-- A like or follow repeated by the same person soon after makes no new notification. Each row
-- says when `actor_id` last notified `user_id` of `kind` about `post_id` (0: no post); the
-- DbWriter's purge drops rows older than the repeat window.
CREATE TABLE notification_repeats (
    user_id     BIGINT NOT NULL,
    actor_id    BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    post_id     BIGINT NOT NULL DEFAULT 0,
    notified_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, actor_id, kind, post_id)
);
CREATE INDEX notification_repeats_at_idx ON notification_repeats (notified_at);
