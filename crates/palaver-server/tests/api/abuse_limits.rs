//! Per-user limits on live actions (`[user_limits]`, issue 13 item 5): messages, call
//! starts, typing, presence, invitations and room creation are refused `rate_limited`
//! with a retry time once over the limit, the WebSocket stays open and other actions keep
//! working; repeated invitations of one user notify once; the directory and the room list
//! are paged, so spam rooms cannot hide a real one.
//!
//! Limits here are small and their windows an hour long, so every assertion is a count,
//! never a rate.

use std::time::Duration;

use palaver_client::{Client, ClientError, Socket};
use palaver_protocol::{Room, Visibility};
use palaver_server::config::{Config, Rule};
use serde_json::{json, Value};

use crate::conversations::{add_member, uid};
use crate::helpers::TestServer;

/// The window of every limit set here: long, so nothing refills during a test.
const WINDOW: u64 = 3600;
/// The longest wait for an event that must arrive.
const EVENT_WAIT: Duration = Duration::from_secs(10);

/// `max` per hour.
fn per_hour(max: u32) -> Rule {
    Rule {
        max,
        window_secs: WINDOW,
    }
}

/// A server whose per-user limits are all off but what `tweak` sets.
async fn server_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::spawn_with(tempfile::tempdir().expect("tempdir"), tweak).await
}

/// A WebSocket refusal must be `rate_limited` with `retry_after_secs` in `1..=WINDOW`.
fn assert_ws_rate_limited<T: std::fmt::Debug>(result: Result<T, ClientError>, what: &str) {
    match result {
        Err(ClientError::Rejected(detail)) => {
            assert_eq!(detail.code.as_str(), "rate_limited", "{what}: {detail:?}");
            let secs = detail
                .retry_after_secs
                .unwrap_or_else(|| panic!("{what}: no retry_after_secs in {detail:?}"));
            assert!((1..=WINDOW).contains(&secs), "{what}: retry after {secs} s");
        }
        other => panic!("{what}: expected rate_limited, got {other:?}"),
    }
}

/// A REST refusal must be `429 rate_limited` with a `Retry-After` header in `1..=WINDOW`
/// and the same value as `retry_after_secs` in the body.
async fn assert_http_rate_limited(resp: reqwest::Response, what: &str) {
    assert_eq!(resp.status(), 429, "{what}");
    let header: u64 = resp
        .headers()
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: no Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After in seconds");
    assert!(
        (1..=WINDOW).contains(&header),
        "{what}: Retry-After {header}"
    );
    let body: Value = resp.json().await.expect("JSON error body");
    assert_eq!(body["error"]["code"], "rate_limited", "{what}: {body}");
    assert_eq!(body["error"]["retry_after_secs"], header, "{what}: {body}");
}

/// `method path` with `body` as `client`, by hand (to see the response headers).
async fn http(
    client: &Client,
    method: reqwest::Method,
    path: &str,
    body: Value,
) -> reqwest::Response {
    reqwest::Client::new()
        .request(method, format!("{}{path}", client.base()))
        .bearer_auth(client.token.as_deref().expect("logged in"))
        .json(&body)
        .send()
        .await
        .expect("HTTP request")
}

/// The socket still answers: a `ping` succeeds.
async fn assert_open(ws: &mut Socket, what: &str) {
    ws.request("ping", json!({}))
        .await
        .unwrap_or_else(|e| panic!("{what}: the socket no longer answers: {e}"));
}

/// Every event `ws` receives until (and without) the first `stop`, or panics after
/// [`EVENT_WAIT`].
async fn events_until(ws: &mut Socket, stop: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + EVENT_WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match ws.try_next_event(left).await.expect("reading events") {
            Some(event) if stop(&event) => return seen,
            Some(event) => seen.push(event),
            None => panic!("the closing event never came; got {seen:#?}"),
        }
    }
}

/// A public room of `owner` that `others` joined.
async fn room_with(owner: &Client, others: &[&Client]) -> Room {
    let room = owner
        .create_room("limits", Visibility::Public, None)
        .await
        .expect("create room");
    for other in others {
        other.join_room(&room.id).await.expect("join");
    }
    room
}

#[tokio::test]
async fn messages_over_the_limit_are_refused_with_a_retry_time_and_the_socket_stays_open() {
    let server = server_with(|c| c.user_limits.messages = per_hour(5)).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, &[&bob]).await;
    let mut ws = alice.connect().await.unwrap();
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.push(
            ws.send_message(&room.id, &format!("m{i}"), None)
                .await
                .unwrap(),
        );
    }
    for i in 0..20 {
        let refused = ws.send_message(&room.id, &format!("spam {i}"), None).await;
        assert_ws_rate_limited(refused, "a send over the limit");
    }
    // Edits share the budget.
    let edit = ws.edit_message(&room.id, &sent[0].id, "edited").await;
    assert_ws_rate_limited(edit, "an edit over the limit");
    // So do reactions.
    let reaction = ws.react(&room.id, &sent[0].id, "👍").await;
    assert_ws_rate_limited(reaction, "a reaction over the limit");
    // The limit is the user's, on every socket and over REST.
    let mut other_tab = alice.connect().await.unwrap();
    assert_ws_rate_limited(
        other_tab
            .send_message(&room.id, "from another tab", None)
            .await,
        "another socket of the same user",
    );
    let resp = http(
        &alice,
        reqwest::Method::POST,
        &format!("/api/v1/rooms/{}/messages", room.id),
        json!({"content": "over REST"}),
    )
    .await;
    assert_http_rate_limited(resp, "a REST send over the limit").await;
    // The socket is open and other actions work; other users are not limited.
    assert_open(&mut ws, "after refused sends").await;
    ws.request("typing", json!({"room_id": room.id, "active": true}))
        .await
        .expect("typing still works");
    bob.send_message(&room.id, "bob is not limited", None)
        .await
        .expect("bob sends");
    let history = alice.history(&room.id, None, None, Some(50)).await.unwrap();
    assert_eq!(
        history.messages.len(),
        6,
        "alice's 5 and bob's 1 are stored, nothing refused: {:?}",
        history
            .messages
            .iter()
            .map(|m| &m.content)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn rest_sends_over_the_limit_are_429_with_retry_after() {
    let server = server_with(|c| c.user_limits.messages = per_hour(3)).await;
    let alice = server.user("alice").await;
    let room = room_with(&alice, &[]).await;
    let path = format!("/api/v1/rooms/{}/messages", room.id);
    for i in 0..3 {
        let resp = http(
            &alice,
            reqwest::Method::POST,
            &path,
            json!({"content": format!("m{i}")}),
        )
        .await;
        assert_eq!(resp.status(), 201, "send {i} is within the limit");
    }
    let resp = http(
        &alice,
        reqwest::Method::POST,
        &path,
        json!({"content": "one more"}),
    )
    .await;
    assert_http_rate_limited(resp, "the fourth REST send").await;
    // Reading is not limited.
    let resp = http(&alice, reqwest::Method::GET, &path, Value::Null).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn call_starts_over_the_limit_ring_no_one() {
    let server = server_with(|c| c.user_limits.call_starts = per_hour(3)).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let carol = server.user("carol").await;
    let room = room_with(&alice, &[&bob, &carol]).await;
    let mut bob_ws = bob.connect().await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let start = json!({"room_id": room.id, "kind": "audio"});
    for i in 0..3 {
        let joined = ws
            .request("call.start", start.clone())
            .await
            .unwrap_or_else(|e| panic!("call {i}: {e}"));
        let call_id = joined["call"]["call_id"]
            .as_str()
            .expect("call id")
            .to_owned();
        ws.request("call.leave", json!({"call_id": call_id}))
            .await
            .expect("leave");
    }
    for _ in 0..20 {
        assert_ws_rate_limited(
            ws.request("call.start", start.clone()).await,
            "a call start over the limit",
        );
        assert_open(&mut ws, "after a refused call start").await;
    }
    // Carol's call, rung the same way, closes the sequence of events bob sees.
    let mut carol_ws = carol.connect().await.unwrap();
    carol_ws
        .request("call.start", start.clone())
        .await
        .expect("carol is not limited");
    let carol_id = uid(&carol);
    let events = events_until(&mut bob_ws, |e| {
        e["type"] == "call.incoming" && e["data"]["caller"]["id"] == carol_id.as_str()
    })
    .await;
    let rung = events
        .iter()
        .filter(|e| e["type"] == "call.incoming")
        .count();
    let kinds: Vec<&Value> = events.iter().map(|e| &e["type"]).collect();
    assert_eq!(
        rung, 3,
        "bob is rung once per allowed start, never for refused ones: {kinds:?}"
    );
}

#[tokio::test]
async fn alternating_typing_relays_at_most_the_limit() {
    let server = server_with(|c| c.user_limits.typing = per_hour(10)).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    let room = room_with(&alice, &[&bob]).await;
    let mut bob_ws = bob.connect().await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    // Each start after a stop passes the per-room throttle, so only the per-user limit
    // stops the alternation. Accepted requests include starts dropped by the throttle.
    let mut refused = 0;
    for i in 0..200 {
        let active = i % 2 == 0;
        if let Err(e) = ws
            .request("typing", json!({"room_id": room.id, "active": active}))
            .await
        {
            assert_ws_rate_limited(Err::<(), _>(e), "typing over the limit");
            refused += 1;
        }
    }
    assert!(
        refused >= 90,
        "the alternation is refused once over the limit: {refused}"
    );
    assert_open(&mut ws, "after refused typing").await;
    // Without an id, a refused notice is answered with an `error` event.
    let stop = json!({"type": "typing", "data": {"room_id": room.id, "active": false}});
    ws.send_text(stop.to_string()).await.unwrap();
    let error = ws.next_event_of("error").await.expect("an error event");
    assert_eq!(error["data"]["code"], "rate_limited", "{error}");
    assert!(
        error["data"]["retry_after_secs"].as_u64().is_some(),
        "{error}"
    );
    ws.send_message(&room.id, "done", None).await.unwrap();
    let events = events_until(&mut bob_ws, |e| e["type"] == "message.created").await;
    let typing = events.iter().filter(|e| e["type"] == "typing").count();
    assert_eq!(typing, 10, "bob sees only the notices within the limit");
}

#[tokio::test]
async fn presence_changes_over_the_limit_are_refused() {
    let server = server_with(|c| c.user_limits.presence = per_hour(4)).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    room_with(&alice, &[&bob]).await;
    let mut bob_ws = bob.connect().await.unwrap();
    let mut ws = alice.connect().await.unwrap();
    let statuses = ["away", "online", "dnd", "online"];
    for status in statuses {
        ws.request("presence.set", json!({"status": status}))
            .await
            .unwrap_or_else(|e| panic!("{status}: {e}"));
    }
    for _ in 0..50 {
        assert_ws_rate_limited(
            ws.request("presence.set", json!({"status": "away"})).await,
            "a presence change over the limit",
        );
    }
    assert_open(&mut ws, "after refused presence changes").await;
    let room = alice.my_rooms().await.unwrap().remove(0);
    ws.send_message(&room.id, "done", None).await.unwrap();
    let events = events_until(&mut bob_ws, |e| e["type"] == "message.created").await;
    let away = events
        .iter()
        .filter(|e| e["type"] == "presence.updated" && e["data"]["user_id"] == uid(&alice).as_str())
        .filter(|e| e["data"]["status"] == "away")
        .count();
    assert_eq!(away, 1, "only the allowed `away` reached bob: {events:#?}");
}

#[tokio::test]
async fn inviting_the_same_user_again_notifies_once_and_returns_the_pending_invitation() {
    let server = server_with(|_| {}).await;
    let alice = server.user("alice").await;
    let carol = server.user("carol").await;
    let room = alice
        .create_room("private", Visibility::Private, None)
        .await
        .unwrap();
    let mut carol_ws = carol.connect().await.unwrap();
    let first = alice.invite(&room.id, &uid(&carol)).await.unwrap();
    for _ in 0..30 {
        let again = alice.invite(&room.id, &uid(&carol)).await.unwrap();
        assert_eq!(again.id, first.id, "the pending invitation is returned");
    }
    assert_eq!(carol.invitations().await.unwrap().len(), 1);
    // A message in another room carol is in closes her sequence of events.
    let dm = alice.open_dm(&uid(&carol)).await.unwrap();
    alice.send_message(&dm.id, "done", None).await.unwrap();
    let events = events_until(&mut carol_ws, |e| e["type"] == "message.created").await;
    let told = events
        .iter()
        .filter(|e| e["type"] == "invitation.created")
        .count();
    assert_eq!(told, 1, "carol is told once: {events:#?}");
}

#[tokio::test]
async fn invitations_over_the_limit_are_429() {
    let server = server_with(|c| c.user_limits.invitations = per_hour(2)).await;
    let alice = server.user("alice").await;
    let room = alice
        .create_room("private", Visibility::Private, None)
        .await
        .unwrap();
    let mut invitees = Vec::new();
    for i in 0..3 {
        invitees.push(server.user(&format!("guest{i}")).await);
    }
    for guest in &invitees[..2] {
        alice
            .invite(&room.id, &uid(guest))
            .await
            .expect("within the limit");
    }
    let resp = http(
        &alice,
        reqwest::Method::POST,
        &format!("/api/v1/rooms/{}/invitations", room.id),
        json!({"user_id": uid(&invitees[2])}),
    )
    .await;
    assert_http_rate_limited(resp, "the third invitation").await;
    assert!(invitees[2].invitations().await.unwrap().is_empty());
    // The limit is alice's: a member of another room still invites.
    let bob = server.user("bob").await;
    let bobs = bob
        .create_room("bob's", Visibility::Private, None)
        .await
        .unwrap();
    add_member(&bob, &bobs.id, &invitees[2]).await;
}

#[tokio::test]
async fn room_creation_over_the_limit_is_429() {
    let server = server_with(|c| c.user_limits.room_creations = per_hour(3)).await;
    let alice = server.user("alice").await;
    for i in 0..3 {
        alice
            .create_room(&format!("r{i}"), Visibility::Public, None)
            .await
            .expect("within the limit");
    }
    let resp = http(
        &alice,
        reqwest::Method::POST,
        "/api/v1/rooms",
        json!({"name": "spam", "visibility": "public"}),
    )
    .await;
    assert_http_rate_limited(resp, "the fourth room").await;
    assert_eq!(alice.my_rooms().await.unwrap().len(), 3);
    let bob = server.user("bob").await;
    bob.create_room("bob's", Visibility::Public, None)
        .await
        .expect("another user is not limited");
}

#[test]
fn the_defaults_limit_every_action_and_a_real_user_never_meets_them() {
    let limits = palaver_server::config::UserLimits::default();
    for (name, rule) in [
        ("messages", limits.messages),
        ("call_starts", limits.call_starts),
        ("typing", limits.typing),
        ("presence", limits.presence),
        ("invitations", limits.invitations),
        ("room_creations", limits.room_creations),
    ] {
        assert!(!rule.is_disabled(), "{name} is limited by default");
    }
    assert!(limits.messages.max >= 30, "a burst of 30 messages passes");
    assert!(limits.sockets >= 10, "ten devices and tabs fit");
}

#[test]
// figment's Jail API returns its large error type by value.
#[allow(clippy::result_large_err)]
fn user_limits_load_from_the_config_file() {
    figment::Jail::expect_with(|jail| {
        jail.create_file(
            "palaver.toml",
            "[user_limits]\nsockets = 5\nmessages = { max = 0, window_secs = 1 }\n\
             [user_limits.typing]\nmax = 7\nwindow_secs = 9\n",
        )?;
        let c = Config::load(
            std::path::Path::new("palaver.toml"),
            &palaver_server::config::Overrides::default(),
        )
        .expect("config loads");
        assert_eq!(c.user_limits.sockets, 5);
        assert!(c.user_limits.messages.is_disabled());
        assert_eq!(
            c.user_limits.typing,
            Rule {
                max: 7,
                window_secs: 9
            }
        );
        let defaults = palaver_server::config::UserLimits::default();
        assert_eq!(
            c.user_limits.presence, defaults.presence,
            "unset keys keep defaults"
        );
        Ok(())
    });
}

/// `GET path` as `client`: the status and JSON body.
async fn get_json(client: &Client, path: &str) -> (u16, Value) {
    client.raw("GET", path, None).await.expect("GET")
}

/// Creates `n` public rooms named `<prefix> <i>` as `owner`.
async fn create_rooms(owner: &Client, prefix: &str, n: usize) -> Vec<Room> {
    let mut rooms = Vec::with_capacity(n);
    for i in 0..n {
        rooms.push(
            owner
                .create_room(&format!("{prefix} {i}"), Visibility::Public, None)
                .await
                .expect("create room"),
        );
    }
    rooms
}

#[tokio::test]
async fn the_directory_pages_past_spam_rooms_to_a_real_one() {
    let server = server_with(|_| {}).await;
    let alice = server.user("alice").await;
    let spammer = server.user("spammer").await;
    let real = alice
        .create_room("Book Club", Visibility::Public, None)
        .await
        .unwrap();
    create_rooms(&spammer, "buy now", 250).await;

    // Default page: 50, newest first, with a cursor.
    let (status, first) = get_json(&alice, "/api/v1/rooms/public").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["rooms"].as_array().unwrap().len(), 50);
    assert_eq!(first["rooms"][0]["name"], "buy now 249", "newest first");
    assert!(first["next"].is_string(), "{}", first["next"]);

    // Following `next` reaches every room once, the real one last.
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = alice
            .public_rooms_page(None, after.as_deref(), Some(100))
            .await
            .unwrap();
        assert!(page.rooms.len() <= 100);
        seen.extend(page.rooms.into_iter().map(|r| r.id));
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    assert!(after.is_none(), "the pages end");
    assert_eq!(seen.len(), 251, "every public room, once");
    let unique: std::collections::HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), 251, "no room twice");
    assert_eq!(
        seen.last(),
        Some(&real.id),
        "the oldest room is on the last page"
    );
    assert_eq!(
        alice.public_rooms().await.unwrap().len(),
        251,
        "the client follows pages"
    );

    // A name search finds it at once, case-insensitively.
    let page = alice
        .public_rooms_page(Some("book CLUB"), None, None)
        .await
        .unwrap();
    let names: Vec<_> = page.rooms.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Book Club"]);
    assert!(page.next.is_none());

    for bad in [
        "/api/v1/rooms/public?limit=0",
        "/api/v1/rooms/public?limit=101",
        "/api/v1/rooms/public?after=nonsense",
    ] {
        let (status, body) = get_json(&alice, bad).await;
        assert_eq!(status, 422, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "validation_failed", "{bad}: {body}");
    }
}

#[tokio::test]
async fn my_room_list_is_paged_in_join_order() {
    let server = server_with(|_| {}).await;
    let alice = server.user("alice").await;
    let created = create_rooms(&alice, "room", 120).await;
    let (status, first) = get_json(&alice, "/api/v1/rooms").await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["rooms"].as_array().unwrap().len(), 50, "default page");
    assert!(first["next"].is_string());
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = alice
            .my_rooms_page(after.as_deref(), Some(40))
            .await
            .unwrap();
        assert!(page.rooms.len() <= 40);
        seen.extend(page.rooms.into_iter().map(|r| r.id));
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let expected: Vec<_> = created.iter().map(|r| r.id.clone()).collect();
    assert_eq!(seen, expected, "every room once, in the order joined");
    assert_eq!(
        alice.my_rooms().await.unwrap().len(),
        120,
        "the client follows pages"
    );
    let (status, body) = get_json(&alice, "/api/v1/rooms?limit=101").await;
    assert_eq!(
        (status, &body["error"]["field"]),
        (422, &json!("limit")),
        "{body}"
    );
}

#[tokio::test]
async fn sockets_over_the_per_user_cap_are_refused_before_the_upgrade_even_in_parallel() {
    const CAP: usize = 4;
    let server = server_with(|c| c.user_limits.sockets = CAP).await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    // Forty at once: exactly the cap opens; the rest are refused, not dropped.
    let attempts = futures_util::future::join_all((0..40).map(|_| alice.connect())).await;
    let (mut open, refused): (Vec<_>, Vec<_>) = attempts.into_iter().partition(Result::is_ok);
    assert_eq!(open.len(), CAP, "sockets that opened");
    for result in refused {
        let err = result.err().unwrap().to_string();
        assert!(err.contains("429"), "refused with 429 rate_limited: {err}");
    }
    // The refusal names the limit, with a retry time.
    let request = alice.ws_request(None, &[]).unwrap();
    let url = request.uri().to_string().replacen("ws://", "http://", 1);
    let resp = reqwest::Client::new()
        .get(url)
        .bearer_auth(alice.token.as_deref().unwrap())
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .send()
        .await
        .unwrap();
    assert_http_rate_limited(resp, "one socket too many").await;
    // Others are not affected, and a closed socket frees its slot.
    bob.connect().await.expect("bob connects");
    let first = open.pop().unwrap().unwrap();
    first.close().await.unwrap();
    let mut reopened = None;
    // The server frees the slot once it notices the close: wait for that, generously.
    for _ in 0..600 {
        if let Ok(socket) = alice.connect().await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut socket = reopened.expect("a slot frees once a socket closes");
    socket.request("ping", json!({})).await.expect("it works");
}
