-- SignalR resume tickets: where a connection was in each of its rooms when it ended, so
-- that the client's next connection (on any node, or after a restart) replays what it
-- missed. The ticket itself is kept only as its SHA-256 hash; a ticket is taken (deleted)
-- by its first use, and is worthless after expires_at (RFC 3339 UTC). positions: a JSON
-- object, room id -> the last seq delivered in that room. Ephemeral: `palaver export`
-- leaves this table out.
CREATE TABLE resume_tickets (
    ticket_hash BLOB PRIMARY KEY,
    user_id     TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hub         TEXT NOT NULL,
    positions   TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX resume_tickets_expiry ON resume_tickets(expires_at);
