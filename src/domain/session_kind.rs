/// How a session was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionKind {
    /// A user name and password.
    Password,
    /// A user access token (LoginService.Login with a token).
    AccessToken,
    /// Single sign-on.
    Sso,
    /// A service account's session.
    ServiceAccount,
    /// A customer-support user working in a client tenant.
    CustomerSupport,
    /// A user acting as another user.
    Proxy,
}

/// A stored session kind this version does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown session kind {0:?}")]
pub struct UnknownSessionKind(pub String);

impl SessionKind {
    /// The name it is stored and audited under.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::AccessToken => "access_token",
            Self::Sso => "sso",
            Self::ServiceAccount => "service_account",
            Self::CustomerSupport => "customer_support",
            Self::Proxy => "proxy",
        }
    }
}

impl TryFrom<String> for SessionKind {
    type Error = UnknownSessionKind;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ok(match s.as_str() {
            "password" => Self::Password,
            "access_token" => Self::AccessToken,
            "sso" => Self::Sso,
            "service_account" => Self::ServiceAccount,
            "customer_support" => Self::CustomerSupport,
            "proxy" => Self::Proxy,
            _ => return Err(UnknownSessionKind(s)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_names_round_trip() {
        for kind in [
            SessionKind::Password,
            SessionKind::AccessToken,
            SessionKind::Sso,
            SessionKind::ServiceAccount,
            SessionKind::CustomerSupport,
            SessionKind::Proxy,
        ] {
            assert_eq!(SessionKind::try_from(kind.as_str().to_owned()).unwrap(), kind);
        }
        assert!(SessionKind::try_from("telepathy".to_owned()).is_err());
    }
}
