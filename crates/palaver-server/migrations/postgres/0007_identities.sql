-- Sign-in identities and sign-in flows: SQLite's migration 0014, with the TEXT columns in
-- the "C" collation like every TEXT column (see 0001_init.sql). See docs/oidc.md.
CREATE TABLE identities (
    id         TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider   TEXT COLLATE "C" NOT NULL,
    subject    TEXT COLLATE "C" NOT NULL,
    email      TEXT COLLATE "C",
    created_at TEXT COLLATE "C" NOT NULL,
    CONSTRAINT identities_provider_subject_key UNIQUE (provider, subject)
);
CREATE INDEX identities_user ON identities(user_id);

-- Ephemeral: `palaver export` leaves this table out.
CREATE TABLE oidc_tickets (
    ticket_hash BYTEA PRIMARY KEY,
    kind        TEXT COLLATE "C" NOT NULL,
    payload     TEXT COLLATE "C" NOT NULL,
    expires_at  TEXT COLLATE "C" NOT NULL
);
CREATE INDEX oidc_tickets_expiry ON oidc_tickets(expires_at);
