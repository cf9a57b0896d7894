//! `capacity`: steps the offered rate of `fanout` up until the delivery ratio falls below
//! 0.99 or p99 latency rises above 100 ms (or a connection is dropped); the last passing
//! step is the capacity.

use serde::{Deserialize, Serialize};

use super::fanout::{self, FanoutArgs};
use super::LoadResult;
use crate::target::Server;

/// The least delivery ratio of a passing step.
pub const MIN_RATIO: f64 = 0.99;
/// The highest p99 latency of a passing step, ms.
pub const MAX_P99_MS: f64 = 100.0;

#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Total messages/s of the first step (all senders together).
    #[arg(long, default_value_t = 20.0)]
    pub start_rate: f64,
    /// Each step offers this many times the previous one.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// At most this many steps.
    #[arg(long, default_value_t = 14)]
    pub max_steps: usize,
}

/// One step of the climb.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    pub offered_per_sec: f64,
    pub passed: bool,
    pub result: LoadResult,
}

/// The climb and its outcome, for one target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapacityResult {
    /// Messages/s offered at the last passing step (0 if none passed).
    pub capacity_per_sec: f64,
    /// Deliveries/s achieved at that step.
    pub capacity_deliveries_per_sec: f64,
    pub steps: Vec<Step>,
}

/// Whether a step's numbers pass.
pub fn passes(r: &LoadResult) -> bool {
    r.delivery_ratio >= MIN_RATIO && r.latency.p99_ms <= MAX_P99_MS && r.dropped == 0
}

pub async fn run(server: &Server, args: &CapacityArgs) -> anyhow::Result<CapacityResult> {
    let (members, rooms) = crate::setup::rooms(server, 1, args.fanout.members).await?;
    let mut steps = Vec::new();
    let mut rate = args.start_rate;
    for _ in 0..args.max_steps {
        let mut step_args = args.fanout.clone();
        step_args.rate = rate / args.fanout.senders.max(1) as f64;
        let plan = fanout::plan(server, &members, &rooms[0], &step_args);
        let result = super::measure(server, &plan, rate).await?;
        let passed = passes(&result);
        eprintln!(
            "  {:>9} offered {:>8.0}/s: sent {:>8.0}/s, {:>10.0} deliveries/s, ratio {:.4}, p99 {:.1} ms, dropped {} -> {}",
            server.kind.name(),
            rate,
            result.sent_per_sec,
            result.deliveries_per_sec,
            result.delivery_ratio,
            result.latency.p99_ms,
            result.dropped,
            if passed { "pass" } else { "FAIL" }
        );
        steps.push(Step {
            offered_per_sec: rate,
            passed,
            result,
        });
        if !passed {
            break;
        }
        rate *= args.factor;
        // Let the server settle (closed connections, queues) before the next step.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    let last = steps.iter().rev().find(|s| s.passed);
    Ok(CapacityResult {
        capacity_per_sec: last.map_or(0.0, |s| s.offered_per_sec),
        capacity_deliveries_per_sec: last.map_or(0.0, |s| s.result.deliveries_per_sec),
        steps,
    })
}
