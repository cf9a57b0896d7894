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
//! is answered `rate_limited` with `retry_after_secs` ([`AppError::rate_limited`]).
//!
//! Concurrent sockets per user (`user_limits.sockets`) are a cap, not a rate, and are
//! enforced by the gateway.

use palaver_protocol::ErrorCode;

use crate::config::UserLimits;
use crate::error::{AppError, AppResult};
use crate::ratelimit::RateLimiter;

/// A kind of limited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `message.send`, `message.edit` and their REST routes.
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
}

/// The per-user limiters, one per [`Action`]; owned by the [`Service`](super::Service).
#[derive(Debug)]
pub struct UserLimiters {
    messages: RateLimiter,
    call_starts: RateLimiter,
    typing: RateLimiter,
    presence: RateLimiter,
    invitations: RateLimiter,
    room_creations: RateLimiter,
}

impl UserLimiters {
    /// Limiters enforcing `config`'s rules.
    pub fn new(config: &UserLimits) -> Self {
        UserLimiters {
            messages: RateLimiter::new(config.messages),
            call_starts: RateLimiter::new(config.call_starts),
            typing: RateLimiter::new(config.typing),
            presence: RateLimiter::new(config.presence),
            invitations: RateLimiter::new(config.invitations),
            room_creations: RateLimiter::new(config.room_creations),
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

    /// Counts one `action` by `user_id` if its limit allows it.
    ///
    /// # Errors
    /// `429 rate_limited` with `retry_after` (whole seconds, at least 1) when the user is
    /// at the limit; nothing is counted then.
    pub fn hit(&self, user_id: &str, action: Action) -> AppResult<()> {
        self.limiter(action).hit(user_id).map_err(|limited| {
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

    #[test]
    fn each_action_is_counted_per_user_and_kind() {
        let mut config = UserLimits::disabled();
        config.messages = Rule {
            max: 2,
            window_secs: 60,
        };
        let limits = UserLimiters::new(&config);
        assert!(limits.hit("alice", Action::Message).is_ok());
        assert!(limits.hit("alice", Action::Message).is_ok());
        let err = limits.hit("alice", Action::Message).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimited);
        assert!((1..=60).contains(&err.retry_after.unwrap()));
        assert_eq!(err.detail().retry_after_secs, err.retry_after);
        assert!(limits.hit("bob", Action::Message).is_ok(), "per user");
        for _ in 0..100 {
            assert!(limits.hit("alice", Action::Typing).is_ok(), "0 disables");
        }
    }
}
