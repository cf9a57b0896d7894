//! `rooms`: many small rooms, every member sending in a closed loop (a window of
//! unacknowledged sends each); reports acknowledged — for Palaver, persisted — messages/s
//! and delivery latency. On several Palaver nodes, member `i` connects to node `i % N`
//! (accounts and rooms are made on node 0).

use serde::{Deserialize, Serialize};

use super::{measure, per_address, LoadResult};
use crate::load::{spread_over_nodes, Conn, Pace, Plan};
use crate::target::Server;

#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct RoomsArgs {
    /// Number of rooms.
    #[arg(long, default_value_t = 200)]
    pub rooms: usize,
    /// Members per room (each one connection, each sending).
    #[arg(long, default_value_t = 5)]
    pub room_size: usize,
    /// Unacknowledged sends each member keeps in flight.
    #[arg(long, default_value_t = 4)]
    pub window: usize,
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    #[arg(long, default_value_t = 2)]
    pub drain_secs: u64,
    #[arg(long, default_value_t = 64)]
    pub padding: usize,
}

pub async fn run(server: &Server, args: &RoomsArgs) -> anyhow::Result<LoadResult> {
    let (members, rooms) = crate::setup::rooms(server, args.rooms, args.room_size).await?;
    let mut conns: Vec<Conn> = (0..members.len())
        .map(|m| Conn {
            member: m,
            room: m / args.room_size,
            sends: true,
            node: 0,
        })
        .collect();
    let addrs = server.addrs();
    // Connection i on node i % N: a room's members sit on different nodes.
    spread_over_nodes(&mut conns, addrs.len());
    let plan = Plan {
        kind: server.kind,
        addrs,
        conns,
        members,
        rooms,
        pace: Pace::Window(args.window),
        padding: args.padding,
        warmup_ms: args.warmup_secs * 1000,
        window_ms: args.duration_secs * 1000,
        drain_ms: args.drain_secs * 1000,
        per_address: per_address(),
    };
    measure(server, &plan, 0.0).await
}
