-- How many index rows each (chat, key version, value) has, kept in the
-- transaction that writes or deletes the rows (package search). A search
-- walks the rarest of its values in each chat and skips a chat at once
-- when one of them has no row. It adds nothing to what the index shows:
-- the same counts are a GROUP BY over message_tokens.
CREATE TABLE message_token_counts (
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    key_version  INTEGER NOT NULL,
    token        INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (chat_id, key_version, token)
) WITHOUT ROWID;

INSERT INTO message_token_counts (chat_id, key_version, token, n)
    SELECT chat_id, key_version, token, COUNT(*) FROM message_tokens
    GROUP BY chat_id, key_version, token;
