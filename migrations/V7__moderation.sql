-- Trust and safety (issue 20): moderators, where a role came from, and reports.

-- Every lock this migration takes is on `users` alone (and on the table it creates): a second
-- table locked in the same transaction could deadlock with a DbWriter batch that takes them the
-- other way round (a draft of this migration did, in tests/migrations.rs, when `reports.post_id`
-- referenced `posts`).

-- A moderator works the report queue; an admin also suspends accounts and grants roles. The
-- wider check is added NOT VALID, and not validated: every existing row passed the narrower
-- one, and validating here would scan `users` under this migration's exclusive lock.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('user', 'moderator', 'admin')) NOT VALID;

-- Where a role came from: `config` (ADMIN_SUBS, ADMIN_EMAILS, MODERATOR_SUBS, MODERATOR_EMAILS,
-- or ADMIN_HANDLES under dev login) follows configuration at every sign-in and refresh;
-- `command_line` and `admin` stay until changed the same way. NULL for a plain user.
ALTER TABLE users ADD COLUMN role_source TEXT;
ALTER TABLE users ADD CONSTRAINT users_role_source_check CHECK (role_source IN ('config', 'command_line', 'admin')) NOT VALID;
-- Every admin so far was made by ADMIN_HANDLES, by name: from now on configuration must name
-- them by Google `sub` or verified e-mail (or they are dev accounts under dev login), or they
-- lose the role at their next refresh. That is the point: a squatted handle is demoted.
UPDATE users SET role_source = 'config' WHERE role = 'admin';

-- Reports of a post or a user, for moderators. The reported post's text is kept as it was
-- reported (the post may be removed later); `post_id` is a plain number, not a reference to
-- `posts` (see the top: no second table locked), and a report outlives its post.
CREATE TABLE reports (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reporter_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    target_user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id        BIGINT,
    post_body      TEXT,
    reason         TEXT NOT NULL CHECK (reason IN ('spam', 'abuse', 'illegal', 'other')),
    comment        TEXT NOT NULL DEFAULT '' CHECK (char_length(comment) <= 1000),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    resolved_at    TIMESTAMPTZ,
    resolved_by    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    action         TEXT CHECK (action IN ('dismiss', 'remove_post', 'suspend')),
    CHECK ((resolved_at IS NULL) = (action IS NULL))
);
-- One open report per reporter and target (a repeat answers the open one): nobody floods the
-- queue with copies.
CREATE UNIQUE INDEX reports_open_once_idx ON reports (reporter_id, target_user_id, COALESCE(post_id, 0))
    WHERE resolved_at IS NULL;
-- The queue (oldest first) and the resolved list (newest first).
CREATE INDEX reports_open_idx ON reports (id) WHERE resolved_at IS NULL;
CREATE INDEX reports_resolved_idx ON reports (id) WHERE resolved_at IS NOT NULL;
