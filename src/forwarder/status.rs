//! What `outpost status` shows about forwarding: the link state, and per forwarded partition
//! how far behind it is, the age of its oldest unforwarded record, the last commit and the
//! last error. Written by the forwarder thread, read by STATUS requests; bounded by the
//! number of forwarded partitions.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// The forwarder's link to Kafka.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Bootstrapping, fencing and reading the cursors back.
    Connecting,
    /// In a session: forwarding.
    Connected,
    /// Waiting before the next attempt after an error.
    BackingOff,
    /// Another producer holds the transactional id (or the transaction expired).
    Fenced,
}

impl LinkState {
    pub fn name(self) -> &'static str {
        match self {
            LinkState::Connecting => "connecting",
            LinkState::Connected => "connected",
            LinkState::BackingOff => "backing-off",
            LinkState::Fenced => "fenced",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn from_code(c: u8) -> Option<LinkState> {
        [
            LinkState::Connecting,
            LinkState::Connected,
            LinkState::BackingOff,
            LinkState::Fenced,
        ]
        .get(usize::from(c))
        .copied()
    }
}

/// One forwarded edge partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartStatus {
    pub upstream_topic: String,
    /// The next edge offset to forward (everything below is committed upstream); `None`
    /// until the cursor was read back in this run.
    pub position: Option<u64>,
    /// The partition's durable end on the edge.
    pub durable_next: u64,
    /// Stored bytes of the unforwarded records (estimated from the mean record size read).
    pub bytes_behind: u64,
    /// Timestamp (ms since the Unix epoch) of the oldest unforwarded record, if any.
    pub oldest_unforwarded_ms: Option<i64>,
    /// Unix ms of the last commit that carried this partition.
    pub last_commit_ms: Option<i64>,
}

impl PartStatus {
    pub fn records_behind(&self) -> u64 {
        self.durable_next.saturating_sub(self.position.unwrap_or(0))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub state: LinkState,
    pub last_error: Option<String>,
    /// Unix ms of the last commit.
    pub last_commit_ms: Option<i64>,
    pub commits: u64,
    pub records_forwarded: u64,
    pub gaps: u64,
    /// By (edge topic, partition).
    pub partitions: BTreeMap<(String, u32), PartStatus>,
}

pub struct Status {
    inner: Mutex<Snapshot>,
}

impl Default for Status {
    fn default() -> Self {
        Status {
            inner: Mutex::new(Snapshot {
                state: LinkState::Connecting,
                last_error: None,
                last_commit_ms: None,
                commits: 0,
                records_forwarded: 0,
                gaps: 0,
                partitions: BTreeMap::new(),
            }),
        }
    }
}

impl Status {
    pub fn snapshot(&self) -> Snapshot {
        self.lock().clone()
    }

    pub(crate) fn update<R>(&self, f: impl FnOnce(&mut Snapshot) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
