//! The forwarder: every record of a forwarded edge topic goes to its upstream Kafka topic
//! exactly once, in order, with the forwarder's cursor committed in the same Kafka
//! transaction (docs/FORWARDING.md is the protocol and its failure analysis).
//!
//! Layout, one job per module:
//! - [`config`]: the `[forwarder]` settings and their validation;
//! - [`kafka`]: the Kafka client pieces (connections, metadata, transactional producer,
//!   read_committed reader) over the `kafka-protocol` codecs;
//! - [`cursor`]: the cursor records' codec;
//! - [`origin`]: edge records as Kafka records with origin headers, and gap records;
//! - [`backoff`]: reconnect backoff with jitter;
//! - [`status`]: what `outpost status` shows;
//! - `run`: the forwarder thread (sessions, transactions, release after commit).

pub mod backoff;
pub mod config;
pub mod cursor;
pub mod kafka;
pub mod origin;
mod run;
pub mod status;

use std::sync::Arc;
use std::thread::JoinHandle;

pub use config::{ForwarderConfig, Partitioning, Route};
pub use run::SessionError;
pub use status::{LinkState, Status};

use crate::broker::Broker;
use crate::storage::flash::Flash;

/// Starts the forwarder thread. It runs until the broker begins shutdown (it then stops at
/// its next step; an open transaction is left for the next start's InitProducerId to abort).
pub fn spawn<F: Flash + 'static>(
    broker: Arc<Broker<F>>,
    cfg: ForwarderConfig,
    status: Arc<Status>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("outpost-forwarder".into())
        .spawn(move || run::Forwarder::new(broker, cfg, status).run())
}
