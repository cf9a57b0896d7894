-- Call log entries: message_type 'call', with their record as JSON in call_log:
-- {"call_id", "kind", "event", "duration_secs"?} (see docs/protocol.md, "Call log").
ALTER TABLE messages ADD COLUMN call_log TEXT;

-- Widen the CHECK on message_type (added with the column in 0004) to allow 'call'.
-- SQLite cannot change a CHECK in place; a column with its own CHECK can be dropped
-- (3.35+), so the column is rebuilt under a new name and renamed back. This keeps the
-- table, its rows, indexes, triggers and the foreign keys that point at it.
ALTER TABLE messages ADD COLUMN message_kind TEXT NOT NULL DEFAULT 'text'
    CHECK (message_kind IN ('text', 'attachment', 'call'));
UPDATE messages SET message_kind = message_type;
ALTER TABLE messages DROP COLUMN message_type;
ALTER TABLE messages RENAME COLUMN message_kind TO message_type;
