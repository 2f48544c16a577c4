//! The settings of a tenant's identity provider (OpenID Connect, or SAML 2.0 with
//! [`SamlSettings`]), parsed once at the edge.

use super::{FieldViolation, Roles, SamlSettings};

/// Most scopes and redirect URIs a provider may list.
const MAX_LIST: usize = 20;
/// Longest URL or URI accepted.
const MAX_URL: usize = 2048;

/// A provider's settings as a caller sets them; every field checked. The client secret is kept
/// apart (see [`ClientSecretChange`]): it is never read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSettings {
    /// The issuer, exactly as the provider's discovery document names it.
    pub issuer_url: String,
    pub client_id: String,
    /// The scopes to ask for; `openid` first, always.
    pub scopes: Vec<String>,
    /// The redirect URIs StartSso accepts, compared exactly.
    pub redirect_uris: Vec<String>,
    /// Sign a user in whose email matches the provider's, when the provider says it is verified
    /// and no user is linked to the subject yet (then the subject is linked).
    pub link_by_verified_email: bool,
    /// Create a user at first sign-in when none matches.
    pub create_users: bool,
    /// The roles of users created at first sign-in.
    pub default_roles: Roles,
    /// Where the provider sends the browser after logging out; empty for its default.
    pub post_logout_redirect_uri: String,
    /// A SAML 2.0 provider's settings: set for a SAML provider, whose OpenID Connect fields
    /// (issuer, client, scopes, redirect URIs, post-logout URI) are then empty.
    pub saml: Option<SamlSettings>,
}

impl ProviderSettings {
    /// No settings yet: what a new provider's patch is applied to.
    pub fn empty() -> Self {
        Self {
            issuer_url: String::new(),
            client_id: String::new(),
            scopes: Vec::new(),
            redirect_uris: Vec::new(),
            link_by_verified_email: false,
            create_users: false,
            default_roles: Roles::default(),
            post_logout_redirect_uri: String::new(),
            saml: None,
        }
    }

    /// Checks every field (named under `prefix`, as in `identity_provider.issuer_url`), naming
    /// every bad one at once.
    pub fn check(mut self, prefix: &str) -> Result<Self, Vec<FieldViolation>> {
        if let Some(saml) = self.saml.take() {
            return self.check_saml(prefix, saml);
        }
        let field = |name: &str| format!("{prefix}.{name}");
        let mut bad = Vec::new();
        if let Err(why) = issuer_url(&self.issuer_url) {
            bad.push(FieldViolation::new(field("issuer_url"), why));
        }
        let client_id = self.client_id.trim();
        if client_id.is_empty() || client_id.len() > 255 || client_id.chars().any(char::is_control) {
            bad.push(FieldViolation::new(
                field("client_id"),
                "must be the client id the provider issued: 1 to 255 characters, no control characters",
            ));
        }
        self.client_id = client_id.to_owned();
        let mut scopes = vec!["openid".to_owned()];
        for scope in &self.scopes {
            let valid = !scope.is_empty()
                && scope.len() <= 64
                && scope.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\');
            if !valid {
                bad.push(FieldViolation::new(
                    field("scopes"),
                    format!("{scope:?} is not a scope: 1 to 64 printable ASCII characters, no spaces or quotes"),
                ));
            } else if !scopes.contains(scope) {
                scopes.push(scope.clone());
            }
        }
        if scopes.len() > MAX_LIST {
            bad.push(FieldViolation::new(
                field("scopes"),
                format!("at most {MAX_LIST} scopes"),
            ));
        }
        self.scopes = scopes;
        if self.redirect_uris.is_empty() || self.redirect_uris.len() > MAX_LIST {
            bad.push(FieldViolation::new(
                field("allowed_redirect_uris"),
                format!("must list 1 to {MAX_LIST} URIs the provider may send the browser back to"),
            ));
        }
        for uri in &self.redirect_uris {
            if let Err(why) = absolute_uri(uri) {
                bad.push(FieldViolation::new(
                    field("allowed_redirect_uris"),
                    format!("{uri:?} {why}"),
                ));
            }
        }
        if !self.post_logout_redirect_uri.is_empty()
            && let Err(why) = absolute_uri(&self.post_logout_redirect_uri)
        {
            bad.push(FieldViolation::new(field("post_logout_redirect_uri"), why));
        }
        if bad.is_empty() { Ok(self) } else { Err(bad) }
    }
}

impl ProviderSettings {
    /// A SAML provider: its SAML settings checked, and none of OpenID Connect's given.
    fn check_saml(mut self, prefix: &str, saml: SamlSettings) -> Result<Self, Vec<FieldViolation>> {
        let mut bad = Vec::new();
        for (name, given) in [
            ("issuer_url", !self.issuer_url.is_empty()),
            ("client_id", !self.client_id.is_empty()),
            ("scopes", !self.scopes.is_empty()),
            ("allowed_redirect_uris", !self.redirect_uris.is_empty()),
            ("post_logout_redirect_uri", !self.post_logout_redirect_uri.is_empty()),
        ] {
            if given {
                bad.push(FieldViolation::new(
                    format!("{prefix}.{name}"),
                    "must be empty for a SAML provider",
                ));
            }
        }
        match saml.check(&format!("{prefix}.saml")) {
            Ok(saml) => self.saml = Some(saml),
            Err(more) => bad.extend(more),
        }
        if bad.is_empty() { Ok(self) } else { Err(bad) }
    }
}

/// Checks a client secret as given.
pub fn client_secret(field: &str, secret: &str) -> Result<(), FieldViolation> {
    if secret.len() > 1024 || secret.chars().any(char::is_control) {
        return Err(FieldViolation::new(
            field,
            "must be at most 1024 bytes with no control characters",
        ));
    }
    Ok(())
}

/// An issuer: an https URL without query or fragment — or http on the loopback host, for a
/// provider on the same machine.
fn issuer_url(raw: &str) -> Result<(), String> {
    let uri = parse(raw)?;
    let loopback = matches!(uri.host(), Some("127.0.0.1" | "localhost" | "[::1]"));
    match uri.scheme_str() {
        Some("https") => {}
        Some("http") if loopback => {}
        _ => return Err("must be an https URL (http only on 127.0.0.1 or localhost)".into()),
    }
    if uri.query().is_some() || raw.contains('#') {
        return Err("must have no query or fragment".into());
    }
    Ok(())
}

/// An absolute URI with a scheme and a host, without a fragment.
fn absolute_uri(raw: &str) -> Result<(), String> {
    let uri = parse(raw)?;
    if uri.scheme().is_none() || uri.host().is_none_or(str::is_empty) {
        return Err("must be an absolute URI with a scheme and a host".into());
    }
    if raw.contains('#') {
        return Err("must have no fragment".into());
    }
    Ok(())
}

fn parse(raw: &str) -> Result<http::Uri, String> {
    if raw.is_empty() || raw.len() > MAX_URL {
        return Err(format!("must be a URL of 1 to {MAX_URL} characters"));
    }
    raw.parse::<http::Uri>().map_err(|_| "is not a URL".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> ProviderSettings {
        ProviderSettings {
            issuer_url: "https://idp.example.com/realms/acme".into(),
            client_id: " identityd ".into(),
            scopes: vec!["email".into(), "openid".into(), "profile".into()],
            redirect_uris: vec!["https://app.example.com/sso/callback".into()],
            link_by_verified_email: false,
            create_users: false,
            default_roles: Roles::default(),
            post_logout_redirect_uri: String::new(),
            saml: None,
        }
    }

    #[test]
    fn a_saml_provider_has_no_openid_connect_fields() {
        let s = ProviderSettings {
            saml: Some(SamlSettings {
                sso_url: "http://idp.example.com/sso".into(),
                ..SamlSettings::default()
            }),
            ..settings()
        };
        let fields: Vec<_> = s.check("p").unwrap_err().into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "p.issuer_url",
                "p.client_id",
                "p.scopes",
                "p.allowed_redirect_uris",
                "p.saml.idp_entity_id",
                "p.saml.sp_entity_id",
                "p.saml.sso_url",
                "p.saml.acs_url",
                "p.saml.signing_certificates",
            ]
        );
    }

    #[test]
    fn good_settings_are_normalised() {
        let s = settings().check("p").unwrap();
        assert_eq!(s.client_id, "identityd");
        assert_eq!(s.scopes, ["openid", "email", "profile"]);
    }

    #[test]
    fn bad_settings_name_every_field() {
        let s = ProviderSettings {
            issuer_url: "http://idp.example.com".into(),
            client_id: String::new(),
            scopes: vec!["two words".into()],
            redirect_uris: vec!["/relative".into()],
            post_logout_redirect_uri: "nope".into(),
            ..settings()
        };
        let fields: Vec<_> = s.check("p").unwrap_err().into_iter().map(|v| v.field).collect();
        assert_eq!(
            fields,
            [
                "p.issuer_url",
                "p.client_id",
                "p.scopes",
                "p.allowed_redirect_uris",
                "p.post_logout_redirect_uri"
            ]
        );
    }

    #[test]
    fn a_provider_on_the_loopback_host_may_use_http() {
        let s = ProviderSettings {
            issuer_url: "http://127.0.0.1:8080".into(),
            ..settings()
        };
        assert!(s.check("p").is_ok());
    }
}
