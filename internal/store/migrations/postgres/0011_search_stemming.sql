-- Optional stemming of search words (AICHAT_SEARCH_STEMMING, package
-- search). Whether words were stemmed is part of an index version, like
-- its key: switching the setting starts a new version with the same key,
-- rebuilt in the background as after a key rotation. So a key may now
-- have several versions (the setting switched on, then off again): its
-- id is no longer unique. A key rotation still never goes back to a key
-- used before (package search checks).
ALTER TABLE search_keys ADD COLUMN stemmed boolean NOT NULL DEFAULT false;
ALTER TABLE search_keys DROP CONSTRAINT search_keys_key_id_key;
