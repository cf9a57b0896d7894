//! The one error type of the server, [`AppError`]: a stable [`ErrorCode`], a message for
//! humans, and optionally the input field at fault.
//!
//! Transport code turns it into a REST response (status from [`ErrorCode::http_status`],
//! body `{"error": {...}}`) or a WebSocket error reply. Internal failures (database,
//! I/O) become `internal` with a generic message; their details are logged here and never
//! sent to the client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use palaver_protocol::{ErrorBody, ErrorCode, ErrorDetail};

/// A failed request: what the client is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    /// For `429 rate_limited`: seconds until a retry may succeed (the `Retry-After` header).
    pub retry_after: Option<u64>,
}

/// Shorthand for results of service and transport code.
pub type AppResult<T> = Result<T, AppError>;

impl AppError {
    /// An error with `code` and a human-readable `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }

    /// `429 rate_limited`, retry after `secs` seconds.
    pub fn rate_limited(secs: u64) -> Self {
        AppError {
            retry_after: Some(secs.max(1)),
            ..AppError::new(
                ErrorCode::RateLimited,
                format!("too many attempts: try again in {} s", secs.max(1)),
            )
        }
    }

    /// `422 validation_failed` naming `field`.
    pub fn validation(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError {
            field: Some(field.into()),
            ..AppError::new(ErrorCode::ValidationFailed, message)
        }
    }

    /// `401 unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Unauthorized, message)
    }

    /// `404 not_found`.
    pub fn not_found(what: &str) -> Self {
        AppError::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    /// `500 internal`. Logs `source` (with its chain) and tells the client nothing more.
    pub fn internal(source: impl std::fmt::Display) -> Self {
        tracing::error!(error = %source, "internal error");
        AppError::new(ErrorCode::Internal, "internal server error")
    }

    /// The wire form of this error.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code,
            message: self.message.clone(),
            field: self.field.clone(),
            retry_after_secs: self.retry_after,
        }
    }
}

impl std::fmt::Display for AppError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for AppError {}

impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound => AppError::new(ErrorCode::NotFound, "not found"),
            StoreError::Conflict(what) => match what {
                "username" => AppError {
                    field: Some("username".into()),
                    ..AppError::new(ErrorCode::UsernameTaken, "that username is taken")
                },
                "email" => AppError {
                    field: Some("email".into()),
                    ..AppError::new(ErrorCode::EmailTaken, "that email is already registered")
                },
                other => AppError::internal(format!("unexpected conflict on {other}")),
            },
            StoreError::Unavailable(why) => AppError::new(ErrorCode::Unavailable, why),
            StoreError::Database(e) => AppError::internal(e),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (
            status,
            Json(ErrorBody {
                error: self.detail(),
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        response
    }
}
