//! Mentions: `@username`, `@room` and `@here` in a message's content, parsed on send and
//! edit, resolved against the room's members, stored with the message (what it says, for
//! highlighting) and per notified user (`message_mentions`, for the per-room mention
//! counts), and announced with a `mention` event to each notified user's connections.
//!
//! - `@username` (3–32 of `[a-z0-9_.-]`, any case) mentions that user if they are a member
//!   of the room; anyone else's name is only text (a non-member learns nothing, and is
//!   not notified of a room they cannot read).
//! - `@room` notifies every member; in a room whose `room_mentions` is `admins`, only from
//!   its owners and admins (from anyone else it is only text).
//! - `@here` notifies the members online at that moment (presence `online` or `dnd`).
//! - An `@` inside a word (`bob@example.com`) or inside a `code span` mentions nobody;
//!   trailing `.` and `-` end a name (`thanks @bob.`). The sender is never notified.
//!
//! An edit re-resolves the mentions: the users it notifies are replaced, and only names
//! the edit added get a `mention` event (`@room` and `@here` are announced on send only).

use palaver_protocol::ws::{Event, Mention, MentionKind, PresenceStatus};
use palaver_protocol::{MemberRole, Mentions, Message, RoomMentions};

use super::Service;
use crate::broker::{Broker, Envelope};
use crate::error::AppResult;
use crate::store::RoomRow;

/// What a content's text mentions, before it is checked against the room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Lower-cased names, in order of first mention, without repeats.
    pub usernames: Vec<String>,
    pub room: bool,
    pub here: bool,
}

impl Parsed {
    /// Whether the content mentions nobody.
    pub fn is_empty(&self) -> bool {
        self.usernames.is_empty() && !self.room && !self.here
    }
}

/// Whether `c` may be part of a username.
fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// The mentions written in `content` (see the module's rules).
pub fn parse(content: &str) -> Parsed {
    let mut parsed = Parsed::default();
    if !content.contains('@') {
        return parsed;
    }
    // Outside code spans: the even pieces between backticks.
    for (i, piece) in content.split('`').enumerate() {
        if i % 2 == 1 {
            continue;
        }
        let mut prev: Option<char> = None;
        let mut chars = piece.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            let starts = c == '@'
                && !prev.is_some_and(|p| p.is_alphanumeric() || is_name_char(p) || p == '@');
            prev = Some(c);
            if !starts {
                continue;
            }
            let rest = &piece[at + 1..];
            let len = rest
                .find(|ch: char| !is_name_char(ch))
                .unwrap_or(rest.len());
            let name = rest[..len].trim_end_matches(['.', '-']);
            if !(3..=32).contains(&name.len()) {
                continue;
            }
            let name = name.to_ascii_lowercase();
            match name.as_str() {
                "room" => parsed.room = true,
                "here" => parsed.here = true,
                _ => {
                    if !parsed.usernames.contains(&name) {
                        parsed.usernames.push(name);
                    }
                }
            }
            // Skip the name, so that `@a@b` is one mention.
            for _ in 0..rest[..len].chars().count() {
                prev = chars.next().map(|(_, ch)| ch);
            }
        }
    }
    parsed
}

/// Mentions resolved in a room: what is stored with the message, and whom it notifies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub mentions: Mentions,
    /// Each notified user once (never the sender), with why: by name before `@room`
    /// before `@here`.
    pub notified: Vec<(String, MentionKind)>,
}

impl Resolved {
    /// The notified user ids.
    pub fn user_ids(&self) -> Vec<String> {
        self.notified.iter().map(|(u, _)| u.clone()).collect()
    }
}

impl Service {
    /// Resolves `parsed` against the members of `room` as `sender_id` (whose role there
    /// is `sender_role`) writes it.
    ///
    /// # Errors
    /// The store fails.
    pub(crate) async fn resolve_mentions(
        &self,
        room: &RoomRow,
        sender_id: &str,
        sender_role: MemberRole,
        parsed: &Parsed,
    ) -> AppResult<Resolved> {
        if parsed.is_empty() {
            return Ok(Resolved::default());
        }
        let members = self.store.rooms.members(&room.id).await?;
        let mut resolved = Resolved::default();
        let notify = |resolved: &mut Resolved, user_id: &str, kind| {
            if user_id != sender_id && !resolved.notified.iter().any(|(u, _)| u == user_id) {
                resolved.notified.push((user_id.to_owned(), kind));
            }
        };
        for name in &parsed.usernames {
            if let Some(m) = members.iter().find(|m| &m.username == name) {
                if !resolved.mentions.user_ids.contains(&m.user_id) {
                    resolved.mentions.user_ids.push(m.user_id.clone());
                }
                notify(&mut resolved, &m.user_id, MentionKind::User);
            }
        }
        if parsed.room && (room.room_mentions == RoomMentions::Members || sender_role.moderates()) {
            resolved.mentions.room = true;
            for m in &members {
                notify(&mut resolved, &m.user_id, MentionKind::Room);
            }
        }
        if parsed.here {
            resolved.mentions.here = true;
            for m in &members {
                if m.user_id == sender_id {
                    continue;
                }
                let status = self.presence.get(&m.user_id).await.status;
                if matches!(status, PresenceStatus::Online | PresenceStatus::Dnd) {
                    notify(&mut resolved, &m.user_id, MentionKind::Here);
                }
            }
        }
        Ok(resolved)
    }
}

/// Sends `mention` to each of `notified`'s connections for the stored `message`.
pub(crate) async fn announce(
    broker: &dyn Broker,
    message: &Message,
    notified: &[(String, MentionKind)],
) {
    for (user_id, kind) in notified {
        let event = Event::Mention(Mention {
            room_id: message.room_id.clone(),
            message_id: message.id.clone(),
            seq: message.seq,
            sender_id: message.sender.id.clone(),
            kind: *kind,
        });
        super::publish(broker, Envelope::user(user_id, event)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(content: &str) -> Vec<String> {
        parse(content).usernames
    }

    #[test]
    fn names_are_found_where_a_mention_can_start() {
        assert_eq!(names("hi @Bob, and @carol."), ["bob", "carol"]);
        assert_eq!(names("@dave_1 @dave_1 @eve-"), ["dave_1", "eve"]);
        assert_eq!(names("(@frank) \"@gina\""), ["frank", "gina"]);
        assert!(names("mail bob@example.com").is_empty());
        assert!(names("`@hidden` and ```\n@block\n```").is_empty());
        assert!(names("@ab @x").is_empty(), "too short");
        assert!(
            names(&format!("@{}", "a".repeat(33))).is_empty(),
            "too long"
        );
        assert_eq!(names("@ana@bob"), ["ana"]);
        let p = parse("@room @HERE @roomie");
        assert!(p.room && p.here);
        assert_eq!(p.usernames, ["roomie"]);
        assert!(parse("no mentions").is_empty());
    }
}
