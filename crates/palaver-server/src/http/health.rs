//! `GET /healthz`: whether this node can serve.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

/// Liveness: does the database answer.
///
/// `GET /healthz`:
/// → `200 {"status": "ok"}` when the database answers, else `503 {"status": "unavailable"}`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "the database answers"), (status = 503, description = "the database does not answer"))
)]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.service.store_ready().await {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable"})),
        )
    }
}

/// Readiness: can this node take traffic.
///
/// `GET /readyz`:
/// → `200 {"status": "ready", "store": "ok", "broker": "ok"}` when this node can take
/// traffic; `503` with the failing part `"unavailable"` otherwise. With `redis_url` set
/// the body also has `"redis": "ok" | "unavailable"` (a PING answered within a second;
/// unavailable makes it `503`), and `"broker"` says whether this node is subscribed to
/// the other nodes' events.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready")))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let store = state.service.store_ready().await;
    // The in-memory broker is always ready; the Redis one while it is subscribed.
    let broker = state.service.broker.is_ready();
    let redis = match &state.service.redis {
        Some(redis) => Some(redis.ping().await),
        None => None,
    };
    let ready = store && broker && redis.unwrap_or(true);
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "store": word(store),
        "broker": word(broker),
    });
    if let (Some(redis), Some(fields)) = (redis, body.as_object_mut()) {
        fields.insert("redis".to_owned(), json!(word(redis)));
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body))
}

/// Prometheus metrics.
///
/// `GET /metrics`:
/// → `200` Prometheus text exposition (see `metrics.rs` for the list).
#[utoipa::path(get, path = "/metrics", tag = "health",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.service.metrics().render(),
    )
}
