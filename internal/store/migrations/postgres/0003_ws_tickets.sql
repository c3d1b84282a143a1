-- Single-use WebSocket tickets. Only the SHA-256 of a ticket is stored.
CREATE TABLE ws_tickets (
    hash               text PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id         text NOT NULL DEFAULT '',
    token_version      integer NOT NULL,
    access_expires_at  timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    created_at         timestamptz NOT NULL
);
CREATE INDEX ws_tickets_expires ON ws_tickets (expires_at);
