//! The servers a run compares, how to start them, and how each one's wire protocol
//! carries a bench message.
//!
//! - **Palaver**: the `palaver` binary (release build), authenticated WebSocket at
//!   `/api/v1/ws?access_token=…`, `message.send` requests acknowledged after the commit,
//!   `message.created` events (docs/protocol.md).
//! - **Baseline**: the bare-broadcast server in [`crate::baseline`]: raw WebSocket at
//!   `/<room>`, no auth, no storage, no JSON; every text frame goes to every connection of
//!   the room, the sender's included (its own copy is its acknowledgement).
//! - **Socket.IO**: `bench/peers/socketio/server.js` on Node, Socket.IO 4 over WebSocket
//!   only; Engine.IO v4 packets (`0` open, `2`/`3` ping/pong, `4` message) carrying
//!   Socket.IO v5 packets (`0` connect, `2` event, `3` ack): the client sends
//!   `42<id>["send",{"room","content"}]`, the server acks `43<id>[…]` and emits
//!   `42["message",{"room","content"}]` to the room.
//! - **Palaver over Socket.IO** (`palaver-sio`): the same Palaver server as `palaver`
//!   (binary, configuration, accounts, rooms, tokens, `--palaver-nodes`), driven by the
//!   Socket.IO generator of `socketio` at Palaver's `/socket.io/` endpoint
//!   (docs/socketio.md): the namespace connect carries the access token
//!   (`40{"token":…}`) and the connection counts as open once the server's `ready` event
//!   came; the client sends `42<id>["send_message",{"roomId","content"}]`, the server acks
//!   `43<id>[{"ok":true,…}]` once the message is committed, emits `message_sent` to the
//!   sender (ignored: not a delivery) and `new_message` (with `changeSeq`, the seq) to
//!   every member's sockets, the sender's included.
//! - **Palaver over SignalR** (`palaver-signalr`): the same Palaver server again, driven
//!   over the SignalR JSON hub protocol at its `/hubs/chat` endpoint (docs/signalr.md),
//!   as the official clients speak it with `skipNegotiation` (no negotiate request): a
//!   WebSocket to `/hubs/chat?access_token=…`, the handshake
//!   `{"protocol":"json","version":1}`, and the connection counts as open once the
//!   server's handshake response `{}` came (sent once the connection is registered, as
//!   the native `ready`). Every record ends with `0x1E` and a text frame may hold several
//!   ([`Kind::records`]). The client invokes
//!   `{"type":1,"invocationId":"<n>","target":"SendMessage","arguments":["<room>",{"text":…}]}`,
//!   the server answers a Completion (`"type":3`, with `result`, the committed message,
//!   or `error`) and invokes `ReceiveMessage(<room>, message)` (with its `seq`) on every
//!   member's connections, the sender's included. The server closes a client it has not
//!   heard from for 30 s, so a connection sends a Ping (`{"type":6}`) after 15 s without
//!   sending anything ([`Kind::keep_alive`]), as the official clients do.
//!
//! Every bench message's content is `b|<connection>|<n>|<sent_us>|` plus padding, where
//! `sent_us` is the wall-clock send time in microseconds since the Unix epoch: any
//! receiver, in any process of this machine, computes the delivery latency from it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncBufReadExt as _;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A WebSocket as the bench uses it.
pub type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Which server.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Palaver,
    Baseline,
    Socketio,
    /// Palaver's server behind Palaver's Socket.IO endpoint (`palaver-sio`).
    #[serde(rename = "palaver-sio")]
    #[value(name = "palaver-sio")]
    PalaverSio,
    /// Palaver's server behind Palaver's SignalR endpoint (`palaver-signalr`).
    #[serde(rename = "palaver-signalr")]
    #[value(name = "palaver-signalr")]
    PalaverSignalR,
}

impl Kind {
    /// The default targets (`--targets`' default), in order. `palaver-sio` and
    /// `palaver-signalr` are not among them: they are asked for by name
    /// (`--targets palaver,palaver-sio,palaver-signalr,socketio`).
    pub const ALL: [Kind; 3] = [Kind::Palaver, Kind::Baseline, Kind::Socketio];

    /// Every target, the default ones first.
    pub const EVERY: [Kind; 5] = [
        Kind::Palaver,
        Kind::Baseline,
        Kind::Socketio,
        Kind::PalaverSio,
        Kind::PalaverSignalR,
    ];

    /// The target's name on the command line and in the JSON documents.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Palaver => "palaver",
            Kind::Baseline => "baseline",
            Kind::Socketio => "socketio",
            Kind::PalaverSio => "palaver-sio",
            Kind::PalaverSignalR => "palaver-signalr",
        }
    }

    /// The target named `name` (`palaver`, `baseline`, `socketio`, `palaver-sio`,
    /// `palaver-signalr`).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::EVERY.into_iter().find(|k| k.name() == name)
    }

    /// Whether the server under test is Palaver (`palaver`, `palaver-sio`,
    /// `palaver-signalr`): the `palaver` binary with the bench's configuration, real
    /// accounts, rooms and tokens, and `--palaver-nodes`, whatever protocol its clients
    /// speak.
    pub fn is_palaver(self) -> bool {
        matches!(
            self,
            Kind::Palaver | Kind::PalaverSio | Kind::PalaverSignalR
        )
    }
}

/// Where to find the servers' programs.
#[derive(Clone, Debug, clap::Args)]
pub struct Programs {
    /// The Palaver binary (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/palaver")]
    pub palaver_bin: PathBuf,
    /// The Socket.IO peer (run `npm ci` in its directory first).
    #[arg(long, default_value = "bench/peers/socketio/server.js")]
    pub socketio_script: PathBuf,
    /// Node.js.
    #[arg(long, default_value = "node")]
    pub node: PathBuf,
    /// Extra environment for Palaver (`PALAVER_*` configuration), set by scenarios that
    /// need a limit lifted beyond the bench's `palaver.toml`; recorded in the JSON.
    #[arg(skip)]
    pub palaver_env: Vec<(String, String)>,
    /// How many Palaver nodes, on which database and Redis.
    #[command(flatten)]
    pub deploy: crate::deploy::DeployArgs,
}

/// A server under test, running as child processes (killed when dropped): one process,
/// or for Palaver with `--palaver-nodes N`, N nodes sharing one PostgreSQL database and
/// one Redis. `pid` and `addr` are node 0's, the one accounts and rooms are made on and
/// the only one the single-node scenarios use.
pub struct Server {
    pub kind: Kind,
    pub pid: u32,
    /// `127.0.0.1:<port>`.
    pub addr: String,
    child: tokio::process::Child,
    /// Palaver's data directory (its database), kept across restarts.
    pub data_dir: Option<tempfile::TempDir>,
    programs: Programs,
    /// Nodes 1 .. N, each with a data directory of its own.
    others: Vec<Node>,
    /// What every node gets on top of `programs.palaver_env`: the database and Redis URLs.
    node_env: Vec<(String, String)>,
    /// The PostgreSQL database made for this server (`--database-url`), dropped after its
    /// processes are killed.
    database: Option<crate::deploy::FreshDatabase>,
}

/// A Palaver node after the first.
struct Node {
    pid: u32,
    addr: String,
    _child: tokio::process::Child,
    _data_dir: tempfile::TempDir,
}

impl Drop for Server {
    /// Kills every node before `database` (a later field) drops the database.
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for node in &mut self.others {
            let _ = node._child.start_kill();
        }
    }
}

/// The `palaver.toml` of a bench run: per-IP budgets lifted (every bench client comes
/// from loopback), per-user limits off (bench users send thousands of messages a
/// second and open many sockets), long-lived access tokens (runs outlast the default 15
/// minutes).
/// `{jwt_secret}` is one random secret shared by every node of a server, so that a token
/// from node 0 is good on all.
const PALAVER_CONFIG: &str = "shutdown_grace_secs = 5

[auth]
access_token_ttl_secs = 86400
jwt_secret = \"{jwt_secret}\"

[rate_limits.requests_per_ip]
max = 0
window_secs = 60

[rate_limits.registrations_per_ip]
max = 0
window_secs = 3600

[user_limits]
sockets = 0
messages = { max = 0, window_secs = 1 }
call_starts = { max = 0, window_secs = 1 }
typing = { max = 0, window_secs = 1 }
presence = { max = 0, window_secs = 1 }
invitations = { max = 0, window_secs = 1 }
room_creations = { max = 0, window_secs = 1 }
";

impl Server {
    /// Starts a `kind` server on a free loopback port and waits until it listens. For
    /// Palaver: a fresh PostgreSQL database first with `--database-url`, then
    /// `--palaver-nodes` nodes one after the other (each waits for the one before, so
    /// node 0 has applied the migrations), each printed on stderr as
    /// `palaver node <k>: pid <pid>, <addr>` (what `bench/profile.sh` reads).
    pub async fn start(kind: Kind, programs: &Programs) -> anyhow::Result<Server> {
        let deploy = &programs.deploy;
        let nodes = if kind.is_palaver() {
            deploy.palaver_nodes.max(1)
        } else {
            1
        };
        let mut database = None;
        let mut node_env = Vec::new();
        if kind.is_palaver() {
            if let Some(url) = &deploy.database_url {
                let db = crate::deploy::FreshDatabase::create(url).await?;
                node_env.push(("PALAVER_DATABASE_URL".to_owned(), db.url.clone()));
                database = Some(db);
            }
            if let Some(url) = &deploy.redis_url {
                node_env.push(("PALAVER_REDIS_URL".to_owned(), url.clone()));
            }
        }
        let jwt_secret = crate::deploy::random_hex(32);
        let data_dir = || -> anyhow::Result<Option<tempfile::TempDir>> {
            if !kind.is_palaver() {
                return Ok(None);
            }
            let dir = tempfile::Builder::new()
                .prefix("palaver-bench-")
                .tempdir()?;
            std::fs::write(dir.path().join("palaver.toml"), palaver_config(&jwt_secret))?;
            Ok(Some(dir))
        };
        let node0_dir = data_dir()?;
        let (child, addr) = spawn(
            kind,
            programs,
            &node_env,
            node0_dir.as_ref().map(|d| d.path()),
            0,
        )
        .await
        .context("node 0")?;
        let pid = child.id().context("server pid")?;
        let mut server = Server {
            kind,
            pid,
            addr,
            child,
            data_dir: node0_dir,
            programs: programs.clone(),
            others: Vec::new(),
            node_env,
            database,
        };
        if kind.is_palaver() {
            eprintln!("  palaver node 0: pid {}, {}", server.pid, server.addr);
        }
        for k in 1..nodes {
            let dir = data_dir()?.context("a node's data directory")?;
            let (child, addr) = spawn(kind, programs, &server.node_env, Some(dir.path()), 0)
                .await
                .with_context(|| format!("node {k}"))?;
            let pid = child.id().context("server pid")?;
            eprintln!("  palaver node {k}: pid {pid}, {addr}");
            server.others.push(Node {
                pid,
                addr,
                _child: child,
                _data_dir: dir,
            });
        }
        Ok(server)
    }

    /// Every node's pid, node 0 first.
    pub fn pids(&self) -> Vec<u32> {
        std::iter::once(self.pid)
            .chain(self.others.iter().map(|n| n.pid))
            .collect()
    }

    /// Every node's `127.0.0.1:<port>`, node 0 first.
    pub fn addrs(&self) -> Vec<String> {
        std::iter::once(self.addr.clone())
            .chain(self.others.iter().map(|n| n.addr.clone()))
            .collect()
    }

    /// The PostgreSQL server's version, when this server got a fresh database.
    pub fn postgres_version(&self) -> Option<&str> {
        self.database.as_ref().map(|d| d.server_version.as_str())
    }

    /// `http://127.0.0.1:<port>`.
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops the server with SIGTERM and waits for it to exit (at most 30 s).
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .context("server did not exit within 30 s of SIGTERM")??;
        Ok(())
    }

    /// Starts the server again on the same port and data directory (after [`stop`]).
    ///
    /// [`stop`]: Server::stop
    pub async fn start_again(&mut self) -> anyhow::Result<()> {
        let port: u16 = self.addr.rsplit(':').next().unwrap_or("0").parse()?;
        let dir = self.data_dir.as_ref().map(|d| d.path().to_owned());
        let (child, addr) = spawn(
            self.kind,
            &self.programs,
            &self.node_env,
            dir.as_deref(),
            port,
        )
        .await?;
        self.pid = child.id().context("server pid")?;
        self.child = child;
        self.addr = addr;
        Ok(())
    }
}

/// The bench's `palaver.toml` with `jwt_secret` in it.
fn palaver_config(jwt_secret: &str) -> String {
    PALAVER_CONFIG.replace("{jwt_secret}", jwt_secret)
}

/// Starts one server process (Palaver with `node_env` on top of the programs'
/// environment) and reads the address it prints.
async fn spawn(
    kind: Kind,
    programs: &Programs,
    node_env: &[(String, String)],
    data_dir: Option<&Path>,
    port: u16,
) -> anyhow::Result<(tokio::process::Child, String)> {
    let mut command = match kind {
        Kind::Palaver | Kind::PalaverSio | Kind::PalaverSignalR => {
            let dir = data_dir.context("palaver needs a data directory")?;
            let bin = std::fs::canonicalize(&programs.palaver_bin).with_context(|| {
                format!(
                    "{} not found: build it with `cargo build --release`",
                    programs.palaver_bin.display()
                )
            })?;
            let mut c = tokio::process::Command::new(bin);
            c.args(["serve", "--port", &port.to_string(), "--data-dir", "."])
                .current_dir(dir)
                .env("RUST_LOG", "warn")
                // No default room: the bench's accounts share only the rooms it makes
                // (a #general of every account would add presence traffic between all of
                // them). An inherited PALAVER_DEFAULT_ROOMS still applies.
                .env("PALAVER_DEFAULT_ROOMS", "")
                .envs(programs.palaver_env.iter().map(|(k, v)| (k, v)))
                .envs(node_env.iter().map(|(k, v)| (k, v)));
            c
        }
        Kind::Baseline => {
            let mut c = tokio::process::Command::new(std::env::current_exe()?);
            c.args(["baseline-server", "--port", &port.to_string()]);
            c
        }
        Kind::Socketio => {
            let mut c = tokio::process::Command::new(&programs.node);
            c.arg(&programs.socketio_script)
                .env("PORT", port.to_string());
            c
        }
    };
    crate::pin::pin_server(&mut command);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting the {} server", kind.name()))?;
    let stdout = child.stdout.take().context("server stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .with_context(|| format!("the {} server printed no address in 30 s", kind.name()))??
        .with_context(|| format!("the {} server exited at start", kind.name()))?;
    // "palaver listening on http://…", "listening on http://…".
    let addr = line
        .rsplit("http://")
        .next()
        .filter(|a| a.contains(':'))
        .with_context(|| format!("unexpected first line from {}: {line:?}", kind.name()))?
        .trim()
        .to_owned();
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, addr))
}

/// How one connection authenticates.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Member {
    /// Palaver access token (empty for the peers).
    pub token: String,
    /// Palaver user id (empty for the peers).
    pub user_id: String,
    /// Palaver username, to log in with (empty for the peers).
    #[serde(default)]
    pub login: String,
}

/// The current wall-clock time in microseconds since the Unix epoch.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_micros() as u64
}

/// A bench message's content: `b|<conn>|<n>|<sent_us>|` then `padding` bytes of `x`.
pub fn payload(conn: usize, n: u64, sent_us: u64, padding: usize) -> String {
    let mut s = format!("b|{conn}|{n}|{sent_us}|");
    s.extend(std::iter::repeat_n('x', padding));
    s
}

/// The fields of the first bench payload in `frame`: `(conn, n, sent_us)`.
pub fn parse_payload(frame: &str) -> Option<(usize, u64, u64)> {
    let start = frame.find("b|")? + 2;
    let mut parts = frame[start..].splitn(4, '|');
    let conn = parts.next()?.parse().ok()?;
    let n = parts.next()?.parse().ok()?;
    let sent = parts.next()?.parse().ok()?;
    Some((conn, n, sent))
}

/// What a received frame (on `palaver-signalr`: record) means to the bench.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A room message; its payload fields and, for Palaver (every protocol), its seq.
    Delivery {
        conn: usize,
        n: u64,
        sent_us: u64,
        seq: Option<i64>,
    },
    /// The acknowledgement of this connection's send number `n` (Palaver and Socket.IO
    /// acknowledge by request id, SignalR by invocation id, which the bench sets to
    /// `n`); `ok` is false when the server refused the send.
    Ack {
        n: u64,
        ok: bool,
    },
    /// A frame to answer (Engine.IO ping).
    Reply(&'static str),
    Other,
}

impl Kind {
    /// The URL a member connects to, for `room` (a Palaver room id, or a peer room name).
    /// `since` adds Palaver's resume cursors (`?since=<room>:<seq>`); on `palaver-sio`
    /// they travel in the namespace connect instead ([`Kind::sio_connect`]);
    /// `palaver-signalr` has none (SignalR clients cannot say what they have; the
    /// scenarios that resume run on `palaver` only).
    pub fn ws_url(self, addr: &str, member: &Member, room: &str, since: Option<i64>) -> String {
        match self {
            Kind::Palaver => {
                let mut url = format!("ws://{addr}/api/v1/ws?access_token={}", member.token);
                if let Some(seq) = since {
                    url.push_str(&format!("&since={room}:{seq}"));
                }
                url
            }
            Kind::Baseline => format!("ws://{addr}/{room}"),
            Kind::Socketio => format!("{}&room={room}", sio_url(addr)),
            Kind::PalaverSio => sio_url(addr),
            Kind::PalaverSignalR => {
                format!("ws://{addr}/hubs/chat?access_token={}", member.token)
            }
        }
    }

    /// The Socket.IO namespace connect packet a member sends after the Engine.IO open
    /// packet (`None` for the targets that do not speak Socket.IO): `40` for the Node
    /// peer (no auth; the room is in the URL), `40{"token":"…"}` for Palaver, with
    /// `"since":{"<room>":<seq>}` when resuming after `since`.
    pub fn sio_connect(self, member: &Member, room: &str, since: Option<i64>) -> Option<String> {
        match self {
            Kind::Palaver | Kind::Baseline | Kind::PalaverSignalR => None,
            Kind::Socketio => Some("40".to_owned()),
            Kind::PalaverSio => {
                let mut auth = serde_json::json!({ "token": member.token });
                if let Some(seq) = since {
                    let mut cursors = serde_json::Map::new();
                    cursors.insert(room.to_owned(), seq.into());
                    auth["since"] = cursors.into();
                }
                Some(format!("40{auth}"))
            }
        }
    }

    /// The frame that sends `content` to `room` as request number `n`.
    pub fn send_frame(self, room: &str, n: u64, content: &str) -> String {
        match self {
            Kind::Palaver => format!(
                r#"{{"id":{n},"type":"message.send","data":{{"room_id":"{room}","content":"{content}"}}}}"#
            ),
            Kind::Baseline => content.to_owned(),
            Kind::Socketio => sio_emit(
                n,
                "send",
                &format!(r#"{{"room":"{room}","content":"{content}"}}"#),
            ),
            Kind::PalaverSio => sio_emit(
                n,
                "send_message",
                &format!(r#"{{"roomId":"{room}","content":"{content}"}}"#),
            ),
            Kind::PalaverSignalR => format!(
                r#"{{"type":1,"invocationId":"{n}","target":"SendMessage","arguments":["{room}",{{"text":"{content}"}}]}}{RS}"#
            ),
        }
    }

    /// The messages of a received text frame, in order: the frame itself, except on
    /// `palaver-signalr`, whose frames hold one or more records, each ended by `0x1E`
    /// (Palaver writes whole records: none is split across frames).
    pub fn records(self, frame: &str) -> impl Iterator<Item = &str> {
        let (whole, records) = if self == Kind::PalaverSignalR {
            (None, Some(frame.split_terminator(RS)))
        } else {
            (Some(frame), None)
        };
        whole.into_iter().chain(records.into_iter().flatten())
    }

    /// What a connection sends to stay open when it has sent nothing for a while, and
    /// after how long: a SignalR Ping after 15 s on `palaver-signalr` (the server closes
    /// a client silent for 30 s). The other targets need nothing: their servers ping,
    /// and the client answers (tungstenite answers WebSocket pings as it reads; Engine.IO
    /// pings are [`Incoming::Reply`]).
    pub fn keep_alive(self) -> Option<(Duration, &'static str)> {
        (self == Kind::PalaverSignalR).then_some((SIGNALR_KEEP_ALIVE, SIGNALR_PING))
    }

    /// Classifies a received message: a text frame, or on `palaver-signalr` one record
    /// of it ([`Kind::records`]; a trailing `0x1E` is allowed).
    pub fn classify(self, text: &str) -> Incoming {
        match self {
            Kind::Palaver => {
                if text.starts_with(r#"{"type":"message.created""#) {
                    if let Some((conn, n, sent_us)) = parse_payload(text) {
                        let seq = text
                            .rfind(r#","seq":"#)
                            .and_then(|i| text[i + 7..].trim_end_matches('}').parse().ok());
                        return Incoming::Delivery {
                            conn,
                            n,
                            sent_us,
                            seq,
                        };
                    }
                } else if text.starts_with(r#"{"type":"reply""#) {
                    let n = text
                        .find(r#""id":"#)
                        .and_then(|i| leading_digits(&text[i + 5..]))
                        .unwrap_or(u64::MAX);
                    return Incoming::Ack {
                        n,
                        ok: text.contains(r#""ok":true"#),
                    };
                }
                Incoming::Other
            }
            Kind::Baseline => match parse_payload(text) {
                Some((conn, n, sent_us)) => Incoming::Delivery {
                    conn,
                    n,
                    sent_us,
                    seq: None,
                },
                None => Incoming::Other,
            },
            Kind::Socketio => classify_sio(text, "message", None),
            Kind::PalaverSio => classify_sio(text, "new_message", Some(r#""changeSeq":"#)),
            Kind::PalaverSignalR => classify_signalr(text.strip_suffix(RS).unwrap_or(text)),
        }
    }

    /// Whether the connection acknowledges sends itself (else: the sender's own copy of
    /// its broadcast is the acknowledgement).
    pub fn acks(self) -> bool {
        !matches!(self, Kind::Baseline)
    }
}

/// The SignalR record separator (ASCII RS) that ends every record.
const RS: char = '\u{1e}';
/// The SignalR JSON hub protocol handshake request, version 1.
const SIGNALR_HANDSHAKE: &str = "{\"protocol\":\"json\",\"version\":1}\u{1e}";
/// A SignalR Ping record.
const SIGNALR_PING: &str = "{\"type\":6}\u{1e}";
/// How long a SignalR client may go without sending before it pings (the official
/// clients' default; Palaver closes a client silent for 30 s).
const SIGNALR_KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Classifies one SignalR record (without its separator), written as Palaver writes them
/// (`gateway/signalr/record.rs`): a Completion `{"type":3,"invocationId":"<n>",…}` is the
/// acknowledgement of send `n`, ok unless it carries an `error`; an Invocation
/// `{"type":1,"target":"ReceiveMessage","arguments":["<room>",<message>]}` carrying a
/// bench payload is a delivery, its seq the message's `"seq"`. Every other record (the
/// handshake response, Ping, Close, presence, typing, membership invocations) is
/// [`Incoming::Other`]: the connection's own timer sends Pings ([`Kind::keep_alive`]).
fn classify_signalr(record: &str) -> Incoming {
    if let Some(rest) = record.strip_prefix(r#"{"type":3,"invocationId":""#) {
        let (id, after) = rest.split_once('"').unwrap_or((rest, ""));
        return Incoming::Ack {
            n: id.parse().unwrap_or(u64::MAX),
            ok: !after.starts_with(r#","error":"#),
        };
    }
    let Some(message) = record.strip_prefix(r#"{"type":1,"target":"ReceiveMessage","arguments":["#)
    else {
        return Incoming::Other;
    };
    match parse_payload(message) {
        Some((conn, n, sent_us)) => Incoming::Delivery {
            conn,
            n,
            sent_us,
            seq: message
                .find(r#""seq":"#)
                .and_then(|at| leading_digits(&message[at + 6..]))
                .map(|s| s as i64),
        },
        None => Incoming::Other,
    }
}

/// `ws://<addr>/socket.io/?EIO=4&transport=websocket`: Engine.IO v4, WebSocket only.
fn sio_url(addr: &str) -> String {
    format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
}

/// A Socket.IO v5 event with acknowledgement id `n` in an Engine.IO v4 message packet:
/// `42<n>["<event>",<data>]` (`data` is JSON).
fn sio_emit(n: u64, event: &str, data: &str) -> String {
    format!(r#"42{n}["{event}",{data}]"#)
}

/// The number at the start of `s`, if it starts with a digit.
fn leading_digits(s: &str) -> Option<u64> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().ok()
}

/// Classifies a Socket.IO frame: an Engine.IO ping (`2`, answered `3`), an ack
/// (`43<n>[…]`, ok when its data holds `"ok":true`), or an event `42["<event>",…]`: a
/// delivery when it is `delivery` and carries a bench payload, its seq read from the
/// number after `seq_field` (`"changeSeq":`, when given); every other event (Palaver's
/// `message_sent`, `ready`, presence, …) is [`Incoming::Other`].
fn classify_sio(text: &str, delivery: &str, seq_field: Option<&str>) -> Incoming {
    if text == "2" {
        return Incoming::Reply("3");
    }
    if let Some(rest) = text.strip_prefix("43") {
        return Incoming::Ack {
            n: leading_digits(rest).unwrap_or(u64::MAX),
            ok: rest.contains(r#""ok":true"#),
        };
    }
    let Some(event) = text
        .strip_prefix(r#"42[""#)
        .and_then(|rest| rest.strip_prefix(delivery))
    else {
        return Incoming::Other;
    };
    if !event.starts_with(r#"","#) {
        return Incoming::Other;
    }
    match parse_payload(event) {
        Some((conn, n, sent_us)) => Incoming::Delivery {
            conn,
            n,
            sent_us,
            seq: seq_field.and_then(|field| {
                let at = event.find(field)? + field.len();
                leading_digits(&event[at..]).map(|s| s as i64)
            }),
        },
        None => Incoming::Other,
    }
}

/// Reads text frames until `wanted` accepts one, answering Engine.IO pings (`2`) on the
/// way (only a Socket.IO handshake sees those); `refused` turns a frame into the error
/// that ends the handshake. `stage` names what is awaited, in errors.
async fn await_frame(
    ws: &mut Ws,
    stage: &str,
    wanted: impl Fn(&str) -> bool,
    refused: impl Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    use futures_util::{SinkExt as _, StreamExt as _};
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .with_context(|| format!("no {stage} within 30 s"))?
        {
            Some(Ok(WsMessage::Text(t))) => {
                if wanted(t.as_str()) {
                    return Ok(());
                }
                if let Some(why) = refused(t.as_str()) {
                    bail!("{why}");
                }
                if t.as_str() == "2" {
                    ws.send(WsMessage::text("3")).await?;
                }
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
            None => bail!("closed before {stage}"),
        }
    }
}

/// Opens a WebSocket to `url` from source address `local_ip` (127.0.0.x spreads
/// connections over more ephemeral ports than one address has), and completes the
/// target's handshake: Palaver's `ready` event; for Socket.IO, the Engine.IO open packet,
/// then `sio_connect` ([`Kind::sio_connect`]; required) and the server's namespace connect
/// (`40…`; `44…` is a refusal, e.g. `unauthorized`), then on `palaver-sio` Palaver's
/// `ready` event; for SignalR, the handshake request and the server's empty handshake
/// response (`{}`; `{"error":…}` is a refusal). Records that share the handshake
/// response's frame are dropped: none is a message.
pub async fn connect(
    kind: Kind,
    url: &str,
    sio_connect: Option<&str>,
    local_ip: std::net::Ipv4Addr,
) -> anyhow::Result<Ws> {
    let host = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .context("url host")?;
    let server: std::net::SocketAddr = host.parse().context("server address")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind((local_ip, 0).into())?;
    let tcp = socket.connect(server).await?;
    tcp.set_nodelay(true)?;
    let (mut ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(tcp)).await?;
    use futures_util::SinkExt as _;
    let never = |_: &str| None;
    match kind {
        Kind::Palaver => {
            await_frame(
                &mut ws,
                "ready",
                |t| t.starts_with(r#"{"type":"ready""#),
                never,
            )
            .await?
        }
        Kind::Baseline => {}
        Kind::PalaverSignalR => {
            ws.send(WsMessage::text(SIGNALR_HANDSHAKE)).await?;
            // `{}` accepts (once the connection is registered), `{"error":…}` refuses.
            let refused = |t: &str| {
                t.starts_with(r#"{"error":"#)
                    .then(|| format!("SignalR refused the handshake: {}", t.trim_end_matches(RS)))
            };
            await_frame(
                &mut ws,
                "the SignalR handshake response",
                |t| t.starts_with("{}\u{1e}"),
                refused,
            )
            .await?
        }
        Kind::Socketio | Kind::PalaverSio => {
            let packet = sio_connect.context("a Socket.IO target needs its connect packet")?;
            await_frame(
                &mut ws,
                "the Engine.IO open packet",
                |t| t.starts_with('0'),
                never,
            )
            .await?;
            ws.send(WsMessage::text(packet)).await?;
            let refused = |t: &str| {
                t.starts_with("44")
                    .then(|| format!("Socket.IO refused the connect: {t}"))
            };
            await_frame(
                &mut ws,
                "the Socket.IO connect",
                |t| t.starts_with("40"),
                refused,
            )
            .await?;
            if kind == Kind::PalaverSio {
                await_frame(
                    &mut ws,
                    "ready",
                    |t| t.starts_with(r#"42["ready","#),
                    refused,
                )
                .await?;
            }
        }
    }
    Ok(ws)
}

/// The source address for connection number `i` when each address carries at most
/// `per_address` connections: 127.0.0.1, then 127.0.0.2, …
pub fn local_ip(i: usize, per_address: usize) -> std::net::Ipv4Addr {
    let k = (i / per_address.max(1)) as u32 + 1;
    std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(127, 0, 0, 0)) + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_node_gets_the_same_secret_in_the_auth_table() {
        let config = palaver_config("ab12");
        let auth = config.split("[auth]").nth(1).unwrap();
        let auth = auth.split("\n[").next().unwrap();
        assert!(auth.contains("\njwt_secret = \"ab12\"\n"), "{config}");
        assert_eq!(config.matches("jwt_secret").count(), 1);
        assert!(!config.contains("{jwt_secret}"));
    }

    #[test]
    fn payloads_round_trip_inside_each_targets_frames() {
        let p = payload(7, 42, 1_700_000_000_123_456, 10);
        for kind in Kind::EVERY {
            let sent = kind.send_frame("room-1", 42, &p);
            assert_eq!(parse_payload(&sent), Some((7, 42, 1_700_000_000_123_456)));
        }
        let created =
            format!(r#"{{"type":"message.created","data":{{"id":"m","content":"{p}"}},"seq":99}}"#);
        assert_eq!(
            Kind::Palaver.classify(&created),
            Incoming::Delivery {
                conn: 7,
                n: 42,
                sent_us: 1_700_000_000_123_456,
                seq: Some(99)
            }
        );
        assert_eq!(
            Kind::Palaver.classify(r#"{"type":"reply","id":42,"ok":true,"data":{}}"#),
            Incoming::Ack { n: 42, ok: true }
        );
        assert_eq!(
            Kind::Socketio.classify("4342[{\"ok\":true}]"),
            Incoming::Ack { n: 42, ok: true }
        );
        assert_eq!(Kind::Socketio.classify("2"), Incoming::Reply("3"));
        let broadcast = format!(r#"42["message",{{"room":"room-1","content":"{p}"}}]"#);
        assert_eq!(
            Kind::Socketio.classify(&broadcast),
            Incoming::Delivery {
                conn: 7,
                n: 42,
                sent_us: 1_700_000_000_123_456,
                seq: None
            }
        );
        assert_eq!(local_ip(0, 100), std::net::Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(local_ip(250, 100), std::net::Ipv4Addr::new(127, 0, 0, 3));
    }

    #[test]
    fn palaver_sio_frames_follow_docs_socketio() {
        let p = payload(3, 9, 1_700_000_000_000_001, 4);
        assert_eq!(
            Kind::PalaverSio.send_frame("r-1", 9, &p),
            format!(r#"429["send_message",{{"roomId":"r-1","content":"{p}"}}]"#)
        );
        let message = format!(
            r#"{{"_id":"m1","id":"m1","roomId":"r-1","senderId":"u","content":"{p}","seq":41,"changeSeq":41,"clientId":null}}"#
        );
        // new_message is the delivery, its seq the changeSeq.
        assert_eq!(
            Kind::PalaverSio.classify(&format!(r#"42["new_message",{message}]"#)),
            Incoming::Delivery {
                conn: 3,
                n: 9,
                sent_us: 1_700_000_000_000_001,
                seq: Some(41)
            }
        );
        // The sender's message_sent carries the same payload but is not a delivery.
        assert_eq!(
            Kind::PalaverSio.classify(&format!(r#"42["message_sent",{message}]"#)),
            Incoming::Other
        );
        // Nor is the Node peer's event name, or an event whose name only starts alike.
        assert_eq!(
            Kind::PalaverSio.classify(&format!(r#"42["message",{message}]"#)),
            Incoming::Other
        );
        assert_eq!(
            Kind::PalaverSio.classify(&format!(r#"42["new_message_x",{message}]"#)),
            Incoming::Other
        );
        assert_eq!(
            Kind::Socketio.classify(&format!(r#"42["new_message",{message}]"#)),
            Incoming::Other
        );
        assert_eq!(
            Kind::PalaverSio.classify(&format!(r#"439[{{"ok":true,"message":{message}}}]"#)),
            Incoming::Ack { n: 9, ok: true }
        );
        assert_eq!(
            Kind::PalaverSio.classify(
                r#"4310[{"ok":false,"error":{"code":"not_member","message":"not a member"}}]"#
            ),
            Incoming::Ack { n: 10, ok: false }
        );
        assert_eq!(Kind::PalaverSio.classify("2"), Incoming::Reply("3"));
        assert_eq!(
            Kind::PalaverSio.classify(r#"42["ready",{"user":{},"rooms":[]}]"#),
            Incoming::Other
        );
        assert_eq!(
            Kind::PalaverSio.classify(r#"40{"sid":"abc"}"#),
            Incoming::Other
        );
        assert!(Kind::PalaverSio.acks());
    }

    #[test]
    fn palaver_sio_connects_with_the_token_in_the_namespace_connect() {
        let member = Member {
            token: "tok.en-1".into(),
            user_id: "u".into(),
            login: "l".into(),
        };
        assert_eq!(
            Kind::PalaverSio.ws_url("127.0.0.1:9", &member, "r-1", Some(5)),
            "ws://127.0.0.1:9/socket.io/?EIO=4&transport=websocket"
        );
        assert_eq!(
            Kind::Socketio.ws_url("127.0.0.1:9", &member, "room-0", None),
            "ws://127.0.0.1:9/socket.io/?EIO=4&transport=websocket&room=room-0"
        );
        let hello = Kind::PalaverSio.sio_connect(&member, "r-1", None).unwrap();
        assert_eq!(hello, r#"40{"token":"tok.en-1"}"#);
        let resume = Kind::PalaverSio
            .sio_connect(&member, "r-1", Some(17))
            .unwrap();
        let auth: serde_json::Value = serde_json::from_str(&resume[2..]).unwrap();
        assert_eq!(
            auth,
            serde_json::json!({"token": "tok.en-1", "since": {"r-1": 17}})
        );
        assert_eq!(
            Kind::Socketio
                .sio_connect(&member, "room-0", None)
                .as_deref(),
            Some("40")
        );
        assert_eq!(Kind::Palaver.sio_connect(&member, "r-1", None), None);
        assert_eq!(Kind::Baseline.sio_connect(&member, "r-1", None), None);
    }

    #[test]
    fn palaver_signalr_frames_follow_docs_signalr() {
        let p = payload(3, 9, 1_700_000_000_000_001, 4);
        assert_eq!(
            Kind::PalaverSignalR.send_frame("r-1", 9, &p),
            format!(
                "{{\"type\":1,\"invocationId\":\"9\",\"target\":\"SendMessage\",\
                 \"arguments\":[\"r-1\",{{\"text\":\"{p}\"}}]}}\u{1e}"
            )
        );
        // The frame is one record of valid JSON, as the server parses it.
        let sent = Kind::PalaverSignalR.send_frame("r-1", 9, &p);
        let records: Vec<&str> = Kind::PalaverSignalR.records(&sent).collect();
        assert_eq!(records.len(), 1);
        let invocation: serde_json::Value = serde_json::from_str(records[0]).unwrap();
        assert_eq!(
            invocation,
            serde_json::json!({
                "type": 1,
                "invocationId": "9",
                "target": "SendMessage",
                "arguments": ["r-1", {"text": p}]
            })
        );
        // The message object as Palaver writes it (gateway/signalr/chat.rs).
        let message = format!(
            r#"{{"id":"m1","channelId":"r-1","senderId":"u","senderName":"b17_3","text":"{p}","attachments":[],"createdAt":"2026-01-01T00:00:00.000Z","editedAt":null,"deletedAt":null,"seq":41,"clientId":null,"replyTo":null}}"#
        );
        let receive =
            format!(r#"{{"type":1,"target":"ReceiveMessage","arguments":["r-1",{message}]}}"#);
        let delivery = Incoming::Delivery {
            conn: 3,
            n: 9,
            sent_us: 1_700_000_000_000_001,
            seq: Some(41),
        };
        assert_eq!(Kind::PalaverSignalR.classify(&receive), delivery);
        // With its separator too.
        assert_eq!(
            Kind::PalaverSignalR.classify(&format!("{receive}\u{1e}")),
            delivery
        );
        // The Completion with the committed message is the acknowledgement, not a
        // delivery; one with an error is a refusal.
        assert_eq!(
            Kind::PalaverSignalR.classify(&format!(
                r#"{{"type":3,"invocationId":"9","result":{message}}}"#
            )),
            Incoming::Ack { n: 9, ok: true }
        );
        assert_eq!(
            Kind::PalaverSignalR.classify(
                r#"{"type":3,"invocationId":"10","error":"not_member: not a member of this room"}"#
            ),
            Incoming::Ack { n: 10, ok: false }
        );
        assert_eq!(
            Kind::PalaverSignalR.classify(r#"{"type":3,"invocationId":"11"}"#),
            Incoming::Ack { n: 11, ok: true }
        );
        // An invocation id the bench did not make matches no send.
        assert_eq!(
            Kind::PalaverSignalR.classify(r#"{"type":3,"invocationId":"x1","result":null}"#),
            Incoming::Ack {
                n: u64::MAX,
                ok: true
            }
        );
        // Ping, the handshake response, Close and the other invocations are not messages;
        // nor is a direct message, or ReceiveMessage under another name.
        for other in [
            "{\"type\":6}".to_owned(),
            "{}".to_owned(),
            "{\"type\":7,\"error\":\"Server is shutting down.\",\"allowReconnect\":true}"
                .to_owned(),
            r#"{"type":1,"target":"UserPresenceUpdate","arguments":["u","online"]}"#.to_owned(),
            r#"{"type":1,"target":"UserConnected","arguments":["u"]}"#.to_owned(),
            r#"{"type":1,"target":"UserTyping","arguments":["r-1","u",true]}"#.to_owned(),
            r#"{"type":1,"target":"UserJoinedChannel","arguments":["r-1","u"]}"#.to_owned(),
            format!(r#"{{"type":1,"target":"MessageEdited","arguments":["r-1",{message}]}}"#),
            format!(r#"{{"type":1,"target":"ReceivePrivateMessage","arguments":["u",{message}]}}"#),
            format!(r#"42["new_message",{message}]"#),
        ] {
            assert_eq!(
                Kind::PalaverSignalR.classify(&other),
                Incoming::Other,
                "{other}"
            );
        }
        // The other targets do not read SignalR records as theirs.
        assert_eq!(Kind::PalaverSio.classify(&receive), Incoming::Other);
        assert!(Kind::PalaverSignalR.acks());
    }

    #[test]
    fn palaver_signalr_frames_split_into_records() {
        let p = payload(1, 2, 1_700_000_000_000_002, 0);
        let q = payload(5, 6, 1_700_000_000_000_006, 0);
        // A completion and a delivery in one frame, then a frame of a single record.
        let frame = format!(
            "{{\"type\":3,\"invocationId\":\"2\",\"result\":{{\"text\":\"{p}\",\"seq\":7}}}}\u{1e}\
             {{\"type\":1,\"target\":\"ReceiveMessage\",\"arguments\":[\"r\",{{\"text\":\"{q}\",\"seq\":8}}]}}\u{1e}"
        );
        let seen: Vec<Incoming> = Kind::PalaverSignalR
            .records(&frame)
            .map(|r| Kind::PalaverSignalR.classify(r))
            .collect();
        assert_eq!(
            seen,
            [
                Incoming::Ack { n: 2, ok: true },
                Incoming::Delivery {
                    conn: 5,
                    n: 6,
                    sent_us: 1_700_000_000_000_006,
                    seq: Some(8)
                }
            ]
        );
        assert_eq!(
            Kind::PalaverSignalR
                .records("{\"type\":6}\u{1e}")
                .collect::<Vec<_>>(),
            ["{\"type\":6}"]
        );
        assert_eq!(Kind::PalaverSignalR.records("").count(), 0);
        // The other targets' frames are whole messages, whatever they hold.
        assert_eq!(
            Kind::Palaver.records(&frame).collect::<Vec<_>>(),
            [frame.as_str()]
        );
        assert_eq!(Kind::PalaverSio.records("2").collect::<Vec<_>>(), ["2"]);
    }

    #[test]
    fn palaver_signalr_connects_to_the_chat_hub_with_the_token_and_keeps_alive() {
        let member = Member {
            token: "tok.en-1".into(),
            user_id: "u".into(),
            login: "l".into(),
        };
        assert_eq!(
            Kind::PalaverSignalR.ws_url("127.0.0.1:9", &member, "r-1", None),
            "ws://127.0.0.1:9/hubs/chat?access_token=tok.en-1"
        );
        assert_eq!(Kind::PalaverSignalR.sio_connect(&member, "r-1", None), None);
        let handshake: serde_json::Value =
            serde_json::from_str(SIGNALR_HANDSHAKE.strip_suffix(RS).unwrap()).unwrap();
        assert_eq!(
            handshake,
            serde_json::json!({"protocol": "json", "version": 1})
        );
        // A Ping within the server's 30 s client timeout; the others need none.
        let (every, ping) = Kind::PalaverSignalR.keep_alive().unwrap();
        assert_eq!(ping, "{\"type\":6}\u{1e}");
        assert!(every < Duration::from_secs(30), "{every:?}");
        for kind in [
            Kind::Palaver,
            Kind::Baseline,
            Kind::Socketio,
            Kind::PalaverSio,
        ] {
            assert_eq!(kind.keep_alive(), None, "{kind:?}");
        }
    }

    #[test]
    fn palaver_sio_is_palaver_on_the_server_side_and_has_a_name_of_its_own() {
        assert_eq!(
            Kind::EVERY.map(Kind::is_palaver),
            [true, false, false, true, true]
        );
        for kind in Kind::EVERY {
            assert_eq!(Kind::from_name(kind.name()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(serde_json::from_str::<Kind>(&json).unwrap(), kind);
            let value = clap::ValueEnum::to_possible_value(&kind).unwrap();
            assert_eq!(value.get_name(), kind.name());
        }
        assert_eq!(Kind::ALL, [Kind::Palaver, Kind::Baseline, Kind::Socketio]);
    }
}
