-- SAML 2.0 identity providers beside the OpenID Connect ones, and the ids of assertions already
-- used. The same columns and rules as on Postgres; times are microseconds since the Unix epoch.
ALTER TABLE identity_providers ADD COLUMN saml_settings TEXT;

CREATE TABLE saml_assertion_ids (
    tenant_id BLOB NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    assertion_id TEXT NOT NULL,
    expire_time INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, assertion_id)
);
CREATE INDEX saml_assertion_ids_expire_time ON saml_assertion_ids (expire_time);
