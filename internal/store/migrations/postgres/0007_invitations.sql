-- Invitations to chats whose settings ask newcomers to accept first
-- (settings.require_acceptance). An invitee is not a member: they see the
-- chat's title in the invitation and nothing of its messages until they
-- accept. One pending invitation per chat and person.
CREATE TABLE chat_invitations (
    id          uuid PRIMARY KEY,
    chat_id     uuid NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    invited_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at  timestamptz NOT NULL,
    UNIQUE (chat_id, user_id)
);
CREATE INDEX chat_invitations_user ON chat_invitations (user_id, created_at);

-- Notifications gain the kind chat_invite, whose subject is an invitation.
ALTER TABLE notifications DROP CONSTRAINT notifications_kind_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_kind_check
    CHECK (kind IN ('friend_request', 'friend_accepted', 'chat_added', 'chat_removed', 'mention', 'answer_finished', 'chat_invite'));
ALTER TABLE notifications DROP CONSTRAINT notifications_subject_type_check;
ALTER TABLE notifications ADD CONSTRAINT notifications_subject_type_check
    CHECK (subject_type IN ('chat', 'friend_request', 'user', 'invitation'));
