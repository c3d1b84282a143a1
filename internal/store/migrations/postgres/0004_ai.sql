-- What an assistant answer cost and how it went; NULL for people's messages.
ALTER TABLE messages ADD COLUMN model text;
ALTER TABLE messages ADD COLUMN provider text;
ALTER TABLE messages ADD COLUMN finish_reason text;
ALTER TABLE messages ADD COLUMN error_code text;
ALTER TABLE messages ADD COLUMN prompt_tokens integer;
ALTER TABLE messages ADD COLUMN completion_tokens integer;
ALTER TABLE messages ADD COLUMN duration_ms integer;
ALTER TABLE messages ADD COLUMN ttft_ms integer;
ALTER TABLE messages ADD COLUMN requested_by uuid REFERENCES users (id) ON DELETE SET NULL;
ALTER TABLE messages ADD COLUMN updated_at timestamptz;

-- One answer is generated per chat at a time, across every instance: the
-- streaming row is the lock.
CREATE UNIQUE INDEX messages_one_streaming ON messages (chat_id) WHERE status = 'streaming';

-- Earlier versions of a regenerated answer, sealed like messages.
CREATE TABLE message_versions (
    id                 uuid PRIMARY KEY,
    message_id         uuid NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    chat_id            uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    content_ct         bytea NOT NULL,
    key_id             text NOT NULL,
    status             text NOT NULL,
    model              text,
    finish_reason      text,
    prompt_tokens      integer,
    completion_tokens  integer,
    created_at         timestamptz NOT NULL
);
CREATE INDEX message_versions_message ON message_versions (message_id);
CREATE INDEX message_versions_key ON message_versions (key_id);

-- Tokens per user, day (UTC) and model: quotas and usage reports.
CREATE TABLE ai_usage (
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day                date NOT NULL,
    model              text NOT NULL,
    provider           text NOT NULL,
    requests           integer NOT NULL DEFAULT 0,
    prompt_tokens      bigint NOT NULL DEFAULT 0,
    completion_tokens  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (user_id, day, model, provider)
);
