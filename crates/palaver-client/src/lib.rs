//! An async Rust client for Palaver: REST ([`Client`]) and WebSocket ([`Socket`]).
//!
//! Used by the server's integration tests, the load generator and bots. Typed helpers
//! return wire types from `palaver-protocol`; failures come back as [`ClientError`],
//! which keeps the server's status and error body so callers can assert on codes.
//!
//! ```no_run
//! # async fn demo() -> Result<(), palaver_client::ClientError> {
//! use palaver_client::Client;
//! use palaver_protocol::Visibility;
//! let mut alice = Client::new("http://127.0.0.1:8080");
//! alice.register("alice", "alice@example.com", "correct horse").await?;
//! let room = alice.create_room("general", Visibility::Public, None).await?;
//! let mut socket = alice.connect().await?;
//! let message = socket.send_message(&room.id, "hello", None).await?;
//! assert_eq!(message.seq, 1);
//! # Ok(()) }
//! ```

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use palaver_protocol::rest::{
    AdminUser, AdminUserList, ApiKeyInfo, ApiKeyList, AuthResponse, BlockList,
    ChangePasswordRequest, CreateApiKeyRequest, CreateRoomRequest, CreatedApiKey,
    DeleteAccountRequest, EditList, EditMessageRequest, InvitationList, LoginRequest, MemberList,
    MessagePage, ReadRequest, ReadState, RefreshRequest, RegisterRequest, RoomList,
    SendMessageRequest, SessionInfo, SessionList, SetMemberRoleRequest, SetRoleRequest,
    UpdateProfileRequest, UpdateRoomRequest, UserList, UserRef,
};
use palaver_protocol::ws::Reply;
use palaver_protocol::{
    Attachment, ErrorBody, Invitation, Member, MemberRole, Message, MessageEdit, PublicUser, Role,
    Room, User, Visibility,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::handshake::client::Request as WsRequest;
use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// What went wrong talking to the server.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status; `body` is its `{"error": ...}` if it
    /// sent one.
    #[error("HTTP {status}: {body:?}")]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The decoded error body, if the response carried one.
        body: Option<ErrorBody>,
    },
    /// A WebSocket request got a failed reply.
    #[error("request failed: {0:?}")]
    Rejected(palaver_protocol::ErrorDetail),
    /// The connection failed or closed.
    #[error("transport: {0}")]
    Transport(String),
    /// Nothing arrived in time.
    #[error("timed out waiting for {0}")]
    Timeout(&'static str),
    /// The server sent something this client could not decode.
    #[error("unexpected response: {0}")]
    Decode(String),
}

impl ClientError {
    /// The server's error code, if the failure carried one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { body: Some(b), .. } => Some(b.error.code.as_str()),
            ClientError::Rejected(d) => Some(d.code.as_str()),
            _ => None,
        }
    }

    /// The HTTP status, for REST failures.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl From<reqwest::Error> for ClientError {
    fn from(e: reqwest::Error) -> Self {
        ClientError::Transport(e.to_string())
    }
}

/// Result of a client call.
pub type ClientResult<T> = Result<T, ClientError>;

/// How long a REST request made by [`Client::new`]'s client may take, end to end.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// A REST client for one server, optionally logged in.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    /// The access token, once logged in.
    pub token: Option<String>,
    /// The logged-in user.
    pub user: Option<User>,
}

impl Client {
    /// A client for the server at `base` (e.g. `http://127.0.0.1:8080`). Each REST
    /// request gives up after [`DEFAULT_HTTP_TIMEOUT`].
    pub fn new(base: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(DEFAULT_HTTP_TIMEOUT)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Client {
            base: base.into().trim_end_matches('/').to_owned(),
            http,
            token: None,
            user: None,
        }
    }

    /// A client for the server at `base` that sends its REST requests through `http`
    /// (e.g. one bound to a particular local address with
    /// [`reqwest::ClientBuilder::local_address`]).
    pub fn with_http(base: impl Into<String>, http: reqwest::Client) -> Self {
        Client {
            http,
            ..Client::new(base)
        }
    }

    /// A client for the server at `base` that authenticates with `token` (an access token
    /// or an API key, sent as `Authorization: Bearer <token>`), without a known user.
    pub fn with_token(base: impl Into<String>, token: impl Into<String>) -> Self {
        Client {
            token: Some(token.into()),
            ..Client::new(base)
        }
    }

    /// The server's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `POST /api/v1/auth/register`; on success the client is logged in as the new user.
    pub async fn register(
        &mut self,
        username: &str,
        email: &str,
        password: &str,
    ) -> ClientResult<AuthResponse> {
        let body = RegisterRequest {
            username: username.into(),
            email: email.into(),
            password: password.into(),
        };
        let auth: AuthResponse = self.post("/api/v1/auth/register", &body).await?;
        self.token = Some(auth.access_token.clone());
        self.user = Some(auth.user.clone());
        Ok(auth)
    }

    /// `POST /api/v1/auth/login`; on success the client is logged in.
    pub async fn login(&mut self, login: &str, password: &str) -> ClientResult<AuthResponse> {
        let body = LoginRequest {
            login: login.into(),
            password: password.into(),
            code: None,
        };
        let auth: AuthResponse = self.post("/api/v1/auth/login", &body).await?;
        self.token = Some(auth.access_token.clone());
        self.user = Some(auth.user.clone());
        Ok(auth)
    }

    /// `GET /api/v1/users/me`.
    pub async fn me(&self) -> ClientResult<User> {
        self.get("/api/v1/users/me").await
    }

    /// `POST /api/v1/auth/refresh`: exchanges `refresh_token` for a new pair; on success
    /// the client uses the new access token.
    pub async fn refresh(&mut self, refresh_token: &str) -> ClientResult<AuthResponse> {
        let body = RefreshRequest {
            refresh_token: refresh_token.into(),
        };
        let auth: AuthResponse = self.post("/api/v1/auth/refresh", &body).await?;
        self.token = Some(auth.access_token.clone());
        self.user = Some(auth.user.clone());
        Ok(auth)
    }

    /// `POST /api/v1/auth/logout` (expects `204`): ends the current session, or revokes
    /// the API key the client authenticates with. The client keeps its (now dead) token.
    pub async fn logout(&self) -> ClientResult<()> {
        self.send_empty(reqwest::Method::POST, "/api/v1/auth/logout", None::<&()>)
            .await
    }

    /// `GET /api/v1/users/me/sessions`: the caller's live sessions, newest first.
    pub async fn sessions(&self) -> ClientResult<Vec<SessionInfo>> {
        Ok(self
            .get::<SessionList>("/api/v1/users/me/sessions")
            .await?
            .sessions)
    }

    /// `DELETE /api/v1/users/me/sessions/{session_id}` (expects `204`).
    pub async fn end_session(&self, session_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::DELETE,
            &format!("/api/v1/users/me/sessions/{session_id}"),
            None::<&()>,
        )
        .await
    }

    /// `PATCH /api/v1/users/me`: absent fields are kept, `Some(None)` clears one.
    pub async fn update_profile(&self, update: &UpdateProfileRequest) -> ClientResult<User> {
        self.patch("/api/v1/users/me", Some(update)).await
    }

    /// `GET /api/v1/users/{user_id}`: another user's public profile.
    pub async fn user(&self, user_id: &str) -> ClientResult<PublicUser> {
        self.get(&format!("/api/v1/users/{user_id}")).await
    }

    /// `GET /api/v1/users?q=&after=&limit=`: users whose username starts with `q`, by
    /// username; pass the previous page's `next` as `after`.
    pub async fn search_users(
        &self,
        q: &str,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> ClientResult<UserList> {
        let mut query = vec![("q", q.to_owned())];
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let req = self
            .http
            .get(format!("{}/api/v1/users", self.base))
            .query(&query);
        decode(self.authorize(req).send().await?).await
    }

    /// `PUT /api/v1/users/me/password` (expects `204`): every other session ends.
    pub async fn change_password(&self, current: &str, new: &str) -> ClientResult<()> {
        self.change_password_with(current, new, false).await
    }

    /// [`change_password`](Self::change_password), and with `revoke_api_keys` every API
    /// key of the account is revoked too.
    pub async fn change_password_with(
        &self,
        current: &str,
        new: &str,
        revoke_api_keys: bool,
    ) -> ClientResult<()> {
        let body = ChangePasswordRequest {
            current_password: current.into(),
            new_password: new.into(),
            revoke_api_keys,
        };
        self.send_empty(
            reqwest::Method::PUT,
            "/api/v1/users/me/password",
            Some(&body),
        )
        .await
    }

    /// `DELETE /api/v1/users/me` with the password (expects `204`): deletes the account.
    pub async fn delete_account(&self, password: &str) -> ClientResult<()> {
        let body = DeleteAccountRequest {
            password: password.into(),
        };
        self.send_empty(reqwest::Method::DELETE, "/api/v1/users/me", Some(&body))
            .await
    }

    /// `POST /api/v1/users/me/api-keys`: the answer holds the whole key, shown this once.
    /// `expires_at` is an RFC 3339 time.
    pub async fn create_api_key(
        &self,
        name: &str,
        expires_at: Option<&str>,
    ) -> ClientResult<CreatedApiKey> {
        let body = CreateApiKeyRequest {
            name: name.into(),
            expires_at: expires_at.map(Into::into),
        };
        self.post("/api/v1/users/me/api-keys", &body).await
    }

    /// `GET /api/v1/users/me/api-keys`: the caller's keys, without their secrets.
    pub async fn api_keys(&self) -> ClientResult<Vec<ApiKeyInfo>> {
        Ok(self
            .get::<ApiKeyList>("/api/v1/users/me/api-keys")
            .await?
            .api_keys)
    }

    /// `DELETE /api/v1/users/me/api-keys/{key_id}` (expects `204`).
    pub async fn revoke_api_key(&self, key_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::DELETE,
            &format!("/api/v1/users/me/api-keys/{key_id}"),
            None::<&()>,
        )
        .await
    }

    /// `PUT /api/v1/users/me/blocks/{user_id}`: returns the blocked user.
    pub async fn block(&self, user_id: &str) -> ClientResult<PublicUser> {
        self.put(&format!("/api/v1/users/me/blocks/{user_id}"), None::<&()>)
            .await
    }

    /// `DELETE /api/v1/users/me/blocks/{user_id}` (expects `204`).
    pub async fn unblock(&self, user_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::DELETE,
            &format!("/api/v1/users/me/blocks/{user_id}"),
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v1/users/me/blocks`: the users the caller has blocked.
    pub async fn blocks(&self) -> ClientResult<Vec<PublicUser>> {
        Ok(self
            .get::<BlockList>("/api/v1/users/me/blocks")
            .await?
            .blocked)
    }

    /// `GET /api/v1/admin/users?q=`: accounts whose username starts with `q` (admins only).
    pub async fn admin_users(&self, q: &str) -> ClientResult<AdminUserList> {
        let req = self
            .http
            .get(format!("{}/api/v1/admin/users", self.base))
            .query(&[("q", q)]);
        decode(self.authorize(req).send().await?).await
    }

    /// `PUT /api/v1/admin/users/{user_id}/role` (admins only).
    pub async fn admin_set_role(&self, user_id: &str, role: Role) -> ClientResult<AdminUser> {
        self.put(
            &format!("/api/v1/admin/users/{user_id}/role"),
            Some(&SetRoleRequest { role }),
        )
        .await
    }

    /// `POST /api/v1/admin/users/{user_id}/disable` (admins only): the account's sessions
    /// end and its logins are refused.
    pub async fn admin_disable(&self, user_id: &str) -> ClientResult<AdminUser> {
        self.post(
            &format!("/api/v1/admin/users/{user_id}/disable"),
            &json!({}),
        )
        .await
    }

    /// `POST /api/v1/admin/users/{user_id}/enable` (admins only).
    pub async fn admin_enable(&self, user_id: &str) -> ClientResult<AdminUser> {
        self.post(&format!("/api/v1/admin/users/{user_id}/enable"), &json!({}))
            .await
    }

    /// `POST /api/v1/rooms`.
    pub async fn create_room(
        &self,
        name: &str,
        visibility: Visibility,
        topic: Option<&str>,
    ) -> ClientResult<Room> {
        let body = CreateRoomRequest {
            name: name.into(),
            visibility,
            topic: topic.map(Into::into),
        };
        self.post("/api/v1/rooms", &body).await
    }

    /// `GET /api/v1/rooms`: all the caller's rooms (following every page).
    pub async fn my_rooms(&self) -> ClientResult<Vec<Room>> {
        self.all_pages("/api/v1/rooms", None).await
    }

    /// `GET /api/v1/rooms?after=&limit=`: one page of the caller's rooms; pass the
    /// previous page's `next` as `after`.
    pub async fn my_rooms_page(
        &self,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> ClientResult<RoomList> {
        self.rooms_page("/api/v1/rooms", None, after, limit).await
    }

    /// `GET /api/v1/rooms/public`: the whole public directory (following every page).
    pub async fn public_rooms(&self) -> ClientResult<Vec<Room>> {
        self.all_pages("/api/v1/rooms/public", None).await
    }

    /// `GET /api/v1/rooms/public?q=&after=&limit=`: one page of the public directory,
    /// names containing `q` when given; pass the previous page's `next` as `after`.
    pub async fn public_rooms_page(
        &self,
        q: Option<&str>,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> ClientResult<RoomList> {
        self.rooms_page("/api/v1/rooms/public", q, after, limit)
            .await
    }

    /// Every room of a paged room list at `path`, 100 a page.
    async fn all_pages(&self, path: &str, q: Option<&str>) -> ClientResult<Vec<Room>> {
        let mut rooms = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = self
                .rooms_page(path, q, after.as_deref(), Some(100))
                .await?;
            rooms.extend(page.rooms);
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(rooms),
            }
        }
    }

    /// One page of a paged room list at `path`.
    async fn rooms_page(
        &self,
        path: &str,
        q: Option<&str>,
        after: Option<&str>,
        limit: Option<i64>,
    ) -> ClientResult<RoomList> {
        let mut query = Vec::new();
        if let Some(q) = q {
            query.push(("q", q.to_owned()));
        }
        if let Some(after) = after {
            query.push(("after", after.to_owned()));
        }
        if let Some(limit) = limit {
            query.push(("limit", limit.to_string()));
        }
        let req = self.http.get(format!("{}{path}", self.base)).query(&query);
        decode(self.authorize(req).send().await?).await
    }

    /// `POST /api/v1/rooms/{room_id}/join`.
    pub async fn join_room(&self, room_id: &str) -> ClientResult<Room> {
        self.post(&format!("/api/v1/rooms/{room_id}/join"), &json!({}))
            .await
    }

    /// `POST /api/v1/rooms/{room_id}/messages`.
    pub async fn send_message(
        &self,
        room_id: &str,
        content: &str,
        client_id: Option<&str>,
    ) -> ClientResult<Message> {
        let body = SendMessageRequest {
            content: content.into(),
            client_id: client_id.map(Into::into),
            reply_to: None,
            attachment_id: None,
        };
        self.post(&format!("/api/v1/rooms/{room_id}/messages"), &body)
            .await
    }

    /// `GET /api/v1/search/messages` with these query parameters (`q`, `room_id`,
    /// `sender_id`, `before`, `after`, `has_attachment`, `sort`, `limit`, `cursor`),
    /// URL-encoded here.
    pub async fn search_messages(
        &self,
        params: &[(&str, &str)],
    ) -> ClientResult<palaver_protocol::rest::SearchResults> {
        let req = self
            .http
            .get(format!("{}/api/v1/search/messages", self.base))
            .query(params);
        decode(self.authorize(req).send().await?).await
    }

    /// `GET /api/v1/rooms/{room_id}/messages` with optional `before`, `after`, `limit`.
    pub async fn history(
        &self,
        room_id: &str,
        before: Option<i64>,
        after: Option<i64>,
        limit: Option<i64>,
    ) -> ClientResult<MessagePage> {
        let mut query = Vec::new();
        for (name, value) in [("before", before), ("after", after), ("limit", limit)] {
            if let Some(v) = value {
                query.push(format!("{name}={v}"));
            }
        }
        let path = if query.is_empty() {
            format!("/api/v1/rooms/{room_id}/messages")
        } else {
            format!("/api/v1/rooms/{room_id}/messages?{}", query.join("&"))
        };
        self.get(&path).await
    }

    /// `GET /api/v1/rooms/{room_id}`: the room as the calling member sees it.
    pub async fn get_room(&self, room_id: &str) -> ClientResult<Room> {
        self.get(&format!("/api/v1/rooms/{room_id}")).await
    }

    /// `PATCH /api/v1/rooms/{room_id}` (owners and admins): `name: None` keeps the name;
    /// `topic: None` keeps the topic, `Some(None)` clears it, `Some(Some(t))` sets it.
    pub async fn update_room(
        &self,
        room_id: &str,
        name: Option<&str>,
        topic: Option<Option<&str>>,
    ) -> ClientResult<Room> {
        let body = UpdateRoomRequest {
            name: name.map(Into::into),
            topic: topic.map(|t| t.map(Into::into)),
            room_mentions: None,
        };
        self.patch(&format!("/api/v1/rooms/{room_id}"), Some(&body))
            .await
    }

    /// `DELETE /api/v1/rooms/{room_id}` (owners; expects `204`).
    pub async fn delete_room(&self, room_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::DELETE,
            &format!("/api/v1/rooms/{room_id}"),
            None::<&()>,
        )
        .await
    }

    /// `POST /api/v1/rooms/{room_id}/leave` (expects `204`).
    pub async fn leave_room(&self, room_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::POST,
            &format!("/api/v1/rooms/{room_id}/leave"),
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v1/rooms/{room_id}/members`: owners first.
    pub async fn members(&self, room_id: &str) -> ClientResult<Vec<Member>> {
        Ok(self
            .get::<MemberList>(&format!("/api/v1/rooms/{room_id}/members"))
            .await?
            .members)
    }

    /// `DELETE /api/v1/rooms/{room_id}/members/{user_id}`: kicks a member (expects `204`).
    pub async fn kick(&self, room_id: &str, user_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::DELETE,
            &format!("/api/v1/rooms/{room_id}/members/{user_id}"),
            None::<&()>,
        )
        .await
    }

    /// `PUT /api/v1/rooms/{room_id}/members/{user_id}/role` (owners): returns the member.
    pub async fn set_member_role(
        &self,
        room_id: &str,
        user_id: &str,
        role: MemberRole,
    ) -> ClientResult<Member> {
        self.put(
            &format!("/api/v1/rooms/{room_id}/members/{user_id}/role"),
            Some(&SetMemberRoleRequest { role }),
        )
        .await
    }

    /// `PUT /api/v1/rooms/{room_id}/bans/{user_id}` (owners and admins; expects `204`).
    pub async fn ban(&self, room_id: &str, user_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::PUT,
            &format!("/api/v1/rooms/{room_id}/bans/{user_id}"),
            None::<&()>,
        )
        .await
    }

    /// `DELETE /api/v1/rooms/{room_id}/bans/{user_id}` (owners and admins; expects `204`).
    pub async fn unban(&self, room_id: &str, user_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::DELETE,
            &format!("/api/v1/rooms/{room_id}/bans/{user_id}"),
            None::<&()>,
        )
        .await
    }

    /// `POST /api/v1/rooms/{room_id}/transfer-ownership` with `{user_id}` (the owner;
    /// expects `204`).
    pub async fn transfer_ownership(&self, room_id: &str, user_id: &str) -> ClientResult<()> {
        let body = UserRef {
            user_id: user_id.into(),
        };
        self.send_empty(
            reqwest::Method::POST,
            &format!("/api/v1/rooms/{room_id}/transfer-ownership"),
            Some(&body),
        )
        .await
    }

    /// `POST /api/v1/rooms/{room_id}/invitations` with `{user_id}`: the invitation.
    pub async fn invite(&self, room_id: &str, user_id: &str) -> ClientResult<Invitation> {
        let body = UserRef {
            user_id: user_id.into(),
        };
        self.post(&format!("/api/v1/rooms/{room_id}/invitations"), &body)
            .await
    }

    /// `GET /api/v1/invitations`: the caller's pending invitations.
    pub async fn invitations(&self) -> ClientResult<Vec<Invitation>> {
        Ok(self
            .get::<InvitationList>("/api/v1/invitations")
            .await?
            .invitations)
    }

    /// `POST /api/v1/invitations/{invitation_id}/accept`: joins and returns the room.
    pub async fn accept_invitation(&self, invitation_id: &str) -> ClientResult<Room> {
        self.post(
            &format!("/api/v1/invitations/{invitation_id}/accept"),
            &json!({}),
        )
        .await
    }

    /// `POST /api/v1/invitations/{invitation_id}/decline` (expects `204`).
    pub async fn decline_invitation(&self, invitation_id: &str) -> ClientResult<()> {
        self.send_empty(
            reqwest::Method::POST,
            &format!("/api/v1/invitations/{invitation_id}/decline"),
            None::<&()>,
        )
        .await
    }

    /// `POST /api/v1/dms` with `{user_id}`: the one DM room with that user.
    pub async fn open_dm(&self, user_id: &str) -> ClientResult<Room> {
        let body = UserRef {
            user_id: user_id.into(),
        };
        self.post("/api/v1/dms", &body).await
    }

    /// `POST /api/v1/rooms/{room_id}/messages` with every field of `request` (reply,
    /// attachment, client id).
    pub async fn send_message_with(
        &self,
        room_id: &str,
        request: &SendMessageRequest,
    ) -> ClientResult<Message> {
        self.post(&format!("/api/v1/rooms/{room_id}/messages"), request)
            .await
    }

    /// `PATCH /api/v1/rooms/{room_id}/messages/{message_id}` (the author): the edited
    /// message.
    pub async fn edit_message(
        &self,
        room_id: &str,
        message_id: &str,
        content: &str,
    ) -> ClientResult<Message> {
        let body = EditMessageRequest {
            content: content.into(),
        };
        self.patch(
            &format!("/api/v1/rooms/{room_id}/messages/{message_id}"),
            Some(&body),
        )
        .await
    }

    /// `DELETE /api/v1/rooms/{room_id}/messages/{message_id}`: the tombstone.
    pub async fn delete_message(&self, room_id: &str, message_id: &str) -> ClientResult<Message> {
        self.delete(
            &format!("/api/v1/rooms/{room_id}/messages/{message_id}"),
            None::<&()>,
        )
        .await
    }

    /// `GET /api/v1/rooms/{room_id}/messages/{message_id}/edits`: earlier versions,
    /// oldest first.
    pub async fn message_edits(
        &self,
        room_id: &str,
        message_id: &str,
    ) -> ClientResult<Vec<MessageEdit>> {
        Ok(self
            .get::<EditList>(&format!(
                "/api/v1/rooms/{room_id}/messages/{message_id}/edits"
            ))
            .await?
            .edits)
    }

    /// `PUT /api/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}` (the emoji is
    /// percent-encoded): the message with its reactions.
    pub async fn react(
        &self,
        room_id: &str,
        message_id: &str,
        emoji: &str,
    ) -> ClientResult<Message> {
        self.put(&reaction_path(room_id, message_id, emoji), None::<&()>)
            .await
    }

    /// `DELETE /api/v1/rooms/{room_id}/messages/{message_id}/reactions/{emoji}` (the emoji
    /// is percent-encoded): the message with its reactions.
    pub async fn unreact(
        &self,
        room_id: &str,
        message_id: &str,
        emoji: &str,
    ) -> ClientResult<Message> {
        self.delete(&reaction_path(room_id, message_id, emoji), None::<&()>)
            .await
    }

    /// `POST /api/v1/rooms/{room_id}/read` with `{seq}`: the caller's read state.
    pub async fn mark_read(&self, room_id: &str, seq: i64) -> ClientResult<ReadState> {
        self.post(
            &format!("/api/v1/rooms/{room_id}/read"),
            &ReadRequest { seq },
        )
        .await
    }

    /// `PUT /api/v1/users/me/avatar` (multipart, one part `file`): the updated profile.
    pub async fn set_avatar(&self, filename: &str, bytes: &[u8]) -> ClientResult<User> {
        let (content_type, body) = multipart_file("file", filename, bytes);
        let req = self
            .http
            .put(format!("{}/api/v1/users/me/avatar", self.base))
            .header("content-type", content_type)
            .body(body);
        decode(self.authorize(req).send().await?).await
    }

    /// `GET` a path (such as an `avatar_url`): the status, the `Content-Type` (if any) and
    /// the body, whatever the status. Only a transport failure is an `Err`.
    pub async fn get_bytes(&self, path: &str) -> ClientResult<(u16, Option<String>, Vec<u8>)> {
        let req = self.http.get(format!("{}{path}", self.base));
        let resp = self.authorize(req).send().await?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((status, content_type, resp.bytes().await?.to_vec()))
    }

    /// `POST /api/v1/attachments`: uploads `bytes` as a `multipart/form-data` body with
    /// one part named `file` (file name `filename`, claimed type
    /// `application/octet-stream`; the server sniffs the real one).
    pub async fn upload(&self, filename: &str, bytes: &[u8]) -> ClientResult<Attachment> {
        let (content_type, body) = multipart_file("file", filename, bytes);
        let req = self
            .http
            .post(format!("{}/api/v1/attachments", self.base))
            .header("content-type", content_type)
            .body(body);
        decode(self.authorize(req).send().await?).await
    }

    /// `GET /api/v1/attachments/{attachment_id}`: the status, the `Content-Type` (if any)
    /// and the body, whatever the status (an error body is the JSON error). Only a
    /// transport failure is an `Err`.
    pub async fn download(
        &self,
        attachment_id: &str,
    ) -> ClientResult<(u16, Option<String>, Vec<u8>)> {
        let req = self
            .http
            .get(format!("{}/api/v1/attachments/{attachment_id}", self.base));
        let resp = self.authorize(req).send().await?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = resp.bytes().await?.to_vec();
        Ok((status, content_type, bytes))
    }

    /// `GET path` with the bearer token, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> ClientResult<T> {
        let req = self.http.get(format!("{}{path}", self.base));
        decode(self.authorize(req).send().await?).await
    }

    /// `POST path` with a JSON body and the bearer token, decoded as `T`.
    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> ClientResult<T> {
        let req = self.http.post(format!("{}{path}", self.base)).json(body);
        decode(self.authorize(req).send().await?).await
    }

    /// `PUT path` with an optional JSON body and the bearer token, decoded as `T` (use
    /// `T = ()` for an empty answer).
    pub async fn put<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<T> {
        self.send(reqwest::Method::PUT, path, body).await
    }

    /// `PATCH path` with an optional JSON body and the bearer token, decoded as `T`.
    pub async fn patch<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<T> {
        self.send(reqwest::Method::PATCH, path, body).await
    }

    /// `DELETE path` with an optional JSON body and the bearer token, decoded as `T` (use
    /// `T = ()` for `204 No Content`).
    pub async fn delete<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<T> {
        self.send(reqwest::Method::DELETE, path, body).await
    }

    /// `method path` with an optional JSON body and the bearer token, decoded as `T`. An
    /// empty success body decodes as JSON `null`, so `T = ()` accepts it.
    pub async fn send<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<T> {
        decode(self.request_builder(method, path, body).send().await?).await
    }

    /// `method path` with an optional JSON body and the bearer token, for routes that
    /// answer `204 No Content`: any other status is an error (an error status as
    /// [`ClientError::Api`], another success status as [`ClientError::Decode`]); the body
    /// is ignored.
    pub async fn send_empty<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> ClientResult<()> {
        let resp = self.request_builder(method, path, body).send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        if status == reqwest::StatusCode::NO_CONTENT {
            Ok(())
        } else if status.is_success() {
            Err(ClientError::Decode(format!(
                "expected 204 No Content, got {status}"
            )))
        } else {
            Err(ClientError::Api {
                status: status.as_u16(),
                body: serde_json::from_slice(&bytes).ok(),
            })
        }
    }

    fn request_builder<B: Serialize + ?Sized>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&B>,
    ) -> reqwest::RequestBuilder {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(body) = body {
            req = req.json(body);
        }
        self.authorize(req)
    }

    /// `method path` with a raw body (for tests of malformed input); returns the status and
    /// the body parsed as JSON (or `Value::Null` when it is not JSON).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> ClientResult<(u16, Value)> {
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header("content-type", "application/json");
        if let Some(body) = body {
            req = req.body(body);
        }
        let resp = self.authorize(req).send().await?;
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// The WebSocket URL (`ws://.../api/v1/ws`).
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("http://")
            .map(|r| format!("ws://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("https://")
                    .map(|r| format!("wss://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/api/v1/ws")
    }

    /// Opens a WebSocket authenticated with the `Authorization` header and waits for the
    /// `ready` event (available as [`Socket::ready`]).
    pub async fn connect(&self) -> ClientResult<Socket> {
        self.connect_with(&[]).await
    }

    /// Opens a WebSocket with the client's bearer token (if any) plus `headers` (e.g.
    /// `Origin` or `X-API-Key`; a header named here replaces the default one) and waits
    /// for `ready`.
    pub async fn connect_with(&self, headers: &[(&str, &str)]) -> ClientResult<Socket> {
        Socket::open(self.ws_request(None, headers)?).await
    }

    /// Opens a WebSocket that resumes the given rooms: for each `(room_id, seq)`, the
    /// server replays every change after `seq` (`None`: from the room's latest page)
    /// before live events, with no gap and no duplicate. Waits for `ready`.
    pub async fn connect_resuming(&self, since: &[(&str, Option<i64>)]) -> ClientResult<Socket> {
        let list: Vec<String> = since
            .iter()
            .map(|(room, seq)| match seq {
                Some(seq) => format!("{room}:{seq}"),
                None => format!("{room}:"),
            })
            .collect();
        let query = format!("since={}", percent_encode(&list.join(",")));
        Socket::open(self.ws_request_with_query(Some(&query), &[])?).await
    }

    /// Opens a WebSocket authenticated with `token` (an access token or API key) in the
    /// `Authorization` header instead of the client's own, and waits for `ready`.
    pub async fn connect_with_token(&self, token: &str) -> ClientResult<Socket> {
        let bearer = format!("Bearer {token}");
        Socket::open(self.ws_request(None, &[("authorization", &bearer)])?).await
    }

    /// Opens a WebSocket authenticated only by the query parameter
    /// `?access_token=<token>` (as browsers do; no `Authorization` header), and waits for
    /// `ready`.
    pub async fn connect_with_query_token(&self, token: &str) -> ClientResult<Socket> {
        let mut request = self.ws_request(Some(token), &[])?;
        request.headers_mut().remove("authorization");
        Socket::open(request).await
    }

    /// The WebSocket handshake request: the client's bearer token (if any), then
    /// `headers` (replacing headers of the same name), and `access_token` in the query
    /// string when given. For tests that expect the handshake to be refused, pass it to
    /// `tokio_tungstenite::connect_async` directly.
    pub fn ws_request(
        &self,
        access_token: Option<&str>,
        headers: &[(&str, &str)],
    ) -> ClientResult<WsRequest> {
        let query = access_token.map(|token| format!("access_token={}", percent_encode(token)));
        self.ws_request_with_query(query.as_deref(), headers)
    }

    /// The WebSocket handshake request with a raw (already encoded) query string, the
    /// client's bearer token (if any) and `headers`.
    pub fn ws_request_with_query(
        &self,
        query: Option<&str>,
        headers: &[(&str, &str)],
    ) -> ClientResult<WsRequest> {
        let url = match query {
            Some(query) => format!("{}?{query}", self.ws_url()),
            None => self.ws_url(),
        };
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if let Some(t) = &self.token {
            let value = format!("Bearer {t}")
                .parse()
                .map_err(|_| ClientError::Decode("token is not a header value".into()))?;
            request.headers_mut().insert("authorization", value);
        }
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| ClientError::Decode(format!("header name {name:?}: {e}")))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| ClientError::Decode(format!("header value {value:?}: {e}")))?;
            request.headers_mut().insert(name, value);
        }
        Ok(request)
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters (for a query value).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The path of one reaction: the emoji percent-encoded byte by byte (UTF-8).
fn reaction_path(room_id: &str, message_id: &str, emoji: &str) -> String {
    format!(
        "/api/v1/rooms/{room_id}/messages/{message_id}/reactions/{}",
        percent_encode(emoji)
    )
}

/// A `multipart/form-data` body with one file part: returns the `Content-Type` header
/// value (with the boundary) and the body. The boundary is chosen so that it does not
/// occur in `bytes`; quotes and line breaks in `filename` are percent-encoded, as browsers
/// do.
fn multipart_file(part: &str, filename: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = (0u64..)
        .map(|n| format!("palaver-boundary-{n:016x}"))
        .find(|b| !bytes.windows(b.len()).any(|w| w == b.as_bytes()))
        .expect("some boundary does not occur in the bytes");
    let filename = filename
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A");
    let mut body = Vec::with_capacity(bytes.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{part}\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(bytes);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> ClientResult<T> {
    let status = resp.status();
    let bytes = resp.bytes().await?;
    if status.is_success() {
        // `204 No Content` (or any empty body) decodes as `null`, which `()` accepts.
        let bytes: &[u8] = if bytes.is_empty() { b"null" } else { &bytes };
        serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()))
    } else {
        Err(ClientError::Api {
            status: status.as_u16(),
            body: serde_json::from_slice(&bytes).ok(),
        })
    }
}

/// How long [`Socket`] waits for an expected frame by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// An open WebSocket to `/api/v1/ws`.
///
/// Frames that arrive while waiting for a reply are kept, in order, and returned by
/// [`Socket::next_event`], so no event is lost to a request.
pub struct Socket {
    ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// The `ready` event's data.
    pub ready: Value,
    pending: std::collections::VecDeque<Value>,
    next_id: u64,
    /// How long to wait for a frame before [`ClientError::Timeout`].
    pub timeout: Duration,
}

impl Socket {
    /// Connects with a prepared request (URL and headers) and waits for `ready`.
    pub async fn open(
        request: tokio_tungstenite::tungstenite::handshake::client::Request,
    ) -> ClientResult<Socket> {
        let (ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let mut socket = Socket {
            ws,
            ready: Value::Null,
            pending: Default::default(),
            next_id: 1,
            timeout: DEFAULT_TIMEOUT,
        };
        let first = socket.next_frame().await?;
        if first["type"] != "ready" {
            return Err(ClientError::Decode(format!("expected ready, got {first}")));
        }
        socket.ready = first["data"].clone();
        Ok(socket)
    }

    /// Sends a text frame as is (for tests of malformed input).
    pub async fn send_text(&mut self, text: impl Into<String>) -> ClientResult<()> {
        self.ws
            .send(WsMessage::Text(text.into().into()))
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// Sends request `kind` with `data` and waits for its reply; returns the reply's data,
    /// or [`ClientError::Rejected`] with the server's error.
    pub async fn request(&mut self, kind: &str, data: Value) -> ClientResult<Value> {
        let id = self.next_id;
        self.next_id += 1;
        let frame = json!({"id": id, "type": kind, "data": data});
        self.send_text(frame.to_string()).await?;
        let reply = self.wait_reply(&json!(id)).await?;
        if reply.ok {
            Ok(reply.data.unwrap_or(Value::Null))
        } else {
            Err(ClientError::Rejected(reply.error.ok_or_else(|| {
                ClientError::Decode("failed reply without error".into())
            })?))
        }
    }

    /// Waits for the reply with `id`, keeping other frames for [`Socket::next_event`].
    pub async fn wait_reply(&mut self, id: &Value) -> ClientResult<Reply> {
        loop {
            let frame = self.next_frame().await?;
            if frame["type"] == "reply" && &frame["id"] == id {
                return serde_json::from_value(frame)
                    .map_err(|e| ClientError::Decode(e.to_string()));
            }
            self.pending.push_back(frame);
        }
    }

    /// `message.send`: returns the stored message from the reply.
    pub async fn send_message(
        &mut self,
        room_id: &str,
        content: &str,
        client_id: Option<&str>,
    ) -> ClientResult<Message> {
        let data = self
            .request(
                "message.send",
                json!({"room_id": room_id, "content": content, "client_id": client_id}),
            )
            .await?;
        serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// Sends request `kind` with `data` and decodes the reply's data as `T`.
    pub async fn request_as<T: DeserializeOwned>(
        &mut self,
        kind: &str,
        data: Value,
    ) -> ClientResult<T> {
        let data = self.request(kind, data).await?;
        serde_json::from_value(data).map_err(|e| ClientError::Decode(e.to_string()))
    }

    /// `message.send` with every field of `request` (reply, attachment, client id).
    pub async fn send_message_with(
        &mut self,
        room_id: &str,
        request: &SendMessageRequest,
    ) -> ClientResult<Message> {
        let mut data =
            serde_json::to_value(request).map_err(|e| ClientError::Decode(e.to_string()))?;
        data["room_id"] = json!(room_id);
        self.request_as("message.send", data).await
    }

    /// `message.edit`: the edited message.
    pub async fn edit_message(
        &mut self,
        room_id: &str,
        message_id: &str,
        content: &str,
    ) -> ClientResult<Message> {
        let data = json!({"room_id": room_id, "message_id": message_id, "content": content});
        self.request_as("message.edit", data).await
    }

    /// `message.delete`: the tombstone.
    pub async fn delete_message(
        &mut self,
        room_id: &str,
        message_id: &str,
    ) -> ClientResult<Message> {
        let data = json!({"room_id": room_id, "message_id": message_id});
        self.request_as("message.delete", data).await
    }

    /// `reaction.add`: the message with its reactions.
    pub async fn react(
        &mut self,
        room_id: &str,
        message_id: &str,
        emoji: &str,
    ) -> ClientResult<Message> {
        let data = json!({"room_id": room_id, "message_id": message_id, "emoji": emoji});
        self.request_as("reaction.add", data).await
    }

    /// `reaction.remove`: the message with its reactions.
    pub async fn unreact(
        &mut self,
        room_id: &str,
        message_id: &str,
        emoji: &str,
    ) -> ClientResult<Message> {
        let data = json!({"room_id": room_id, "message_id": message_id, "emoji": emoji});
        self.request_as("reaction.remove", data).await
    }

    /// `read`: moves the read marker; returns the read state.
    pub async fn mark_read(&mut self, room_id: &str, seq: i64) -> ClientResult<ReadState> {
        self.request_as("read", json!({"room_id": room_id, "seq": seq}))
            .await
    }

    /// `room.join`: the room.
    pub async fn join_room(&mut self, room_id: &str) -> ClientResult<Room> {
        self.request_as("room.join", json!({"room_id": room_id}))
            .await
    }

    /// `room.leave`.
    pub async fn leave_room(&mut self, room_id: &str) -> ClientResult<()> {
        self.request("room.leave", json!({"room_id": room_id}))
            .await
            .map(|_| ())
    }

    /// Every event that arrives until none has come for `quiet` (kept ones first), in
    /// order. Returns at most `max` events, so a flood cannot keep it waiting forever.
    pub async fn drain(&mut self, quiet: Duration, max: usize) -> ClientResult<Vec<Value>> {
        let mut events = Vec::new();
        while events.len() < max {
            match self.try_next_event(quiet).await? {
                Some(event) => events.push(event),
                None => break,
            }
        }
        Ok(events)
    }

    /// The next frame that is not a reply awaited by a request (events, `error` events and
    /// unclaimed replies), as JSON.
    pub async fn next_event(&mut self) -> ClientResult<Value> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(frame);
        }
        self.next_frame().await
    }

    /// The next event of type `kind`, skipping others.
    pub async fn next_event_of(&mut self, kind: &str) -> ClientResult<Value> {
        loop {
            let event = self.next_event().await?;
            if event["type"] == kind {
                return Ok(event);
            }
        }
    }

    /// Waits up to `wait` and returns any event that arrives, or `None` (for asserting
    /// that nothing is delivered).
    pub async fn try_next_event(&mut self, wait: Duration) -> ClientResult<Option<Value>> {
        if let Some(frame) = self.pending.pop_front() {
            return Ok(Some(frame));
        }
        let saved = self.timeout;
        self.timeout = wait;
        let result = self.next_frame().await;
        self.timeout = saved;
        match result {
            Ok(v) => Ok(Some(v)),
            Err(ClientError::Timeout(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Waits for the server to close the connection; returns its close frame, if it sent
    /// one. Other frames are skipped.
    pub async fn wait_close(&mut self) -> ClientResult<Option<CloseFrame>> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(ClientError::Timeout("close")),
                Ok(None) => return Ok(None),
                Ok(Some(Err(e))) => return Err(ClientError::Transport(e.to_string())),
                Ok(Some(Ok(WsMessage::Close(frame)))) => return Ok(frame),
                Ok(Some(Ok(_))) => continue,
            }
        }
    }

    /// Closes the connection normally.
    pub async fn close(mut self) -> ClientResult<()> {
        self.ws
            .close(None)
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))
    }

    /// The raw WebSocket (for sending frames this client has no helper for).
    pub fn inner(&mut self) -> &mut WebSocketStream<MaybeTlsStream<TcpStream>> {
        &mut self.ws
    }

    async fn next_frame(&mut self) -> ClientResult<Value> {
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let msg = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Err(ClientError::Timeout("frame")),
                Ok(None) => return Err(ClientError::Transport("connection closed".into())),
                Ok(Some(Err(e))) => return Err(ClientError::Transport(e.to_string())),
                Ok(Some(Ok(msg))) => msg,
            };
            match msg {
                WsMessage::Text(text) => {
                    return serde_json::from_str(text.as_str())
                        .map_err(|e| ClientError::Decode(e.to_string()))
                }
                WsMessage::Close(frame) => {
                    return Err(ClientError::Transport(format!(
                        "closed by server: {frame:?}"
                    )))
                }
                _ => continue,
            }
        }
    }
}
