-- Full-text search over messages (issue 20): a tsvector of each message's words as
-- folded by `search::index_text` (so that SQLite and PostgreSQL match alike), in the
-- `simple` configuration (no stemming, no stop words: the words are already folded).
--
-- The index is derived data: never exported (store/transfer.rs), rebuilt from the
-- messages when `search_index_state.version` is below the version the code builds.
CREATE TABLE message_search (
    message_id TEXT COLLATE "C" PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    words      tsvector NOT NULL
);
CREATE INDEX message_search_words ON message_search USING GIN (words);

CREATE TABLE search_index_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO search_index_state (id, version) VALUES (1, 0);
