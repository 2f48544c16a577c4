-- The keys that sign session JWTs (ES256). The same columns and rules as on Postgres; times are
-- microseconds since the Unix epoch.
CREATE TABLE signing_keys (
    key_id TEXT PRIMARY KEY,
    private_key_sealed BLOB NOT NULL,
    public_x TEXT NOT NULL,
    public_y TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    -- One key per activation time: two instances preparing the next key at once make one.
    activate_time INTEGER NOT NULL UNIQUE,
    retire_time INTEGER NOT NULL,
    remove_time INTEGER NOT NULL,
    CHECK (create_time <= activate_time AND activate_time < retire_time AND retire_time <= remove_time)
);

-- Each tenant's OpenID Connect identity provider for single sign-on (at most one). The same
-- columns and rules as on Postgres.
CREATE TABLE identity_providers (
    tenant_id BLOB PRIMARY KEY REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    issuer_url TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret_sealed BLOB,
    scopes TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    link_by_verified_email INTEGER NOT NULL CHECK (link_by_verified_email IN (0, 1)),
    create_users INTEGER NOT NULL CHECK (create_users IN (0, 1)),
    default_roles INTEGER NOT NULL,
    post_logout_redirect_uri TEXT NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
