-- Palaver schema, version 1: users, sessions, rooms, members, messages.
-- IDs are UUIDv7 strings; times are RFC 3339 UTC strings (lexicographic order = time order).

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    email         TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at    TEXT NOT NULL
) STRICT;

-- One row per login; the refresh token is kept only as its SHA-256 hash.
CREATE TABLE sessions (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_token_hash BLOB NOT NULL UNIQUE,
    device_name        TEXT,
    ip                 TEXT,
    created_at         TEXT NOT NULL,
    last_used_at       TEXT NOT NULL,
    expires_at         TEXT NOT NULL,
    revoked_at         TEXT
) STRICT;
CREATE INDEX sessions_user ON sessions(user_id);

-- last_seq is the room's message counter: taken and bumped inside the transaction that
-- inserts a message, so seqs are gap-free and in commit order.
CREATE TABLE rooms (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    topic      TEXT,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    created_by TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    last_seq   INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX rooms_directory ON rooms(visibility, created_at);

CREATE TABLE room_members (
    room_id   TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role      TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX room_members_user ON room_members(user_id);

CREATE TABLE messages (
    id         TEXT PRIMARY KEY,
    room_id    TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    sender_id  TEXT NOT NULL REFERENCES users(id),
    content    TEXT NOT NULL,
    client_id  TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (room_id, seq)
) STRICT;
-- Idempotent sends: one message per (room, sender, client_id).
CREATE UNIQUE INDEX messages_idempotency ON messages(room_id, sender_id, client_id)
    WHERE client_id IS NOT NULL;
