//! Where a result comes from, recorded in every JSON document: the source tree's git
//! commit (and whether it had uncommitted changes), the exact command line (with any
//! URL's password replaced by `***`), the machine, and the CPU pinning.

use serde_json::{json, Value};

use crate::pin::Pinning;

/// The `provenance` object of a JSON document.
pub fn provenance(pinning: &Pinning) -> Value {
    // A URL's password (--database-url, --redis-url) never reaches the document.
    let argv: Vec<String> = std::env::args()
        .map(|a| crate::deploy::redact_url(&a))
        .collect();
    json!({
        "git": git(),
        "command": shell_line(&argv),
        "argv": argv,
        "cwd": std::env::current_dir().ok().map(|d| d.display().to_string()),
        "machine": machine(),
        "pinning": pinning,
    })
}

/// `git rev-parse HEAD` and `git status --porcelain` in the working directory (the
/// bench is run from the repository root): `{"commit", "dirty"}`, or `{"error"}` when
/// git or the repository is missing. `dirty` counts tracked files only: untracked
/// results and scratch files do not change what was built.
fn git() -> Value {
    let run = |args: &[&str]| -> Result<String, String> {
        let out = std::process::Command::new("git")
            .args(args)
            .output()
            .map_err(|e| format!("git: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    match (
        run(&["rev-parse", "HEAD"]),
        run(&["status", "--porcelain", "--untracked-files=no"]),
    ) {
        (Ok(commit), Ok(status)) => json!({
            "commit": commit,
            "dirty": !status.is_empty(),
            "changed_files": status.lines().count(),
        }),
        (Err(e), _) | (_, Err(e)) => json!({ "error": e }),
    }
}

/// A program's canonical path, size and modification time (seconds since the Unix
/// epoch), to tell which build ran; `{"error"}` if it cannot be read.
pub fn binary(path: &std::path::Path) -> Value {
    let meta = std::fs::canonicalize(path).and_then(|p| Ok((std::fs::metadata(&p)?, p)));
    match meta {
        Ok((m, p)) => json!({
            "path": p.display().to_string(),
            "bytes": m.len(),
            "modified_unix": m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs()),
        }),
        Err(e) => json!({ "path": path.display().to_string(), "error": e.to_string() }),
    }
}

/// `argv` as one line a POSIX shell reads back into the same words.
pub fn shell_line(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let plain = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_./=,:@%+-".contains(c));
            if plain {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The machine: CPU model, online CPUs (whatever this process is pinned to), RAM, kernel,
/// open-file limit.
fn machine() -> Value {
    // SAFETY: sysconf reads a constant.
    let online = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |name: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = field("model name")
        .or_else(|| {
            // Some VMs name no model: the vendor and family/model numbers then.
            Some(format!(
                "{} family {} model {}",
                field("vendor_id")?,
                field("cpu family")?,
                field("model")?
            ))
        })
        .unwrap_or_default();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_owned();
    json!({
        "cpus": online.max(0),
        "cpu_model": model,
        "memory_gib": (mem_kib as f64 / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "open_files_limit": crate::proc::open_files_limit(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_quotes_only_what_a_shell_would_split() {
        let argv: Vec<String> = [
            "target/release/palaver-bench",
            "capacity",
            "--start-rate",
            "palaver=10,socketio=2",
            "--out",
            "my results/x.json",
            "it's",
            "",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            shell_line(&argv),
            r"target/release/palaver-bench capacity --start-rate palaver=10,socketio=2 --out 'my results/x.json' 'it'\''s' ''"
        );
    }
}
