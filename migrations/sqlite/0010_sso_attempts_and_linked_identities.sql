-- Single sign-on with OpenID Connect: sign-in attempts, linked identities and the ID tokens of
-- single sign-on sessions. The same tables and rules as on Postgres; times are microseconds since
-- the Unix epoch.
CREATE TABLE sso_attempts (
    state_hash BLOB PRIMARY KEY,
    tenant_id BLOB NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    redirect_uri TEXT NOT NULL,
    nonce TEXT NOT NULL,
    pkce_verifier_sealed BLOB NOT NULL,
    create_time INTEGER NOT NULL,
    expire_time INTEGER NOT NULL
);
CREATE INDEX sso_attempts_expire_time ON sso_attempts (expire_time);

CREATE TABLE linked_identities (
    tenant_id BLOB NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    issuer TEXT NOT NULL,
    subject TEXT NOT NULL,
    user_id BLOB NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    create_time INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, issuer, subject)
);
CREATE INDEX linked_identities_user_id ON linked_identities (user_id);

CREATE TABLE sso_sessions (
    session_id BLOB PRIMARY KEY REFERENCES sessions (session_id) ON DELETE CASCADE,
    id_token_sealed BLOB NOT NULL
);
