//! The broker: the native TCP protocol (docs/PROTOCOL.md) served over the group-commit log.
//! docs/BROKER.md describes its rules (topic registry, partition choice, release, limits,
//! shutdown).
//!
//! Layout, one job per module (the mini-redis shape):
//! - [`topics`]: the durable topic registry;
//! - [`server`]: the accept loop, the connection limit, the executor threads, shutdown;
//! - `conn`: one connection: the bounded read buffer, frame decoding, pipelining, the writer;
//! - `inflight`: the per-connection limit of unanswered requests;
//! - `release`: local topics' records become reclaimable as soon as they are durable;
//! - `cmd`: one module per request kind: decode, apply, encode.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use outpost::broker::{Broker, server};
//! # use outpost::config::BrokerConfig;
//! # use outpost::storage::{Ring, RingConfig, flash::FileFlash};
//! # fn demo(ring: Ring<FileFlash>) -> Result<(), Box<dyn std::error::Error>> {
//! let cfg = BrokerConfig::defaults_for(ring.config());
//! let broker = Broker::start(ring, cfg)?;
//! smol::block_on(async {
//!     let listener = smol::net::TcpListener::bind("127.0.0.1:0").await?;
//!     let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
//!     # drop(stop_tx);
//!     server::run(listener, broker.clone(), async move {
//!         let _ = stop_rx.recv().await;
//!     })
//!     .await
//! })?;
//! broker.close();
//! # Ok(()) }
//! ```

mod cmd;
mod conn;
pub mod groups;
mod inflight;
mod lane;
mod release;
pub mod server;
pub mod topics;

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Instant;

use crate::config::BrokerConfig;
use crate::storage::flash::Flash;
use crate::storage::{Log, Offset, Ring, RingConfig};
use groups::{Groups, OffsetsLoadError};
use topics::{Limits, RegistryError, Topics};

/// The name and version a HELLO response carries.
pub const SERVER_NAME: &str = concat!("outpost ", env!("CARGO_PKG_VERSION"));

/// Why the broker could not start.
#[derive(Debug)]
#[non_exhaustive]
pub enum StartError {
    /// The topic registry in the ring's metadata does not make sense.
    Registry(RegistryError),
    /// A committed-offset entry in the ring's metadata does not decode.
    GroupOffsets(OffsetsLoadError),
    /// The log's writer thread could not be started.
    Writer(io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Registry(_) => write!(f, "cannot load the topic registry"),
            StartError::GroupOffsets(_) => write!(f, "cannot load the committed offsets"),
            StartError::Writer(_) => write!(f, "cannot start the log writer thread"),
        }
    }
}

impl std::error::Error for StartError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            StartError::Registry(e) => Some(e),
            StartError::GroupOffsets(e) => Some(e),
            StartError::Writer(e) => Some(e),
        }
    }
}

/// Everything the server shares between connections: the log, the topics, the limits and the
/// run-time counters. Cheap to share behind an `Arc`.
pub struct Broker<F: Flash> {
    log: Log<F>,
    topics: Topics,
    config: BrokerConfig,
    ring: RingConfig,
    started: Instant,
    connections: AtomicU32,
    /// Notified when a connection ends (shutdown waits for the count to reach zero).
    connection_closed: event_listener::Event,
    stopping: AtomicBool,
    /// Notified once when shutdown begins: readers stop, long polls return.
    stop: event_listener::Event,
    /// The ring's identity (cursors upstream name it: docs/FORWARDING.md section 4).
    ring_id: u64,
    /// Edge topics the forwarder owns: never released here, only after their upstream
    /// commit (docs/BROKER.md section 3).
    forwarded: HashSet<String>,
    /// The forwarder's state, for STATUS (None: no forwarder configured).
    forwarding: Option<Arc<crate::forwarder::Status>>,
    /// Consumer groups: the coordinator and the committed offsets (docs/GROUPS.md).
    groups: Groups,
}

impl<F: Flash + 'static> Broker<F> {
    /// Loads the topic registry from the opened ring, starts the group-commit log on it and
    /// releases the stored records of every (local) topic for reclaim.
    pub fn start(ring: Ring<F>, config: BrokerConfig) -> Result<Arc<Broker<F>>, StartError> {
        Broker::start_forwarding(ring, config, HashSet::new(), None)
    }

    /// [`Broker::start`] for a gateway with a forwarder: the `forwarded` edge topics are left
    /// unreleased for the forwarder, and STATUS reports `forwarding`.
    pub fn start_forwarding(
        ring: Ring<F>,
        config: BrokerConfig,
        forwarded: HashSet<String>,
        forwarding: Option<Arc<crate::forwarder::Status>>,
    ) -> Result<Arc<Broker<F>>, StartError> {
        let ring_id = ring.ring_id();
        let ring_config = ring.config().clone();
        let limits = Limits {
            topics_max: config.topics_max,
            partitions_per_topic_max: config.partitions_per_topic_max,
            partitions_max: ring_config.partitions_max,
        };
        let topics = Topics::load(ring.meta(), limits).map_err(StartError::Registry)?;
        let groups = Groups::load(config.groups.clone(), &topics, ring.meta())
            .map_err(StartError::GroupOffsets)?;
        let log = Log::start(ring).map_err(StartError::Writer)?;
        let broker = Broker {
            log,
            topics,
            config,
            ring: ring_config,
            started: Instant::now(),
            connections: AtomicU32::new(0),
            connection_closed: event_listener::Event::new(),
            stopping: AtomicBool::new(false),
            stop: event_listener::Event::new(),
            ring_id,
            forwarded,
            forwarding,
            groups,
        };
        let released = broker.release_local();
        log::info!(
            "broker: {} topic(s) loaded; {released} partition(s) with stored records released \
             for reclaim",
            broker.topics.len()
        );
        Ok(Arc::new(broker))
    }
}

impl<F: Flash> Broker<F> {
    pub fn log(&self) -> &Log<F> {
        &self.log
    }

    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    pub fn ring_config(&self) -> &RingConfig {
        &self.ring
    }

    /// The identity of the ring (fresh at every format).
    pub fn ring_id(&self) -> u64 {
        self.ring_id
    }

    /// Whether the forwarder owns an edge topic's release.
    pub fn is_forwarded(&self, topic: &str) -> bool {
        self.forwarded.contains(topic)
    }

    /// The forwarder's status, if one runs.
    pub fn forwarding(&self) -> Option<&Arc<crate::forwarder::Status>> {
        self.forwarding.as_ref()
    }

    /// Consumer groups: the coordinator and the committed offsets.
    pub(crate) fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Milliseconds since the broker started.
    pub fn uptime_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Client connections open now.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Starts shutdown: the server stops accepting, connections stop reading requests (the
    /// ones already buffered are answered `SHUTTING_DOWN`), long polls return at once. Requests
    /// in flight finish. Idempotent.
    pub fn begin_shutdown(&self) {
        if !self.stopping.swap(true, Ordering::SeqCst) {
            self.stop.notify(usize::MAX);
        }
    }

    pub fn is_shutting_down(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// A listener notified when shutdown begins. Register it, then check
    /// [`Broker::is_shutting_down`], then await it.
    pub fn listen_shutdown(&self) -> event_listener::EventListener {
        self.stop.listen()
    }

    /// Stops the log: finishes the queued appends, syncs, joins the writer thread. Appends
    /// after this fail with `SHUTTING_DOWN`.
    pub fn close(&self) {
        self.begin_shutdown();
        self.log.close();
    }

    /// Releases every partition of every topic that has durable records and was not released
    /// yet; returns how many it released. Local topics are released at once (docs/BROKER.md).
    pub(crate) fn release_local(&self) -> usize {
        let mut released = 0;
        if self.topics.unreleased() == 0 {
            return 0;
        }
        for topic in self.topics.list() {
            if self.forwarded.contains(topic.name()) {
                continue;
            }
            for p in 0..topic.partitions() {
                if topic.is_released(p) {
                    continue;
                }
                let Some(pid) = topic.partition_id(p) else {
                    continue;
                };
                // `release` ignores a partition without durable records, so check first: a
                // partition seen with records here is in the table when released below.
                let (_, next) = self.log.reader().offsets(pid);
                if next > Offset::ZERO {
                    self.log.release(pid, Offset(u64::MAX));
                    self.topics.mark_released(&topic, p);
                    released += 1;
                }
            }
        }
        released
    }

    fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    fn connection_ended(&self) {
        self.connections.fetch_sub(1, Ordering::SeqCst);
        self.connection_closed.notify(usize::MAX);
    }
}
