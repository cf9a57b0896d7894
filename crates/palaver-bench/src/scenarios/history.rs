//! `history`: history page reads against one room holding millions of messages; reports
//! the latency quantiles of `GET /api/v1/rooms/{room_id}/messages?before=<seq>&limit=<n>`
//! as a client sees them (request sent to page decoded).
//!
//! Setup: one account and one room through the REST API; then the server is stopped
//! (SIGTERM) and `--messages` messages are written straight into its SQLite file in one
//! transaction (seq `1..=N`, all by that account, ids `bench-0000000001`, …), the
//! `messages_take_seq` trigger dropped around the bulk insert and recreated from its own
//! stored SQL, and `rooms.last_seq` set to `N` once; the schema is left exactly as it
//! was. The server is started again on the same data directory and its `last_seq` for the
//! room checked.
//!
//! Measurement: `--warmup` unmeasured requests, then `--requests` sequential ones, each for
//! the page ending just before a uniformly random seq in `page + 1 ..= N`. Every page is
//! checked (exactly `page` messages, seqs contiguous and ascending up to `before - 1`, the
//! seeded content, `has_more` right); a wrong page counts in `bad_pages`, which must be 0.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use palaver_client::Client;
use palaver_protocol::Visibility;
use serde::{Deserialize, Serialize};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{ConnectOptions as _, Connection as _};

use crate::stats::Latency;
use crate::target::Server;

/// Rows inserted per statement while seeding (one transaction holds them all).
const SEED_BATCH: u64 = 1_000_000;

/// `created_at` of message 1, in seconds since the Unix epoch (2026-11-11T10:00:00Z);
/// each later message is 100 ms younger.
const SEED_EPOCH_SECS: i64 = 1_794_391_200;

/// The shape of a history run.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct HistoryArgs {
    /// Messages written into the room before measuring (seq 1..=N).
    #[arg(long, default_value_t = 5_000_000)]
    pub messages: u64,
    /// Messages per page: the request's `limit` (1..=100).
    #[arg(long, default_value_t = 50)]
    pub page: u32,
    /// Measured requests, one at a time.
    #[arg(long, default_value_t = 2000)]
    pub requests: u64,
    /// Unmeasured requests before them (connection set-up, caches).
    #[arg(long, default_value_t = 200)]
    pub warmup: u64,
}

/// What a history run measured, for one target.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct HistoryResult {
    /// Messages in the room (seq 1..=messages).
    pub messages: u64,
    /// Messages per page requested (`limit`).
    pub page: u32,
    /// Measured requests that got a page (failed ones are in `errors`).
    pub requests: u64,
    /// Latency quantiles of the measured requests, ms: request sent to page decoded.
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Measured requests per second (one at a time, so 1000 / mean latency in ms).
    pub requests_per_sec: f64,
    /// Seconds the bulk insert took (opening the database to closing it, checkpoint
    /// included).
    pub seed_secs: f64,
    /// Size of the database file after seeding (`palaver.db`, WAL checkpointed), MiB.
    pub db_mib: f64,
    /// Pages that were not exactly the expected messages (must be 0).
    pub bad_pages: u64,
    /// Measured requests that failed (transport or HTTP error; must be 0).
    pub errors: u64,
    /// CPU seconds the server used during the measured requests, per request, ms.
    pub server_cpu_ms_per_request: f64,
}

/// Prepares the room, seeds it, restarts the server and measures page reads.
pub async fn run(server: &mut Server, args: &HistoryArgs) -> anyhow::Result<HistoryResult> {
    ensure!(
        (1..=100).contains(&args.page),
        "--page must be 1..=100 (the server's limit)"
    );
    ensure!(
        args.messages > u64::from(args.page),
        "--messages must be more than --page"
    );
    let db_path = server
        .data_dir
        .as_ref()
        .context("history needs Palaver's data directory")?
        .path()
        .join("palaver.db");
    let url = server.http_url();
    let run_id = crate::target::now_us();
    let owner = crate::setup::users(&url, 1, &format!("h{run_id}"))
        .await?
        .pop()
        .context("no account")?;
    let room = owner
        .create_room(&format!("history-{run_id}"), Visibility::Public, None)
        .await
        .context("creating the room")?;
    let user_id = owner.user.as_ref().context("no user")?.id.clone();
    let token = owner.token.clone().context("no token")?;

    server.stop().await.context("stopping the server to seed")?;
    eprintln!(
        "  seeding {} messages into {}",
        args.messages,
        db_path.display()
    );
    let started = Instant::now();
    seed(&db_path, &room.id, &user_id, args.messages).await?;
    let seed_secs = started.elapsed().as_secs_f64();
    let db_mib = std::fs::metadata(&db_path)?.len() as f64 / (1024.0 * 1024.0);
    eprintln!("  seeded in {seed_secs:.1} s, database {db_mib:.0} MiB");
    server
        .start_again()
        .await
        .context("starting the server after seeding")?;

    // A fresh client: the old one's pooled connection went with the old process.
    let client = Client::with_token(server.http_url(), token);
    let last_seq = client.get_room(&room.id).await?.last_seq;
    ensure!(
        last_seq == args.messages as i64,
        "the room's last_seq is {last_seq} after seeding {} messages",
        args.messages
    );

    let mut rng = XorShift::new(crate::target::now_us());
    let page = i64::from(args.page);
    let n = args.messages as i64;
    let mut warmup_errors = 0u64;
    for _ in 0..args.warmup {
        let before = rng.between(page + 1, n);
        if client
            .history(&room.id, Some(before), None, Some(page))
            .await
            .is_err()
        {
            warmup_errors += 1;
        }
    }
    ensure!(
        warmup_errors < args.warmup.max(1),
        "every warm-up request failed"
    );

    let mut latency = Latency::default();
    let mut bad_pages = 0u64;
    let mut errors = 0u64;
    let cpu_start = crate::proc::cpu_seconds(server.pid).unwrap_or(0.0);
    let measured = Instant::now();
    for _ in 0..args.requests {
        let before = rng.between(page + 1, n);
        let sent = Instant::now();
        let result = client
            .history(&room.id, Some(before), None, Some(page))
            .await;
        let took = sent.elapsed();
        match result {
            Ok(p) => {
                latency.record(took.as_micros() as u64);
                if let Err(why) = check_page(&p, &room.id, before, page) {
                    bad_pages += 1;
                    if bad_pages <= 3 {
                        eprintln!("  bad page before={before}: {why}");
                    }
                }
            }
            Err(e) => {
                errors += 1;
                if errors <= 3 {
                    eprintln!("  request before={before} failed: {e}");
                }
            }
        }
    }
    let elapsed = measured
        .elapsed()
        .max(Duration::from_micros(1))
        .as_secs_f64();
    let cpu = crate::proc::cpu_seconds(server.pid).unwrap_or(0.0) - cpu_start;
    let s = latency.summary();
    Ok(HistoryResult {
        messages: args.messages,
        page: args.page,
        requests: latency.len(),
        p50_ms: s.p50_ms,
        p99_ms: s.p99_ms,
        p999_ms: s.p999_ms,
        max_ms: s.max_ms,
        requests_per_sec: args.requests as f64 / elapsed,
        seed_secs,
        db_mib,
        bad_pages,
        errors,
        server_cpu_ms_per_request: cpu * 1000.0 / args.requests.max(1) as f64,
    })
}

/// Writes messages `1..=count` of `room_id`, sent by `user_id`, into the stopped server's
/// database at `path`, in one transaction; leaves the schema as it found it.
async fn seed(
    path: &std::path::Path,
    room_id: &str,
    user_id: &str,
    count: u64,
) -> anyhow::Result<()> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        // Nothing else has the file open, and a crash only loses a throwaway directory.
        .synchronous(SqliteSynchronous::Off)
        // Both references are known good; checking 2 per row only slows the insert.
        .foreign_keys(false)
        .pragma("cache_size", "-524288")
        .pragma("temp_store", "memory");
    let mut conn = options.connect().await.context("opening the database")?;
    let trigger: Option<String> = sqlx::query_scalar(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'messages_take_seq'",
    )
    .fetch_optional(&mut conn)
    .await?;
    let Some(trigger) = trigger else {
        bail!("the database has no messages_take_seq trigger: schema changed?");
    };
    let schema_before = schema(&mut conn).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("DROP TRIGGER messages_take_seq")
        .execute(&mut *tx)
        .await?;
    let mut from = 1u64;
    while from <= count {
        let to = (from + SEED_BATCH - 1).min(count);
        // Seq x: id `bench-<x, 10 digits>`, created 100 ms after seq x - 1.
        sqlx::query(
            "WITH RECURSIVE n(x) AS (SELECT ?1 UNION ALL SELECT x + 1 FROM n WHERE x < ?2)
             INSERT INTO messages
                 (id, room_id, seq, sender_id, content, client_id, created_at, message_type,
                  updated_seq)
             SELECT printf('bench-%010d', x), ?3, x, ?4,
                    printf('history bench message %d: the quick brown fox jumps over the lazy dog', x),
                    NULL,
                    strftime('%Y-%m-%dT%H:%M:%S', ?5 + x / 10, 'unixepoch')
                        || printf('.%03dZ', (x % 10) * 100),
                    'text', x
             FROM n",
        )
        .bind(from as i64)
        .bind(to as i64)
        .bind(room_id)
        .bind(user_id)
        .bind(SEED_EPOCH_SECS)
        .execute(&mut *tx)
        .await
        .with_context(|| format!("inserting messages {from}..={to}"))?;
        from = to + 1;
    }
    let updated = sqlx::query("UPDATE rooms SET last_seq = ?1 WHERE id = ?2")
        .bind(count as i64)
        .bind(room_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    ensure!(updated == 1, "room {room_id} not found in the database");
    sqlx::query(&trigger).execute(&mut *tx).await?;
    tx.commit().await?;
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&mut conn)
        .await?;
    ensure!(
        schema(&mut conn).await? == schema_before,
        "seeding changed the database schema"
    );
    conn.close().await?;
    Ok(())
}

/// Every schema object of the database: `(type, name, table, sql)`, by type and name.
async fn schema(
    conn: &mut sqlx::SqliteConnection,
) -> anyhow::Result<Vec<(String, String, String, Option<String>)>> {
    Ok(
        sqlx::query_as("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")
            .fetch_all(conn)
            .await?,
    )
}

/// The content the seed gave message `seq`.
fn seeded_content(seq: i64) -> String {
    format!("history bench message {seq}: the quick brown fox jumps over the lazy dog")
}

/// Whether `p` is exactly the page of `limit` messages before seq `before`.
fn check_page(
    p: &palaver_protocol::rest::MessagePage,
    room_id: &str,
    before: i64,
    limit: i64,
) -> Result<(), String> {
    if p.messages.len() as i64 != limit {
        return Err(format!("{} messages, expected {limit}", p.messages.len()));
    }
    let first = before - limit;
    for (i, m) in p.messages.iter().enumerate() {
        let want = first + i as i64;
        if m.seq != want {
            return Err(format!("message {i} has seq {}, expected {want}", m.seq));
        }
        if m.room_id != room_id || m.content != seeded_content(want) {
            return Err(format!("message seq {want} has another room or content"));
        }
    }
    if p.has_more != (first > 1) {
        return Err(format!(
            "has_more is {}, expected {}",
            p.has_more,
            first > 1
        ));
    }
    Ok(())
}

/// xorshift64*: a small, fast, seedable generator (not for cryptography); also used by
/// `reconnect` for its jitter.
pub(crate) struct XorShift(u64);

impl XorShift {
    /// A generator seeded with `seed` (any value).
    pub(crate) fn new(seed: u64) -> XorShift {
        // splitmix64 of the seed, so nearby seeds start far apart.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        XorShift((z ^ (z >> 31)) | 1)
    }

    /// The next 64 random bits.
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `lo..=hi` (`lo <= hi`).
    pub(crate) fn between(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_protocol::rest::MessagePage;

    fn page(room: &str, seqs: std::ops::RangeInclusive<i64>, has_more: bool) -> MessagePage {
        let messages = seqs
            .map(|seq| {
                serde_json::from_value(serde_json::json!({
                    "id": format!("bench-{seq:010}"),
                    "room_id": room,
                    "seq": seq,
                    "sender": {"id": "u", "username": "u"},
                    "content": seeded_content(seq),
                    "client_id": null,
                    "created_at": "2026-11-11T10:00:00.000Z",
                    "message_type": "text",
                    "reply_to": null,
                    "attachment": null,
                    "edited_at": null,
                    "deleted_at": null,
                    "reactions": [],
                }))
                .expect("a message")
            })
            .collect();
        MessagePage { messages, has_more }
    }

    #[test]
    fn pages_are_checked_exactly() {
        assert_eq!(check_page(&page("r", 51..=100, true), "r", 101, 50), Ok(()));
        assert_eq!(check_page(&page("r", 1..=50, false), "r", 51, 50), Ok(()));
        assert!(check_page(&page("r", 1..=50, true), "r", 51, 50).is_err());
        assert!(check_page(&page("r", 52..=100, true), "r", 101, 50).is_err());
        assert!(check_page(&page("r", 50..=99, true), "r", 101, 50).is_err());
        assert!(check_page(&page("other", 51..=100, true), "r", 101, 50).is_err());
        let mut swapped = page("r", 51..=100, true);
        swapped.messages.swap(3, 4);
        assert!(check_page(&swapped, "r", 101, 50).is_err());
    }

    #[test]
    fn random_seqs_stay_in_range() {
        let mut rng = XorShift::new(7);
        let mut hit = [false; 5];
        for _ in 0..1000 {
            let v = rng.between(51, 55);
            assert!((51..=55).contains(&v));
            hit[(v - 51) as usize] = true;
        }
        assert!(hit.iter().all(|&h| h));
    }
}
