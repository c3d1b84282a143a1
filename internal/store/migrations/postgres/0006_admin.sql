-- Roles: admin audit log, moderation flags, bot API keys, quota resets.

-- Every admin action: who, what, on what, when. details is a small JSON
-- object without secrets; actor_email is kept so the log reads the same
-- after the account is deleted.
CREATE TABLE audit_log (
    id           uuid PRIMARY KEY,
    actor_id     uuid REFERENCES users (id) ON DELETE SET NULL,
    actor_email  text NOT NULL,
    action       text NOT NULL,
    target_type  text NOT NULL,
    target_id    text NOT NULL,
    details      text NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL
);
CREATE INDEX audit_log_action ON audit_log (action, id);
CREATE INDEX audit_log_target ON audit_log (target_id, id);

-- A question or answer the moderation refused: only what the filter
-- matched (a configured pattern, or the provider's categories), never the
-- text.
CREATE TABLE moderation_flags (
    id           uuid PRIMARY KEY,
    chat_id      uuid REFERENCES chats (id) ON DELETE SET NULL,
    message_id   uuid,
    user_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    stage        text NOT NULL CHECK (stage IN ('question', 'answer')),
    source       text NOT NULL CHECK (source IN ('pattern', 'provider')),
    matched      text NOT NULL,
    created_at   timestamptz NOT NULL,
    reviewed_at  timestamptz,
    reviewed_by  uuid REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX moderation_flags_open ON moderation_flags (reviewed_at, id);

-- A bot's API keys: only the SHA-256 of the key is stored; prefix is its
-- first characters, shown so an operator can tell keys apart.
CREATE TABLE api_keys (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL,
    prefix        text NOT NULL,
    token_hash    text NOT NULL UNIQUE,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL,
    expires_at    timestamptz,
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id);

-- The chats a key may act in (the bot must also be a member).
CREATE TABLE api_key_chats (
    key_id   uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    chat_id  uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    PRIMARY KEY (key_id, chat_id)
);
CREATE INDEX api_key_chats_chat ON api_key_chats (chat_id);

-- An admin's quota reset: the tokens already spent that day no longer
-- count against the daily allowance (ai_usage keeps the real totals).
CREATE TABLE ai_quota_resets (
    user_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day      date NOT NULL,
    tokens   bigint NOT NULL,
    PRIMARY KEY (user_id, day)
);
