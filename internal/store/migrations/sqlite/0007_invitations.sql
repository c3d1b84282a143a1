-- Invitations to chats whose settings ask newcomers to accept first
-- (settings.require_acceptance). An invitee is not a member: they see the
-- chat's title in the invitation and nothing of its messages until they
-- accept. One pending invitation per chat and person.
CREATE TABLE chat_invitations (
    id          TEXT PRIMARY KEY,
    chat_id     TEXT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id     TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by  TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at  DATETIME NOT NULL,
    UNIQUE (chat_id, user_id)
);
CREATE INDEX chat_invitations_user ON chat_invitations (user_id, created_at);

-- Notifications gain the kind chat_invite, whose subject is an invitation.
-- SQLite cannot change a CHECK constraint, so the table is rebuilt.
CREATE TABLE notifications_new (
    id            TEXT PRIMARY KEY,
    user_id       TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind          TEXT NOT NULL CHECK (kind IN ('friend_request', 'friend_accepted', 'chat_added', 'chat_removed', 'mention', 'answer_finished', 'chat_invite')),
    actor_id      TEXT REFERENCES users (id) ON DELETE SET NULL,
    subject_type  TEXT NOT NULL CHECK (subject_type IN ('chat', 'friend_request', 'user', 'invitation')),
    subject_id    TEXT NOT NULL,
    text_ct       BLOB NOT NULL,
    key_id        TEXT NOT NULL,
    read_at       DATETIME,
    created_at    DATETIME NOT NULL
);
INSERT INTO notifications_new (id, user_id, kind, actor_id, subject_type, subject_id, text_ct, key_id, read_at, created_at)
    SELECT id, user_id, kind, actor_id, subject_type, subject_id, text_ct, key_id, read_at, created_at FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read_at IS NULL;
CREATE INDEX notifications_subject ON notifications (subject_id);
CREATE INDEX notifications_key ON notifications (key_id);
