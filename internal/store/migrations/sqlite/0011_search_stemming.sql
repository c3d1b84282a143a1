-- Optional stemming of search words (AICHAT_SEARCH_STEMMING, package
-- search). Whether words were stemmed is part of an index version, like
-- its key: switching the setting starts a new version with the same key,
-- rebuilt in the background as after a key rotation. So a key may now
-- have several versions (the setting switched on, then off again): its
-- id is no longer unique. A key rotation still never goes back to a key
-- used before (package search checks). SQLite cannot drop a UNIQUE
-- constraint: the three small tables are made again, those referring to
-- search_keys dropped first so no reference is ever left dangling.
CREATE TABLE search_keys_copy AS SELECT * FROM search_keys;
CREATE TABLE search_index_copy AS SELECT * FROM search_index;
CREATE TABLE search_rebuilds_copy AS SELECT * FROM search_rebuilds;
DROP TABLE search_rebuilds;
DROP TABLE search_index;
DROP TABLE search_keys;

CREATE TABLE search_keys (
    version     INTEGER PRIMARY KEY,
    key_id      TEXT NOT NULL,
    stemmed     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  DATETIME NOT NULL,
    retired_at  DATETIME
);
CREATE TABLE search_index (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    current_version  INTEGER NOT NULL REFERENCES search_keys (version)
);
CREATE TABLE search_rebuilds (
    version      INTEGER PRIMARY KEY REFERENCES search_keys (version),
    after_id     TEXT NOT NULL DEFAULT '',
    messages     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    started_at   DATETIME NOT NULL,
    finished_at  DATETIME
);

INSERT INTO search_keys (version, key_id, stemmed, created_at, retired_at)
    SELECT version, key_id, FALSE, created_at, retired_at FROM search_keys_copy;
INSERT INTO search_index (id, current_version)
    SELECT id, current_version FROM search_index_copy;
INSERT INTO search_rebuilds (version, after_id, messages, lease_owner, lease_until, started_at, finished_at)
    SELECT version, after_id, messages, lease_owner, lease_until, started_at, finished_at FROM search_rebuilds_copy;
DROP TABLE search_rebuilds_copy;
DROP TABLE search_index_copy;
DROP TABLE search_keys_copy;
