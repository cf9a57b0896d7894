//! Per-account limits on live actions (`[user_limits]`, see
//! [`UserLimits`](crate::config::UserLimits)): one keyed limiter per kind of action,
//! keyed by user id, so one account cannot flood rooms, ring members over and over, or
//! fill the directory, whatever number of sockets, API keys and REST calls it spreads the
//! actions over.
//!
//! Each limiter is a [`RateLimiter`] (the sliding-window counter of
//! [`crate::ratelimit`], also behind the per-IP request and login limits): a burst of
//! `max` passes, then about `max / window_secs` per second; memory per limiter is
//! bounded by [`crate::ratelimit::DEFAULT_MAX_KEYS`]. A refused action counts nothing and
//! is answered `rate_limited` with `retry_after_secs`, and counted in
//! `palaver_rate_limited_total{limit="user_<kind>"}` (e.g. `user_messages`).
//!
//! Concurrent sockets per user (`user_limits.sockets`) are a cap, not a rate, and are
//! enforced by the gateway.

use std::sync::Arc;

use palaver_protocol::ErrorCode;

use crate::config::UserLimits;
use crate::error::{AppError, AppResult};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::redis_conn::RedisConn;

/// A kind of limited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `message.send`, `message.edit`, `reaction.add`/`remove` and their REST routes.
    Message,
    /// `call.start`.
    CallStart,
    /// A typing notice about to be relayed.
    Typing,
    /// `presence.set`.
    Presence,
    /// An invitation to a room.
    Invitation,
    /// A room created.
    RoomCreation,
}

impl Action {
    /// What the error message calls it.
    fn noun(self) -> &'static str {
        match self {
            Action::Message => "messages",
            Action::CallStart => "calls started",
            Action::Typing => "typing notices",
            Action::Presence => "presence changes",
            Action::Invitation => "invitations",
            Action::RoomCreation => "rooms created",
        }
    }

    /// The `limit` label of `palaver_rate_limited_total`: `user_` and the config key.
    fn label(self) -> &'static str {
        match self {
            Action::Message => "user_messages",
            Action::CallStart => "user_call_starts",
            Action::Typing => "user_typing",
            Action::Presence => "user_presence",
            Action::Invitation => "user_invitations",
            Action::RoomCreation => "user_room_creations",
        }
    }
}

/// Seconds a client refused for holding too many sockets is told to wait.
pub const SOCKET_RETRY_SECS: u64 = 10;

/// The per-user limiters, one per [`Action`]; owned by the [`Service`](super::Service).
pub struct UserLimiters {
    messages: RateLimiter,
    call_starts: RateLimiter,
    typing: RateLimiter,
    presence: RateLimiter,
    invitations: RateLimiter,
    room_creations: RateLimiter,
    /// `user_limits.sockets`: the most WebSockets one user may hold open (0: no cap).
    max_sockets: usize,
    metrics: Arc<Metrics>,
}

impl UserLimiters {
    /// Limiters enforcing `config`'s rules, counting refusals in `metrics`; in Redis
    /// when `redis` is given (shared by the nodes), else in memory.
    pub fn new(config: &UserLimits, metrics: Arc<Metrics>, redis: Option<&Arc<RedisConn>>) -> Self {
        let limiter = |rule, name| RateLimiter::shared_or_local(rule, name, redis);
        UserLimiters {
            messages: limiter(config.messages, "user_messages"),
            call_starts: limiter(config.call_starts, "user_call_starts"),
            typing: limiter(config.typing, "user_typing"),
            presence: limiter(config.presence, "user_presence"),
            invitations: limiter(config.invitations, "user_invitations"),
            room_creations: limiter(config.room_creations, "user_room_creations"),
            max_sockets: config.sockets,
            metrics,
        }
    }

    /// The most WebSockets one user may hold open at once (`user_limits.sockets`); 0
    /// means no cap. The gateway enforces it with
    /// [`Hub::reserve_socket`](crate::hub::Hub::reserve_socket).
    pub fn max_sockets(&self) -> usize {
        self.max_sockets
    }

    /// The `429 rate_limited` for a user already holding `max` sockets, counted as
    /// `palaver_rate_limited_total{limit="user_sockets"}`. Its retry time is
    /// [`SOCKET_RETRY_SECS`]: a slot frees when one of the user's sockets closes.
    pub fn too_many_sockets(&self, max: usize) -> AppError {
        self.metrics
            .rate_limited
            .get_or_create(&Metrics::label("limit", "user_sockets"))
            .inc();
        AppError {
            retry_after: Some(SOCKET_RETRY_SECS),
            ..AppError::new(
                ErrorCode::RateLimited,
                format!(
                    "this account already has {max} WebSockets open: close one, or try again \
                     in {SOCKET_RETRY_SECS} s"
                ),
            )
        }
    }

    fn limiter(&self, action: Action) -> &RateLimiter {
        match action {
            Action::Message => &self.messages,
            Action::CallStart => &self.call_starts,
            Action::Typing => &self.typing,
            Action::Presence => &self.presence,
            Action::Invitation => &self.invitations,
            Action::RoomCreation => &self.room_creations,
        }
    }

    /// Takes back one `action` by `user_id` counted by an allowed [`hit`](Self::hit)
    /// (the action did not happen after all).
    pub async fn unhit(&self, user_id: &str, action: Action) {
        self.limiter(action).unhit(user_id).await;
    }

    /// Counts one `action` by `user_id` if its limit allows it.
    ///
    /// # Errors
    /// `429 rate_limited` with `retry_after` (whole seconds, at least 1) when the user is
    /// at the limit; nothing is counted then.
    pub async fn hit(&self, user_id: &str, action: Action) -> AppResult<()> {
        self.limiter(action).hit(user_id).await.map_err(|limited| {
            self.metrics
                .rate_limited
                .get_or_create(&Metrics::label("limit", action.label()))
                .inc();
            let secs = limited.retry_after.as_secs().max(1);
            AppError {
                retry_after: Some(secs),
                ..AppError::new(
                    ErrorCode::RateLimited,
                    format!("too many {}: try again in {secs} s", action.noun()),
                )
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Rule;

    #[tokio::test]
    async fn each_action_is_counted_per_user_and_kind() {
        let mut config = UserLimits::disabled();
        config.messages = Rule {
            max: 2,
            window_secs: 60,
        };
        let metrics = Arc::new(Metrics::default());
        let limits = UserLimiters::new(&config, metrics.clone(), None);
        assert!(limits.hit("alice", Action::Message).await.is_ok());
        assert!(limits.hit("alice", Action::Message).await.is_ok());
        let err = limits.hit("alice", Action::Message).await.unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!((1..=60).contains(&err.retry_after.unwrap()));
        assert_eq!(err.detail().retry_after_secs, err.retry_after);
        assert!(limits.hit("bob", Action::Message).await.is_ok(), "per user");
        let text = metrics.render();
        assert!(
            text.contains("palaver_rate_limited_total{limit=\"user_messages\"} 1"),
            "{text}"
        );
        for _ in 0..100 {
            assert!(
                limits.hit("alice", Action::Typing).await.is_ok(),
                "0 disables"
            );
        }
    }
}
