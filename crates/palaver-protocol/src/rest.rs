//! Request and response bodies of the REST API under `/api/v1`.
//!
//! Unknown fields in requests are ignored; missing required fields or fields of the wrong
//! type are answered with `422 validation_failed` naming the field.

use serde::{Deserialize, Serialize};

use crate::model::{
    Invitation, Member, MemberRole, Message, MessageEdit, PublicUser, Role, Room, User, Visibility,
};

/// `POST /api/v1/auth/register`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RegisterRequest {
    /// 3–32 characters of `[a-z0-9_.-]`.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 3, max_length = 32, pattern = "^[a-z0-9_.-]+$")
    )]
    pub username: String,
    /// A valid address (RFC 5322 addr-spec); stored lower-cased.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    /// 8–128 characters.
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub password: String,
}

/// `POST /api/v1/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoginRequest {
    /// A username or an email address (matched case-insensitively).
    pub login: String,
    pub password: String,
    /// For accounts with two-factor codes: a current 6-digit TOTP code (RFC 6238) or an
    /// unused recovery code. Without it such a login answers `401 two_factor_required`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// `GET /api/v1/users/me/two-factor`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TwoFactorStatus {
    /// Whether password logins need a code.
    pub enabled: bool,
    /// Unused recovery codes (0 when not enabled).
    pub recovery_codes_left: i64,
}

/// `POST /api/v1/users/me/two-factor`: start a setup (re-authenticating with the
/// password).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BeginTwoFactorRequest {
    pub password: String,
}

/// The answer to [`BeginTwoFactorRequest`]: what an authenticator app needs. Nothing is
/// required at login until the setup is confirmed with a code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TwoFactorSetup {
    /// The shared secret, base32 (RFC 4648, no padding), for typing into an app.
    pub secret: String,
    /// `otpauth://totp/...` (the Key URI Format apps read from the QR code): SHA-1, 6
    /// digits, 30-second period.
    pub otpauth_uri: String,
    /// The QR code of `otpauth_uri` as an SVG document, rendered by the server.
    pub qr_svg: String,
}

/// A two-factor code: a 6-digit TOTP code or (where the route says so) a recovery code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TwoFactorCode {
    pub code: String,
}

/// Recovery codes, shown once: each signs in once in place of a TOTP code.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// The answer to register and login: the user and a fresh token pair.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthResponse {
    pub user: User,
    /// A JWT (HS256) to send as `Authorization: Bearer <access_token>`.
    pub access_token: String,
    /// An opaque 256-bit token (base64url), stored by the server only as a hash. Absent
    /// (empty when deserialized) when the request asked for `?refresh=cookie`: the token
    /// is then in the `palaver_refresh` cookie only, out of reach of page scripts.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub refresh_token: String,
    /// Always `"Bearer"`.
    pub token_type: String,
    /// Lifetime of the access token, in seconds.
    pub expires_in: u64,
}

/// `POST /api/v1/rooms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateRoomRequest {
    /// 1–100 characters after trimming, no control characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    pub visibility: Visibility,
    /// At most 1000 characters after trimming.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 1000))]
    pub topic: Option<String>,
}

/// `GET /api/v1/rooms?limit=&after=` and `GET /api/v1/rooms/public?q=&limit=&after=`: a
/// page of rooms.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RoomList {
    pub rooms: Vec<Room>,
    /// Pass as `after` for the next page (an opaque cursor); `null` on the last page.
    #[serde(default)]
    pub next: Option<String>,
}

/// `POST /api/v1/rooms/{room_id}/messages` (the WebSocket `message.send` carries the same
/// fields plus `room_id`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SendMessageRequest {
    /// 1–4000 characters (configurable), not only whitespace.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4000, pattern = r"\S")
    )]
    pub content: String,
    /// Idempotency key, 1–128 characters: a send repeated with the same `client_id` by
    /// the same sender in the same room returns the original message.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 128,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub client_id: Option<String>,
    /// The id of a message in the same room this one replies to.
    #[serde(default)]
    pub reply_to: Option<String>,
    /// An attachment (from `POST /api/v1/attachments`, uploaded by the sender) makes this
    /// an `attachment` message; `content` is then an optional caption.
    #[serde(default)]
    pub attachment_id: Option<String>,
}

/// `GET /api/v1/rooms/{room_id}/messages?before=&after=&limit=`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessagePage {
    /// Ascending by `seq`.
    pub messages: Vec<Message>,
    /// Whether more messages exist beyond this page in the direction paged
    /// (older for `before` or no cursor, newer for `after` alone).
    pub has_more: bool,
}

/// `POST /api/v1/auth/refresh`: exchanges a refresh token for a new pair (the old one is
/// spent).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshRequest {
    /// The refresh token; may be omitted (or the body left empty) when the
    /// `palaver_refresh` cookie carries it.
    #[serde(default)]
    pub refresh_token: String,
}

/// A sign-in provider, as listed by `GET /api/v1/auth/providers` for the web client's
/// buttons.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthProvider {
    /// The configured id (`[[auth.oidc]] id`) or `github`.
    pub id: String,
    pub display_name: String,
    /// Where the browser navigates to sign in: `/api/v1/auth/oidc/{id}/start` (a path on
    /// this server).
    pub start_url: String,
}

/// The answer to `POST /api/v1/auth/oidc/{provider}/link-start`: the provider's
/// authorization URL, for the browser to navigate to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkStartResponse {
    pub url: String,
}

/// `POST /api/v1/auth/link/confirm`: the owner of an existing account confirms linking a
/// provider account whose verified e-mail matched it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LinkConfirmRequest {
    /// The `link` parameter the sign-in callback redirected to (`/?link=<token>`).
    pub token: String,
    /// The existing account's password.
    pub password: String,
}

/// A sign-in identity linked to the caller's account, as listed by
/// `GET /api/v1/users/me/identities`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Identity {
    pub id: String,
    /// The provider's id (`[[auth.oidc]] id` or `github`).
    pub provider: String,
    /// The provider's verified e-mail address when linked, if it gave one.
    pub email: Option<String>,
    /// When it was linked (RFC 3339).
    pub created_at: String,
}

/// A login session (one per login on a device), as listed by
/// `GET /api/v1/users/me/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    pub id: String,
    /// From the login request's `User-Agent`.
    pub device_name: Option<String>,
    /// The address the login came from.
    pub ip: Option<String>,
    pub created_at: String,
    /// When a token of this session was last refreshed (or the session created).
    pub last_used_at: String,
    /// When the refresh token stops working unless refreshed.
    pub expires_at: String,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

/// `GET /api/v1/users/me/sessions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    pub sessions: Vec<SessionInfo>,
}

/// `PATCH /api/v1/users/me`: each field absent = unchanged, `null` = cleared.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateProfileRequest {
    /// At most 64 characters.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub display_name: Option<Option<String>>,
    /// At most 64 characters.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub first_name: Option<Option<String>>,
    /// At most 64 characters.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 64,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub last_name: Option<Option<String>>,
    /// At most 500 characters.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub bio: Option<Option<String>>,
    /// At most 100 characters.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 100,
            pattern = r"^[^\u0000-\u0009\u000b-\u001f\u007f-\u009f]*$"
        )
    )]
    pub location: Option<Option<String>>,
    /// An `http` or `https` URL, at most 500 characters; blank clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^\s*(https?://([a-z0-9]+\.)*[a-z][a-z0-9]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?\s*)?$"
        )
    )]
    pub website: Option<Option<String>>,
    /// An `http` or `https` URL, at most 500 characters; blank clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 500,
            pattern = r"^\s*(https?://([a-z0-9]+\.)*[a-z][a-z0-9]*(:[1-9][0-9]{0,3})?(/[A-Za-z0-9._~/-]*)?\s*)?$"
        )
    )]
    pub avatar_url: Option<Option<String>>,
    /// A JSON object replacing the stored settings (at most 16 KiB serialized).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub settings: Option<serde_json::Value>,
}

/// Distinguishes an absent field (`None`) from an explicit `null` (`Some(None)`).
fn nullable<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

/// `GET /api/v1/users?q=&limit=&after=`: a page of users whose username starts with `q`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserList {
    pub users: Vec<PublicUser>,
    /// Pass as `after` for the next page; `null` on the last page.
    pub next: Option<String>,
}

/// `PUT /api/v1/users/me/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangePasswordRequest {
    pub current_password: String,
    pub new_password: String,
    /// Also revoke every API key of the account (their WebSockets close with 4001).
    /// Default `false`.
    #[serde(default)]
    pub revoke_api_keys: bool,
}

/// The answer of a request that may send a mail, when the server sends e-mail: always
/// `{"status": "check_your_inbox"}`, whether or not a mail went out (so it tells nothing
/// about the address; see `docs/email.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckInbox {
    /// Always `"check_your_inbox"`.
    #[cfg_attr(feature = "openapi", schema(example = "check_your_inbox"))]
    pub status: String,
}

impl CheckInbox {
    /// `{"status": "check_your_inbox"}`.
    pub fn new() -> Self {
        CheckInbox {
            status: "check_your_inbox".into(),
        }
    }
}

impl Default for CheckInbox {
    fn default() -> Self {
        Self::new()
    }
}

/// `POST /api/v1/auth/verify-email`: the token of a mailed verification link (the part
/// after `#verify-email=`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VerifyEmailRequest {
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub token: String,
}

/// The answer to `POST /api/v1/auth/verify-email`: the address now verified (for an
/// e-mail change, the account's new address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailVerified {
    /// Always `"verified"`.
    pub status: String,
    pub email: String,
}

/// `POST /api/v1/auth/resend-verification`: the account's username or e-mail address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ResendVerificationRequest {
    #[cfg_attr(feature = "openapi", schema(max_length = 254))]
    pub login: String,
}

/// `POST /api/v1/auth/password-reset`: the account's e-mail address.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordResetRequest {
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
}

/// `POST /api/v1/auth/password-reset/confirm`: the token of the mailed reset link (the
/// part after `#reset-password=`) and the new password.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasswordResetConfirm {
    #[cfg_attr(feature = "openapi", schema(max_length = 128))]
    pub token: String,
    /// 8–128 characters, under the password policy.
    #[cfg_attr(feature = "openapi", schema(min_length = 8, max_length = 128))]
    pub new_password: String,
}

/// `PUT /api/v1/users/me/email`: the new address, and the current password to confirm.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChangeEmailRequest {
    /// A valid address (RFC 5322 addr-spec); stored lower-cased.
    #[cfg_attr(feature = "openapi", schema(format = Email, max_length = 254))]
    pub email: String,
    pub password: String,
}

/// `DELETE /api/v1/users/me`: the password confirms the deletion.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeleteAccountRequest {
    pub password: String,
}

/// `POST /api/v1/users/me/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateApiKeyRequest {
    /// 1–100 characters, for the owner's own reference.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: String,
    /// RFC 3339; the key stops working then. Must be in the future.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: Option<String>,
}

/// An API key as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    /// The start of the key (`plv_` and its id), to recognise it.
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
}

/// The answer to creating a key: the only time the whole key is shown.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub info: ApiKeyInfo,
    /// The key: `plv_<id>_<secret>`. Send it as `Authorization: Bearer <key>` or
    /// `X-API-Key: <key>`.
    pub key: String,
}

/// `GET /api/v1/users/me/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyList {
    pub api_keys: Vec<ApiKeyInfo>,
}

/// `GET /api/v1/users/me/blocks`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockList {
    pub blocked: Vec<PublicUser>,
}

/// A user as an admin sees it: the full profile plus account state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUser {
    #[serde(flatten)]
    pub user: User,
    /// RFC 3339 when the account was disabled, else `null`.
    pub disabled_at: Option<String>,
}

/// `GET /api/v1/admin/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminUserList {
    pub users: Vec<AdminUser>,
    pub next: Option<String>,
}

/// `PUT /api/v1/admin/users/{user_id}/role`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetRoleRequest {
    pub role: Role,
}

/// `PATCH /api/v1/rooms/{room_id}`: absent = unchanged; `topic: null` clears it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UpdateRoomRequest {
    /// 1–100 characters after trimming, no control characters.
    #[serde(default)]
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub name: Option<String>,
    /// At most 1000 characters after trimming; blank or `null` clears it.
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Option::is_none"
    )]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, nullable, max_length = 1000))]
    pub topic: Option<Option<String>>,
    /// Who may use `@room`: `members` (anyone) or `admins` (owners and admins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_mentions: Option<crate::model::RoomMentions>,
}

/// `POST /api/v1/rooms/{room_id}/invitations` and `POST /api/v1/dms`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRef {
    pub user_id: String,
}

/// `GET /api/v1/invitations`: the caller's pending invitations.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvitationList {
    pub invitations: Vec<Invitation>,
}

/// `POST /api/v1/rooms/{room_id}/messages/{message_id}/report`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportRequest {
    /// Why the message is reported: 1–1000 characters after trimming.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1000))]
    pub reason: String,
}

/// A member's report of a message, as the server's moderators and admins see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Report {
    /// UUIDv7.
    pub id: String,
    pub room_id: String,
    pub room_name: String,
    pub message_id: String,
    /// The message's author.
    pub author: crate::model::MessageSender,
    /// The message's content when it was reported (it may be edited or deleted since).
    pub content: String,
    pub reporter: crate::model::MessageSender,
    pub reason: String,
    /// `open` or `resolved`.
    pub status: String,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// Who resolved it (a user id), once resolved.
    pub resolved_by: Option<String>,
    /// RFC 3339 UTC, once resolved.
    pub resolved_at: Option<String>,
}

/// `GET /api/v1/moderation/reports`: one page, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReportList {
    pub reports: Vec<Report>,
    /// The `after` cursor of the next page; `null` on the last page.
    pub next: Option<String>,
}

/// `GET /api/v1/rooms/{room_id}/members`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MemberList {
    pub members: Vec<Member>,
}

/// `PUT /api/v1/rooms/{room_id}/members/{user_id}/role`: `admin` or `member` (ownership
/// moves with `POST .../transfer-ownership`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetMemberRoleRequest {
    pub role: MemberRole,
}

/// `PATCH /api/v1/rooms/{room_id}/messages/{message_id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditMessageRequest {
    /// 1–4000 characters (configurable), not only whitespace.
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 4000, pattern = r"\S")
    )]
    pub content: String,
}

/// `GET /api/v1/rooms/{room_id}/messages/{message_id}/edits`: earlier versions, oldest
/// first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EditList {
    pub edits: Vec<MessageEdit>,
}

/// `POST /api/v1/rooms/{room_id}/read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadRequest {
    /// The highest seq the caller has read; the marker only moves forward.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub seq: i64,
}

/// The answer to `POST /api/v1/rooms/{room_id}/read`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReadState {
    pub room_id: String,
    pub last_read_seq: i64,
    pub unread_count: i64,
    /// Unread messages that mention the caller.
    #[serde(default)]
    pub mention_count: i64,
}

/// One entry of `iceServers` for `RTCPeerConnection` (W3C WebRTC `RTCIceServer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceServer {
    /// `stun:`, `turn:` or `turns:` URLs (RFC 7064, RFC 7065).
    pub urls: Vec<String>,
    /// TURN only: `<expiry unix seconds>:<user_id>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN only: base64(HMAC-SHA1(shared secret, username)), the scheme of coturn's
    /// `use-auth-secret` (draft-uberti-behave-turn-rest-00).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// `GET /api/v1/rtc/ice-servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IceServers {
    /// Pass as `iceServers` to `RTCPeerConnection`; empty when none is configured.
    pub ice_servers: Vec<IceServer>,
    /// How long the TURN credentials stay valid, seconds.
    pub ttl_secs: u64,
}

/// A piece of a search result's snippet: text as written in the message, and whether it
/// is a word the query matched. Concatenated, the parts are the snippet (with `…` where
/// the message was cut); clients highlight the `highlight` parts as text, never as HTML.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnippetPart {
    pub text: String,
    pub highlight: bool,
}

/// `sort` of `GET /api/v1/search/messages`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum SearchSort {
    /// Best match first (ties: newest first).
    #[default]
    Relevance,
    /// Newest first.
    Newest,
}

/// One message a search found.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResult {
    /// The message as history returns it (jump to it with its room's history,
    /// `?before=seq+1` or `?after=seq-1`).
    pub message: Message,
    /// The name of the message's room.
    pub room_name: String,
    /// The part of the message around the first match, with the matched words marked.
    pub snippet: Vec<SnippetPart>,
    /// How well it matched, higher is better; comparable within one result list only.
    pub rank: f64,
}

/// `GET /api/v1/search/messages`: one page of results.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SearchResults {
    /// Best match first (ties: newest first), or newest first with `sort=newest`.
    pub results: Vec<SearchResult>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}
