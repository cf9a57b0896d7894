-- Presence's last seen time (issue 15): when the user's last connection closed, RFC 3339
-- UTC; NULL until then, and again once the account is deleted. Kept in the database so it
-- survives restarts (and Redis losing its data, with several nodes).
ALTER TABLE users ADD COLUMN last_seen_at TEXT;
