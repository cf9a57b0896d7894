//! `capacity`: steps the offered rate of `fanout` up until a step fails; the last passing
//! step is the capacity.
//!
//! Each step is measured `--repeats` times (3 by default), each repeat on fresh
//! connections, and judged on the **medians** of the repeats: it passes when the median
//! delivery ratio is at least 0.99, the median p99 latency at most 100 ms and the median
//! count of dropped connections 0 (with 3 repeats: when at least 2 of them meet each bar,
//! not necessarily the same 2). One 100 ms excursion no longer ends a climb.
//!
//! The first step's rate is per target (`--start-rate`, see [`StartRates`]), so one
//! invocation climbs every target from a sensible place: Socket.IO from 2 msg/s, the
//! others (Palaver over Socket.IO, `palaver-sio`, and over SignalR, `palaver-signalr`,
//! included) from 20.

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::fanout::{self, FanoutArgs};
use super::LoadResult;
use crate::target::{Kind, Member, Server};

/// The least delivery ratio of a passing step.
pub const MIN_RATIO: f64 = 0.99;
/// The highest p99 latency of a passing step, ms.
pub const MAX_P99_MS: f64 = 100.0;
/// The first step's total rate when `--start-rate` does not name the target.
pub const DEFAULT_START_RATES: [(Kind, f64); 5] = [
    (Kind::Palaver, 20.0),
    (Kind::Baseline, 20.0),
    (Kind::Socketio, 2.0),
    (Kind::PalaverSio, 20.0),
    (Kind::PalaverSignalR, 20.0),
];

#[derive(Clone, Debug, Serialize, clap::Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Total messages/s of the first step (all senders together), per target:
    /// `palaver=10,socketio=2` (targets not named keep their default), or one number for
    /// every target, or both (`30,socketio=2`).
    #[arg(long, default_value = "palaver=20,baseline=20,socketio=2")]
    pub start_rate: StartRates,
    /// Each step offers this many times the previous one.
    #[arg(long, default_value_t = 1.5)]
    pub factor: f64,
    /// At most this many steps.
    #[arg(long, default_value_t = 14)]
    pub max_steps: usize,
    /// Measurements of each step; the step is judged on their medians.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeats: u32,
}

/// The first step's rate of each target, msg/s. Parsed from a comma-separated list of
/// `<target>=<rate>` entries and at most one bare `<rate>` (for every target not named);
/// a target named nowhere keeps its entry in [`DEFAULT_START_RATES`]. Serialized as the
/// resolved map of every target, e.g. `{"palaver": 20.0, "baseline": 20.0,
/// "socketio": 2.0, "palaver-sio": 20.0, "palaver-signalr": 20.0}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StartRates(pub BTreeMap<Kind, f64>);

impl StartRates {
    /// The first step's rate for `kind`.
    pub fn of(&self, kind: Kind) -> f64 {
        self.0.get(&kind).copied().unwrap_or(20.0)
    }
}

impl FromStr for StartRates {
    type Err = String;

    /// Errors (as text for clap): an empty entry, an unknown target, a rate that is not a
    /// positive finite number, a target named twice, two bare rates.
    fn from_str(s: &str) -> Result<StartRates, String> {
        let rate = |v: &str| -> Result<f64, String> {
            match v.trim().parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 => Ok(r),
                _ => Err(format!("{v:?} is not a positive number of messages/s")),
            }
        };
        let mut all = None;
        let mut named = BTreeMap::new();
        for entry in s.split(',').map(str::trim) {
            if entry.is_empty() {
                return Err(format!("empty entry in {s:?}"));
            }
            match entry.split_once('=') {
                Some((target, value)) => {
                    let kind = Kind::from_name(target.trim()).ok_or_else(|| {
                        let names: Vec<&str> = Kind::EVERY.iter().map(|k| k.name()).collect();
                        format!("unknown target {target:?} ({})", names.join(", "))
                    })?;
                    if named.insert(kind, rate(value)?).is_some() {
                        return Err(format!("{target} named twice"));
                    }
                }
                None => {
                    if all.replace(rate(entry)?).is_some() {
                        return Err("more than one rate for every target".into());
                    }
                }
            }
        }
        let mut rates = BTreeMap::new();
        for (kind, default) in DEFAULT_START_RATES {
            rates.insert(kind, named.get(&kind).copied().or(all).unwrap_or(default));
        }
        Ok(StartRates(rates))
    }
}

/// The medians of a step's repeats, on which it is judged.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Medians {
    pub sent_per_sec: f64,
    pub deliveries_per_sec: f64,
    pub delivery_ratio: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub dropped: f64,
    pub server_cpu_cores: f64,
    /// See [`crate::scenarios::LoadResult::generator_cpu_cores`].
    #[serde(default)]
    pub generator_cpu_cores: f64,
}

/// One measurement of a step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Repeat {
    /// Whether this repeat alone would pass.
    pub passed: bool,
    pub result: LoadResult,
}

/// One step of the climb.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    pub offered_per_sec: f64,
    /// Whether the medians pass.
    pub passed: bool,
    pub median: Medians,
    /// Every measurement, in order.
    pub repeats: Vec<Repeat>,
}

/// The climb and its outcome, for one target.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CapacityResult {
    /// Messages/s offered at the last passing step (0 if none passed).
    pub capacity_per_sec: f64,
    /// Median deliveries/s achieved at that step.
    pub capacity_deliveries_per_sec: f64,
    /// The first step's rate.
    pub start_rate: f64,
    pub steps: Vec<Step>,
}

/// Whether one measurement's numbers pass.
pub fn passes(r: &LoadResult) -> bool {
    r.delivery_ratio >= MIN_RATIO && r.latency.p99_ms <= MAX_P99_MS && r.dropped == 0
}

/// Whether a step's medians pass (the same bars as [`passes`]).
pub fn medians_pass(m: &Medians) -> bool {
    m.delivery_ratio >= MIN_RATIO && m.p99_ms <= MAX_P99_MS && m.dropped == 0.0
}

/// The median of `values` (the mean of the middle two for an even count; 0 for none).
pub fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The medians of each figure over `repeats`, each taken on its own.
pub fn medians(repeats: &[LoadResult]) -> Medians {
    let m = |f: fn(&LoadResult) -> f64| median(repeats.iter().map(f));
    Medians {
        sent_per_sec: m(|r| r.sent_per_sec),
        deliveries_per_sec: m(|r| r.deliveries_per_sec),
        delivery_ratio: m(|r| r.delivery_ratio),
        p50_ms: m(|r| r.latency.p50_ms),
        p99_ms: m(|r| r.latency.p99_ms),
        dropped: m(|r| r.dropped as f64),
        server_cpu_cores: m(|r| r.server_cpu_cores),
        generator_cpu_cores: m(|r| r.generator_cpu_cores),
    }
}

/// Prepares one room of `--members` and climbs.
pub async fn run(server: &Server, args: &CapacityArgs) -> anyhow::Result<CapacityResult> {
    let (members, rooms) = crate::setup::rooms(server, 1, args.fanout.members).await?;
    climb(server, &members, &rooms[0], args).await
}

/// Climbs from the target's start rate in the prepared room: each step measured
/// `repeats` times, judged on the medians, until a step fails or `max_steps` ran.
pub async fn climb(
    server: &Server,
    members: &[Member],
    room: &str,
    args: &CapacityArgs,
) -> anyhow::Result<CapacityResult> {
    anyhow::ensure!(args.factor > 1.0, "--factor must be above 1");
    let start_rate = args.start_rate.of(server.kind);
    let mut steps = Vec::new();
    let mut rate = start_rate;
    for _ in 0..args.max_steps {
        let mut step_args = args.fanout.clone();
        step_args.rate = rate / args.fanout.senders.max(1) as f64;
        let plan = fanout::plan(server, members, room, &step_args);
        let mut repeats = Vec::new();
        for k in 0..args.repeats {
            let result = super::measure(server, &plan, rate).await?;
            let passed = passes(&result);
            if result.sent_per_sec == 0.0 {
                eprintln!(
                    "  warning: no message was sent inside the {} s window at {:.2} msg/s per sender; lengthen --duration-secs",
                    args.fanout.duration_secs, step_args.rate
                );
            }
            eprintln!(
                "  {:>9} offered {:>8.1}/s #{}: sent {:>8.0}/s, {:>10.0} deliveries/s, ratio {:.4}, p99 {:.1} ms, dropped {}, cores server {:.2} generator {:.2} -> {}",
                server.kind.name(),
                rate,
                k + 1,
                result.sent_per_sec,
                result.deliveries_per_sec,
                result.delivery_ratio,
                result.latency.p99_ms,
                result.dropped,
                result.server_cpu_cores,
                result.generator_cpu_cores,
                if passed { "pass" } else { "fail" }
            );
            repeats.push(Repeat { passed, result });
            // Let the server settle (closed connections, queues) before the next one.
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
        let results: Vec<LoadResult> = repeats.iter().map(|r| r.result.clone()).collect();
        let median = medians(&results);
        let passed = medians_pass(&median);
        eprintln!(
            "  {:>9} offered {:>8.1}/s median of {}: ratio {:.4}, p99 {:.1} ms, dropped {} -> {}",
            server.kind.name(),
            rate,
            repeats.len(),
            median.delivery_ratio,
            median.p99_ms,
            median.dropped,
            if passed { "PASS" } else { "FAIL" }
        );
        steps.push(Step {
            offered_per_sec: rate,
            passed,
            median,
            repeats,
        });
        if !passed {
            break;
        }
        rate *= args.factor;
    }
    let last = steps.iter().rev().find(|s| s.passed);
    Ok(CapacityResult {
        capacity_per_sec: last.map_or(0.0, |s| s.offered_per_sec),
        capacity_deliveries_per_sec: last.map_or(0.0, |s| s.median.deliveries_per_sec),
        start_rate,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(ratio: f64, p99: f64, dropped: u64) -> LoadResult {
        let mut r = LoadResult {
            delivery_ratio: ratio,
            dropped,
            ..LoadResult::default()
        };
        r.latency.p99_ms = p99;
        r
    }

    #[test]
    fn the_median_is_the_middle_value_or_the_mean_of_the_middle_two() {
        assert_eq!(median([3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median([40.0, 10.0, 30.0, 20.0]), 25.0);
        assert_eq!(median([7.0]), 7.0);
        assert_eq!(median(std::iter::empty()), 0.0);
    }

    #[test]
    fn one_bad_repeat_of_three_does_not_fail_a_step() {
        let repeats = [load(1.0, 40.0, 0), load(1.0, 145.0, 0), load(1.0, 50.0, 0)];
        let m = medians(&repeats);
        assert_eq!(m.p99_ms, 50.0);
        assert!(medians_pass(&m));
    }

    #[test]
    fn two_bad_repeats_of_three_fail_a_step() {
        let over = [load(1.0, 40.0, 0), load(1.0, 145.0, 0), load(1.0, 101.0, 0)];
        assert!(!medians_pass(&medians(&over)));
        let lossy = [load(0.98, 10.0, 0), load(1.0, 10.0, 0), load(0.95, 10.0, 0)];
        assert!(!medians_pass(&medians(&lossy)));
        let dropping = [load(1.0, 10.0, 1), load(1.0, 10.0, 0), load(1.0, 10.0, 2)];
        assert!(!medians_pass(&medians(&dropping)));
    }

    #[test]
    fn each_bar_is_judged_on_its_own_median() {
        // Each repeat fails one bar, but a different one: every median passes.
        let repeats = [load(0.5, 10.0, 0), load(1.0, 500.0, 0), load(1.0, 10.0, 3)];
        let m = medians(&repeats);
        assert_eq!((m.delivery_ratio, m.p99_ms, m.dropped), (1.0, 10.0, 0.0));
        assert!(medians_pass(&m));
        assert!(repeats.iter().all(|r| !passes(r)));
    }

    #[test]
    fn start_rates_default_per_target() {
        let r: StartRates = "palaver=20,baseline=20,socketio=2".parse().unwrap();
        assert_eq!(
            (
                r.of(Kind::Palaver),
                r.of(Kind::Baseline),
                r.of(Kind::Socketio)
            ),
            (20.0, 20.0, 2.0)
        );
    }

    #[test]
    fn start_rates_name_some_targets_and_keep_the_rest() {
        let r: StartRates = "palaver=10, socketio=0.5".parse().unwrap();
        assert_eq!(r.of(Kind::Palaver), 10.0);
        assert_eq!(r.of(Kind::Socketio), 0.5);
        assert_eq!(r.of(Kind::Baseline), 20.0);
    }

    #[test]
    fn a_bare_start_rate_applies_to_every_target_not_named() {
        let r: StartRates = "30".parse().unwrap();
        assert!(Kind::EVERY.iter().all(|&k| r.of(k) == 30.0));
        let r: StartRates = "30,socketio=2".parse().unwrap();
        assert_eq!(
            (
                r.of(Kind::Palaver),
                r.of(Kind::Baseline),
                r.of(Kind::Socketio)
            ),
            (30.0, 30.0, 2.0)
        );
    }

    #[test]
    fn bad_start_rates_are_refused() {
        for bad in [
            "",
            "palaver=",
            "palaver=0",
            "palaver=-3",
            "palaver=NaN",
            "palaver=inf",
            "slack=10",
            "palaversio=10",
            "palaver=10,palaver=12",
            "10,20",
            "palaver=10,,socketio=2",
            "fast",
        ] {
            assert!(bad.parse::<StartRates>().is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn start_rates_serialize_as_the_resolved_map() {
        let r: StartRates = "socketio=3".parse().unwrap();
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({
                "palaver": 20.0,
                "baseline": 20.0,
                "socketio": 3.0,
                "palaver-sio": 20.0,
                "palaver-signalr": 20.0
            })
        );
        let r: StartRates = "palaver-sio=7".parse().unwrap();
        assert_eq!((r.of(Kind::PalaverSio), r.of(Kind::Palaver)), (7.0, 20.0));
        let r: StartRates = "palaver-signalr=9,socketio=2".parse().unwrap();
        assert_eq!(
            (r.of(Kind::PalaverSignalR), r.of(Kind::PalaverSio)),
            (9.0, 20.0)
        );
    }
}
