CREATE TABLE chats (
    id               uuid PRIMARY KEY,
    owner_id         uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind             text NOT NULL CHECK (kind IN ('personal', 'group')),
    title_ct         bytea NOT NULL,
    settings_ct      bytea NOT NULL,
    key_id           text NOT NULL,
    last_seq         bigint NOT NULL DEFAULT 0,
    last_message_at  timestamptz,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);

CREATE TABLE chat_members (
    chat_id        uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           text NOT NULL CHECK (role IN ('owner', 'member')),
    unread_count   integer NOT NULL DEFAULT 0,
    last_read_seq  bigint NOT NULL DEFAULT 0,
    joined_at      timestamptz NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id);

CREATE TABLE messages (
    id           uuid PRIMARY KEY,
    chat_id      uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq          bigint NOT NULL,
    author_id    uuid REFERENCES users (id) ON DELETE SET NULL,
    author_kind  text NOT NULL CHECK (author_kind IN ('user', 'assistant', 'system')),
    client_id    text,
    content_ct   bytea NOT NULL,
    key_id       text NOT NULL,
    status       text NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'failed')),
    created_at   timestamptz NOT NULL,
    edited_at    timestamptz,
    UNIQUE (chat_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (chat_id, author_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX messages_key ON messages (key_id);
