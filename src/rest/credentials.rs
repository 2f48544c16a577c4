//! Where a REST request's session comes from (an `Authorization: Bearer` header or the session
//! cookie), the cookies a login sets, and the cross-site request check.

use std::time::Duration;

use http::HeaderMap;
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use tonic::transport::server::TcpConnectInfo;

use crate::core::{Error, RequestMeta};

/// The header a script sends to show that a cookie-authenticated request is not a cross-site form.
pub const CSRF_HEADER: &str = "x-requested-with";

/// How the session cookie is named and marked.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// The session cookie's name.
    pub name: String,
    /// Mark cookies `Secure` (the service is reached over TLS, at a proxy in front of it).
    pub secure: bool,
}

impl CookieSettings {
    /// `name` when given; otherwise `__Host-identityd_session` when the cookie is `Secure` (the
    /// prefix binds it to this host and path `/`, and browsers accept it only with `Secure`), and
    /// `identityd_session` when it is not.
    pub fn new(name: Option<String>, secure: bool) -> Self {
        let name = name.unwrap_or_else(|| {
            if secure {
                "__Host-identityd_session".to_owned()
            } else {
                "identityd_session".to_owned()
            }
        });
        Self { name, secure }
    }

    /// The name of the cookie that keeps the session a proxy or customer-support login came from,
    /// so that switching back can resume it.
    pub fn original_name(&self) -> String {
        format!("{}_original", self.name)
    }

    /// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`, `Secure` when configured;
    /// without `max_age` it lasts as long as the browser's session, and zero deletes it.
    pub fn set_cookie(&self, name: &str, value: &str, max_age: Option<Duration>) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        let max_age = max_age
            .map(|age| format!("; Max-Age={}", age.as_secs()))
            .unwrap_or_default();
        format!("{name}={value}; Path=/{max_age}; HttpOnly; SameSite=Strict{secure}")
    }
}

/// Where the request's credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Bearer,
    Cookie,
}

/// The request's session token: the bearer header when there is one (it must be well-formed),
/// else the session cookie, else none.
pub fn session_token<'h>(headers: &'h HeaderMap, cookies: &CookieSettings) -> Result<Option<(&'h str, Source)>, Error> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    if let Some(value) = values.next() {
        if values.next().is_some() {
            return Err(Error::AmbiguousCredentials);
        }
        return value
            .to_str()
            .ok()
            .and_then(|value| value.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|token| !token.is_empty())
            .map(|token| Some((token, Source::Bearer)))
            .ok_or(Error::MalformedCredentials);
    }
    Ok(cookie(headers, &cookies.name).map(|token| (token, Source::Cookie)))
}

/// The value of the cookie `name` among the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// A state-changing request whose credential is the cookie must show it is not a cross-site form:
/// a form can send only the three simple content types and no custom header, so the request must
/// carry another content type (XML, JSON) or the `X-Requested-With` header.
pub fn not_cross_site(headers: &HeaderMap) -> bool {
    if headers.contains_key(CSRF_HEADER) {
        return true;
    }
    let essence = media_type(headers);
    !essence.is_empty()
        && !matches!(
            essence.as_str(),
            "application/x-www-form-urlencoded" | "multipart/form-data" | "text/plain"
        )
}

/// The request's media type, lower-cased and without parameters (`application/xml` of
/// `Application/XML; charset=utf-8`); empty when there is none.
pub fn media_type(headers: &HeaderMap) -> String {
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The peer and user-agent of a request, as the gRPC layer records them.
pub fn meta(headers: &HeaderMap, extensions: &http::Extensions) -> RequestMeta {
    RequestMeta {
        peer: extensions
            .get::<TcpConnectInfo>()
            .and_then(TcpConnectInfo::remote_addr)
            .map(|a| a.to_string()),
        user_agent: headers
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        device_name: None,
    }
}
