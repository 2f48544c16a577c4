//! The one place where core errors become gRPC statuses.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{BadRequest, ErrorDetail, ErrorInfo, FieldViolation, RetryInfo, StatusExt};

use crate::core::Error;

/// The `ErrorInfo.domain` of every error identityd returns.
pub const ERROR_DOMAIN: &str = "identityd";

/// Maps a core error to a status with a `google.rpc.ErrorInfo` and, for bad input, a
/// `google.rpc.BadRequest`. Internal causes are logged here and never sent.
pub fn to_status(error: Error) -> Status {
    let code = match &error {
        Error::InvalidArgument(_) => Code::InvalidArgument,
        Error::InvalidCredentials
        | Error::MissingCredentials
        | Error::SessionInvalid
        | Error::TokenExpired
        | Error::TokenRevoked => Code::Unauthenticated,
        Error::TokenLimitReached(_) => Code::ResourceExhausted,
        Error::PermissionDenied(_) | Error::AccessTokenNotAllowed => Code::PermissionDenied,
        Error::LastSystemAdmin => Code::FailedPrecondition,
        Error::ConcurrentChange(_) => Code::Aborted,
        Error::NotFound(_) => Code::NotFound,
        Error::AlreadyExists { .. } => Code::AlreadyExists,
        Error::FailedPrecondition(_) => Code::FailedPrecondition,
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
    if let Error::InvalidArgument(violations) = &error {
        let violations: Vec<FieldViolation> = violations
            .iter()
            .map(|v| FieldViolation::new(v.field.clone(), v.message.clone()))
            .collect();
        details.push(ErrorDetail::from(BadRequest::new(violations)));
    }
    if let Error::TooManyFailedLogins { retry_after } = &error {
        details.push(ErrorDetail::from(RetryInfo::new(Some(*retry_after))));
    }
    Status::with_error_details_vec(code, error.to_string(), details)
}
