use crate::domain::FieldViolation;
use crate::store::StoreError;

/// Stable reasons carried in `google.rpc.ErrorInfo.reason`. Clients branch on these, so they never
/// change meaning once published.
pub mod reason {
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    pub const MISSING_CREDENTIALS: &str = "MISSING_CREDENTIALS";
    pub const AMBIGUOUS_CREDENTIALS: &str = "AMBIGUOUS_CREDENTIALS";
    pub const SESSION_INVALID: &str = "SESSION_INVALID";
    pub const JWT_INVALID: &str = "JWT_INVALID";
    pub const SSO_FAILED: &str = "SSO_FAILED";
    pub const TOKEN_EXPIRED: &str = "TOKEN_EXPIRED";
    pub const TOKEN_REVOKED: &str = "TOKEN_REVOKED";
    pub const TOKEN_LIMIT_REACHED: &str = "TOKEN_LIMIT_REACHED";
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    pub const ACCESS_TOKEN_NOT_ALLOWED: &str = "ACCESS_TOKEN_NOT_ALLOWED";
    pub const IMPERSONATION_NOT_ALLOWED: &str = "IMPERSONATION_NOT_ALLOWED";
    pub const LAST_SYSTEM_ADMIN: &str = "LAST_SYSTEM_ADMIN";
    pub const CONCURRENT_CHANGE: &str = "CONCURRENT_CHANGE";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    pub const FAILED_PRECONDITION: &str = "FAILED_PRECONDITION";
    pub const OVERLOADED: &str = "OVERLOADED";
    pub const TOO_MANY_FAILED_LOGINS: &str = "TOO_MANY_FAILED_LOGINS";
    pub const PASSWORD_CHANGE_REQUIRED: &str = "PASSWORD_CHANGE_REQUIRED";
    pub const NOT_IMPLEMENTED: &str = "NOT_IMPLEMENTED";
    pub const STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";
    pub const INTERNAL: &str = "INTERNAL";
}

/// Everything a core call can answer instead of a result. Each variant says what the caller sees;
/// internal causes are logged by the transport layer and never shown.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request breaks a rule; nothing was written. INVALID_ARGUMENT with field violations.
    #[error("invalid request: {}", describe(.0))]
    InvalidArgument(Vec<FieldViolation>),
    /// Wrong user name or password, unknown or disabled user, unusable token: all look the same.
    /// UNAUTHENTICATED, `INVALID_CREDENTIALS`.
    #[error("the user name or password is incorrect")]
    InvalidCredentials,
    /// The call needs `authorization: Bearer <session token>` metadata and has none.
    /// UNAUTHENTICATED, `MISSING_CREDENTIALS`.
    #[error("this call needs `authorization: Bearer <session token>` metadata")]
    MissingCredentials,
    /// The `authorization` metadata is not `Bearer <token>` (another scheme, no token, not text).
    /// UNAUTHENTICATED, `MISSING_CREDENTIALS`: no credential this server reads was given.
    #[error(
        "the `authorization` metadata must be `Bearer <token>`, the token being a session token or a user access token"
    )]
    MalformedCredentials,
    /// The call carries more than one `authorization` metadata entry, so which caller it is would be
    /// a guess. UNAUTHENTICATED, `AMBIGUOUS_CREDENTIALS`.
    #[error("the call carries more than one `authorization` metadata entry: send exactly one")]
    AmbiguousCredentials,
    /// The bearer credential is unknown, malformed, expired or ended (a session token), or unknown,
    /// malformed or its user's disabled (a user access token). UNAUTHENTICATED, `SESSION_INVALID`.
    #[error("the session is not valid: log in again")]
    SessionInvalid,
    /// The JWT given is not a session JWT of this service: malformed, signed by a key not in the
    /// JWKS, or with another issuer or audience. UNAUTHENTICATED, `JWT_INVALID`.
    #[error("the JWT is not a session JWT of this service")]
    JwtInvalid,
    /// Single sign-on did not succeed: unknown, used or expired state, a redirect URI or issuer
    /// that does not match, a code the provider refused, an ID token that does not verify, no
    /// user to sign in, or the provider unreachable. UNAUTHENTICATED, `SSO_FAILED`; the audit
    /// event says which.
    #[error("single sign-on failed: start again")]
    SsoFailed,
    /// The user access token is past its expiry. UNAUTHENTICATED, `TOKEN_EXPIRED`.
    #[error("the user access token has expired")]
    TokenExpired,
    /// The user access token was revoked. UNAUTHENTICATED, `TOKEN_REVOKED`.
    #[error("the user access token has been revoked")]
    TokenRevoked,
    /// The user has as many live access tokens as allowed. RESOURCE_EXHAUSTED, `TOKEN_LIMIT_REACHED`.
    #[error("you already have {0} live user access tokens, the most allowed: revoke one first")]
    TokenLimitReached(u32),
    /// The caller is known but may not do this. PERMISSION_DENIED.
    #[error("{0}")]
    PermissionDenied(String),
    /// The call changes credentials, sessions or administration, and the caller came with a user
    /// access token (as the bearer, or through a session opened with one). PERMISSION_DENIED,
    /// `ACCESS_TOKEN_NOT_ALLOWED`: sign in with a password to do this.
    #[error("a user access token may only read: this call needs a session opened by signing in")]
    AccessTokenNotAllowed,
    /// The caller came through a proxy or customer-support session, and the call mints a
    /// credential, changes a password or a role, or impersonates again. PERMISSION_DENIED,
    /// `IMPERSONATION_NOT_ALLOWED`: the real user must do this as themselves.
    #[error("a proxy or customer-support session may not do this: switch back and do it as yourself")]
    ImpersonationNotAllowed,
    /// The change would leave no enabled system administrator. FAILED_PRECONDITION, `LAST_SYSTEM_ADMIN`.
    #[error("this would leave no enabled system administrator: make another user one first")]
    LastSystemAdmin,
    /// What the call decided on changed while it ran (another call changed the user's roles).
    /// ABORTED, `CONCURRENT_CHANGE`: read again and retry.
    #[error("the {0} changed while this call ran: read it again and retry")]
    ConcurrentChange(&'static str),
    /// The thing does not exist, or the caller may not know that it does. NOT_FOUND.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A unique field already holds this value. ALREADY_EXISTS, naming the field.
    #[error("{field} is already taken")]
    AlreadyExists { field: String },
    /// The system is not in the state this call needs. FAILED_PRECONDITION.
    #[error("{0}")]
    FailedPrecondition(String),
    /// Too much work is queued (password hashing); retry later. RESOURCE_EXHAUSTED.
    #[error("the server is busy: retry shortly")]
    Overloaded,
    /// Too many logins from the caller's address failed lately; it may try again after
    /// `retry_after`. RESOURCE_EXHAUSTED, `TOO_MANY_FAILED_LOGINS`, with a `RetryInfo`.
    #[error("too many failed logins from this address: retry in {} s", .retry_after.as_secs().max(1))]
    TooManyFailedLogins { retry_after: std::time::Duration },
    /// The session was opened with a password that must be changed (expired, or set by an
    /// administrator), and this call is not one such a session may make. FAILED_PRECONDITION,
    /// `PASSWORD_CHANGE_REQUIRED`: change the password with ChangePassword first.
    #[error("the password must be changed first: call ChangePassword (with this session as the bearer, it stays open)")]
    PasswordChangeRequired,
    /// The call is part of the contract but not served yet. UNIMPLEMENTED.
    #[error("{0} is not implemented yet")]
    Unimplemented(&'static str),
    /// The database cannot be reached. UNAVAILABLE; safe to retry.
    #[error("the database is unavailable: retry shortly")]
    Unavailable(#[source] StoreError),
    /// A fault on our side. INTERNAL; the cause is logged, not shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

fn describe(violations: &[FieldViolation]) -> String {
    violations
        .iter()
        .map(|v| format!("{} {}", v.field, v.message))
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// A single bad field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, message)])
    }

    /// The stable reason for `ErrorInfo`.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::InvalidArgument(_) => reason::INVALID_ARGUMENT,
            Self::InvalidCredentials => reason::INVALID_CREDENTIALS,
            Self::MissingCredentials | Self::MalformedCredentials => reason::MISSING_CREDENTIALS,
            Self::AmbiguousCredentials => reason::AMBIGUOUS_CREDENTIALS,
            Self::SessionInvalid => reason::SESSION_INVALID,
            Self::JwtInvalid => reason::JWT_INVALID,
            Self::SsoFailed => reason::SSO_FAILED,
            Self::TokenExpired => reason::TOKEN_EXPIRED,
            Self::TokenRevoked => reason::TOKEN_REVOKED,
            Self::TokenLimitReached(_) => reason::TOKEN_LIMIT_REACHED,
            Self::PermissionDenied(_) => reason::PERMISSION_DENIED,
            Self::AccessTokenNotAllowed => reason::ACCESS_TOKEN_NOT_ALLOWED,
            Self::ImpersonationNotAllowed => reason::IMPERSONATION_NOT_ALLOWED,
            Self::LastSystemAdmin => reason::LAST_SYSTEM_ADMIN,
            Self::ConcurrentChange(_) => reason::CONCURRENT_CHANGE,
            Self::NotFound(_) => reason::NOT_FOUND,
            Self::AlreadyExists { .. } => reason::ALREADY_EXISTS,
            Self::FailedPrecondition(_) => reason::FAILED_PRECONDITION,
            Self::Overloaded => reason::OVERLOADED,
            Self::TooManyFailedLogins { .. } => reason::TOO_MANY_FAILED_LOGINS,
            Self::PasswordChangeRequired => reason::PASSWORD_CHANGE_REQUIRED,
            Self::Unimplemented(_) => reason::NOT_IMPLEMENTED,
            Self::Unavailable(_) => reason::STORE_UNAVAILABLE,
            Self::Internal(_) => reason::INTERNAL,
        }
    }
}

impl From<FieldViolation> for Error {
    fn from(v: FieldViolation) -> Self {
        Self::InvalidArgument(vec![v])
    }
}

impl From<Vec<FieldViolation>> for Error {
    fn from(v: Vec<FieldViolation>) -> Self {
        Self::InvalidArgument(v)
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::UniqueViolation { field } => Self::AlreadyExists {
                field: field.to_owned(),
            },
            StoreError::Unavailable(_) => Self::Unavailable(e),
            StoreError::Other(cause) => Self::Internal(cause),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
