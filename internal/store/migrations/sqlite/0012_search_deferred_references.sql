-- The search index's references to chats and messages are checked when
-- the transaction commits (DEFERRABLE INITIALLY DEFERRED), not by each
-- statement. SQLite copies every page a multi-row statement touches into
-- a statement journal whenever that statement may fail half-way; an
-- immediate reference makes every index insert such a statement (13 % of
-- the index's CPU). Deleting a chat or message still removes its rows at
-- once (ON DELETE CASCADE is not deferred), and a message deleted before
-- its tokens were written still fails the transaction (package search
-- then writes the others without it). SQLite cannot change a reference:
-- both tables are made again.
CREATE TABLE message_tokens_new (
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    key_version  INTEGER NOT NULL,
    token        INTEGER NOT NULL,
    message_id   TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    PRIMARY KEY (chat_id, key_version, token, message_id)
) WITHOUT ROWID;
INSERT INTO message_tokens_new (chat_id, key_version, token, message_id)
    SELECT chat_id, key_version, token, message_id FROM message_tokens;
DROP TABLE message_tokens;
ALTER TABLE message_tokens_new RENAME TO message_tokens;
CREATE INDEX message_tokens_message ON message_tokens (message_id);

CREATE TABLE message_token_counts_new (
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED,
    key_version  INTEGER NOT NULL,
    token        INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (chat_id, key_version, token)
) WITHOUT ROWID;
INSERT INTO message_token_counts_new (chat_id, key_version, token, n)
    SELECT chat_id, key_version, token, n FROM message_token_counts;
DROP TABLE message_token_counts;
ALTER TABLE message_token_counts_new RENAME TO message_token_counts;
