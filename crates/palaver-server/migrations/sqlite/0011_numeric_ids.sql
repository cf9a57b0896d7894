-- Numbers for users and rooms in protocols whose ids are integers (seed 003's signaling
-- envelope at /compat/signaling/, docs/signaling-compat.md). kind is 'user' or 'room';
-- id the Palaver id (a UUID); n the number, unique per kind, never reused (rows stay when
-- the user or room is deleted). Users are numbered in order (1, 2, ...), rooms at random
-- below 2^53, so that a room's number, which admits whoever knows it, is not guessable
-- from another's.
CREATE TABLE numeric_ids (
    kind TEXT NOT NULL,
    id   TEXT NOT NULL,
    n    INTEGER NOT NULL,
    PRIMARY KEY (kind, id),
    UNIQUE (kind, n)
) STRICT, WITHOUT ROWID;
