//! Prometheus metrics (text exposition format 0.0.4 / OpenMetrics) via `prometheus-client`,
//! served at `GET /metrics`.
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
        Metrics {
            registry,
            connections,
            sessions,
            messages_in,
            messages_out,
            fanout_seconds,
            queue_drops,
            slow_consumer_disconnects,
            store_seconds,
            rate_limited,
        }
    }
}

impl Metrics {
    /// A label set with one pair.
    pub fn label(name: &str, value: &str) -> Labels {
        vec![(name.to_owned(), value.to_owned())]
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
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
    }
}
