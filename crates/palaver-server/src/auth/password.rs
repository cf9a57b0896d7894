//! Password hashing with argon2id, OWASP Password Storage Cheat Sheet parameters
//! (m = 19 MiB, t = 2, p = 1), output as a PHC string. Hashing is CPU-heavy by design,
//! so both calls run on threads of their own, never on the async workers, at a lower CPU
//! priority (nice 10 on Linux: a burst of logins takes the CPU only when live traffic
//! leaves it idle, so it cannot stall message delivery), and at most one per CPU at a
//! time: each holds 19 MiB while it runs, and the allocator keeps what a
//! burst of logins used (41 concurrent registrations left a release server at 800 MiB
//! resident before this limit; with it, memory stays flat however many arrive at once,
//! and they queue instead of thrashing the CPUs).

use std::sync::OnceLock;

use tokio::sync::Semaphore;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand_core::OsRng;

fn hasher() -> Argon2<'static> {
    // 19 MiB, 2 iterations, 1 lane: OWASP's first recommended argon2id configuration.
    let params = Params::new(19 * 1024, 2, 1, None).expect("valid argon2 parameters");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// One permit per CPU: the most hashes computed at once.
fn hashing_slots() -> &'static Semaphore {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    SLOTS
        .get_or_init(|| Semaphore::new(std::thread::available_parallelism().map_or(2, |n| n.get())))
}

/// A job for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// The hashing threads' queue: one thread per hashing slot, started on first use.
fn hashing_threads() -> &'static std::sync::mpsc::SyncSender<Job> {
    static QUEUE: OnceLock<std::sync::mpsc::SyncSender<Job>> = OnceLock::new();
    QUEUE.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        // Never more jobs than slots are queued (each caller holds a slot first).
        let (queue, jobs) = std::sync::mpsc::sync_channel::<Job>(threads);
        let jobs = std::sync::Arc::new(std::sync::Mutex::new(jobs));
        for i in 0..threads {
            let jobs = std::sync::Arc::clone(&jobs);
            let spawned = std::thread::Builder::new()
                .name(format!("palaver-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "starting a password hashing thread");
            }
        }
        queue
    })
}

/// Lowers the calling thread's CPU priority to nice 10 (Linux: `setpriority(2)` on the
/// thread id applies to that thread only). Elsewhere, or if refused, it keeps its
/// priority.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: plain system calls with valid arguments; no memory is shared.
        let refused =
            unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 10) != 0 };
        if refused {
            tracing::debug!("could not lower the password hashing thread's priority");
        }
    }
}

/// Runs `work` on a hashing thread and returns its result.
///
/// # Errors
/// The hashing threads are gone or could not start.
async fn on_hashing_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    let (done, result) = tokio::sync::oneshot::channel();
    hashing_threads()
        .try_send(Box::new(move || {
            let _ = done.send(work());
        }))
        .map_err(|_| anyhow::anyhow!("the password hashing threads are busy or gone"))?;
    Ok(result.await?)
}

/// Hashes `password` with a fresh random salt; returns the PHC string
/// (`$argon2id$v=19$m=19456,t=2,p=1$...`).
///
/// # Errors
/// Only if the blocking pool is gone (shutdown) or the hasher fails.
pub async fn hash(password: String) -> anyhow::Result<String> {
    let _slot = hashing_slots().acquire().await?;
    on_hashing_thread(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))
    })
    .await?
}

/// Checks `password` against a stored PHC string. With `None` (no such account) it
/// verifies against a fixed dummy hash and returns `false`, so both answers take the same
/// time and do not reveal whether the account exists.
pub async fn verify(password: String, stored: Option<String>) -> bool {
    let Ok(_slot) = hashing_slots().acquire().await else {
        return false;
    };
    on_hashing_thread(move || {
        let (phc, exists) = match &stored {
            Some(s) => (s.as_str(), true),
            None => (dummy_hash(), false),
        };
        let Ok(parsed) = PasswordHash::new(phc) else {
            return false;
        };
        let ok = hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        ok && exists
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, computed once, used to equalise timing for unknown users.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(salt.as_str().as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_verifies_and_rejects_wrong_password() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify("correct horse battery".into(), Some(h.clone())).await);
        assert!(!verify("wrong horse battery".into(), Some(h)).await);
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        assert!(!verify("anything".into(), None).await);
    }
}
