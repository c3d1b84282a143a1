CREATE TABLE users (
    id             TEXT PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    password_hash  TEXT NOT NULL,
    role           TEXT NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'support', 'bot')),
    blocked        INTEGER NOT NULL DEFAULT 0,
    token_version  INTEGER NOT NULL DEFAULT 1,
    created_at     DATETIME NOT NULL,
    updated_at     DATETIME NOT NULL
);

CREATE TABLE refresh_tokens (
    id                 TEXT PRIMARY KEY,
    user_id            TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id          TEXT NOT NULL,
    token_hash         TEXT NOT NULL UNIQUE,
    created_at         DATETIME NOT NULL,
    expires_at         DATETIME NOT NULL,
    family_expires_at  DATETIME NOT NULL,
    used_at            DATETIME,
    revoked_at         DATETIME
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE login_throttles (
    email         TEXT PRIMARY KEY,
    failures      INTEGER NOT NULL,
    window_start  DATETIME NOT NULL,
    locked_until  DATETIME
);
