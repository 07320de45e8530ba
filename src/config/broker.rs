//! The broker's limits (`[broker]` in the config file): connections, requests in flight, frame
//! size, topics, partitions, timeouts and fetch sizes. Every one has a default and is checked
//! here before the broker starts, so hitting a limit at run time is a typed error to one client,
//! never a crash or unbounded RAM (promise 5).

use crate::groups::GroupConfig;
use crate::storage::{ConfigError, RingConfig};

/// Room a frame needs beyond `batch_bytes_max` by default: the frame header, the produce
/// request's fields and the per-record wire overhead, with a generous margin.
pub const FRAME_SLACK_BYTES_DEFAULT: u64 = 64 * 1024;
/// The least room a frame must have beyond `batch_bytes_max` (validated): enough for a FETCH
/// response carrying one record of the largest batch, or a PRODUCE of one maximal batch of
/// realistic records.
pub const FRAME_SLACK_BYTES_MIN: u64 = 4 * 1024;

/// The broker's resolved limits. Counts are plain numbers, sizes are in bytes, times in ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Most client connections open at once; one more gets a GOODBYE `TOO_MANY_CONNECTIONS`.
    pub connections_max: u32,
    /// Most unanswered requests per connection; the server stops reading the socket there.
    pub inflight_max: u32,
    /// Largest frame (header included) either side may send.
    pub frame_bytes_max: u32,
    /// Most topics; creating one more is refused with `TOO_MANY_TOPICS`.
    pub topics_max: u32,
    /// Most partitions one topic may have.
    pub partitions_per_topic_max: u32,
    /// A connection with no frame (and no request in flight) for this long is closed.
    pub idle_timeout_ms: u64,
    /// Cap on a FETCH's `wait_ms_max` (long poll).
    pub fetch_wait_ms_max: u32,
    /// Cap on a FETCH's `bytes_max`.
    pub fetch_bytes_max: u32,
    /// Consumer groups' limits and timeouts (`[groups]`; docs/GROUPS.md section 1.5).
    pub groups: GroupConfig,
}

impl BrokerConfig {
    pub const CONNECTIONS_MAX_DEFAULT: u32 = 256;
    pub const INFLIGHT_MAX_DEFAULT: u32 = 256;
    pub const TOPICS_MAX_DEFAULT: u32 = 128;
    pub const PARTITIONS_PER_TOPIC_MAX_DEFAULT: u32 = 64;
    pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;
    pub const FETCH_WAIT_MS_MAX_DEFAULT: u32 = 30_000;
    pub const FETCH_BYTES_MAX_DEFAULT: u32 = 1024 * 1024;

    /// The defaults for a ring: `frame_bytes_max` is the ring's `batch_bytes_max` plus 64 KiB.
    pub fn defaults_for(ring: &RingConfig) -> BrokerConfig {
        BrokerConfig {
            connections_max: Self::CONNECTIONS_MAX_DEFAULT,
            inflight_max: Self::INFLIGHT_MAX_DEFAULT,
            frame_bytes_max: frame_bytes_max_default(ring),
            topics_max: Self::TOPICS_MAX_DEFAULT,
            partitions_per_topic_max: Self::PARTITIONS_PER_TOPIC_MAX_DEFAULT,
            idle_timeout_ms: Self::IDLE_TIMEOUT_MS_DEFAULT,
            fetch_wait_ms_max: Self::FETCH_WAIT_MS_MAX_DEFAULT,
            fetch_bytes_max: Self::FETCH_BYTES_MAX_DEFAULT,
            groups: GroupConfig::default(),
        }
    }

    /// Checks the limits against each other and the ring. The error's `key` is the key inside
    /// `[broker]`.
    ///
    /// `topics_max × partitions_per_topic_max` may exceed the ring's `partitions_max`: creating
    /// a topic then fails with `TOO_MANY_PARTITIONS` once the ring's partitions are used up.
    pub fn validate(&self, ring: &RingConfig) -> Result<(), ConfigError> {
        let err = |key: &'static str, reason: String| Err(ConfigError { key, reason });
        let nonzero = [
            ("connections_max", u64::from(self.connections_max)),
            ("inflight_max", u64::from(self.inflight_max)),
            ("frame_bytes_max", u64::from(self.frame_bytes_max)),
            ("topics_max", u64::from(self.topics_max)),
            (
                "partitions_per_topic_max",
                u64::from(self.partitions_per_topic_max),
            ),
            ("idle_timeout_ms", self.idle_timeout_ms),
            ("fetch_wait_ms_max", u64::from(self.fetch_wait_ms_max)),
            ("fetch_bytes_max", u64::from(self.fetch_bytes_max)),
        ];
        for (key, value) in nonzero {
            if value == 0 {
                return err(key, "must be greater than 0".into());
            }
        }
        let frame = u64::from(self.frame_bytes_max);
        let need = ring.batch_bytes_max.saturating_add(FRAME_SLACK_BYTES_MIN);
        if frame < need {
            return err(
                "frame_bytes_max",
                format!(
                    "{frame} is too small for a batch of batch_bytes_max ({}) and its framing: \
                     it must be at least batch_bytes_max + 4 KiB ({need})",
                    ring.batch_bytes_max
                ),
            );
        }
        Ok(())
    }
}

/// `batch_bytes_max + 64 KiB`, at most `u32::MAX` (the wire's limit).
pub fn frame_bytes_max_default(ring: &RingConfig) -> u32 {
    let bytes = ring
        .batch_bytes_max
        .saturating_add(FRAME_SLACK_BYTES_DEFAULT);
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_for_the_dev_ring() {
        let ring = RingConfig::dev_default();
        let b = BrokerConfig::defaults_for(&ring);
        assert_eq!(b.frame_bytes_max, 256 * 1024 + 64 * 1024);
        b.validate(&ring).unwrap();
    }

    #[test]
    fn refuses_each_zero_by_name() {
        let ring = RingConfig::dev_default();
        let base = BrokerConfig::defaults_for(&ring);
        type SetZero = fn(&mut BrokerConfig);
        let cases: [(&str, SetZero); 8] = [
            ("connections_max", |b| b.connections_max = 0),
            ("inflight_max", |b| b.inflight_max = 0),
            ("frame_bytes_max", |b| b.frame_bytes_max = 0),
            ("topics_max", |b| b.topics_max = 0),
            ("partitions_per_topic_max", |b| {
                b.partitions_per_topic_max = 0
            }),
            ("idle_timeout_ms", |b| b.idle_timeout_ms = 0),
            ("fetch_wait_ms_max", |b| b.fetch_wait_ms_max = 0),
            ("fetch_bytes_max", |b| b.fetch_bytes_max = 0),
        ];
        for (key, zero) in cases {
            let mut b = base.clone();
            zero(&mut b);
            let e = b.validate(&ring).unwrap_err();
            assert_eq!(e.key, key);
            assert!(e.reason.contains("greater than 0"), "{e}");
        }
    }

    #[test]
    fn frame_must_hold_a_batch_plus_4_kib() {
        let ring = RingConfig::dev_default();
        let mut b = BrokerConfig::defaults_for(&ring);
        b.frame_bytes_max = (ring.batch_bytes_max + 4096) as u32;
        b.validate(&ring).unwrap();
        b.frame_bytes_max -= 1;
        let e = b.validate(&ring).unwrap_err();
        assert_eq!(e.key, "frame_bytes_max");
        assert!(e.reason.contains("batch_bytes_max"), "{e}");
    }
}
