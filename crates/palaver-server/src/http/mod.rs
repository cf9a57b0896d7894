//! The REST API: one module per resource, each owning its routes; merged here with the
//! WebSocket route, the health check, JSON fallbacks for unknown routes and methods, the
//! per-IP request budget and CORS.
//!
//! Every handler is short: extract, call `service/`, wrap the result. Errors are
//! [`AppError`](crate::error::AppError)s, rendered as `{"error": {"code", "message"}}`.

mod admin;
mod auth;
pub mod extract;
mod health;
mod messages;
mod rooms;
mod users;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use palaver_protocol::ErrorCode;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::config::CorsConfig;
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
        .merge(admin::router())
        .merge(crate::gateway::router());
    let mut app = Router::new()
        .nest("/api/v1", api)
        .fallback(|| async { AppError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            AppError::new(
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_budget,
        ))
        .merge(health::router())
        .layer(DefaultBodyLimit::max(body_limit));
    if let Some(cors) = cors_layer(&state.cors) {
        app = app.layer(cors);
    }
    app.with_state(state)
}

/// Refuses a request with `429 rate_limited` once its IP address has spent its budget
/// (`rate_limits.requests_per_ip`).
async fn request_budget(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    match state.requests.hit(&peer.ip().to_string()) {
        Ok(()) => next.run(request).await,
        Err(limited) => {
            AppError::rate_limited(limited.retry_after.as_secs_f64().ceil() as u64).into_response()
        }
    }
}

/// CORS for the configured origins (none configured: no CORS headers, so browsers allow
/// only same-origin pages). Tokens travel in headers, never cookies, so credentials mode
/// is not enabled.
fn cors_layer(config: &CorsConfig) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = config
        .allowed_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o.trim_end_matches('/')).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("x-api-key"),
            ])
            .expose_headers([header::RETRY_AFTER])
            .max_age(std::time::Duration::from_secs(3600)),
    )
}
