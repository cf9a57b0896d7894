-- Mentions (issue 20, item 2): `@username`, `@room`, `@here` in messages.
--
-- `messages.mentions`: what the content mentions as resolved at send or last edit, JSON
-- `{"user_ids": [...], "room": bool, "here": bool}`, NULL when nobody.
-- `rooms.room_mentions`: who may use `@room` there: NULL or 'members' (anyone), 'admins'.
-- `message_mentions`: one row per user a message notified (by name, or as a member
-- reached by `@room` / `@here`), with the message's seq, for the per-room mention counts
-- (rows with seq > the member's last_read_seq, of messages not deleted).
ALTER TABLE messages ADD COLUMN mentions TEXT;
ALTER TABLE rooms ADD COLUMN room_mentions TEXT CHECK (room_mentions IN ('members', 'admins'));

CREATE TABLE message_mentions (
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_id    TEXT NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (message_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX message_mentions_user ON message_mentions(user_id, room_id, seq);
