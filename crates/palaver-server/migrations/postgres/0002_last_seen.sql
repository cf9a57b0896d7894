-- Presence's last seen time: SQLite's migration 0009, with the column in the "C" collation
-- like every TEXT column (see 0001_init.sql). When the user's last connection closed,
-- RFC 3339 UTC; NULL until then, and again once the account is deleted.
ALTER TABLE users ADD COLUMN last_seen_at TEXT COLLATE "C";
