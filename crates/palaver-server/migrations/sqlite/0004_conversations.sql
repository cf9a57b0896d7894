-- The full conversation model: DMs, bans, invitations, read markers, message edits,
-- tombstones, replies, reactions, attachments.

ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'channel' CHECK (kind IN ('channel', 'dm'));
-- For DMs: the two user ids, sorted and joined by ':', so there is one DM per pair.
ALTER TABLE rooms ADD COLUMN dm_key TEXT;
CREATE UNIQUE INDEX rooms_dm ON rooms(dm_key) WHERE dm_key IS NOT NULL;
ALTER TABLE rooms ADD COLUMN updated_at TEXT;

-- The highest seq the member has read; moves forward only.
ALTER TABLE room_members ADD COLUMN last_read_seq INTEGER NOT NULL DEFAULT 0;

CREATE TABLE room_bans (
    room_id    TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    banned_by  TEXT NOT NULL REFERENCES users(id),
    created_at TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE invitations (
    id           TEXT PRIMARY KEY,
    room_id      TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    inviter_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    invitee_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'accepted', 'declined')),
    created_at   TEXT NOT NULL,
    responded_at TEXT
) STRICT;
CREATE UNIQUE INDEX invitations_pending ON invitations(room_id, invitee_id)
    WHERE status = 'pending';
CREATE INDEX invitations_invitee ON invitations(invitee_id, status);

CREATE TABLE attachments (
    id           TEXT PRIMARY KEY,
    uploader_id  TEXT NOT NULL REFERENCES users(id),
    filename     TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size         INTEGER NOT NULL,
    -- Where the bytes are, inside the configured attachment store.
    storage_key  TEXT NOT NULL,
    created_at   TEXT NOT NULL
) STRICT;

ALTER TABLE messages ADD COLUMN message_type TEXT NOT NULL DEFAULT 'text'
    CHECK (message_type IN ('text', 'attachment'));
ALTER TABLE messages ADD COLUMN reply_to TEXT;
ALTER TABLE messages ADD COLUMN attachment_id TEXT REFERENCES attachments(id);
ALTER TABLE messages ADD COLUMN edited_at TEXT;
-- Deleted messages stay as tombstones: content emptied, deleted_at set.
ALTER TABLE messages ADD COLUMN deleted_at TEXT;
CREATE INDEX messages_attachment ON messages(attachment_id) WHERE attachment_id IS NOT NULL;

-- Every earlier version of an edited message, oldest first.
CREATE TABLE message_edits (
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    version    INTEGER NOT NULL,
    content    TEXT NOT NULL,
    -- When this version was written (the message's creation or a previous edit).
    written_at TEXT NOT NULL,
    PRIMARY KEY (message_id, version)
) STRICT, WITHOUT ROWID;

CREATE TABLE reactions (
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    emoji      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (message_id, emoji, user_id)
) STRICT, WITHOUT ROWID;
