//! `storm` (Palaver only): what a storm of logins and reconnects costs a steady fan-out.
//!
//! Setup: one room of `--members` accounts (registered, so each can log in again).
//! The load is `fanout`'s: every member holds one connection, `--senders` of them send,
//! `--rate` messages/s in total. Without `--rate`, the rate is half of `--capacity` (a
//! figure from an earlier `capacity` run), or, without that either, half of what a short
//! capacity probe in the same room finds (steps of `--probe-duration-secs`, one repeat
//! each).
//!
//! Besides the load's connections, `--reconnect-clients` more connections (second
//! connections of the first members) join the room before anything is measured, each
//! opened with `since=<room>:<last seq>` so that it is owed every later seq.
//!
//! Timeline: the load runs once quiet (warm-up, a window of `--duration-secs`, a drain),
//! then once more, identical, while a storm runs from the start of its warm-up to the end
//! of its window:
//! - `--logins-per-sec` real `POST /api/v1/auth/login` of the room's members (round
//!   robin), open loop, each answer awaited; at most 2 s worth in flight (a tick that finds
//!   that many waiting sends nothing and counts as `not_sent`);
//! - `--reconnects-per-sec` reconnects: the next reconnecting client (round robin)
//!   closes its WebSocket and connects again with `since=<room>:<highest seq it saw>`
//!   (docs/protocol.md, "Seq, resume and the delivery guarantee"), retrying every
//!   100–200 ms until it gets `ready`. A client still busy with its last reconnect when
//!   its turn comes again is skipped (`not_sent`).
//!
//! After the second drain, the room's final seq is read over REST and every reconnecting
//! client must reach it (at most `--timeout-secs`). Each records every seq it receives,
//! so `lost` (seqs after its first `since` never received), `duplicated` and
//! `out_of_order` are exact; the protocol promises all three are 0.
//!
//! Palaver is started with every `[rate_limits]` rule off ([`palaver_env`]): the login
//! failure limits count a login while it is being verified, so a backlog of logins from
//! one address would otherwise be refused.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use futures_util::StreamExt as _;
use palaver_client::Client;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::capacity::{self, CapacityArgs, CapacityResult, StartRates};
use super::fanout::{self, FanoutArgs};
use super::history::XorShift;
use super::reconnect::Seen;
use super::{measure, measure_with, LoadResult};
use crate::stats::{Latency, LatencySummary};
use crate::target::{self, Incoming, Kind, Member, Server};

/// How long one connection attempt (TCP, upgrade, `ready`) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The shape of a storm run.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct StormArgs {
    /// Members of the room, each with one connection of the fan-out load.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Members that send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages/s of the fan-out load, all senders together. Default: half of
    /// `--capacity`, or half of a capacity probe's result.
    #[arg(long)]
    pub rate: Option<f64>,
    /// A capacity (msg/s, from `capacity`) to load the room at half of.
    #[arg(long)]
    pub capacity: Option<f64>,
    /// Seconds of load before each measured window (the storm already runs in the
    /// second one).
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Seconds of each measured window: quiet, then storm.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Seconds after each window for late deliveries.
    #[arg(long, default_value_t = 2)]
    pub drain_secs: u64,
    /// Bytes of padding in each message.
    #[arg(long, default_value_t = 64)]
    pub padding: usize,
    /// Logins per second during the storm.
    #[arg(long, default_value_t = 100.0)]
    pub logins_per_sec: f64,
    /// Reconnects with resume per second during the storm.
    #[arg(long, default_value_t = 50.0)]
    pub reconnects_per_sec: f64,
    /// Connections that close and resume in turn (each reconnects every
    /// `reconnect_clients / reconnects_per_sec` seconds).
    #[arg(long, default_value_t = 100)]
    pub reconnect_clients: usize,
    /// Seconds of each step's window of the probe (without `--rate` and `--capacity`).
    #[arg(long, default_value_t = 3)]
    pub probe_duration_secs: u64,
    /// Seconds the reconnecting clients have, after the load, to reach the final seq.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

/// The `PALAVER_*` environment the storm starts Palaver with: every `[rate_limits]`
/// rule off (`max = 0`), recorded in the JSON (`provenance.palaver_env`).
pub fn palaver_env() -> Vec<(String, String)> {
    [
        "LOGIN_FAILURES_PER_IP",
        "LOGIN_FAILURES_PER_ACCOUNT",
        "LOGIN_FAILURES_PER_ACCOUNT_GLOBAL",
        "REGISTRATIONS_PER_IP",
        "REQUESTS_PER_IP",
    ]
    .iter()
    .map(|rule| (format!("PALAVER_RATE_LIMITS__{rule}__MAX"), "0".to_owned()))
    .collect()
}

/// What a storm run measured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StormResult {
    /// Messages/s the fan-out load offered, both times.
    pub rate_per_sec: f64,
    /// Where the rate came from: `--rate`, `--capacity / 2` or `probe / 2`.
    pub rate_source: String,
    /// The probe's climb, when there was one.
    pub probe: Option<CapacityResult>,
    /// Delivery latency of the load's connections, quiet and during the storm, ms.
    pub p50_quiet_ms: f64,
    pub p99_quiet_ms: f64,
    pub p50_storm_ms: f64,
    pub p99_storm_ms: f64,
    /// `p99_storm_ms / p99_quiet_ms`.
    pub p99_ratio: f64,
    /// Seconds the storm ran (the second load's warm-up and window).
    pub storm_secs: f64,
    /// The load without the storm.
    pub quiet: LoadResult,
    /// The same load during the storm.
    pub storm: LoadResult,
    pub logins: Logins,
    pub reconnects: Reconnects,
}

/// The storm's logins.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Logins {
    pub offered_per_sec: f64,
    /// Requests sent.
    pub attempted: u64,
    /// Ticks that sent nothing: 2 s worth of logins were already waiting.
    pub not_sent: u64,
    /// Answered `200` with a token pair (in the storm or after it).
    pub ok: u64,
    /// `ok` answers received before the storm ended, per second of storm.
    pub achieved_per_sec: f64,
    /// Failed: an error answer or no answer (timeout, connection error).
    pub errors: u64,
    /// `errors` by error code (`rate_limited`, …), HTTP status, or `transport`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Request to answer, successful logins.
    pub latency: LatencySummary,
}

/// The storm's reconnects, and what the reconnecting clients received.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Reconnects {
    pub offered_per_sec: f64,
    /// Reconnecting clients.
    pub clients: u64,
    /// Reconnects asked of a client.
    pub asked: u64,
    /// Turns skipped: the client was still busy with its previous reconnect.
    pub not_sent: u64,
    /// Reconnects that got `ready` (in the storm or after it).
    pub ok: u64,
    /// Reconnects that got `ready` before the storm ended, per second of storm.
    pub achieved_per_sec: f64,
    /// Connection attempts that failed (each retried).
    pub errors: u64,
    /// Sockets that ended without the client closing them (server close, error).
    pub unexpected_closes: u64,
    /// From the close to `ready` on the new socket, per successful reconnect.
    pub latency: LatencySummary,
    /// The room's last seq when the clients first connected: each is owed every later one.
    pub from_seq: i64,
    /// The room's last seq after the load.
    pub final_seq: i64,
    /// Over all clients: seqs in `from_seq + 1..=final_seq` never received.
    pub lost: u64,
    /// Over all clients: seqs received more than once (each extra copy counts).
    pub duplicated: u64,
    /// Over all clients: seqs received after a higher one.
    pub out_of_order: u64,
    /// Clients that had not reached `final_seq` when the wait ended.
    pub failures: u64,
}

/// Prepares the room, finds the rate, runs the quiet load and the same load under the
/// storm, and checks what the reconnecting clients received.
pub async fn run(server: &Server, args: &StormArgs) -> anyhow::Result<StormResult> {
    ensure!(
        server.kind == Kind::Palaver,
        "storm runs against Palaver only"
    );
    ensure!(args.members >= 2, "--members must be at least 2");
    ensure!(
        (1..=args.members).contains(&args.senders),
        "--senders must be between 1 and --members"
    );
    ensure!(
        args.logins_per_sec >= 0.0 && args.logins_per_sec.is_finite(),
        "--logins-per-sec must be a number ≥ 0"
    );
    ensure!(
        args.reconnects_per_sec >= 0.0 && args.reconnects_per_sec.is_finite(),
        "--reconnects-per-sec must be a number ≥ 0"
    );
    ensure!(
        args.reconnect_clients >= 1,
        "--reconnect-clients must be at least 1"
    );
    ensure!(
        args.duration_secs >= 1,
        "--duration-secs must be at least 1"
    );
    let (members, rooms) = crate::setup::rooms(server, 1, args.members).await?;
    let room = rooms[0].clone();

    let (rate, rate_source, probe) = match (args.rate, args.capacity) {
        (Some(rate), _) => (rate, "--rate", None),
        (None, Some(capacity)) => (capacity / 2.0, "--capacity / 2", None),
        (None, None) => {
            eprintln!("  probing the capacity");
            let probe = capacity::climb(server, &members, &room, &probe_args(args)).await?;
            ensure!(
                probe.capacity_per_sec > 0.0,
                "the capacity probe passed no step; give --rate or --capacity"
            );
            (probe.capacity_per_sec / 2.0, "probe / 2", Some(probe))
        }
    };
    ensure!(
        rate > 0.0 && rate.is_finite(),
        "the rate must be a positive number of messages/s"
    );
    let fan = FanoutArgs {
        members: args.members,
        senders: args.senders,
        rate: rate / args.senders as f64,
        warmup_secs: args.warmup_secs,
        duration_secs: args.duration_secs,
        drain_secs: args.drain_secs,
        padding: args.padding,
    };
    let plan = fanout::plan(server, &members, &room, &fan);

    // The reconnecting clients join before anything is measured, so both loads fan out
    // to the same connections.
    let url = server.http_url();
    let reader = Client::with_token(url.clone(), members[0].token.clone());
    let from_seq = reader
        .get_room(&room)
        .await
        .context("reading the room's last seq")?
        .last_seq;
    let (control_tx, control_rx) = watch::channel(Control::default());
    let mut clients = Vec::with_capacity(args.reconnect_clients);
    let mut commands = Vec::with_capacity(args.reconnect_clients);
    for i in 0..args.reconnect_clients {
        let endpoint = Endpoint {
            addr: server.addr.clone(),
            member: members[i % members.len()].clone(),
            room: room.clone(),
            ip: target::local_ip(plan.conns.len() + i, super::per_address()),
        };
        let url = endpoint.url(from_seq);
        let ws = tokio::time::timeout(
            CONNECT_TIMEOUT,
            target::connect(Kind::Palaver, &url, None, endpoint.ip),
        )
        .await
        .context("a reconnecting client timed out connecting")?
        .context("connecting a reconnecting client")?;
        let (tx, rx) = mpsc::channel(1);
        commands.push(tx);
        clients.push(tokio::spawn(client(
            i,
            endpoint,
            from_seq,
            ws,
            rx,
            control_rx.clone(),
        )));
    }

    eprintln!("  quiet: {rate:.1} msg/s");
    let quiet = measure(server, &plan, rate).await?;
    eprintln!(
        "  quiet: ratio {:.4}, p50 {:.1} ms, p99 {:.1} ms",
        quiet.delivery_ratio, quiet.latency.p50_ms, quiet.latency.p99_ms
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    eprintln!(
        "  storm: {rate:.1} msg/s with {} logins/s and {} reconnects/s",
        args.logins_per_sec, args.reconnects_per_sec
    );
    let storm_len = Duration::from_secs(args.warmup_secs + args.duration_secs);
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let logins = members.iter().map(|m| m.login.clone()).collect();
    let storm_task = tokio::spawn(storm(
        Client::new(url.clone()),
        logins,
        args.logins_per_sec,
        commands,
        args.reconnects_per_sec,
        storm_len,
        go_rx,
    ));
    let stormy = measure_with(server, &plan, rate, move || {
        let _ = go_tx.send(());
    })
    .await?;
    let (logins, mut reconnects) = storm_task.await.context("the storm task panicked")??;
    eprintln!(
        "  storm: ratio {:.4}, p50 {:.1} ms, p99 {:.1} ms",
        stormy.delivery_ratio, stormy.latency.p50_ms, stormy.latency.p99_ms
    );

    // Every reconnecting client must reach the room's final seq.
    let final_seq = reader
        .get_room(&room)
        .await
        .context("reading the room's final seq")?
        .last_seq;
    control_tx.send_modify(|c| c.final_seq = Some(final_seq));
    let all = futures_util::future::join_all(clients);
    tokio::pin!(all);
    let deadline = Duration::from_secs(args.timeout_secs);
    let joined = match tokio::time::timeout(deadline, &mut all).await {
        Ok(joined) => joined,
        Err(_) => {
            control_tx.send_modify(|c| c.stop = true);
            all.await
        }
    };
    reconnects.clients = args.reconnect_clients as u64;
    reconnects.from_seq = from_seq;
    reconnects.final_seq = final_seq;
    let mut latency = Latency::default();
    let mut ok_in_storm = 0u64;
    for joined in joined {
        let r = joined.context("a reconnecting client panicked")?;
        reconnects.lost += r.seen.missing_after(from_seq, final_seq);
        reconnects.duplicated += r.seen.duplicated;
        reconnects.out_of_order += r.seen.out_of_order;
        reconnects.errors += r.errors;
        reconnects.unexpected_closes += r.unexpected_closes;
        reconnects.ok += r.ok;
        ok_in_storm += r.ok_in_storm;
        if r.seen.highest.max(from_seq) < final_seq {
            reconnects.failures += 1;
        }
        latency.merge(&r.latency);
    }
    reconnects.latency = latency.summary();
    let storm_secs = storm_len.as_secs_f64();
    reconnects.achieved_per_sec = ok_in_storm as f64 / storm_secs;
    let ratio = if quiet.latency.p99_ms > 0.0 {
        stormy.latency.p99_ms / quiet.latency.p99_ms
    } else {
        0.0
    };
    Ok(StormResult {
        rate_per_sec: rate,
        rate_source: rate_source.to_owned(),
        probe,
        p50_quiet_ms: quiet.latency.p50_ms,
        p99_quiet_ms: quiet.latency.p99_ms,
        p50_storm_ms: stormy.latency.p50_ms,
        p99_storm_ms: stormy.latency.p99_ms,
        p99_ratio: ratio,
        storm_secs,
        quiet,
        storm: stormy,
        logins,
        reconnects,
    })
}

/// The probe's climb: one repeat per step, short windows, from the default start rate.
fn probe_args(args: &StormArgs) -> CapacityArgs {
    CapacityArgs {
        fanout: FanoutArgs {
            members: args.members,
            senders: args.senders,
            rate: 0.0,
            warmup_secs: 1,
            duration_secs: args.probe_duration_secs.max(1),
            drain_secs: 1,
            padding: args.padding,
        },
        start_rate: StartRates(capacity::DEFAULT_START_RATES.into_iter().collect()),
        factor: 1.5,
        max_steps: 14,
        repeats: 1,
    }
}

/// Runs the storm from `go` for `len`: logins and reconnect turns, each on its own
/// open-loop ticker. Returns the logins (every answer awaited, at most 35 s past the
/// end) and the reconnect counts known to the ticker (`asked`, `not_sent`); the clients
/// count the rest. Dropping the command channels at the end tells the clients the storm
/// is over.
async fn storm(
    base: Client,
    accounts: Vec<String>,
    logins_per_sec: f64,
    commands: Vec<mpsc::Sender<Instant>>,
    reconnects_per_sec: f64,
    len: Duration,
    go: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<(Logins, Reconnects)> {
    if go.await.is_err() {
        // The load never started (it failed connecting): no storm.
        drop(commands);
        return Ok((Logins::default(), Reconnects::default()));
    }
    let start = Instant::now();
    let end = tokio::time::Instant::from_std(start + len);
    let mut logins = Logins {
        offered_per_sec: logins_per_sec,
        ..Logins::default()
    };
    let mut reconnects = Reconnects {
        offered_per_sec: reconnects_per_sec,
        ..Reconnects::default()
    };
    let ticker = |rate: f64| {
        let period = if rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            len + Duration::from_secs(3600)
        };
        let mut t = tokio::time::interval(period);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    };
    let mut login_tick = ticker(logins_per_sec);
    let mut reconnect_tick = ticker(reconnects_per_sec);
    // Skip the immediate first ticks of a disabled ticker.
    let (logins_on, reconnects_on) = (logins_per_sec > 0.0, reconnects_per_sec > 0.0);
    let max_in_flight = ((logins_per_sec * 2.0).ceil() as usize).max(1);
    let answers = Arc::new(Mutex::new(LoginAnswers::default()));
    let mut in_flight = tokio::task::JoinSet::new();
    let (mut next_login, mut next_client) = (0usize, 0usize);
    let end_std = start + len;
    loop {
        tokio::select! {
            _ = tokio::time::sleep_until(end) => break,
            _ = login_tick.tick(), if logins_on => {
                while in_flight.try_join_next().is_some() {}
                if in_flight.len() >= max_in_flight {
                    logins.not_sent += 1;
                    continue;
                }
                logins.attempted += 1;
                let login = accounts[next_login % accounts.len()].clone();
                next_login += 1;
                let mut client = base.clone();
                let answers = answers.clone();
                in_flight.spawn(async move {
                    let sent = Instant::now();
                    let outcome = client.login(&login, crate::setup::PASSWORD).await;
                    let now = Instant::now();
                    let mut a = answers.lock().expect("login answers");
                    match outcome {
                        Ok(_) => {
                            a.ok += 1;
                            if now <= end_std {
                                a.ok_in_storm += 1;
                            }
                            a.latency.record(now.duration_since(sent).as_micros() as u64);
                        }
                        Err(e) => {
                            let kind = e
                                .code()
                                .map(str::to_owned)
                                .or_else(|| e.status().map(|s| s.to_string()))
                                .unwrap_or_else(|| "transport".to_owned());
                            *a.errors.entry(kind).or_default() += 1;
                        }
                    }
                });
            }
            _ = reconnect_tick.tick(), if reconnects_on => {
                let k = next_client % commands.len();
                next_client += 1;
                reconnects.asked += 1;
                if commands[k].try_send(end_std).is_err() {
                    reconnects.not_sent += 1;
                }
            }
        }
    }
    // Every login is answered (the client gives up after 30 s).
    let _ = tokio::time::timeout(Duration::from_secs(35), async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    in_flight.abort_all();
    let a = answers.lock().expect("login answers");
    logins.ok = a.ok;
    logins.achieved_per_sec = a.ok_in_storm as f64 / len.as_secs_f64();
    logins.errors = a.errors.values().sum::<u64>() + in_flight.len() as u64;
    logins.errors_by_kind = a.errors.clone();
    if !in_flight.is_empty() {
        logins
            .errors_by_kind
            .insert("unanswered".to_owned(), in_flight.len() as u64);
    }
    logins.latency = a.latency.summary();
    drop(a);
    drop(commands);
    Ok((logins, reconnects))
}

/// What the login tasks report.
#[derive(Default)]
struct LoginAnswers {
    ok: u64,
    ok_in_storm: u64,
    errors: BTreeMap<String, u64>,
    latency: Latency,
}

/// What the reconnecting clients are told.
#[derive(Clone, Debug, Default)]
struct Control {
    /// The room's final seq, once the load is over.
    final_seq: Option<i64>,
    /// Give up now (timeout).
    stop: bool,
}

/// Where and as whom a reconnecting client connects.
struct Endpoint {
    addr: String,
    member: Member,
    room: String,
    ip: std::net::Ipv4Addr,
}

impl Endpoint {
    /// The connect URL resuming after `since`.
    fn url(&self, since: i64) -> String {
        Kind::Palaver.ws_url(&self.addr, &self.member, &self.room, Some(since))
    }
}

/// What one reconnecting client did and received.
#[derive(Default)]
struct ClientReport {
    seen: Seen,
    /// Reconnects that got `ready`.
    ok: u64,
    /// Of those, before the storm's end.
    ok_in_storm: u64,
    errors: u64,
    unexpected_closes: u64,
    latency: Latency,
}

/// One reconnecting client: reads its socket, recording every seq; on each command,
/// closes it and resumes after the highest seq it saw; returns once it has seen the
/// room's final seq after the storm (or is told to stop).
async fn client(
    i: usize,
    endpoint: Endpoint,
    from_seq: i64,
    ws: target::Ws,
    mut commands: mpsc::Receiver<Instant>,
    mut control: watch::Receiver<Control>,
) -> ClientReport {
    let mut rng = XorShift::new(target::now_us() ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut r = ClientReport::default();
    let mut socket = Some(ws);
    let mut storm_open = true;
    loop {
        let reached = |r: &ClientReport, c: &Control| {
            c.final_seq
                .is_some_and(|f| r.seen.highest.max(from_seq) >= f)
        };
        {
            let c = control.borrow();
            if c.stop || (!storm_open && reached(&r, &c)) {
                break;
            }
        }
        let Some(ws) = socket.as_mut() else {
            // Closed by the server: resume (not counted as a storm reconnect).
            match resume(&endpoint, from_seq, &mut r, &mut rng, &mut control).await {
                Some(ws) => {
                    socket = Some(ws);
                    continue;
                }
                None => break,
            }
        };
        tokio::select! {
            frame = ws.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    if let Incoming::Delivery { seq: Some(seq), .. } = Kind::Palaver.classify(&text) {
                        r.seen.record(seq, Instant::now());
                    }
                }
                Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                    r.unexpected_closes += 1;
                    socket = None;
                }
                Some(Ok(_)) => {}
            },
            command = commands.recv(), if storm_open => match command {
                Some(storm_end) => {
                    let closed = Instant::now();
                    if let Some(mut old) = socket.take() {
                        let _ = tokio::time::timeout(Duration::from_secs(1), old.close(None)).await;
                    }
                    match resume(&endpoint, from_seq, &mut r, &mut rng, &mut control).await {
                        Some(ws) => {
                            let now = Instant::now();
                            r.latency.record(now.duration_since(closed).as_micros().max(1) as u64);
                            r.ok += 1;
                            if now <= storm_end {
                                r.ok_in_storm += 1;
                            }
                            socket = Some(ws);
                        }
                        None => break,
                    }
                }
                None => storm_open = false,
            },
            changed = control.changed() => {
                if changed.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(mut ws) = socket {
        let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(None)).await;
    }
    r
}

/// Connects again with `since=<room>:<highest seq seen>`, retrying every 100–200 ms
/// until it works (`None`: told to stop).
async fn resume(
    endpoint: &Endpoint,
    from_seq: i64,
    r: &mut ClientReport,
    rng: &mut XorShift,
    control: &mut watch::Receiver<Control>,
) -> Option<target::Ws> {
    let url = endpoint.url(r.seen.highest.max(from_seq));
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
                if let Ok(Ok(ws)) = result {
                    return Some(ws);
                }
                r.errors += 1;
            }
            _ = control.wait_for(|c| c.stop) => return None,
        }
        let wait = Duration::from_millis(rng.between(100, 200) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = control.wait_for(|c| c.stop) => return None,
        }
    }
}
