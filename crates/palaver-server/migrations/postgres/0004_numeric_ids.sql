-- Numbers for users and rooms in protocols whose ids are integers: SQLite's migration
-- 0011, with the TEXT columns in the "C" collation like every TEXT column (see
-- 0001_init.sql). kind is 'user' or 'room'; id the Palaver id; n the number, unique per
-- kind, never reused. Users are numbered in order, rooms at random below 2^53.
CREATE TABLE numeric_ids (
    kind TEXT COLLATE "C" NOT NULL,
    id   TEXT COLLATE "C" NOT NULL,
    n    BIGINT NOT NULL,
    PRIMARY KEY (kind, id),
    UNIQUE (kind, n)
);
