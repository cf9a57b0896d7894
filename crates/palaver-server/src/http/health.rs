//! `GET /healthz`: whether this node can serve.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// # `GET /healthz`
/// → `200 {"status": "ok"}` when the database answers, else `503 {"status": "unavailable"}`.
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if state.service.store.database.ping().await {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "unavailable"})),
        )
    }
}
