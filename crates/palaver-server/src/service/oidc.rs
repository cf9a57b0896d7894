//! Sign-in with OpenID Connect providers and GitHub (see `docs/oidc.md`).
//!
//! The authorization code flow of OpenID Connect Core 1.0 §3.1 (RFC 6749 §4.1) with PKCE
//! S256 (RFC 7636), `state`, `nonce`, the RFC 9207 `iss` parameter, following the OAuth
//! 2.0 Security BCP (RFC 9700):
//!
//! 1. [`Service::begin_sign_in`] makes a random `state`, `nonce` and PKCE verifier,
//!    stores them server-side as a **flow ticket** (table `oidc_tickets`, kind `flow`,
//!    keyed by the SHA-256 of `state`, single use, [`FLOW_TTL`]) so that any node can
//!    finish the flow, and returns the provider's authorization URL. The HTTP layer also
//!    gives the browser `state` in the [`FLOW_COOKIE`] cookie: the callback must come
//!    from the browser that started (RFC 9700 §4.7.1, against login CSRF).
//! 2. [`Service::finish_sign_in`] takes the ticket (a replayed callback finds none),
//!    checks `iss`, exchanges the code with the verifier, validates the ID token
//!    (signature against the provider's JWKS, refetched once on an unknown `kid` for key
//!    rotation, at most every [`JWKS_REFETCH_EVERY`]; issuer; audience; expiry; nonce),
//!    reads the user info endpoint when the provider has one, and then signs in the
//!    account linked to that subject, or links it (a logged-in link start), or parks a
//!    **pending link** when the provider's *verified* e-mail belongs to an existing
//!    account (confirmed with that account's password, [`Service::confirm_link`]), or
//!    creates a new account without a password.
//!
//! GitHub is plain OAuth 2.0: the same flow without `nonce` or ID token; the user comes
//! from `GET {api_url}/user` and only a *verified* address of `GET {api_url}/user/emails`
//! is used.
//!
//! Every HTTP request to a provider goes through one `reqwest` client that follows no
//! redirects (RFC 9700 §4.11) and times out after [`PROVIDER_TIMEOUT`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthenticationFlow, CoreClaimName, CoreClaimType, CoreClient,
    CoreClientAuthMethod, CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreResponseMode, CoreResponseType, CoreSubjectIdentifierType,
    CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AdditionalProviderMetadata, AuthorizationCode, ClaimsVerificationError, ClientId,
    ClientSecret, CsrfToken, IssuerUrl, JsonWebKeySet, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, ProviderMetadata, RedirectUrl, Scope,
    SignatureVerificationError, TokenResponse as _,
};
use palaver_protocol::rest::{AuthProvider, AuthResponse, Identity, LinkConfirmRequest};
use palaver_protocol::{ErrorCode, Role};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::accounts::ClientInfo;
use super::validate::Email;
use super::{new_id, now_plus, now_rfc3339, Service};
use crate::auth::tokens::random_token;
use crate::auth::{password, Actor};
use crate::config::{AuthConfig, GithubConfig, Limits, OidcProviderConfig};
use crate::error::{AppError, AppResult};
use crate::store::{IdentityRow, StoreError, Unlink, UserRow};

/// How long a started sign-in may take to come back (the flow ticket's life).
pub const FLOW_TTL: Duration = Duration::from_secs(600);
/// How long a pending link waits for its confirmation.
pub const LINK_TTL: Duration = Duration::from_secs(600);
/// How long a provider's discovery document (and JWKS) is used before it is fetched
/// again.
pub const DISCOVERY_TTL: Duration = Duration::from_secs(3600);
/// The least time between two JWKS fetches of one provider caused by an unknown key id
/// (so that tokens with made-up key ids cannot make Palaver hammer the provider).
pub const JWKS_REFETCH_EVERY: Duration = Duration::from_secs(30);
/// The time limit of one request to a provider.
pub const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);
/// The cookie binding a sign-in flow to the browser that started it (its value is the
/// flow's `state`).
pub const FLOW_COOKIE: &str = "palaver_oidc";
/// The provider id of GitHub.
pub const GITHUB: &str = "github";

/// The discovery fields Palaver reads beyond the standard set: RFC 9207 §3.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct IssParameterSupport {
    #[serde(default)]
    authorization_response_iss_parameter_supported: Option<bool>,
}

impl AdditionalProviderMetadata for IssParameterSupport {}

/// A provider's discovery document.
type Metadata = ProviderMetadata<
    IssParameterSupport,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// A discovery document, when it was fetched, and when an unknown key id last made
/// Palaver fetch the JWKS again.
struct Discovered {
    metadata: Metadata,
    at: Instant,
    jwks_refetched_at: Option<Instant>,
}

/// One configured OpenID Connect provider and its cached discovery.
struct OidcProvider {
    config: OidcProviderConfig,
    discovered: tokio::sync::Mutex<Option<Discovered>>,
}

/// The configured sign-in providers and the HTTP client that reaches them.
pub struct SignInProviders {
    http: reqwest::Client,
    /// `public_url` (no trailing slash): the base of the redirect URIs.
    base: String,
    oidc: Vec<Arc<OidcProvider>>,
    github: Option<GithubConfig>,
}

impl SignInProviders {
    /// The providers of `auth` (checked by [`AuthConfig::check_sign_in_providers`]),
    /// with redirect URIs under `public_base`. Nothing is fetched yet: discovery happens
    /// on first use.
    pub fn new(auth: &AuthConfig, public_base: &str) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("palaver/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        SignInProviders {
            http,
            base: public_base.trim_end_matches('/').to_owned(),
            oidc: auth
                .oidc
                .iter()
                .map(|config| {
                    Arc::new(OidcProvider {
                        config: config.clone(),
                        discovered: tokio::sync::Mutex::new(None),
                    })
                })
                .collect(),
            github: auth.github.clone(),
        }
    }

    /// The redirect URI registered at `provider`: `<public_url>/api/v1/auth/oidc/<id>/callback`.
    pub fn redirect_uri(&self, provider: &str) -> String {
        format!("{}/api/v1/auth/oidc/{provider}/callback", self.base)
    }

    fn oidc(&self, id: &str) -> Option<&Arc<OidcProvider>> {
        self.oidc.iter().find(|p| p.config.id == id)
    }

    /// The discovery document of `provider`: cached, fetched when missing or older than
    /// [`DISCOVERY_TTL`] (a failed refresh keeps the old one); with `refetch_jwks`, the
    /// JWKS is fetched again unless it was in the last [`JWKS_REFETCH_EVERY`].
    async fn metadata(&self, provider: &OidcProvider, refetch_jwks: bool) -> AppResult<Metadata> {
        let mut cached = provider.discovered.lock().await;
        let fresh = cached
            .as_ref()
            .is_some_and(|d| d.at.elapsed() < DISCOVERY_TTL);
        if !fresh {
            let issuer = IssuerUrl::new(provider.config.issuer.clone())
                .map_err(|_| unavailable(&provider.config.id, "the issuer is not a URL"))?;
            match Metadata::discover_async(issuer, &self.http).await {
                Ok(metadata) => {
                    let jwks_refetched_at = cached.as_ref().and_then(|d| d.jwks_refetched_at);
                    *cached = Some(Discovered {
                        metadata,
                        at: Instant::now(),
                        jwks_refetched_at,
                    });
                }
                Err(e) if cached.is_some() => {
                    tracing::warn!(provider = %provider.config.id, error = %e,
                        "OpenID Connect discovery failed; using the cached document");
                }
                Err(e) => {
                    tracing::warn!(provider = %provider.config.id, error = %e,
                        "OpenID Connect discovery failed");
                    return Err(unavailable(&provider.config.id, "discovery failed"));
                }
            }
        }
        let Some(discovered) = cached.as_mut() else {
            return Err(unavailable(&provider.config.id, "discovery failed"));
        };
        let due = discovered
            .jwks_refetched_at
            .is_none_or(|at| at.elapsed() >= JWKS_REFETCH_EVERY);
        if refetch_jwks && due {
            discovered.jwks_refetched_at = Some(Instant::now());
            match JsonWebKeySet::fetch_async(discovered.metadata.jwks_uri(), &self.http).await {
                Ok(jwks) => {
                    tracing::info!(provider = %provider.config.id, "refetched the JWKS (unknown key id)");
                    discovered.metadata = discovered.metadata.clone().set_jwks(jwks);
                }
                Err(e) => tracing::warn!(provider = %provider.config.id, error = %e,
                    "refetching the JWKS failed"),
            }
        }
        Ok(discovered.metadata.clone())
    }
}

/// `502 provider_unavailable`.
fn unavailable(provider: &str, what: &str) -> AppError {
    AppError::new(
        ErrorCode::ProviderUnavailable,
        format!("the sign-in provider {provider:?} is unavailable: {what}"),
    )
}

/// A started sign-in, as kept in its flow ticket.
#[derive(Debug, Serialize, Deserialize)]
struct Flow {
    provider: String,
    /// The PKCE code verifier (RFC 7636 §4.1).
    verifier: String,
    /// The OpenID Connect nonce; `None` for GitHub.
    nonce: Option<String>,
    /// Set when a logged-in user links a provider to their account.
    link_user: Option<String>,
}

/// An identity waiting for the owner of the account with its e-mail to confirm.
#[derive(Debug, Serialize, Deserialize)]
struct PendingLink {
    user_id: String,
    provider: String,
    subject: String,
    email: Option<String>,
}

/// What the provider says about the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProviderUser {
    /// The stable id at the provider.
    pub subject: String,
    /// A name to derive the username from (`preferred_username`, GitHub's `login`).
    pub username: Option<String>,
    /// The e-mail address, only if the provider says it is verified.
    pub verified_email: Option<String>,
    /// The full name, for the profile.
    pub name: Option<String>,
}

/// The query of the callback: `code`, `state`, `iss` (RFC 9207), or `error`.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    pub code: Option<String>,
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

/// How a finished sign-in ended.
#[derive(Debug)]
pub enum SignInOutcome {
    /// Signed in (an existing or a new account): the session's tokens.
    Session(Box<AuthResponse>),
    /// The verified e-mail belongs to an account: the link token to confirm with.
    LinkPending(String),
    /// Linked to the logged-in user who started the flow (no new session).
    Linked,
}

/// A started sign-in: where to send the browser, and the `state` for [`FLOW_COOKIE`].
#[derive(Debug)]
pub struct Started {
    pub url: String,
    pub state: String,
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The username to try first for a new account: the first usable hint, lower-cased, with
/// every character outside `[a-z0-9_.-]` dropped (runs of spaces and other separators
/// become one `_`), trimmed of leading and trailing `_.-`, cut to leave room for a
/// numeric suffix, and padded with `_user` when shorter than the minimum. `user` when no
/// hint gives anything. For an e-mail hint, only its local part counts.
pub fn username_base(hints: &[Option<&str>], limits: &Limits) -> String {
    let max = limits
        .username_max_chars
        .saturating_sub(4)
        .max(limits.username_min_chars);
    for hint in hints.iter().flatten() {
        let hint = hint.split('@').next().unwrap_or_default();
        let mut out = String::new();
        let mut gap = false;
        for c in hint.chars().flat_map(char::to_lowercase) {
            if c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-') {
                if gap && !out.is_empty() {
                    out.push('_');
                }
                gap = false;
                out.push(c);
            } else if c.is_whitespace() || c == '+' {
                gap = true;
            }
        }
        let trimmed: String = out
            .trim_matches(['_', '.', '-'])
            .chars()
            .take(max)
            .collect();
        let trimmed = trimmed.trim_end_matches(['_', '.', '-']);
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.chars().count() < limits.username_min_chars {
            return format!("{trimmed}_user");
        }
        return trimmed.to_owned();
    }
    "user".to_owned()
}

/// The `n`th candidate username from `base` (n = 0 is `base` itself, then `base2`,
/// `base3`, ...), within `max` characters.
pub fn username_candidate(base: &str, n: u32, max: usize) -> String {
    if n == 0 {
        return base.chars().take(max).collect();
    }
    let suffix = (n + 1).to_string();
    let keep = max.saturating_sub(suffix.len());
    format!("{}{suffix}", base.chars().take(keep).collect::<String>())
}

/// Maps an ID token verification failure to its code.
fn id_token_error(provider: &str, e: &ClaimsVerificationError) -> AppError {
    tracing::warn!(provider, error = %e, "ID token refused");
    match e {
        ClaimsVerificationError::Expired(_) => {
            AppError::new(ErrorCode::OidcIdTokenExpired, "the ID token has expired")
        }
        ClaimsVerificationError::InvalidNonce(_) => AppError::new(
            ErrorCode::OidcNonceMismatch,
            "the ID token's nonce is not this sign-in's",
        ),
        _ => AppError::new(ErrorCode::OidcIdTokenInvalid, "the ID token is not valid"),
    }
}

impl Service {
    /// The sign-in providers, for the web client's buttons: OpenID Connect ones in
    /// configuration order, then GitHub. No secrets.
    pub fn sign_in_providers(&self) -> Vec<AuthProvider> {
        let start = |id: &str| format!("/api/v1/auth/oidc/{id}/start");
        let mut out: Vec<AuthProvider> = self
            .sign_in
            .oidc
            .iter()
            .map(|p| AuthProvider {
                id: p.config.id.clone(),
                display_name: p
                    .config
                    .display_name
                    .clone()
                    .unwrap_or_else(|| p.config.id.clone()),
                start_url: start(&p.config.id),
            })
            .collect();
        if let Some(g) = &self.sign_in.github {
            out.push(AuthProvider {
                id: GITHUB.into(),
                display_name: g.display_name.clone(),
                start_url: start(GITHUB),
            });
        }
        out
    }

    /// Starts a sign-in at `provider` (or, with `link_user`, the linking of a provider
    /// account to that logged-in user): stores the flow ticket and returns the provider's
    /// authorization URL with `response_type=code`, `client_id`, `redirect_uri`, `scope`,
    /// `state`, `nonce` (OpenID Connect only), `code_challenge` and
    /// `code_challenge_method=S256`.
    ///
    /// # Errors
    /// `404 unknown_provider`; `502 provider_unavailable` (discovery failed).
    pub async fn begin_sign_in(
        &self,
        provider: &str,
        link_user: Option<&str>,
    ) -> AppResult<Started> {
        let state = random_token(32);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, nonce) = if let Some(p) = self.sign_in.oidc(provider) {
            let metadata = self.sign_in.metadata(p, false).await?;
            let client = self.oidc_client(p, metadata)?;
            let nonce = random_token(32);
            let state_value = state.clone();
            let nonce_value = nonce.clone();
            let mut request = client.authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state_value),
                move || Nonce::new(nonce_value),
            );
            for scope in p.config.scopes.iter().filter(|s| *s != "openid") {
                request = request.add_scope(Scope::new(scope.clone()));
            }
            let (url, _, _) = request.set_pkce_challenge(challenge).url();
            (url.to_string(), Some(nonce))
        } else if provider == GITHUB {
            let client = self.github_client()?;
            let state_value = state.clone();
            let (url, _) = client
                .authorize_url(move || oauth2::CsrfToken::new(state_value))
                .add_scope(oauth2::Scope::new("read:user".into()))
                .add_scope(oauth2::Scope::new("user:email".into()))
                .set_pkce_challenge(oauth2::PkceCodeChallenge::from_code_verifier_sha256(
                    &oauth2::PkceCodeVerifier::new(verifier.secret().clone()),
                ))
                .url();
            (url.to_string(), None)
        } else {
            return Err(AppError::new(
                ErrorCode::UnknownProvider,
                format!("no sign-in provider {provider:?}"),
            ));
        };
        let flow = Flow {
            provider: provider.to_owned(),
            verifier: verifier.secret().clone(),
            nonce,
            link_user: link_user.map(str::to_owned),
        };
        let payload = serde_json::to_string(&flow).map_err(AppError::internal)?;
        self.store
            .identities
            .save_ticket(
                &hash(&state),
                "flow",
                &payload,
                &now_plus(FLOW_TTL.as_secs() as i64),
            )
            .await?;
        if rand_core::RngCore::next_u32(&mut rand_core::OsRng).is_multiple_of(64) {
            if let Err(e) = self.store.identities.purge_tickets(&now_rfc3339()).await {
                tracing::warn!(error = %e, "purging expired sign-in tickets");
            }
        }
        Ok(Started { url, state })
    }

    /// The OpenID Connect client of `p` over its discovery document.
    fn oidc_client(
        &self,
        p: &OidcProvider,
        metadata: Metadata,
    ) -> AppResult<
        CoreClient<
            openidconnect::EndpointSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointNotSet,
            openidconnect::EndpointMaybeSet,
            openidconnect::EndpointMaybeSet,
        >,
    > {
        let redirect = RedirectUrl::new(self.sign_in.redirect_uri(&p.config.id))
            .map_err(|_| AppError::internal("public_url does not make a valid redirect URI"))?;
        Ok(CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(p.config.client_id.clone()),
            Some(ClientSecret::new(
                p.config.client_secret.expose().to_owned(),
            )),
        )
        .set_redirect_uri(redirect))
    }

    /// The OAuth 2.0 client for GitHub.
    fn github_client(
        &self,
    ) -> AppResult<
        oauth2::basic::BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
    > {
        let g = self.sign_in.github.as_ref().ok_or_else(|| {
            AppError::new(
                ErrorCode::UnknownProvider,
                "GitHub sign-in is not configured",
            )
        })?;
        let bad = |_| AppError::internal("auth.github: a malformed URL");
        Ok(
            oauth2::basic::BasicClient::new(oauth2::ClientId::new(g.client_id.clone()))
                .set_client_secret(oauth2::ClientSecret::new(
                    g.client_secret.expose().to_owned(),
                ))
                .set_auth_uri(oauth2::AuthUrl::new(g.authorize_url.clone()).map_err(bad)?)
                .set_token_uri(oauth2::TokenUrl::new(g.token_url.clone()).map_err(bad)?)
                .set_redirect_uri(
                    oauth2::RedirectUrl::new(self.sign_in.redirect_uri(GITHUB)).map_err(bad)?,
                )
                // GitHub documents the credentials as request parameters.
                .set_auth_type(oauth2::AuthType::RequestBody),
        )
    }

    /// Finishes a sign-in at `provider` from its callback. `browser_state` is the
    /// [`FLOW_COOKIE`] the browser sent: it must equal `state`.
    ///
    /// # Errors
    /// `400 oauth_state_invalid` (state missing, unknown, expired, used, of another
    /// provider or another browser), `400 oauth_provider_error` (the provider sent
    /// `error`), `400 oauth_issuer_mismatch` (RFC 9207), `400 oauth_code_rejected`,
    /// `400 oidc_id_token_invalid | oidc_id_token_expired | oidc_nonce_mismatch`,
    /// `502 provider_unavailable`, `409 identity_already_linked` (a link start for a
    /// provider account linked to someone else), `403 account_disabled`,
    /// `404 unknown_provider`.
    #[tracing::instrument(skip_all, fields(provider))]
    pub async fn finish_sign_in(
        &self,
        provider: &str,
        callback: Callback,
        browser_state: Option<&str>,
        client: ClientInfo,
    ) -> AppResult<SignInOutcome> {
        let state_invalid = || {
            AppError::new(
                ErrorCode::OauthStateInvalid,
                "this sign-in is unknown, expired, already used or from another browser",
            )
        };
        let state = callback.state.as_deref().ok_or_else(state_invalid)?;
        let same_browser = browser_state
            .is_some_and(|b| subtle::ConstantTimeEq::ct_eq(b.as_bytes(), state.as_bytes()).into());
        if !same_browser {
            tracing::warn!(
                provider,
                "sign-in callback without this browser's flow cookie"
            );
            return Err(state_invalid());
        }
        let payload = self
            .store
            .identities
            .take_ticket(&hash(state), "flow", &now_rfc3339())
            .await?
            .ok_or_else(state_invalid)?;
        let flow: Flow = serde_json::from_str(&payload).map_err(AppError::internal)?;
        if flow.provider != provider {
            return Err(state_invalid());
        }
        if let Some(error) = &callback.error {
            tracing::info!(provider, error = %error.chars().take(64).collect::<String>(),
                "the provider refused the sign-in");
            return Err(AppError::new(
                ErrorCode::OauthProviderError,
                "the provider did not authorize the sign-in",
            ));
        }
        let code = callback
            .code
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| AppError::new(ErrorCode::OauthCodeRejected, "no code"))?;
        let user = if let Some(p) = self.sign_in.oidc(provider) {
            self.oidc_user(p, &flow, code, callback.iss.as_deref())
                .await?
        } else if provider == GITHUB {
            if callback.iss.is_some() {
                // GitHub sends no `iss`; one here did not come from it (RFC 9207 §2.4).
                return Err(AppError::new(
                    ErrorCode::OauthIssuerMismatch,
                    "unexpected iss parameter",
                ));
            }
            self.github_user(&flow, code).await?
        } else {
            return Err(AppError::new(
                ErrorCode::UnknownProvider,
                format!("no sign-in provider {provider:?}"),
            ));
        };
        self.sign_in_as(provider, user, flow.link_user.as_deref(), client)
            .await
    }

    /// Exchanges the code at an OpenID Connect provider and returns the validated user.
    async fn oidc_user(
        &self,
        p: &OidcProvider,
        flow: &Flow,
        code: String,
        iss: Option<&str>,
    ) -> AppResult<ProviderUser> {
        let id = p.config.id.as_str();
        let metadata = self.sign_in.metadata(p, false).await?;
        // RFC 9207 §2.4: a present `iss` must be the issuer; a provider that promises it
        // must send it.
        let promised = metadata
            .additional_metadata()
            .authorization_response_iss_parameter_supported
            == Some(true);
        match iss {
            Some(iss) if iss != metadata.issuer().as_str() => {
                tracing::warn!(provider = id, "callback iss is not the provider's issuer");
                return Err(AppError::new(
                    ErrorCode::OauthIssuerMismatch,
                    "the iss parameter is not the provider's issuer",
                ));
            }
            None if promised => {
                return Err(AppError::new(
                    ErrorCode::OauthIssuerMismatch,
                    "the provider promises an iss parameter and sent none",
                ));
            }
            _ => {}
        }
        let client = self.oidc_client(p, metadata)?;
        let response = client
            .exchange_code(AuthorizationCode::new(code))
            .map_err(|_| unavailable(id, "no token endpoint"))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(&self.sign_in.http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = id, error = %e, "the token endpoint refused the code");
                match e {
                    openidconnect::RequestTokenError::ServerResponse(_) => AppError::new(
                        ErrorCode::OauthCodeRejected,
                        "the provider refused the authorization code",
                    ),
                    _ => unavailable(id, "the token request failed"),
                }
            })?;
        let id_token = response.id_token().ok_or_else(|| {
            AppError::new(
                ErrorCode::OidcIdTokenInvalid,
                "the provider sent no ID token",
            )
        })?;
        let nonce = Nonce::new(flow.nonce.clone().unwrap_or_default());
        let first = id_token
            .claims(&client.id_token_verifier(), &nonce)
            .cloned();
        let claims = match first {
            Ok(claims) => claims,
            Err(ClaimsVerificationError::SignatureVerification(
                SignatureVerificationError::NoMatchingKey,
            )) => {
                // Key rotation: fetch the JWKS again (rate-limited) and retry once.
                let metadata = self.sign_in.metadata(p, true).await?;
                let rotated = self.oidc_client(p, metadata)?;
                let again = id_token
                    .claims(&rotated.id_token_verifier(), &nonce)
                    .cloned();
                again.map_err(|e| id_token_error(id, &e))?
            }
            Err(e) => return Err(id_token_error(id, &e)),
        };
        let mut user = ProviderUser {
            subject: claims.subject().as_str().to_owned(),
            username: claims.preferred_username().map(|u| u.as_str().to_owned()),
            verified_email: claims
                .email()
                .filter(|_| claims.email_verified() == Some(true))
                .map(|e| e.as_str().to_owned()),
            name: claims
                .name()
                .and_then(|n| n.get(None))
                .map(|n| n.as_str().to_owned()),
        };
        // Many providers put the profile claims only in the user info response (OpenID
        // Connect Core §5.4): read it when there is an endpoint; its `sub` must match.
        if let Ok(request) = client.user_info(
            AccessToken::new(response.access_token().secret().clone()),
            Some(claims.subject().clone()),
        ) {
            let info: CoreUserInfoClaims = request
                .request_async(&self.sign_in.http)
                .await
                .map_err(|e| {
                    tracing::warn!(provider = id, error = %e, "the user info request failed");
                    unavailable(id, "the user info request failed")
                })?;
            if let Some(name) = info.preferred_username() {
                user.username = Some(name.as_str().to_owned());
            }
            if let (Some(email), Some(true)) = (info.email(), info.email_verified()) {
                user.verified_email = Some(email.as_str().to_owned());
            }
            if let Some(name) = info.name().and_then(|n| n.get(None)) {
                user.name = Some(name.as_str().to_owned());
            }
        }
        Ok(user)
    }

    /// Exchanges the code at GitHub and reads the user and their verified e-mail.
    async fn github_user(&self, flow: &Flow, code: String) -> AppResult<ProviderUser> {
        let g =
            self.sign_in.github.as_ref().ok_or_else(|| {
                AppError::new(ErrorCode::UnknownProvider, "GitHub is not configured")
            })?;
        let client = self.github_client()?;
        let token = client
            .exchange_code(oauth2::AuthorizationCode::new(code))
            .set_pkce_verifier(oauth2::PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(&self.sign_in.http)
            .await
            .map_err(|e| {
                tracing::warn!(provider = GITHUB, error = %e, "GitHub refused the code");
                match e {
                    // GitHub answers a bad code with 200 and `{"error": ...}`, which does
                    // not parse as a token response.
                    oauth2::RequestTokenError::ServerResponse(_)
                    | oauth2::RequestTokenError::Parse(..) => AppError::new(
                        ErrorCode::OauthCodeRejected,
                        "the provider refused the authorization code",
                    ),
                    _ => unavailable(GITHUB, "the token request failed"),
                }
            })?;
        let access = oauth2::TokenResponse::access_token(&token).secret().clone();
        let api = g.api_url.trim_end_matches('/');
        let get = |path: &str| {
            self.sign_in
                .http
                .get(format!("{api}{path}"))
                .bearer_auth(&access)
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
        };
        /// `GET /user` (the fields used).
        #[derive(Deserialize)]
        struct GithubUser {
            id: u64,
            login: String,
            name: Option<String>,
        }
        /// One entry of `GET /user/emails`.
        #[derive(Deserialize)]
        struct GithubEmail {
            email: String,
            primary: bool,
            verified: bool,
        }
        let failed = |what: &'static str| {
            move |e: reqwest::Error| {
                tracing::warn!(provider = GITHUB, error = %e, what, "GitHub API request failed");
                unavailable(GITHUB, what)
            }
        };
        let me: GithubUser = get("/user")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed("GET /user"))?
            .json()
            .await
            .map_err(failed("GET /user"))?;
        let emails: Vec<GithubEmail> = get("/user/emails")
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(failed("GET /user/emails"))?
            .json()
            .await
            .map_err(failed("GET /user/emails"))?;
        Ok(ProviderUser {
            subject: me.id.to_string(),
            username: Some(me.login),
            verified_email: github_verified_email(
                emails
                    .iter()
                    .map(|e| (e.email.as_str(), e.primary, e.verified)),
            ),
            name: me.name,
        })
    }

    /// Signs in (or links, or parks a pending link for, or creates the account of) the
    /// provider user `user` of `provider`.
    async fn sign_in_as(
        &self,
        provider: &str,
        user: ProviderUser,
        link_user: Option<&str>,
        client: ClientInfo,
    ) -> AppResult<SignInOutcome> {
        let email = user
            .verified_email
            .as_deref()
            .and_then(|e| Email::parse(e).ok())
            .map(|e| e.as_str().to_owned());
        let linked = self
            .store
            .identities
            .identity(provider, &user.subject)
            .await?;
        if let Some(owner) = link_user {
            return match linked {
                Some(identity) if identity.user_id == owner => Ok(SignInOutcome::Linked),
                Some(_) => Err(AppError::new(
                    ErrorCode::IdentityAlreadyLinked,
                    "this provider account is linked to another Palaver account",
                )),
                None => {
                    let owner = self.live_user(owner).await?;
                    self.link(&owner.id, provider, &user.subject, email).await?;
                    Ok(SignInOutcome::Linked)
                }
            };
        }
        if let Some(identity) = linked {
            let account = self.live_user(&identity.user_id).await?;
            return self.session_for(&account, client).await;
        }
        if let Some(email) = &email {
            if let Some(existing) = self.store.users.user_by_login(email).await? {
                // Never sign in to an existing account on the provider's word alone: its
                // owner confirms.
                let token = random_token(32);
                let pending = PendingLink {
                    user_id: existing.id.clone(),
                    provider: provider.to_owned(),
                    subject: user.subject.clone(),
                    email: Some(email.clone()),
                };
                let payload = serde_json::to_string(&pending).map_err(AppError::internal)?;
                self.store
                    .identities
                    .save_ticket(
                        &hash(&token),
                        "link",
                        &payload,
                        &now_plus(LINK_TTL.as_secs() as i64),
                    )
                    .await?;
                tracing::info!(provider, user_id = %existing.id,
                    "sign-in with the e-mail of an existing account: link pending");
                return Ok(SignInOutcome::LinkPending(token));
            }
        }
        let account = self.create_linked_account(provider, &user, email).await?;
        self.session_for(&account, client).await
    }

    /// A new session for `account` unless it is disabled.
    async fn session_for(&self, account: &UserRow, client: ClientInfo) -> AppResult<SignInOutcome> {
        if account.disabled_at.is_some() {
            return Err(AppError::new(
                ErrorCode::AccountDisabled,
                "this account is disabled",
            ));
        }
        let auth = self.start_session(account, client).await?;
        tracing::info!(user_id = %account.id, "signed in with a provider");
        Ok(SignInOutcome::Session(Box::new(auth)))
    }

    /// Links `subject` at `provider` to `user_id`.
    async fn link(
        &self,
        user_id: &str,
        provider: &str,
        subject: &str,
        email: Option<String>,
    ) -> AppResult<()> {
        let identity = IdentityRow {
            id: new_id(),
            user_id: user_id.to_owned(),
            provider: provider.to_owned(),
            subject: subject.to_owned(),
            email,
            created_at: now_rfc3339(),
        };
        match self.store.identities.create_identity(&identity).await {
            Ok(()) => {
                tracing::info!(%user_id, provider, "identity linked");
                Ok(())
            }
            Err(StoreError::Conflict(_)) => Err(AppError::new(
                ErrorCode::IdentityAlreadyLinked,
                "this provider account is linked to another Palaver account",
            )),
            Err(StoreError::NotFound) => Err(AppError::unauthorized("account no longer exists")),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates an account for a first sign-in: username from the provider, made unique;
    /// the verified e-mail, or `<id>@users.invalid` without one; no password.
    async fn create_linked_account(
        &self,
        provider: &str,
        user: &ProviderUser,
        email: Option<String>,
    ) -> AppResult<UserRow> {
        let id = new_id();
        let base = username_base(
            &[
                user.username.as_deref(),
                email.as_deref(),
                user.name.as_deref(),
            ],
            &self.limits,
        );
        let now = now_rfc3339();
        let identity = IdentityRow {
            id: new_id(),
            user_id: id.clone(),
            provider: provider.to_owned(),
            subject: user.subject.clone(),
            email: email.clone(),
            created_at: now.clone(),
        };
        // The provider verified the address (only verified ones are used).
        let email_verified_at = email.as_ref().map(|_| now.clone());
        let mut row = UserRow {
            id: id.clone(),
            username: String::new(),
            email: email.unwrap_or_else(|| format!("{}@users.invalid", id.replace('-', ""))),
            password_hash: String::new(),
            role: Role::User,
            profile: Default::default(),
            settings: "{}".into(),
            created_at: now,
            disabled_at: None,
            deleted_at: None,
            email_verified_at,
        };
        for n in 0..24 {
            row.username = if n < 20 {
                username_candidate(&base, n, self.limits.username_max_chars)
            } else {
                // Crowded: a random suffix.
                let tail = &uuid::Uuid::now_v7().simple().to_string()[26..];
                let keep = self
                    .limits
                    .username_max_chars
                    .saturating_sub(tail.len() + 1);
                format!("{}-{tail}", base.chars().take(keep).collect::<String>())
            };
            match self
                .store
                .identities
                .create_user_with_identity(&row, &identity)
                .await
            {
                Ok(()) => {
                    tracing::info!(user_id = %row.id, provider, "account created by sign-in");
                    self.join_default_rooms(&row.id).await;
                    return Ok(row);
                }
                Err(StoreError::Conflict("username")) => continue,
                Err(StoreError::Conflict("identity")) => {
                    // A concurrent first sign-in of the same person won: use its account.
                    let identity = self
                        .store
                        .identities
                        .identity(provider, &user.subject)
                        .await?
                        .ok_or_else(|| AppError::internal("identity vanished"))?;
                    return self.live_user(&identity.user_id).await;
                }
                Err(StoreError::Conflict(_)) => {
                    return Err(AppError::new(
                        ErrorCode::EmailTaken,
                        "an account with this e-mail was created meanwhile: sign in again",
                    ))
                }
                Err(e) => return Err(e.into()),
            }
        }
        Err(AppError::internal("no free username for a new account"))
    }

    /// Confirms a pending link with the existing account's password: links the provider
    /// account and signs in. The token is spent by the attempt, right or wrong (a wrong
    /// password means signing in at the provider again), so it cannot be guessed at.
    ///
    /// # Errors
    /// `400 link_token_invalid` (unknown, expired or used); `401 invalid_credentials`
    /// (wrong password, or an account without one); `409 identity_already_linked`;
    /// `403 account_disabled`.
    ///
    /// TODO(issue 19, e-mail track): confirming by a link sent to the account's address
    /// instead of the password, once outgoing e-mail exists.
    pub async fn confirm_link(
        &self,
        req: LinkConfirmRequest,
        client: ClientInfo,
    ) -> AppResult<AuthResponse> {
        let payload = self
            .store
            .identities
            .take_ticket(&hash(req.token.trim()), "link", &now_rfc3339())
            .await?
            .ok_or_else(|| {
                AppError::new(
                    ErrorCode::LinkTokenInvalid,
                    "this link is unknown, expired or already used: sign in again",
                )
            })?;
        let pending: PendingLink = serde_json::from_str(&payload).map_err(AppError::internal)?;
        let account = self.live_user(&pending.user_id).await?;
        let stored = (!account.password_hash.is_empty()).then(|| account.password_hash.clone());
        if !password::verify(req.password, stored).await {
            tracing::warn!(user_id = %account.id, "link confirmation with a wrong password");
            return Err(AppError::new(
                ErrorCode::InvalidCredentials,
                "the password is wrong",
            ));
        }
        if account.disabled_at.is_some() {
            return Err(AppError::new(
                ErrorCode::AccountDisabled,
                "this account is disabled",
            ));
        }
        self.link(
            &account.id,
            &pending.provider,
            &pending.subject,
            pending.email,
        )
        .await?;
        self.start_session(&account, client).await
    }

    /// The caller's linked identities, oldest first.
    pub async fn identities(&self, actor: &Actor) -> AppResult<Vec<Identity>> {
        Ok(self
            .store
            .identities
            .identities_for_user(&actor.user_id)
            .await?
            .into_iter()
            .map(|i| Identity {
                id: i.id,
                provider: i.provider,
                email: i.email,
                created_at: i.created_at,
            })
            .collect())
    }

    /// Unlinks the caller's identity `id`.
    ///
    /// # Errors
    /// `404 not_found`; `409 last_sign_in_method` when the account has no password and
    /// no other identity.
    pub async fn unlink_identity(&self, actor: &Actor, id: &str) -> AppResult<()> {
        match self
            .store
            .identities
            .delete_identity(&actor.user_id, id)
            .await?
        {
            Unlink::Removed => {
                tracing::info!(user_id = %actor.user_id, "identity unlinked");
                Ok(())
            }
            Unlink::NotFound => Err(AppError::not_found("identity")),
            Unlink::LastSignIn => Err(AppError::new(
                ErrorCode::LastSignInMethod,
                "this is the account's last way to sign in: set a password or link another provider first",
            )),
        }
    }
}

/// The address to use from GitHub's `/user/emails` entries `(email, primary, verified)`:
/// the primary one if verified, else the first verified one; never an unverified one.
pub fn github_verified_email<'a>(
    emails: impl Iterator<Item = (&'a str, bool, bool)> + Clone,
) -> Option<String> {
    emails
        .clone()
        .find(|(_, primary, verified)| *primary && *verified)
        .or_else(|| emails.clone().find(|(_, _, verified)| *verified))
        .map(|(email, _, _)| email.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_come_from_the_first_usable_hint_normalized() {
        let limits = Limits::default();
        let base = |hints: &[Option<&str>]| username_base(hints, &limits);
        assert_eq!(base(&[Some("Alice")]), "alice");
        assert_eq!(base(&[Some("Jean Dupont")]), "jean_dupont");
        assert_eq!(base(&[None, Some("J.Doe+chat@example.com")]), "j.doe_chat");
        assert_eq!(
            base(&[Some("Zoë")]),
            "zo_user",
            "non-ASCII is dropped, then padded"
        );
        assert_eq!(
            base(&[Some("..__"), Some("bob")]),
            "bob",
            "an empty hint is skipped"
        );
        assert_eq!(base(&[Some("日本")]), "user");
        assert_eq!(base(&[]), "user");
        let long = base(&[Some(&"x".repeat(100))]);
        assert_eq!(
            long.len(),
            limits.username_max_chars - 4,
            "room for a suffix"
        );
        for name in [
            base(&[Some("Alice")]),
            base(&[Some("Zoë")]),
            base(&[Some("-a-b-")]),
            long,
        ] {
            crate::service::validate::Username::parse(&name, &limits)
                .unwrap_or_else(|_| panic!("{name} is a valid username"));
        }
    }

    #[test]
    fn candidates_add_a_number_within_the_length_limit() {
        assert_eq!(username_candidate("alice", 0, 32), "alice");
        assert_eq!(username_candidate("alice", 1, 32), "alice2");
        assert_eq!(username_candidate("alice", 9, 32), "alice10");
        assert_eq!(username_candidate("abcdef", 9, 6), "abcd10");
    }

    #[test]
    fn only_a_verified_github_email_is_used() {
        let pick =
            |list: &[(&'static str, bool, bool)]| github_verified_email(list.iter().copied());
        assert_eq!(
            pick(&[("a@x.org", true, false), ("b@x.org", false, true)]),
            Some("b@x.org".into()),
            "an unverified primary is skipped"
        );
        assert_eq!(
            pick(&[("a@x.org", false, true), ("b@x.org", true, true)]),
            Some("b@x.org".into()),
            "a verified primary comes first"
        );
        assert_eq!(pick(&[("a@x.org", true, false)]), None);
        assert_eq!(pick(&[]), None);
    }

    #[test]
    fn iss_parameter_support_is_read_from_discovery() {
        let json = r#"{"authorization_response_iss_parameter_supported": true}"#;
        let s: IssParameterSupport = serde_json::from_str(json).unwrap();
        assert_eq!(s.authorization_response_iss_parameter_supported, Some(true));
        let s: IssParameterSupport = serde_json::from_str("{}").unwrap();
        assert_eq!(s.authorization_response_iss_parameter_supported, None);
    }
}
