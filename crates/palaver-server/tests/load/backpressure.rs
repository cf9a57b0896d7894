//! Backpressure, end to end on the real `palaver` binary: a client that opens a WebSocket
//! and then never reads must be disconnected (4008, slow consumer) once its queue fills,
//! while the clients that do read keep receiving, lose no message, and the server's memory
//! does not grow with the backlog (docs/protocol.md, "Backpressure").
//!
//! The test asserts behaviour only, never speed: the load is driven by volume (closed-loop
//! senders, each sending its next message when the last one is acknowledged, for as many
//! messages as the scenario needs), and the time limits are deadlock guards, generous
//! enough for a loaded 2-core machine. The rates and latencies it prints are diagnostics;
//! `palaver-bench slow-consumer` measures them (BENCHMARKS.md).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use palaver_client::{Client, Socket};
use palaver_protocol::Visibility;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::helpers::{spawn_palaver, unique_name};

/// The most the whole test may take (a deadlock guard: a run takes about 10 s on an idle
/// machine and well under a minute on a loaded one).
const TEST_TIMEOUT: Duration = Duration::from_secs(240);
/// The password of every account made here.
const PASSWORD: &str = "vivid-otter-42";
/// How long one REST call or WebSocket connect may take before the test gives up.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The outbound queue of each connection, in frames (the default is 1024). About 2 MiB
/// of this test's frames, under the default byte bound (4 MiB), so the frame bound is the
/// one that fills.
const QUEUE_FRAMES: usize = 512;
/// The server's `palaver.toml`, the one place this test configures it: per-IP budgets
/// lifted (every client here is 127.0.0.1), per-user limits on sends and sockets off
/// (these senders send far faster than people), and [`QUEUE_FRAMES`].
fn palaver_toml() -> String {
    format!(
        "[rate_limits.requests_per_ip]\nmax = 0\nwindow_secs = 60\n\n\
         [rate_limits.registrations_per_ip]\nmax = 0\nwindow_secs = 3600\n\n\
         [user_limits]\nsockets = 0\nmessages = {{ max = 0, window_secs = 1 }}\n\n\
         [limits]\nws_outbound_queue_frames = {QUEUE_FRAMES}\n"
    )
}
/// Closed-loop senders over REST and over WebSocket (a WebSocket sender also receives,
/// and discards, every message of the room).
const REST_SENDERS: usize = 6;
const WS_SENDERS: usize = 2;
/// Normal receivers, which read everything.
const RECEIVERS: usize = 3;
/// Characters of padding in each message, so the never-reading client's backlog grows in
/// bytes at a realistic pace (about 4.2 KB per `message.created` frame).
const PADDING: usize = 3800;
/// Messages acknowledged before the never-reading client connects: the first
/// [`WARM_UP_MESSAGES`] warm up connections and caches, the rest are the baseline (memory,
/// and the printed rates and latencies).
const WARM_UP_MESSAGES: usize = 100;
const BASELINE_MESSAGES: usize = 500;
/// Messages acknowledged after the server dropped the never-reading client, before the
/// load stops: the others must go on receiving after the disconnect too.
const AFTER_DISCONNECT_MESSAGES: usize = 300;
/// Deadlock guards on the phases. Before the server's queue for the never-reading client
/// can fill, the kernel's socket buffers absorb a few megabytes (about 4 MiB on loopback
/// here, so some 1,500 messages of this test in all), which takes a few seconds.
const BASELINE_MAX: Duration = Duration::from_secs(60);
const SLOW_PHASE_MAX: Duration = Duration::from_secs(90);
const AFTER_DISCONNECT_MAX: Duration = Duration::from_secs(60);
/// How often the server's metrics and memory are read.
const PROBE_EVERY: Duration = Duration::from_millis(50);
/// Allowed growth of the server's resident memory over the baseline (the queue holds
/// about 2 MiB; the slack absorbs the allocator and everything else).
const RSS_SLACK_KIB: u64 = 64 * 1024;

/// Awaits `fut`, panicking with `what` if it takes longer than `limit`.
async fn within<F: std::future::Future>(limit: Duration, what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(limit, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {limit:?}: {what}"),
    }
}

/// `palaver serve` on a data directory under `cwd`; killed if still running when dropped.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Server {
    /// Writes [`palaver_toml`] and starts `palaver serve --port 0 --data-dir state` in
    /// `cwd`.
    fn start(cwd: &Path) -> Server {
        std::fs::write(cwd.join("palaver.toml"), palaver_toml()).expect("write palaver.toml");
        let log = cwd.join("palaver.log");
        let (child, url) = spawn_palaver(cwd, &log);
        Server { child, url, log }
    }

    /// The server's resident set size (`VmRSS` in `/proc/<pid>/status`), in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The last lines the server logged (for failure messages).
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What the server says about itself at one moment.
#[derive(Debug, Clone, Copy)]
struct Probe {
    /// Resident memory (`VmRSS`), KiB.
    rss_kib: u64,
    /// `palaver_connections`: open WebSockets.
    connections: f64,
    /// `palaver_slow_consumer_disconnects_total`.
    slow_consumers: f64,
}

/// Reads the server's `/metrics` and memory.
async fn probe(server: &Server, http: &reqwest::Client) -> Probe {
    let text = within(CALL_TIMEOUT, "GET /metrics", async {
        http.get(format!("{}/metrics", server.url))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("/metrics body")
    })
    .await;
    // The value of the unlabelled series `name`.
    let series = |name: &str| -> f64 {
        text.lines()
            .find_map(|line| {
                let (series, value) = line.split_once(' ')?;
                (series == name).then(|| value.trim().parse().ok())?
            })
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    };
    Probe {
        rss_kib: server.rss_kib(),
        connections: series("palaver_connections"),
        slow_consumers: series("palaver_slow_consumer_disconnects_total"),
    }
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

/// Microseconds since `t0`: the clock the senders stamp into each message and the
/// receivers read it against (one process, one monotonic clock).
fn micros(t0: Instant) -> u64 {
    t0.elapsed().as_micros() as u64
}

/// A message's content: its send time first, then padding.
fn content(sent_us: u64, label: &str, padding: &str) -> String {
    format!("t={sent_us} {label} {padding}")
}

/// The send time stamped into a message's content.
fn sent_at(content: &str) -> Option<u64> {
    content.strip_prefix("t=")?.split(' ').next()?.parse().ok()
}

/// One delivery to a normal receiver.
#[derive(Debug, Clone, Copy)]
struct Delivery {
    seq: i64,
    sent_us: u64,
    latency_us: u64,
}

/// What the senders have had acknowledged so far, all together.
#[derive(Default)]
struct Progress {
    /// Acknowledged messages.
    count: AtomicUsize,
    /// The highest acknowledged seq.
    max_seq: AtomicI64,
}

/// Sends messages as `client` (over REST, or over its own WebSocket when `ws`), each as
/// soon as the previous one is acknowledged (closed loop: the load is whatever the
/// machine and the server sustain), until `stop`. Returns the acknowledged seqs.
fn sender(
    client: Client,
    room_id: String,
    label: String,
    ws: bool,
    t0: Instant,
    progress: Arc<Progress>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<i64>> {
    tokio::spawn(async move {
        let padding = "x".repeat(PADDING);
        let mut socket = if ws {
            Some(
                within(CALL_TIMEOUT, "a sender's connect", client.connect())
                    .await
                    .expect("sender connects"),
            )
        } else {
            None
        };
        let mut acked = Vec::new();
        for n in 0.. {
            if stop.load(Ordering::SeqCst) {
                break;
            }
            let text = content(micros(t0), &format!("{label}/{n}"), &padding);
            let cid = format!("{label}-{n}");
            let sent = match &mut socket {
                // The socket's own timeout (10 s) bounds the wait for the reply.
                Some(socket) => socket.send_message(&room_id, &text, Some(&cid)).await,
                None => {
                    within(
                        CALL_TIMEOUT,
                        "a REST send",
                        client.send_message(&room_id, &text, Some(&cid)),
                    )
                    .await
                }
            };
            let message = sent.unwrap_or_else(|e| panic!("{label} send {n} failed: {e}"));
            acked.push(message.seq);
            progress.max_seq.fetch_max(message.seq, Ordering::SeqCst);
            progress.count.fetch_add(1, Ordering::SeqCst);
            if let Some(socket) = &mut socket {
                // Throw away the echoes so they do not pile up in the client.
                while let Ok(Some(_)) = socket.try_next_event(Duration::ZERO).await {}
            }
        }
        acked
    })
}

/// Reads `socket` until it has seen the room's message with seq `target` (set once the
/// senders stopped; `i64::MAX` until then), recording each `message.created` and keeping
/// `high` at the highest seq received. An error (e.g. the server closed the connection)
/// ends it early.
fn receiver(
    mut socket: Socket,
    room_id: String,
    t0: Instant,
    target: Arc<AtomicI64>,
    high: Arc<AtomicI64>,
) -> tokio::task::JoinHandle<(Vec<Delivery>, Option<String>)> {
    tokio::spawn(async move {
        let mut got = Vec::new();
        let mut last = 0;
        while last < target.load(Ordering::SeqCst) {
            let frame = match socket.try_next_event(Duration::from_millis(100)).await {
                Ok(Some(frame)) => frame,
                Ok(None) => continue,
                Err(e) => return (got, Some(e.to_string())),
            };
            let now = micros(t0);
            if frame["type"] != "message.created" || frame["data"]["room_id"] != room_id {
                continue;
            }
            let seq = frame["data"]["seq"].as_i64().expect("a seq");
            let sent_us = frame["data"]["content"]
                .as_str()
                .and_then(sent_at)
                .expect("a send time in the content");
            got.push(Delivery {
                seq,
                sent_us,
                latency_us: now.saturating_sub(sent_us),
            });
            last = last.max(seq);
            high.fetch_max(seq, Ordering::SeqCst);
        }
        (got, None)
    })
}

/// The `p`-quantile (0 < p ≤ 1, nearest rank) of `values`, in milliseconds; `None` if
/// there are none.
fn quantile_ms(values: &mut [u64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1] as f64 / 1000.0)
}

/// How the never-reading client's connection ended, once it was finally read.
#[derive(Debug)]
enum SlowEnding {
    /// A close frame with this code.
    Closed(Option<u16>),
    /// The TCP connection ended without a close frame (EOF or a transport error).
    TcpClosed(String),
    /// Still open when the test gave up reading.
    StillOpen,
}

impl std::fmt::Display for SlowEnding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SlowEnding::Closed(Some(code)) => write!(f, "a close frame with code {code}"),
            SlowEnding::Closed(None) => f.write_str("a close frame without a code"),
            SlowEnding::TcpClosed(how) => write!(f, "the TCP connection closed ({how})"),
            SlowEnding::StillOpen => f.write_str("nothing: the connection was still open"),
        }
    }
}

/// What the test knew at one moment while the never-reading client was still connected:
/// read before a probe that still counted its connection.
#[derive(Debug, Clone)]
struct WhileConnected {
    /// Each receiver's highest received seq.
    receiver_highs: Vec<i64>,
    /// Messages acknowledged so far.
    acked: usize,
    /// Microseconds since `t0`.
    at_us: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_disconnected_without_slowing_others_or_growing_memory() {
    // Dropping the scenario on timeout kills the server (see `Server`'s `Drop`).
    within(TEST_TIMEOUT, "the whole scenario", slow_consumer_scenario()).await;
}

async fn slow_consumer_scenario() {
    let started = Instant::now();
    let cwd = tempfile::tempdir().unwrap();
    let server = Server::start(cwd.path());
    let url = server.url.clone();
    let http = reqwest::Client::builder()
        .timeout(CALL_TIMEOUT)
        .build()
        .unwrap();

    let owner = register(&url, "bp_owner").await;
    let room = within(
        CALL_TIMEOUT,
        "create room",
        owner.create_room("firehose", Visibility::Public, None),
    )
    .await
    .expect("create room");
    let mut members = Vec::new();
    for prefix in ["bp_sender"; REST_SENDERS + WS_SENDERS]
        .into_iter()
        .chain(["bp_reader"; RECEIVERS])
        .chain(["bp_slow"])
    {
        let client = register(&url, prefix).await;
        within(CALL_TIMEOUT, "join room", client.join_room(&room.id))
            .await
            .expect("join room");
        members.push(client);
    }
    let slow = members.pop().unwrap();
    let readers = members.split_off(REST_SENDERS + WS_SENDERS);
    let senders = members;

    // The normal receivers connect first, so they see every message.
    let t0 = Instant::now();
    let target = Arc::new(AtomicI64::new(i64::MAX));
    let highs: Vec<Arc<AtomicI64>> = (0..RECEIVERS).map(|_| Arc::default()).collect();
    let mut receivers = Vec::new();
    for (reader, high) in readers.iter().zip(&highs) {
        let socket = within(CALL_TIMEOUT, "a receiver's connect", reader.connect())
            .await
            .expect("receiver connects");
        receivers.push(receiver(
            socket,
            room.id.clone(),
            t0,
            target.clone(),
            high.clone(),
        ));
    }
    let receiver_highs =
        || -> Vec<i64> { highs.iter().map(|h| h.load(Ordering::SeqCst)).collect() };

    // The load: closed-loop senders until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(Progress::default());
    let load_start = micros(t0);
    let sending: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(i, client)| {
            let ws = i >= REST_SENDERS;
            let label = format!("{}{i}", if ws { "ws" } else { "rest" });
            sender(
                client,
                room.id.clone(),
                label,
                ws,
                t0,
                progress.clone(),
                stop.clone(),
            )
        })
        .collect();
    let acked_count = || progress.count.load(Ordering::SeqCst);

    // Warm-up, then the baseline: normal receivers only.
    let guard = Instant::now() + BASELINE_MAX;
    while acked_count() < WARM_UP_MESSAGES {
        assert!(
            Instant::now() < guard,
            "only {} of {WARM_UP_MESSAGES} warm-up messages were acknowledged in \
             {BASELINE_MAX:?}\nserver log tail:\n{}",
            acked_count(),
            server.log_tail()
        );
        tokio::time::sleep(PROBE_EVERY).await;
    }
    let baseline_start = micros(t0);
    let mut before = probe(&server, &http).await;
    while acked_count() < WARM_UP_MESSAGES + BASELINE_MESSAGES {
        assert!(
            Instant::now() < guard,
            "only {} of {} baseline messages were acknowledged in {BASELINE_MAX:?}\nserver \
             log tail:\n{}",
            acked_count(),
            WARM_UP_MESSAGES + BASELINE_MESSAGES,
            server.log_tail()
        );
        tokio::time::sleep(PROBE_EVERY).await;
        before = probe(&server, &http).await;
    }
    let baseline_end = micros(t0);
    let rss_baseline = before.rss_kib;
    let connections_before = before.connections;

    // The slow phase: a member connects (authenticated; its `ready` and everything after
    // it unread) and is never polled again until the load is over.
    let request = slow.ws_request(None, &[]).expect("a WebSocket request");
    let (mut slow_ws, _) = within(
        CALL_TIMEOUT,
        "the slow client's connect",
        tokio_tungstenite::connect_async(request),
    )
    .await
    .expect("the slow client connects");
    let slow_start = micros(t0);
    let seq_at_slow_connect = progress.max_seq.load(Ordering::SeqCst);
    let since_slow = || Duration::from_micros(micros(t0) - slow_start);
    let mut rss_peak = rss_baseline;
    let mut flagged_after = None;
    // The last moment the server still counted the slow connection (its registration
    // may trail the handshake by a moment, so "gone" needs it seen first).
    let mut last_connected: Option<WhileConnected> = None;
    let mut gone: Option<(Duration, usize)> = None;
    let mut connections_seen = Vec::new();
    loop {
        if let Some((gone_after, acked_then)) = gone {
            if acked_count() >= acked_then + AFTER_DISCONNECT_MESSAGES
                || since_slow() >= gone_after + AFTER_DISCONNECT_MAX
            {
                break;
            }
        } else if since_slow() >= SLOW_PHASE_MAX {
            break;
        }
        tokio::time::sleep(PROBE_EVERY).await;
        // Read before the probe: if the probe still counts the slow connection, these
        // were true while it was connected.
        let snapshot = WhileConnected {
            receiver_highs: receiver_highs(),
            acked: acked_count(),
            at_us: micros(t0),
        };
        let now = probe(&server, &http).await;
        rss_peak = rss_peak.max(now.rss_kib);
        if flagged_after.is_none() && now.slow_consumers > before.slow_consumers {
            flagged_after = Some(since_slow());
        }
        if connections_seen.last() != Some(&now.connections) {
            connections_seen.push(now.connections);
        }
        if gone.is_none() {
            if now.connections > connections_before {
                last_connected = Some(snapshot);
            } else if last_connected.is_some() {
                gone = Some((since_slow(), acked_count()));
            }
        }
    }
    let slow_end = micros(t0);
    stop.store(true, Ordering::SeqCst);
    let mut acked = Vec::new();
    for task in sending {
        acked.extend(
            within(Duration::from_secs(60), "a sender to stop", task)
                .await
                .expect("sender task"),
        );
    }
    let load_end = micros(t0);
    let rss_end = server.rss_kib();
    rss_peak = rss_peak.max(rss_end);

    // Every normal receiver reads up to the last acknowledged message.
    acked.sort_unstable();
    let last_seq = *acked.last().expect("some message was sent");
    target.store(last_seq, Ordering::SeqCst);
    let mut deliveries = Vec::new();
    for task in receivers {
        deliveries.push(
            within(Duration::from_secs(60), "a receiver to catch up", task)
                .await
                .expect("receiver task"),
        );
    }

    // Now read the slow client: whatever the kernel buffered, then how it ended.
    let mut slow_frames = 0usize;
    let mut slow_bytes = 0usize;
    let mut slow_last_seq = None;
    let read_until = tokio::time::Instant::now() + Duration::from_secs(30);
    let slow_ending = loop {
        match tokio::time::timeout_at(read_until, slow_ws.next()).await {
            Err(_) => break SlowEnding::StillOpen,
            Ok(None) => break SlowEnding::TcpClosed("end of stream".into()),
            Ok(Some(Err(e))) => break SlowEnding::TcpClosed(e.to_string()),
            Ok(Some(Ok(WsMessage::Close(frame)))) => {
                break SlowEnding::Closed(frame.map(|f| u16::from(f.code)))
            }
            Ok(Some(Ok(WsMessage::Text(text)))) => {
                slow_frames += 1;
                slow_bytes += text.len();
                let frame: serde_json::Value = serde_json::from_str(&text).expect("a JSON frame");
                if frame["type"] == "message.created" && frame["data"]["room_id"] == room.id {
                    slow_last_seq = frame["data"]["seq"].as_i64().or(slow_last_seq);
                }
            }
            Ok(Some(Ok(_))) => {}
        }
    };
    // The last message the never-reading client got: after it, its socket buffers were
    // full and everything waited in (and then overflowed) its server-side queue.
    let slow_got_up_to = slow_last_seq.unwrap_or(seq_at_slow_connect);

    // Diagnostics: rates and latencies per phase, by send time (printed, not asserted).
    let gone_us = gone.map(|(after, _)| slow_start + after.as_micros() as u64);
    let phase = |from: u64, to: u64| -> String {
        let mut latencies: Vec<u64> = deliveries
            .iter()
            .flat_map(|(got, _)| got)
            .filter(|d| (from..to).contains(&d.sent_us))
            .map(|d| d.latency_us)
            .collect();
        let n = latencies.len() / RECEIVERS;
        let secs = to.saturating_sub(from) as f64 / 1e6;
        let ms = |q: Option<f64>| q.map_or("-".to_owned(), |q| format!("{q:.1}"));
        let p50 = ms(quantile_ms(&mut latencies, 0.50));
        let p99 = ms(quantile_ms(&mut latencies, 0.99));
        format!(
            "{n} msgs in {secs:.1} s = {:.0}/s, p50/p99 {p50}/{p99} ms",
            n as f64 / secs.max(1e-6)
        )
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let secs = |d: Option<Duration>| d.map_or("never".to_owned(), |d| format!("{d:.1?}"));
    eprintln!(
        "backpressure: {} messages acknowledged over {:.1} s ({:.0}/s) | baseline: {} | \
         slow client connected, unread: {} | after its disconnect: {} | slow client \
         (connected after seq {seq_at_slow_connect}) flagged 4008 after {}, dropped after \
         {} (palaver_connections {connections_before} → {connections_seen:?}); read late: \
         {slow_frames} frames ({:.1} MiB) up to seq {slow_got_up_to}, then {slow_ending} | \
         receivers' highest seq at the last look while it was connected: {:?} | server RSS \
         baseline {:.1} MiB, peak {:.1} MiB, end {:.1} MiB | total {:.1?}",
        acked.len(),
        (load_end - load_start) as f64 / 1e6,
        acked.len() as f64 / ((load_end - load_start) as f64 / 1e6),
        phase(baseline_start, baseline_end),
        phase(slow_start, gone_us.unwrap_or(slow_end)),
        gone_us.map_or("-".to_owned(), |g| phase(g, load_end)),
        secs(flagged_after),
        secs(gone.map(|(after, _)| after)),
        slow_bytes as f64 / (1024.0 * 1024.0),
        last_connected.as_ref().map(|s| (
            &s.receiver_highs,
            s.acked,
            Duration::from_micros(s.at_us.saturating_sub(slow_start))
        )),
        mib(rss_baseline),
        mib(rss_peak),
        mib(rss_end),
        started.elapsed()
    );

    // Every check is made and every failure reported together: one failure (say, the
    // disconnect) says more next to the others' numbers.
    let mut failures = Vec::new();
    // No loss: every receiver got exactly the acknowledged messages, once, in order.
    for (i, (got, ended)) in deliveries.iter().enumerate() {
        if let Some(ended) = ended {
            failures.push(format!(
                "receiver {i} was cut off after {} messages: {ended}",
                got.len()
            ));
        }
        let seqs: Vec<i64> = got.iter().map(|d| d.seq).collect();
        if seqs == acked {
            continue;
        }
        let mut sorted = seqs.clone();
        sorted.sort_unstable();
        if sorted == acked {
            let swaps: Vec<(i64, i64)> = seqs
                .windows(2)
                .filter(|w| w[1] < w[0])
                .map(|w| (w[0], w[1]))
                .take(20)
                .collect();
            failures.push(format!(
                "receiver {i} got every message once but out of order: (prev, next) \
                 {swaps:?}"
            ));
            continue;
        }
        let mut counts = HashMap::new();
        for seq in &seqs {
            *counts.entry(*seq).or_insert(0) += 1;
        }
        let lost: Vec<&i64> = acked.iter().filter(|s| !counts.contains_key(s)).collect();
        let repeated: Vec<(&i64, &i32)> = counts.iter().filter(|(_, n)| **n > 1).collect();
        failures.push(format!(
            "receiver {i} got {} messages, {} were acknowledged: {} lost (seqs {:?}), {} \
             repeated ((seq, times) {:?})",
            seqs.len(),
            acked.len(),
            lost.len(),
            &lost[..lost.len().min(20)],
            repeated.len(),
            &repeated[..repeated.len().min(20)]
        ));
    }
    // The slow client was disconnected by the server once its queue filled: its
    // connection dropped, and 4008 (or at least a closed TCP connection) is what it finds
    // when it finally reads.
    match (&last_connected, gone) {
        (None, _) => failures.push(format!(
            "the server never counted the never-reading client's connection \
             (palaver_connections {connections_before} → {connections_seen:?})"
        )),
        (Some(_), None) => failures.push(format!(
            "the server did not drop the never-reading client within {SLOW_PHASE_MAX:?} \
             ({} messages acknowledged since it connected; flagged as a slow consumer after \
             {}; palaver_connections {connections_before} → {connections_seen:?}); when \
             finally read it gave {slow_frames} frames and then {slow_ending}",
            acked_count().saturating_sub(WARM_UP_MESSAGES + BASELINE_MESSAGES),
            secs(flagged_after),
        )),
        (Some(_), Some(_)) => {}
    }
    if !matches!(
        slow_ending,
        SlowEnding::Closed(Some(4008)) | SlowEnding::TcpClosed(_)
    ) {
        failures.push(format!(
            "the slow client's connection ended with {slow_ending}, not 4008 or a TCP \
             close"
        ));
    }
    // The others kept receiving while it was connected and unread: before the server
    // dropped it, every receiver had already received messages past the last one it
    // ever got, i.e. messages sent after its socket buffers had filled (fan-out did not
    // wait for it).
    if let Some(snapshot) = &last_connected {
        for (i, high) in snapshot.receiver_highs.iter().enumerate() {
            if *high <= slow_got_up_to {
                failures.push(format!(
                    "while the never-reading client was still connected (the last look, \
                     {:.1?} after it connected, {} messages acknowledged), receiver {i} \
                     had received only up to seq {high}, not past seq {slow_got_up_to}, \
                     the last message the never-reading client got before its buffers \
                     were full",
                    Duration::from_micros(snapshot.at_us.saturating_sub(slow_start)),
                    snapshot.acked
                ));
            }
        }
    }
    // And they went on receiving after it was dropped (the load ran on for
    // AFTER_DISCONNECT_MESSAGES more acknowledged messages, all delivered: checked above).
    if let Some((_, acked_then)) = gone {
        if acked.len() < acked_then + AFTER_DISCONNECT_MESSAGES {
            failures.push(format!(
                "only {} messages were acknowledged in {AFTER_DISCONNECT_MAX:?} after the \
                 never-reading client was dropped, not {AFTER_DISCONNECT_MESSAGES}",
                acked.len() - acked_then
            ));
        }
    }
    // Nor did the backlog grow the server's memory.
    if rss_peak > rss_baseline + RSS_SLACK_KIB {
        failures.push(format!(
            "server RSS grew from {:.1} MiB to {:.1} MiB (end {:.1} MiB), more than {} MiB",
            mib(rss_baseline),
            mib(rss_peak),
            mib(rss_end),
            RSS_SLACK_KIB / 1024
        ));
    }
    assert!(
        failures.is_empty(),
        "{} check(s) failed:\n- {}\nserver log tail:\n{}",
        failures.len(),
        failures.join("\n- "),
        server.log_tail()
    );
}
