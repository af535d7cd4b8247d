-- Trust and safety (issue 20): moderators, where a role came from, and reports.

-- A moderator works the report queue; an admin also suspends accounts and grants roles. The
-- constraint is added NOT VALID and validated apart: no long lock on `users`.
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ('user', 'moderator', 'admin')) NOT VALID;
ALTER TABLE users VALIDATE CONSTRAINT users_role_check;

-- Where a role came from: `config` (ADMIN_SUBS, ADMIN_EMAILS, MODERATOR_SUBS, MODERATOR_EMAILS,
-- or ADMIN_HANDLES under dev login) follows configuration at every sign-in and refresh;
-- `command_line` and `admin` stay until changed the same way. NULL for a plain user.
ALTER TABLE users ADD COLUMN role_source TEXT
    CHECK (role_source IN ('config', 'command_line', 'admin'));
-- Every admin so far was made by ADMIN_HANDLES, by name: from now on configuration must name
-- them by Google `sub` or verified e-mail (or they are dev accounts under dev login), or they
-- lose the role at their next refresh. That is the point: a squatted handle is demoted.
UPDATE users SET role_source = 'config' WHERE role = 'admin';

-- Reports of a post or a user, for moderators. The reported post's text is kept as it was
-- reported (the post may be edited away or removed later); the report stays when its post is.
CREATE TABLE reports (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    reporter_id    BIGINT REFERENCES users (id) ON DELETE SET NULL,
    target_user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    post_id        BIGINT REFERENCES posts (id) ON DELETE SET NULL,
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
