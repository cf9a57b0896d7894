-- Accounts and access: roles, profiles, disabling and deletion, refresh rotation,
-- API keys, blocks.

ALTER TABLE users ADD COLUMN role TEXT NOT NULL DEFAULT 'user'
    CHECK (role IN ('user', 'moderator', 'admin'));
ALTER TABLE users ADD COLUMN display_name TEXT;
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
ALTER TABLE users ADD COLUMN bio TEXT;
ALTER TABLE users ADD COLUMN location TEXT;
ALTER TABLE users ADD COLUMN website TEXT;
ALTER TABLE users ADD COLUMN avatar_url TEXT;
-- A JSON object of client settings, opaque to the server.
ALTER TABLE users ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN updated_at TEXT;
ALTER TABLE users ADD COLUMN disabled_at TEXT;
-- Deleted accounts keep a scrubbed row so their messages stay attributed.
ALTER TABLE users ADD COLUMN deleted_at TEXT;

-- Refresh rotation: the hash that was current before the last rotation, and when it was
-- rotated, to tell a concurrent refresh (inside the grace window) from a replay.
ALTER TABLE sessions ADD COLUMN previous_token_hash BLOB;
ALTER TABLE sessions ADD COLUMN rotated_at TEXT;
ALTER TABLE sessions ADD COLUMN revoked_reason TEXT;
CREATE INDEX sessions_previous_token ON sessions(previous_token_hash)
    WHERE previous_token_hash IS NOT NULL;

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    -- SHA-256 of the secret part of the key.
    secret_hash  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    last_used_at TEXT,
    revoked_at   TEXT
) STRICT;
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE blocks (
    blocker_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX blocks_blocked ON blocks(blocked_id);
