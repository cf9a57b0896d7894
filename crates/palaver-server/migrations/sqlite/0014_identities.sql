-- Sign-in identities at OpenID Connect providers and GitHub (docs/oidc.md). One row per
-- (provider, subject): provider is the configured id (`[[auth.oidc]] id`) or `github`;
-- subject the provider's stable user id (the ID token's `sub`, GitHub's numeric user id).
-- email: the provider's verified e-mail when the identity was linked (informative only).
CREATE TABLE identities (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    provider   TEXT NOT NULL,
    subject    TEXT NOT NULL,
    email      TEXT,
    created_at TEXT NOT NULL,
    UNIQUE (provider, subject)
) STRICT;
CREATE INDEX identities_user ON identities(user_id);

-- Sign-in flows in progress and pending links, kept only as the SHA-256 of their token;
-- taken (deleted) by their first use, worthless after expires_at (RFC 3339 UTC). kind:
-- 'flow' (state, nonce, PKCE verifier of one authorization request) or 'link' (an
-- identity waiting for the owner of the matching account to confirm). payload: JSON.
-- Ephemeral: `palaver export` leaves this table out.
CREATE TABLE oidc_tickets (
    ticket_hash BLOB PRIMARY KEY,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL,
    expires_at  TEXT NOT NULL
) STRICT, WITHOUT ROWID;
CREATE INDEX oidc_tickets_expiry ON oidc_tickets(expires_at);
