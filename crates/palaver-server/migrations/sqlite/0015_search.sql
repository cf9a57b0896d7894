-- Full-text search over messages (issue 20): an FTS5 index of each message's words as
-- folded by `search::index_text` (so that SQLite and PostgreSQL match alike).
--
-- The index is derived data: never exported (store/transfer.rs), rebuilt from the
-- messages when `search_index_state.version` is below the version the code builds
-- (after this migration, after an import, after a change of the folding).
--
-- `message_search_docs` gives each indexed message a stable integer id (an INTEGER
-- PRIMARY KEY survives VACUUM, which may renumber the implicit rowids of `messages`), the
-- FTS5 rowid of its words. Deleting a message (or its room) deletes its doc row, whose
-- trigger deletes the words.
CREATE TABLE message_search_docs (
    doc_id     INTEGER PRIMARY KEY,
    message_id TEXT NOT NULL UNIQUE REFERENCES messages(id) ON DELETE CASCADE
) STRICT;

CREATE VIRTUAL TABLE message_search USING fts5(
    words,
    content = '',
    contentless_delete = 1,
    tokenize = 'unicode61 remove_diacritics 0'
);

CREATE TRIGGER message_search_docs_deleted AFTER DELETE ON message_search_docs
BEGIN
    DELETE FROM message_search WHERE rowid = old.doc_id;
END;

-- One row: the index version the messages were last indexed with (0: never).
CREATE TABLE search_index_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
) STRICT;
INSERT INTO search_index_state (id, version) VALUES (1, 0);
