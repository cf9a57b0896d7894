-- Palaver schema for PostgreSQL: the SQLite schema after its migrations 0001-0008
-- (migrations/sqlite/), in one step. Same tables, columns (in the same order), types as
-- close as PostgreSQL allows, constraints, uniqueness, indexes and cascades, so that rows
-- compare 1:1 across the two backends.
--
-- - IDs are UUIDv7 strings and times RFC 3339 UTC strings, TEXT as on SQLite (their
--   lexicographic order is time order).
-- - Every TEXT column is COLLATE "C": compared and sorted byte by byte, as SQLite's
--   BINARY collation does, whatever the database's default collation; the store's
--   ordering, paging cursors and prefix ranges rely on it.
-- - INTEGER is BIGINT, BLOB is BYTEA, SQLite's 0/1 booleans do not occur in columns.
-- - SQLite's `messages_take_seq` trigger (0006) has no counterpart: the store takes a
--   room's seqs itself, `UPDATE rooms SET last_seq = ...` under the room's row lock in
--   the transaction that stores the change (see src/store/postgres/).
-- - Unique constraints are named, because the store maps a violation to the field it
--   names through the constraint name (users_username_key -> "username").

CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    username      TEXT COLLATE "C" NOT NULL CONSTRAINT users_username_key UNIQUE,
    email         TEXT COLLATE "C" NOT NULL CONSTRAINT users_email_key UNIQUE,
    password_hash TEXT COLLATE "C" NOT NULL,
    created_at    TEXT COLLATE "C" NOT NULL,
    role          TEXT COLLATE "C" NOT NULL DEFAULT 'user'
                  CHECK (role IN ('user', 'moderator', 'admin')),
    display_name  TEXT COLLATE "C",
    first_name    TEXT COLLATE "C",
    last_name     TEXT COLLATE "C",
    bio           TEXT COLLATE "C",
    location      TEXT COLLATE "C",
    website       TEXT COLLATE "C",
    avatar_url    TEXT COLLATE "C",
    -- A JSON object of client settings, opaque to the server.
    settings      TEXT COLLATE "C" NOT NULL DEFAULT '{}',
    updated_at    TEXT COLLATE "C",
    disabled_at   TEXT COLLATE "C",
    -- Deleted accounts keep a scrubbed row so their messages stay attributed.
    deleted_at    TEXT COLLATE "C"
);

-- One row per login; the refresh token is kept only as its SHA-256 hash. Refresh
-- rotation keeps the hash that was current before the last rotation, and when it was
-- rotated, to tell a concurrent refresh (inside the grace window) from a replay.
CREATE TABLE sessions (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    user_id             TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    refresh_token_hash  BYTEA NOT NULL CONSTRAINT sessions_refresh_token_hash_key UNIQUE,
    device_name         TEXT COLLATE "C",
    ip                  TEXT COLLATE "C",
    created_at          TEXT COLLATE "C" NOT NULL,
    last_used_at        TEXT COLLATE "C" NOT NULL,
    expires_at          TEXT COLLATE "C" NOT NULL,
    revoked_at          TEXT COLLATE "C",
    previous_token_hash BYTEA,
    rotated_at          TEXT COLLATE "C",
    revoked_reason      TEXT COLLATE "C"
);
CREATE INDEX sessions_user ON sessions(user_id);
CREATE INDEX sessions_previous_token ON sessions(previous_token_hash)
    WHERE previous_token_hash IS NOT NULL;

-- Every refresh token a session has spent, so that presenting any of them again (not
-- only the last one) is detected as reuse and revokes the session (RFC 9700 §4.14.2).
CREATE TABLE spent_refresh_tokens (
    token_hash BYTEA PRIMARY KEY,
    session_id TEXT COLLATE "C" NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    spent_at   TEXT COLLATE "C" NOT NULL
);
CREATE INDEX spent_refresh_tokens_session ON spent_refresh_tokens(session_id, spent_at);

CREATE TABLE api_keys (
    id           TEXT COLLATE "C" PRIMARY KEY,
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT COLLATE "C" NOT NULL,
    -- SHA-256 of the secret part of the key.
    secret_hash  BYTEA NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL,
    expires_at   TEXT COLLATE "C",
    last_used_at TEXT COLLATE "C",
    revoked_at   TEXT COLLATE "C"
);
CREATE INDEX api_keys_user ON api_keys(user_id);

CREATE TABLE blocks (
    blocker_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blocked_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX blocks_blocked ON blocks(blocked_id);

-- last_seq is the room's change counter: every new message and every change to one
-- (edit, deletion, reaction) takes the next value, under this row's lock, in the
-- transaction that stores it, so seqs are gap-free and in commit order.
-- dm_key: for DMs, the two user ids, sorted and joined by ':', so there is one DM per pair.
CREATE TABLE rooms (
    id         TEXT COLLATE "C" PRIMARY KEY,
    name       TEXT COLLATE "C" NOT NULL,
    topic      TEXT COLLATE "C",
    visibility TEXT COLLATE "C" NOT NULL CHECK (visibility IN ('public', 'private')),
    created_by TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at TEXT COLLATE "C" NOT NULL,
    last_seq   BIGINT NOT NULL DEFAULT 0,
    kind       TEXT COLLATE "C" NOT NULL DEFAULT 'channel' CHECK (kind IN ('channel', 'dm')),
    dm_key     TEXT COLLATE "C",
    updated_at TEXT COLLATE "C"
);
CREATE INDEX rooms_directory ON rooms(visibility, created_at);
CREATE UNIQUE INDEX rooms_dm ON rooms(dm_key) WHERE dm_key IS NOT NULL;

-- last_read_seq: the highest seq the member has read; moves forward only.
CREATE TABLE room_members (
    room_id       TEXT COLLATE "C" NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id       TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role          TEXT COLLATE "C" NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at     TEXT COLLATE "C" NOT NULL,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX room_members_user ON room_members(user_id);

CREATE TABLE room_bans (
    room_id    TEXT COLLATE "C" NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    banned_by  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Status 'revoked': withdrawn by the inviter or a room admin, or invalidated when the
-- inviter left, was kicked or banned (or their account went away).
CREATE TABLE invitations (
    id           TEXT COLLATE "C" PRIMARY KEY,
    room_id      TEXT COLLATE "C" NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    inviter_id   TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    invitee_id   TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   TEXT COLLATE "C" NOT NULL,
    responded_at TEXT COLLATE "C",
    status       TEXT COLLATE "C" NOT NULL DEFAULT 'pending'
                 CHECK (status IN ('pending', 'accepted', 'declined', 'revoked'))
);
CREATE UNIQUE INDEX invitations_pending ON invitations(room_id, invitee_id)
    WHERE status = 'pending';
CREATE INDEX invitations_invitee ON invitations(invitee_id, status);
CREATE INDEX invitations_inviter ON invitations(room_id, inviter_id) WHERE status = 'pending';

CREATE TABLE attachments (
    id           TEXT COLLATE "C" PRIMARY KEY,
    uploader_id  TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    filename     TEXT COLLATE "C" NOT NULL,
    content_type TEXT COLLATE "C" NOT NULL,
    size         BIGINT NOT NULL,
    -- Where the bytes are, inside the configured attachment store.
    storage_key  TEXT COLLATE "C" NOT NULL,
    created_at   TEXT COLLATE "C" NOT NULL
);

-- Deleted messages stay as tombstones: content emptied, deleted_at set. updated_seq is
-- the seq of the message's latest change (created, edited, deleted, reacted to), so a
-- client that saw seq N resumes with the messages whose updated_seq > N, in that order
-- (nullable as on SQLite, where it was added by ALTER TABLE; the store always sets it).
-- call_log: for message_type 'call', the record as JSON: {"call_id", "kind", "event",
-- "duration_secs"?} (see docs/protocol.md, "Call log").
CREATE TABLE messages (
    id            TEXT COLLATE "C" PRIMARY KEY,
    room_id       TEXT COLLATE "C" NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq           BIGINT NOT NULL,
    sender_id     TEXT COLLATE "C" NOT NULL REFERENCES users(id),
    content       TEXT COLLATE "C" NOT NULL,
    client_id     TEXT COLLATE "C",
    created_at    TEXT COLLATE "C" NOT NULL,
    reply_to      TEXT COLLATE "C",
    attachment_id TEXT COLLATE "C" REFERENCES attachments(id),
    edited_at     TEXT COLLATE "C",
    deleted_at    TEXT COLLATE "C",
    updated_seq   BIGINT,
    call_log      TEXT COLLATE "C",
    message_type  TEXT COLLATE "C" NOT NULL DEFAULT 'text'
                  CHECK (message_type IN ('text', 'attachment', 'call')),
    CONSTRAINT messages_room_id_seq_key UNIQUE (room_id, seq)
);
-- Idempotent sends: one message per (room, sender, client_id).
CREATE UNIQUE INDEX messages_idempotency ON messages(room_id, sender_id, client_id)
    WHERE client_id IS NOT NULL;
CREATE INDEX messages_attachment ON messages(attachment_id) WHERE attachment_id IS NOT NULL;
CREATE INDEX messages_changes ON messages(room_id, updated_seq);

-- Every earlier version of an edited message, oldest first. written_at: when this
-- version was written (the message's creation or a previous edit).
CREATE TABLE message_edits (
    message_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    version    BIGINT NOT NULL,
    content    TEXT COLLATE "C" NOT NULL,
    written_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (message_id, version)
);

CREATE TABLE reactions (
    message_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    emoji      TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
);

-- A member's report of a message, for the server's moderators and admins. One per
-- reporter and message. `content` is the message as it was when reported (the author
-- may edit or delete it afterwards).
CREATE TABLE message_reports (
    id          TEXT COLLATE "C" PRIMARY KEY,
    room_id     TEXT COLLATE "C" NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    message_id  TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    reporter_id TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason      TEXT COLLATE "C" NOT NULL,
    content     TEXT COLLATE "C" NOT NULL,
    status      TEXT COLLATE "C" NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    created_at  TEXT COLLATE "C" NOT NULL,
    resolved_by TEXT COLLATE "C" REFERENCES users(id),
    resolved_at TEXT COLLATE "C",
    CONSTRAINT message_reports_message_id_reporter_id_key UNIQUE (message_id, reporter_id)
);
CREATE INDEX message_reports_status ON message_reports(status, id);
