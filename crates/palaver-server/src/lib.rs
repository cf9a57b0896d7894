//! Palaver: a self-hosted real-time chat and WebRTC signaling server.
//!
//! # Layout — follow one message from the socket to every recipient
//!
//! 1. [`gateway`] — a WebSocket frame `message.send` is parsed once into a typed
//!    request (`gateway/native/codec.rs`); REST requests enter through [`http`] instead
//!    (`http/messages.rs`). Both authenticate with [`auth`].
//! 2. [`live`] — the connection core (`live/connection.rs`), shared by every wire
//!    protocol, runs the request (`live/request.rs`) against the service.
//! 3. [`service`] — `service/messages.rs` validates ([`service::validate`]), checks
//!    membership, and calls the store.
//! 4. [`store`] — `store/sqlite/writer.rs` commits the message under the room's next
//!    `seq` in a group commit, idempotently on `client_id`; only then is the sender
//!    answered.
//! 5. [`broker`] — the service publishes the typed `message.created` event once.
//! 6. [`hub`] — each node's hub encodes it once per wire format (`live/wire.rs`) and
//!    queues the same bytes to every local connection in the room (`live/queue.rs`); each
//!    connection's task (`live/connection.rs`) writes them out, several per flush.
//!
//! Calls take a side road at step 2: `service/calls.rs` checks membership and blocks
//! against the store, then [`signaling`] runs the call state machine (plain synchronous
//! code, one lock per call) and hands back typed effects: events for a connection or a
//! user, which go out through [`broker`] and [`hub`] as in steps 4 and 5, and call log
//! entries, stored like messages. With `redis_url` the calls are kept in Redis instead, so
//! that participants on different nodes share one call, and Redis publishes the events of
//! each change (`signaling/shared.rs`). [`signaling`] also checks `rtc.signal` and issues
//! TURN credentials.
//!
//! Accounts may get mail (verification, password reset, e-mail change): [`email`] composes
//! and sends it when `[email]` is set (`service/email.rs` decides when). Members with no
//! socket open get Web Push for direct messages and mentions: [`push`] delivers it
//! (`service/notifications.rs` holds the settings and subscriptions).
//!
//! Wire types live in the `palaver-protocol` crate; [`config`] loads settings;
//! [`error`] maps failures to stable codes. [`run`] wires it all together.

pub mod auth;
pub mod broker;
pub mod config;
pub mod email;
pub mod error;
pub mod gateway;
pub mod http;
pub mod hub;
pub mod live;
pub mod metrics;
pub mod net;
pub mod presence;
pub mod push;
pub mod ratelimit;
pub mod redis_conn;
pub mod search;
pub mod service;
pub mod signaling;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::serve::ListenerExt as _;
use palaver_protocol::ws::close_code;
use tokio::net::TcpListener;

use crate::auth::tokens::TokenIssuer;
use crate::broker::{MemoryBroker, RedisBroker};
use crate::config::{Config, CorsConfig};
use crate::hub::{CloseReason, Hub};
use crate::metrics::Metrics;
use crate::presence::{MemoryPresence, Presence, RedisPresence};
use crate::ratelimit::RateLimiter;
use crate::service::Service;
use crate::store::files::{FileStore, LocalFiles, S3Files};
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::SqliteStore;
use crate::store::Store;

/// What every request handler shares.
#[derive(Clone)]
pub struct AppState {
    pub service: Arc<Service>,
    pub hub: Arc<Hub>,
    /// The per-IP request budget (`rate_limits.requests_per_ip`).
    pub requests: Arc<RateLimiter>,
    /// Allowed browser origins, for CORS and the WebSocket `Origin` check.
    pub cors: Arc<CorsConfig>,
    /// Where a request's client address comes from (`trusted_proxies`).
    pub client_addr: Arc<net::ClientAddrConfig>,
    /// SignalR's connection tokens and stateful connections on this node.
    pub signalr: Arc<gateway::signalr::Sessions>,
}

/// Opens everything a node needs: the data directory, the signing key, the database
/// (SQLite in the data directory, or PostgreSQL when `database_url` names it; applying
/// migrations), the hub, the broker and the service over them.
///
/// # Errors
/// The data directory, key or database cannot be opened, or `database_url` is neither
/// unset nor a PostgreSQL URL.
pub async fn open(config: &Config) -> anyhow::Result<(Arc<Service>, Store, Arc<Hub>)> {
    let database = config.database()?;
    config.auth.check_sign_in_providers()?;
    store::create_private_dir(&config.data_dir)
        .with_context(|| format!("creating data directory {}", config.data_dir.display()))?;
    let key = auth::load_or_create_signing_key(config)?;
    let store = match database {
        config::DatabaseLocation::Sqlite(path) => SqliteStore::open(&path).await?.store(),
        config::DatabaseLocation::Postgres(url) => PostgresStore::connect(url)
            .await
            .context("opening the PostgreSQL database of database_url")?
            .store(),
    };
    let metrics = Arc::new(Metrics::default());
    let redis = match &config.redis_url {
        Some(url) => Some(Arc::new(redis_conn::RedisConn::new(
            url.expose(),
            metrics.clone(),
        )?)),
        None => None,
    };
    // With Redis, calls are shared by the nodes, and this node's number (taken there)
    // makes its connection ids unique among them.
    let shared_calls = match &config.redis_url {
        Some(url) => {
            Some(signaling::SharedRegistry::connect(url.expose(), signaling::shared::PREFIX).await?)
        }
        None => None,
    };
    let node = shared_calls
        .as_ref()
        .map_or(0, signaling::SharedRegistry::node);
    let hub = Arc::new(Hub::with_metrics(metrics.clone()).on_node(node));
    // With Redis, every node's hub hears every other node's envelopes.
    let broker: Arc<dyn broker::Broker> = match &config.redis_url {
        Some(url) => RedisBroker::connect(url.expose(), hub.clone(), metrics.clone()).await?,
        None => Arc::new(MemoryBroker::new(hub.clone())),
    };
    let files: Arc<dyn FileStore> = match &config.attachments.s3 {
        Some(s3) => Arc::new(S3Files::new(s3).context("configuring the S3 attachment store")?),
        None => {
            let dir = config.attachments_dir();
            Arc::new(
                LocalFiles::new(dir.clone())
                    .with_context(|| format!("creating attachments directory {}", dir.display()))?,
            )
        }
    };
    // With Redis, presence is the cluster's (leases renewed by each node), else this node's.
    let presence: Arc<dyn Presence> = match &redis {
        Some(redis) => Arc::new(
            RedisPresence::new(redis.clone(), &config.presence)
                .context("configuring presence ([presence])")?,
        ),
        None => Arc::new(MemoryPresence::default()),
    };
    let mut service = Service::new(
        store.clone(),
        files,
        broker,
        presence,
        metrics,
        TokenIssuer::new(&key, config.auth.access_token_ttl_secs),
        config,
        redis,
    );
    if let Some(shared) = shared_calls {
        service = service.with_shared_calls(shared);
    }
    if let Some(email) = &config.email {
        let mailer = email::Mailer::new(email, config.public_base())
            .context("configuring e-mail ([email])")?;
        service = service.with_mailer(Arc::new(mailer));
    }
    if config.push.enabled {
        let pusher = push::Pusher::start(
            &config.push,
            config.public_base(),
            store.clone(),
            service.presence.clone(),
            service.metrics.clone(),
        )
        .await
        .context("configuring Web Push ([push])")?;
        service = service.with_pusher(Arc::new(pusher));
    }
    let service = Arc::new(service);
    // Gaps in a room's seq order heard from other nodes are read from the database.
    let source: Arc<dyn broker::ChangeSource> = service.clone();
    service.broker.attach(Arc::downgrade(&source));
    service::calls::spawn_ring_timer(&service);
    Ok((service, store, hub))
}

/// Serves Palaver on `listener` until `shutdown` completes.
///
/// Opens (and migrates) the database in `config.data_dir`, loads or creates the token
/// signing key, then serves HTTP and WebSocket. When `shutdown` resolves it stops
/// accepting, sends every WebSocket a close frame with code 1012 (service restart) after
/// what is already queued, waits until `shutdown_grace_secs` after the signal for
/// in-flight HTTP requests and for the sockets to go, and closes the database (which
/// first commits the messages still queued).
///
/// # Errors
/// The data directory, key or database cannot be opened, or the listener fails.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    run_notifying(config, listener, shutdown, |_| {}).await
}

/// [`run`], calling `serving` with the listener's address once everything is open and the
/// server is about to accept its first connection (the binary prints "palaver listening
/// on ..." there, so it never claims to listen and then fails on a bad data directory or
/// a short JWT secret).
///
/// # Errors
/// As [`run`]; `serving` is not called then.
pub async fn run_notifying(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    serving: impl FnOnce(SocketAddr),
) -> anyhow::Result<()> {
    let local_addr = listener
        .local_addr()
        .context("reading the listener's address")?;
    let (service, store, hub) = open(&config).await?;
    // Stopped before the store closes, below.
    let presence_keeper = service.keep_presence();
    let (app, socketio) = http::router(AppState {
        service: service.clone(),
        hub: hub.clone(),
        requests: Arc::new(RateLimiter::shared_or_local(
            config.rate_limits.requests_per_ip,
            "requests_per_ip",
            service.redis.as_ref(),
        )),
        cors: Arc::new(config.cors.clone()),
        client_addr: Arc::new(net::ClientAddrConfig {
            trusted_proxies: config.trusted_proxies.clone(),
            header: config.forwarded_header,
        }),
        signalr: Arc::new(gateway::signalr::Sessions::new(
            config.signalr.lobby_room.clone(),
        )),
    });

    let closing_hub = hub.clone();
    // When the shutdown began: one deadline bounds both the HTTP drain and the sockets.
    let grace = Duration::from_secs(config.shutdown_grace_secs);
    let (began, shutdown_began) = tokio::sync::oneshot::channel::<tokio::time::Instant>();
    let deadline = Arc::new(std::sync::OnceLock::new());
    let set_deadline = deadline.clone();
    // Small frames (chat events, acks) must not wait for Nagle's algorithm.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "setting TCP_NODELAY");
        }
    });
    serving(local_addr);
    let served = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let now = tokio::time::Instant::now();
        let _ = set_deadline.set(now + grace);
        let _ = began.send(now + grace);
        tracing::info!("shutting down: closing WebSocket connections");
        closing_hub.close_all(CloseReason {
            code: close_code::SERVICE_RESTART,
            reason: "server restarting, reconnect",
        });
        tokio::spawn(gateway::socketio::close_transports(
            socketio,
            closing_hub,
            Duration::from_secs(2).min(grace),
        ));
    });
    let drain_deadline = async move {
        match shutdown_began.await {
            Ok(at) => tokio::time::sleep_until(at).await,
            // The server stopped by itself (a listener error): no deadline.
            Err(_) => std::future::pending().await,
        }
    };
    // axum waits for in-flight requests without a limit: bound it by the deadline.
    let served = tokio::select! {
        served = std::future::IntoFuture::into_future(served) => served,
        () = drain_deadline => {
            tracing::warn!("HTTP requests still in flight at the shutdown deadline");
            Ok(())
        }
    };
    // axum does not wait for upgraded connections (tokio-rs/axum#3003): wait here, until
    // the same deadline.
    let remaining = deadline.get().map_or(grace, |at| {
        at.saturating_duration_since(tokio::time::Instant::now())
    });
    if !hub.wait_until_empty(remaining).await {
        tracing::warn!(
            remaining = hub.connection_count(),
            "connections still open at shutdown deadline"
        );
    }
    if let Some(keeper) = presence_keeper {
        keeper.stop().await;
    }
    // Mail queued by the last requests goes out, within what is left of the deadline.
    let remaining = deadline.get().map_or(grace, |at| {
        at.saturating_duration_since(tokio::time::Instant::now())
    });
    service.close_mail(remaining).await;
    // Pushes of the last messages, within what is left of the deadline.
    let remaining = deadline.get().map_or(grace, |at| {
        at.saturating_duration_since(tokio::time::Instant::now())
    });
    service.close_push(remaining).await;
    store.database.close().await;
    served.context("serving HTTP")
}
