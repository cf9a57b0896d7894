//! `GET /api/v1/server`: what a client needs to know about this server before and after
//! signing in: its input limits, what uploads it takes, how accounts are made and which
//! sign-in providers it offers. Public (no credentials), nothing secret.
//!
//! Every value is read from the running configuration (`[limits]`, `[attachments]`,
//! `[email]`, `[auth]`), the same values the server enforces, so a client never has to
//! hard-code them.

use axum::extract::State;
use axum::Json;
use palaver_protocol::rest::AuthProvider;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_server_info))
}

/// The answer to `GET /api/v1/server`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerInfo {
    /// This server's version (the `palaver` crate's, e.g. `0.1.0`).
    pub version: &'static str,
    pub limits: ServerLimits,
    pub uploads: UploadLimits,
    pub accounts: AccountOptions,
    /// The sign-in providers, as `GET /api/v1/auth/providers` lists them.
    pub providers: Vec<AuthProvider>,
}

/// Input limits (`[limits]`): lengths in Unicode scalar values (characters). Longer
/// input is refused with `422 validation_failed`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerLimits {
    /// The longest message `content`.
    pub message_max_chars: usize,
    pub username_min_chars: usize,
    pub username_max_chars: usize,
    pub password_min_chars: usize,
    pub password_max_chars: usize,
    pub room_name_max_chars: usize,
    pub room_topic_max_chars: usize,
}

/// What `POST /api/v1/attachments` accepts (`[attachments]`).
#[derive(Debug, Serialize, ToSchema)]
pub struct UploadLimits {
    /// The largest file, in bytes; larger → `413 payload_too_large`.
    pub max_bytes: usize,
    /// Media types accepted, as sniffed from the file's bytes (the client's claim is
    /// ignored); others → `415 unsupported_media_type`.
    pub allowed_types: Vec<String>,
}

/// How accounts are made and recovered.
#[derive(Debug, Serialize, ToSchema)]
pub struct AccountOptions {
    /// Whether `POST /api/v1/auth/register` takes new accounts (always true today; a
    /// client shows its sign-up form only when it is).
    pub registration_open: bool,
    /// Whether this server sends e-mail (`[email]` is set): a new account must confirm
    /// its address before it can log in, and "forgot password" links work. Without it,
    /// `POST /api/v1/auth/password-reset` answers `409 email_disabled`.
    pub email_enabled: bool,
}

/// Describe this server.
///
/// `GET /api/v1/server` → `200 {version, limits, uploads, accounts, providers}`: the
/// limits the server enforces on messages, names and passwords, the largest upload and
/// the accepted upload types, whether sign-up is open and e-mail is sent, and the sign-in
/// providers. Needs no credentials.
#[utoipa::path(
    get,
    path = "/server",
    tag = "server",
    responses((status = 200, description = "this server's limits and options", body = ServerInfo))
)]
async fn get_server_info(State(state): State<AppState>) -> Json<ServerInfo> {
    let service = &state.service;
    let limits = service.limits();
    Json(ServerInfo {
        version: env!("CARGO_PKG_VERSION"),
        limits: ServerLimits {
            message_max_chars: limits.message_max_chars,
            username_min_chars: limits.username_min_chars,
            username_max_chars: limits.username_max_chars,
            password_min_chars: limits.password_min_chars,
            password_max_chars: limits.password_max_chars,
            room_name_max_chars: limits.room_name_max_chars,
            room_topic_max_chars: limits.room_topic_max_chars,
        },
        uploads: UploadLimits {
            max_bytes: service.attachment_limit(),
            allowed_types: service.attachments.allowed_types.clone(),
        },
        accounts: AccountOptions {
            registration_open: true,
            email_enabled: service.email_enabled(),
        },
        providers: service.sign_in_providers(),
    })
}
