-- The search index (package search): for each message, each distinct word
-- only as a 12-bit keyed hash under its chat's index key. No text, no
-- positions, no counts. The primary key is the B-tree searches use
-- (chat, token, newest message ids last: ids are UUIDv7).
CREATE TABLE message_tokens (
    chat_id     TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    token       INTEGER NOT NULL,
    message_id  TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    PRIMARY KEY (chat_id, token, message_id)
) WITHOUT ROWID;
CREATE INDEX message_tokens_message ON message_tokens (message_id);
