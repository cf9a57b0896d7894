//! Micro-benchmark of the SQLite message writer (group commit), in isolation from HTTP,
//! WebSocket, the hub and the broker.
//!
//! Opens a fresh database in a temporary directory, creates `--users` users and `--rooms`
//! rooms, then runs `--tasks` concurrent tasks that each send their share of `--messages`
//! messages the way a client of the `rooms` bench scenario does: queue one message, wait
//! until it is committed (a durable ack), queue the next. Prints acknowledged messages per
//! second, the number of commits (one fsync each) and the mean batch size, and the ack
//! latency percentiles. The defaults mirror the `rooms` scenario of palaver-bench: 200
//! rooms of 5 members, each member keeping 4 sends in flight (4,000 senders here), 64 B
//! of content.
//!
//! ```text
//! cargo run -p palaver-server --example writer_bench -- --messages 100000 --tasks 1000
//! cargo run --release -p palaver-server --example writer_bench
//! ```
//!
//! This is a measuring tool, not a test: it asserts nothing about speed (it only checks
//! that every message was stored, so a broken writer cannot report a figure).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use clap::Parser;
use palaver_protocol::{MessageType, Role, RoomKind, Visibility};
use palaver_server::store::sqlite::SqliteStore;
use palaver_server::store::{NewMessage, NewRoom, Store, UserRow};

/// What to measure.
#[derive(Debug, Parser)]
struct Args {
    /// Messages sent in all.
    #[arg(long, default_value_t = 100_000)]
    messages: usize,
    /// Concurrent senders, each waiting for its previous message's ack (messages in
    /// flight).
    #[arg(long, default_value_t = 4_000)]
    tasks: usize,
    /// Rooms the senders spread over (sender `t` writes to room `t % rooms`).
    #[arg(long, default_value_t = 200)]
    rooms: usize,
    /// Sender accounts (sender `t` is user `t % users`).
    #[arg(long, default_value_t = 1_000)]
    users: usize,
    /// Bytes of content per message.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Directory for the database (default: a fresh temporary directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
}

const AT: &str = "2026-11-21T10:00:00.000Z";

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.tasks > 0 && args.rooms > 0 && args.users > 0,
        "tasks, rooms and users must be > 0"
    );
    let temp = tempfile::tempdir()?;
    let dir = args.dir.clone().unwrap_or_else(|| temp.path().to_owned());
    let path = dir.join(format!("writer-bench-{}.db", std::process::id()));
    let db = SqliteStore::open(&path)
        .await
        .context("opening the database")?;
    let store = db.store();
    setup(&store, &args).await?;

    let per_task = args.messages / args.tasks;
    let extra = args.messages % args.tasks;
    let content: Arc<str> = "x".repeat(args.size).into();
    let before = db.writer_stats();
    let cpu_before = thread_cpu();
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.tasks);
    for t in 0..args.tasks {
        let count = per_task + usize::from(t < extra);
        let store = store.clone();
        let room = format!("room-{}", t % args.rooms);
        let sender = format!("user-{}", t % args.users);
        let content = content.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(count);
            for i in 0..count {
                let message = NewMessage {
                    id: uuid::Uuid::now_v7().to_string(),
                    room_id: room.clone(),
                    sender_id: sender.clone(),
                    content: content.to_string(),
                    client_id: Some(format!("{t}-{i}")),
                    created_at: AT.into(),
                    message_type: MessageType::Text,
                    reply_to: None,
                    attachment_id: None,
                    call: None,
                };
                let sent = Instant::now();
                let (_, created) = store
                    .messages
                    .queue_message(message)
                    .await?
                    .committed()
                    .await?;
                latencies.push(sent.elapsed());
                ensure!(created, "message {t}-{i} was not stored as new");
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(args.messages);
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    let after = db.writer_stats();
    let cpu_after = thread_cpu();
    db.store().database.close().await;

    let commits = after.commits - before.commits;
    let messages = after.messages - before.messages;
    ensure!(
        messages as usize == args.messages,
        "{messages} messages committed, {} sent",
        args.messages
    );
    latencies.sort_unstable();
    let pct = |p: f64| -> Duration {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    println!(
        "writer_bench: {} messages, {} tasks, {} rooms, {} users, {} B each ({} build)",
        args.messages,
        args.tasks,
        args.rooms,
        args.users,
        args.size,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
    );
    println!(
        "  {:.0} acknowledged msg/s ({:.2} s); {commits} commits, {:.1} messages per commit \
         ({} failed batches)",
        args.messages as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64(),
        messages as f64 / commits.max(1) as f64,
        after.failed_batches - before.failed_batches,
    );
    println!(
        "  ack latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        pct(1.0).as_secs_f64() * 1e3,
    );
    // CPU per thread kind, which a busy machine distorts less than wall-clock time: the
    // writer's share bounds its throughput on one core whatever else runs.
    let mut by_name = std::collections::BTreeMap::<String, f64>::new();
    for (tid, (name, seconds)) in &cpu_after {
        let earlier = cpu_before.get(tid).map_or(0.0, |(_, s)| *s);
        let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-');
        *by_name.entry(name.to_owned()).or_default() += seconds - earlier;
    }
    let total: f64 = by_name.values().sum();
    println!(
        "  CPU: {:.1} µs per message in all; {}",
        total * 1e6 / args.messages as f64,
        by_name
            .iter()
            .filter(|(_, s)| **s > 0.0)
            .map(|(name, s)| format!("{name} {:.1} µs", s * 1e6 / args.messages as f64))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// CPU seconds (user + system) of each thread of this process, by thread id, with its
/// name; empty where `/proc` is not there.
fn thread_cpu() -> std::collections::HashMap<String, (String, f64)> {
    let mut threads = std::collections::HashMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return threads;
    };
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    for task in tasks.flatten() {
        let dir = task.path();
        let (Ok(name), Ok(stat)) = (
            std::fs::read_to_string(dir.join("comm")),
            std::fs::read_to_string(dir.join("stat")),
        ) else {
            continue;
        };
        // Fields after the parenthesised name: state is field 3; utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(utime), Some(stime)) = (
            fields.get(11).and_then(|f| f.parse::<f64>().ok()),
            fields.get(12).and_then(|f| f.parse::<f64>().ok()),
        ) else {
            continue;
        };
        threads.insert(
            task.file_name().to_string_lossy().into_owned(),
            (name.trim().to_owned(), (utime + stime) / ticks),
        );
    }
    threads
}

/// The senders and the rooms.
async fn setup(store: &Store, args: &Args) -> anyhow::Result<()> {
    for u in 0..args.users {
        store
            .users
            .create_user(&UserRow {
                id: format!("user-{u}"),
                username: format!("user{u}"),
                email: format!("user{u}@example.com"),
                password_hash: "x".into(),
                role: Role::User,
                profile: Default::default(),
                settings: "{}".into(),
                created_at: AT.into(),
                disabled_at: None,
                deleted_at: None,
            })
            .await?;
    }
    for r in 0..args.rooms {
        store
            .rooms
            .create_room(&NewRoom {
                id: format!("room-{r}"),
                name: format!("room-{r}"),
                topic: None,
                visibility: Visibility::Public,
                kind: RoomKind::Channel,
                created_by: "user-0".into(),
                created_at: AT.into(),
            })
            .await?;
    }
    Ok(())
}
