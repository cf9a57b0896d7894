-- Two-factor codes (RFC 6238 TOTP) for password logins. secret: the shared secret (20
-- random bytes) the authenticator app holds too; enabled_at is NULL while the user has
-- started the setup but not yet confirmed it with a code; last_step: the last 30-second
-- time step whose code was accepted, so that a code is never accepted twice (RFC 6238
-- §5.2). recovery_codes: the SHA-256 hashes of the account's single-use recovery codes.
-- An account's deletion removes both (delete_user).
CREATE TABLE two_factor (
    user_id    TEXT PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     BLOB NOT NULL,
    enabled_at TEXT,
    last_step  INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
) STRICT;
CREATE TABLE recovery_codes (
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_at   TEXT,
    PRIMARY KEY (user_id, code_hash)
) STRICT, WITHOUT ROWID;
