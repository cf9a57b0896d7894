-- Every refresh token a session has spent, so that presenting any of them again (not
-- only the last one) is detected as reuse and revokes the session (RFC 9700 §4.14.2).
CREATE TABLE spent_refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    spent_at   TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX spent_refresh_tokens_session ON spent_refresh_tokens(session_id, spent_at);
