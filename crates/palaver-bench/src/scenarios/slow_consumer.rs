//! `slow-consumer` (Palaver only): what a client that stops reading costs the others.
//!
//! One room: `--senders` members send closed loop over their WebSockets (each sends its
//! next message when the last one is acknowledged, so the load is what the machine and
//! the server sustain), `--receivers` members read everything. After a warm-up and a
//! baseline of `--baseline-secs` with normal receivers only, one more member connects and
//! never reads; the load goes on until the server drops it (4008, once its outbound queue
//! is full; at most `--slow-max-secs`) and `--after-secs` more. Reported per phase
//! (alone, with the never-reading client connected, after its disconnect): messages per
//! second each receiver got and the delivery latency (send to receipt); and when the
//! server flagged and dropped the never-reading client, how much it had buffered, and the
//! server's resident memory. The numbers are the server's defaults (1024 frames / 4 MiB
//! per connection queue).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::proc;
use crate::stats::{Latency, LatencySummary};
use crate::target::{self, Incoming, Kind, Server};

#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct SlowConsumerArgs {
    /// Members that send, closed loop (one message in flight each).
    #[arg(long, default_value_t = 8)]
    pub senders: usize,
    /// Members that read everything (besides the senders, which read too).
    #[arg(long, default_value_t = 3)]
    pub receivers: usize,
    /// Bytes of padding in each message (about 4 KB frames fill a stalled client's
    /// buffers in a few seconds).
    #[arg(long, default_value_t = 3800)]
    pub padding: usize,
    /// Seconds of load before the baseline (not measured).
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Seconds of the baseline: normal receivers only.
    #[arg(long, default_value_t = 5)]
    pub baseline_secs: u64,
    /// The most seconds to wait for the server to drop the never-reading client.
    #[arg(long, default_value_t = 60)]
    pub slow_max_secs: u64,
    /// Seconds of load after the server dropped it.
    #[arg(long, default_value_t = 5)]
    pub after_secs: u64,
}

/// Deliveries of the messages sent in one phase.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Phase {
    /// Seconds the phase lasted.
    pub secs: f64,
    /// Messages acknowledged per second, all senders together.
    pub acked_per_sec: f64,
    /// Messages per second each normal receiver got (deliveries / receivers / secs).
    pub delivered_per_sec: f64,
    /// Deliveries to all normal receivers, per second.
    pub deliveries_per_sec: f64,
    /// Send to receipt, normal receivers only.
    pub latency: LatencySummary,
}

/// What happened to the client that never read.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SlowClient {
    /// Whether the server dropped its connection (`palaver_connections` fell back).
    pub disconnected: bool,
    /// Seconds from its connect to `palaver_slow_consumer_disconnects_total` counting it.
    pub flagged_after_secs: Option<f64>,
    /// Seconds from its connect to the server dropping the connection.
    pub dropped_after_secs: Option<f64>,
    /// Messages acknowledged while it was connected.
    pub messages_while_connected: u64,
    /// What it read when finally read: frames and MiB the kernel had buffered, and how
    /// the connection ended (`close 4008`, `tcp close`, `still open`).
    pub frames_read_late: u64,
    pub mib_read_late: f64,
    pub ending: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct SlowConsumerResult {
    pub without_slow_client: Phase,
    pub with_slow_client: Phase,
    pub after_disconnect: Phase,
    pub slow_client: SlowClient,
    /// Deliveries expected by the normal receivers (acknowledged messages × receivers)
    /// less those that arrived by the end of the drain.
    pub lost: u64,
    pub server_rss_baseline_mib: f64,
    pub server_peak_rss_mib: f64,
    pub server_rss_end_mib: f64,
}

/// One delivery to a normal receiver: send time and latency, µs.
type Sample = (u64, u64);

pub async fn run(server: &Server, args: &SlowConsumerArgs) -> anyhow::Result<SlowConsumerResult> {
    anyhow::ensure!(
        server.kind == Kind::Palaver,
        "slow-consumer runs on palaver only"
    );
    anyhow::ensure!(
        args.senders > 0 && args.receivers > 0,
        "need senders and receivers"
    );
    let (members, rooms) =
        crate::setup::rooms(server, 1, args.senders + args.receivers + 1).await?;
    let room = rooms[0].clone();
    let url = |m: usize| Kind::Palaver.ws_url(&server.addr, &members[m], &room, None);
    let ip = std::net::Ipv4Addr::LOCALHOST;

    // Receivers, then senders.
    let stop_receiving = Arc::new(AtomicBool::new(false));
    let mut receivers = Vec::new();
    for r in 0..args.receivers {
        let ws = target::connect(Kind::Palaver, &url(args.senders + r), None, ip).await?;
        receivers.push(tokio::spawn(receive(ws, stop_receiving.clone())));
    }
    let stop_sending = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for s in 0..args.senders {
        let ws = target::connect(Kind::Palaver, &url(s), None, ip).await?;
        senders.push(tokio::spawn(send(
            ws,
            room.clone(),
            s,
            args.padding,
            acked.clone(),
            stop_sending.clone(),
        )));
    }

    let pid = server.pid;
    let metrics = |what| metrics(server.addr.clone(), what);
    let count = || acked.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(args.warmup_secs)).await;
    let base_start = (target::now_us(), count());
    tokio::time::sleep(Duration::from_secs(args.baseline_secs)).await;
    let base_end = (target::now_us(), count());
    let rss_baseline = proc::rss_kib(pid).unwrap_or(0);
    let before = metrics("before the slow client").await?;
    let peak = proc::PeakRss::start(pid);

    // The never-reading client: the handshake, then nothing is ever polled (not even
    // `ready`) until the load is over.
    let (mut slow, _) = tokio_tungstenite::connect_async(url(args.senders + args.receivers))
        .await
        .context("the slow client's connect")?;
    let slow_start = (target::now_us(), count());
    let slow_clock = Instant::now();
    let mut seen_connected = false;
    let mut flagged = None;
    let mut dropped = None;
    while slow_clock.elapsed() < Duration::from_secs(args.slow_max_secs) {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = metrics("while the slow client is connected").await?;
        if flagged.is_none() && now.slow_consumers > before.slow_consumers {
            flagged = Some(slow_clock.elapsed());
        }
        if now.connections > before.connections {
            seen_connected = true;
        } else if seen_connected {
            dropped = Some(slow_clock.elapsed());
            break;
        }
    }
    let slow_end = (target::now_us(), count());
    tokio::time::sleep(Duration::from_secs(args.after_secs)).await;
    let after_end = (target::now_us(), count());
    stop_sending.store(true, Ordering::SeqCst);
    let mut sent_total = 0;
    for s in senders {
        sent_total += s.await??;
    }
    let rss_end = proc::rss_kib(pid).unwrap_or(0);
    let peak_kib = peak.peak_kib().max(rss_end);
    drop(peak);
    // Drain: the receivers get what is still on its way.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop_receiving.store(true, Ordering::SeqCst);
    let mut samples: Vec<Sample> = Vec::new();
    for r in receivers {
        samples.extend(r.await??);
    }

    // Read the never-reading client: what the kernel buffered, then how it ended.
    let (mut frames, mut bytes) = (0u64, 0usize);
    let ending = loop {
        match tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
            Err(_) => break "still open".to_owned(),
            Ok(None) | Ok(Some(Err(_))) => break "tcp close".to_owned(),
            Ok(Some(Ok(WsMessage::Close(frame)))) => {
                break frame.map_or("close".to_owned(), |f| {
                    format!("close {}", u16::from(f.code))
                })
            }
            Ok(Some(Ok(WsMessage::Text(t)))) => {
                frames += 1;
                bytes += t.len();
            }
            Ok(Some(Ok(_))) => {}
        }
    };

    let phase = |(from_us, from_n): (u64, u64), (to_us, to_n): (u64, u64)| {
        let secs = to_us.saturating_sub(from_us) as f64 / 1e6;
        let mut latency = Latency::default();
        let mut n = 0u64;
        for &(sent, lat) in &samples {
            if (from_us..to_us).contains(&sent) {
                latency.record(lat);
                n += 1;
            }
        }
        let per_sec = |x: f64| if secs > 0.0 { x / secs } else { 0.0 };
        Phase {
            secs,
            acked_per_sec: per_sec(to_n.saturating_sub(from_n) as f64),
            delivered_per_sec: per_sec(n as f64 / args.receivers as f64),
            deliveries_per_sec: per_sec(n as f64),
            latency: latency.summary(),
        }
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    Ok(SlowConsumerResult {
        without_slow_client: phase(base_start, base_end),
        with_slow_client: phase(slow_start, slow_end),
        after_disconnect: phase(slow_end, after_end),
        slow_client: SlowClient {
            disconnected: dropped.is_some(),
            flagged_after_secs: flagged.map(|d| d.as_secs_f64()),
            dropped_after_secs: dropped.map(|d| d.as_secs_f64()),
            messages_while_connected: slow_end.1 - slow_start.1,
            frames_read_late: frames,
            mib_read_late: bytes as f64 / (1024.0 * 1024.0),
            ending,
        },
        lost: (sent_total * args.receivers as u64).saturating_sub(samples.len() as u64),
        server_rss_baseline_mib: mib(rss_baseline),
        server_peak_rss_mib: mib(peak_kib),
        server_rss_end_mib: mib(rss_end),
    })
}

/// Sends closed loop on `ws` (request ids 1, 2, …; the next when the last is
/// acknowledged) until `stop`, counting acknowledgements in `acked`, and reads (and
/// discards) the room's messages meanwhile. Returns how many were acknowledged.
async fn send(
    mut ws: target::Ws,
    room: String,
    conn: usize,
    padding: usize,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let content = target::payload(conn, n, target::now_us(), padding);
        ws.send(WsMessage::text(
            Kind::Palaver.send_frame(&room, n, &content),
        ))
        .await?;
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
                .await
                .context("no acknowledgement in 30 s")?;
            let text = match frame {
                Some(Ok(WsMessage::Text(text))) => text,
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.into()),
                None => bail!("a sender's connection closed"),
            };
            if let Incoming::Ack { n: id, ok } = Kind::Palaver.classify(&text) {
                if id != n {
                    continue;
                }
                if !ok {
                    // Per-user send limits refuse a bench's pace: lift them in the
                    // bench's palaver.toml (`target::PALAVER_CONFIG`).
                    bail!("the server refused a send: {text}");
                }
                acked.fetch_add(1, Ordering::SeqCst);
                break;
            }
        }
    }
    // Every send was acknowledged before the next one (or the stop).
    Ok(n)
}

/// Reads `ws` until `stop`, returning each bench message's send time and latency (µs).
async fn receive(mut ws: target::Ws, stop: Arc<AtomicBool>) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    while !stop.load(Ordering::SeqCst) {
        let frame = match tokio::time::timeout(Duration::from_millis(100), ws.next()).await {
            Err(_) => continue,
            Ok(frame) => frame,
        };
        let now = target::now_us();
        match frame {
            Some(Ok(WsMessage::Text(text))) => {
                if let Incoming::Delivery { sent_us, .. } = Kind::Palaver.classify(&text) {
                    samples.push((sent_us, now.saturating_sub(sent_us)));
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => bail!("a receiver's connection failed: {e}"),
            None => bail!("a receiver's connection closed"),
        }
    }
    Ok(samples)
}

/// The server's `palaver_connections` and `palaver_slow_consumer_disconnects_total`.
struct Metrics {
    connections: f64,
    slow_consumers: f64,
}

/// Reads `/metrics` over a plain HTTP/1.1 request.
async fn metrics(addr: String, what: &str) -> anyhow::Result<Metrics> {
    let body = async {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await?;
        tcp.write_all(
            format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let mut text = String::new();
        tcp.read_to_string(&mut text).await?;
        anyhow::Ok(text)
    };
    let text = tokio::time::timeout(Duration::from_secs(30), body)
        .await
        .with_context(|| format!("GET /metrics {what}: no answer in 30 s"))??;
    let series = |name: &str| {
        text.lines()
            .find_map(|line| {
                let (series, value) = line.split_once(' ')?;
                (series == name).then(|| value.trim().parse().ok())?
            })
            .with_context(|| format!("no {name} in /metrics {what}"))
    };
    Ok(Metrics {
        connections: series("palaver_connections")?,
        slow_consumers: series("palaver_slow_consumer_disconnects_total")?,
    })
}
