-- Call log entries (message_type 'call') carry their record as JSON:
-- {"call_id", "kind", "event", "duration_secs"?} (see docs/protocol.md, "Call log").
ALTER TABLE messages ADD COLUMN call_log TEXT;
