-- Friends, blocks and notifications (package social).

-- A friend request, addressed by email: the address may have no account
-- (the answer does not say), and the request becomes visible if one is
-- created with it. The requester always sees their request as pending;
-- the addressee sees it only in state 'pending' ('declined': they said no;
-- 'dropped': they had blocked the requester). One request per requester
-- and address.
CREATE TABLE friend_requests (
    id               uuid PRIMARY KEY,
    requester_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    addressee_email  text NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'declined', 'dropped')),
    created_at       timestamptz NOT NULL,
    UNIQUE (requester_id, addressee_email)
);
CREATE INDEX friend_requests_addressee ON friend_requests (addressee_email);

-- A friendship is two rows, one each way, so "my friends" is one index range.
CREATE TABLE friendships (
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    friend_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (user_id, friend_id)
);

CREATE TABLE user_blocks (
    blocker_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    blocked_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
);
CREATE INDEX user_blocks_blocked ON user_blocks (blocked_id);

-- Friend requests sent per user in the current window (rate limit shared
-- by every replica).
CREATE TABLE friend_request_quota (
    user_id       uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    window_start  timestamptz NOT NULL,
    sent          integer NOT NULL
);

-- Notifications. The text names people and chat titles, so it is sealed
-- like messages (AAD: "notification", id, user_id). subject_id is not a
-- foreign key: the chat or request it names may be gone.
CREATE TABLE notifications (
    id            uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          text NOT NULL CHECK (kind IN ('friend_request', 'friend_accepted', 'chat_added', 'chat_removed', 'mention', 'answer_finished')),
    actor_id      uuid REFERENCES users (id) ON DELETE SET NULL,
    subject_type  text NOT NULL CHECK (subject_type IN ('chat', 'friend_request', 'user')),
    subject_id    text NOT NULL,
    text_ct       bytea NOT NULL,
    key_id        text NOT NULL,
    read_at       timestamptz,
    created_at    timestamptz NOT NULL
);
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read_at IS NULL;
CREATE INDEX notifications_subject ON notifications (subject_id);
CREATE INDEX notifications_key ON notifications (key_id);
