//! `reconnect`: N WebSocket clients drop at a server restart and resume at once; reports
//! how long until every one of them has caught up, and that none lost a message.
//!
//! Setup: `--users` accounts in `--rooms` rooms (each account in exactly one room), and
//! `--clients` WebSocket connections spread over the accounts (connection `i` belongs to
//! account `i % users`, so several per account, as tabs and devices are). Every
//! connection opens with `since=<room>:0`, so it is owed every message of its room from
//! seq 1 (a `since` of 0 replays everything after seq 0; no `since` would only promise
//! what is committed after `ready`).
//!
//! Timeline: all clients connect (64 at a time); `--senders` accounts per room send
//! `--rate` messages/s each over REST (each with a `client_id`, retried unchanged until
//! acknowledged, so a retry across the outage stores nothing twice); after
//! `--before-secs` the server is stopped with SIGTERM (it closes every socket with 1012)
//! and started again on the same data directory at once; the senders go on for
//! `--after-secs` after it is back, then stop. Each client, once its socket closes,
//! waits a uniformly random 0–1000 ms, then tries to connect every 250–500 ms (jittered)
//! with `since=<room>:<highest seq it saw>`. When the senders are done, each room's final
//! `last_seq` is read over REST, and the run waits (at most `--timeout-secs` more) until
//! every client has seen its room's final seq.
//!
//! Every client records each seq it receives (a bitset), so `lost`, `duplicated` and
//! `out_of_order` are exact counts over all clients; the protocol promises all three
//! are 0.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use futures_util::StreamExt as _;
use palaver_client::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::history::XorShift;
use super::per_address;
use crate::target::{self, Incoming, Kind, Member, Server};

/// Connections opened concurrently during the initial connect.
const CONNECT_CHUNK: usize = 64;
/// How long one connection attempt (TCP, upgrade, `ready`) may take before it is retried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The shape of a reconnect run.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct ReconnectArgs {
    /// WebSocket connections (clients).
    #[arg(long, default_value_t = 5000)]
    pub clients: usize,
    /// Accounts the clients belong to (several connections per account).
    #[arg(long, default_value_t = 250)]
    pub users: usize,
    /// Rooms; each account is a member of exactly one (users / rooms members each).
    #[arg(long, default_value_t = 25)]
    pub rooms: usize,
    /// Accounts per room that send over REST for the whole run (members of the room).
    #[arg(long, default_value_t = 1)]
    pub senders: usize,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 5.0)]
    pub rate: f64,
    /// Seconds of traffic before the restart.
    #[arg(long, default_value_t = 3)]
    pub before_secs: u64,
    /// Seconds of traffic after the server is back.
    #[arg(long, default_value_t = 3)]
    pub after_secs: u64,
    /// Seconds, once the senders have stopped, by which every client must have caught up.
    #[arg(long, default_value_t = 120)]
    pub timeout_secs: u64,
    /// Bytes of padding in each message.
    #[arg(long, default_value_t = 64)]
    pub padding: usize,
}

/// What a reconnect run measured, for one target. Times are from the instant the
/// restarted server printed its address ("back").
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReconnectResult {
    /// Clients started.
    pub clients: u64,
    /// Of those, connected at the first attempt before the load started.
    pub connected: u64,
    /// Clients whose socket closed at the restart and that resumed on the restarted
    /// server (got its `ready`).
    pub reconnected: u64,
    /// Seconds from back until the last client saw its room's final seq. It includes
    /// `after_secs` of traffic (the final message is sent about then); with failures, it
    /// is the time the wait gave up.
    pub caught_up_secs: f64,
    /// Seconds from back until the last client had resumed (its `ready` on the restarted
    /// server).
    pub all_reconnected_secs: f64,
    /// Largest delay, over clients, between the acknowledgement of the room's last send
    /// and the client seeing the room's final seq, ms: how far behind live the slowest
    /// client still was at the end.
    pub final_lag_ms: f64,
    /// Seconds from SIGTERM until the restarted server listened (graceful stop included).
    pub restart_secs: f64,
    /// Messages stored: the sum of every room's final seq.
    pub messages: u64,
    /// Sends the senders got acknowledged (one per message: equals `messages`).
    pub sent: u64,
    /// Acknowledged sends per second over all senders, from their start to their end
    /// (each sender keeps one send in flight, so a slow server lowers it below
    /// `rooms × senders × rate`).
    pub sent_per_sec: f64,
    /// Send attempts that failed and were retried (mostly during the outage).
    pub send_retries: u64,
    /// Sends given up after `timeout_secs` of retrying.
    pub send_failures: u64,
    /// Over all clients: seqs in `1..=final` of its room never received.
    pub lost: u64,
    /// Over all clients: seqs received more than once (each extra copy counts).
    pub duplicated: u64,
    /// Over all clients: seqs received after a higher one.
    pub out_of_order: u64,
    /// Clients that had not seen their room's final seq when the wait ended.
    pub failures: u64,
    /// Connection attempts that failed (refused while the server was down, timeouts).
    pub failed_attempts: u64,
    /// Sockets closed by the server with 1012 (service restart), over all clients.
    pub restart_closes: u64,
    /// Sockets that ended any other way (another close code, no close frame, an error).
    pub other_drops: u64,
    /// Deliveries received over all clients (live and replayed).
    pub deliveries: u64,
}

/// What the clients are told while they run.
#[derive(Clone, Debug, Default)]
struct Control {
    /// Each room's final seq, once the senders are done.
    finals: Option<Arc<Vec<i64>>>,
    /// Give up now (timeout).
    stop: bool,
}

/// The seqs one client received, in a bitset (bit `s` for seq `s`). Shared with `storm`.
#[derive(Debug, Default)]
pub(super) struct Seen {
    bits: Vec<u64>,
    /// The highest seq received (0: none).
    pub(super) highest: i64,
    /// When `highest` was received.
    highest_at: Option<Instant>,
    /// Seqs received, copies included.
    pub(super) received: u64,
    /// Seqs received more than once (each extra copy counts).
    pub(super) duplicated: u64,
    /// Seqs received after a higher one.
    pub(super) out_of_order: u64,
}

impl Seen {
    /// Records seq `seq`, received at `at`.
    pub(super) fn record(&mut self, seq: i64, at: Instant) {
        self.received += 1;
        if seq <= 0 {
            return;
        }
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.bits.len() <= word {
            self.bits.resize(word + 1, 0);
        }
        if self.bits[word] & (1 << bit) != 0 {
            self.duplicated += 1;
            return;
        }
        self.bits[word] |= 1 << bit;
        if seq < self.highest {
            self.out_of_order += 1;
        } else {
            self.highest = seq;
            self.highest_at = Some(at);
        }
    }

    /// Seqs in `1..=upto` never received.
    fn missing(&self, upto: i64) -> u64 {
        self.missing_after(0, upto)
    }

    /// Seqs in `after + 1..=upto` never received.
    pub(super) fn missing_after(&self, after: i64, upto: i64) -> u64 {
        (after.max(0) + 1..=upto)
            .filter(|&s| {
                let word = (s / 64) as usize;
                self.bits.get(word).is_none_or(|w| w & (1 << (s % 64)) == 0)
            })
            .count() as u64
    }
}

/// What one client saw.
#[derive(Debug, Default)]
struct ClientReport {
    room: usize,
    seen: Seen,
    /// When it saw its room's final seq (None: never, or the wait gave up first).
    caught_at: Option<Instant>,
    /// When it last connected again after its socket had closed.
    resumed_at: Option<Instant>,
    failed_attempts: u64,
    restart_closes: u64,
    other_drops: u64,
}

/// Where and as whom one client connects.
struct Endpoint {
    addr: String,
    member: Member,
    room_id: String,
    room: usize,
    ip: std::net::Ipv4Addr,
}

/// What one sender did.
#[derive(Debug, Default)]
struct SenderReport {
    room: usize,
    sent: u64,
    retries: u64,
    failures: u64,
    /// When its last send was acknowledged.
    last_ack: Option<Instant>,
}

/// Prepares the accounts and rooms, connects the clients, restarts the server under
/// load and checks that every client caught up without a gap.
pub async fn run(server: &mut Server, args: &ReconnectArgs) -> anyhow::Result<ReconnectResult> {
    ensure!(args.rooms >= 1, "--rooms must be at least 1");
    ensure!(
        args.users >= args.rooms,
        "--users must be at least --rooms (each room needs a member)"
    );
    ensure!(args.clients >= 1, "--clients must be at least 1");
    ensure!(args.rate > 0.0, "--rate must be positive");
    let size = args.users / args.rooms;
    let (members, room_ids) = crate::setup::rooms(server, args.rooms, size).await?;
    let per_address = per_address();
    let addr = server.addr.clone();
    let (control_tx, control_rx) = watch::channel(Control::default());

    // Connect everyone, 64 at a time.
    let started = Instant::now();
    let mut clients = Vec::with_capacity(args.clients);
    let mut connected = 0u64;
    let mut failed = 0u64;
    let indices: Vec<usize> = (0..args.clients).collect();
    for chunk in indices.chunks(CONNECT_CHUNK) {
        let opened = futures_util::future::join_all(chunk.iter().map(|&i| {
            let m = i % members.len();
            let endpoint = Endpoint {
                addr: addr.clone(),
                member: members[m].clone(),
                room_id: room_ids[m / size].clone(),
                room: m / size,
                ip: target::local_ip(i, per_address),
            };
            async move {
                let url = endpoint.url(0);
                let ws = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    target::connect(Kind::Palaver, &url, None, endpoint.ip),
                )
                .await;
                (i, endpoint, ws)
            }
        }))
        .await;
        for (i, endpoint, ws) in opened {
            let ws = match ws {
                Ok(Ok(ws)) => {
                    connected += 1;
                    Some(ws)
                }
                Ok(Err(e)) => {
                    failed += 1;
                    if failed <= 3 {
                        eprintln!("  client {i} failed to connect (it will retry): {e:#}");
                    }
                    None
                }
                Err(_) => {
                    failed += 1;
                    None
                }
            };
            clients.push(tokio::spawn(client(i, endpoint, ws, control_rx.clone())));
        }
    }
    eprintln!(
        "  {connected} of {} clients connected in {:.1?}",
        args.clients,
        started.elapsed()
    );

    // Senders: member `s` of each room (wrapping), over REST.
    let (end_tx, end_rx) = watch::channel::<Option<Instant>>(None);
    let url = server.http_url();
    let mut senders = Vec::new();
    for (k, room_id) in room_ids.iter().enumerate() {
        for s in 0..args.senders {
            let member = &members[k * size + s % size];
            let sender = Sender {
                client: Client::with_token(url.clone(), member.token.clone()),
                room: k,
                room_id: room_id.clone(),
                id: k * args.senders + s,
                rate: args.rate,
                padding: args.padding,
                give_up: Duration::from_secs(args.timeout_secs),
            };
            senders.push(tokio::spawn(sender.run(end_rx.clone())));
        }
    }

    let sending = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.before_secs)).await;
    eprintln!("  restarting the server");
    let down = Instant::now();
    server.stop().await.context("stopping the server")?;
    let stopped = down.elapsed();
    server
        .start_again()
        .await
        .context("starting the server again")?;
    let back = Instant::now();
    let restart_secs = (back - down).as_secs_f64();
    eprintln!(
        "  server back after {restart_secs:.2} s (stopped in {:.2} s)",
        stopped.as_secs_f64()
    );
    let _ = end_tx.send(Some(back + Duration::from_secs(args.after_secs)));

    let mut sent_reports = Vec::new();
    for s in senders {
        sent_reports.push(s.await?);
    }
    let send_secs = sending.elapsed().as_secs_f64();
    // Each room's final seq, as its first member sees it.
    let url = server.http_url();
    let mut finals = Vec::with_capacity(room_ids.len());
    for (k, room_id) in room_ids.iter().enumerate() {
        let reader = Client::with_token(url.clone(), members[k * size].token.clone());
        let mut tries = 0;
        let room = loop {
            match reader.get_room(room_id).await {
                Ok(room) => break room,
                Err(e) if tries < 20 => {
                    tries += 1;
                    eprintln!("  reading room {k}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => return Err(e).context("reading a room's last_seq"),
            }
        };
        finals.push(room.last_seq);
    }
    let finals = Arc::new(finals);
    control_tx.send_modify(|c| c.finals = Some(finals.clone()));
    let mut last_ack = vec![None::<Instant>; room_ids.len()];
    for r in &sent_reports {
        last_ack[r.room] = last_ack[r.room].max(r.last_ack);
    }

    // Wait for every client to catch up, or give up at the deadline.
    let deadline = Instant::now() + Duration::from_secs(args.timeout_secs);
    let all = futures_util::future::join_all(clients);
    tokio::pin!(all);
    let (joined, gave_up_at) = match tokio::time::timeout_at(deadline.into(), &mut all).await {
        Ok(joined) => (joined, None),
        Err(_) => {
            let at = Instant::now();
            control_tx.send_modify(|c| c.stop = true);
            (all.await, Some(at))
        }
    };

    let mut result = ReconnectResult {
        clients: args.clients as u64,
        connected,
        restart_secs,
        messages: finals.iter().map(|&f| f.max(0) as u64).sum(),
        ..ReconnectResult::default()
    };
    for r in &sent_reports {
        result.sent += r.sent;
        result.send_retries += r.retries;
        result.send_failures += r.failures;
    }
    result.sent_per_sec = result.sent as f64 / send_secs;
    let since_back = |t: Instant| t.saturating_duration_since(back).as_secs_f64();
    let mut caught_up = 0.0f64;
    for joined in joined {
        let r = joined.context("a client task panicked")?;
        let fin = finals[r.room];
        result.lost += r.seen.missing(fin);
        result.duplicated += r.seen.duplicated;
        result.out_of_order += r.seen.out_of_order;
        result.failed_attempts += r.failed_attempts;
        result.restart_closes += r.restart_closes;
        result.other_drops += r.other_drops;
        result.deliveries += r.seen.received;
        if let Some(t) = r.resumed_at.filter(|&t| t >= back) {
            result.reconnected += 1;
            result.all_reconnected_secs = result.all_reconnected_secs.max(since_back(t));
        }
        match r.caught_at {
            Some(t) => {
                caught_up = caught_up.max(since_back(t));
                if let Some(ack) = last_ack[r.room] {
                    let lag = t.saturating_duration_since(ack).as_secs_f64() * 1000.0;
                    result.final_lag_ms = result.final_lag_ms.max(lag);
                }
            }
            None => result.failures += 1,
        }
    }
    result.caught_up_secs = match gave_up_at {
        Some(at) if result.failures > 0 => since_back(at),
        _ => caught_up,
    };
    if result.sent != result.messages {
        eprintln!(
            "  note: {} sends acknowledged but {} messages stored",
            result.sent, result.messages
        );
    }
    Ok(result)
}

impl Endpoint {
    /// The connect URL resuming after `since`.
    fn url(&self, since: i64) -> String {
        Kind::Palaver.ws_url(&self.addr, &self.member, &self.room_id, Some(since))
    }
}

/// Whether a client that has seen up to `highest` in `room` is done: the room's final
/// seq is known and reached.
fn reached(control: &watch::Receiver<Control>, room: usize, highest: i64) -> bool {
    control
        .borrow()
        .finals
        .as_ref()
        .is_some_and(|f| highest >= f[room])
}

/// One client: reads its socket, recording every seq; reconnects with jitter when the
/// socket closes; returns once it has seen its room's final seq (or is told to stop).
async fn client(
    i: usize,
    endpoint: Endpoint,
    mut ws: Option<target::Ws>,
    mut control: watch::Receiver<Control>,
) -> ClientReport {
    let mut rng = XorShift::new(target::now_us() ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut r = ClientReport {
        room: endpoint.room,
        ..ClientReport::default()
    };
    loop {
        let mut socket = match ws.take() {
            Some(socket) => socket,
            None => {
                match reconnect(&endpoint, r.seen.highest, &mut rng, &mut control, &mut r).await {
                    Some(socket) => {
                        r.resumed_at = Some(Instant::now());
                        socket
                    }
                    None => return r,
                }
            }
        };
        // Read until the socket closes.
        loop {
            if reached(&control, r.room, r.seen.highest) {
                // A room without messages is caught up on arrival.
                r.caught_at = r.seen.highest_at.or_else(|| Some(Instant::now()));
                let _ = tokio::time::timeout(Duration::from_secs(1), socket.close(None)).await;
                return r;
            }
            if control.borrow().stop {
                return r;
            }
            tokio::select! {
                frame = socket.next() => match frame {
                    Some(Ok(WsMessage::Text(text))) => {
                        if let Incoming::Delivery { seq: Some(seq), .. } = Kind::Palaver.classify(&text) {
                            r.seen.record(seq, Instant::now());
                        }
                    }
                    Some(Ok(WsMessage::Close(Some(frame)))) if frame.code == CloseCode::Restart => {
                        r.restart_closes += 1;
                        break;
                    }
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                        r.other_drops += 1;
                        break;
                    }
                    Some(Ok(_)) => {}
                },
                changed = control.changed() => {
                    if changed.is_err() {
                        return r;
                    }
                }
            }
        }
        drop(socket);
        // The first try after a drop: uniformly random within the next second.
        let wait = Duration::from_millis(rng.between(0, 1000) as u64);
        if sleep_or_stop(wait, &mut control).await {
            return r;
        }
    }
}

/// Connects again, resuming after `highest`, retrying every 250–500 ms until it works or
/// the client is told to stop (`None`).
async fn reconnect(
    endpoint: &Endpoint,
    highest: i64,
    rng: &mut XorShift,
    control: &mut watch::Receiver<Control>,
    r: &mut ClientReport,
) -> Option<target::Ws> {
    let url = endpoint.url(highest);
    loop {
        if control.borrow().stop {
            return None;
        }
        let attempt = tokio::time::timeout(
            CONNECT_TIMEOUT,
            target::connect(Kind::Palaver, &url, None, endpoint.ip),
        );
        tokio::select! {
            result = attempt => {
                if let Ok(Ok(socket)) = result {
                    return Some(socket);
                }
                r.failed_attempts += 1;
            }
            _ = control.wait_for(|c| c.stop) => return None,
        }
        let wait = Duration::from_millis(rng.between(250, 500) as u64);
        if sleep_or_stop(wait, control).await {
            return None;
        }
    }
}

/// Sleeps for `wait`; true if told to stop meanwhile.
async fn sleep_or_stop(wait: Duration, control: &mut watch::Receiver<Control>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        _ = control.wait_for(|c| c.stop) => true,
    }
}

/// A room's REST sender.
struct Sender {
    client: Client,
    room: usize,
    room_id: String,
    /// Its number in payloads and client ids.
    id: usize,
    rate: f64,
    padding: usize,
    /// How long one message may be retried before it is given up.
    give_up: Duration,
}

impl Sender {
    /// Sends `rate` messages/s until the end instant (set once the server is back), each
    /// retried unchanged (same `client_id`) until acknowledged.
    async fn run(self, end: watch::Receiver<Option<Instant>>) -> SenderReport {
        let mut report = SenderReport {
            room: self.room,
            ..SenderReport::default()
        };
        let mut rng = XorShift::new(target::now_us() ^ ((self.id as u64) << 32));
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / self.rate));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            tick.tick().await;
            if end.borrow().is_some_and(|end| Instant::now() >= end) {
                return report;
            }
            n += 1;
            let content = target::payload(self.id, n, target::now_us(), self.padding);
            let client_id = format!("rc-{}-{n}", self.id);
            let first_try = Instant::now();
            loop {
                match self
                    .client
                    .send_message(&self.room_id, &content, Some(&client_id))
                    .await
                {
                    Ok(_) => {
                        report.sent += 1;
                        report.last_ack = Some(Instant::now());
                        break;
                    }
                    Err(e) => {
                        report.retries += 1;
                        if first_try.elapsed() > self.give_up {
                            eprintln!("  sender {} gave up message {n}: {e}", self.id);
                            report.failures += 1;
                            break;
                        }
                        let wait = rng.between(100, 200) as u64;
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seen_counts_gaps_duplicates_and_reordering() {
        let at = Instant::now();
        let mut seen = Seen::default();
        for seq in [1, 2, 3, 5, 4, 4, 70, 130] {
            seen.record(seq, at);
        }
        assert_eq!(seen.highest, 130);
        assert_eq!(seen.received, 8);
        assert_eq!(seen.duplicated, 1);
        assert_eq!(seen.out_of_order, 1);
        // 1..=130 less {1, 2, 3, 4, 5, 70, 130}.
        assert_eq!(seen.missing(130), 123);
        assert_eq!(seen.missing(5), 0);
        assert_eq!(seen.missing(200), 193);
        assert_eq!(Seen::default().missing(3), 3);
        // From seq 4 on: {4, 5, 70, 130} seen.
        assert_eq!(seen.missing_after(3, 130), 123);
        assert_eq!(seen.missing_after(69, 70), 0);
        assert_eq!(seen.missing_after(130, 130), 0);
    }
}
