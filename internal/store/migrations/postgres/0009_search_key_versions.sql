-- Search index key rotation (`aichat keys rotate --index`, package search).
-- Every index row records the version of the index key that produced it,
-- so a rebuild can move rows to a new key while searches ask for both.

-- The index keys the database has seen, by version (never the secret:
-- only the key's id in secrets.json or AICHAT_INDEX_KEYS). Version 1 is
-- written by the first start after this migration with the key in use,
-- which produced every row before it. A version is retired once no row
-- uses it: its key may then be removed.
CREATE TABLE search_keys (
    version     integer PRIMARY KEY,
    key_id      text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL,
    retired_at  timestamptz
);

-- One row: the version new index rows are written with. Writers read it
-- FOR SHARE in their transaction; a rotation updates it, so it waits for
-- writers that read the old version and every later writer sees the new.
CREATE TABLE search_index (
    id               integer PRIMARY KEY CHECK (id = 1),
    current_version  integer NOT NULL REFERENCES search_keys (version)
);

-- A rebuild to a version: how far it got (messages are walked in id
-- order; after_id is the last one done), and which instance holds it
-- (lease_until in Unix milliseconds; another instance takes it over once
-- it has passed).
CREATE TABLE search_rebuilds (
    version      integer PRIMARY KEY REFERENCES search_keys (version),
    after_id     text NOT NULL DEFAULT '',
    messages     bigint NOT NULL DEFAULT 0,
    lease_owner  text,
    lease_until  bigint NOT NULL DEFAULT 0,
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz
);

-- The version joins the primary key after the chat, so a search walks
-- (chat, version, token) in message order as before, index-only. Adding
-- the column with a constant default does not rewrite the table (existing
-- rows read as version 1); replacing the primary key builds its index
-- once, under this migration's lock (seconds per few million rows).
ALTER TABLE message_tokens ADD COLUMN key_version smallint NOT NULL DEFAULT 1;
ALTER TABLE message_tokens ALTER COLUMN key_version DROP DEFAULT;
ALTER TABLE message_tokens DROP CONSTRAINT message_tokens_pkey;
ALTER TABLE message_tokens ADD PRIMARY KEY (chat_id, key_version, token, message_id);
