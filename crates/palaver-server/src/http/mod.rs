//! The REST API: one module per resource, each owning its routes; merged here with the
//! WebSocket route, the health check and JSON fallbacks for unknown routes and methods.
//!
//! Every handler is short: extract, call `service/`, wrap the result. Errors are
//! [`AppError`](crate::error::AppError)s, rendered as `{"error": {"code", "message"}}`.

mod auth;
pub mod extract;
mod health;
mod messages;
mod rooms;
mod users;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use palaver_protocol::ErrorCode;

use crate::error::AppError;
use crate::AppState;

/// The whole HTTP application: `/api/v1/...`, `/api/v1/ws` and `/healthz`.
pub fn router(state: AppState) -> Router {
    let body_limit = state.service.limits().http_body_max_bytes;
    let api = Router::new()
        .merge(auth::router())
        .merge(users::router())
        .merge(rooms::router())
        .merge(messages::router())
        .merge(crate::gateway::router());
    Router::new()
        .nest("/api/v1", api)
        .merge(health::router())
        .fallback(|| async { AppError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}
