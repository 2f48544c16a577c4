//! The one place where errors become REST answers: AgileApps XML messages with stable codes, and
//! the HTTP status each gRPC code stands for.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use tonic::Code;

use super::xml::{self, Message, MessageReply};
use crate::core::Error;
use crate::grpc::error::RETRY_DELAY;

/// Reasons of the answers the REST layer gives by itself, before any core call.
pub mod reason {
    /// The body is not well-formed XML, not rooted at `<platform>`, or not the resource's shape. 400.
    pub const MALFORMED_XML: &str = "MALFORMED_XML";
    /// The body declares a document type (DOCTYPE), which could declare entities. 400.
    pub const XML_DOCTYPE_REFUSED: &str = "XML_DOCTYPE_REFUSED";
    /// The body is not JSON of the call's request message. 400.
    pub const MALFORMED_JSON: &str = "MALFORMED_JSON";
    /// The body is larger than the server accepts. 413.
    pub const BODY_TOO_LARGE: &str = "BODY_TOO_LARGE";
    /// The body's content type is not the one the resource reads. 415.
    pub const UNSUPPORTED_CONTENT_TYPE: &str = "UNSUPPORTED_CONTENT_TYPE";
    /// A cookie-authenticated change without a non-simple content type or `X-Requested-With`. 403.
    pub const CROSS_SITE_REQUEST: &str = "CROSS_SITE_REQUEST";
    /// No resource at this path. 404.
    pub const NO_SUCH_RESOURCE: &str = "NO_SUCH_RESOURCE";
}

/// The AgileApps `<code>` of each reason, core and REST alike. Codes never change once published.
fn code_of(reason: &str) -> u32 {
    use crate::core::error::reason as core;
    match reason {
        core::INVALID_ARGUMENT => 1001,
        core::INVALID_CREDENTIALS => 1101,
        core::MISSING_CREDENTIALS => 1102,
        core::AMBIGUOUS_CREDENTIALS => 1103,
        core::SESSION_INVALID => 1104,
        core::TOKEN_EXPIRED => 1105,
        core::TOKEN_REVOKED => 1106,
        core::TOKEN_LIMIT_REACHED => 1201,
        core::OVERLOADED => 1202,
        core::TOO_MANY_FAILED_LOGINS => 1203,
        core::PERMISSION_DENIED => 1301,
        core::ACCESS_TOKEN_NOT_ALLOWED => 1302,
        core::IMPERSONATION_NOT_ALLOWED => 1303,
        core::LAST_SYSTEM_ADMIN => 1401,
        core::CONCURRENT_CHANGE => 1402,
        core::ALREADY_EXISTS => 1403,
        core::FAILED_PRECONDITION => 1404,
        core::PASSWORD_CHANGE_REQUIRED => 1405,
        core::NOT_FOUND => 1501,
        core::NOT_IMPLEMENTED => 1601,
        core::STORE_UNAVAILABLE => 1701,
        reason::MALFORMED_XML => 1801,
        reason::XML_DOCTYPE_REFUSED => 1802,
        reason::MALFORMED_JSON => 1803,
        reason::BODY_TOO_LARGE => 1804,
        reason::UNSUPPORTED_CONTENT_TYPE => 1805,
        reason::CROSS_SITE_REQUEST => 1806,
        reason::NO_SUCH_RESOURCE => 1807,
        _ => 1999,
    }
}

/// The HTTP status of a gRPC code (the mapping Google's HTTP APIs use, with 422 for bad input
/// in the AgileApps dialect; `invalid_argument` says which).
pub fn http_status(code: Code, invalid_argument: StatusCode) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => invalid_argument,
        Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => StatusCode::CONFLICT,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// An AgileApps error answer.
#[derive(Debug)]
pub struct XmlError {
    status: StatusCode,
    reason: &'static str,
    description: String,
    retry_after: Option<Duration>,
}

impl XmlError {
    /// An answer the REST layer gives by itself.
    pub fn new(status: StatusCode, reason: &'static str, description: impl Into<String>) -> Self {
        Self {
            status,
            reason,
            description: description.into(),
            retry_after: None,
        }
    }
}

impl From<Error> for XmlError {
    /// The same code and reason as the gRPC status of `error` (whose mapping logs internal causes).
    fn from(error: Error) -> Self {
        let retry_after = match &error {
            Error::TooManyFailedLogins { retry_after } => Some(*retry_after),
            Error::Overloaded | Error::Unavailable(_) => Some(RETRY_DELAY),
            _ => None,
        };
        let reason = error.reason();
        let status = crate::grpc::error::to_status(error);
        Self {
            status: http_status(status.code(), StatusCode::UNPROCESSABLE_ENTITY),
            reason,
            description: status.message().to_owned(),
            retry_after,
        }
    }
}

impl IntoResponse for XmlError {
    fn into_response(self) -> Response {
        let body = xml::write(&MessageReply {
            message: Message {
                code: code_of(self.reason),
                description: self.description,
                reason: Some(self.reason),
            },
        });
        let mut response = (self.status, [(CONTENT_TYPE, "application/xml")], body).into_response();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs().max(1).to_string();
            if let Ok(value) = http::HeaderValue::from_str(&seconds) {
                response.headers_mut().insert(RETRY_AFTER, value);
            }
        }
        response
    }
}
