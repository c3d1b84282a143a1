CREATE TABLE users (
    id             uuid PRIMARY KEY,
    email          text NOT NULL UNIQUE,
    name           text NOT NULL,
    password_hash  text NOT NULL,
    role           text NOT NULL DEFAULT 'user' CHECK (role IN ('user', 'admin', 'support', 'bot')),
    blocked        boolean NOT NULL DEFAULT false,
    token_version  integer NOT NULL DEFAULT 1,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL
);

CREATE TABLE refresh_tokens (
    id                 uuid PRIMARY KEY,
    user_id            uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id          uuid NOT NULL,
    token_hash         text NOT NULL UNIQUE,
    created_at         timestamptz NOT NULL,
    expires_at         timestamptz NOT NULL,
    family_expires_at  timestamptz NOT NULL,
    used_at            timestamptz,
    revoked_at         timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE login_throttles (
    email         text PRIMARY KEY,
    failures      integer NOT NULL,
    window_start  timestamptz NOT NULL,
    locked_until  timestamptz
);
