-- E-mail: SQLite's migration 0013, with the TEXT columns in the "C" collation like every
-- TEXT column (see 0001_init.sql). When an account's address was verified, and the
-- single-use tokens of the links Palaver mails. A token is kept only as its SHA-256 hash;
-- purpose is 'verify', 'change_email' or 'reset'; address is where the link was sent. A
-- token is spent by setting used_at (in the one statement that takes it), and is
-- worthless after expires_at (RFC 3339 UTC). Ephemeral: `palaver export` leaves the
-- tokens out, not email_verified_at.
ALTER TABLE users ADD COLUMN email_verified_at TEXT COLLATE "C";
CREATE TABLE email_tokens (
    token_hash BYTEA PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT COLLATE "C" NOT NULL,
    address    TEXT COLLATE "C" NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL,
    expires_at TEXT COLLATE "C" NOT NULL,
    used_at    TEXT COLLATE "C"
);
CREATE INDEX email_tokens_user ON email_tokens(user_id, purpose);
