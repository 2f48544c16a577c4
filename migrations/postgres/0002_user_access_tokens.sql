-- User access tokens: long-lived credentials for scripts and services, and the sessions they open.

CREATE TABLE user_access_tokens (
    token_id      uuid PRIMARY KEY,
    user_id       uuid NOT NULL REFERENCES users (user_id),
    name          text NOT NULL,
    -- Case-folded by the service.
    name_key      text NOT NULL,
    description   text NOT NULL,
    -- SHA-256 of the secret; the secret itself is never stored.
    token_hash    bytea NOT NULL UNIQUE,
    -- Non-secret: the prefix and the last characters, so a user can tell tokens apart.
    hint          text NOT NULL,
    create_time   timestamptz NOT NULL,
    -- NULL: the token never expires (only when the tenant sets no cap).
    expire_time   timestamptz,
    last_use_time timestamptz,
    revoke_time   timestamptz
);
-- Names are unique among a user's live tokens; a revoked token's name may be used again.
CREATE UNIQUE INDEX user_access_tokens_live_name ON user_access_tokens (user_id, name_key) WHERE revoke_time IS NULL;
CREATE INDEX user_access_tokens_user ON user_access_tokens (user_id, token_id);

ALTER TABLE sessions ADD COLUMN access_token_id uuid REFERENCES user_access_tokens (token_id);
CREATE INDEX sessions_access_token ON sessions (access_token_id, session_id) WHERE access_token_id IS NOT NULL;
