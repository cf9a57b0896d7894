//! Call rooms and numbers: what seed 003's signaling protocol (`docs/signaling-compat.md`)
//! needs of the service, in Palaver's terms.
//!
//! - **Numbers.** That protocol's ids are integers. Users and rooms get numbers there,
//!   kept in the store ([`NumericKind`]): users in order, the first time one is needed;
//!   rooms at random below 2^53 (exact in JavaScript), when [`Service::create_call_room`]
//!   makes them.
//! - **Call rooms.** A seed "room" is a private Palaver room with at most one call in it
//!   at a time. Its number admits whoever knows it (as the seed's room id does), unless
//!   banned; a room without a number (any room not made this way) is never joined by
//!   number. [`Service::join_call_room`] joins the room's call, or starts one when nobody
//!   is in it: the room outlives its calls.
//! - **Accounts by password.** The seed's REST routes authenticate each request with a
//!   username and password and hand out API keys named [`SIGNALING_KEY_NAME`]:
//!   [`Service::register_with_api_key`], [`Service::regenerate_api_key`] and
//!   [`Service::change_password_by_login`], with the same rate limits, password policy
//!   and revocation (sockets closed) as the rest of Palaver.

use palaver_protocol::rest::{
    ChangePasswordRequest, CreateApiKeyRequest, CreateRoomRequest, CreatedApiKey, LoginRequest,
    RegisterRequest,
};
use palaver_protocol::ws::{CallJoined, StartCall};
use palaver_protocol::{CallKind, ErrorCode, MemberRole, Role, Visibility};
use rand_core::{OsRng, RngCore as _};

use super::accounts::ClientInfo;
use super::Service;
use crate::auth::{Actor, Credential};
use crate::error::{AppError, AppResult};
use crate::hub::ConnId;
use crate::store::{NumericKind, UserRow};

/// The name of the API keys `/compat/signaling/register` and `/regenerate` make; a
/// regeneration revokes every live key of this name.
pub const SIGNALING_KEY_NAME: &str = "signaling";

/// The largest room number: 2^53 − 1, the largest integer a JavaScript number holds
/// exactly.
pub const MAX_ROOM_NUMBER: i64 = (1 << 53) - 1;

/// Attempts at joining or starting a room's call when it changes under the request (it
/// ended between being found and being joined, or another joiner started one first).
const JOIN_ATTEMPTS: usize = 4;

impl Service {
    /// User `user_id`'s number, given now if it has none yet.
    ///
    /// # Errors
    /// `500 internal` if the store fails.
    pub async fn user_number(&self, user_id: &str) -> AppResult<i64> {
        if let Some(n) = self
            .store
            .users
            .numeric_id(NumericKind::User, user_id)
            .await?
        {
            return Ok(n);
        }
        self.store
            .users
            .assign_number(NumericKind::User, user_id, None)
            .await?
            .ok_or_else(|| AppError::internal("no number was given to the user"))
    }

    /// The user numbered `n`, if any.
    ///
    /// # Errors
    /// `500 internal` if the store fails.
    pub async fn user_of_number(&self, n: i64) -> AppResult<Option<String>> {
        Ok(self.store.users.id_of_number(NumericKind::User, n).await?)
    }

    /// Room `room_id`'s number, if it has one (only call rooms do).
    ///
    /// # Errors
    /// `500 internal` if the store fails.
    pub async fn room_number(&self, room_id: &str) -> AppResult<Option<i64>> {
        Ok(self
            .store
            .users
            .numeric_id(NumericKind::Room, room_id)
            .await?)
    }

    /// Makes a call room: a private room owned by the caller (named after them), given a
    /// random number, with a call of `kind` started in it by connection `conn` ringing
    /// nobody. Returns the room's number and the call joined.
    ///
    /// # Errors
    /// `409 conflict` (this connection is in a call: checked before the room is made);
    /// `429 rate_limited` (`user_limits.room_creations`, `user_limits.call_starts`); as
    /// [`Service::create_room`] and [`Service::start_call`].
    pub async fn create_call_room(
        &self,
        actor: &Actor,
        conn: ConnId,
        kind: CallKind,
    ) -> AppResult<(i64, CallJoined)> {
        if let Some(call_id) = self.calls.call_of(conn).await? {
            return Err(AppError::new(
                ErrorCode::Conflict,
                format!("this connection is already in call {call_id}: leave it first"),
            ));
        }
        let username = self.me(actor).await?.username;
        let room = self
            .create_room(
                actor,
                CreateRoomRequest {
                    name: format!("Call by {username}"),
                    visibility: Visibility::Private,
                    topic: Some(
                        "Made by seed 003's CreateRoom: whoever knows its number may join".into(),
                    ),
                },
            )
            .await?;
        let number = loop {
            let candidate =
                i64::try_from(OsRng.next_u64() % MAX_ROOM_NUMBER.unsigned_abs()).unwrap_or(0) + 1;
            if let Some(n) = self
                .store
                .users
                .assign_number(NumericKind::Room, &room.id, Some(candidate))
                .await?
            {
                break n;
            }
        };
        let joined = self
            .start_call(actor, conn, silent_start(&room.id, kind))
            .await?;
        Ok((number, joined))
    }

    /// Joins the call room numbered `number` (becoming a member of the room if needed)
    /// and the call going on in it, or starts one with connection `conn` as host if
    /// nobody is in it.
    ///
    /// # Errors
    /// `404 not_found` (no room has this number); `403 forbidden` (banned from it);
    /// `409 conflict` (this connection is in a call); `409 call_full`; as
    /// [`Service::accept_call`] and [`Service::start_call`].
    pub async fn join_call_room(
        &self,
        actor: &Actor,
        conn: ConnId,
        number: i64,
    ) -> AppResult<CallJoined> {
        let room_id = self
            .store
            .users
            .id_of_number(NumericKind::Room, number)
            .await?
            .ok_or_else(|| AppError::not_found("room"))?;
        let room = self.room(&room_id).await?;
        if !self.store.rooms.is_member(&room_id, &actor.user_id).await? {
            if self.store.rooms.is_banned(&room_id, &actor.user_id).await? {
                return Err(AppError::new(
                    ErrorCode::Forbidden,
                    "you are banned from this room",
                ));
            }
            self.add_member(&room.id, &actor.user_id, MemberRole::Member)
                .await?;
        }
        let mut last = AppError::not_found("call");
        for _ in 0..JOIN_ATTEMPTS {
            let attempt = match self.calls.call_in_room(&room_id).await? {
                Some(call_id) => self.accept_call(actor, conn, &call_id).await,
                None => {
                    self.start_call(actor, conn, silent_start(&room_id, CallKind::Video))
                        .await
                }
            };
            match attempt {
                // The call ended meanwhile, or another joiner started one first: look
                // again.
                Err(e)
                    if e.code == ErrorCode::NotFound && self.still_in(actor, &room_id).await? =>
                {
                    last = e;
                }
                Err(e)
                    if e.code == ErrorCode::Conflict
                        && self.calls.call_of(conn).await?.is_none() =>
                {
                    last = e;
                }
                other => return other,
            }
        }
        Err(last)
    }

    /// Whether the caller is still a member of `room_id`.
    async fn still_in(&self, actor: &Actor, room_id: &str) -> AppResult<bool> {
        Ok(self.store.rooms.is_member(room_id, &actor.user_id).await?)
    }

    /// Registers an account as [`Service::register`] does (same validation, rate limit
    /// and errors) and gives it an API key named [`SIGNALING_KEY_NAME`] instead of a
    /// session. Without an `email`, the account gets a placeholder that can receive
    /// nothing (`<random>@signaling.invalid`, RFC 2606).
    ///
    /// # Errors
    /// As [`Service::register`].
    pub async fn register_with_api_key(
        &self,
        username: String,
        password: String,
        email: Option<String>,
        client: &ClientInfo,
    ) -> AppResult<(UserRow, CreatedApiKey)> {
        if let Some(ip) = client.ip {
            self.rate
                .registrations_per_ip
                .hit(&crate::net::address_key(ip))
                .await
                .map_err(|l| self.limited("registrations_per_ip", l))?;
        }
        let email = email.unwrap_or_else(|| {
            format!(
                "{}@signaling.invalid",
                crate::auth::tokens::random_token(12).to_lowercase()
            )
        });
        let user = self
            .new_user(
                RegisterRequest {
                    username,
                    email,
                    password,
                },
                Role::User,
            )
            .await?;
        let key = self.create_signaling_key(&user).await?;
        Ok((user, key))
    }

    /// After checking `login` and `password` (as a login: rate limits and, for accounts
    /// with two-factor codes, `code` included), revokes
    /// the account's API keys named [`SIGNALING_KEY_NAME`] (closing their WebSockets)
    /// and makes a new one.
    ///
    /// # Errors
    /// As [`Service::login`] (`401 two_factor_required`...); `409 conflict` if the
    /// account holds the most API keys.
    pub async fn regenerate_api_key(
        &self,
        login: String,
        password: String,
        code: Option<String>,
        client: &ClientInfo,
    ) -> AppResult<(UserRow, CreatedApiKey)> {
        let user = self
            .check_login(
                LoginRequest {
                    login,
                    password,
                    code,
                },
                client,
            )
            .await?;
        let actor = by_password(&user);
        for key in self.api_keys(&actor).await? {
            if key.name == SIGNALING_KEY_NAME {
                match self.revoke_api_key(&actor, &key.id).await {
                    Ok(()) => {}
                    // Revoked by a concurrent request meanwhile.
                    Err(e) if e.code == ErrorCode::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let key = self.create_signaling_key(&user).await?;
        Ok((user, key))
    }

    /// After checking `login`, `password` and `code` (as a login), changes the password as
    /// [`Service::change_password`] does: every login session of the account ends; API
    /// keys stay.
    ///
    /// # Errors
    /// As [`Service::login`]; `422 validation_failed` (`new_password`).
    pub async fn change_password_by_login(
        &self,
        login: String,
        password: String,
        new_password: String,
        code: Option<String>,
        client: &ClientInfo,
    ) -> AppResult<UserRow> {
        let user = self
            .check_login(
                LoginRequest {
                    login,
                    password: password.clone(),
                    code,
                },
                client,
            )
            .await?;
        self.change_password(
            &by_password(&user),
            ChangePasswordRequest {
                current_password: password,
                new_password,
                revoke_api_keys: false,
            },
        )
        .await?;
        Ok(user)
    }

    async fn create_signaling_key(&self, user: &UserRow) -> AppResult<CreatedApiKey> {
        self.create_api_key(
            &by_password(user),
            CreateApiKeyRequest {
                name: SIGNALING_KEY_NAME.into(),
                expires_at: None,
            },
        )
        .await
    }
}

/// `user` acting on a request authenticated by their password, which holds no session
/// (so a password change ends every session of the account).
fn by_password(user: &UserRow) -> Actor {
    Actor {
        user_id: user.id.clone(),
        role: user.role,
        credential: Credential::ApiKey(String::new()),
    }
}

/// `call.start` in `room_id` ringing nobody.
fn silent_start(room_id: &str, kind: CallKind) -> StartCall {
    StartCall {
        room_id: Some(room_id.to_owned()),
        user_id: None,
        kind,
        invite: Some(Vec::new()),
        offer: None,
    }
}
