//! Resuming a SignalR client where its previous connection ended, across a server
//! restart, from the database.
//!
//! SignalR clients cannot say where they are (there is no `since` in the protocol), and
//! stateful reconnect only reattaches a socket to a connection that still exists on the
//! server. So Palaver keeps, per negotiated connection, where it is in each room (the
//! last seq delivered), and when the connection ends without the client asking (a
//! restart, a dropped socket) it stores that as a **resume ticket** in the database
//! (`SessionStore::save_resume_ticket`). The ticket's token is given to the client as an
//! `HttpOnly` cookie on `negotiate` (path `/hubs/<hub>`); the official clients keep
//! cookies per connection (Node, .NET) or per browser, and send it with their next
//! negotiate, which takes the ticket (single use, [`TICKET_TTL`]) and starts the new
//! connection by replaying every room after its position, before going live. So a
//! client built `withAutomaticReconnect()` misses nothing across a graceful restart.
//!
//! "Delivered" is what the client is known to have: for a connection closed by the
//! server with a Close record (shutdown), everything written before it; for a stateful
//! connection whose socket dropped, what it acknowledged; for any other connection,
//! what was written. A client that closes on purpose (its Close record or WebSocket close
//! frame) leaves no ticket. Tickets name the user and the hub, and only that user's
//! negotiate on that hub can take them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue};
use sha2::{Digest, Sha256};

use super::HubKind;
use crate::auth::Actor;
use crate::store::ResumeTicket;
use crate::AppState;

/// The cookie carrying a connection's ticket token.
pub const COOKIE: &str = "palaver_signalr";
/// How long a ticket can be taken after its connection ended.
pub const TICKET_TTL: Duration = Duration::from_secs(600);

/// Where one connection is, per room, and how it ended.
#[derive(Debug, Default)]
pub struct Track {
    /// Room → (last seq written to the client, last seq the client acknowledged: stateful
    /// reconnect only).
    rooms: HashMap<Box<str>, (i64, i64)>,
    /// The client closed on purpose: no ticket.
    pub client_closed: bool,
    /// The ticket was stored (or must not be).
    pub done: bool,
}

impl Track {
    /// The connection starts at `seq` in `room_id` (its `ready` snapshot, or a resumed
    /// position, whichever is earlier).
    pub fn start(&mut self, room_id: &str, seq: i64) {
        match self.rooms.get_mut(room_id) {
            Some((sent, acked)) => {
                *sent = (*sent).min(seq);
                *acked = (*acked).min(seq);
            }
            None => {
                self.rooms.insert(room_id.into(), (seq, seq));
            }
        }
    }

    /// Change `seq` of `room_id` was written. A room met for the first time (joined
    /// meanwhile) counts as acknowledged up to just before it.
    pub fn sent(&mut self, room_id: &str, seq: i64) {
        match self.rooms.get_mut(room_id) {
            Some((sent, _)) => *sent = (*sent).max(seq),
            None => {
                self.rooms.insert(room_id.into(), (seq, seq - 1));
            }
        }
    }

    /// The client acknowledged change `seq` of `room_id`.
    pub fn acked(&mut self, room_id: &str, seq: i64) {
        if let Some((_, acked)) = self.rooms.get_mut(room_id) {
            *acked = (*acked).max(seq);
        }
    }

    /// The positions to store: what was written when that is known to have arrived
    /// (`written_arrived`), else what was acknowledged.
    fn positions(&self, written_arrived: bool) -> HashMap<&str, i64> {
        self.rooms
            .iter()
            .map(|(room, (sent, acked))| (&**room, if written_arrived { *sent } else { *acked }))
            .collect()
    }
}

/// A connection's ticket: its token, owner, hub, and where it is.
pub struct Resume {
    pub token: String,
    pub user_id: String,
    pub hub: HubKind,
    pub track: Mutex<Track>,
}

impl Resume {
    pub fn new(token: String, user_id: String, hub: HubKind) -> Self {
        Resume {
            token,
            user_id,
            hub,
            track: Mutex::new(Track::default()),
        }
    }

    pub fn track(&self) -> std::sync::MutexGuard<'_, Track> {
        self.track.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores the ticket, once, unless the client closed on purpose.
    /// `written_arrived`: everything written is known to have reached the client (a
    /// Close record went out after it), or the connection is not stateful (nothing
    /// better is known).
    pub async fn save(&self, state: &AppState, written_arrived: bool) {
        let positions = {
            let mut track = self.track();
            if track.done || track.client_closed {
                return;
            }
            track.done = true;
            serde_json::to_string(&track.positions(written_arrived)).unwrap_or_default()
        };
        let expires = time::OffsetDateTime::now_utc() + TICKET_TTL;
        let ticket = ResumeTicket {
            user_id: self.user_id.clone(),
            hub: self.hub.name().to_owned(),
            positions,
            expires_at: crate::service::rfc3339(expires),
        };
        let sessions = &state.service.store.sessions;
        if let Err(e) = sessions
            .save_resume_ticket(&hash(&self.token), &ticket)
            .await
        {
            tracing::warn!(error = %e, "storing a SignalR resume ticket");
        }
        if state.signalr.purge_due() {
            let now = crate::service::now_rfc3339();
            if let Err(e) = sessions.purge_resume_tickets(&now).await {
                tracing::warn!(error = %e, "purging SignalR resume tickets");
            }
        }
    }
}

/// SHA-256 of a ticket token (only hashes are stored).
fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The ticket token in the request's `Cookie` header, if any.
pub fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The `Set-Cookie` for a new ticket token on `hub`: `HttpOnly`, `SameSite=Lax`, path
/// `/hubs/<hub>`, `Secure` unless the request came to a loopback host (plain HTTP in
/// development).
pub fn set_cookie(token: &str, hub: HubKind, headers: &HeaderMap) -> Option<HeaderValue> {
    let secure = if crate::net::host_is_loopback(headers) {
        ""
    } else {
        "; Secure"
    };
    let max_age = TICKET_TTL.as_secs() * 6 * 24; // long after any ticket expires
    HeaderValue::from_str(&format!(
        "{COOKIE}={token}; Path=/hubs/{}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        hub.name()
    ))
    .ok()
}

/// Takes the ticket `token` names, if it is `actor`'s on `hub` and still valid: the rooms
/// to replay, each after its position.
pub async fn take(
    state: &AppState,
    token: &str,
    actor: &Actor,
    hub: HubKind,
) -> Vec<(String, Option<i64>)> {
    let now = crate::service::now_rfc3339();
    let ticket = match state
        .service
        .store
        .sessions
        .take_resume_ticket(&hash(token), &now)
        .await
    {
        Ok(Some(ticket)) => ticket,
        Ok(None) => return Vec::new(),
        Err(e) => {
            tracing::warn!(error = %e, "reading a SignalR resume ticket");
            return Vec::new();
        }
    };
    if ticket.user_id != actor.user_id || ticket.hub != hub.name() {
        return Vec::new();
    }
    let positions: HashMap<String, i64> =
        serde_json::from_str(&ticket.positions).unwrap_or_default();
    positions
        .into_iter()
        .map(|(room, seq)| (room, Some(seq)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; palaver_signalr=tok-en_1; b=2"),
        );
        assert_eq!(cookie_token(&headers), Some("tok-en_1"));
        headers.insert(header::COOKIE, HeaderValue::from_static("palaver_signalr="));
        assert_eq!(cookie_token(&headers), None);
    }

    #[test]
    fn the_cookie_is_secure_except_on_loopback() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        let local = set_cookie("t", HubKind::Chat, &headers).unwrap();
        let local = local.to_str().unwrap();
        assert!(local.starts_with("palaver_signalr=t; Path=/hubs/chat;"));
        assert!(local.contains("HttpOnly") && !local.contains("Secure"));
        headers.insert(header::HOST, HeaderValue::from_static("chat.example.org"));
        let remote = set_cookie("t", HubKind::WebRtc, &headers).unwrap();
        assert!(remote.to_str().unwrap().contains("Path=/hubs/webrtc;"));
        assert!(remote.to_str().unwrap().ends_with("; Secure"));
    }

    #[test]
    fn positions_start_at_the_earlier_and_rise() {
        let mut track = Track::default();
        track.start("r", 10);
        track.start("r", 7);
        track.sent("r", 9);
        track.sent("r", 12);
        track.acked("r", 11);
        track.sent("s", 3);
        assert_eq!(track.positions(true)["r"], 12);
        assert_eq!(track.positions(false)["r"], 11);
        assert_eq!(track.positions(true)["s"], 3);
        assert_eq!(
            track.positions(false)["s"],
            2,
            "a room joined meanwhile, unacknowledged"
        );
    }
}
