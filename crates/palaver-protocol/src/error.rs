//! Stable error codes and the error body shared by REST and WebSocket.
//!
//! REST answers an error with `{"error": {"code": "<snake_case>", "message": "<text>"}}`
//! (plus `"field"` when one input field is at fault) and the HTTP status given by
//! [`ErrorCode::http_status`]. The WebSocket carries the same `error` object in a failed
//! reply or an `error` event. Codes never change meaning once released; new codes may be
//! added, so clients must treat an unknown code like its HTTP status class.

use serde::{Deserialize, Serialize};

/// A machine-readable error code. Serialized as its snake_case name, e.g. `"invalid_json"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body (or WebSocket frame) is not well-formed JSON. HTTP 400.
    InvalidJson,
    /// A query string or request could not be understood at all. HTTP 400.
    BadRequest,
    /// The JSON is well-formed but a field is missing, has the wrong type or is out of
    /// bounds; `field` names it. HTTP 422.
    ValidationFailed,
    /// No credentials, or a token that is malformed, expired or not ours. HTTP 401.
    Unauthorized,
    /// Wrong login or password; deliberately the same whether the account exists. HTTP 401.
    InvalidCredentials,
    /// The caller is authenticated but may not do this (e.g. join a private room). HTTP 403.
    Forbidden,
    /// The caller is not a member of the room the action is scoped to. HTTP 403.
    NotMember,
    /// The resource does not exist (or the route is unknown). HTTP 404.
    NotFound,
    /// The HTTP method is not allowed on this route. HTTP 405.
    MethodNotAllowed,
    /// Registration with a username that is already taken. HTTP 409.
    UsernameTaken,
    /// Registration with an email that is already registered. HTTP 409.
    EmailTaken,
    /// The request body exceeds the configured limit. HTTP 413.
    PayloadTooLarge,
    /// A WebSocket request named a `type` the server does not know. (WebSocket only;
    /// HTTP 400 if ever mapped.)
    UnknownType,
    /// The server failed; details are logged, never sent. HTTP 500.
    Internal,
    /// The server cannot serve right now (e.g. shutting down). HTTP 503.
    Unavailable,
    /// Too many requests (or failed logins) in the window; `Retry-After` says when to try
    /// again. HTTP 429.
    RateLimited,
    /// The account is disabled by an administrator. HTTP 403.
    AccountDisabled,
    /// A spent refresh token was presented again: the whole session is now revoked
    /// (RFC 9700 §4.14.2). HTTP 401.
    RefreshTokenReused,
    /// The refresh token was spent moments ago by a concurrent refresh (inside the grace
    /// window); use the pair that refresh returned. Nothing was revoked. HTTP 409.
    RefreshConflict,
    /// A request conflicts with the current state (e.g. an admin demoting themself). HTTP 409.
    Conflict,
    /// An upload whose sniffed media type is not accepted. HTTP 415.
    UnsupportedMediaType,
    /// The call already has `rtc.max_participants` participants. HTTP 409.
    CallFull,
    /// The invitation was revoked (by the inviter or a room owner or admin, or because
    /// the inviter left, was kicked or banned, or their account was disabled or deleted).
    /// HTTP 410.
    InvitationRevoked,
    /// The server has no `[email]` configuration, so the route (verification, password
    /// reset, resend) is off. HTTP 409.
    EmailDisabled,
    /// The password was right, but the account's e-mail address is not verified yet (only
    /// when the server sends e-mail); a new link was mailed. HTTP 403.
    EmailNotVerified,
    /// A mailed link's token that is unknown, already used, or for another purpose.
    /// HTTP 400.
    InvalidToken,
    /// A mailed link's token that has expired; ask for a new link. HTTP 410.
    TokenExpired,
    /// The password was right, and the account has two-factor codes enabled: send the
    /// login again with `code` (a current TOTP code or a recovery code). HTTP 401.
    TwoFactorRequired,
    /// The two-factor `code` is wrong, expired or already used. HTTP 401.
    InvalidTwoFactorCode,
    /// No sign-in provider has this id (`[[auth.oidc]] id`, or `github`). HTTP 404.
    UnknownProvider,
    /// The sign-in provider could not be reached or answered nonsense (discovery, JWKS,
    /// token or user endpoint). HTTP 502.
    ProviderUnavailable,
    /// The sign-in callback's `state` is unknown, expired, already used, for another
    /// provider, or not this browser's (OAuth 2.0 RFC 6749 §10.12, RFC 9700 §4.7). HTTP 400.
    OauthStateInvalid,
    /// The provider answered the authorization request with an error (e.g. the user
    /// declined: `access_denied`). HTTP 400.
    OauthProviderError,
    /// The provider's token endpoint refused the authorization code (spent, expired,
    /// or the PKCE verifier does not match). HTTP 400.
    OauthCodeRejected,
    /// The RFC 9207 `iss` parameter of the callback is not the provider's issuer, or is
    /// missing although the provider promises it. HTTP 400.
    OauthIssuerMismatch,
    /// The ID token is malformed, or its signature, issuer or audience is wrong
    /// (OpenID Connect Core 1.0 §3.1.3.7). HTTP 400.
    OidcIdTokenInvalid,
    /// The ID token has expired. HTTP 400.
    OidcIdTokenExpired,
    /// The ID token's `nonce` is not the one this sign-in sent. HTTP 400.
    OidcNonceMismatch,
    /// A link token (`POST /api/v1/auth/link/confirm`) that is unknown, expired or
    /// already used. HTTP 400.
    LinkTokenInvalid,
    /// The provider account is already linked to a (different) Palaver account. HTTP 409.
    IdentityAlreadyLinked,
    /// Unlinking this identity would leave the account no way to sign in (no password and
    /// no other identity). HTTP 409.
    LastSignInMethod,
    /// Web Push is turned off on this server (`push.enabled = false`). HTTP 409.
    PushDisabled,
}

impl ErrorCode {
    /// The HTTP status code (RFC 9110) that goes with this error code.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson | ErrorCode::BadRequest | ErrorCode::UnknownType => 400,
            ErrorCode::ValidationFailed => 422,
            ErrorCode::Unauthorized | ErrorCode::InvalidCredentials => 401,
            ErrorCode::Forbidden | ErrorCode::NotMember => 403,
            ErrorCode::NotFound => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::UsernameTaken
            | ErrorCode::EmailTaken
            | ErrorCode::RefreshConflict
            | ErrorCode::Conflict
            | ErrorCode::CallFull
            | ErrorCode::IdentityAlreadyLinked
            | ErrorCode::LastSignInMethod => 409,
            ErrorCode::UnknownProvider => 404,
            ErrorCode::ProviderUnavailable => 502,
            ErrorCode::OauthStateInvalid
            | ErrorCode::OauthProviderError
            | ErrorCode::OauthCodeRejected
            | ErrorCode::OauthIssuerMismatch
            | ErrorCode::OidcIdTokenInvalid
            | ErrorCode::OidcIdTokenExpired
            | ErrorCode::OidcNonceMismatch
            | ErrorCode::LinkTokenInvalid => 400,
            ErrorCode::RateLimited => 429,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::AccountDisabled => 403,
            ErrorCode::RefreshTokenReused
            | ErrorCode::TwoFactorRequired
            | ErrorCode::InvalidTwoFactorCode => 401,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Internal => 500,
            ErrorCode::Unavailable => 503,
            ErrorCode::InvitationRevoked | ErrorCode::TokenExpired => 410,
            ErrorCode::EmailDisabled | ErrorCode::PushDisabled => 409,
            ErrorCode::EmailNotVerified => 403,
            ErrorCode::InvalidToken => 400,
        }
    }

    /// The code as it appears on the wire, e.g. `"not_member"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::ValidationFailed => "validation_failed",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::InvalidCredentials => "invalid_credentials",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotMember => "not_member",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UsernameTaken => "username_taken",
            ErrorCode::EmailTaken => "email_taken",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::Internal => "internal",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::AccountDisabled => "account_disabled",
            ErrorCode::RefreshTokenReused => "refresh_token_reused",
            ErrorCode::RefreshConflict => "refresh_conflict",
            ErrorCode::Conflict => "conflict",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::CallFull => "call_full",
            ErrorCode::InvitationRevoked => "invitation_revoked",
            ErrorCode::EmailDisabled => "email_disabled",
            ErrorCode::EmailNotVerified => "email_not_verified",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TwoFactorRequired => "two_factor_required",
            ErrorCode::InvalidTwoFactorCode => "invalid_two_factor_code",
            ErrorCode::UnknownProvider => "unknown_provider",
            ErrorCode::ProviderUnavailable => "provider_unavailable",
            ErrorCode::OauthStateInvalid => "oauth_state_invalid",
            ErrorCode::OauthProviderError => "oauth_provider_error",
            ErrorCode::OauthCodeRejected => "oauth_code_rejected",
            ErrorCode::OauthIssuerMismatch => "oauth_issuer_mismatch",
            ErrorCode::OidcIdTokenInvalid => "oidc_id_token_invalid",
            ErrorCode::OidcIdTokenExpired => "oidc_id_token_expired",
            ErrorCode::OidcNonceMismatch => "oidc_nonce_mismatch",
            ErrorCode::LinkTokenInvalid => "link_token_invalid",
            ErrorCode::IdentityAlreadyLinked => "identity_already_linked",
            ErrorCode::LastSignInMethod => "last_sign_in_method",
            ErrorCode::PushDisabled => "push_disabled",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `error` object: a stable `code`, a human-readable `message`, and the offending
/// input `field` when there is one (dotted path for nested fields, e.g. `"data.room_id"`).
/// A `rate_limited` error also carries `retry_after_secs`, the whole seconds to wait
/// before the same action can succeed (the `Retry-After` header over REST; over the
/// WebSocket the connection stays open and other actions keep working).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// For `rate_limited`: seconds (at least 1) until the refused action may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
}

/// The REST error body: `{"error": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_names() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::ValidationFailed,
            ErrorCode::NotMember,
            ErrorCode::UsernameTaken,
            ErrorCode::UnknownType,
            ErrorCode::CallFull,
            ErrorCode::InvitationRevoked,
            ErrorCode::EmailDisabled,
            ErrorCode::EmailNotVerified,
            ErrorCode::InvalidToken,
            ErrorCode::TokenExpired,
            ErrorCode::PushDisabled,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn error_body_omits_absent_field() {
        let body = ErrorBody {
            error: ErrorDetail {
                code: ErrorCode::Forbidden,
                message: "no".into(),
                field: None,
                retry_after_secs: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error": {"code": "forbidden", "message": "no"}})
        );
    }
}
