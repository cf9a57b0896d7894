//! `GET /healthz`: whether this node can serve.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use crate::AppState;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(healthz))
}

/// # `GET /healthz`
/// → `200 {"status": "ok"}` when the database answers, else `503 {"status": "unavailable"}`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "the database answers"), (status = 503, description = "the database does not answer"))
)]
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
