-- Notifications (docs/notifications.md): per-member settings, Web Push subscriptions and
-- the server's VAPID key.

-- A member's notification settings for one room; no row = level 'all', not muted. Goes
-- with the membership (leaving, a kick, a ban, account or room deletion remove it).
-- level: 'all' | 'mentions' | 'none'. muted_until: RFC 3339 UTC, or NULL (not muted).
CREATE TABLE notification_settings (
    room_id     TEXT NOT NULL,
    user_id     TEXT NOT NULL,
    level       TEXT NOT NULL CHECK (level IN ('all', 'mentions', 'none')),
    muted_until TEXT,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (room_id, user_id),
    FOREIGN KEY (room_id, user_id) REFERENCES room_members(room_id, user_id) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;

-- One browser (device) subscribed to Web Push (RFC 8030): the push service's endpoint
-- URL and the keys of RFC 8291 (p256dh: the browser's P-256 public key, 65 bytes
-- uncompressed; auth: 16 bytes; both base64url without padding, as browsers give them).
-- An endpoint belongs to one account: subscribing it again (from any account) replaces
-- the row. session_id: the login session that subscribed (NULL with an API key); its
-- subscriptions get nothing once it is revoked or expired.
CREATE TABLE push_subscriptions (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    session_id TEXT REFERENCES sessions(id) ON DELETE CASCADE,
    endpoint   TEXT NOT NULL UNIQUE,
    p256dh     TEXT NOT NULL,
    auth       TEXT NOT NULL,
    user_agent TEXT,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id, created_at);

-- The server's VAPID key pair (RFC 8292), created once by the first node that needs it
-- and shared by every node on this database (one row, id = 1). private_key: the P-256
-- scalar, 32 bytes; public_key: the uncompressed point, 65 bytes. A secret: it is in
-- `palaver export` files (which are owner-only), because browsers' subscriptions are
-- bound to the public key and would all stop working with a new one.
CREATE TABLE vapid_keys (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    private_key BLOB NOT NULL,
    public_key  BLOB NOT NULL,
    created_at  TEXT NOT NULL
) STRICT;
