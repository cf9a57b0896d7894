//! The load engine every messaging scenario shares: open the plan's connections (over
//! several source addresses and, when one process may not hold them all, several
//! processes), start every sender at the same wall-clock instant, measure deliveries of
//! the messages sent inside the window, and merge what each shard saw.
//!
//! Timeline: `start` → warm-up (sends, not measured) → window (measured: only messages
//! whose send time falls in it count) → drain (no sends; late deliveries of the window's
//! messages still arrive and count, with their latency).
//!
//! Open-loop senders are staggered: of `P` senders at one period each, sender `k` first
//! sends `k/P` of a period after `start` ([`phase`]), so the room gets evenly spaced
//! messages rather than `P` at once, and a low total rate still puts messages in a short
//! window.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::stats::Latency;
use crate::target::{self, Incoming, Kind, Member};

/// How a sending connection paces itself.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub enum Pace {
    /// Open loop: this many messages per second, whatever the server does.
    Rate(f64),
    /// Closed loop: keep this many sends unacknowledged, sending as acks return.
    Window(usize),
}

/// One connection of a plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Conn {
    /// Index into [`Plan::members`].
    pub member: usize,
    /// Index into [`Plan::rooms`].
    pub room: usize,
    /// Whether it sends.
    pub sends: bool,
    /// Index into [`Plan::addrs`]: the node it connects to (see [`spread_over_nodes`]).
    #[serde(default)]
    pub node: usize,
}

/// Spreads `conns` over `nodes` nodes round-robin, the senders and the other connections
/// each on their own count: the `k`-th sender goes to node `k % nodes`, and so does the
/// `k`-th connection that does not send. When every connection sends (`rooms`), that is
/// connection `i` on node `i % nodes`; when a few senders sit at regular places in the
/// list (`fanout`: every 100th of 1,000), they still land on every node rather than all
/// on one, so each node both commits messages and fans them out.
pub fn spread_over_nodes(conns: &mut [Conn], nodes: usize) {
    let nodes = nodes.max(1);
    let (mut senders, mut others) = (0, 0);
    for c in conns {
        let rank = if c.sends { &mut senders } else { &mut others };
        c.node = *rank % nodes;
        *rank += 1;
    }
}

/// Everything a shard needs to run its part of a load.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Plan {
    pub kind: Kind,
    /// Each node's `127.0.0.1:<port>` (one for a single server).
    pub addrs: Vec<String>,
    pub members: Vec<Member>,
    /// Room ids (Palaver) or names (peers).
    pub rooms: Vec<String>,
    pub conns: Vec<Conn>,
    pub pace: Pace,
    /// Bytes of padding after each payload's header.
    pub padding: usize,
    pub warmup_ms: u64,
    pub window_ms: u64,
    pub drain_ms: u64,
    /// Connections per source address (127.0.0.1, .2, …).
    pub per_address: usize,
}

/// What a shard measured.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub connected: u64,
    pub connect_failures: u64,
    /// Messages sent with a send time in the window.
    pub sent: u64,
    /// Of those, acknowledged (ok) before the end of the drain.
    pub acked: u64,
    /// Refused by the server (ack with ok = false).
    pub refused: u64,
    /// Deliveries expected for the window's messages (sent × connections in the room).
    pub expected: u64,
    /// Deliveries of the window's messages that arrived.
    pub delivered: u64,
    /// Connections that ended before the drain did (closed by the server, errors).
    pub dropped: u64,
    /// Delivery latency of the window's messages, as `(µs, count)` pairs.
    pub latency: Vec<(u64, u64)>,
    /// Send-to-acknowledgement latency, as `(µs, count)` pairs.
    pub ack_latency: Vec<(u64, u64)>,
    /// CPU seconds the generator's processes (this one and its workers) used from the
    /// start of the load to the end of the drain.
    #[serde(default)]
    pub generator_cpu_seconds: f64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.connected += other.connected;
        self.connect_failures += other.connect_failures;
        self.sent += other.sent;
        self.acked += other.acked;
        self.refused += other.refused;
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.dropped += other.dropped;
        self.generator_cpu_seconds += other.generator_cpu_seconds;
        let mut l = Latency::from_pairs(&self.latency);
        l.merge(&Latency::from_pairs(&other.latency));
        self.latency = l.to_pairs();
        let mut a = Latency::from_pairs(&self.ack_latency);
        a.merge(&Latency::from_pairs(&other.ack_latency));
        self.ack_latency = a.to_pairs();
    }
}

/// The most connections one process opens: its open-file limit less a margin.
pub fn per_process_limit() -> usize {
    (crate::proc::open_files_limit() as usize)
        .saturating_sub(256)
        .max(64)
}

/// Runs `plan` with its connections split over as many processes as the open-file limit
/// requires (this one and `palaver-bench worker` children), and merges their tallies.
/// `on_start` is called once every connection is open, just before the load starts
/// (the caller starts its server measurements there).
pub async fn run(plan: &Plan, on_start: impl FnOnce()) -> anyhow::Result<Tally> {
    let shards = plan.conns.len().div_ceil(per_process_limit()).max(1);
    let plan = Arc::new(plan.clone());
    let mut children = Vec::new();
    let plan_file = if shards > 1 {
        let path = std::env::temp_dir().join(format!(
            "palaver-bench-plan-{}-{}.json",
            std::process::id(),
            target::now_us()
        ));
        std::fs::write(&path, serde_json::to_vec(&*plan)?)?;
        Some(path)
    } else {
        None
    };
    for shard in 1..shards {
        let path = plan_file.as_ref().context("plan file")?;
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["worker", "--plan"])
            .arg(path)
            .args([
                "--shard",
                &shard.to_string(),
                "--shards",
                &shards.to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting a worker process")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        children.push((child, tokio::io::BufReader::new(stdout).lines(), stdin));
    }
    // Shard 0 here.
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<u64>();
    let local = tokio::spawn(run_shard(plan.clone(), 0, shards, connected_tx, async {
        go_rx.await.unwrap_or_else(|_| target::now_us())
    }));
    connected_rx.await.context("shard 0 failed to connect")?;
    for (_, lines, _) in &mut children {
        let line = lines.next_line().await?.context("a worker exited")?;
        anyhow::ensure!(line == "connected", "unexpected worker line {line:?}");
    }
    // Everyone starts at the same wall-clock instant.
    let start = target::now_us() + 200_000;
    for (_, _, stdin) in &mut children {
        stdin.write_all(format!("{start}\n").as_bytes()).await?;
        stdin.flush().await?;
    }
    let _ = go_tx.send(start);
    tokio::time::sleep(Duration::from_micros(
        start.saturating_sub(target::now_us()),
    ))
    .await;
    on_start();
    let mut tally = local.await??;
    for (mut child, mut lines, _) in children {
        let line = lines.next_line().await?.context("a worker exited early")?;
        tally.add(serde_json::from_str(&line).context("a worker's tally")?);
        let _ = child.wait().await;
    }
    if let Some(path) = plan_file {
        let _ = std::fs::remove_file(path);
    }
    Ok(tally)
}

/// `palaver-bench worker`: runs one shard of the plan in `plan_file`, reporting on stdout
/// (`connected`, then the tally as one JSON line) and starting at the instant read from
/// stdin.
pub async fn worker(
    plan_file: &std::path::Path,
    shard: usize,
    shards: usize,
) -> anyhow::Result<()> {
    let plan: Plan = serde_json::from_slice(&std::fs::read(plan_file)?)?;
    let (connected_tx, connected_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(run_shard(
        Arc::new(plan),
        shard,
        shards,
        connected_tx,
        async {
            let mut line = String::new();
            let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
            let _ = stdin.read_line(&mut line).await;
            line.trim().parse().unwrap_or_else(|_| target::now_us())
        },
    ));
    if connected_rx.await.is_ok() {
        println!("connected");
    }
    let tally = task.await??;
    println!("{}", serde_json::to_string(&tally)?);
    Ok(())
}

/// Opens this shard's connections (every `shards`-th, from `shard`), reports them
/// connected, waits for the start instant from `go`, and runs them.
async fn run_shard(
    plan: Arc<Plan>,
    shard: usize,
    shards: usize,
    connected: tokio::sync::oneshot::Sender<()>,
    go: impl std::future::Future<Output = u64>,
) -> anyhow::Result<Tally> {
    let mine: Vec<usize> = (shard..plan.conns.len()).step_by(shards).collect();
    let room_sizes = {
        let mut sizes = vec![0u64; plan.rooms.len()];
        for c in &plan.conns {
            sizes[c.room] += 1;
        }
        Arc::new(sizes)
    };
    // Connect, 64 at a time, keeping the open ones alive meanwhile.
    let mut sockets = Vec::with_capacity(mine.len());
    let mut failures = 0;
    for chunk in mine.chunks(64) {
        let opened = futures_util::future::join_all(chunk.iter().map(|&i| {
            let plan = plan.clone();
            async move {
                let c = &plan.conns[i];
                let (member, room) = (&plan.members[c.member], &plan.rooms[c.room]);
                let url = plan.kind.ws_url(&plan.addrs[c.node], member, room, None);
                let hello = plan.kind.sio_connect(member, room, None);
                let ip = target::local_ip(i, plan.per_address);
                (
                    i,
                    target::connect(plan.kind, &url, hello.as_deref(), ip).await,
                )
            }
        }))
        .await;
        for (i, ws) in opened {
            match ws {
                Ok(ws) => sockets.push((i, ws, tokio::time::Instant::now())),
                Err(e) => {
                    failures += 1;
                    if failures <= 3 {
                        eprintln!("connection {i} failed: {e:#}");
                    }
                }
            }
        }
        keep_alive(plan.kind, &mut sockets).await;
    }
    let _ = connected.send(());
    let mut go = std::pin::pin!(go);
    let start = loop {
        tokio::select! {
            start = &mut go => break start,
            () = tokio::time::sleep(Duration::from_secs(1)), if plan.kind.keep_alive().is_some() => {
                keep_alive(plan.kind, &mut sockets).await;
            }
        }
    };
    let cpu_start = crate::proc::cpu_seconds(std::process::id());
    let senders = plan.conns.iter().filter(|c| c.sends).count();
    let ranks: Vec<usize> = plan
        .conns
        .iter()
        .scan(0usize, |k, c| {
            let rank = *k;
            *k += usize::from(c.sends);
            Some(rank)
        })
        .collect();
    let tasks: Vec<_> = sockets
        .into_iter()
        .map(|(i, ws, last_sent)| {
            let offset = phase(ranks[i], senders);
            tokio::spawn(drive(
                plan.clone(),
                room_sizes.clone(),
                i,
                ws,
                last_sent,
                start,
                offset,
            ))
        })
        .collect();
    let mut tally = Tally {
        connect_failures: failures,
        ..Tally::default()
    };
    let mut latency = Latency::default();
    let mut ack_latency = Latency::default();
    for t in tasks {
        let r = t.await?;
        tally.connected += 1;
        tally.sent += r.sent;
        tally.acked += r.acked;
        tally.refused += r.refused;
        tally.expected += r.expected;
        tally.delivered += r.delivered;
        tally.dropped += u64::from(r.dropped);
        latency.merge(&r.latency);
        ack_latency.merge(&r.ack_latency);
    }
    tally.latency = latency.to_pairs();
    tally.ack_latency = ack_latency.to_pairs();
    if let (Some(start), Some(end)) = (cpu_start, crate::proc::cpu_seconds(std::process::id())) {
        tally.generator_cpu_seconds = end - start;
    }
    Ok(tally)
}

/// Sends the target's keep-alive ([`Kind::keep_alive`]) on each of `sockets` (index,
/// socket, when it last sent) that has sent nothing for the target's interval: before
/// the load starts, while the rest of the connections open, nobody reads or writes them
/// otherwise. A failed send is left for [`drive`] to find.
async fn keep_alive(kind: Kind, sockets: &mut [(usize, target::Ws, tokio::time::Instant)]) {
    let Some((every, ping)) = kind.keep_alive() else {
        return;
    };
    let now = tokio::time::Instant::now();
    for (_, ws, last_sent) in sockets.iter_mut() {
        if now >= *last_sent + every {
            let _ = ws.send(WsMessage::text(ping)).await;
            *last_sent = now;
        }
    }
}

/// What one connection saw.
#[derive(Default)]
struct ConnTally {
    sent: u64,
    acked: u64,
    refused: u64,
    expected: u64,
    delivered: u64,
    dropped: bool,
    latency: Latency,
    ack_latency: Latency,
}

/// The fraction of a period by which sender number `rank` of `senders` is delayed:
/// `rank / senders`, in `[0, 1)`.
pub fn phase(rank: usize, senders: usize) -> f64 {
    if senders == 0 {
        0.0
    } else {
        (rank % senders) as f64 / senders as f64
    }
}

/// Runs one connection from `start` to the end of the drain; an open-loop sender first
/// sends `offset` of a period after `start`. `last_sent` is when the connection last
/// sent anything: on a target that needs it, a keep-alive goes out after its interval
/// without sending ([`Kind::keep_alive`]).
async fn drive(
    plan: Arc<Plan>,
    room_sizes: Arc<Vec<u64>>,
    i: usize,
    mut ws: target::Ws,
    mut last_sent: tokio::time::Instant,
    start: u64,
    offset: f64,
) -> ConnTally {
    let c = &plan.conns[i];
    let room = &plan.rooms[c.room];
    let window_start = start + plan.warmup_ms * 1000;
    let window_end = window_start + plan.window_ms * 1000;
    let drain_end = window_end + plan.drain_ms * 1000;
    let in_window = |t: u64| (window_start..window_end).contains(&t);
    let mut t = ConnTally::default();
    // Send times of unacknowledged sends, by request number.
    let mut pending: HashMap<u64, u64> = HashMap::new();
    let mut n: u64 = 0;
    let period = match plan.pace {
        Pace::Rate(r) if r > 0.0 => Duration::from_secs_f64(1.0 / r),
        _ => Duration::from_secs(3600),
    };
    let delay = Duration::from_micros(start.saturating_sub(target::now_us()))
        + period.mul_f64(if matches!(plan.pace, Pace::Rate(_)) {
            offset
        } else {
            0.0
        });
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + delay, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let sending = |now: u64| c.sends && now >= start && now < window_end;
    let window = match plan.pace {
        Pace::Window(w) => w,
        Pace::Rate(_) => 0,
    };
    let drain_deadline = tokio::time::Instant::now()
        + Duration::from_micros(drain_end.saturating_sub(target::now_us()));
    let keep_alive = plan.kind.keep_alive();
    let (keep_alive_every, ping) = keep_alive.unwrap_or((Duration::from_secs(3600), ""));
    let mut started = false;
    let mut done_sending = false;
    loop {
        // Closed loop: top up the window.
        if window > 0 {
            let now = target::now_us();
            if !started && now >= start {
                started = true;
            }
            while started && sending(target::now_us()) && pending.len() < window {
                if send_one(
                    &plan,
                    &mut ws,
                    room,
                    i,
                    &mut n,
                    &mut pending,
                    &mut t,
                    in_window,
                )
                .await
                .is_err()
                {
                    t.dropped = true;
                    return finish(t, &room_sizes, c.room);
                }
                last_sent = tokio::time::Instant::now();
            }
        }
        tokio::select! {
            frame = ws.next() => {
                let now = target::now_us();
                let text = match frame {
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => {
                        t.dropped = now < drain_end;
                        return finish(t, &room_sizes, c.room);
                    }
                    Some(Ok(_)) => continue,
                };
                for message in plan.kind.records(&text) {
                    match plan.kind.classify(message) {
                        Incoming::Delivery { conn, n: their_n, sent_us, .. } => {
                            if in_window(sent_us) {
                                t.delivered += 1;
                                t.latency.record(now.saturating_sub(sent_us));
                            }
                            if !plan.kind.acks() && conn == i {
                                if let Some(sent) = pending.remove(&their_n) {
                                    if in_window(sent) {
                                        t.acked += 1;
                                        t.ack_latency.record(now.saturating_sub(sent));
                                    }
                                }
                            }
                        }
                        Incoming::Ack { n: acked, ok } => {
                            if let Some(sent) = pending.remove(&acked) {
                                if in_window(sent) {
                                    if ok {
                                        t.acked += 1;
                                        t.ack_latency.record(now.saturating_sub(sent));
                                    } else {
                                        t.refused += 1;
                                    }
                                }
                            }
                        }
                        Incoming::Reply(r) => {
                            let _ = ws.send(WsMessage::text(r)).await;
                            last_sent = tokio::time::Instant::now();
                        }
                        Incoming::Other => {}
                    }
                }
            }
            _ = tick.tick(), if window == 0 && c.sends && !done_sending => {
                // The first tick is at `start` plus the sender's phase.
                if target::now_us() >= window_end {
                    done_sending = true;
                    continue;
                }
                if send_one(&plan, &mut ws, room, i, &mut n, &mut pending, &mut t, in_window)
                    .await
                    .is_err()
                {
                    t.dropped = true;
                    return finish(t, &room_sizes, c.room);
                }
                last_sent = tokio::time::Instant::now();
            }
            () = tokio::time::sleep_until(last_sent + keep_alive_every), if keep_alive.is_some() => {
                if ws.send(WsMessage::text(ping)).await.is_err() {
                    t.dropped = target::now_us() < drain_end;
                    return finish(t, &room_sizes, c.room);
                }
                last_sent = tokio::time::Instant::now();
            }
            _ = tokio::time::sleep(Duration::from_millis(20)), if window > 0 => {}
            _ = tokio::time::sleep_until(drain_deadline) => {
                return finish(t, &room_sizes, c.room);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_one(
    plan: &Plan,
    ws: &mut target::Ws,
    room: &str,
    i: usize,
    n: &mut u64,
    pending: &mut HashMap<u64, u64>,
    t: &mut ConnTally,
    in_window: impl Fn(u64) -> bool,
) -> anyhow::Result<()> {
    *n += 1;
    let now = target::now_us();
    let content = target::payload(i, *n, now, plan.padding);
    ws.send(WsMessage::text(plan.kind.send_frame(room, *n, &content)))
        .await?;
    pending.insert(*n, now);
    if in_window(now) {
        t.sent += 1;
    }
    Ok(())
}

fn finish(mut t: ConnTally, room_sizes: &[u64], room: usize) -> ConnTally {
    t.expected = t.sent * room_sizes[room];
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_are_spread_evenly_over_one_period() {
        let phases: Vec<f64> = (0..4).map(|k| phase(k, 4)).collect();
        assert_eq!(phases, [0.0, 0.25, 0.5, 0.75]);
        assert_eq!(phase(0, 1), 0.0);
        assert_eq!(phase(0, 0), 0.0);
    }

    fn conns(sends: impl IntoIterator<Item = bool>) -> Vec<Conn> {
        sends
            .into_iter()
            .map(|sends| Conn {
                member: 0,
                room: 0,
                sends,
                node: 9,
            })
            .collect()
    }

    #[test]
    fn when_everyone_sends_connection_i_goes_to_node_i_mod_n() {
        let mut c = conns([true; 7]);
        spread_over_nodes(&mut c, 3);
        assert_eq!(
            c.iter().map(|c| c.node).collect::<Vec<_>>(),
            [0, 1, 2, 0, 1, 2, 0]
        );
        spread_over_nodes(&mut c, 1);
        assert!(c.iter().all(|c| c.node == 0));
        spread_over_nodes(&mut c, 0);
        assert!(c.iter().all(|c| c.node == 0), "0 nodes is taken as 1");
    }

    #[test]
    fn senders_and_receivers_are_each_spread_evenly() {
        // fanout's shape: 1,000 members, every 100th one sends.
        let mut c = conns((0..1000).map(|m| m % 100 == 0));
        spread_over_nodes(&mut c, 2);
        let count = |sends: bool, node: usize| {
            c.iter()
                .filter(|c| c.sends == sends && c.node == node)
                .count()
        };
        assert_eq!((count(true, 0), count(true, 1)), (5, 5));
        assert_eq!((count(false, 0), count(false, 1)), (495, 495));
    }

    #[test]
    fn a_plan_without_nodes_reads_as_node_0() {
        let c: Conn = serde_json::from_str(r#"{"member":1,"room":2,"sends":true}"#).unwrap();
        assert_eq!(c.node, 0);
    }
}
