//! Per-room resume cursors: exactly which changes of a room's history a connection has
//! sent, so a replay (`sync`, or `since` on connect) sends each missing change once and a
//! live change already replayed is dropped. See `docs/protocol.md`, "Resume".

use std::collections::BTreeSet;

/// Most seqs a [`Cursor`] remembers above its contiguous range.
const MAX_AHEAD: usize = 4096;

/// What a connection has sent of one room's history.
///
/// Changes reach a connection in seq order from one node, but not necessarily when
/// several nodes publish (seq 5 may arrive before seq 4): the cursor records exactly
/// which seqs went out, so a replay leaves out only those and sends a lower seq that is
/// still on its way, instead of assuming everything below the highest was sent.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// The connection has sent every change with a seq in
    /// `(contiguous_from, contiguous_to]`.
    contiguous_from: i64,
    contiguous_to: i64,
    /// Seqs above `contiguous_to + 1` that went out before a lower one. At most
    /// [`MAX_AHEAD`]: past that the lowest are forgotten, so a later replay may send them
    /// again (a repeat, which clients drop by `(room_id, seq)`; never a loss).
    ahead: BTreeSet<i64>,
    /// Live change frames with a seq at or below this were replayed already: dropped.
    pub floor: i64,
}

impl Cursor {
    /// A room whose live changes reach the connection from after `seq`.
    pub fn live_after(seq: i64) -> Self {
        Cursor {
            contiguous_from: seq,
            contiguous_to: seq,
            ahead: BTreeSet::new(),
            floor: 0,
        }
    }

    /// Records that the change with `seq` went out.
    pub fn sent(&mut self, seq: i64) {
        if seq <= self.contiguous_to {
            return;
        }
        if seq == self.contiguous_to + 1 {
            self.contiguous_to = seq;
            self.absorb();
        } else {
            self.ahead.insert(seq);
            if self.ahead.len() > MAX_AHEAD {
                self.ahead.pop_first();
            }
        }
    }

    /// Whether the change with `seq` went out on this connection.
    pub fn was_sent(&self, seq: i64) -> bool {
        (seq > self.contiguous_from && seq <= self.contiguous_to) || self.ahead.contains(&seq)
    }

    /// Records a replay of every change in `(since, up_to]` (the ones [`was_sent`] left
    /// out went out now): live frames up to `up_to` are covered from here on.
    ///
    /// [`was_sent`]: Cursor::was_sent
    pub fn replayed(&mut self, since: i64, up_to: i64) {
        self.contiguous_from = if since <= self.contiguous_to {
            self.contiguous_from.min(since)
        } else {
            since
        };
        self.contiguous_to = self.contiguous_to.max(up_to);
        let to = self.contiguous_to;
        self.ahead.retain(|&seq| seq > to);
        self.absorb();
        self.floor = self.floor.max(up_to);
    }

    /// Moves `contiguous_to` over the seqs in `ahead` that now follow it.
    fn absorb(&mut self) {
        while self.ahead.remove(&(self.contiguous_to + 1)) {
            self.contiguous_to += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    /// The seqs in `(since, up_to]` a replay sends with `cursor` (what `sync` does).
    fn replay(cursor: &Cursor, since: i64, up_to: i64) -> Vec<i64> {
        (since + 1..=up_to)
            .filter(|s| !cursor.was_sent(*s))
            .collect()
    }

    #[test]
    fn a_seq_that_arrives_after_a_higher_one_is_neither_lost_nor_repeated() {
        // The connection went live after seq 3; seq 5 arrives live before seq 4 (two
        // nodes published them), then the client asks for a replay from 3.
        let mut cursor = Cursor::live_after(3);
        cursor.sent(5);
        let mut delivered = vec![5];
        delivered.extend(replay(&cursor, 3, 5));
        cursor.replayed(3, 5);
        // The late live 4 is dropped only if the replay covered it.
        let late_live = 4;
        if late_live > cursor.floor {
            cursor.sent(late_live);
            delivered.push(late_live);
        }
        delivered.sort_unstable();
        assert_eq!(delivered, vec![4, 5], "every change exactly once");
    }

    #[test]
    fn in_order_arrival_keeps_one_contiguous_range() {
        let mut cursor = Cursor::live_after(10);
        for seq in 11..=20 {
            cursor.sent(seq);
        }
        assert_eq!((cursor.contiguous_from, cursor.contiguous_to), (10, 20));
        assert!(cursor.ahead.is_empty());
        assert_eq!(replay(&cursor, 5, 22), vec![6, 7, 8, 9, 10, 21, 22]);
        cursor.sent(23);
        cursor.sent(22);
        cursor.sent(21);
        assert_eq!(
            cursor.contiguous_to, 23,
            "gaps close as the lower seqs arrive"
        );
        assert!(cursor.ahead.is_empty());
    }

    #[test]
    fn a_replay_joins_what_was_sent_and_what_it_sent() {
        let mut cursor = Cursor::live_after(10);
        cursor.sent(12);
        assert_eq!(replay(&cursor, 8, 13), vec![9, 10, 11, 13]);
        cursor.replayed(8, 13);
        assert_eq!((cursor.contiguous_from, cursor.contiguous_to), (8, 13));
        assert_eq!(cursor.floor, 13);
        assert!(replay(&cursor, 8, 13).is_empty(), "nothing twice");
    }

    #[test]
    fn a_replay_from_the_latest_page_claims_nothing_below_where_it_reached() {
        // `since` unknown: `sync` records the replay as `(up_to, up_to]`.
        let mut cursor = Cursor::live_after(50);
        cursor.replayed(50, 50);
        assert_eq!(replay(&cursor, 40, 50), (41..=50).collect::<Vec<_>>());
    }
}
