//! The bare-broadcast baseline: the practical limit of fan-out on this machine.
//!
//! Raw WebSocket (RFC 6455) at `/<room>`: no authentication, no storage, no JSON. Every
//! text frame a connection sends goes, unparsed, to every connection of its room (the
//! sender's included). The frame's bytes are shared, not copied, between recipients; each
//! connection has one writer task fed by an unbounded queue. Anything a real chat server
//! does on top (auth, validation, persistence, ordering, backpressure) costs against this.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

type Rooms = Arc<RwLock<HashMap<String, Vec<(u64, mpsc::UnboundedSender<Message>)>>>>;

/// Serves on `127.0.0.1:<port>` (0: any free port), printing
/// `listening on http://127.0.0.1:<port>` first, until killed.
pub async fn serve(port: u16) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let rooms: Rooms = Arc::default();
    let mut next_id = 0u64;
    loop {
        let (tcp, _) = listener.accept().await?;
        let _ = tcp.set_nodelay(true);
        next_id += 1;
        tokio::spawn(connection(tcp, next_id, rooms.clone()));
    }
}

// The handshake callback's error type is tungstenite's, large by its design.
#[allow(clippy::result_large_err)]
async fn connection(tcp: tokio::net::TcpStream, id: u64, rooms: Rooms) {
    let mut path = String::new();
    let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, resp: Response| {
        path = req.uri().path().trim_start_matches('/').to_owned();
        Ok(resp)
    })
    .await;
    let Ok(ws) = ws else { return };
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Message>();
    rooms
        .write()
        .unwrap()
        .entry(path.clone())
        .or_default()
        .push((id, tx));
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            // Write whatever else is queued before flushing once.
            if sink.feed(m).await.is_err() {
                return;
            }
            while let Ok(m) = rx.try_recv() {
                if sink.feed(m).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    while let Some(Ok(m)) = stream.next().await {
        if let Message::Text(text) = m {
            let rooms = rooms.read().unwrap();
            if let Some(members) = rooms.get(&path) {
                for (_, tx) in members {
                    let _ = tx.send(Message::Text(text.clone()));
                }
            }
        }
    }
    if let Some(members) = rooms.write().unwrap().get_mut(&path) {
        members.retain(|(m, _)| *m != id);
    }
    writer.abort();
}
