-- E-mail ([email], docs/email.md): when an account's address was verified, and the
-- single-use tokens of the links Palaver mails. A token is kept only as its SHA-256 hash;
-- purpose is 'verify' (prove the account's current address), 'change_email' (make
-- `address` the account's address) or 'reset' (set a new password); address is where the
-- link was sent. A token is spent by setting used_at (in the one statement that takes
-- it), and is worthless after expires_at (RFC 3339 UTC). Ephemeral: `palaver export`
-- leaves the tokens out (a moved install asks for new links), not email_verified_at.
ALTER TABLE users ADD COLUMN email_verified_at TEXT;
CREATE TABLE email_tokens (
    token_hash BLOB PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    address    TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at    TEXT
) STRICT, WITHOUT ROWID;
CREATE INDEX email_tokens_user ON email_tokens(user_id, purpose);
