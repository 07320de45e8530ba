//! Per-connection ordering of idempotent writes. Requests run as concurrent tasks, so two
//! PRODUCE_IDEMPOTENT requests pipelined on one connection could reach the writer's queue in
//! either order, and the second would be refused as out of sequence. Each such request takes
//! a ticket when its frame is read (frame order) and queues its append only on its turn; the
//! turn passes on as soon as the append is *queued*, not when it is durable, so pipelining
//! (and group commit across the pipelined requests) is kept.
//!
//! Invariant: `serving` is the smallest ticket not yet released; a ticket released out of turn
//! (its request failed before queuing anything) waits in `released` until the turns before it
//! end, so a failure never lets a later request overtake an earlier one.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

#[derive(Default)]
struct State {
    issued: u64,
    serving: u64,
    released: BTreeSet<u64>,
}

/// One connection's lane.
#[derive(Default)]
pub(crate) struct Lane {
    state: Mutex<State>,
    turned: event_listener::Event,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Lane {
    /// The next ticket, in the order frames are read.
    pub(crate) fn ticket(self: &Arc<Self>) -> Turn {
        let mut s = lock(&self.state);
        let ticket = s.issued;
        s.issued += 1;
        Turn {
            lane: self.clone(),
            ticket,
            released: false,
        }
    }

    fn release(&self, ticket: u64) {
        {
            let mut s = lock(&self.state);
            s.released.insert(ticket);
            loop {
                let serving = s.serving;
                if !s.released.remove(&serving) {
                    break;
                }
                s.serving += 1;
            }
        }
        self.turned.notify(usize::MAX);
    }

    fn is_serving(&self, ticket: u64) -> bool {
        lock(&self.state).serving == ticket
    }
}

/// A request's place in its connection's lane. Dropping it releases the turn.
pub(crate) struct Turn {
    lane: Arc<Lane>,
    ticket: u64,
    released: bool,
}

impl Turn {
    /// Waits until every earlier request of the lane released its turn.
    pub(crate) async fn wait(&self) {
        loop {
            let listener = self.lane.turned.listen();
            if self.lane.is_serving(self.ticket) {
                return;
            }
            listener.await;
        }
    }

    /// Lets the next request go (after this one queued its append, or failed).
    pub(crate) fn release(&mut self) {
        if !self.released {
            self.released = true;
            self.lane.release(self.ticket);
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_follow_ticket_order_even_when_released_early() {
        let lane = Arc::new(Lane::default());
        let mut t0 = lane.ticket();
        let t1 = lane.ticket();
        let t2 = lane.ticket();
        assert!(lane.is_serving(0));
        // t1 fails before its turn: t2 still waits for t0.
        drop(t1);
        assert!(!lane.is_serving(2));
        t0.release();
        assert!(lane.is_serving(2));
        smol::block_on(t2.wait());
        drop(t2);
        assert!(lane.is_serving(3));
    }
}
