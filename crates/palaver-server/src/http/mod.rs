//! The REST API: one module per resource, each owning its routes; merged here with the
//! WebSocket route, the health check, JSON fallbacks for unknown routes and methods, the
//! per-IP request budget, CORS, and the OpenAPI document with its reference page.
//!
//! Every handler is short: extract, call `service/`, wrap the result. Errors are
//! [`AppError`](crate::error::AppError)s, rendered as `{"error": {"code", "message"}}`.
//!
//! A new route's `#[utoipa::path]` follows the conventions in [`apidoc`] (a plain summary
//! line, a unique handler name, only the route's own responses, constraints in the
//! schema); `tests/api/openapi.rs` and `.ci/schemathesis.sh` check them.

mod admin;
mod apidoc;
mod attachments;
mod auth;
mod avatars;
pub mod extract;
mod health;
mod invitations;
mod messages;
mod moderation;
mod notifications;
mod oidc;
mod rooms;
mod rtc;
mod search;
mod server_info;
mod two_factor;
mod users;
mod web;

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use palaver_protocol::ErrorCode;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::config::CorsConfig;
use crate::error::AppError;
use crate::AppState;
use extract::ClientAddr;

/// The reference page's policy: Swagger UI's own scripts and styles from `/api/docs/`
/// (its page has no inline script; its components set inline styles), images from
/// `data:`, requests only to this origin, and no framing.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The OpenAPI 3.1 document's fixed parts; paths and schemas are collected from the
/// `#[utoipa::path]` attributes of the handlers as their routes are registered, so every
/// route is documented by construction.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Palaver",
        description = "Self-hosted real-time chat and WebRTC signaling server. REST under /api/v1; live events over the WebSocket at /api/v1/ws (frames documented in docs/protocol.md), or over Socket.IO at /socket.io/ (docs/socketio.md), or over SignalR at /hubs/chat and /hubs/webrtc (docs/signalr.md). Apps of the Go signaling server (seed 003) use /compat/signaling/ (register, updatepassword, regenerate, ws; docs/signaling-compat.md), which are protocol endpoints outside this document. Errors: {\"error\": {\"code\", \"message\", \"field\"?}}.",
        license(name = "MIT OR Apache-2.0")
    ),
    modifiers(&SecuritySchemes),
    components(schemas(messages::Emoji, palaver_protocol::rest::SearchSort)),
    tags(
        (name = "auth", description = "Register, log in, refresh, log out; sign in with OpenID Connect providers and GitHub"),
        (name = "users", description = "Profiles, password, account deletion, user search"),
        (name = "sessions", description = "The caller's login sessions"),
        (name = "api_keys", description = "API keys for bots and devices"),
        (name = "blocks", description = "Blocking other users"),
        (name = "admin", description = "Account administration (admins only)"),
        (name = "moderation", description = "Message reports, for moderators and admins"),
        (name = "rooms", description = "Rooms, members and moderation"),
        (name = "invitations", description = "Invitations to private rooms; direct messages"),
        (name = "messages", description = "Messages, edits, reactions, read markers, attachments"),
        (name = "search", description = "Full-text search over the messages the caller may read"),
        (name = "notifications", description = "Notification settings per room; Web Push subscriptions (docs/notifications.md)"),
        (name = "calls", description = "ICE servers and TURN credentials for WebRTC calls (signaling is on the WebSocket)"),
        (name = "websocket", description = "The live connection"),
        (name = "server", description = "This server's limits and options, for clients"),
        (name = "health", description = "Liveness")
    )
)]
struct ApiDoc;

/// Declares the two ways to authenticate: a bearer token (an access JWT or an API key) and
/// the `X-API-Key` header.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or plv_ API key")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
    }
}

/// The routes of `/api/v1` and `/healthz`, and the OpenAPI document describing them.
pub fn api(
    attachment_limit: usize,
) -> (Router<AppState>, Router<AppState>, utoipa::openapi::OpenApi) {
    let v1 = OpenApiRouter::new()
        .merge(auth::router())
        .merge(oidc::router())
        .merge(users::router())
        .merge(avatars::router())
        .merge(two_factor::router())
        .merge(rooms::router())
        .merge(invitations::router())
        .merge(messages::router())
        .merge(search::router())
        .merge(moderation::router())
        .merge(notifications::router())
        .merge(attachments::router(attachment_limit))
        .merge(admin::router())
        .merge(rtc::router())
        .merge(server_info::router())
        .merge(crate::gateway::router());
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .split_for_parts();
    let (health, health_doc) = health::router().split_for_parts();
    doc.merge(health_doc);
    apidoc::complete(&mut doc);
    (api, health, doc)
}

/// The whole HTTP application: `/api/v1/...` (REST and the WebSocket), `/healthz`, the
/// OpenAPI document at `/api/v1/openapi.json` and its reference page at `/api/docs`
/// (Swagger UI, served from the binary: it works offline).
///
/// Every response carries `X-Content-Type-Options: nosniff` and
/// `Referrer-Policy: no-referrer`; the reference page a Content-Security-Policy and
/// `X-Frame-Options: DENY`. Every request gets its [`ClientAddr`], an access log line
/// (target `palaver_server::access`, level info: method, route template, status,
/// duration) and is counted in `palaver_http_requests_total`. Socket.IO is served at
/// `/socket.io/` ([`crate::gateway::socketio`]); the returned handle closes its
/// transports at shutdown.
pub fn router(state: AppState) -> (Router, socketioxide::SocketIo) {
    let body_limit = state.service.limits().http_body_max_bytes;
    let (api, health, doc) = api(state.service.attachment_limit());
    let (socketio, io) = crate::gateway::socketio::layer(&state);
    let mut app = api
        .merge(crate::gateway::signalr::router())
        .merge(crate::gateway::signaling_compat::router())
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
        .merge(health)
        .merge(web::router())
        .merge(docs(doc))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(middleware::from_fn_with_state(state.clone(), access_log))
        // Socket.IO at `/socket.io/` (long-polls are not access-logged or counted per IP
        // like REST requests; CORS applies to its polling requests).
        .layer(socketio)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            client_address,
        ));
    if let Some(cors) = cors_layer(&state.cors) {
        app = app.layer(cors);
    }
    (app.with_state(state), io)
}

/// Swagger UI at `/api/docs` and the document at `/api/v1/openapi.json`, with their
/// Content-Security-Policy and framing refused.
fn docs(doc: utoipa::openapi::OpenApi) -> Router<AppState> {
    Router::from(SwaggerUi::new("/api/docs").url("/api/v1/openapi.json", doc))
        .layer(SetResponseHeaderLayer::overriding(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        ))
        .layer(SetResponseHeaderLayer::overriding(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
}

/// Works out the request's [`ClientAddr`] (the TCP peer, or behind a trusted proxy the
/// address it forwards; see [`crate::net`]) and stores it in the request's extensions.
async fn client_address(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    if let Some(peer) = peer {
        let addr = crate::net::client_addr(&state.client_addr, peer, request.headers());
        request.extensions_mut().insert(ClientAddr(addr));
    }
    next.run(request).await
}

/// One access log line per request (target `palaver_server::access`, info) and the HTTP
/// metrics: the method, the matched route template (`/api/v1/rooms/{room_id}`, never the
/// raw path, so no ids or query strings), the status and the time to the response head.
async fn access_log(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    state
        .service
        .metrics()
        .observe_http(method.as_str(), &route, status, elapsed.as_secs_f64());
    tracing::info!(
        target: "palaver_server::access",
        method = %method,
        route = %route,
        status,
        duration_ms = elapsed.as_secs_f64() * 1000.0,
        "request"
    );
    response
}

/// Refuses a request with `429 rate_limited` once its client address (an IPv4 address or
/// an IPv6 /64) has spent its budget (`rate_limits.requests_per_ip`).
async fn request_budget(
    State(state): State<AppState>,
    client: Option<ClientAddr>,
    request: Request,
    next: Next,
) -> Response {
    let key = client.map(|ClientAddr(ip)| crate::net::address_key(ip));
    match state.requests.hit(key.as_deref().unwrap_or_default()).await {
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
