CREATE TABLE chats (
    id               TEXT PRIMARY KEY,
    owner_id         TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind             TEXT NOT NULL CHECK (kind IN ('personal', 'group')),
    title_ct         BLOB NOT NULL,
    settings_ct      BLOB NOT NULL,
    key_id           TEXT NOT NULL,
    last_seq         INTEGER NOT NULL DEFAULT 0,
    last_message_at  DATETIME,
    created_at       DATETIME NOT NULL,
    updated_at       DATETIME NOT NULL
);

CREATE TABLE chat_members (
    chat_id        TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role           TEXT NOT NULL CHECK (role IN ('owner', 'member')),
    unread_count   INTEGER NOT NULL DEFAULT 0,
    last_read_seq  INTEGER NOT NULL DEFAULT 0,
    joined_at      DATETIME NOT NULL,
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id);

CREATE TABLE messages (
    id           TEXT PRIMARY KEY,
    chat_id      TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    author_id    TEXT REFERENCES users (id) ON DELETE SET NULL,
    author_kind  TEXT NOT NULL CHECK (author_kind IN ('user', 'assistant', 'system')),
    client_id    TEXT,
    content_ct   BLOB NOT NULL,
    key_id       TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('complete', 'streaming', 'stopped', 'failed')),
    created_at   DATETIME NOT NULL,
    edited_at    DATETIME,
    UNIQUE (chat_id, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (chat_id, author_id, client_id) WHERE client_id IS NOT NULL;
CREATE INDEX messages_key ON messages (key_id);
