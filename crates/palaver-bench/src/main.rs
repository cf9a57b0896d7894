//! `palaver-bench`: drives a running server through its real protocol and measures it,
//! side by side with a bare-broadcast baseline and a Socket.IO 4 peer, in the same run.
//!
//! ```text
//! cargo build --release
//! (cd bench/peers/socketio && npm ci)
//! target/release/palaver-bench capacity --targets palaver,baseline,socketio
//! ```
//!
//! Each scenario starts each target server itself (Palaver with a fresh data directory),
//! prepares accounts and rooms, runs, and prints one JSON document on stdout (also
//! written to `--out`) and a one-line summary per target on stderr. See `BENCHMARKS.md`.

mod baseline;
mod chart;
mod load;
mod proc;
mod scenarios;
mod setup;
mod stats;
mod target;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use serde::Serialize;
use serde_json::{json, Value};

use target::{Kind, Programs, Server};

#[derive(Parser)]
#[command(name = "palaver-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// One room of M members, P of them sending R messages/s each.
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::fanout::FanoutArgs,
    },
    /// Steps fanout's offered rate up to the last step with delivery ratio ≥ 0.99 and
    /// p99 ≤ 100 ms.
    Capacity {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::capacity::CapacityArgs,
    },
    /// Many small rooms, everyone sending: acknowledged (persisted) messages/s.
    Rooms {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::rooms::RoomsArgs,
    },
    /// N idle authenticated connections: server memory per connection.
    Idle {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::idle::IdleArgs,
    },
    /// History page reads in a room with millions of messages (Palaver only).
    History {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::history::HistoryArgs,
    },
    /// N clients drop at a server restart and resume (Palaver only).
    Reconnect {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::reconnect::ReconnectArgs,
    },
    /// Closed-loop senders and readers in one room, then a client that never reads:
    /// delivered msg/s and latency with and without it, when the server drops it (4008),
    /// server memory (Palaver only).
    SlowConsumer {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::slow_consumer::SlowConsumerArgs,
    },
    /// Draws the capacity and latency chart (SVG) from a `capacity` result.
    Chart {
        /// A JSON document written by `capacity --out`.
        #[arg(long, default_value = "bench/results/capacity.json")]
        input: PathBuf,
        #[arg(long, default_value = "bench/results/capacity.svg")]
        out: PathBuf,
    },
    /// Serves the bare-broadcast baseline (started by the scenarios themselves).
    BaselineServer {
        #[arg(long, default_value_t = 0)]
        port: u16,
    },
    /// Runs one shard of a load (started by the scenarios when one process may not hold
    /// every connection).
    Worker {
        #[arg(long)]
        plan: PathBuf,
        #[arg(long)]
        shard: usize,
        #[arg(long)]
        shards: usize,
    },
}

/// Options every scenario takes.
#[derive(Clone, Debug, clap::Args)]
struct Common {
    /// Servers to run the scenario against, in this order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "palaver,baseline,socketio"
    )]
    targets: Vec<Kind>,
    #[command(flatten)]
    programs: Programs,
    /// Also write the JSON document here.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Command::Fanout { common, args } => {
                each_target("fanout", &common, &args, |s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::fanout::run(&s, &args).await?)) }
                })
                .await
            }
            Command::Capacity { common, args } => {
                each_target("capacity", &common, &args, |s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::capacity::run(&s, &args).await?)) }
                })
                .await
            }
            Command::Rooms { common, args } => {
                each_target("rooms", &common, &args, |s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::rooms::run(&s, &args).await?)) }
                })
                .await
            }
            Command::Idle { common, args } => {
                each_target("idle", &common, &args, |s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::idle::run(&s, &args).await?)) }
                })
                .await
            }
            Command::History { common, args } => {
                each_target("history", &common, &args, |mut s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::history::run(&mut s, &args).await?)) }
                })
                .await
            }
            Command::Reconnect { common, args } => {
                each_target("reconnect", &common, &args, |mut s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::reconnect::run(&mut s, &args).await?)) }
                })
                .await
            }
            Command::SlowConsumer { common, args } => {
                each_target("slow-consumer", &common, &args, |s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::slow_consumer::run(&s, &args).await?)) }
                })
                .await
            }
            Command::Chart { input, out } => chart::capacity_chart(&input, &out),
            Command::BaselineServer { port } => baseline::serve(port).await,
            Command::Worker {
                plan,
                shard,
                shards,
            } => load::worker(&plan, shard, shards).await,
        }
    })
}

/// Runs `scenario` against each target in turn (each on its own fresh server), prints
/// the JSON document and a summary line per target.
async fn each_target<A, F, Fut>(
    scenario: &str,
    common: &Common,
    args: &A,
    mut run: F,
) -> anyhow::Result<()>
where
    A: Serialize,
    F: FnMut(Server) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Value>>,
{
    let mut results = serde_json::Map::new();
    for &kind in &common.targets {
        if matches!(scenario, "history" | "reconnect") && kind != Kind::Palaver {
            eprintln!(
                "{scenario}: {} has no history to page or resume from; skipped",
                kind.name()
            );
            continue;
        }
        if scenario == "slow-consumer" && kind != Kind::Palaver {
            eprintln!(
                "{scenario}: {} has no bounded per-connection queue to test; skipped",
                kind.name()
            );
            continue;
        }
        eprintln!("{scenario}: starting {}", kind.name());
        let server = Server::start(kind, &common.programs)
            .await
            .with_context(|| format!("starting {}", kind.name()))?;
        let result = run(server)
            .await
            .with_context(|| format!("{scenario} on {}", kind.name()))?;
        eprintln!("{scenario} {}: {}", kind.name(), summary(&result));
        results.insert(kind.name().to_owned(), result);
    }
    let document = json!({
        "scenario": scenario,
        "machine": machine(),
        "params": args,
        "results": results,
    });
    let text = serde_json::to_string_pretty(&document)?;
    println!("{text}");
    if let Some(out) = &common.out {
        if let Some(dir) = out.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(out, format!("{text}\n"))?;
    }
    Ok(())
}

/// The headline numbers of a result, on one line.
fn summary(result: &Value) -> String {
    let f = |v: &Value| v.as_f64().map(|x| format!("{x:.1}"));
    let mut parts = Vec::new();
    for (label, path) in [
        ("capacity msg/s", "/capacity_per_sec"),
        ("deliveries/s", "/deliveries_per_sec"),
        ("acked/s", "/acked_per_sec"),
        ("ratio", "/delivery_ratio"),
        ("p50 ms", "/latency/p50_ms"),
        ("p99 ms", "/latency/p99_ms"),
        ("cpu cores", "/server_cpu_cores"),
        ("peak rss MiB", "/server_peak_rss_mib"),
        ("KiB/conn", "/rss_per_connection_kib"),
        ("p50 ms", "/p50_ms"),
        ("p99 ms", "/p99_ms"),
        ("caught up s", "/caught_up_secs"),
        ("lost", "/lost"),
        ("alone msg/s", "/without_slow_client/delivered_per_sec"),
        ("alone p99 ms", "/without_slow_client/latency/p99_ms"),
        ("with slow msg/s", "/with_slow_client/delivered_per_sec"),
        ("with slow p99 ms", "/with_slow_client/latency/p99_ms"),
        ("slow dropped after s", "/slow_client/dropped_after_secs"),
    ] {
        if let Some(v) = result.pointer(path).and_then(f) {
            parts.push(format!("{label} {v}"));
        }
    }
    parts.join(", ")
}

/// The machine a result was measured on.
fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    json!({
        "cpus": cpus,
        "cpu_model": model,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "open_files_limit": proc::open_files_limit(),
    })
}
