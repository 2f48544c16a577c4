-- The first schema for the embedded store: the same tables, keys and rules as Postgres.
-- Ids are UUIDv7 as 16-byte blobs: byte order is creation order, as on Postgres.
-- Times are INTEGER microseconds since the Unix epoch (UTC): they compare and sort as numbers,
-- and keep exactly the microsecond precision Postgres keeps.
-- STRICT tables refuse values of the wrong type, as Postgres would.

CREATE TABLE tenants (
    tenant_id             BLOB PRIMARY KEY NOT NULL,
    name                  TEXT NOT NULL,
    -- Case-folded by the service so that every store folds case alike.
    name_key              TEXT NOT NULL UNIQUE,
    -- Days a password stays valid; NULL means passwords never expire.
    password_expiry_days  INTEGER CHECK (password_expiry_days IN (15, 30, 60, 90, 120)),
    max_access_token_days INTEGER NOT NULL DEFAULT 0 CHECK (max_access_token_days >= 0),
    create_time           INTEGER NOT NULL,
    update_time           INTEGER NOT NULL
) STRICT;

CREATE TABLE served_tenants (
    support_tenant_id BLOB NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    client_tenant_id  BLOB NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    PRIMARY KEY (support_tenant_id, client_tenant_id)
) STRICT;

CREATE TABLE users (
    user_id              BLOB PRIMARY KEY NOT NULL,
    tenant_id            BLOB NOT NULL REFERENCES tenants (tenant_id),
    user_name            TEXT NOT NULL,
    -- Unique across tenants: login takes the name alone.
    user_name_key        TEXT NOT NULL UNIQUE,
    email                TEXT NOT NULL,
    first_name           TEXT NOT NULL,
    last_name            TEXT NOT NULL,
    time_zone            TEXT NOT NULL,
    locale               TEXT NOT NULL,
    date_format          TEXT NOT NULL,
    employee_number      TEXT NOT NULL,
    -- Bit mask: 1 system admin, 2 tenant admin, 4 customer support, 8 proxy login.
    roles                INTEGER NOT NULL DEFAULT 0,
    disabled             INTEGER NOT NULL DEFAULT 0,
    password_hash        TEXT NOT NULL,
    password_change_time INTEGER NOT NULL,
    create_time          INTEGER NOT NULL,
    update_time          INTEGER NOT NULL
) STRICT;
CREATE INDEX users_tenant ON users (tenant_id, user_id);

CREATE TABLE service_accounts (
    service_account_id BLOB PRIMARY KEY NOT NULL,
    tenant_id          BLOB NOT NULL REFERENCES tenants (tenant_id),
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL,
    description        TEXT NOT NULL,
    create_time        INTEGER NOT NULL,
    UNIQUE (tenant_id, name_key)
) STRICT;

CREATE TABLE sessions (
    session_id           BLOB PRIMARY KEY NOT NULL,
    -- SHA-256 of the session token; the token itself is never stored.
    token_hash           BLOB NOT NULL UNIQUE,
    user_id              BLOB NOT NULL REFERENCES users (user_id),
    tenant_id            BLOB NOT NULL REFERENCES tenants (tenant_id),
    kind                 TEXT NOT NULL,
    create_time          INTEGER NOT NULL,
    expire_time          INTEGER NOT NULL,
    -- Written in batches, not on every validation.
    last_use_time        INTEGER NOT NULL,
    end_time             INTEGER,
    impersonator_user_id BLOB REFERENCES users (user_id)
) STRICT;
CREATE INDEX sessions_user ON sessions (user_id, session_id);

CREATE TABLE audit_events (
    event_id        BLOB PRIMARY KEY NOT NULL,
    time            INTEGER NOT NULL,
    action          TEXT NOT NULL,
    tenant_id       BLOB,
    actor_user_id   BLOB,
    subject_user_id BLOB,
    session_id      BLOB,
    peer_address    TEXT,
    -- A JSON object of strings; never a secret.
    details         TEXT NOT NULL
) STRICT;
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, event_id);
CREATE INDEX audit_events_actor ON audit_events (actor_user_id, event_id);
CREATE INDEX audit_events_subject ON audit_events (subject_user_id, event_id);
