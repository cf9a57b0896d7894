//! Latency histograms (HdrHistogram, microseconds) and the counts one client shard
//! reports, mergeable across tasks and processes.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded, in microseconds (60 s); anything above is clamped to it.
const MAX_LATENCY_US: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
#[derive(Clone, Debug)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        Latency(Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid bounds"))
    }
}

impl Latency {
    /// Records one latency, in microseconds.
    pub fn record(&mut self, us: u64) {
        let _ = self.0.record(us.clamp(1, MAX_LATENCY_US));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    /// How many values were recorded.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// The summary reported in results: count and quantiles in milliseconds.
    pub fn summary(&self) -> LatencySummary {
        let ms = |q: f64| {
            if self.0.is_empty() {
                0.0
            } else {
                self.0.value_at_quantile(q) as f64 / 1000.0
            }
        };
        LatencySummary {
            count: self.0.len(),
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: if self.0.is_empty() {
                0.0
            } else {
                self.0.max() as f64 / 1000.0
            },
        }
    }

    /// The recorded values as `(value_us, count)` pairs, to carry across processes.
    pub fn to_pairs(&self) -> Vec<(u64, u64)> {
        self.0
            .iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect()
    }

    /// The inverse of [`Latency::to_pairs`].
    pub fn from_pairs(pairs: &[(u64, u64)]) -> Latency {
        let mut l = Latency::default();
        for &(value, count) in pairs {
            let _ = l.0.record_n(value.clamp(1, MAX_LATENCY_US), count);
        }
        l
    }
}

/// Latency quantiles, in milliseconds.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}
