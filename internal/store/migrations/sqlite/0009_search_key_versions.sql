-- Search index key rotation (`aichat keys rotate --index`, package search).
-- Every index row records the version of the index key that produced it,
-- so a rebuild can move rows to a new key while searches ask for both.

-- The index keys the database has seen, by version (never the secret:
-- only the key's id in secrets.json or AICHAT_INDEX_KEYS). Version 1 is
-- written by the first start after this migration with the key in use,
-- which produced every row before it. A version is retired once no row
-- uses it: its key may then be removed.
CREATE TABLE search_keys (
    version     INTEGER PRIMARY KEY,
    key_id      TEXT NOT NULL UNIQUE,
    created_at  DATETIME NOT NULL,
    retired_at  DATETIME
);

-- One row: the version new index rows are written with. Writers read it
-- in their transaction; a rotation changes it.
CREATE TABLE search_index (
    id               INTEGER PRIMARY KEY CHECK (id = 1),
    current_version  INTEGER NOT NULL REFERENCES search_keys (version)
);

-- A rebuild to a version: how far it got (messages are walked in id
-- order; after_id is the last one done), and which instance holds it
-- (lease_until in Unix milliseconds; another instance takes it over once
-- it has passed).
CREATE TABLE search_rebuilds (
    version      INTEGER PRIMARY KEY REFERENCES search_keys (version),
    after_id     TEXT NOT NULL DEFAULT '',
    messages     INTEGER NOT NULL DEFAULT 0,
    lease_owner  TEXT,
    lease_until  INTEGER NOT NULL DEFAULT 0,
    started_at   DATETIME NOT NULL,
    finished_at  DATETIME
);

-- The version joins the primary key after the chat, so a search walks
-- (chat, version, token) in message order as before. SQLite cannot change
-- a primary key: the table is rebuilt, every existing row as version 1.
CREATE TABLE message_tokens_new (
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    key_version  INTEGER NOT NULL,
    token        INTEGER NOT NULL,
    message_id   TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (chat_id, key_version, token, message_id)
) WITHOUT ROWID;
INSERT INTO message_tokens_new (chat_id, key_version, token, message_id)
    SELECT chat_id, 1, token, message_id FROM message_tokens;
DROP TABLE message_tokens;
ALTER TABLE message_tokens_new RENAME TO message_tokens;
CREATE INDEX message_tokens_message ON message_tokens (message_id);
