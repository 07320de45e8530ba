//! The per-connection limit of unanswered requests (`inflight_max`): a counting semaphore
//! whose permits are returned when a request's response has been queued for the writer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Counts the requests in flight on one connection.
pub(crate) struct Inflight {
    count: AtomicU32,
    max: u32,
    /// Notified when a permit is returned.
    freed: event_listener::Event,
}

/// One request in flight; returns its slot when dropped.
pub(crate) struct Permit(Arc<Inflight>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::AcqRel);
        self.0.freed.notify(1);
    }
}

impl Inflight {
    pub(crate) fn new(max: u32) -> Arc<Inflight> {
        Arc::new(Inflight {
            count: AtomicU32::new(0),
            max,
            freed: event_listener::Event::new(),
        })
    }

    /// Takes a slot if one is free.
    pub(crate) fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(self.clone()))
    }

    /// Requests in flight now.
    pub(crate) fn count(&self) -> u32 {
        self.count.load(Ordering::Acquire)
    }

    /// Whether a slot is free now.
    pub(crate) fn has_room(&self) -> bool {
        self.count() < self.max
    }

    /// Waits until a slot is free (does not take it: the caller only reads the socket again).
    pub(crate) async fn room(&self) {
        loop {
            if self.has_room() {
                return;
            }
            let listener = self.freed.listen();
            if self.has_room() {
                return;
            }
            listener.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permits_are_limited_and_returned() {
        let f = Inflight::new(2);
        let a = f.try_acquire().unwrap();
        let b = f.try_acquire().unwrap();
        assert!(f.try_acquire().is_none());
        assert!(!f.has_room());
        drop(a);
        assert_eq!(f.count(), 1);
        smol::block_on(f.room());
        let _c = f.try_acquire().unwrap();
        drop(b);
        assert_eq!(f.count(), 1);
    }
}
