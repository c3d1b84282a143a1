-- What an assistant answer cost and how it went; NULL for people's messages.
ALTER TABLE messages ADD COLUMN model TEXT;
ALTER TABLE messages ADD COLUMN provider TEXT;
ALTER TABLE messages ADD COLUMN finish_reason TEXT;
ALTER TABLE messages ADD COLUMN error_code TEXT;
ALTER TABLE messages ADD COLUMN prompt_tokens INTEGER;
ALTER TABLE messages ADD COLUMN completion_tokens INTEGER;
ALTER TABLE messages ADD COLUMN duration_ms INTEGER;
ALTER TABLE messages ADD COLUMN ttft_ms INTEGER;
ALTER TABLE messages ADD COLUMN requested_by TEXT REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN updated_at DATETIME;

-- One answer is generated per chat at a time: the streaming row is the lock.
CREATE UNIQUE INDEX messages_one_streaming ON messages (chat_id) WHERE status = 'streaming';

-- Earlier versions of a regenerated answer, sealed like messages.
CREATE TABLE message_versions (
    id                 TEXT PRIMARY KEY,
    message_id         TEXT NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    chat_id            TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    content_ct         BLOB NOT NULL,
    key_id             TEXT NOT NULL,
    status             TEXT NOT NULL,
    model              TEXT,
    finish_reason      TEXT,
    prompt_tokens      INTEGER,
    completion_tokens  INTEGER,
    created_at         DATETIME NOT NULL
);
CREATE INDEX message_versions_message ON message_versions (message_id);
CREATE INDEX message_versions_key ON message_versions (key_id);

-- Tokens per user, day (UTC) and model: quotas and usage reports.
CREATE TABLE ai_usage (
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day                TEXT NOT NULL,
    model              TEXT NOT NULL,
    provider           TEXT NOT NULL,
    requests           INTEGER NOT NULL DEFAULT 0,
    prompt_tokens      INTEGER NOT NULL DEFAULT 0,
    completion_tokens  INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, model, provider)
);
