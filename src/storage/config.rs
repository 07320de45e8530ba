//! The ring's configuration, already resolved from the board and config files (see
//! `crate::config`), and the rules that make it safe to open a ring with it.

use core::fmt;

/// What an append does when the ring is full of records nobody released yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FullPolicy {
    /// Refuse the append with `BufferFull`; nothing acknowledged is touched (the default).
    Reject,
    /// Reclaim the oldest segment anyway; the records lost are counted and logged.
    DropOldest,
}

/// What recovery does when it finds corruption that is not a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CorruptionPolicy {
    /// Refuse to open the ring, naming the segment and byte position (the default).
    Refuse,
    /// Skip the rest of the damaged segment, count and log it, and open.
    SkipSegment,
}

/// Everything the ring needs to know. Sizes are in bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingConfig {
    /// Erase block of the medium (from the board).
    pub erase_block_bytes: u64,
    /// Program unit of the medium (from the board).
    pub program_unit_bytes: u64,
    /// Total size of the preallocated ring; never grows.
    pub ring_bytes: u64,
    /// Size of one segment: a multiple of the erase block; the ring holds at least 4.
    pub segment_bytes: u64,
    pub full_policy: FullPolicy,
    pub corruption_policy: CorruptionPolicy,
    /// Upper bound of one `program` call (one group commit). Also bounds the region a power
    /// cut can tear, which recovery relies on.
    pub group_bytes_max: u64,
    /// Upper bound of one append (one batch, header included).
    pub batch_bytes_max: u64,
    /// Upper bound of the metadata key/value state kept in RAM and carried forward.
    pub meta_bytes_max: u64,
    /// Upper bound of distinct partitions the ring tracks.
    pub partitions_max: u32,
    /// One sparse index entry per this many bytes of a partition's data.
    pub index_interval_bytes: u64,
    /// Size of the buffer a read or a recovery scan pulls from the flash at once.
    pub read_chunk_bytes: u64,
    /// Upper bound of appends queued for the group-commit writer.
    pub append_queue_max: u32,
    /// Most idempotent producers whose state is kept (the most idle one expires when a new
    /// producer name initialises and this many are live).
    pub producers_max: u32,
}

impl RingConfig {
    /// A small default suitable for tests and the x86_64 dev board.
    pub fn dev_default() -> RingConfig {
        RingConfig {
            erase_block_bytes: 64 * 1024,
            program_unit_bytes: 512,
            ring_bytes: 64 * 1024 * 1024,
            segment_bytes: 4 * 1024 * 1024,
            full_policy: FullPolicy::Reject,
            corruption_policy: CorruptionPolicy::Refuse,
            group_bytes_max: 1024 * 1024,
            batch_bytes_max: 256 * 1024,
            meta_bytes_max: 64 * 1024,
            partitions_max: 1024,
            index_interval_bytes: 64 * 1024,
            read_chunk_bytes: 64 * 1024,
            append_queue_max: 4096,
            producers_max: 64,
        }
    }

    /// Number of segments in the ring.
    pub fn segment_count(&self) -> u64 {
        self.ring_bytes / self.segment_bytes
    }

    /// Upper bound of the checkpoint batch written at the start of every segment: every
    /// partition's next offset plus the whole metadata state, with encoding overhead.
    pub fn checkpoint_bytes_max(&self) -> u64 {
        crate::storage::format::checkpoint_bytes_max(self.partitions_max, self.meta_bytes_max)
    }

    /// An estimate of the RAM the ring needs at most, for the board's memory budget: group
    /// buffer, read buffers, queue, metadata, and the sparse index when one partition holds the
    /// whole ring plus one entry per partition per segment.
    pub fn ram_bytes_estimate(&self) -> u64 {
        // Saturating throughout: the inputs come from config files.
        let segments = self.ring_bytes / self.segment_bytes.max(1);
        let index_entries = (self.ring_bytes / self.index_interval_bytes.max(1))
            .saturating_add(segments.saturating_mul(u64::from(self.partitions_max)));
        [
            // The pipelined writer (log.rs), about a group's worth each: the buffers of the
            // group being prepared, the one sealed and waiting, and the one being programmed
            // and synced; the records of the appends waiting for those three, and for the two
            // synced groups on the ack side (one in its channel, one being answered).
            self.group_bytes_max.saturating_mul(8),
            self.read_chunk_bytes.saturating_mul(2),
            u64::from(self.append_queue_max) * 64,
            self.meta_bytes_max.saturating_mul(2),
            self.checkpoint_bytes_max(),
            index_entries.saturating_mul(32),
        ]
        .into_iter()
        .fold(0u64, u64::saturating_add)
    }

    /// Checks every rule the ring relies on. The error names the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: &'static str, reason: String| Err(ConfigError { key, reason });
        let nonzero = [
            ("erase_block_bytes", self.erase_block_bytes),
            ("program_unit_bytes", self.program_unit_bytes),
            ("ring_bytes", self.ring_bytes),
            ("segment_bytes", self.segment_bytes),
            ("group_bytes_max", self.group_bytes_max),
            ("batch_bytes_max", self.batch_bytes_max),
            ("index_interval_bytes", self.index_interval_bytes),
            ("read_chunk_bytes", self.read_chunk_bytes),
        ];
        for (key, value) in nonzero {
            if value == 0 {
                return err(key, "must be greater than 0".into());
            }
        }
        if self.partitions_max == 0 {
            return err("partitions_max", "must be greater than 0".into());
        }
        if self.producers_max == 0 {
            return err("producers_max", "must be greater than 0".into());
        }
        if self.append_queue_max == 0 {
            return err("append_queue_max", "must be greater than 0".into());
        }
        if !self
            .erase_block_bytes
            .is_multiple_of(self.program_unit_bytes)
        {
            return err(
                "erase_block_bytes",
                format!(
                    "{} is not a multiple of program_unit_bytes ({})",
                    self.erase_block_bytes, self.program_unit_bytes
                ),
            );
        }
        if self.program_unit_bytes > 64 * 1024 {
            return err(
                "program_unit_bytes",
                format!("{} is larger than 64 KiB", self.program_unit_bytes),
            );
        }
        if !self.segment_bytes.is_multiple_of(self.erase_block_bytes) {
            return err(
                "segment_bytes",
                format!(
                    "{} is not a multiple of erase_block_bytes ({})",
                    self.segment_bytes, self.erase_block_bytes
                ),
            );
        }
        if self.segment_bytes > u64::from(u32::MAX) {
            return err(
                "segment_bytes",
                format!("{} is larger than 4 GiB - 1", self.segment_bytes),
            );
        }
        if !self.ring_bytes.is_multiple_of(self.segment_bytes) {
            return err(
                "ring_bytes",
                format!(
                    "{} is not a multiple of segment_bytes ({})",
                    self.ring_bytes, self.segment_bytes
                ),
            );
        }
        if self.segment_count() < 4 {
            return err(
                "ring_bytes",
                format!(
                    "{} holds {} segment(s) of {} bytes; the ring needs at least 4",
                    self.ring_bytes,
                    self.segment_count(),
                    self.segment_bytes
                ),
            );
        }
        let first_batch = crate::storage::format::first_batch_pos(self.program_unit_bytes);
        let Some(usable) = self.segment_bytes.checked_sub(first_batch) else {
            return err(
                "segment_bytes",
                format!(
                    "{} cannot even hold the segment header ({first_batch} bytes)",
                    self.segment_bytes
                ),
            );
        };
        if !self.group_bytes_max.is_multiple_of(self.program_unit_bytes) {
            return err(
                "group_bytes_max",
                format!(
                    "{} is not a multiple of program_unit_bytes ({})",
                    self.group_bytes_max, self.program_unit_bytes
                ),
            );
        }
        if self.group_bytes_max > usable {
            return err(
                "group_bytes_max",
                format!(
                    "{} does not fit in a segment ({} usable bytes)",
                    self.group_bytes_max, usable
                ),
            );
        }
        if self.batch_bytes_max > u64::from(u32::MAX) {
            return err("batch_bytes_max", "larger than 4 GiB - 1".into());
        }
        // A fresh segment must take its checkpoint and at least one maximal batch in one group.
        let need = self
            .checkpoint_bytes_max()
            .saturating_add(self.batch_bytes_max)
            .saturating_add(self.program_unit_bytes);
        if need > self.group_bytes_max {
            return err(
                "group_bytes_max",
                format!(
                    "{} cannot hold a checkpoint ({} bytes for partitions_max {} and \
                     meta_bytes_max {}) plus one batch of batch_bytes_max ({}); raise it or \
                     lower those",
                    self.group_bytes_max,
                    self.checkpoint_bytes_max(),
                    self.partitions_max,
                    self.meta_bytes_max,
                    self.batch_bytes_max
                ),
            );
        }
        if self.read_chunk_bytes < crate::storage::format::BATCH_HEADER_BYTES as u64 {
            return err("read_chunk_bytes", "smaller than one batch header".into());
        }
        Ok(())
    }
}

/// A configuration value the ring cannot work with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The configuration key at fault (as written in the TOML files).
    pub key: &'static str,
    pub reason: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_default_is_valid() {
        RingConfig::dev_default().validate().unwrap();
    }

    #[test]
    fn refuses_segment_not_multiple_of_erase_block() {
        let mut c = RingConfig::dev_default();
        c.segment_bytes += 512;
        assert_eq!(c.validate().unwrap_err().key, "segment_bytes");
    }

    #[test]
    fn refuses_ring_of_three_segments() {
        let mut c = RingConfig::dev_default();
        c.ring_bytes = 3 * c.segment_bytes;
        let e = c.validate().unwrap_err();
        assert_eq!(e.key, "ring_bytes");
        assert!(e.reason.contains("at least 4"), "{e}");
    }

    #[test]
    fn refuses_group_too_small_for_checkpoint() {
        let mut c = RingConfig::dev_default();
        c.group_bytes_max = c.batch_bytes_max;
        assert_eq!(c.validate().unwrap_err().key, "group_bytes_max");
    }
}
