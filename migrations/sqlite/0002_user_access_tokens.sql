-- User access tokens: long-lived credentials for scripts and services, and the sessions they open.
-- Same rules as on Postgres; times in integer microseconds.

CREATE TABLE user_access_tokens (
    token_id      BLOB PRIMARY KEY NOT NULL,
    user_id       BLOB NOT NULL REFERENCES users (user_id),
    name          TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    description   TEXT NOT NULL,
    -- SHA-256 of the secret; the secret itself is never stored.
    token_hash    BLOB NOT NULL UNIQUE,
    hint          TEXT NOT NULL,
    create_time   INTEGER NOT NULL,
    expire_time   INTEGER,
    last_use_time INTEGER,
    revoke_time   INTEGER
) STRICT;
-- Names are unique among a user's live tokens; a revoked token's name may be used again.
CREATE UNIQUE INDEX user_access_tokens_live_name ON user_access_tokens (user_id, name_key) WHERE revoke_time IS NULL;
CREATE INDEX user_access_tokens_user ON user_access_tokens (user_id, token_id);

ALTER TABLE sessions ADD COLUMN access_token_id BLOB REFERENCES user_access_tokens (token_id);
CREATE INDEX sessions_access_token ON sessions (access_token_id, session_id) WHERE access_token_id IS NOT NULL;
