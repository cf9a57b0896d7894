-- Notifications: SQLite's migration 0016, with the TEXT columns in the "C" collation like
-- every TEXT column (see 0001_init.sql). See docs/notifications.md.
CREATE TABLE notification_settings (
    room_id     TEXT COLLATE "C" NOT NULL,
    user_id     TEXT COLLATE "C" NOT NULL,
    level       TEXT COLLATE "C" NOT NULL CHECK (level IN ('all', 'mentions', 'none')),
    muted_until TEXT COLLATE "C",
    updated_at  TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (room_id, user_id),
    FOREIGN KEY (room_id, user_id) REFERENCES room_members(room_id, user_id) ON DELETE CASCADE
);

CREATE TABLE push_subscriptions (
    id         TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT COLLATE "C" REFERENCES sessions(id) ON DELETE CASCADE,
    endpoint   TEXT COLLATE "C" NOT NULL CONSTRAINT push_subscriptions_endpoint_key UNIQUE,
    p256dh     TEXT COLLATE "C" NOT NULL,
    auth       TEXT COLLATE "C" NOT NULL,
    user_agent TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id, created_at);

CREATE TABLE vapid_keys (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    private_key BYTEA NOT NULL,
    public_key  BYTEA NOT NULL,
    created_at  TEXT COLLATE "C" NOT NULL
);
