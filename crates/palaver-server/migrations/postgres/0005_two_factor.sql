-- Two-factor codes: SQLite's migration 0012, with the TEXT columns in the "C" collation
-- like every TEXT column (see 0001_init.sql). secret: the shared TOTP secret (RFC 6238);
-- enabled_at NULL while the setup is not confirmed; last_step: the last time step whose
-- code was accepted (no code twice, RFC 6238 §5.2); recovery_codes: SHA-256 hashes of the
-- single-use recovery codes.
CREATE TABLE two_factor (
    user_id    TEXT COLLATE "C" PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret     BYTEA NOT NULL,
    enabled_at TEXT COLLATE "C",
    last_step  BIGINT NOT NULL DEFAULT 0,
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE recovery_codes (
    user_id   TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash BYTEA NOT NULL,
    used_at   TEXT COLLATE "C",
    PRIMARY KEY (user_id, code_hash)
);
