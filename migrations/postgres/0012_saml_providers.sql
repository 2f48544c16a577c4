-- SAML 2.0 identity providers beside the OpenID Connect ones: a tenant's provider is one or the
-- other. A SAML provider keeps its settings (the provider's entity id, URLs and signing
-- certificates, our entity id and assertion consumer URL, the attribute mapping) as one JSON
-- document; its OpenID Connect columns stay empty. NULL for an OpenID Connect provider.
ALTER TABLE identity_providers ADD COLUMN saml_settings text;

-- The ids of the SAML responses and assertions that signed someone in (as the SAML library names
-- them for replay checks: the kind, then the id), kept until the assertion expires, so that a
-- response replayed to any instance is refused. One row per id and tenant.
CREATE TABLE saml_assertion_ids (
    tenant_id uuid NOT NULL REFERENCES tenants (tenant_id) ON DELETE CASCADE,
    assertion_id text NOT NULL,
    expire_time timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, assertion_id)
);
CREATE INDEX saml_assertion_ids_expire_time ON saml_assertion_ids (expire_time);
