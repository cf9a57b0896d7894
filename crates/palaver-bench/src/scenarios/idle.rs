//! `idle`: N authenticated connections that do nothing; reports the server's resident
//! memory per connection (growth from before the first connection to the peak while all
//! are open, over N).

use serde::{Deserialize, Serialize};

use super::per_address;
use crate::load::{self, Conn, Pace, Plan};
use crate::proc;
use crate::target::Server;

#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct IdleArgs {
    /// Connections to open.
    #[arg(long, default_value_t = 15_000)]
    pub connections: usize,
    /// Accounts they belong to (Palaver; several connections per account, as tabs and
    /// devices are).
    #[arg(long, default_value_t = 100)]
    pub users: usize,
    /// Seconds to hold them all open.
    #[arg(long, default_value_t = 5)]
    pub hold_secs: u64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IdleResult {
    pub connections: u64,
    pub connect_failures: u64,
    pub dropped: u64,
    pub rss_before_mib: f64,
    pub rss_peak_mib: f64,
    /// (peak − before) / connections, KiB.
    pub rss_per_connection_kib: f64,
}

pub async fn run(server: &Server, args: &IdleArgs) -> anyhow::Result<IdleResult> {
    let (members, rooms) = crate::setup::rooms(server, 1, args.users).await?;
    let plan = Plan {
        kind: server.kind,
        addrs: vec![server.addr.clone()],
        conns: (0..args.connections)
            .map(|i| Conn {
                member: i % members.len().max(1),
                room: 0,
                sends: false,
                node: 0,
            })
            .collect(),
        members,
        rooms,
        pace: Pace::Rate(0.0),
        padding: 0,
        warmup_ms: 0,
        window_ms: args.hold_secs * 1000,
        drain_ms: 0,
        per_address: per_address(),
    };
    // Settle after the accounts were made, then read the baseline.
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    let before = proc::rss_kib(server.pid).unwrap_or(0);
    let pid = server.pid;
    let mut peak = None;
    let tally = load::run(&plan, || peak = Some(proc::PeakRss::start(pid))).await?;
    let peak_kib = peak.map_or(0, |p| p.peak_kib());
    Ok(IdleResult {
        connections: tally.connected,
        connect_failures: tally.connect_failures,
        dropped: tally.dropped,
        rss_before_mib: before as f64 / 1024.0,
        rss_peak_mib: peak_kib as f64 / 1024.0,
        rss_per_connection_kib: peak_kib.saturating_sub(before) as f64
            / tally.connected.max(1) as f64,
    })
}
