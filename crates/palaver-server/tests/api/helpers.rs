//! The test harness: [`TestServer::spawn`] boots Palaver in-process on 127.0.0.1:0 with
//! a temporary data directory; typed helpers make registered users.
//!
//! The servers use the SQLite file in their data directory, or, with
//! `PALAVER_TEST_BACKEND=postgres`, a fresh PostgreSQL database per data directory (see
//! [`test_database_url`]).

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use palaver_client::{Client, ClientError};
use palaver_server::config::{Config, Secret};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long a test waits for the server to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

/// A running server and the directory it keeps its data in.
pub struct TestServer {
    pub base: String,
    pub data_dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<anyhow::Result<()>>,
    /// With the PostgreSQL backend: its database, dropped with the server unless the
    /// server was stopped (its data directory may then serve a restart).
    database: Option<DatabaseGuard>,
}

impl TestServer {
    /// Boots a server with default configuration in a new temporary data directory.
    pub async fn spawn() -> TestServer {
        TestServer::spawn_with(tempfile::tempdir().expect("tempdir"), |_| {}).await
    }

    /// Boots a server on `data_dir` (reusing whatever is there), after letting `tweak`
    /// change the configuration.
    pub async fn spawn_with(data_dir: TempDir, tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            data_dir: data_dir.path().to_path_buf(),
            port: 0,
            ..Config::default()
        };
        // Every test client comes from 127.0.0.1: lift the per-IP budgets that would
        // otherwise throttle a test that registers many users. Tests of those limits set
        // them back in `tweak`.
        config.rate_limits.registrations_per_ip.max = 100_000;
        config.rate_limits.requests_per_ip.max = 1_000_000;
        // Many tests send, ring and create far faster than a person: the per-user limits
        // are off here; tests of them (abuse_limits.rs) set small ones in `tweak`.
        config.user_limits = palaver_server::config::UserLimits::disabled();
        // No default rooms: test users share only the rooms a test makes (tests of
        // default rooms set them in `tweak`).
        config.default_rooms = Vec::new();
        let database = test_database_url(data_dir.path()).map(|(url, name)| {
            config.database_url = Some(Secret::new(url));
            DatabaseGuard { name }
        });
        tweak(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind port 0");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(palaver_server::run(config, listener, async move {
            let _ = rx.await;
        }));
        let base = format!("http://{addr}");
        let server = TestServer {
            base,
            data_dir,
            shutdown: Some(tx),
            handle,
            database,
        };
        server.wait_healthy().await;
        server
    }

    async fn wait_healthy(&self) {
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(resp) = http.get(format!("{}/healthz", self.base)).send().await {
                if resp.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("server did not become healthy at {}", self.base);
    }

    /// Shuts the server down gracefully and returns its data directory (for a restart).
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        tokio::time::timeout(STOP_TIMEOUT, &mut self.handle)
            .await
            .expect("server stops in time")
            .expect("server task did not panic")
            .expect("server exits cleanly");
        if let Some(mut database) = self.database.take() {
            // Kept: the data directory names it, for a restart on it.
            database.name.clear();
        }
        self.data_dir
    }

    /// A client with no credentials.
    pub fn client(&self) -> Client {
        Client::new(self.base.clone())
    }

    /// A client logged in as a freshly registered user whose name starts with `prefix`.
    pub async fn user(&self, prefix: &str) -> Client {
        let name = unique_name(prefix);
        let mut client = self.client();
        client
            .register(&name, &format!("{name}@example.com"), "vivid-otter-42")
            .await
            .expect("register");
        client
    }
}

/// The server that `PALAVER_TEST_BACKEND=postgres` uses, unless
/// `PALAVER_TEST_POSTGRES_URL` names another (its role must be allowed to create databases).
const DEFAULT_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The file in a data directory that names its test database.
const DATABASE_MARKER: &str = "test-database";

/// With `PALAVER_TEST_BACKEND=postgres`: the URL and name of the PostgreSQL database of
/// the test server on `data_dir`, created on first use (`palaver_api_<UUIDv7>`) and named
/// in `<data_dir>/test-database`, so that a restart on the same directory, or the
/// `palaver admin` command run on it, finds the same data. `None` with the SQLite
/// backend (`PALAVER_TEST_BACKEND` unset or `sqlite`). Blocks while it creates the
/// database.
///
/// # Panics
/// Another backend name, or no PostgreSQL server to create the database on.
pub fn test_database_url(data_dir: &std::path::Path) -> Option<(String, String)> {
    match std::env::var("PALAVER_TEST_BACKEND").as_deref() {
        Err(_) | Ok("sqlite") | Ok("") => return None,
        Ok("postgres") => {}
        Ok(other) => panic!("PALAVER_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
    let admin_url = std::env::var("PALAVER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let marker = data_dir.join(DATABASE_MARKER);
    let name = match std::fs::read_to_string(&marker) {
        Ok(name) => name,
        Err(_) => {
            let name = format!("palaver_api_{}", uuid::Uuid::now_v7().simple());
            on_postgres(&admin_url, format!("CREATE DATABASE {name}"));
            std::fs::write(&marker, &name).expect("write the test database's name");
            name
        }
    };
    let mut url = url::Url::parse(&admin_url).expect("PALAVER_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    Some((url.into(), name))
}

/// A fresh, empty PostgreSQL database (`palaver_scratch_<UUIDv7>`, no tables) on the
/// server at `PALAVER_TEST_POSTGRES_URL`, whatever `PALAVER_TEST_BACKEND` says; dropped,
/// with its connections, when the returned value is.
///
/// # Panics
/// No PostgreSQL server to create it on.
pub fn scratch_postgres_database() -> ScratchDatabase {
    let admin_url = std::env::var("PALAVER_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
    let name = format!("palaver_scratch_{}", uuid::Uuid::now_v7().simple());
    on_postgres(&admin_url, format!("CREATE DATABASE {name}"));
    let mut url = url::Url::parse(&admin_url).expect("PALAVER_TEST_POSTGRES_URL is a URL");
    url.set_path(&format!("/{name}"));
    ScratchDatabase {
        url: url.into(),
        _guard: DatabaseGuard { name },
    }
}

/// Drops the test database named in `data_dir` (see [`test_database_url`]), if any: for a
/// test whose servers on `data_dir` used another database, so that the one made for it
/// does not outlive the test.
pub fn drop_test_database(data_dir: &std::path::Path) {
    if let Ok(name) = std::fs::read_to_string(data_dir.join(DATABASE_MARKER)) {
        drop(DatabaseGuard { name });
    }
}

/// A database made by [`scratch_postgres_database`].
pub struct ScratchDatabase {
    /// Its URL (on the test server: no password).
    pub url: String,
    _guard: DatabaseGuard,
}

/// Runs `sql` on the server at `admin_url`, on a thread of its own (callers may be sync or
/// inside a runtime).
fn on_postgres(admin_url: &str, sql: String) {
    let admin_url = admin_url.to_owned();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            use sqlx::Connection as _;
            let mut admin = sqlx::PgConnection::connect(&admin_url).await?;
            sqlx::query(&sql).execute(&mut admin).await?;
            admin.close().await
        })
    })
    .join()
    .expect("the PostgreSQL thread did not panic");
    if let Err(e) = outcome {
        panic!(
            "PALAVER_TEST_BACKEND=postgres needs a PostgreSQL server at \
             PALAVER_TEST_POSTGRES_URL (default {DEFAULT_POSTGRES_URL}): {e}"
        );
    }
}

/// A test server's PostgreSQL database, dropped (with its connections) when this is,
/// unless its name was cleared.
struct DatabaseGuard {
    name: String,
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        if self.name.is_empty() {
            return;
        }
        let admin_url = std::env::var("PALAVER_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| DEFAULT_POSTGRES_URL.to_owned());
        let name = &self.name;
        on_postgres(
            &admin_url,
            format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
        );
    }
}

/// `prefix` plus a process-unique number, e.g. `alice_3`.
pub fn unique_name(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!("{prefix}_{}", N.fetch_add(1, Ordering::Relaxed))
}

/// Asserts a typed REST failure is the error `code` with `status`, naming `field` when one
/// is given.
#[track_caller]
pub fn assert_api_error<T: std::fmt::Debug>(
    result: Result<T, ClientError>,
    status: u16,
    code: &str,
    field: Option<&str>,
) {
    let err = result.expect_err("the request should fail");
    match &err {
        ClientError::Api {
            status: got,
            body: Some(body),
        } => {
            assert_eq!(*got, status, "status; error: {err:?}");
            assert_eq!(body.error.code.as_str(), code, "error.code; error: {err:?}");
            assert!(!body.error.message.is_empty(), "error.message; {err:?}");
            if let Some(field) = field {
                assert_eq!(
                    body.error.field.as_deref(),
                    Some(field),
                    "error.field; {err:?}"
                );
            }
        }
        other => panic!("expected an API error {status} {code}, got {other:?}"),
    }
}

/// Starts `palaver serve --port 0 --data-dir state` in `cwd` (stderr to `log`) and waits
/// for the address it prints; returns the child and its base URL. Panics, with the log's
/// tail, if no address comes within 30 s.
pub fn spawn_palaver(
    cwd: &std::path::Path,
    log: &std::path::Path,
) -> (std::process::Child, String) {
    spawn_palaver_with(cwd, log, &[])
}

/// [`spawn_palaver`] with these environment variables added (e.g. `PALAVER_DATABASE_URL`).
pub fn spawn_palaver_with(
    cwd: &std::path::Path,
    log: &std::path::Path,
    env: &[(&str, String)],
) -> (std::process::Child, String) {
    use std::io::BufRead as _;
    let stderr = std::fs::File::create(log).expect("create log file");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_palaver"))
        .args(["serve", "--port", "0", "--data-dir", "state"])
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        // No default rooms unless `env` names some (as TestServer).
        .env("PALAVER_DEFAULT_ROOMS", "")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn palaver");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        // Keep draining so the server never blocks on a full pipe.
        for _ in lines {}
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = text.lines().rev().take(20).collect::<Vec<_>>().join("\n");
            panic!("palaver printed no address; log tail (newest first):\n{tail}")
        });
    let url = line
        .trim()
        .strip_prefix("palaver listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, url)
}

/// A private `redis-server` (`--save '' --appendonly no`: nothing survives a restart) on a
/// free port of 127.0.0.1, killed on drop; for tests that share state between servers or
/// kill Redis.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<std::process::Child>,
}

impl PrivateRedis {
    /// Starts one on a free port and waits until it answers.
    pub async fn start() -> PrivateRedis {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind port 0")
            .local_addr()
            .expect("local address")
            .port();
        let mut redis = PrivateRedis { port, child: None };
        redis.restart().await;
        redis
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (its data is gone).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port (after [`kill`](Self::kill)) and waits
    /// until it answers PING.
    pub async fn restart(&mut self) {
        self.kill();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is on PATH");
        self.child = Some(child);
        for _ in 0..200 {
            if let Ok(mut tcp) = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut pong = [0u8; 7];
                if tcp.write_all(b"PING\r\n").await.is_ok()
                    && tcp.read_exact(&mut pong).await.is_ok()
                    && &pong == b"+PONG\r\n"
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("redis-server did not start on port {}", self.port);
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A `palaver` process (see [`spawn_process_nodes`]), killed when dropped.
pub struct Process {
    pub child: std::process::Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    _dir: TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `n` `palaver` processes (for tests that kill one with SIGKILL) on the PostgreSQL
/// database `database_url` and the Redis `redis_url`, sharing one JWT key, with the
/// per-IP budgets and the per-user message limit lifted (every test client comes from
/// 127.0.0.1 and sends faster than a person), and `extra` added to their environment.
pub fn spawn_process_nodes(
    n: usize,
    database_url: &str,
    redis_url: &str,
    extra: &[(&str, String)],
) -> Vec<Process> {
    let mut env = vec![
        ("PALAVER_DATABASE_URL", database_url.to_owned()),
        ("PALAVER_REDIS_URL", redis_url.to_owned()),
        (
            "PALAVER_AUTH__JWT_SECRET",
            "a-cluster-wide-test-key-of-32-bytes-or-more".to_owned(),
        ),
        (
            "PALAVER_RATE_LIMITS__REGISTRATIONS_PER_IP__MAX",
            "100000".to_owned(),
        ),
        (
            "PALAVER_RATE_LIMITS__REQUESTS_PER_IP__MAX",
            "1000000".to_owned(),
        ),
        ("PALAVER_USER_LIMITS__MESSAGES__MAX", "0".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    (0..n)
        .map(|_| {
            let dir = tempfile::tempdir().expect("tempdir");
            let (child, base) =
                spawn_palaver_with(dir.path(), &dir.path().join("palaver.log"), &env);
            Process {
                child,
                base,
                _dir: dir,
            }
        })
        .collect()
}

/// A client logged in as a freshly registered user of the server at `base`, whose name
/// starts with `prefix`.
pub async fn user_at(base: &str, prefix: &str) -> Client {
    let name = unique_name(prefix);
    let mut client = Client::new(base.to_owned());
    client
        .register(&name, &format!("{name}@example.com"), "vivid-otter-42")
        .await
        .expect("register");
    client
}
