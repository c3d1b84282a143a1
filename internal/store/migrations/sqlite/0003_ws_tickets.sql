-- Single-use WebSocket tickets. Only the SHA-256 of a ticket is stored.
CREATE TABLE ws_tickets (
    hash               TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id         TEXT NOT NULL DEFAULT '',
    token_version      INTEGER NOT NULL,
    access_expires_at  DATETIME NOT NULL,
    expires_at         DATETIME NOT NULL,
    created_at         DATETIME NOT NULL
);
CREATE INDEX ws_tickets_expires ON ws_tickets (expires_at);
