-- The search index's references to chats and messages are checked when
-- the transaction commits, as on SQLite (where an immediate reference
-- made every index insert copy the pages it touched into a statement
-- journal). Deleting a chat or message still removes its rows at once.
ALTER TABLE message_tokens ALTER CONSTRAINT message_tokens_chat_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE message_tokens ALTER CONSTRAINT message_tokens_message_id_fkey DEFERRABLE INITIALLY DEFERRED;
ALTER TABLE message_token_counts ALTER CONSTRAINT message_token_counts_chat_id_fkey DEFERRABLE INITIALLY DEFERRED;
