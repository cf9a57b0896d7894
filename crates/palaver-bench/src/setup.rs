//! Accounts and rooms for a run. Palaver (`palaver`, `palaver-sio` and `palaver-signalr`:
//! the same server) gets real accounts (registered through the REST API, so each costs one
//! argon2id hash on the server: about 30 ms of CPU) and real rooms; the peers have no
//! accounts and name their rooms.

use anyhow::Context as _;
use futures_util::StreamExt as _;
use palaver_client::Client;
use palaver_protocol::Visibility;

use crate::target::{Member, Server};

/// The password of every bench account.
pub const PASSWORD: &str = "bench-otter-lantern-42";

/// `rooms` rooms of `size` members each, every member in exactly one room: the members
/// (room `k` holds members `k*size .. (k+1)*size`) and the room ids or names.
pub async fn rooms(
    server: &Server,
    rooms: usize,
    size: usize,
) -> anyhow::Result<(Vec<Member>, Vec<String>)> {
    if !server.kind.is_palaver() {
        let members = vec![Member::default(); rooms * size];
        let names = (0..rooms).map(|k| format!("room-{k}")).collect();
        return Ok((members, names));
    }
    let url = server.http_url();
    let run = crate::target::now_us();
    let clients = users(&url, rooms * size, &format!("b{run}")).await?;
    let mut ids = Vec::with_capacity(rooms);
    for k in 0..rooms {
        let owner = &clients[k * size];
        let room = owner
            .create_room(&format!("bench-{run}-{k}"), Visibility::Public, None)
            .await
            .context("creating a room")?;
        let joins = futures_util::stream::iter(&clients[k * size + 1..(k + 1) * size])
            .map(|c| c.join_room(&room.id))
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        for j in joins {
            j.context("joining a room")?;
        }
        ids.push(room.id);
    }
    let members = clients.iter().map(member_of).collect();
    Ok((members, ids))
}

/// Registers `count` accounts named `<prefix>_<i>`, 8 at a time, each logged in.
pub async fn users(url: &str, count: usize, prefix: &str) -> anyhow::Result<Vec<Client>> {
    let started = std::time::Instant::now();
    let registered = futures_util::stream::iter(0..count)
        .map(|i| {
            let url = url.to_owned();
            let name = format!("{prefix}_{i}");
            async move {
                let mut c = Client::new(url);
                c.register(&name, &format!("{name}@bench.example"), PASSWORD)
                    .await
                    .with_context(|| format!("registering {name}"))?;
                anyhow::Ok(c)
            }
        })
        .buffered(8)
        .collect::<Vec<_>>()
        .await;
    let clients = registered.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    if count >= 100 {
        eprintln!("  registered {count} accounts in {:.1?}", started.elapsed());
    }
    Ok(clients)
}

/// A logged-in client as the load engine needs it.
pub fn member_of(c: &Client) -> Member {
    Member {
        token: c.token.clone().unwrap_or_default(),
        user_id: c.user.as_ref().map(|u| u.id.clone()).unwrap_or_default(),
        login: c
            .user
            .as_ref()
            .map(|u| u.username.clone())
            .unwrap_or_default(),
    }
}
