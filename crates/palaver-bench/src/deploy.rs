//! How the Palaver target is deployed for a run: one node on SQLite (the default), or one
//! or several nodes sharing one PostgreSQL database and one Redis (`--palaver-nodes`,
//! `--database-url`, `--redis-url`).
//!
//! - **Database:** with `--database-url postgres://user[:password]@host:port/db`, every
//!   start of the Palaver target (each scenario, each target) gets a fresh, empty
//!   database `palaver_bench_<16 hex digits>` made next to `db` on that server
//!   (`CREATE DATABASE`, over one connection to the URL as given: its role must be
//!   allowed to create databases), and drops it (`DROP DATABASE … WITH (FORCE)`,
//!   PostgreSQL 13 or later) when the server is dropped, on success or error; a run killed
//!   by a signal leaves it behind (`palaver_bench_*`, see `BENCHMARKS.md`).
//! - **Redis:** `--redis-url redis://…` is handed to every node as it is
//!   (`PALAVER_REDIS_URL`); the bench writes nothing to it.
//! - **Nodes:** `--palaver-nodes N` starts N `palaver` processes, one after the other
//!   (node 0 applies the migrations before node 1 starts), each with its own data
//!   directory and the same `auth.jwt_secret` (a random one per start), so a token from
//!   one node is good on every node. N > 1 needs both URLs. The load spreads its
//!   connections over the nodes ([`crate::load::spread_over_nodes`]); accounts and rooms
//!   are made on node 0.
//!
//! The JSON records the deployment ([`describe`]): node count, database kind, whether
//! Redis is used, where each came from, never a URL (they may hold a password).

use std::fmt;

use anyhow::Context as _;
use serde_json::{json, Value};

/// The deployment options every scenario takes (they apply to the `palaver` target only;
/// the peers always run as one process).
#[derive(Clone, Default, clap::Args)]
pub struct DeployArgs {
    /// Palaver nodes to run (the palaver target only; fanout, capacity and rooms).
    /// Above 1 needs --database-url and --redis-url. Every node shares the server's
    /// CPU budget: pinned, all of them run on the one server CPU, so N nodes are
    /// compared with one node on the same hardware.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub palaver_nodes: usize,
    /// PostgreSQL for Palaver instead of SQLite: `postgres://user[:password]@host:port/db`.
    /// Each server start gets a fresh database made next to `db` (its role must be
    /// allowed to create databases), dropped after the run.
    #[arg(long, value_name = "postgres://…")]
    pub database_url: Option<String>,
    /// The Redis every Palaver node shares: `redis://[:password@]host:port[/db]`.
    #[arg(long, value_name = "redis://…")]
    pub redis_url: Option<String>,
}

impl fmt::Debug for DeployArgs {
    /// The URLs without their passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeployArgs")
            .field("palaver_nodes", &self.palaver_nodes)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .finish()
    }
}

impl DeployArgs {
    /// Checks the options before anything starts.
    ///
    /// # Errors
    /// No node; several nodes without both URLs; a database URL that is not
    /// `postgres://` or `postgresql://` with a host; a Redis URL that is not `redis://`.
    /// The messages never hold a URL.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.palaver_nodes >= 1,
            "--palaver-nodes must be at least 1"
        );
        if self.palaver_nodes > 1 {
            let mut missing = Vec::new();
            if self.database_url.is_none() {
                missing.push("--database-url postgres://… (the database the nodes share)");
            }
            if self.redis_url.is_none() {
                missing.push("--redis-url redis://… (the Redis that carries events between nodes)");
            }
            anyhow::ensure!(
                missing.is_empty(),
                "--palaver-nodes {} needs {}",
                self.palaver_nodes,
                missing.join(" and ")
            );
        }
        if let Some(url) = &self.database_url {
            let (scheme, rest) = url.split_once("://").unwrap_or(("", ""));
            anyhow::ensure!(
                matches!(scheme, "postgres" | "postgresql"),
                "--database-url must be a postgres:// or postgresql:// URL"
            );
            anyhow::ensure!(
                !authority(rest).is_empty(),
                "--database-url names no host: use postgres://user@host:port/database"
            );
        }
        if let Some(url) = &self.redis_url {
            anyhow::ensure!(
                url.starts_with("redis://"),
                "--redis-url must be a redis:// URL (Palaver refuses rediss://)"
            );
        }
        Ok(())
    }

    /// Whether this deployment runs Palaver on PostgreSQL, from `--database-url` or an
    /// inherited `PALAVER_DATABASE_URL` (`env` holds the inherited `PALAVER_*` variables).
    pub fn postgres(&self, env: &[(String, String)]) -> bool {
        self.database_url.is_some() || env.iter().any(|(k, _)| k == "PALAVER_DATABASE_URL")
    }
}

/// The `PALAVER_*` variables of this process, which every server it starts inherits.
pub fn inherited_palaver_env() -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("PALAVER_"))
        .collect();
    env.sort();
    env
}

/// The `palaver_deployment` object of the provenance: node count, database kind and
/// source, PostgreSQL's version, Redis and its source, each node's allowed CPUs, and the
/// names (never the values) of the inherited `PALAVER_*` variables. Holds no URL.
pub fn describe(
    args: &DeployArgs,
    inherited: &[(String, String)],
    postgres_version: Option<&str>,
    node_cpus_allowed: &[Option<String>],
) -> Value {
    let has = |name: &str| inherited.iter().any(|(k, _)| k == name);
    let database_from = if args.database_url.is_some() {
        Some("--database-url: a fresh database per server start, dropped after it")
    } else if has("PALAVER_DATABASE_URL") {
        Some("PALAVER_DATABASE_URL, inherited: one database for every start")
    } else {
        None
    };
    let redis_from = if args.redis_url.is_some() {
        Some("--redis-url")
    } else if has("PALAVER_REDIS_URL") {
        Some("PALAVER_REDIS_URL, inherited")
    } else {
        None
    };
    json!({
        "nodes": args.palaver_nodes,
        "database": if database_from.is_some() { "postgres" } else { "sqlite" },
        "database_from": database_from,
        "postgres_version": postgres_version,
        "redis": redis_from.is_some(),
        "redis_from": redis_from,
        "shared_jwt_secret": true,
        "node_cpus_allowed": node_cpus_allowed,
        "inherited_palaver_env": inherited.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
    })
}

/// The authority (`user:password@host:port`) of the part of a URL after `scheme://`.
fn authority(rest: &str) -> &str {
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

/// `url` with its database (path) replaced by `name`, its query kept:
/// `postgres://u:p@h:5432/postgres?sslmode=require` → `postgres://u:p@h:5432/<name>?sslmode=require`.
pub fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (scheme, rest) = url.split_once("://").context("not a URL")?;
    let auth = authority(rest);
    let after = &rest[auth.len()..];
    let query = after.find('?').map_or("", |q| &after[q..]);
    Ok(format!("{scheme}://{auth}/{name}{query}"))
}

/// `url` with the password of its user info replaced by `***` (unchanged when it has
/// none, or is not a URL).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let auth = authority(rest);
    let Some((user_info, host)) = auth.rsplit_once('@') else {
        return url.to_owned();
    };
    let Some((user, _password)) = user_info.split_once(':') else {
        return url.to_owned();
    };
    format!("{scheme}://{user}:***@{host}{}", &rest[auth.len()..])
}

/// A fresh database's name: `palaver_bench_` and 16 random hex digits.
pub fn fresh_database_name() -> String {
    format!("palaver_bench_{}", random_hex(8))
}

/// `bytes` random bytes from `/dev/urandom`, in hex (falls back on the clock and pid).
pub fn random_hex(bytes: usize) -> String {
    use std::io::Read as _;
    let mut buf = vec![0u8; bytes];
    let read = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut buf));
    if read.is_err() {
        let seed = crate::target::now_us() ^ (u64::from(std::process::id()) << 32);
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (seed.rotate_left(8 * i as u32 % 64) & 0xff) as u8 ^ i as u8;
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// A PostgreSQL database made for one server start; dropped (with its connections) when
/// this is.
pub struct FreshDatabase {
    admin_url: String,
    name: String,
    /// The fresh database's URL (holds the admin URL's password, if any: never record it).
    pub url: String,
    /// `SHOW server_version`.
    pub server_version: String,
}

impl FreshDatabase {
    /// Creates a fresh database next to the one `admin_url` names.
    ///
    /// # Errors
    /// No PostgreSQL server there, or its role may not create databases (the message
    /// holds the redacted URL).
    pub async fn create(admin_url: &str) -> anyhow::Result<FreshDatabase> {
        use sqlx::Connection as _;
        let name = fresh_database_name();
        let url = with_database(admin_url, &name)?;
        let outcome = async {
            let mut admin = sqlx::PgConnection::connect(admin_url).await?;
            sqlx::query(&format!("CREATE DATABASE \"{name}\""))
                .execute(&mut admin)
                .await?;
            let version: String = sqlx::query_scalar("SHOW server_version")
                .fetch_one(&mut admin)
                .await?;
            admin.close().await?;
            anyhow::Ok(version)
        }
        .await;
        let server_version = outcome.with_context(|| {
            format!(
                "creating database {name} on {} (--database-url)",
                redact_url(admin_url)
            )
        })?;
        Ok(FreshDatabase {
            admin_url: admin_url.to_owned(),
            name,
            url,
            server_version,
        })
    }
}

impl Drop for FreshDatabase {
    /// `DROP DATABASE … WITH (FORCE)`, on a thread of its own (a drop may happen inside
    /// the runtime); a failure is only reported on stderr.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        let outcome = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .execute(&mut admin)
                    .await?;
                admin.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("warning: dropping database {}: {e:#}", self.name),
            Err(_) => eprintln!("warning: dropping database {} panicked", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(nodes: usize, db: Option<&str>, redis: Option<&str>) -> DeployArgs {
        DeployArgs {
            palaver_nodes: nodes,
            database_url: db.map(String::from),
            redis_url: redis.map(String::from),
        }
    }

    #[test]
    fn the_fresh_database_replaces_the_path_and_keeps_the_rest() {
        assert_eq!(
            with_database(
                "postgres://postgres@127.0.0.1:5432/postgres",
                "palaver_bench_ab"
            )
            .unwrap(),
            "postgres://postgres@127.0.0.1:5432/palaver_bench_ab"
        );
        assert_eq!(
            with_database(
                "postgresql://u:p%40ss@db.example:6543/admin?sslmode=require",
                "x"
            )
            .unwrap(),
            "postgresql://u:p%40ss@db.example:6543/x?sslmode=require"
        );
        assert_eq!(
            with_database("postgres://h", "x").unwrap(),
            "postgres://h/x"
        );
        assert_eq!(
            with_database("postgres://h?sslmode=disable", "x").unwrap(),
            "postgres://h/x?sslmode=disable"
        );
        assert!(with_database("h:5432/db", "x").is_err());
    }

    #[test]
    fn fresh_database_names_are_plain_identifiers_and_differ() {
        let a = fresh_database_name();
        let b = fresh_database_name();
        assert_ne!(a, b);
        assert_eq!(a.len(), "palaver_bench_".len() + 16);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }

    #[test]
    fn passwords_are_redacted_and_nothing_else() {
        assert_eq!(
            redact_url("postgres://bench:s3cret@db:5432/postgres?sslmode=require"),
            "postgres://bench:***@db:5432/postgres?sslmode=require"
        );
        assert_eq!(
            redact_url("redis://:hunter2@127.0.0.1:6379/0"),
            "redis://:***@127.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
        assert_eq!(redact_url("--out"), "--out");
        assert!(!format!(
            "{:?}",
            args(2, Some("postgres://u:pw@h/d"), Some("redis://:pw2@h"))
        )
        .contains("pw"));
    }

    #[test]
    fn several_nodes_need_both_urls() {
        assert!(args(1, None, None).validate().is_ok());
        assert!(
            args(1, Some("postgres://postgres@127.0.0.1/postgres"), None)
                .validate()
                .is_ok()
        );
        assert!(args(0, None, None).validate().is_err());
        let e = args(2, None, Some("redis://127.0.0.1"))
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--database-url") && !e.contains("--redis-url"),
            "{e}"
        );
        let e = args(2, Some("postgres://h/d"), None)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--redis-url") && !e.contains("--database-url"),
            "{e}"
        );
        let e = args(3, None, None).validate().unwrap_err().to_string();
        assert!(
            e.contains("--database-url") && e.contains("--redis-url"),
            "{e}"
        );
        assert!(args(2, Some("postgres://h/d"), Some("redis://h:6379"))
            .validate()
            .is_ok());
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for (db, redis) in [
            (Some("mysql://u:topsecret@h/d"), None),
            (Some("postgres:///d?password=topsecret"), None),
            (None, Some("rediss://:topsecret@h:6380")),
            (Some("topsecret"), None),
        ] {
            let e = args(1, db, redis).validate().unwrap_err().to_string();
            assert!(!e.contains("topsecret"), "{e}");
        }
    }

    #[test]
    fn the_description_names_kinds_and_sources_never_urls() {
        let two = args(2, Some("postgres://u:pw1@h/d"), Some("redis://:pw2@h:6379"));
        let inherited = vec![("PALAVER_LOG__FORMAT".to_owned(), "json-pw3".to_owned())];
        let d = describe(
            &two,
            &inherited,
            Some("15.8"),
            &[Some("0".into()), Some("0".into())],
        );
        assert_eq!(d["nodes"], 2);
        assert_eq!(d["database"], "postgres");
        assert_eq!(d["postgres_version"], "15.8");
        assert_eq!(d["redis"], true);
        assert_eq!(d["node_cpus_allowed"], json!(["0", "0"]));
        assert_eq!(d["inherited_palaver_env"], json!(["PALAVER_LOG__FORMAT"]));
        let text = d.to_string();
        assert!(!text.contains("pw") && !text.contains("://"), "{text}");

        let one = describe(&args(1, None, None), &[], None, &[Some("0".into())]);
        assert_eq!(
            (one["database"].as_str(), one["redis"].as_bool()),
            (Some("sqlite"), Some(false))
        );

        let env = vec![
            (
                "PALAVER_DATABASE_URL".to_owned(),
                "postgres://u:pw@h/d".to_owned(),
            ),
            ("PALAVER_REDIS_URL".to_owned(), "redis://h".to_owned()),
        ];
        let inherited = describe(&args(1, None, None), &env, Some("15.8"), &[]);
        assert_eq!(inherited["database"], "postgres");
        assert_eq!(inherited["redis"], true);
        assert!(!inherited.to_string().contains("pw"));
        assert!(args(1, None, None).postgres(&env));
        assert!(!args(1, None, None).postgres(&[]));
    }
}
