//! A connection's outbound queue: the frames the hub delivered and the connection has not
//! written yet, and the close the hub asked for.
//!
//! Bounded twice, by frames (`limits.ws_outbound_queue_frames`) and by bytes
//! (`limits.ws_outbound_queue_bytes`); a frame in the batch the connection is writing still
//! counts until [`Outbox::release`]. A push that does not fit closes the connection as a
//! slow consumer (4008) instead of waiting: the hub never blocks, so one slow client never
//! delays the others. Ephemeral frames (typing, presence) are dropped instead once the
//! queue is half full, so they are the first thing lost under pressure.
//!
//! It allocates nothing until the first frame, and nothing per frame or per batch after:
//! the queue's buffer is handed to the connection whole with each batch (one lock per
//! batch, not per frame) in exchange for the connection's emptied one. One waiter (the connection's task) is woken through an [`AtomicWaker`]; a flag under
//! the lock says whether anything happened since its last [`Outbox::take`], so no wake-up
//! is lost between a check and the wait, and a frame already taken wakes nobody again.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use futures_util::task::AtomicWaker;
use palaver_protocol::ws::close_code;

use crate::hub::CloseReason;
use crate::live::wire::Frame;

/// One frame waiting to be written.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub frame: Frame,
    /// `(room_id, seq)` for a change to a room's history, so a connection that replayed
    /// the room up to some seq can drop what it already sent.
    pub change: Option<(Arc<str>, i64)>,
}

/// What [`Outbox::push`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for writing.
    Queued,
    /// An ephemeral frame left out because the queue is half full.
    Dropped,
    /// It did not fit: the connection is now closing as a slow consumer (returned once
    /// per connection; later pushes get [`Pushed::Closing`]).
    Full,
    /// The connection is already closing: nothing more is queued.
    Closing,
}

#[derive(Default)]
struct State {
    items: VecDeque<Outbound>,
    /// Frames and bytes queued or in the batch being written.
    frames: usize,
    bytes: usize,
    close: Option<CloseReason>,
    /// Something was pushed or a close asked for since the last take.
    signaled: bool,
}

/// The outbound queue and close signal of one connection (shared by the hub, which
/// pushes, and the connection's task, which takes batches).
pub struct Outbox {
    state: Mutex<State>,
    waker: AtomicWaker,
    max_frames: usize,
    max_bytes: usize,
}

impl Outbox {
    /// An empty queue for at most `max_frames` frames and `max_bytes` bytes (each at least
    /// 1).
    pub fn new(max_frames: usize, max_bytes: usize) -> Self {
        Outbox {
            state: Mutex::default(),
            waker: AtomicWaker::new(),
            max_frames: max_frames.max(1),
            max_bytes: max_bytes.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is left consistent at every point a panic could occur.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `item` unless the connection is closing; an ephemeral one is dropped when the
    /// queue is at least half full; one that does not fit closes the connection with
    /// 4008. Never waits.
    pub fn push(&self, item: Outbound, ephemeral: bool) -> Pushed {
        let len = item.frame.len();
        let mut state = self.lock();
        if state.close.is_some() {
            return Pushed::Closing;
        }
        if ephemeral
            && ((state.frames + 1) * 2 > self.max_frames
                || (state.bytes + len) * 2 > self.max_bytes)
        {
            return Pushed::Dropped;
        }
        if state.frames + 1 > self.max_frames || state.bytes + len > self.max_bytes {
            state.close = Some(CloseReason {
                code: close_code::SLOW_CONSUMER,
                reason: "slow consumer: outbound queue full",
            });
            state.signaled = true;
            drop(state);
            self.waker.wake();
            return Pushed::Full;
        }
        state.frames += 1;
        state.bytes += len;
        state.items.push_back(item);
        let wake = !std::mem::replace(&mut state.signaled, true);
        drop(state);
        if wake {
            self.waker.wake();
        }
        Pushed::Queued
    }

    /// Asks the connection to close with `reason` (the first reason wins). Returns whether
    /// this call set it.
    pub fn close(&self, reason: CloseReason) -> bool {
        let mut state = self.lock();
        if state.close.is_some() {
            return false;
        }
        state.close = Some(reason);
        state.signaled = true;
        drop(state);
        self.waker.wake();
        true
    }

    /// The close asked for, if any.
    pub fn closing(&self) -> Option<CloseReason> {
        self.lock().close
    }

    /// Moves every queued frame into `batch` (which must be empty), and returns the close
    /// asked for, if any. The two buffers trade places, so a busy connection allocates
    /// nothing per batch. The frames keep counting toward the bounds until
    /// [`Outbox::release`].
    pub fn take(&self, batch: &mut VecDeque<Outbound>) -> Option<CloseReason> {
        debug_assert!(batch.is_empty());
        let mut state = self.lock();
        std::mem::swap(&mut state.items, batch);
        state.signaled = false;
        state.close
    }

    /// Frees the bounds held by `frames` frames of `bytes` bytes that were written (or
    /// dropped as already sent).
    pub fn release(&self, frames: usize, bytes: usize) {
        let mut state = self.lock();
        state.frames = state.frames.saturating_sub(frames);
        state.bytes = state.bytes.saturating_sub(bytes);
    }

    /// Waits until something was pushed or a close was asked for since the last
    /// [`Outbox::take`] (returns at once if that happened before this call).
    pub async fn changed(&self) {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.lock().signaled {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
    }

    /// Waits until a close is asked for, and returns it. (The outbox has one waker: call
    /// this and [`Outbox::changed`] from the connection's own task only.)
    pub async fn closed(&self) -> CloseReason {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            match self.lock().close {
                Some(reason) => std::task::Poll::Ready(reason),
                None => std::task::Poll::Pending,
            }
        })
        .await
    }

    /// Takes the first queued frame and frees its bounds at once (tests read queues one
    /// frame at a time).
    #[cfg(test)]
    pub fn pop(&self) -> Option<Outbound> {
        let mut state = self.lock();
        let item = state.items.pop_front()?;
        state.frames -= 1;
        state.bytes -= item.frame.len();
        Some(item)
    }

    /// Bytes queued or being written (for tests and metrics).
    pub fn queued_bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(text: &str) -> Outbound {
        Outbound {
            frame: Frame::from(text.to_owned()),
            change: None,
        }
    }

    #[test]
    fn frames_bound_then_close_as_slow_consumer() {
        let q = Outbox::new(2, 1 << 20);
        assert_eq!(q.push(item("a"), false), Pushed::Queued);
        assert_eq!(q.push(item("b"), false), Pushed::Queued);
        assert_eq!(q.push(item("c"), false), Pushed::Full);
        assert_eq!(q.closing().map(|r| r.code), Some(close_code::SLOW_CONSUMER));
        assert_eq!(q.push(item("d"), false), Pushed::Closing);
    }

    #[test]
    fn bytes_bound_and_frames_in_a_batch_count_until_released() {
        let q = Outbox::new(1000, 10);
        assert_eq!(q.push(item("12345678"), false), Pushed::Queued);
        let mut batch = VecDeque::new();
        assert!(q.take(&mut batch).is_none());
        assert_eq!(batch.len(), 1);
        assert_eq!(q.queued_bytes(), 8, "being written still counts");
        q.release(1, 8);
        assert_eq!(q.queued_bytes(), 0);
        assert_eq!(q.push(item("12345678"), false), Pushed::Queued);
        assert_eq!(q.push(item("12345678"), false), Pushed::Full);
    }

    #[test]
    fn ephemeral_frames_are_dropped_when_half_full() {
        let q = Outbox::new(4, 1 << 20);
        assert_eq!(q.push(item("a"), true), Pushed::Queued);
        assert_eq!(q.push(item("b"), false), Pushed::Queued);
        assert_eq!(q.push(item("typing"), true), Pushed::Dropped);
        assert!(q.closing().is_none(), "dropping is not closing");
    }

    #[test]
    fn the_first_close_wins() {
        let q = Outbox::new(4, 100);
        let a = CloseReason {
            code: 4001,
            reason: "session ended",
        };
        assert!(q.close(a));
        assert!(!q.close(CloseReason {
            code: 1001,
            reason: "restart"
        }));
        assert_eq!(q.closing(), Some(a));
    }

    #[tokio::test]
    async fn a_push_before_the_wait_is_not_lost() {
        let q = Arc::new(Outbox::new(4, 100));
        q.push(item("a"), false);
        tokio::time::timeout(std::time::Duration::from_secs(5), q.changed())
            .await
            .expect("the stored permit wakes the waiter");
    }
}
