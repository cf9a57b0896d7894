//! The live layer under stress: a reader forcibly disconnected a thousand times while
//! others send, and the real `palaver` binary killed with SIGKILL or stopped with SIGTERM
//! while clients send. Nothing acknowledged may be lost; nothing may be delivered twice or
//! out of order.

use std::collections::{HashMap, HashSet};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use palaver_client::{Client, Socket};
use palaver_protocol::{Message, Visibility};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::helpers::{spawn_palaver, unique_name, TestServer};

/// The password of every account made here (not a common one, so registration takes it).
const PASSWORD: &str = "vivid-otter-42";

/// How long one REST call or WebSocket connect may take before the test gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
async fn within<F: std::future::Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// Every message of `room_id`, oldest first, read backwards page by page with `before`.
async fn full_history(client: &Client, room_id: &str) -> Vec<Message> {
    let mut pages: Vec<Vec<Message>> = Vec::new();
    let mut before = None;
    // Bounded: far more pages than any test here writes.
    for _ in 0..1000 {
        let page = within(
            CALL_TIMEOUT,
            "a history page",
            client.history(room_id, before, None, Some(100)),
        )
        .await
        .expect("history page");
        let first = page.messages.first().map(|m| m.seq);
        pages.push(page.messages);
        match (page.has_more, first) {
            (true, Some(seq)) => before = Some(seq),
            _ => return pages.into_iter().rev().flatten().collect(),
        }
    }
    panic!("history of {room_id} did not end within 1000 pages");
}

/// Asserts the room's seqs are exactly `1..=n` (no gap, no repeat), in order.
#[track_caller]
fn assert_contiguous(history: &[Message]) {
    let seqs: Vec<i64> = history.iter().map(|m| m.seq).collect();
    let expected: Vec<i64> = (1..=history.len() as i64).collect();
    assert!(
        seqs == expected,
        "history seqs are not 1..={}: first differences {:?}",
        history.len(),
        seqs.iter()
            .zip(&expected)
            .filter(|(a, b)| a != b)
            .take(10)
            .collect::<Vec<_>>()
    );
}

/// A tiny deterministic PRNG (xorshift64*), so a failing run can be replayed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
}

// ---------------------------------------------------------------------------------------
// 1. Forced disconnects and resume.
// ---------------------------------------------------------------------------------------

/// How many times the reader is cut off.
const RECONNECTS: usize = 1000;
/// The most messages the two senders write together.
const MAX_MESSAGES: usize = 3000;
/// The senders may be this many messages ahead of `PER_RECONNECT × reconnects done`: they
/// send all along the reconnect loop, and the reader's backlog stays bounded.
const PER_RECONNECT: usize = 3;
const SLACK: usize = 20;

/// Shared pacing of the two senders (see [`PER_RECONNECT`]).
#[derive(Clone, Default)]
struct Pace {
    reserved: Arc<AtomicUsize>,
    reconnects: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
}

impl Pace {
    /// The number of the next message to send, once the reader is far enough along; `None`
    /// when the reconnect loop has ended or [`MAX_MESSAGES`] were sent.
    async fn next(&self) -> Option<usize> {
        let n = self.reserved.fetch_add(1, Ordering::SeqCst);
        if n >= MAX_MESSAGES {
            return None;
        }
        loop {
            if self.done.load(Ordering::SeqCst) {
                return None;
            }
            if n < PER_RECONNECT * self.reconnects.load(Ordering::SeqCst) + SLACK {
                return Some(n);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

/// What the reader observed, across all its connections.
#[derive(Default)]
struct Observed {
    /// `(seq, message id)` of every `message.created` of the room, in arrival order.
    created: Vec<(i64, String)>,
    /// The highest seq seen: where the next connection resumes.
    last: i64,
    /// Frames that should not have come: `error` events, change frames of other types, a
    /// top-level seq that disagrees with the message's.
    anomalies: Vec<Value>,
    /// Connections the server ended while the reader was reading (e.g. 4008).
    server_ended: Vec<(usize, String)>,
    /// Frames read, by type.
    kinds: HashMap<String, usize>,
}

impl Observed {
    fn record(&mut self, frame: Value, room_id: &str) {
        let kind = frame["type"].as_str().unwrap_or("").to_owned();
        *self.kinds.entry(kind.clone()).or_default() += 1;
        if kind == "message.created" && frame["data"]["room_id"] == room_id {
            let seq = frame["seq"].as_i64();
            let id = frame["data"]["id"].as_str();
            match (seq, id) {
                (Some(seq), Some(id)) if frame["data"]["seq"] == seq => {
                    self.created.push((seq, id.to_owned()));
                    self.last = self.last.max(seq);
                }
                _ => self.anomalies.push(frame),
            }
        } else if kind == "error" || frame.get("seq").is_some() {
            self.anomalies.push(frame);
        }
    }
}

/// Reads from `socket` until `budget` passes, `max_frames` frames came, or the server
/// ends the connection (noted in `seen`).
async fn read_for(
    socket: &mut Socket,
    budget: Duration,
    max_frames: usize,
    seen: &mut Observed,
    room_id: &str,
    attempt: usize,
) {
    let deadline = tokio::time::Instant::now() + budget;
    let mut frames = 0;
    while frames < max_frames {
        let wait = deadline.saturating_duration_since(tokio::time::Instant::now());
        match socket.try_next_event(wait).await {
            Ok(Some(frame)) => {
                frames += 1;
                seen.record(frame, room_id);
            }
            Ok(None) => break,
            Err(e) => {
                seen.server_ended.push((attempt, e.to_string()));
                break;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_forcibly_disconnected_1000_times_while_others_send_ends_with_exactly_the_rooms_messages(
) {
    let started = Instant::now();
    let server = TestServer::spawn().await;
    let owner = server.user("owner").await;
    let rest_sender = server.user("rest_sender").await;
    let ws_sender = server.user("ws_sender").await;
    let reader = server.user("reader").await;
    let room = owner
        .create_room("churn", Visibility::Public, None)
        .await
        .unwrap();
    for client in [&rest_sender, &ws_sender, &reader] {
        client.join_room(&room.id).await.unwrap();
    }

    let pace = Pace::default();
    // One sender over REST, one over its own WebSocket.
    let rest_task = {
        let (pace, room_id) = (pace.clone(), room.id.clone());
        tokio::spawn(async move {
            let mut acked = Vec::new();
            while let Some(n) = pace.next().await {
                let cid = format!("rest-{n}");
                let sent = within(
                    CALL_TIMEOUT,
                    "a REST send",
                    rest_sender.send_message(&room_id, &format!("rest {n}"), Some(&cid)),
                )
                .await
                .unwrap_or_else(|e| panic!("REST send {n} failed: {e}"));
                acked.push(sent.id);
            }
            acked
        })
    };
    let ws_task = {
        let (pace, room_id) = (pace.clone(), room.id.clone());
        tokio::spawn(async move {
            let mut socket = within(CALL_TIMEOUT, "the sender's connect", ws_sender.connect())
                .await
                .expect("sender connects");
            let mut acked = Vec::new();
            while let Some(n) = pace.next().await {
                let cid = format!("ws-{n}");
                // The socket's own timeout (10 s) bounds the wait for the reply.
                let sent = socket
                    .send_message(&room_id, &format!("ws {n}"), Some(&cid))
                    .await
                    .unwrap_or_else(|e| panic!("WebSocket send {n} failed: {e}"));
                acked.push(sent.id);
                // Throw away the echoes so they do not pile up in the client.
                while let Ok(Some(_)) = socket.try_next_event(Duration::ZERO).await {}
            }
            acked
        })
    };

    // The reader: connect resuming after the last seq seen, read for 0–5 ms (or up to a
    // few frames), then drop the TCP connection without a close handshake.
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seen = Observed::default();
    let loop_started = Instant::now();
    let mut slowest_connect = Duration::ZERO;
    for attempt in 0..RECONNECTS {
        let since = seen.last;
        let t = Instant::now();
        let mut socket = within(
            CALL_TIMEOUT,
            "a resuming connect",
            reader.connect_resuming(&[(&room.id, Some(since))]),
        )
        .await
        .unwrap_or_else(|e| panic!("reconnect {attempt} (since {since}) failed: {e}"));
        slowest_connect = slowest_connect.max(t.elapsed());
        let budget = Duration::from_millis(rng.below(6));
        let max_frames = match rng.below(2) {
            0 => usize::MAX,
            _ => rng.below(8) as usize,
        };
        read_for(
            &mut socket,
            budget,
            max_frames,
            &mut seen,
            &room.id,
            attempt,
        )
        .await;
        // Abrupt: the TCP stream is closed with no WebSocket close frame.
        drop(socket);
        pace.reconnects.store(attempt + 1, Ordering::SeqCst);
    }
    let loop_time = loop_started.elapsed();
    pace.done.store(true, Ordering::SeqCst);
    let mut acked = within(Duration::from_secs(60), "the REST sender", rest_task)
        .await
        .expect("REST sender");
    acked.extend(
        within(Duration::from_secs(60), "the WebSocket sender", ws_task)
            .await
            .expect("WebSocket sender"),
    );

    // One last connection, read until caught up with the room.
    let target = within(CALL_TIMEOUT, "GET room", reader.get_room(&room.id))
        .await
        .unwrap()
        .last_seq;
    let since = seen.last;
    let mut socket = within(
        CALL_TIMEOUT,
        "the final connect",
        reader.connect_resuming(&[(&room.id, Some(since))]),
    )
    .await
    .unwrap_or_else(|e| panic!("final reconnect (since {since}) failed: {e}"));
    let catch_up = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen.last < target && tokio::time::Instant::now() < catch_up {
        let wait = catch_up.saturating_duration_since(tokio::time::Instant::now());
        match socket.try_next_event(wait).await {
            Ok(Some(frame)) => seen.record(frame, &room.id),
            Ok(None) => break,
            Err(e) => panic!("the final connection failed at seq {}: {e}", seen.last),
        }
    }
    // Anything more would be a duplicate or a phantom.
    read_for(
        &mut socket,
        Duration::from_millis(300),
        usize::MAX,
        &mut seen,
        &room.id,
        RECONNECTS,
    )
    .await;
    drop(socket);

    let history = full_history(&reader, &room.id).await;
    let history_ids: Vec<String> = history.iter().map(|m| m.id.clone()).collect();
    let seen_ids: Vec<String> = seen.created.iter().map(|(_, id)| id.clone()).collect();
    let in_history: HashSet<&String> = history_ids.iter().collect();
    let mut counts: HashMap<&String, usize> = HashMap::new();
    for id in &seen_ids {
        *counts.entry(id).or_default() += 1;
    }
    let lost: Vec<i64> = history
        .iter()
        .filter(|m| !counts.contains_key(&m.id))
        .map(|m| m.seq)
        .collect();
    let duplicated: Vec<(i64, usize)> = seen
        .created
        .iter()
        .filter(|(_, id)| counts[id] > 1)
        .map(|(seq, id)| (*seq, counts[id]))
        .collect();
    let phantom: Vec<&(i64, String)> = seen
        .created
        .iter()
        .filter(|(_, id)| !in_history.contains(id))
        .collect();
    let out_of_order: Vec<(i64, i64)> = seen
        .created
        .windows(2)
        .filter(|w| w[1].0 <= w[0].0)
        .map(|w| (w[0].0, w[1].0))
        .collect();
    eprintln!(
        "forced disconnects: {RECONNECTS} reconnects in {loop_time:?} (slowest connect \
         {slowest_connect:?}), {} messages, frames read {:?}, {} connections ended by the \
         server ({:?}), total {:?}",
        history.len(),
        seen.kinds,
        seen.server_ended.len(),
        seen.server_ended.iter().take(3).collect::<Vec<_>>(),
        started.elapsed()
    );
    assert_contiguous(&history);
    assert_eq!(history.len() as i64, target, "room last_seq vs history");
    let acked_set: HashSet<&String> = acked.iter().collect();
    assert_eq!(
        acked_set, in_history,
        "the room holds exactly the acknowledged sends"
    );
    assert!(
        seen.anomalies.is_empty(),
        "unexpected frames: {:#?}",
        &seen.anomalies[..seen.anomalies.len().min(5)]
    );
    assert!(
        lost.is_empty() && duplicated.is_empty() && phantom.is_empty() && out_of_order.is_empty(),
        "{} lost (seqs {:?}), {} duplicated (seq, times: {:?}), {} not in history ({:?}), \
         {} out of order (prev, next: {:?})",
        lost.len(),
        &lost[..lost.len().min(20)],
        duplicated.len(),
        &duplicated[..duplicated.len().min(20)],
        phantom.len(),
        &phantom[..phantom.len().min(5)],
        out_of_order.len(),
        &out_of_order[..out_of_order.len().min(20)],
    );
    assert_eq!(
        seen_ids, history_ids,
        "exactly the room's messages, in order"
    );
    within(Duration::from_secs(20), "server stop", server.stop()).await;
}

// ---------------------------------------------------------------------------------------
// 2 and 3. The real binary, killed or terminated while clients send.
// ---------------------------------------------------------------------------------------

/// `palaver serve` running on a data directory under `cwd`; killed if still running when
/// dropped.
struct Palaver {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Palaver {
    /// Starts `palaver serve --port 0 --data-dir state` in `cwd` (which has the
    /// `palaver.toml` of [`write_config`]) and waits for the address it prints.
    fn start(cwd: &Path) -> Palaver {
        let log = cwd.join(format!("{}.log", unique_name("palaver")));
        let (child, url) = spawn_palaver(cwd, &log);
        Palaver { child, url, log }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Sends `signal` (e.g. `KILL`, `TERM`) with `kill(1)`.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.pid()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits (without blocking the runtime) up to `limit` for the process to exit.
    async fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// SIGTERM, then asserts a clean exit within 20 s.
    async fn terminate(mut self) {
        self.signal("TERM");
        let status = self.wait_exit(Duration::from_secs(20)).await;
        assert!(
            status.is_some_and(|s| s.success()),
            "palaver did not exit cleanly after SIGTERM: {status:?}; log:\n{}",
            self.log_tail()
        );
    }

    /// How many panics the server logged.
    fn panics(&self) -> usize {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.matches("panicked at").count()
    }

    /// The last lines the server logged (for failure messages).
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Palaver {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `palaver.toml` in `cwd` that lifts the per-IP budgets (every test client comes from
/// 127.0.0.1) and the per-user message and socket limits (the senders here are fast), as
/// `TestServer::spawn_with` does.
fn write_config(cwd: &Path) {
    std::fs::write(
        cwd.join("palaver.toml"),
        "[rate_limits.requests_per_ip]\nmax = 0\nwindow_secs = 60\n\n\
         [rate_limits.registrations_per_ip]\nmax = 0\nwindow_secs = 3600\n\n\
         [user_limits]\nsockets = 0\nmessages = { max = 0, window_secs = 1 }\n",
    )
    .expect("write palaver.toml");
}

/// A fresh account on the server at `url`, logged in.
async fn register(url: &str, prefix: &str) -> Client {
    let name = unique_name(prefix);
    let mut client = Client::new(url);
    within(
        CALL_TIMEOUT,
        "register",
        client.register(&name, &format!("{name}@example.com"), PASSWORD),
    )
    .await
    .expect("register");
    client
}

/// Logs `user` in again on the server at `url` (after a restart).
async fn login(url: &str, user: &Client) -> Client {
    let mut client = Client::new(url);
    let name = &user.user.as_ref().expect("a registered user").username;
    within(CALL_TIMEOUT, "login", client.login(name, PASSWORD))
        .await
        .expect("login after restart");
    client
}

/// A room of `owner` that every one of `others` joined.
async fn shared_room(owner: &Client, others: &[Client]) -> String {
    let room = owner
        .create_room("live", Visibility::Public, None)
        .await
        .expect("create room");
    for client in others {
        client.join_room(&room.id).await.expect("join room");
    }
    room.id
}

/// Waits until `acked` holds at least `n` messages, failing early if a sender stopped.
async fn wait_for_acks(
    acked: &Mutex<Vec<Message>>,
    n: usize,
    senders: &[tokio::task::JoinHandle<Result<(), String>>],
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let count = acked.lock().unwrap().len();
        if count >= n {
            return;
        }
        assert!(
            !senders.iter().any(|s| s.is_finished()),
            "a sender stopped before the signal (after {count} acks)"
        );
        assert!(
            Instant::now() < deadline,
            "only {count} of {n} sends acknowledged within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Checks, on a restarted server, that every acknowledged message is in the room's
/// history as acknowledged, and that the history is sound. Returns the history's length.
async fn assert_all_acked_present(reader: &Client, room_id: &str, acked: &[Message]) -> usize {
    let history = full_history(reader, room_id).await;
    assert_contiguous(&history);
    let by_id: HashMap<&str, &Message> = history.iter().map(|m| (m.id.as_str(), m)).collect();
    let missing: Vec<(i64, &str)> = acked
        .iter()
        .filter(|m| by_id.get(m.id.as_str()).is_none_or(|h| *h != *m))
        .map(|m| (m.seq, m.id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged messages are missing or changed after the restart \
         (history has {}): (seq, id) {:?}",
        missing.len(),
        acked.len(),
        history.len(),
        &missing[..missing.len().min(20)]
    );
    let mut client_ids = HashSet::new();
    let repeated: Vec<&Message> = history
        .iter()
        .filter(|m| m.client_id.as_ref().is_some_and(|c| !client_ids.insert(c)))
        .collect();
    assert!(
        repeated.is_empty(),
        "a client_id stored twice: {repeated:?}"
    );
    history.len()
}

/// Sends over REST as `client` until a send fails; every `201` goes into `acked`. A
/// failure before `stopping` is set is an error.
fn rest_sender(
    client: Client,
    room_id: String,
    label: String,
    acked: Arc<Mutex<Vec<Message>>>,
    stopping: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Result<(), String>> {
    tokio::spawn(async move {
        for n in 0..20_000 {
            let cid = format!("{label}-{n}");
            let sent = tokio::time::timeout(
                CALL_TIMEOUT,
                client.send_message(&room_id, &format!("{label} {n}"), Some(&cid)),
            )
            .await;
            match sent {
                Ok(Ok(message)) => acked.lock().unwrap().push(message),
                _ if stopping.load(Ordering::SeqCst) => return Ok(()),
                Ok(Err(e)) => return Err(format!("{label} send {n} failed early: {e}")),
                Err(_) => return Err(format!("{label} send {n} timed out")),
            }
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_send_survives_sigkill() {
    const ACKS_BEFORE_KILL: usize = 400;
    let started = Instant::now();
    let cwd = tempfile::tempdir().unwrap();
    write_config(cwd.path());
    let mut server = Palaver::start(cwd.path());
    let mut users = Vec::new();
    for _ in 0..4 {
        users.push(register(&server.url, "kill").await);
    }
    let room_id = shared_room(&users[0], &users[1..]).await;

    let acked = Arc::new(Mutex::new(Vec::<Message>::new()));
    let killed = Arc::new(AtomicBool::new(false));
    let mut senders = Vec::new();
    // Two senders over WebSocket, two over REST, all at once.
    for (i, user) in users.iter().enumerate().take(2) {
        let mut socket = within(CALL_TIMEOUT, "connect", user.connect())
            .await
            .expect("connect");
        let (room_id, acked, killed) = (room_id.clone(), acked.clone(), killed.clone());
        senders.push(tokio::spawn(async move {
            for n in 0..20_000 {
                let cid = format!("ws{i}-{n}");
                // Bounded by the socket's timeout (10 s).
                match socket
                    .send_message(&room_id, &format!("ws{i} {n}"), Some(&cid))
                    .await
                {
                    Ok(message) => acked.lock().unwrap().push(message),
                    Err(_) if killed.load(Ordering::SeqCst) => return Ok(()),
                    Err(e) => return Err(format!("ws{i} send {n} failed early: {e}")),
                }
                while let Ok(Some(_)) = socket.try_next_event(Duration::ZERO).await {}
            }
            Ok(())
        }));
    }
    for (i, user) in users.iter().enumerate().skip(2) {
        senders.push(rest_sender(
            user.clone(),
            room_id.clone(),
            format!("rest{i}"),
            acked.clone(),
            killed.clone(),
        ));
    }

    wait_for_acks(&acked, ACKS_BEFORE_KILL, &senders).await;
    killed.store(true, Ordering::SeqCst);
    server.signal("KILL");
    let acked_at_kill = acked.lock().unwrap().len();
    let status = server
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("palaver exits after SIGKILL");
    {
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(9), "killed by SIGKILL: {status:?}");
    }
    for sender in senders {
        within(Duration::from_secs(40), "a sender to stop", sender)
            .await
            .expect("sender task")
            .expect("sender");
    }
    let acked = acked.lock().unwrap().clone();
    let panics = server.panics();
    drop(server);

    let server = Palaver::start(cwd.path());
    let reader = login(&server.url, &users[0]).await;
    let stored = assert_all_acked_present(&reader, &room_id, &acked).await;
    eprintln!(
        "sigkill: {} acknowledged ({acked_at_kill} when the kill was sent), {stored} in \
         history after restart ({} stored but not acknowledged), {panics} panics logged \
         before the kill, total {:?}",
        acked.len(),
        stored - acked.len(),
        started.elapsed()
    );
    server.terminate().await;
}

/// How one WebSocket ended.
#[derive(Debug)]
enum Ending {
    /// The server's close frame, with its code (`None`: a close frame without a code).
    Closed(Option<u16>),
    /// Anything else: no close frame, a transport error, a timeout, a rejected send.
    Other(String),
}

/// Sends `message.send` with `id` as a raw frame and reads until its reply (returns the
/// message) or the end of the connection.
async fn raw_send(
    socket: &mut Socket,
    id: u64,
    room_id: &str,
    content: &str,
    client_id: &str,
) -> Result<Message, Ending> {
    let frame = json!({
        "id": id,
        "type": "message.send",
        "data": {"room_id": room_id, "content": content, "client_id": client_id},
    });
    // A failed write is not the end of the story: the close frame may be waiting to be
    // read.
    let write_error = socket
        .inner()
        .send(WsMessage::Text(frame.to_string().into()))
        .await
        .err();
    loop {
        let next = tokio::time::timeout(Duration::from_secs(20), socket.inner().next()).await;
        let text = match next {
            Err(_) => return Err(Ending::Other("no reply nor close within 20 s".into())),
            Ok(None) => {
                return Err(Ending::Other(format!(
                    "stream ended without a close frame (write error: {write_error:?})"
                )))
            }
            Ok(Some(Err(e))) => {
                return Err(Ending::Other(format!(
                    "read error {e} (write error: {write_error:?})"
                )))
            }
            Ok(Some(Ok(WsMessage::Close(frame)))) => {
                return Err(Ending::Closed(frame.map(|f| u16::from(f.code))))
            }
            Ok(Some(Ok(WsMessage::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
        };
        let value: Value = serde_json::from_str(text.as_str()).expect("a JSON frame");
        if value["type"] == "reply" && value["id"] == id {
            return if value["ok"] == true {
                Ok(serde_json::from_value(value["data"].clone()).expect("a Message"))
            } else {
                Err(Ending::Other(format!("send rejected: {value}")))
            };
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_every_socket_with_1012_and_loses_nothing_acknowledged() {
    const USERS: usize = 5;
    const SOCKETS_PER_USER: usize = 4;
    const ACKS_BEFORE_TERM: usize = 300;
    let started = Instant::now();
    let cwd = tempfile::tempdir().unwrap();
    write_config(cwd.path());
    let mut server = Palaver::start(cwd.path());
    let mut users = Vec::new();
    for _ in 0..USERS {
        users.push(register(&server.url, "term").await);
    }
    let room_id = shared_room(&users[0], &users[1..]).await;

    let acked = Arc::new(Mutex::new(Vec::<Message>::new()));
    let terminating = Arc::new(AtomicBool::new(false));
    // Each user's first socket sends; the other three only listen.
    let mut sockets: Vec<tokio::task::JoinHandle<(String, Ending)>> = Vec::new();
    let mut senders = Vec::new();
    for (u, user) in users.iter().enumerate() {
        for s in 0..SOCKETS_PER_USER {
            let mut socket = within(CALL_TIMEOUT, "connect", user.connect())
                .await
                .expect("connect");
            let label = format!("user{u}/socket{s}");
            if s > 0 {
                socket.timeout = Duration::from_secs(60);
                sockets.push(tokio::spawn(async move {
                    let ending = match socket.wait_close().await {
                        Ok(frame) => Ending::Closed(frame.map(|f| u16::from(f.code))),
                        Err(e) => Ending::Other(e.to_string()),
                    };
                    (label, ending)
                }));
                continue;
            }
            let (room_id, acked) = (room_id.clone(), acked.clone());
            sockets.push(tokio::spawn(async move {
                for n in 0..20_000u64 {
                    let cid = format!("ws{u}-{n}");
                    match raw_send(&mut socket, n, &room_id, &format!("ws{u} {n}"), &cid).await {
                        Ok(message) => acked.lock().unwrap().push(message),
                        Err(ending) => return (label, ending),
                    }
                }
                (label, Ending::Other("sent everything, never closed".into()))
            }));
        }
    }
    for (i, user) in users.iter().enumerate().take(2) {
        senders.push(rest_sender(
            user.clone(),
            room_id.clone(),
            format!("rest{i}"),
            acked.clone(),
            terminating.clone(),
        ));
    }

    wait_for_acks(&acked, ACKS_BEFORE_TERM, &senders).await;
    assert!(
        !sockets.iter().any(|s| s.is_finished()),
        "a WebSocket ended before SIGTERM"
    );
    terminating.store(true, Ordering::SeqCst);
    let term_sent = Instant::now();
    server.signal("TERM");
    let acked_at_term = acked.lock().unwrap().len();
    let status = server.wait_exit(Duration::from_secs(20)).await;
    let exit_time = term_sent.elapsed();

    let mut endings = Vec::new();
    for socket in sockets {
        endings.push(
            within(Duration::from_secs(30), "a WebSocket to end", socket)
                .await
                .expect("socket task"),
        );
    }
    for sender in senders {
        within(Duration::from_secs(40), "a REST sender to stop", sender)
            .await
            .expect("sender task")
            .expect("REST sender");
    }
    let acked = acked.lock().unwrap().clone();
    let log = server.log_tail();
    let panics = server.panics();
    drop(server);

    let wrong: Vec<String> = endings
        .iter()
        .filter_map(|(label, ending)| match ending {
            Ending::Closed(Some(1012)) => None,
            Ending::Closed(code) => Some(format!("{label}: close frame with code {code:?}")),
            Ending::Other(what) => Some(format!("{label}: {what}")),
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} sockets did not get a 1012 close frame: {wrong:#?}",
        wrong.len(),
        endings.len()
    );
    assert!(
        status.is_some_and(|s| s.success()),
        "palaver exit after SIGTERM: {status:?} after {exit_time:?}; log:\n{log}"
    );

    let server = Palaver::start(cwd.path());
    let reader = login(&server.url, &users[0]).await;
    let stored = assert_all_acked_present(&reader, &room_id, &acked).await;
    eprintln!(
        "sigterm: {} sockets closed with 1012, exit after {exit_time:?}, {} acknowledged \
         ({acked_at_term} when TERM was sent), {stored} in history after restart, {panics} \
         panics logged, total {:?}",
        endings.len(),
        acked.len(),
        started.elapsed()
    );
    server.terminate().await;
}

/// A request whose body never finishes must not hold the shutdown past its deadline:
/// `shutdown_grace_secs` bounds the whole drain, HTTP included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_by_the_deadline_even_with_a_request_stuck_in_flight() {
    use tokio::io::AsyncWriteExt as _;
    const GRACE: Duration = Duration::from_secs(2);
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(
        cwd.path().join("palaver.toml"),
        format!("shutdown_grace_secs = {}\n", GRACE.as_secs()),
    )
    .expect("write palaver.toml");
    let mut server = Palaver::start(cwd.path());
    let addr = server.url.trim_start_matches("http://").to_owned();
    // Headers promising 1000 bytes, then 10 of them: hyper waits for the rest.
    let mut stuck = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    stuck
        .write_all(
            format!(
                "POST /api/v1/auth/login HTTP/1.1\r\nhost: {addr}\r\n\
                 content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"login\":"
            )
            .as_bytes(),
        )
        .await
        .expect("write a partial request");
    // Let the server start on it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let term_sent = Instant::now();
    server.signal("TERM");
    let status = server.wait_exit(GRACE + Duration::from_secs(8)).await;
    let took = term_sent.elapsed();
    assert!(
        status.is_some_and(|s| s.success()),
        "palaver did not exit cleanly within {:?} of SIGTERM with a request in flight \
         ({status:?}); log:\n{}",
        GRACE + Duration::from_secs(8),
        server.log_tail()
    );
    assert!(
        took >= GRACE - Duration::from_millis(100),
        "palaver exited after {took:?}, before the {GRACE:?} deadline, with a request in \
         flight: it did not wait for it"
    );
    drop(stuck);
}
