//! Prometheus metrics, served at `GET /metrics` in the classic Prometheus text exposition
//! format 0.0.4 (what `promtool check metrics` and every Prometheus version parse):
//! `prometheus-client` encodes OpenMetrics text, which [`Metrics::render`] turns into the
//! classic format (counter families are named with their `_total` suffix, no `# EOF`).
//!
//! | metric | type | what |
//! |---|---|---|
//! | `palaver_connections` | gauge | open WebSocket connections on this node |
//! | `palaver_sessions{transport}` | gauge | live sessions by transport (`websocket`) |
//! | `palaver_messages_in_total` | counter | messages stored (acknowledged sends) |
//! | `palaver_messages_out_total` | counter | frames queued to connections |
//! | `palaver_fanout_seconds` | histogram | time to hand one event to every local connection |
//! | `palaver_queue_drops_total` | counter | ephemeral frames dropped under backpressure |
//! | `palaver_slow_consumer_disconnects_total` | counter | connections closed with 4008 |
//! | `palaver_store_seconds{op}` | histogram | store latency of a send (`insert_message`) |
//! | `palaver_rate_limited_total{limit}` | counter | requests refused with 429 |
//! | `palaver_ratelimit_redis_errors_total` | counter | rate-limit operations that failed open because Redis (`redis_url`) did not answer |
//! | `palaver_broker_replayed_changes_total` | counter | room changes this node read from the database to fill a gap in the seq order it heard from the other nodes (`redis_url`) |
//! | `palaver_broker_publish_seconds` | histogram | one pipelined round trip of notes (up to 512) published to Redis |
//! | `palaver_login_attempts_total{result}` | counter | logins by outcome: `success`, `invalid_credentials`, `rate_limited`, `account_disabled` |
//! | `palaver_http_requests_total{method,route,status}` | counter | HTTP requests answered, by route template (`/api/v1/rooms/{room_id}`) |
//! | `palaver_http_request_duration_seconds{route}` | histogram | time to answer (to the response head) |
//! | `palaver_push_notifications_total{result}` | counter | Web Push deliveries (one per message and subscription): `delivered` (2xx), `gone` (404/410: subscription deleted), `failed` (other status, network error, timeout), `dropped` (a message not queued: the delivery queue was full) |
//! | `palaver_presence_redis_errors_total` | counter | presence operations that Redis (`redis_url`) did not answer (the change is not shared until the next lease renewal) |
//! | `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`, `process_start_time_seconds` | | the standard process metrics, from `/proc/self` (Linux; absent elsewhere) |

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels as name/value pairs.
pub type Labels = Vec<(String, String)>;

/// Every metric of a node, registered in one registry.
pub struct Metrics {
    registry: Registry,
    pub connections: Gauge,
    pub sessions: Family<Labels, Gauge>,
    pub messages_in: Counter,
    pub messages_out: Counter,
    pub fanout_seconds: Histogram,
    pub queue_drops: Counter,
    pub slow_consumer_disconnects: Counter,
    pub store_seconds: Family<Labels, Histogram>,
    pub rate_limited: Family<Labels, Counter>,
    /// Rate-limit operations that could not reach Redis and allowed the event (fail open).
    pub ratelimit_redis_errors: Counter,
    /// Room changes a node read from the database to fill a gap in their seq order.
    pub broker_replayed_changes: Counter,
    /// One pipelined round trip of notes published to Redis.
    pub broker_publish_seconds: Histogram,
    pub login_attempts: Family<Labels, Counter>,
    pub http_requests: Family<Labels, Counter>,
    pub http_request_seconds: Family<Labels, Histogram>,
    /// Presence operations that could not reach Redis (see [`crate::presence::redis`]).
    pub presence_redis_errors: Counter,
    /// Web Push deliveries by result (see [`crate::push`]).
    pub push_notifications: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("palaver");
        let connections = Gauge::default();
        registry.register(
            "connections",
            "Open WebSocket connections",
            connections.clone(),
        );
        let sessions = Family::<Labels, Gauge>::default();
        registry.register("sessions", "Live sessions by transport", sessions.clone());
        let messages_in = Counter::default();
        registry.register(
            "messages_in",
            "Messages stored (acknowledged sends)",
            messages_in.clone(),
        );
        let messages_out = Counter::default();
        registry.register(
            "messages_out",
            "Frames queued to connections",
            messages_out.clone(),
        );
        // 10 µs .. ~5 s
        let fanout_seconds = Histogram::new(exponential_buckets(0.000_01, 2.5, 15));
        registry.register(
            "fanout_seconds",
            "Time to hand one event to every local connection",
            fanout_seconds.clone(),
        );
        let queue_drops = Counter::default();
        registry.register(
            "queue_drops",
            "Ephemeral frames dropped under backpressure",
            queue_drops.clone(),
        );
        let slow_consumer_disconnects = Counter::default();
        registry.register(
            "slow_consumer_disconnects",
            "Connections closed because their outbound queue was full",
            slow_consumer_disconnects.clone(),
        );
        let store_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_05, 2.5, 14))
        });
        registry.register(
            "store_seconds",
            "Store latency by operation",
            store_seconds.clone(),
        );
        let rate_limited = Family::<Labels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused with 429, by limit",
            rate_limited.clone(),
        );
        let ratelimit_redis_errors = Counter::default();
        registry.register(
            "ratelimit_redis_errors",
            "Rate-limit operations that failed open because Redis did not answer",
            ratelimit_redis_errors.clone(),
        );
        let broker_replayed_changes = Counter::default();
        registry.register(
            "broker_replayed_changes",
            "Room changes read from the database to fill a gap in the seq order heard from other nodes",
            broker_replayed_changes.clone(),
        );
        // 10 µs .. ~5 s
        let broker_publish_seconds = Histogram::new(exponential_buckets(0.000_01, 2.5, 15));
        registry.register(
            "broker_publish_seconds",
            "Time for one pipelined round trip of notes published to Redis",
            broker_publish_seconds.clone(),
        );
        let login_attempts = Family::<Labels, Counter>::default();
        registry.register(
            "login_attempts",
            "Login attempts by result",
            login_attempts.clone(),
        );
        let http_requests = Family::<Labels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by method, route template and status",
            http_requests.clone(),
        );
        // 100 µs .. ~26 s
        let http_request_seconds = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 2.5, 14))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route template",
            http_request_seconds.clone(),
        );
        let presence_redis_errors = Counter::default();
        registry.register(
            "presence_redis_errors",
            "Presence operations that Redis did not answer",
            presence_redis_errors.clone(),
        );
        let push_notifications = Family::<Labels, Counter>::default();
        registry.register(
            "push_notifications",
            "Web Push deliveries by result",
            push_notifications.clone(),
        );
        Metrics {
            registry,
            push_notifications,
            login_attempts,
            http_requests,
            http_request_seconds,
            presence_redis_errors,
            connections,
            sessions,
            messages_in,
            messages_out,
            fanout_seconds,
            queue_drops,
            slow_consumer_disconnects,
            store_seconds,
            rate_limited,
            ratelimit_redis_errors,
            broker_replayed_changes,
            broker_publish_seconds,
        }
    }
}

impl Metrics {
    /// A label set with one pair.
    pub fn label(name: &str, value: &str) -> Labels {
        vec![(name.to_owned(), value.to_owned())]
    }

    /// Counts one answered HTTP request: `route` is the matched route template (or
    /// `unmatched`), never the raw path.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&vec![
                ("method".to_owned(), method.to_owned()),
                ("route".to_owned(), route.to_owned()),
                ("status".to_owned(), status.to_string()),
            ])
            .inc();
        self.http_request_seconds
            .get_or_create(&Metrics::label("route", route))
            .observe(seconds);
    }

    /// The exposition text, in the classic Prometheus text format 0.0.4 (see the
    /// [module docs](self)), process metrics included.
    pub fn render(&self) -> String {
        let mut open_metrics = String::new();
        if prometheus_client::encoding::text::encode(&mut open_metrics, &self.registry).is_err() {
            open_metrics.clear();
        }
        let mut out = classic_text(&open_metrics);
        process::render(&mut out);
        out
    }
}

/// OpenMetrics text as `prometheus-client` writes it, in the classic 0.0.4 format: a
/// counter family's `# HELP`/`# TYPE` name gets the `_total` suffix its samples carry, and
/// the `# EOF` marker goes.
fn classic_text(open_metrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = open_metrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(open_metrics.len() + 64);
    for line in open_metrics.lines() {
        if line == "# EOF" {
            continue;
        }
        let rest = line
            .strip_prefix("# HELP ")
            .map(|r| ("# HELP ", r))
            .or_else(|| line.strip_prefix("# TYPE ").map(|r| ("# TYPE ", r)));
        match rest {
            Some((kind, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(kind);
                out.push_str(name);
                if counters.contains(name) && !name.ends_with("_total") {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// The standard process metrics (as the Prometheus client libraries name them), read from
/// `/proc/self` on Linux; elsewhere, or if `/proc` cannot be read, they are left out.
mod process {
    use std::fmt::Write as _;

    /// Appends the process metrics to `out`.
    pub fn render(out: &mut String) {
        #[cfg(target_os = "linux")]
        linux(out);
        #[cfg(not(target_os = "linux"))]
        let _ = out;
    }

    fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
        );
    }

    #[cfg(target_os = "linux")]
    fn linux(out: &mut String) {
        // SAFETY: sysconf only reads a configuration value.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the command name (which is in parentheses and may hold spaces);
            // field 3 (state) is index 0 here.
            if let Some(fields) = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace().collect::<Vec<_>>())
            {
                let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
                if let (Some(utime), Some(stime)) = (field(14), field(15)) {
                    if ticks > 0 {
                        metric(
                            out,
                            "process_cpu_seconds_total",
                            "counter",
                            "Total user and system CPU time spent in seconds.",
                            (utime + stime) / ticks as f64,
                        );
                    }
                }
                if let Some(vsize) = field(23) {
                    metric(
                        out,
                        "process_virtual_memory_bytes",
                        "gauge",
                        "Virtual memory size in bytes.",
                        vsize,
                    );
                }
                if let Some(rss) = field(24) {
                    if page > 0 {
                        metric(
                            out,
                            "process_resident_memory_bytes",
                            "gauge",
                            "Resident memory size in bytes.",
                            rss * page as f64,
                        );
                    }
                }
                if let (Some(start), Some(boot)) = (field(22), boot_time()) {
                    if ticks > 0 {
                        metric(
                            out,
                            "process_start_time_seconds",
                            "gauge",
                            "Start time of the process since unix epoch in seconds.",
                            boot + start / ticks as f64,
                        );
                    }
                }
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            metric(
                out,
                "process_open_fds",
                "gauge",
                "Number of open file descriptors.",
                fds.count() as f64,
            );
        }
        if let Some(max) = max_fds() {
            metric(
                out,
                "process_max_fds",
                "gauge",
                "Maximum number of open file descriptors.",
                max,
            );
        }
    }

    /// The system boot time, seconds since the epoch (`btime` in `/proc/stat`).
    #[cfg(target_os = "linux")]
    fn boot_time() -> Option<f64> {
        std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()
    }

    /// The soft limit on open files (`Max open files` in `/proc/self/limits`).
    #[cfg(target_os = "linux")]
    fn max_fds() -> Option<f64> {
        std::fs::read_to_string("/proc/self/limits")
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.messages_in.inc();
        m.rate_limited
            .get_or_create(&Metrics::label("limit", "login"))
            .inc();
        let text = m.render();
        assert!(text.contains("palaver_messages_in_total 1"), "{text}");
        assert!(
            text.contains("palaver_rate_limited_total{limit=\"login\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE palaver_fanout_seconds histogram"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE palaver_messages_in_total counter"),
            "classic counter naming: {text}"
        );
        assert!(!text.contains("# EOF"), "{text}");
        #[cfg(target_os = "linux")]
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_start_time_seconds ",
        ] {
            assert!(text.lines().any(|l| l.starts_with(name)), "{name}: {text}");
        }
    }
}
