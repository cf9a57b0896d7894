//! `fanout`: one room of M members, P of them sending R messages/s each (on several
//! Palaver nodes: members and senders spread evenly over them, the room made on node 0).

use serde::{Deserialize, Serialize};

use super::{measure, per_address, LoadResult};
use crate::load::{spread_over_nodes, Conn, Pace, Plan};
use crate::target::{Member, Server};

/// The shape of a fan-out load.
#[derive(Clone, Debug, Serialize, Deserialize, clap::Args)]
pub struct FanoutArgs {
    /// Members of the room, each with one connection.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Members that send.
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Messages per second per sender.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 2)]
    pub warmup_secs: u64,
    /// Seconds of the measured window.
    #[arg(long, default_value_t = 10)]
    pub duration_secs: u64,
    /// Seconds after the window for late deliveries.
    #[arg(long, default_value_t = 2)]
    pub drain_secs: u64,
    /// Bytes of padding in each message.
    #[arg(long, default_value_t = 64)]
    pub padding: usize,
}

/// The plan of a fan-out load on prepared members and room, its connections spread over
/// the server's nodes ([`spread_over_nodes`]).
pub fn plan(server: &Server, members: &[Member], room: &str, args: &FanoutArgs) -> Plan {
    let mut conns: Vec<Conn> = (0..members.len())
        .map(|m| Conn {
            member: m,
            room: 0,
            // Spread the senders over the member list.
            sends: m % (members.len() / args.senders.max(1)).max(1) == 0
                && m / (members.len() / args.senders.max(1)).max(1) < args.senders,
            node: 0,
        })
        .collect();
    let addrs = server.addrs();
    spread_over_nodes(&mut conns, addrs.len());
    Plan {
        kind: server.kind,
        addrs,
        members: members.to_vec(),
        rooms: vec![room.to_owned()],
        conns,
        pace: Pace::Rate(args.rate),
        padding: args.padding,
        warmup_ms: args.warmup_secs * 1000,
        window_ms: args.duration_secs * 1000,
        drain_ms: args.drain_secs * 1000,
        per_address: per_address(),
    }
}

/// Prepares the room and runs the load once.
pub async fn run(server: &Server, args: &FanoutArgs) -> anyhow::Result<LoadResult> {
    let (members, rooms) = crate::setup::rooms(server, 1, args.members).await?;
    let plan = plan(server, &members, &rooms[0], args);
    measure(server, &plan, args.rate * args.senders as f64).await
}
