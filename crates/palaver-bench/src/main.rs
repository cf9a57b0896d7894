//! `palaver-bench`: drives a running server through its real protocol and measures it,
//! side by side with a bare-broadcast baseline and a Socket.IO 4 peer, in the same run.
//! Palaver is measured over its native WebSocket (`palaver`), with the Socket.IO
//! peer's own client code over its Socket.IO endpoint (`palaver-sio`, asked for by
//! name): the same server, so `fanout`, `capacity`, `rooms` and `idle` compare Palaver and
//! Node on identical Socket.IO clients; and over its SignalR endpoint
//! (`palaver-signalr`, asked for by name: the JSON hub protocol at `/hubs/chat`).
//!
//! ```text
//! cargo build --release
//! (cd bench/peers/socketio && npm ci)
//! target/release/palaver-bench capacity --targets palaver,baseline,socketio
//! target/release/palaver-bench fanout --targets palaver-sio,socketio
//! target/release/palaver-bench fanout --targets palaver,palaver-signalr
//! ```
//!
//! Each scenario starts each target server itself (Palaver with a fresh data directory),
//! prepares accounts and rooms, runs, and prints one JSON document on stdout (also
//! written to `--out`) and a one-line summary per target on stderr. See `BENCHMARKS.md`.
//!
//! By default the server under test runs on one CPU and the generator on the others
//! ([`pin`]); every document records its provenance ([`provenance`]): commit, command
//! line, machine, pinning, and how Palaver was deployed ([`deploy`]: one node on SQLite,
//! or one or several nodes on one PostgreSQL database and one Redis).
//!
//! Layout: `target` (the servers and their wire protocols), `load` (the shared load
//! engine and its worker processes), `scenarios/*` (one module per scenario), `setup`
//! (accounts and rooms), `stats` (histograms), `proc` (CPU and memory from `/proc`),
//! `pin`, `provenance`, `deploy` (nodes, database, Redis), `baseline` (the
//! bare-broadcast server), `chart`.

mod baseline;
mod chart;
mod deploy;
mod load;
mod pin;
mod proc;
mod provenance;
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
    /// One room under a steady fan-out load, measured quiet and then during a storm of
    /// logins and reconnects-with-resume (Palaver only).
    Storm {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        args: scenarios::storm::StormArgs,
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
    /// Servers to run the scenario against, in this order: `palaver`, `baseline`,
    /// `socketio`, `palaver-sio` (Palaver over Socket.IO; not a default),
    /// `palaver-signalr` (Palaver over SignalR; not a default).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Kind::ALL)]
    targets: Vec<Kind>,
    #[command(flatten)]
    programs: Programs,
    /// Also write the JSON document here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Pin the server under test to one CPU and the generator (this process and its
    /// workers) to the others (the default; needs 2 CPUs, else runs unpinned with a
    /// warning). With --palaver-nodes N, all N nodes are pinned to that one server CPU:
    /// the same budget as one node. PostgreSQL and Redis are not pinned.
    #[arg(long, overrides_with = "no_pin")]
    pin: bool,
    /// Run server and generator unpinned, sharing every CPU.
    #[arg(long, overrides_with = "pin")]
    no_pin: bool,
}

impl Command {
    /// The options of a scenario command (`None` for the helpers: chart, baseline-server,
    /// worker).
    fn common(&self) -> Option<&Common> {
        match self {
            Command::Fanout { common, .. }
            | Command::Capacity { common, .. }
            | Command::Rooms { common, .. }
            | Command::Idle { common, .. }
            | Command::History { common, .. }
            | Command::Reconnect { common, .. }
            | Command::SlowConsumer { common, .. }
            | Command::Storm { common, .. } => Some(common),
            Command::Chart { .. } | Command::BaselineServer { .. } | Command::Worker { .. } => None,
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Before the runtime starts its threads, so they inherit the generator's CPUs. The
    // helper processes (baseline server, workers) inherit their mask from whoever
    // started them.
    if let Some(common) = cli.command.common() {
        pin::apply(common.pin || !common.no_pin);
    }
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
            Command::Storm { mut common, args } => {
                common.programs.palaver_env = scenarios::storm::palaver_env();
                each_target("storm", &common, &args, |s| {
                    let args = args.clone();
                    async move { Ok(json!(scenarios::storm::run(&s, &args).await?)) }
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
    let deploy = &common.programs.deploy;
    deploy.validate()?;
    let inherited = deploy::inherited_palaver_env();
    // Palaver runs (natively, over Socket.IO or over SignalR): nodes, database, Redis
    // apply.
    let palaver = common.targets.iter().any(|k| k.is_palaver());
    if palaver && deploy.palaver_nodes > 1 && !matches!(scenario, "fanout" | "capacity" | "rooms") {
        anyhow::bail!(
            "{scenario} runs against one Palaver node: --palaver-nodes {} works with fanout, \
             capacity and rooms only",
            deploy.palaver_nodes
        );
    }
    if common.targets.contains(&Kind::Palaver)
        && scenario == "history"
        && deploy.postgres(&inherited)
    {
        anyhow::bail!(
            "history seeds Palaver's SQLite file directly: it does not run on PostgreSQL \
             (--database-url or PALAVER_DATABASE_URL)"
        );
    }
    let mut results = serde_json::Map::new();
    let mut server_cpus = serde_json::Map::new();
    let mut postgres_version = None;
    let mut node_cpus = Vec::new();
    for &kind in &common.targets {
        if let Some(why) = skipped(scenario, kind) {
            eprintln!("{scenario}: {} {why}; skipped", kind.name());
            continue;
        }
        eprintln!("{scenario}: starting {}", kind.name());
        let server = Server::start(kind, &common.programs)
            .await
            .with_context(|| format!("starting {}", kind.name()))?;
        // What the kernel says the server may run on: the pinning, checked.
        server_cpus.insert(
            kind.name().to_owned(),
            json!(proc::cpus_allowed_list(server.pid)),
        );
        if kind.is_palaver() {
            postgres_version = server.postgres_version().map(str::to_owned);
            node_cpus = server
                .pids()
                .into_iter()
                .map(proc::cpus_allowed_list)
                .collect();
        }
        let result = run(server)
            .await
            .with_context(|| format!("{scenario} on {}", kind.name()))?;
        eprintln!("{scenario} {}: {}", kind.name(), summary(&result));
        results.insert(kind.name().to_owned(), result);
    }
    let mut provenance = provenance::provenance(&pin::current());
    provenance["server_cpus_allowed"] = json!(server_cpus);
    provenance["generator_cpus_allowed"] = json!(proc::cpus_allowed_list(std::process::id()));
    provenance["binaries"] = json!({
        "palaver_bench": provenance::binary(&std::env::current_exe().unwrap_or_default()),
        "palaver": palaver.then(|| provenance::binary(&common.programs.palaver_bin)),
    });
    if palaver {
        provenance["palaver_deployment"] =
            deploy::describe(deploy, &inherited, postgres_version.as_deref(), &node_cpus);
    }
    provenance["palaver_env"] = json!(common
        .programs
        .palaver_env
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>());
    let document = json!({
        "scenario": scenario,
        "provenance": provenance,
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

/// Why `scenario` does not run against `kind`, if it does not: storm, history,
/// reconnect and slow-consumer need Palaver's accounts, history or bounded queues, and
/// drive its native WebSocket protocol only (`palaver`; not `palaver-sio` or
/// `palaver-signalr`).
fn skipped(scenario: &str, kind: Kind) -> Option<&'static str> {
    let palaver_only = matches!(
        scenario,
        "storm" | "history" | "reconnect" | "slow-consumer"
    );
    if !palaver_only || kind == Kind::Palaver {
        return None;
    }
    Some(match (kind, scenario) {
        (Kind::PalaverSio, _) => {
            "is Palaver over Socket.IO; this scenario drives Palaver's native WebSocket \
             protocol only (--targets palaver)"
        }
        (Kind::PalaverSignalR, _) => {
            "is Palaver over SignalR; this scenario drives Palaver's native WebSocket \
             protocol only (--targets palaver)"
        }
        (_, "storm") => "has no accounts to log in or history to resume from",
        (_, "history" | "reconnect") => "has no history to page or resume from",
        _ => "has no bounded per-connection queue to test",
    })
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
        ("generator cores", "/generator_cpu_cores"),
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
        ("rate msg/s", "/rate_per_sec"),
        ("quiet p99 ms", "/quiet/latency/p99_ms"),
        ("storm p99 ms", "/storm/latency/p99_ms"),
        ("p99 storm/quiet", "/p99_ratio"),
        ("logins/s", "/logins/achieved_per_sec"),
        ("login errors", "/logins/errors"),
        ("reconnects/s", "/reconnects/achieved_per_sec"),
        ("reconnect errors", "/reconnects/errors"),
        ("lost", "/reconnects/lost"),
        ("duplicated", "/reconnects/duplicated"),
    ] {
        if let Some(v) = result.pointer(path).and_then(f) {
            parts.push(format!("{label} {v}"));
        }
    }
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn palaver_only_scenarios_skip_every_other_target_and_palaver_sio() {
        for scenario in ["storm", "history", "reconnect", "slow-consumer"] {
            assert_eq!(skipped(scenario, Kind::Palaver), None, "{scenario}");
            for kind in [
                Kind::Baseline,
                Kind::Socketio,
                Kind::PalaverSio,
                Kind::PalaverSignalR,
            ] {
                assert!(skipped(scenario, kind).is_some(), "{scenario} {kind:?}");
            }
        }
        assert!(skipped("storm", Kind::PalaverSio)
            .unwrap()
            .contains("native WebSocket"));
        assert!(skipped("reconnect", Kind::PalaverSignalR)
            .unwrap()
            .contains("over SignalR"));
        for scenario in ["fanout", "capacity", "rooms", "idle"] {
            for kind in Kind::EVERY {
                assert_eq!(skipped(scenario, kind), None, "{scenario} {kind:?}");
            }
        }
    }

    #[test]
    fn palaver_sio_is_a_target_name_but_not_a_default() {
        let cli = Cli::try_parse_from([
            "palaver-bench",
            "fanout",
            "--targets",
            "palaver-sio,socketio",
        ])
        .unwrap();
        let common = cli.command.common().unwrap();
        assert_eq!(common.targets, [Kind::PalaverSio, Kind::Socketio]);
        let cli = Cli::try_parse_from(["palaver-bench", "rooms"]).unwrap();
        assert_eq!(cli.command.common().unwrap().targets, Kind::ALL);
        assert!(Cli::try_parse_from(["palaver-bench", "idle", "--targets", "palaversio"]).is_err());
    }

    #[test]
    fn palaver_signalr_is_a_target_name_but_not_a_default() {
        let cli = Cli::try_parse_from([
            "palaver-bench",
            "idle",
            "--targets",
            "palaver,palaver-signalr",
        ])
        .unwrap();
        let common = cli.command.common().unwrap();
        assert_eq!(common.targets, [Kind::Palaver, Kind::PalaverSignalR]);
        assert!(!Kind::ALL.contains(&Kind::PalaverSignalR));
        assert!(Cli::try_parse_from(["palaver-bench", "fanout", "--targets", "signalr"]).is_err());
    }
}
