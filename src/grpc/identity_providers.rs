//! AdminService's identity-provider calls: the messages to and from the core's terms.

use super::convert::{role, roles_from, timestamp};
use super::pb;
use crate::core::{Error, IdentityProviderView, ProviderPatch};
use crate::domain::SamlSettings;

/// The fields an update mask may name.
pub const MASK_PATHS: [&str; 10] = [
    "issuer_url",
    "client_id",
    "client_secret",
    "scopes",
    "allowed_redirect_uris",
    "link_by_verified_email",
    "create_users",
    "default_roles",
    "post_logout_redirect_uri",
    "saml",
];

/// The patch that sets the fields `paths` names to `p`'s values.
pub fn patch(p: &pb::IdentityProvider, paths: &[&str]) -> Result<ProviderPatch, Error> {
    let mut patch = ProviderPatch::default();
    for path in paths {
        match *path {
            "issuer_url" => patch.issuer_url = Some(p.issuer_url.clone()),
            "client_id" => patch.client_id = Some(p.client_id.clone()),
            "client_secret" => patch.client_secret = Some(p.client_secret.clone()),
            "scopes" => patch.scopes = Some(p.scopes.clone()),
            "allowed_redirect_uris" => patch.redirect_uris = Some(p.allowed_redirect_uris.clone()),
            "link_by_verified_email" => patch.link_by_verified_email = Some(p.link_by_verified_email),
            "create_users" => patch.create_users = Some(p.create_users),
            "default_roles" => {
                patch.default_roles = Some(roles_from("identity_provider.default_roles", &p.default_roles)?)
            }
            "saml" => patch.saml = Some(p.saml.as_ref().map(saml_settings)),
            _ => patch.post_logout_redirect_uri = Some(p.post_logout_redirect_uri.clone()),
        }
    }
    Ok(patch)
}

/// A provider as answered: never its client secret.
pub fn identity_provider(v: IdentityProviderView) -> pb::IdentityProvider {
    pb::IdentityProvider {
        tenant_id: v.tenant_id.to_string(),
        issuer_url: v.settings.issuer_url,
        client_id: v.settings.client_id,
        client_secret: String::new(),
        has_client_secret: v.has_client_secret,
        scopes: v.settings.scopes,
        allowed_redirect_uris: v.settings.redirect_uris,
        link_by_verified_email: v.settings.link_by_verified_email,
        create_users: v.settings.create_users,
        default_roles: v.settings.default_roles.iter().map(|r| role(r) as i32).collect(),
        post_logout_redirect_uri: v.settings.post_logout_redirect_uri,
        create_time: Some(timestamp(v.create_time)),
        update_time: Some(timestamp(v.update_time)),
        saml: v.settings.saml.map(saml_provider),
    }
}

fn saml_settings(p: &pb::SamlProvider) -> SamlSettings {
    SamlSettings {
        idp_entity_id: p.idp_entity_id.clone(),
        sso_url: p.sso_url.clone(),
        slo_url: p.slo_url.clone(),
        certificates: p.signing_certificates.clone(),
        sp_entity_id: p.sp_entity_id.clone(),
        acs_url: p.acs_url.clone(),
        allow_idp_initiated: p.allow_idp_initiated,
        require_signed_assertion: p.require_signed_assertion,
        clock_skew_seconds: p.clock_skew_seconds,
        email_attribute: p.email_attribute.clone(),
        first_name_attribute: p.first_name_attribute.clone(),
        last_name_attribute: p.last_name_attribute.clone(),
    }
}

fn saml_provider(s: SamlSettings) -> pb::SamlProvider {
    pb::SamlProvider {
        idp_entity_id: s.idp_entity_id,
        sso_url: s.sso_url,
        slo_url: s.slo_url,
        signing_certificates: s.certificates,
        sp_entity_id: s.sp_entity_id,
        acs_url: s.acs_url,
        allow_idp_initiated: s.allow_idp_initiated,
        require_signed_assertion: s.require_signed_assertion,
        clock_skew_seconds: s.clock_skew_seconds,
        email_attribute: s.email_attribute,
        first_name_attribute: s.first_name_attribute,
        last_name_attribute: s.last_name_attribute,
    }
}
