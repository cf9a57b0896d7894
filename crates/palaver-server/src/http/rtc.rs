//! `/api/v1/rtc/*`: what WebRTC clients need besides signaling (which is on the
//! WebSocket: `call.*` and `rtc.signal`, see `docs/protocol.md`, "Calls").

use axum::extract::State;
use axum::Json;
use palaver_protocol::rest::IceServers;
use palaver_protocol::ErrorBody;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Actor;
use crate::error::AppResult;
use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ice_servers))
}

/// Get ICE servers for WebRTC calls.
///
/// `GET /api/v1/rtc/ice-servers`:
/// → `200 {ice_servers: [{urls, username?, credential?}], ttl_secs}`, to pass as
/// `iceServers` to `RTCPeerConnection`: the configured STUN URLs, and the TURN URLs with
/// credentials valid `ttl_secs` in the shared-secret scheme of coturn's `use-auth-secret`
/// (username `<expiry unix seconds>:<user_id>`, credential
/// base64(HMAC-SHA1(secret, username))). Empty when nothing is configured.
#[utoipa::path(
    get,
    path = "/rtc/ice-servers",
    tag = "calls",
    responses(
        (status = 200, description = "ICE servers with time-limited TURN credentials", body = IceServers),
        (status = 401, description = "unauthorized: missing or invalid credentials", body = ErrorBody)
    ),
    security(("bearer" = []), ("api_key" = []))
)]
async fn ice_servers(State(state): State<AppState>, actor: Actor) -> AppResult<Json<IceServers>> {
    Ok(Json(state.service.ice_servers(&actor)))
}
