//! The one place where core errors become gRPC statuses.

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{BadRequest, ErrorDetail, ErrorInfo, FieldViolation, RetryInfo, StatusExt};

use crate::core::Error;

/// The `ErrorInfo.domain` of every error identityd returns.
pub const ERROR_DOMAIN: &str = "identityd";

/// How long a client is asked to wait (`google.rpc.RetryInfo`) before retrying an answer that
/// says to retry: UNAVAILABLE, and RESOURCE_EXHAUSTED with `OVERLOADED`.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// Reasons of the statuses this layer answers by itself, for requests whose message never reached
/// a handler. The core's reasons are in [`crate::core::error::reason`]; none is in both.
pub mod reason {
    /// The request message is not a valid protobuf encoding of the call's request type.
    /// INVALID_ARGUMENT.
    pub const MALFORMED_MESSAGE: &str = "MALFORMED_MESSAGE";
    /// The request message is larger than the server accepts. RESOURCE_EXHAUSTED, not retryable.
    pub const MESSAGE_TOO_LARGE: &str = "MESSAGE_TOO_LARGE";
    /// The server is shutting down and ended the call at its drain deadline. UNAVAILABLE: call
    /// again, and another instance will answer.
    pub const SHUTTING_DOWN: &str = "SHUTTING_DOWN";
    /// The server has as many calls in flight as it takes (`IDENTITYD_MAX_IN_FLIGHT`, named in
    /// `ErrorInfo.metadata["max_in_flight"]`). RESOURCE_EXHAUSTED with a `RetryInfo`: call again
    /// later, or another instance.
    pub const TOO_MANY_CALLS: &str = "TOO_MANY_CALLS";
}

/// Maps a core error to a status with a `google.rpc.ErrorInfo` and, for bad input, a
/// `google.rpc.BadRequest`. Internal causes are logged here and never sent.
pub fn to_status(error: Error) -> Status {
    let code = match &error {
        Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::InvalidCredentials
        | Error::MissingCredentials
        | Error::MalformedCredentials
        | Error::AmbiguousCredentials
        | Error::SessionInvalid
        | Error::JwtInvalid
        | Error::SsoFailed
        | Error::TokenExpired
        | Error::TokenRevoked => Code::Unauthenticated,
        Error::TokenLimitReached(_) => Code::ResourceExhausted,
        Error::PermissionDenied(_) | Error::AccessTokenNotAllowed | Error::ImpersonationNotAllowed => {
            Code::PermissionDenied
        }
        Error::LastSystemAdmin => Code::FailedPrecondition,
        Error::ConcurrentChange(_) => Code::Aborted,
        Error::NotFound(_) => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::FailedPrecondition(_) | Error::PasswordChangeRequired => Code::FailedPrecondition,
        Error::Overloaded | Error::TooManyFailedLogins { .. } => Code::ResourceExhausted,
        Error::Unimplemented(_) => Code::Unimplemented,
        Error::Unavailable(_) => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    };
    match &error {
        Error::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
        Error::Unavailable(cause) => tracing::warn!(error = ?cause, "database unavailable"),
        _ => {}
    }
    let mut metadata = HashMap::new();
    if let Error::AlreadyExists { field } = &error {
        metadata.insert("field".to_owned(), field.clone());
    }
    let mut details = vec![ErrorDetail::from(ErrorInfo::new(
        error.reason(),
        ERROR_DOMAIN,
        metadata,
    ))];
    if matches!(error, Error::Unavailable(_) | Error::Overloaded) {
        details.push(ErrorDetail::from(RetryInfo::new(Some(RETRY_DELAY))));
    }
    if let Error::TooManyFailedLogins { retry_after } = &error {
        details.push(ErrorDetail::from(RetryInfo::new(Some(*retry_after))));
    }
    if let Error::InvalidArgument(violations) = &error {
        let violations: Vec<FieldViolation> = violations
            .iter()
            .map(|v| FieldViolation::new(v.field.clone(), v.message.clone()))
            .collect();
        details.push(ErrorDetail::from(BadRequest::new(violations)));
    }
    Status::with_error_details_vec(code, error.to_string(), details)
}

/// The answer to a request whose message could not be decoded; `cause` is the decoder's account.
pub fn malformed_message(cause: &str) -> Status {
    let info = ErrorInfo::new(reason::MALFORMED_MESSAGE, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details_vec(
        Code::InvalidArgument,
        format!("the request message is not a valid protobuf message of the call's request type ({cause})"),
        [ErrorDetail::from(info)],
    )
}

/// The answer to a request message over the size limit, which `ErrorInfo.metadata["max_bytes"]` names.
pub fn message_too_large(max_bytes: usize) -> Status {
    let metadata = HashMap::from([("max_bytes".to_owned(), max_bytes.to_string())]);
    let info = ErrorInfo::new(reason::MESSAGE_TOO_LARGE, ERROR_DOMAIN, metadata);
    Status::with_error_details_vec(
        Code::ResourceExhausted,
        format!("the request message is larger than the {max_bytes} bytes this server accepts"),
        [ErrorDetail::from(info)],
    )
}

/// The status a call still open at the drain deadline ends with.
pub fn shutting_down() -> Status {
    let info = ErrorInfo::new(reason::SHUTTING_DOWN, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details_vec(
        Code::Unavailable,
        "the server is shutting down: call again",
        [
            ErrorDetail::from(info),
            ErrorDetail::from(RetryInfo::new(Some(RETRY_DELAY))),
        ],
    )
}

/// The answer to a call beyond the server's limit of calls in flight.
pub fn too_many_calls(limit: usize) -> Status {
    let metadata = HashMap::from([("max_in_flight".to_owned(), limit.to_string())]);
    let info = ErrorInfo::new(reason::TOO_MANY_CALLS, ERROR_DOMAIN, metadata);
    Status::with_error_details_vec(
        Code::ResourceExhausted,
        format!("the server has {limit} calls in flight, as many as it takes: call again later"),
        [
            ErrorDetail::from(info),
            ErrorDetail::from(RetryInfo::new(Some(RETRY_DELAY))),
        ],
    )
}
