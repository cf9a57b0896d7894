//! What the kernel says about a server process: CPU seconds and resident memory, read
//! from `/proc/<pid>/stat` and `/proc/<pid>/status` (proc(5)).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// CPU time (user + system) the process has used, in seconds; `None` if it is gone.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks_per_second())
}

/// `sysconf(_SC_CLK_TCK)`: 100 on every Linux build we know of.
fn clock_ticks_per_second() -> f64 {
    100.0
}

/// Resident memory of the process now (`VmRSS`), in KiB; `None` if it is gone.
pub fn rss_kib(pid: u32) -> Option<u64> {
    status_field(pid, "VmRSS:")
}

/// The CPUs the process may run on (`Cpus_allowed_list`, e.g. `"0"` or `"0-1"`), as the
/// kernel reports it; `None` if it is gone.
pub fn cpus_allowed_list(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(|v| v.trim().to_owned())
}

fn status_field(pid: u32, name: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with(name))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The soft limit on open files of this process (`RLIMIT_NOFILE`), from
/// `/proc/self/limits`.
pub fn open_files_limit() -> u64 {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(1024)
}

/// Samples the resident memory of one or several processes (a server's nodes) every
/// 50 ms, keeping each one's peak and the peak of their sum, until dropped.
pub struct PeakRss {
    /// Each process's peak, in the order given.
    peaks: Arc<Vec<AtomicU64>>,
    /// The peak of the sum over the processes, sampled together.
    total: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl PeakRss {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> PeakRss {
        PeakRss::start_many(&[pid])
    }

    /// Starts sampling every process of `pids`.
    pub fn start_many(pids: &[u32]) -> PeakRss {
        let count = pids.len();
        let pids = pids.to_vec();
        let sample = move |peaks: &[AtomicU64], total: &AtomicU64| {
            let mut sum = 0;
            for (pid, peak) in pids.iter().zip(peaks) {
                let rss = rss_kib(*pid).unwrap_or(0);
                peak.fetch_max(rss, Ordering::Relaxed);
                sum += rss;
            }
            total.fetch_max(sum, Ordering::Relaxed);
        };
        let peaks: Arc<Vec<AtomicU64>> = Arc::new(
            std::iter::repeat_with(|| AtomicU64::new(0))
                .take(count)
                .collect(),
        );
        let total = Arc::new(AtomicU64::new(0));
        sample(&peaks, &total);
        let stop = Arc::new(AtomicBool::new(false));
        let (p, t, s) = (peaks.clone(), total.clone(), stop.clone());
        tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                sample(&p, &t);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        PeakRss { peaks, total, stop }
    }

    /// The highest resident memory seen so far, in KiB: of the process, or of the
    /// processes together.
    pub fn peak_kib(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// Each process's own peak so far, in KiB, in the order given.
    pub fn peaks_kib(&self) -> Vec<u64> {
        self.peaks
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .collect()
    }
}

impl Drop for PeakRss {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
