//! The scenarios. Each runs against one started server and returns its numbers; `main`
//! runs it for each target in turn, in the same invocation, so ratios hold on a noisy
//! machine.

pub mod capacity;
pub mod fanout;
pub mod history;
pub mod idle;
pub mod reconnect;
pub mod rooms;
pub mod slow_consumer;
pub mod storm;

use serde::{Deserialize, Serialize};

use crate::load::{self, Plan, Tally};
use crate::proc;
use crate::stats::{Latency, LatencySummary};
use crate::target::Server;

/// What a messaging load measured, for one target.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LoadResult {
    /// Messages per second the senders were told to offer (open loop; 0 for closed loop).
    pub offered_per_sec: f64,
    /// Messages sent per second in the window.
    pub sent_per_sec: f64,
    /// Of those, acknowledged per second (Palaver, natively, over Socket.IO or over
    /// SignalR: committed
    /// to disk; Socket.IO on Node: handled; baseline: the sender's own copy came back).
    pub acked_per_sec: f64,
    /// Deliveries per second of the window's messages.
    pub deliveries_per_sec: f64,
    /// Deliveries that arrived over deliveries expected (sent × connections in the room).
    pub delivery_ratio: f64,
    /// Send to receipt, per delivery.
    pub latency: LatencySummary,
    /// Send to acknowledgement.
    pub ack_latency: LatencySummary,
    /// CPU seconds the server used from the start of the load to the end of the drain,
    /// and the average number of cores that is.
    pub server_cpu_seconds: f64,
    pub server_cpu_cores: f64,
    /// The same for the generator (the bench and its worker processes): near 1.0 on its
    /// one pinned core means the generator, not the server, may be the limit.
    #[serde(default)]
    pub generator_cpu_cores: f64,
    /// The server's peak resident memory during the load, MiB.
    pub server_peak_rss_mib: f64,
    pub connections: u64,
    pub connect_failures: u64,
    /// Connections that ended before the drain did.
    pub dropped: u64,
    /// Each node's share (one entry for a single server; `server_cpu_*` and
    /// `server_peak_rss_mib` above are the totals over the nodes).
    #[serde(default)]
    pub nodes: Vec<NodeLoad>,
}

/// What one node of the server did during a load.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct NodeLoad {
    /// `127.0.0.1:<port>`.
    pub addr: String,
    /// Connections the plan put on this node.
    pub connections: u64,
    /// CPU seconds the node used from the start of the load to the end of the drain,
    /// and the average number of cores that is.
    pub server_cpu_seconds: f64,
    pub server_cpu_cores: f64,
    /// The node's own peak resident memory during the load, MiB.
    pub server_peak_rss_mib: f64,
}

/// Runs `plan` against `server` and measures it: the server's CPU and memory are summed
/// over its nodes, and also reported per node.
pub async fn measure(
    server: &Server,
    plan: &Plan,
    offered_per_sec: f64,
) -> anyhow::Result<LoadResult> {
    measure_with(server, plan, offered_per_sec, || {}).await
}

/// [`measure`], calling `on_start` at the instant the load starts (the start of its
/// warm-up), once every connection is open.
pub async fn measure_with(
    server: &Server,
    plan: &Plan,
    offered_per_sec: f64,
    on_start: impl FnOnce(),
) -> anyhow::Result<LoadResult> {
    let pids = server.pids();
    let mut cpu_start = Vec::new();
    let mut peak = None;
    let tally: Tally = load::run(plan, || {
        cpu_start = pids.iter().map(|&p| proc::cpu_seconds(p)).collect();
        peak = Some(proc::PeakRss::start_many(&pids));
        on_start();
    })
    .await?;
    let total_secs = (plan.warmup_ms + plan.window_ms + plan.drain_ms) as f64 / 1000.0;
    let node_peaks = peak.as_ref().map(|p| p.peaks_kib()).unwrap_or_default();
    let nodes: Vec<NodeLoad> = pids
        .iter()
        .enumerate()
        .map(|(k, &pid)| {
            let start = cpu_start.get(k).copied().flatten().unwrap_or(0.0);
            let cpu = proc::cpu_seconds(pid).unwrap_or(0.0) - start;
            NodeLoad {
                addr: plan.addrs.get(k).cloned().unwrap_or_default(),
                connections: plan.conns.iter().filter(|c| c.node == k).count() as u64,
                server_cpu_seconds: cpu,
                server_cpu_cores: cpu / total_secs,
                server_peak_rss_mib: node_peaks.get(k).copied().unwrap_or(0) as f64 / 1024.0,
            }
        })
        .collect();
    let cpu: f64 = nodes.iter().map(|n| n.server_cpu_seconds).sum();
    let window_secs = plan.window_ms as f64 / 1000.0;
    let latency = Latency::from_pairs(&tally.latency);
    Ok(LoadResult {
        offered_per_sec,
        sent_per_sec: tally.sent as f64 / window_secs,
        acked_per_sec: tally.acked as f64 / window_secs,
        deliveries_per_sec: tally.delivered as f64 / window_secs,
        delivery_ratio: if tally.expected == 0 {
            0.0
        } else {
            tally.delivered as f64 / tally.expected as f64
        },
        latency: latency.summary(),
        ack_latency: Latency::from_pairs(&tally.ack_latency).summary(),
        server_cpu_seconds: cpu,
        server_cpu_cores: cpu / total_secs,
        generator_cpu_cores: tally.generator_cpu_seconds / total_secs,
        server_peak_rss_mib: peak.map_or(0, |p| p.peak_kib()) as f64 / 1024.0,
        connections: tally.connected,
        connect_failures: tally.connect_failures,
        dropped: tally.dropped,
        nodes,
    })
}

/// Connections per source address: what the kernel's ephemeral port range allows to one
/// destination, less a margin (`/proc/sys/net/ipv4/ip_local_port_range`).
pub fn per_address() -> usize {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let v: Vec<usize> = s
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (v.len() == 2).then(|| v[1].saturating_sub(v[0]))
        })
        .unwrap_or(28_000)
        .saturating_sub(1_000)
        .max(1_000)
}
