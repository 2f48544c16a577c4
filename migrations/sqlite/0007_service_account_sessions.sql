-- Service-account sessions, what lets a person recognise a session, and the retention sweep.
-- The same columns and rules as on Postgres. SQLite cannot drop a NOT NULL constraint, so the
-- sessions table is built again with user_id nullable and its rows copied over (nothing refers to
-- sessions by foreign key, so dropping the old table is safe).

CREATE TABLE sessions_0007 (
    session_id           BLOB PRIMARY KEY NOT NULL,
    -- SHA-256 of the session token; the token itself is never stored.
    token_hash           BLOB NOT NULL UNIQUE,
    -- A session acts as a user or as a service account, never both.
    user_id              BLOB REFERENCES users (user_id),
    tenant_id            BLOB NOT NULL REFERENCES tenants (tenant_id),
    kind                 TEXT NOT NULL,
    create_time          INTEGER NOT NULL,
    expire_time          INTEGER NOT NULL,
    -- Written in batches, not on every validation.
    last_use_time        INTEGER NOT NULL,
    end_time             INTEGER,
    impersonator_user_id BLOB REFERENCES users (user_id),
    access_token_id      BLOB REFERENCES user_access_tokens (token_id),
    service_account_id   BLOB REFERENCES service_accounts (service_account_id),
    -- What the client told about itself, truncated by the service; never raw headers.
    user_agent           TEXT,
    peer_address         TEXT,
    device_name          TEXT,
    CHECK ((user_id IS NULL) <> (service_account_id IS NULL))
) STRICT;

INSERT INTO sessions_0007 (session_id, token_hash, user_id, tenant_id, kind, create_time, expire_time,
    last_use_time, end_time, impersonator_user_id, access_token_id)
SELECT session_id, token_hash, user_id, tenant_id, kind, create_time, expire_time,
    last_use_time, end_time, impersonator_user_id, access_token_id
FROM sessions;

DROP TABLE sessions;
ALTER TABLE sessions_0007 RENAME TO sessions;

CREATE INDEX sessions_user ON sessions (user_id, session_id);
CREATE INDEX sessions_access_token ON sessions (access_token_id, session_id) WHERE access_token_id IS NOT NULL;
CREATE INDEX sessions_end_time ON sessions (end_time) WHERE end_time IS NOT NULL;
CREATE INDEX sessions_service_account ON sessions (service_account_id, session_id)
    WHERE service_account_id IS NOT NULL;
-- The retention sweep deletes sessions whose expiry or end lies further back than the retention period.
CREATE INDEX sessions_expire_time ON sessions (expire_time);
