//! CPU pinning (`--pin`, the default): the server under test on one core, the generator
//! on the others, so the two stop trading places on the same core and a server's
//! capacity means "what one core does".
//!
//! The CPUs this process may use (`sched_getaffinity(2)`) are split by [`split`]: the
//! first goes to the server, the rest to the generator. The generator (this process) pins
//! itself with `sched_setaffinity(2)` before its runtime starts any thread, so every
//! thread and every `palaver-bench worker` it spawns inherits the mask (affinity is
//! inherited across `fork` and `exec`). Every server process (Palaver, the baseline, the
//! Socket.IO peer on Node) is pinned between `fork` and `exec` by [`pin_server`]. With
//! fewer than 2 CPUs, or with `--no-pin`, nothing is pinned and the JSON says why.
//!
//! With `--palaver-nodes N`, every node is a server process and gets the same server
//! CPUs: on 2 CPUs, all N nodes share CPU 0, the budget of one node, so that one node and
//! N nodes are compared on the same hardware (N nodes pay for their Redis hops and
//! duplicated work out of that one core). PostgreSQL and Redis are not started by the
//! bench and are not pinned.
//!
//! A pinned Palaver sees one CPU (`available_parallelism` honours the mask), so its
//! runtime runs one worker thread and its password hashing one hash at a time.

use std::sync::OnceLock;

use serde::Serialize;

/// How this run is pinned, as recorded in every JSON document.
#[derive(Clone, Debug, Serialize)]
pub struct Pinning {
    /// Whether `--pin` was asked for (the default).
    pub requested: bool,
    /// Whether pinning is in force.
    pub pinned: bool,
    /// The CPUs this process could use before pinning.
    pub allowed_cpus: Vec<usize>,
    /// The CPUs every server process is pinned to (empty: not pinned).
    pub server_cpus: Vec<usize>,
    /// The CPUs the generator (this process and its workers) is pinned to (empty: not
    /// pinned).
    pub generator_cpus: Vec<usize>,
    /// Why pinning is not in force, or what went wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

static PINNING: OnceLock<Pinning> = OnceLock::new();

/// Splits the allowed CPUs (ascending) into `(server, generator)`: the first CPU for the
/// server, every other one for the generator. `None` with fewer than 2 CPUs.
pub fn split(allowed: &[usize]) -> Option<(Vec<usize>, Vec<usize>)> {
    match allowed {
        [first, rest @ ..] if !rest.is_empty() => Some((vec![*first], rest.to_vec())),
        _ => None,
    }
}

/// Pins this process (the calling thread and every thread it starts afterwards) to the
/// generator's CPUs and remembers the server's, when `requested` and there are at least
/// 2 CPUs; else warns on stderr and leaves everything unpinned. Call it once, before the
/// async runtime starts its threads. Returns what was done (also kept for [`current`]).
pub fn apply(requested: bool) -> Pinning {
    let allowed = allowed_cpus().unwrap_or_default();
    let mut pinning = Pinning {
        requested,
        pinned: false,
        allowed_cpus: allowed.clone(),
        server_cpus: Vec::new(),
        generator_cpus: Vec::new(),
        note: None,
    };
    if !requested {
        pinning.note = Some("--no-pin: server and generator share every CPU".into());
    } else {
        match split(&allowed) {
            None => {
                let note = format!(
                    "only {} CPU(s) available ({allowed:?}): server and generator run unpinned",
                    allowed.len()
                );
                eprintln!("warning: {note}");
                pinning.note = Some(note);
            }
            Some((server, generator)) => match set_affinity(&generator) {
                Ok(()) => {
                    eprintln!("pinning: server on CPU {server:?}, generator on CPU {generator:?}");
                    pinning.pinned = true;
                    pinning.server_cpus = server;
                    pinning.generator_cpus = generator;
                }
                Err(e) => {
                    let note = format!("sched_setaffinity failed ({e}): running unpinned");
                    eprintln!("warning: {note}");
                    pinning.note = Some(note);
                }
            },
        }
    }
    let _ = PINNING.set(pinning.clone());
    pinning
}

/// What [`apply`] did (unpinned if it was never called).
pub fn current() -> Pinning {
    PINNING.get().cloned().unwrap_or(Pinning {
        requested: false,
        pinned: false,
        allowed_cpus: allowed_cpus().unwrap_or_default(),
        server_cpus: Vec::new(),
        generator_cpus: Vec::new(),
        note: Some("pinning not applied in this process".into()),
    })
}

/// Makes `command`'s process run on the server's CPUs, when pinning is in force.
pub fn pin_server(command: &mut tokio::process::Command) {
    let Some(p) = PINNING.get().filter(|p| p.pinned) else {
        return;
    };
    let set = cpu_set(&p.server_cpus);
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed; `sched_setaffinity` is a plain system call on
    // a set built before the fork.
    unsafe {
        command.pre_exec(move || {
            if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// The CPUs the calling thread may run on, ascending.
fn allowed_cpus() -> std::io::Result<Vec<usize>> {
    // SAFETY: `cpu_set_t` is plain data; the kernel writes at most its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: `cpu_set_t` is plain data, all zeroes is the empty set; the CPU numbers
    // come from `sched_getaffinity`, so they are below `CPU_SETSIZE`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        set
    }
}

/// Pins the calling thread to `cpus`.
fn set_affinity(cpus: &[usize]) -> std::io::Result<()> {
    let set = cpu_set(cpus);
    // SAFETY: a system call on a set that lives across it.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_gets_the_first_cpu_and_the_generator_the_rest() {
        assert_eq!(split(&[0, 1]), Some((vec![0], vec![1])));
        assert_eq!(split(&[2, 5, 7]), Some((vec![2], vec![5, 7])));
    }

    #[test]
    fn fewer_than_two_cpus_are_not_split() {
        assert_eq!(split(&[3]), None);
        assert_eq!(split(&[]), None);
    }
}
