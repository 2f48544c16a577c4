-- Single sign-on with OpenID Connect, kept in the database so that any instance can finish what
-- another began.
--
-- A sign-in attempt between StartSso and LoginSso. It is found by a SHA-256 hash of its state (the
-- state travels through the browser; the row holds no value that finishes the attempt on its
-- own), taken out with DELETE ... RETURNING so that it is used once, and refused by the core after
-- its expire_time. The PKCE verifier is sealed under the key-encryption key, bound to the state
-- hash. Expired attempts are deleted when new ones are stored.
CREATE TABLE sso_attempts (
    state_hash bytea PRIMARY KEY,
    tenant_id uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    redirect_uri text NOT NULL,
    nonce text NOT NULL,
    pkce_verifier_sealed bytea NOT NULL,
    create_time timestamptz NOT NULL,
    expire_time timestamptz NOT NULL
);
CREATE INDEX sso_attempts_expire_time ON sso_attempts (expire_time);

-- Which user an identity provider's subject is, per tenant: the link made at the first sign-in
-- (or by a verified email), that later sign-ins follow.
CREATE TABLE linked_identities (
    tenant_id uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    issuer text NOT NULL,
    subject text NOT NULL,
    user_id uuid NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    create_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, issuer, subject)
);
CREATE INDEX linked_identities_user_id ON linked_identities (user_id);

-- The ID token a single sign-on session was opened with, sealed like the client secret (bound to
-- the session id): logging out through the browser sends it to the provider as id_token_hint. It
-- goes with its session.
CREATE TABLE sso_sessions (
    session_id uuid PRIMARY KEY REFERENCES sessions (session_id) ON DELETE CASCADE,
    id_token_sealed bytea NOT NULL
);
