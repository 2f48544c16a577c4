-- The keys that sign session JWTs (ES256). The private key is sealed (AES-256-GCM under the
-- key-encryption key, bound to the key id), so that the database alone holds no usable key; the
-- public point is kept in the clear, as the JWKS publishes it.
--
-- A key's life is three times, fixed when it is made: it is published from create_time, signs
-- from activate_time until retire_time, and is published until remove_time, so that verifiers
-- that cached the key set before it signed, or that hold a JWT it signed, still find it.
CREATE TABLE signing_keys (
    key_id text PRIMARY KEY,
    private_key_sealed bytea NOT NULL,
    public_x text NOT NULL,
    public_y text NOT NULL,
    create_time timestamptz NOT NULL,
    -- One key per activation time: two instances preparing the next key at once make one.
    activate_time timestamptz NOT NULL UNIQUE,
    retire_time timestamptz NOT NULL,
    remove_time timestamptz NOT NULL,
    CHECK (create_time <= activate_time AND activate_time < retire_time AND retire_time <= remove_time)
);

-- Each tenant's OpenID Connect identity provider for single sign-on (at most one). The client
-- secret is sealed like the signing keys (bound to the tenant id) and never read back out.
CREATE TABLE identity_providers (
    tenant_id uuid PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    issuer_url text NOT NULL,
    client_id text NOT NULL,
    client_secret_sealed bytea,
    -- Space-separated, as OAuth 2.0 sends them.
    scopes text NOT NULL,
    -- A JSON array of the redirect URIs StartSso accepts.
    redirect_uris text NOT NULL,
    link_by_verified_email boolean NOT NULL,
    create_users boolean NOT NULL,
    -- The roles of a user created at first sign-in, as a bit set (as users.roles).
    default_roles integer NOT NULL,
    post_logout_redirect_uri text NOT NULL,
    create_time timestamptz NOT NULL,
    update_time timestamptz NOT NULL
);
