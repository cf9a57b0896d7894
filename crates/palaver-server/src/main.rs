//! The `palaver` binary: parse the command line, load configuration, serve.

use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use palaver_protocol::rest::RegisterRequest;
use palaver_protocol::Role;
use palaver_server::config::{Config, LogFormat, LogOverrides, Overrides, Secret};
use palaver_server::store::transfer;

/// Palaver: a self-hosted real-time chat and WebRTC signaling server.
#[derive(Parser)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTP and WebSocket (the default).
    Serve(ServeArgs),
    /// Manage accounts from the command line (e.g. bootstrap the first admin).
    Admin {
        #[command(flatten)]
        common: ServeArgs,
        #[command(subcommand)]
        action: AdminAction,
    },
    /// Apply the database's pending migrations and exit (serving applies them too; run
    /// this first when several nodes share one PostgreSQL database).
    Migrate {
        #[command(flatten)]
        common: ServeArgs,
    },
    /// Write every row of the database to a new file (JSON Lines, created 0600: it holds
    /// password and token hashes and every message), e.g. to move to PostgreSQL.
    Export {
        #[command(flatten)]
        common: ServeArgs,
        /// The file to create; it must not exist.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Read a file written by `palaver export` into the database, which must be empty
    /// (e.g. a newly created PostgreSQL database); all or nothing.
    Import {
        #[command(flatten)]
        common: ServeArgs,
        /// The file `palaver export` wrote.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },
}

/// A command that runs against the database and exits.
enum Task {
    Admin(AdminAction),
    Migrate,
    Export(PathBuf),
    Import(PathBuf),
}

#[derive(Subcommand)]
enum AdminAction {
    /// Create an account (it passes the same checks as registration).
    CreateUser {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// The password; read from standard input (one line) when absent, so it need not
        /// appear in the shell history or the process list.
        #[arg(long)]
        password: Option<String>,
        /// Make the account an administrator (same as `--role admin`).
        #[arg(long)]
        admin: bool,
        /// The account's global role: user, moderator or admin.
        #[arg(long, default_value = "user", value_parser = parse_role)]
        role: Role,
    },
    /// Set the global role of an existing account.
    SetRole {
        /// The account's username.
        username: String,
        /// user, moderator or admin.
        #[arg(value_parser = parse_role)]
        role: Role,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("{s:?} is not a role (user, moderator, admin)"))
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Configuration file [default: palaver.toml, read if it exists]. A file named here
    /// must exist.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long, global = true)]
    host: Option<IpAddr>,
    /// Port to listen on; 0 picks a free port [default: 8080].
    #[arg(long, global = true)]
    port: Option<u16>,
    /// Directory for the database and the generated signing key [default: ./data].
    #[arg(long, value_name = "PATH", global = true)]
    data_dir: Option<PathBuf>,
    /// PostgreSQL database, postgres://user:password@host:port/database [default: the
    /// SQLite file in the data directory]. Prefer PALAVER_DATABASE_URL for a URL with a
    /// password: command lines are visible to other users.
    #[arg(long, value_name = "URL", global = true)]
    database_url: Option<String>,
    /// Redis shared by several nodes, redis://[:password@]host:6379 [default: none,
    /// everything in memory]. Prefer PALAVER_REDIS_URL for a URL with a password.
    #[arg(long, value_name = "URL", global = true)]
    redis_url: Option<String>,
    /// Log format: text (default) or json.
    #[arg(long, value_name = "FORMAT", global = true, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("{s:?} is not a log format (text, json)")),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    return_large_allocations_to_the_os();
    private_files_by_default();
    let cli = Cli::parse();
    let (args, task) = match cli.command {
        Some(Command::Serve(args)) => (args, None),
        Some(Command::Admin { common, action }) => (common, Some(Task::Admin(action))),
        Some(Command::Migrate { common }) => (common, Some(Task::Migrate)),
        Some(Command::Export { common, out }) => (common, Some(Task::Export(out))),
        Some(Command::Import { common, input }) => (common, Some(Task::Import(input))),
        None => (cli.serve, None),
    };
    let overrides = Overrides {
        host: args.host,
        port: args.port,
        data_dir: args.data_dir,
        database_url: args.database_url.map(Secret::new),
        redis_url: args.redis_url.map(Secret::new),
        log: args.log_format.map(|format| LogOverrides { format }),
    };
    let file = match &args.config {
        Some(path) if !path.is_file() => {
            anyhow::bail!("configuration file {} does not exist", path.display())
        }
        Some(path) => path.clone(),
        None => PathBuf::from("palaver.toml"),
    };
    let config = Config::load(&file, &overrides).context("loading configuration")?;
    init_tracing(&config.log.level, config.log.format);
    for warning in Config::unknown_env_keys() {
        tracing::warn!("{warning}");
    }
    match task {
        Some(Task::Admin(action)) => return run_admin(&config, action).await,
        Some(Task::Migrate) => return run_migrate(&config).await,
        Some(Task::Export(out)) => return run_export(&config, &out).await,
        Some(Task::Import(input)) => return run_import(&config, &input).await,
        None => {}
    }

    let listener = tokio::net::TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("binding {}:{}", config.host, config.port))?;
    let data_dir = config.data_dir.clone();
    palaver_server::run_notifying(config, listener, shutdown_signal(), |addr| {
        println!("palaver listening on http://{addr}");
        tracing::info!(%addr, data_dir = %data_dir.display(), "serving");
    })
    .await
}

/// Runs an `admin` action against the configured database (the server may be running:
/// the database serialises the writes).
async fn run_admin(config: &Config, action: AdminAction) -> anyhow::Result<()> {
    let (service, store, _hub) = palaver_server::open(config).await?;
    let result = match action {
        AdminAction::CreateUser {
            username,
            email,
            password,
            admin,
            role,
        } => {
            let password = match password {
                Some(p) => p,
                None => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the password from standard input")?;
                    line.trim_end_matches(['\r', '\n']).to_owned()
                }
            };
            let role = if admin { Role::Admin } else { role };
            let req = RegisterRequest {
                username,
                email,
                password,
            };
            service.new_user(req, role).await.map(|user| {
                println!(
                    "created {} ({}) with role {}",
                    user.username,
                    user.id,
                    role.as_str()
                );
            })
        }
        AdminAction::SetRole { username, role } => service
            .set_role_by_username(&username, role)
            .await
            .map(|()| println!("{username} is now {}", role.as_str())),
    };
    store.database.close().await;
    result.map_err(|e| anyhow::anyhow!("{e}"))
}

/// Applies the pending migrations of the configured database and says which.
async fn run_migrate(config: &Config) -> anyhow::Result<()> {
    let migrated = transfer::migrate(&config.database()?).await?;
    for (version, description) in &migrated.applied {
        println!("applied migration {version} ({description})");
    }
    if migrated.applied.is_empty() {
        println!(
            "the {} database is up to date (schema version {})",
            migrated.backend, migrated.schema_version
        );
    } else {
        println!(
            "the {} database is now at schema version {}",
            migrated.backend, migrated.schema_version
        );
    }
    Ok(())
}

/// Exports the configured database to the new file `out`.
async fn run_export(config: &Config, out: &std::path::Path) -> anyhow::Result<()> {
    let summary = transfer::export(&config.database()?, out).await?;
    println!(
        "exported {} rows from the {} database (schema version {}) to {}",
        summary.total(),
        summary.backend,
        summary.schema_version,
        out.display()
    );
    Ok(())
}

/// Imports the file `input` into the configured (empty) database.
async fn run_import(config: &Config, input: &std::path::Path) -> anyhow::Result<()> {
    let summary = transfer::import(&config.database()?, input).await?;
    for (table, rows) in &summary.rows {
        println!("{table}: {rows}");
    }
    println!(
        "imported {} rows from {} into the {} database",
        summary.total(),
        input.display(),
        summary.backend
    );
    Ok(())
}

/// Logs to stderr, filtered by `RUST_LOG` if set, else by the configured level; as text or
/// as one JSON object per line.
fn init_tracing(level: &str, format: LogFormat) {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::prelude::*;
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| level.to_owned());
    let filter: Targets = spec
        .parse()
        .unwrap_or_else(|_| Targets::new().with_default(tracing::Level::INFO));
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .init(),
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
            )
            .init(),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

/// Every file and directory the server creates is its owner's only (umask 077): the data
/// directory holds password hashes and every private message (ASVS 5.0 V13.3).
#[cfg(unix)]
fn private_files_by_default() {
    // SAFETY: umask(2) cannot fail; it is set once at start, before any file is created.
    unsafe {
        libc::umask(0o077);
    }
}

#[cfg(not(unix))]
fn private_files_by_default() {}

/// Makes glibc serve allocations of 4 MiB and more with their own `mmap` and give them
/// back on free (mallopt(3), `M_MMAP_THRESHOLD`). Without it, glibc raises that threshold
/// after the first large free and then keeps each 19 MiB argon2 buffer in the heap of
/// whichever of its (up to 8 per CPU) arenas the hashing thread used: a server that had
/// handled a few dozen logins stayed at about 230 MiB resident for good. Setting the
/// threshold also turns off its dynamic adjustment.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_large_allocations_to_the_os() {
    // SAFETY: mallopt only changes allocator parameters and is thread-safe in glibc (it
    // takes the arena lock); it is called once, at start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_large_allocations_to_the_os() {}
