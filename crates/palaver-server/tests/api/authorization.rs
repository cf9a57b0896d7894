//! The authorization matrix: one private channel with a user in every relationship to it
//! (owner, admin, member, invited, kicked, left, banned, outsider), each with an open
//! WebSocket. Every room-scoped REST route and WebSocket request is tried as every role
//! and compared with the rules of the service docs:
//!
//! - owners and admins moderate members of a lower role (delete others' messages, update
//!   the room, kick, ban, unban); only owners set roles, transfer ownership and delete the
//!   room;
//! - members read, send, react, mark read, invite, edit and delete their own messages;
//!   nobody edits someone else's message;
//! - non-members (invited, kicked, left, banned, outsider) get `403 not_member` for
//!   everything, `403 forbidden` when joining a private room, and `404 not_found` for an
//!   attachment posted in it.
//!
//! A second matrix covers the server's staff (global `moderator` and `admin`): in a public
//! channel, member or not, they delete messages, kick, ban and unban, but never act on the
//! room's owner or a global admin (a moderator never on another moderator), and get nothing
//! else there; in private rooms and DMs they have only their room role; they list and
//! resolve message reports (moderators only those of public channels).
//!
//! Two counts must be zero: actions whose outcome differs from the rules (a forbidden
//! action that succeeds, an allowed one that fails, or a refusal with the wrong code), and
//! events of the room that reach a non-member after their departure.

use std::fmt;
use std::time::Duration;

use futures_util::future::join_all;
use palaver_client::{Client, ClientError, Socket};
use palaver_protocol::{MemberRole, Message, Visibility};
use serde_json::Value;

use crate::conversations::{add_member, concerns, drain, png, uid, uname};
use crate::helpers::TestServer;

/// The whole test must finish within this (every wait inside has its own timeout too).
const TEST_BUDGET: Duration = Duration::from_secs(30);

/// A user's relationship to the room under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Owner,
    Admin,
    Member,
    /// Has a pending invitation, not accepted.
    Invited,
    /// Was a member, then kicked.
    Kicked,
    /// Was a member, then left.
    Left,
    /// Was a member, then banned.
    Banned,
    /// Never related to the room.
    Outsider,
}

const ROLES: [Role; 8] = [
    Role::Owner,
    Role::Admin,
    Role::Member,
    Role::Invited,
    Role::Kicked,
    Role::Left,
    Role::Banned,
    Role::Outsider,
];

impl Role {
    fn index(self) -> usize {
        ROLES.iter().position(|r| *r == self).expect("listed")
    }

    fn name(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
            Role::Invited => "invited",
            Role::Kicked => "kicked",
            Role::Left => "left",
            Role::Banned => "banned",
            Role::Outsider => "outsider",
        }
    }

    /// Whether the user is a member now.
    fn is_member(self) -> bool {
        matches!(self, Role::Owner | Role::Admin | Role::Member)
    }

    /// Whether the user was a member at some point (and so wrote messages of their own).
    fn was_member(self) -> bool {
        self.is_member() || self.departure().is_some()
    }

    /// The `member.left` reason of the user's departure, for departed roles.
    fn departure(self) -> Option<&'static str> {
        match self {
            Role::Kicked => Some("kicked"),
            Role::Left => Some("left"),
            Role::Banned => Some("banned"),
            _ => None,
        }
    }
}

/// Every room-scoped REST route and WebSocket request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    History,
    Send,
    EditOwn,
    EditOthers,
    DeleteOwn,
    DeleteOthers,
    Edits,
    React,
    Unreact,
    Read,
    Members,
    GetRoom,
    Join,
    UpdateRoom,
    Invite,
    Kick,
    Ban,
    Unban,
    SetRole,
    Transfer,
    DeleteRoom,
    Leave,
    Download,
    WsSend,
    WsEditOwn,
    WsEditOthers,
    WsDeleteOwn,
    WsDeleteOthers,
    WsReact,
    WsUnreact,
    WsRead,
    WsJoin,
    WsLeave,
}

const ACTIONS: [Action; 33] = [
    Action::History,
    Action::Send,
    Action::EditOwn,
    Action::EditOthers,
    Action::DeleteOwn,
    Action::DeleteOthers,
    Action::Edits,
    Action::React,
    Action::Unreact,
    Action::Read,
    Action::Members,
    Action::GetRoom,
    Action::Join,
    Action::UpdateRoom,
    Action::Invite,
    Action::Kick,
    Action::Ban,
    // After `Ban`: unbans the user that role's ban targeted.
    Action::Unban,
    Action::SetRole,
    Action::Transfer,
    Action::DeleteRoom,
    Action::Leave,
    Action::Download,
    Action::WsSend,
    Action::WsEditOwn,
    Action::WsEditOthers,
    Action::WsDeleteOwn,
    Action::WsDeleteOthers,
    Action::WsReact,
    Action::WsUnreact,
    Action::WsRead,
    Action::WsJoin,
    Action::WsLeave,
];

impl Action {
    fn describe(self) -> &'static str {
        match self {
            Action::History => "GET messages",
            Action::Send => "POST messages",
            Action::EditOwn => "PATCH own message",
            Action::EditOthers => "PATCH someone else's message",
            Action::DeleteOwn => "DELETE own message",
            Action::DeleteOthers => "DELETE someone else's message",
            Action::Edits => "GET message edits",
            Action::React => "PUT reaction",
            Action::Unreact => "DELETE reaction",
            Action::Read => "POST read",
            Action::Members => "GET members",
            Action::GetRoom => "GET room",
            Action::Join => "POST join",
            Action::UpdateRoom => "PATCH room",
            Action::Invite => "POST invitations",
            Action::Kick => "DELETE member (kick)",
            Action::Ban => "PUT ban",
            Action::Unban => "DELETE ban",
            Action::SetRole => "PUT member role",
            Action::Transfer => "POST transfer-ownership",
            Action::DeleteRoom => "DELETE room",
            Action::Leave => "POST leave",
            Action::Download => "GET attachment posted in room",
            Action::WsSend => "ws message.send",
            Action::WsEditOwn => "ws message.edit own",
            Action::WsEditOthers => "ws message.edit someone else's",
            Action::WsDeleteOwn => "ws message.delete own",
            Action::WsDeleteOthers => "ws message.delete someone else's",
            Action::WsReact => "ws reaction.add",
            Action::WsUnreact => "ws reaction.remove",
            Action::WsRead => "ws read",
            Action::WsJoin => "ws room.join",
            Action::WsLeave => "ws room.leave",
        }
    }

    fn over_websocket(self) -> bool {
        matches!(
            self,
            Action::WsSend
                | Action::WsEditOwn
                | Action::WsEditOthers
                | Action::WsDeleteOwn
                | Action::WsDeleteOthers
                | Action::WsReact
                | Action::WsUnreact
                | Action::WsRead
                | Action::WsJoin
                | Action::WsLeave
        )
    }
}

/// What the rules say about one (action, role) cell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expect {
    Allow,
    /// Refused with this HTTP status (REST only) and error code.
    Deny(u16, &'static str),
}

/// The rules, from the service docs.
fn expected(action: Action, role: Role) -> Expect {
    use Action::*;
    const FORBIDDEN: Expect = Expect::Deny(403, "forbidden");
    if !role.is_member() {
        return match action {
            // Attachments are private to their uploader and the room's members.
            Download => Expect::Deny(404, "not_found"),
            // The room is private: joined only by invitation (and banned users never).
            Join | WsJoin => FORBIDDEN,
            _ => Expect::Deny(403, "not_member"),
        };
    }
    let moderates = matches!(role, Role::Owner | Role::Admin);
    let owns = role == Role::Owner;
    match action {
        EditOthers | WsEditOthers => FORBIDDEN,
        DeleteOthers | WsDeleteOthers | UpdateRoom | Kick | Ban | Unban => {
            if moderates {
                Expect::Allow
            } else {
                FORBIDDEN
            }
        }
        SetRole | Transfer | DeleteRoom => {
            if owns {
                Expect::Allow
            } else {
                FORBIDDEN
            }
        }
        _ => Expect::Allow,
    }
}

/// How an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    status: Option<u16>,
    code: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(s) => write!(f, "{s} {}", self.code),
            None => write!(f, "failed reply {}", self.code),
        }
    }
}

fn failure(e: ClientError) -> Failure {
    match e {
        ClientError::Api { status, body } => Failure {
            status: Some(status),
            code: body
                .map(|b| b.error.code.as_str().to_owned())
                .unwrap_or_else(|| "<no error body>".into()),
        },
        ClientError::Rejected(detail) => Failure {
            status: None,
            code: detail.code.as_str().to_owned(),
        },
        other => Failure {
            status: None,
            code: format!("<{other}>"),
        },
    }
}

/// One user in the matrix.
struct Person {
    role: Role,
    client: Client,
    ws: Socket,
}

/// What one role's attempts act on (fresh for each role where the action is destructive).
struct Targets {
    /// The role's own messages, written while a member: edit (REST), delete (REST), edit
    /// (WebSocket), delete (WebSocket). Empty for roles that were never members.
    own: Vec<Message>,
    /// Someone else's messages to delete: REST, WebSocket.
    others: [Message; 2],
    kick_victim: Client,
    /// Banned by `Ban`, unbanned by `Unban`.
    ban_victim: Client,
    role_victim: Client,
    invitee: Client,
    /// Fresh rooms where the role holds the same relationship.
    transfer_room: String,
    delete_room: String,
    leave_room: String,
    ws_leave_room: String,
}

struct Fixture {
    room: String,
    author: Client,
    /// A message by `author` that nobody deletes: edited by others, reacted to, its edits
    /// listed.
    shared: Message,
    attachment: String,
    targets: Vec<Targets>,
}

impl Fixture {
    /// The role's own message `i`, or (for roles that never were members) the shared one.
    fn own(&self, role: Role, i: usize) -> &Message {
        self.targets[role.index()]
            .own
            .get(i)
            .unwrap_or(&self.shared)
    }

    /// The rooms where `role`'s user was given that role: the room under test and the
    /// four fresh ones.
    fn rooms_of(&self, role: Role) -> Vec<String> {
        let t = &self.targets[role.index()];
        vec![
            self.room.clone(),
            t.transfer_room.clone(),
            t.delete_room.clone(),
            t.leave_room.clone(),
            t.ws_leave_room.clone(),
        ]
    }

    /// Every room the matrix touches.
    fn rooms(&self) -> Vec<String> {
        let mut rooms = vec![self.room.clone()];
        for role in ROLES {
            rooms.extend(self.rooms_of(role).into_iter().skip(1));
        }
        rooms
    }
}

/// Brings `user` into `role` in the room `owner` created, short of departing.
async fn establish(owner: &Client, room_id: &str, role: Role, user: &Client) {
    match role {
        Role::Owner | Role::Outsider => {}
        Role::Invited => {
            owner
                .invite(room_id, &uid(user))
                .await
                .expect("invite the invited user");
        }
        Role::Admin | Role::Member | Role::Kicked | Role::Left | Role::Banned => {
            add_member(owner, room_id, user).await;
            if role == Role::Admin {
                owner
                    .set_member_role(room_id, &uid(user), MemberRole::Admin)
                    .await
                    .expect("make admin");
            }
        }
    }
}

/// Makes `user` depart from the room as `role` says (kicked, left or banned).
async fn depart(owner: &Client, room_id: &str, role: Role, user: &Client) {
    let result = match role {
        Role::Kicked => owner.kick(room_id, &uid(user)).await,
        Role::Left => user.leave_room(room_id).await,
        Role::Banned => owner.ban(room_id, &uid(user)).await,
        _ => Ok(()),
    };
    result.unwrap_or_else(|e| panic!("{} departs: {e}", role.name()));
}

/// A fresh private room of `owner` with `author` as a member and `user` in `role`.
async fn fresh_room(owner: &Client, author: &Client, role: Role, user: &Client) -> String {
    let room = owner
        .create_room(
            &format!("fresh for {}", role.name()),
            Visibility::Private,
            None,
        )
        .await
        .expect("create fresh room");
    add_member(owner, &room.id, author).await;
    establish(owner, &room.id, role, user).await;
    depart(owner, &room.id, role, user).await;
    room.id
}

/// Registers one user per prefix, concurrently.
async fn users(server: &TestServer, prefixes: &[String]) -> Vec<Client> {
    join_all(prefixes.iter().map(|p| server.user(p))).await
}

/// Attempts `action` as `person`; returns how it failed, if it did. Ids of messages
/// sent successfully are added to `sent`.
async fn attempt(
    fx: &Fixture,
    person: &mut Person,
    action: Action,
    sent: &mut Vec<String>,
) -> Result<(), Failure> {
    let role = person.role;
    let t = &fx.targets[role.index()];
    let room = fx.room.as_str();
    let shared = fx.shared.id.as_str();
    let c = &person.client;
    let ws = &mut person.ws;
    let text = format!("from {}", role.name());
    let result: Result<(), ClientError> = match action {
        Action::History => c.history(room, None, None, None).await.map(drop),
        Action::Send => c
            .send_message(room, &text, None)
            .await
            .map(|m| sent.push(m.id)),
        Action::EditOwn => c
            .edit_message(room, &fx.own(role, 0).id, &text)
            .await
            .map(drop),
        Action::EditOthers => c.edit_message(room, shared, &text).await.map(drop),
        Action::DeleteOwn => c.delete_message(room, &fx.own(role, 1).id).await.map(drop),
        Action::DeleteOthers => c.delete_message(room, &t.others[0].id).await.map(drop),
        Action::Edits => c.message_edits(room, shared).await.map(drop),
        Action::React => c.react(room, shared, "👍").await.map(drop),
        Action::Unreact => c.unreact(room, shared, "👍").await.map(drop),
        Action::Read => c.mark_read(room, 1).await.map(drop),
        Action::Members => c.members(room).await.map(drop),
        Action::GetRoom => c.get_room(room).await.map(drop),
        Action::Join => c.join_room(room).await.map(drop),
        Action::UpdateRoom => c
            .update_room(room, Some(&format!("renamed by {}", role.name())), None)
            .await
            .map(drop),
        Action::Invite => c.invite(room, &uid(&t.invitee)).await.map(drop),
        Action::Kick => c.kick(room, &uid(&t.kick_victim)).await,
        Action::Ban => c.ban(room, &uid(&t.ban_victim)).await,
        Action::Unban => c.unban(room, &uid(&t.ban_victim)).await,
        Action::SetRole => c
            .set_member_role(room, &uid(&t.role_victim), MemberRole::Admin)
            .await
            .map(drop),
        Action::Transfer => {
            c.transfer_ownership(&t.transfer_room, &uid(&fx.author))
                .await
        }
        Action::DeleteRoom => c.delete_room(&t.delete_room).await,
        Action::Leave => c.leave_room(&t.leave_room).await,
        Action::Download => match c.download(&fx.attachment).await {
            Ok((200, _, _)) => Ok(()),
            Ok((status, _, body)) => Err(ClientError::Api {
                status,
                body: serde_json::from_slice(&body).ok(),
            }),
            Err(e) => Err(e),
        },
        Action::WsSend => ws
            .send_message(room, &text, None)
            .await
            .map(|m| sent.push(m.id)),
        Action::WsEditOwn => ws
            .edit_message(room, &fx.own(role, 2).id, &text)
            .await
            .map(drop),
        Action::WsEditOthers => ws.edit_message(room, shared, &text).await.map(drop),
        Action::WsDeleteOwn => ws.delete_message(room, &fx.own(role, 3).id).await.map(drop),
        Action::WsDeleteOthers => ws.delete_message(room, &t.others[1].id).await.map(drop),
        Action::WsReact => ws.react(room, shared, "🎉").await.map(drop),
        Action::WsUnreact => ws.unreact(room, shared, "🎉").await.map(drop),
        Action::WsRead => ws.mark_read(room, 1).await.map(drop),
        Action::WsJoin => ws.join_room(room).await.map(drop),
        Action::WsLeave => ws.leave_room(&t.ws_leave_room).await,
    };
    result.map_err(failure)
}

/// Whether an outcome matches the rules; `None` when it does, else what went wrong.
fn mismatch(action: Action, expect: Expect, got: &Result<(), Failure>) -> Option<String> {
    match (expect, got) {
        (Expect::Allow, Ok(())) => None,
        (Expect::Allow, Err(f)) => Some(format!("allowed, but refused: {f}")),
        (Expect::Deny(status, code), Ok(())) => Some(format!(
            "FORBIDDEN ACTION SUCCEEDED (expected {status} {code})"
        )),
        (Expect::Deny(status, code), Err(f)) => {
            let status_ok = action.over_websocket() || f.status == Some(status);
            if status_ok && f.code == code {
                None
            } else if action.over_websocket() {
                Some(format!("refused with {f}, expected code {code}"))
            } else {
                Some(format!("refused with {f}, expected {status} {code}"))
            }
        }
    }
}

/// Events on a non-member's socket that concern the matrix `rooms` and must not have
/// arrived. During setup (`setup = true`), in the rooms where the user was given their
/// role (`mine`), events up to the user's own `member.left` are expected (they were a
/// member then) and that departure is required. An invited user's own
/// `invitation.created` is always fine.
fn leaks(
    person: &Person,
    rooms: &[String],
    mine: &[String],
    events: &[Value],
    setup: bool,
) -> Vec<String> {
    let me = uid(&person.client);
    let mut found = Vec::new();
    for room in rooms {
        let about: Vec<&Value> = events.iter().filter(|e| concerns(e, room)).collect();
        let mut departed_at = None;
        if setup && mine.contains(room) {
            if let Some(reason) = person.role.departure() {
                departed_at = about.iter().position(|e| {
                    e["type"] == "member.left"
                        && e["data"]["user_id"] == me.as_str()
                        && e["data"]["reason"] == reason
                });
                if departed_at.is_none() {
                    found.push(format!(
                        "{}: no member.left ({reason}) in room {room}",
                        person.role.name()
                    ));
                }
            }
        }
        let start = departed_at.map_or(0, |i| i + 1);
        let invitation_to_me = |e: &Value| {
            person.role == Role::Invited
                && e["type"] == "invitation.created"
                && e["data"]["invitee_id"] == me.as_str()
        };
        for event in &about[start..] {
            if !invitation_to_me(event) {
                found.push(format!(
                    "{} ({}) received {event}",
                    person.role.name(),
                    uname(&person.client)
                ));
            }
        }
    }
    found
}

#[tokio::test]
async fn authorization_matrix_0_forbidden_actions_succeed_and_0_events_leak() {
    tokio::time::timeout(TEST_BUDGET, matrix())
        .await
        .unwrap_or_else(|_| panic!("the matrix did not finish within {TEST_BUDGET:?}"));
}

async fn matrix() {
    let server = TestServer::spawn().await;

    // --- Users: one per role, the author of others' messages, and per-role targets.
    let mut prefixes: Vec<String> = ROLES.iter().map(|r| r.name().to_owned()).collect();
    prefixes.push("author".into());
    for role in ROLES {
        for kind in ["kickv", "banv", "rolev", "invitee"] {
            prefixes.push(format!("{kind}_{}", role.name()));
        }
    }
    let mut clients = users(&server, &prefixes).await.into_iter();
    let mut people = Vec::new();
    for role in ROLES {
        let client = clients.next().unwrap();
        let ws = client.connect().await.expect("connect");
        people.push(Person { role, client, ws });
    }
    let author = clients.next().unwrap();
    let owner = people[Role::Owner.index()].client.clone();

    // --- The room under test.
    let room = owner
        .create_room("matrix", Visibility::Private, None)
        .await
        .expect("create room")
        .id;
    add_member(&owner, &room, &author).await;
    for p in &people {
        establish(&owner, &room, p.role, &p.client).await;
    }
    let mut own: Vec<Vec<Message>> = Vec::new();
    for p in &people {
        let mut mine = Vec::new();
        if p.role.was_member() {
            for i in 0..4 {
                let text = format!("{}'s own message {i}", p.role.name());
                mine.push(p.client.send_message(&room, &text, None).await.unwrap());
            }
        }
        own.push(mine);
    }
    let shared = author
        .send_message(&room, "shared message", None)
        .await
        .unwrap();
    let upload = author.upload("matrix.png", &png(256)).await.unwrap();
    author
        .send_message_with(
            &room,
            &palaver_protocol::rest::SendMessageRequest {
                content: "attached".into(),
                client_id: None,
                reply_to: None,
                attachment_id: Some(upload.id.clone()),
            },
        )
        .await
        .unwrap();

    let mut targets = Vec::new();
    for (role, mine) in ROLES.into_iter().zip(own) {
        let kick_victim = clients.next().unwrap();
        let ban_victim = clients.next().unwrap();
        let role_victim = clients.next().unwrap();
        let invitee = clients.next().unwrap();
        for victim in [&kick_victim, &ban_victim, &role_victim] {
            add_member(&owner, &room, victim).await;
        }
        let mut others = Vec::new();
        for via in ["rest", "ws"] {
            let text = format!("for {} to delete over {via}", role.name());
            others.push(author.send_message(&room, &text, None).await.unwrap());
        }
        let user = &people[role.index()].client;
        targets.push(Targets {
            own: mine,
            others: others.try_into().expect("two"),
            kick_victim,
            ban_victim,
            role_victim,
            invitee,
            transfer_room: fresh_room(&owner, &author, role, user).await,
            delete_room: fresh_room(&owner, &author, role, user).await,
            leave_room: fresh_room(&owner, &author, role, user).await,
            ws_leave_room: fresh_room(&owner, &author, role, user).await,
        });
    }
    for p in &people {
        depart(&owner, &room, p.role, &p.client).await;
    }
    let fx = Fixture {
        room,
        author,
        shared,
        attachment: upload.id,
        targets,
    };
    let rooms = fx.rooms();

    // --- Setup events: departed users saw their departure and nothing after it.
    let setup_events = join_all(people.iter_mut().map(|p| drain(&mut p.ws))).await;
    let mut leaked = Vec::new();
    for (p, events) in people.iter().zip(&setup_events) {
        if !p.role.is_member() {
            leaked.extend(leaks(p, &rooms, &fx.rooms_of(p.role), events, true));
        }
    }
    let invited = &setup_events[Role::Invited.index()];
    let mut invited_to: Vec<&str> = invited
        .iter()
        .filter(|e| e["type"] == "invitation.created")
        .filter_map(|e| e["data"]["room_id"].as_str())
        .collect();
    invited_to.sort_unstable();
    let mut expected_rooms = fx.rooms_of(Role::Invited);
    expected_rooms.sort_unstable();
    assert_eq!(
        invited_to, expected_rooms,
        "the invited user is told of each of their invitations: {invited:#?}"
    );

    // --- The matrix.
    let mut sent = Vec::new();
    let mut table = Vec::new();
    for action in ACTIONS {
        for person in people.iter_mut() {
            let expect = expected(action, person.role);
            let got = attempt(&fx, person, action, &mut sent).await;
            let problem = mismatch(action, expect, &got);
            table.push((action, person.role, expect, got, problem));
        }
    }

    // --- Events after the matrix.
    let after = join_all(people.iter_mut().map(|p| drain(&mut p.ws))).await;
    let mut undelivered = Vec::new();
    for (p, events) in people.iter().zip(&after) {
        if p.role.is_member() {
            let created: Vec<&str> = events
                .iter()
                .filter(|e| e["type"] == "message.created" && concerns(e, &fx.room))
                .filter_map(|e| e["data"]["id"].as_str())
                .collect();
            for id in &sent {
                if !created.contains(&id.as_str()) {
                    undelivered.push(format!("{} did not receive message {id}", p.role.name()));
                }
            }
        } else {
            leaked.extend(leaks(p, &rooms, &fx.rooms_of(p.role), events, false));
        }
    }

    // --- Report.
    let mut report = String::new();
    report.push_str(&format!("{:<34}", "action \\ role"));
    for role in ROLES {
        report.push_str(&format!("{:>9}", role.name()));
    }
    report.push('\n');
    for action in ACTIONS {
        report.push_str(&format!("{:<34}", action.describe()));
        for (_, _, expect, _, problem) in table.iter().filter(|row| row.0 == action) {
            let mark = match (expect, problem) {
                (_, Some(_)) => "MISMATCH",
                (Expect::Allow, None) => "allow",
                (Expect::Deny(..), None) => "deny",
            };
            report.push_str(&format!("{mark:>9}"));
        }
        report.push('\n');
    }
    println!("{report}");

    let allowed = table.iter().filter(|r| r.2 == Expect::Allow).count();
    let denied = table.len() - allowed;
    let forbidden_succeeded = table
        .iter()
        .filter(|r| matches!(r.2, Expect::Deny(..)) && r.3.is_ok())
        .count();
    let mismatches: Vec<String> = table
        .iter()
        .filter_map(|(action, role, _, _, problem)| {
            problem
                .as_ref()
                .map(|p| format!("{} as {}: {p}", action.describe(), role.name()))
        })
        .collect();
    println!(
        "{} cells: {allowed} allowed, {denied} forbidden; {forbidden_succeeded} forbidden \
         actions succeeded; {} mismatches; {} leaked events",
        table.len(),
        mismatches.len(),
        leaked.len()
    );
    assert_eq!(table.len(), ACTIONS.len() * ROLES.len());
    assert!(allowed > 0 && denied > 0, "the matrix tests both outcomes");
    assert!(
        mismatches.is_empty(),
        "{} of {} cells differ from the rules:\n{}\n\n{report}",
        mismatches.len(),
        table.len(),
        mismatches.join("\n")
    );
    assert_eq!(forbidden_succeeded, 0);
    assert_eq!(sent.len(), 6, "owner, admin and member each sent twice");
    assert!(
        undelivered.is_empty(),
        "members missed messages:\n{}",
        undelivered.join("\n")
    );
    assert!(
        leaked.is_empty(),
        "{} events leaked to non-members:\n{}",
        leaked.len(),
        leaked.join("\n")
    );
}

// ---------------------------------------------------------------------------------------
// The server's staff: what a global moderator (and admin) may and may not do
// ---------------------------------------------------------------------------------------

/// One asserted cell of the staff matrix.
struct StaffCell {
    actor: &'static str,
    room: &'static str,
    action: String,
    expect: Expect,
    got: Result<(), Failure>,
}

/// Collects the cells and renders the table.
#[derive(Default)]
struct StaffMatrix {
    cells: Vec<StaffCell>,
}

impl StaffMatrix {
    fn check<T>(
        &mut self,
        actor: &'static str,
        room: &'static str,
        action: impl Into<String>,
        expect: Expect,
        result: Result<T, ClientError>,
    ) {
        self.cells.push(StaffCell {
            actor,
            room,
            action: action.into(),
            expect,
            got: result.map(drop).map_err(failure),
        });
    }

    fn problems(&self) -> Vec<String> {
        self.cells
            .iter()
            .filter_map(|c| {
                // Only WebSocket cells have no status; they name themselves "ws ...".
                let ws = c.action.starts_with("ws ");
                let action = if ws {
                    Action::WsDeleteOthers
                } else {
                    Action::History
                };
                mismatch(action, c.expect, &c.got)
                    .map(|p| format!("{} in {}: {}: {p}", c.actor, c.room, c.action))
            })
            .collect()
    }

    fn report(&self) -> String {
        let mut out = String::new();
        for c in &self.cells {
            let expect = match c.expect {
                Expect::Allow => "allow".to_owned(),
                Expect::Deny(status, code) => format!("{status} {code}"),
            };
            out.push_str(&format!(
                "{:<10} {:<16} {:<44} {expect}\n",
                c.actor, c.room, c.action
            ));
        }
        out
    }
}

#[tokio::test]
async fn staff_matrix_moderators_moderate_public_channels_only_and_never_the_owner_or_an_admin() {
    tokio::time::timeout(TEST_BUDGET, staff_matrix())
        .await
        .unwrap_or_else(|_| panic!("the staff matrix did not finish within {TEST_BUDGET:?}"));
}

async fn staff_matrix() {
    use crate::room_rules::{report, reports, resolve, set_global_role};
    const ALLOW: Expect = Expect::Allow;
    const FORBIDDEN: Expect = Expect::Deny(403, "forbidden");
    const NOT_MEMBER: Expect = Expect::Deny(403, "not_member");
    const NOT_FOUND: Expect = Expect::Deny(404, "not_found");

    let server = TestServer::spawn().await;
    let names: Vec<String> = [
        "owner",
        "radmin",
        "member",
        "gmod",
        "gadmin",
        "peer_mod",
        "admin_mem",
        "outsider",
        "banv",
        "member2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut it = users(&server, &names).await.into_iter();
    let owner = it.next().unwrap();
    let room_admin = it.next().unwrap();
    let member = it.next().unwrap();
    // A global moderator and a global admin, members of no room under test unless said.
    let moderator = it.next().unwrap();
    let admin = it.next().unwrap();
    // Members of the public channel with a global role.
    let peer_mod = it.next().unwrap();
    let admin_member = it.next().unwrap();
    let outsider = it.next().unwrap();
    let ban_victim = it.next().unwrap();
    let member2 = it.next().unwrap();
    set_global_role(&server, &moderator, "moderator");
    set_global_role(&server, &peer_mod, "moderator");
    set_global_role(&server, &admin, "admin");
    set_global_role(&server, &admin_member, "admin");

    // The public channel: owner, a room admin, members (some with global roles), and a
    // supply of fresh members to kick.
    let public = owner
        .create_room("staff public", Visibility::Public, None)
        .await
        .unwrap()
        .id;
    for c in [&room_admin, &member, &peer_mod, &admin_member, &member2] {
        c.join_room(&public).await.unwrap();
    }
    owner
        .set_member_role(&public, &uid(&room_admin), MemberRole::Admin)
        .await
        .unwrap();
    let kickable = users(
        &server,
        &(0..4).map(|i| format!("kickv{i}")).collect::<Vec<_>>(),
    )
    .await;
    for c in &kickable {
        c.join_room(&public).await.unwrap();
    }
    let said = |c: &Client, text: &str| {
        let c = c.clone();
        let room = public.clone();
        let text = text.to_owned();
        async move { c.send_message(&room, &text, None).await.unwrap().id }
    };

    // A private room where the moderator is a plain member, one they are not in, and DMs.
    let private = owner
        .create_room("staff private", Visibility::Private, None)
        .await
        .unwrap()
        .id;
    add_member(&owner, &private, &member).await;
    add_member(&owner, &private, &moderator).await;
    add_member(&owner, &private, &member2).await;
    let private_msg = member
        .send_message(&private, "private", None)
        .await
        .unwrap();
    let closed = owner
        .create_room("staff closed", Visibility::Private, None)
        .await
        .unwrap()
        .id;
    add_member(&owner, &closed, &member).await;
    let closed_msg = member.send_message(&closed, "closed", None).await.unwrap();
    let own_dm = moderator.open_dm(&uid(&member)).await.unwrap().id;
    let own_dm_msg = member.send_message(&own_dm, "dm", None).await.unwrap();
    let other_dm = owner.open_dm(&uid(&member)).await.unwrap().id;
    let other_dm_msg = member.send_message(&other_dm, "dm", None).await.unwrap();

    let mut m = StaffMatrix::default();
    let del = |c: &Client, room: &str, id: &str| {
        let (c, room, id) = (c.clone(), room.to_owned(), id.to_owned());
        async move { c.delete_message(&room, &id).await }
    };

    // --- Global moderator, not a member of the public channel.
    let who = "moderator";
    let room = "public channel";
    m.check(
        who,
        room,
        "delete a member's message",
        ALLOW,
        del(&moderator, &public, &said(&member, "m").await).await,
    );
    m.check(
        who,
        room,
        "delete a room admin's message",
        ALLOW,
        del(&moderator, &public, &said(&room_admin, "a").await).await,
    );
    m.check(
        who,
        room,
        "delete the owner's message",
        ALLOW,
        del(&moderator, &public, &said(&owner, "o").await).await,
    );
    m.check(
        who,
        room,
        "delete a global admin's message",
        FORBIDDEN,
        del(&moderator, &public, &said(&admin_member, "g").await).await,
    );
    m.check(
        who,
        room,
        "delete another moderator's message",
        FORBIDDEN,
        del(&moderator, &public, &said(&peer_mod, "p").await).await,
    );
    let mut mod_ws = moderator.connect().await.expect("connect");
    let target = said(&member, "over ws").await;
    m.check(
        who,
        room,
        "ws delete a member's message",
        ALLOW,
        mod_ws.delete_message(&public, &target).await,
    );
    let target = said(&admin_member, "over ws").await;
    m.check(
        who,
        room,
        "ws delete a global admin's message",
        FORBIDDEN,
        mod_ws.delete_message(&public, &target).await,
    );
    m.check(
        who,
        room,
        "kick a member",
        ALLOW,
        moderator.kick(&public, &uid(&kickable[0])).await,
    );
    m.check(
        who,
        room,
        "kick the room admin",
        ALLOW,
        moderator.kick(&public, &uid(&room_admin)).await,
    );
    m.check(
        who,
        room,
        "kick the owner",
        FORBIDDEN,
        moderator.kick(&public, &uid(&owner)).await,
    );
    m.check(
        who,
        room,
        "kick a global admin",
        FORBIDDEN,
        moderator.kick(&public, &uid(&admin_member)).await,
    );
    m.check(
        who,
        room,
        "kick another moderator",
        FORBIDDEN,
        moderator.kick(&public, &uid(&peer_mod)).await,
    );
    m.check(
        who,
        room,
        "kick a non-member",
        NOT_FOUND,
        moderator.kick(&public, &uid(&outsider)).await,
    );
    m.check(
        who,
        room,
        "ban a member",
        ALLOW,
        moderator.ban(&public, &uid(&kickable[1])).await,
    );
    m.check(
        who,
        room,
        "ban a non-member",
        ALLOW,
        moderator.ban(&public, &uid(&ban_victim)).await,
    );
    m.check(
        who,
        room,
        "unban",
        ALLOW,
        moderator.unban(&public, &uid(&ban_victim)).await,
    );
    m.check(
        who,
        room,
        "ban the owner",
        FORBIDDEN,
        moderator.ban(&public, &uid(&owner)).await,
    );
    m.check(
        who,
        room,
        "ban a global admin",
        FORBIDDEN,
        moderator.ban(&public, &uid(&admin_member)).await,
    );
    m.check(
        who,
        room,
        "ban another moderator",
        FORBIDDEN,
        moderator.ban(&public, &uid(&peer_mod)).await,
    );
    m.check(
        who,
        room,
        "read history",
        NOT_MEMBER,
        moderator.history(&public, None, None, None).await,
    );
    m.check(
        who,
        room,
        "send",
        NOT_MEMBER,
        moderator.send_message(&public, "hi", None).await,
    );
    m.check(
        who,
        room,
        "update the room",
        NOT_MEMBER,
        moderator.update_room(&public, Some("mine"), None).await,
    );
    m.check(
        who,
        room,
        "set a member's role",
        NOT_MEMBER,
        moderator
            .set_member_role(&public, &uid(&member), MemberRole::Admin)
            .await,
    );
    m.check(
        who,
        room,
        "transfer ownership",
        NOT_MEMBER,
        moderator.transfer_ownership(&public, &uid(&member)).await,
    );
    m.check(
        who,
        room,
        "delete the room",
        NOT_MEMBER,
        moderator.delete_room(&public).await,
    );

    // --- Global admin, not a member: as a moderator, and also over moderators.
    let who = "admin";
    m.check(
        who,
        room,
        "delete a moderator's message",
        ALLOW,
        del(&admin, &public, &said(&peer_mod, "p").await).await,
    );
    m.check(
        who,
        room,
        "delete another admin's message",
        FORBIDDEN,
        del(&admin, &public, &said(&admin_member, "g").await).await,
    );
    m.check(
        who,
        room,
        "kick the owner",
        FORBIDDEN,
        admin.kick(&public, &uid(&owner)).await,
    );
    m.check(
        who,
        room,
        "kick another admin",
        FORBIDDEN,
        admin.kick(&public, &uid(&admin_member)).await,
    );
    m.check(
        who,
        room,
        "kick a moderator",
        ALLOW,
        admin.kick(&public, &uid(&peer_mod)).await,
    );
    m.check(
        who,
        room,
        "kick a member",
        ALLOW,
        admin.kick(&public, &uid(&kickable[2])).await,
    );
    m.check(
        who,
        room,
        "update the room",
        NOT_MEMBER,
        admin.update_room(&public, Some("mine"), None).await,
    );

    // --- A plain user outside the channel: nothing (the control row).
    let who = "outsider";
    m.check(
        who,
        room,
        "delete a member's message",
        NOT_MEMBER,
        del(&outsider, &public, &said(&member, "m").await).await,
    );
    m.check(
        who,
        room,
        "kick a member",
        NOT_MEMBER,
        outsider.kick(&public, &uid(&kickable[3])).await,
    );
    m.check(
        who,
        room,
        "ban a member",
        NOT_MEMBER,
        outsider.ban(&public, &uid(&kickable[3])).await,
    );

    // --- The moderator in private rooms and DMs: only their room role.
    let who = "moderator";
    let room = "private (member)";
    m.check(
        who,
        room,
        "delete a member's message",
        FORBIDDEN,
        moderator.delete_message(&private, &private_msg.id).await,
    );
    m.check(
        who,
        room,
        "kick a member",
        FORBIDDEN,
        moderator.kick(&private, &uid(&member2)).await,
    );
    m.check(
        who,
        room,
        "ban a member",
        FORBIDDEN,
        moderator.ban(&private, &uid(&member2)).await,
    );
    m.check(
        who,
        room,
        "unban",
        FORBIDDEN,
        moderator.unban(&private, &uid(&ban_victim)).await,
    );
    m.check(
        who,
        room,
        "update the room",
        FORBIDDEN,
        moderator.update_room(&private, Some("mine"), None).await,
    );
    let room = "private (outside)";
    m.check(
        who,
        room,
        "delete a member's message",
        NOT_MEMBER,
        moderator.delete_message(&closed, &closed_msg.id).await,
    );
    m.check(
        who,
        room,
        "kick a member",
        NOT_MEMBER,
        moderator.kick(&closed, &uid(&member)).await,
    );
    m.check(
        who,
        room,
        "ban a member",
        NOT_MEMBER,
        moderator.ban(&closed, &uid(&member)).await,
    );
    m.check(
        who,
        room,
        "read history",
        NOT_MEMBER,
        moderator.history(&closed, None, None, None).await,
    );
    let room = "own DM";
    // Both sides of a DM are its owners, but neither moderates the other: only the author
    // deletes a message there, as for everyone (the global role adds nothing).
    m.check(
        who,
        room,
        "delete the other's message",
        FORBIDDEN,
        moderator.delete_message(&own_dm, &own_dm_msg.id).await,
    );
    m.check(
        who,
        room,
        "kick the other",
        FORBIDDEN,
        moderator.kick(&own_dm, &uid(&member)).await,
    );
    let room = "others' DM";
    m.check(
        who,
        room,
        "delete a message",
        NOT_MEMBER,
        moderator.delete_message(&other_dm, &other_dm_msg.id).await,
    );
    m.check(
        who,
        room,
        "kick",
        NOT_MEMBER,
        moderator.kick(&other_dm, &uid(&member)).await,
    );
    m.check(
        who,
        room,
        "read history",
        NOT_MEMBER,
        moderator.history(&other_dm, None, None, None).await,
    );

    // --- Reports: staff see them; moderators only public channels'.
    let public_report = report(&member2, &public, &said(&member, "reported").await, "spam")
        .await
        .expect("report in the public channel");
    let private_report = report(&member2, &private, &private_msg.id, "spam")
        .await
        .expect("report in the private room");
    let id = |r: &Value| r["id"].as_str().unwrap().to_owned();
    let room = "reports";
    m.check(
        "member",
        room,
        "list reports",
        FORBIDDEN,
        reports(&member, "").await,
    );
    m.check(
        "member",
        room,
        "resolve a report",
        FORBIDDEN,
        resolve(&member, &id(&public_report)).await,
    );
    let listed = reports(&moderator, "").await;
    let sees_private = listed
        .as_ref()
        .map(|l| l.to_string().contains(&id(&private_report)))
        .unwrap_or(false);
    m.check("moderator", room, "list reports", ALLOW, listed);
    m.check(
        "moderator",
        room,
        "resolve a public channel's report",
        ALLOW,
        resolve(&moderator, &id(&public_report)).await,
    );
    m.check(
        "moderator",
        room,
        "resolve a private room's report",
        NOT_FOUND,
        resolve(&moderator, &id(&private_report)).await,
    );
    m.check(
        "admin",
        room,
        "resolve a private room's report",
        ALLOW,
        resolve(&admin, &id(&private_report)).await,
    );

    let table = m.report();
    println!("{table}");
    let problems = m.problems();
    assert!(
        problems.is_empty(),
        "{} of {} staff cells differ from the rules:\n{}\n\n{table}",
        problems.len(),
        m.cells.len(),
        problems.join("\n")
    );
    assert!(!sees_private, "a moderator listed a private room's report");
    // The refused actions changed nothing.
    let members: Vec<String> = owner
        .members(&public)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user_id)
        .collect();
    for kept in [&owner, &admin_member, &member] {
        assert!(members.contains(&uid(kept)), "{} was removed", uname(kept));
    }
    for gone in [
        &room_admin,
        &peer_mod,
        &kickable[0],
        &kickable[1],
        &kickable[2],
    ] {
        assert!(
            !members.contains(&uid(gone)),
            "{} is still a member",
            uname(gone)
        );
    }
    assert!(
        members.contains(&uid(&kickable[3])),
        "the outsider kicked no one"
    );
    let kept = owner.history(&private, None, None, None).await.unwrap();
    assert!(kept
        .messages
        .iter()
        .any(|m| m.id == private_msg.id && m.deleted_at.is_none()));
}
