-- Mentions (issue 20, item 2); see migrations/sqlite/0017_mentions.sql.
ALTER TABLE messages ADD COLUMN mentions TEXT COLLATE "C";
ALTER TABLE rooms ADD COLUMN room_mentions TEXT COLLATE "C"
    CHECK (room_mentions IN ('members', 'admins'));

CREATE TABLE message_mentions (
    message_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_id    TEXT COLLATE "C" NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq        BIGINT NOT NULL,
    PRIMARY KEY (message_id, user_id)
);
CREATE INDEX message_mentions_user ON message_mentions(user_id, room_id, seq);
