-- Refresh-token families (one per sign-in) take their ids from a sequence.
CREATE SEQUENCE refresh_family_seq;
CREATE INDEX refresh_tokens_revoked_idx ON refresh_tokens (revoked_at) WHERE revoked_at IS NOT NULL;
