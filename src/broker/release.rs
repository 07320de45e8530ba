//! Local topics are released at once: a record of a topic nobody forwards upstream may be
//! reclaimed (oldest segment first) as soon as it is durable, so the ring wraps instead of
//! filling up. The release watermark lives in RAM and only moves forward: releasing a
//! partition up to `u64::MAX` once covers every later record of it, until a restart (then
//! `Broker::start` releases again).
//!
//! `Log::release` ignores a partition that has no durable record yet (so that the storage's
//! partition table stays bounded), so a partition is released after its first durable
//! records are published: this task wakes after every sync that publishes records and
//! releases the partitions that now have some. When every partition is released it only
//! wakes; it does no work. (The forwarder issue will keep forwarded topics unreleased until
//! their records are committed upstream.)

use std::sync::Arc;

use super::Broker;
use crate::storage::flash::Flash;

/// Runs until shutdown begins.
pub(crate) async fn run<F: Flash>(broker: Arc<Broker<F>>) {
    loop {
        let published = broker.log().listen_published();
        let stop = broker.listen_shutdown();
        if broker.is_shutting_down() {
            return;
        }
        broker.release_local();
        smol::future::or(published, stop).await;
    }
}
