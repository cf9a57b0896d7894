//! `/api/v1/users/*`: profiles.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use palaver_protocol::User;

use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/users/me", get(me))
}

/// # `GET /api/v1/users/me`
/// → `200 User`; `401 unauthorized`.
async fn me(State(state): State<AppState>, actor: Actor) -> AppResult<Json<User>> {
    Ok(Json(state.service.me(&actor).await?))
}
