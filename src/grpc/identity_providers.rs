//! AdminService's identity-provider calls: the messages to and from the core's terms.

use super::convert::{role, roles_from, timestamp};
use super::pb;
use crate::core::{Error, IdentityProviderView, ProviderPatch};

/// The fields an update mask may name.
pub const MASK_PATHS: [&str; 9] = [
    "issuer_url",
    "client_id",
    "client_secret",
    "scopes",
    "allowed_redirect_uris",
    "link_by_verified_email",
    "create_users",
    "default_roles",
    "post_logout_redirect_uri",
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
    }
}
