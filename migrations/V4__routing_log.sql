-- The event log carries every routing change too, and is retained by id.

-- Each record's payload shape is versioned (actors/src/log_record.rs). A constant default:
-- no table rewrite, and the previous version's inserts get version 1.
ALTER TABLE events ADD COLUMN version SMALLINT NOT NULL DEFAULT 1;

-- Follow and unfollow are records of the log (kind 'route.follow', recipient_id = the
-- follower), so that every broker applies them in id order with the events they affect. No new
-- index: the follower's records are found through events_recipient_idx.

-- Retention by id: every event with id <= purged_through is gone, so a resume from below it
-- must resync; the purge job raises it (through the DbWriter) as it deletes.
CREATE TABLE event_retention (
    singleton      BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    purged_through BIGINT NOT NULL DEFAULT 0
);
INSERT INTO event_retention (singleton, purged_through) VALUES (true, 0);
