//! The narrow flash-like interface the ring is written against, and its backends.
//!
//! The model is raw NOR/NAND flash, because it is the strictest medium we support: bytes are
//! *programmed* in whole program units onto *erased* bytes, and only a whole erase block can be
//! erased again. A backend that is more forgiving (a file, an SD card behind its FTL) still gets
//! the same calls, so the ring behaves the same everywhere. Nothing becomes durable before
//! `sync` returns `Ok`.

mod file;
#[cfg(any(test, feature = "sim"))]
mod sim;

pub use file::FileFlash;
#[cfg(any(test, feature = "sim"))]
pub use sim::{Fault, SimFlash};

use core::fmt;
use std::io;

/// The value an erased byte reads as on every backend (NOR and NAND flash erase to all ones).
pub const ERASED_BYTE: u8 = 0xFF;

/// The shape of a flash area. Invariants (checked by [`Geometry::new`]): all three sizes are
/// non-zero, the erase block is a multiple of the program unit, and the capacity is a multiple
/// of the erase block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    erase_block_bytes: u64,
    program_unit_bytes: u64,
    capacity_bytes: u64,
}

impl Geometry {
    pub fn new(
        erase_block_bytes: u64,
        program_unit_bytes: u64,
        capacity_bytes: u64,
    ) -> Result<Geometry, FlashError> {
        let bad = |reason: &'static str| {
            Err(FlashError::BadGeometry {
                erase_block_bytes,
                program_unit_bytes,
                capacity_bytes,
                reason,
            })
        };
        if erase_block_bytes == 0 || program_unit_bytes == 0 || capacity_bytes == 0 {
            return bad("sizes must be non-zero");
        }
        if !erase_block_bytes.is_multiple_of(program_unit_bytes) {
            return bad("the erase block must be a multiple of the program unit");
        }
        if !capacity_bytes.is_multiple_of(erase_block_bytes) {
            return bad("the capacity must be a multiple of the erase block");
        }
        Ok(Geometry {
            erase_block_bytes,
            program_unit_bytes,
            capacity_bytes,
        })
    }

    pub fn erase_block_bytes(&self) -> u64 {
        self.erase_block_bytes
    }

    pub fn program_unit_bytes(&self) -> u64 {
        self.program_unit_bytes
    }

    pub fn capacity_bytes(&self) -> u64 {
        self.capacity_bytes
    }
}

/// A flash-like storage area.
///
/// All methods take `&self` so readers can run while the single writer programs; backends do
/// their own locking. Offsets are absolute byte positions in `0..capacity_bytes`.
pub trait Flash: Send + Sync {
    fn geometry(&self) -> Geometry;

    /// Reads `buf.len()` bytes at `offset`. Any alignment is allowed. What an erased or
    /// never-synced area reads as is unspecified beyond "some bytes": callers validate by CRC.
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError>;

    /// Programs `data` at `offset`. `offset` and `data.len()` must be multiples of the program
    /// unit, and the target bytes must have been erased since they were last programmed.
    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError>;

    /// Erases the one erase block that starts at `block_offset` (which must be block-aligned),
    /// so it reads as [`ERASED_BYTE`] and may be programmed again.
    fn erase(&self, block_offset: u64) -> Result<(), FlashError>;

    /// Makes every earlier `program` and `erase` durable. Until it returns `Ok`, a power cut may
    /// keep any subset of them, and tear any of them.
    fn sync(&self) -> Result<(), FlashError>;

    /// Whether the whole area is known to read erased because this handle made it so when it
    /// was opened (a ring file just created, filled with [`ERASED_BYTE`] and synced): the ring
    /// then uses its free slots without first reading them. Answers `true` at most once (to the
    /// first ring opened on the handle: a second one could find slots the first one wrote);
    /// `false` (the default) when in doubt.
    fn take_created_erased(&self) -> bool {
        false
    }

    /// Whether the medium overwrites in place: any aligned range can be programmed again
    /// without an erase (a file, or a block device such as an SD card or eMMC, whose FTL does
    /// the erasing). The ring then never erases a slot it reuses (on such a medium an erase is
    /// one more write of the whole segment: it would double the bytes written in steady state)
    /// and programs over the stale bytes of an earlier lap instead (docs/FORMAT.md 4.3).
    /// `false` for raw NOR/NAND: bytes must be erased before they are programmed again.
    /// (No default: a wrapper that forgot to pass it on would silently turn a file into raw
    /// flash and double its writes, or raw flash into a file and program unerased bytes.)
    fn overwrites_in_place(&self) -> bool;
}

/// What can go wrong talking to a flash area. Every variant names the operation and position.
#[derive(Debug)]
#[non_exhaustive]
pub enum FlashError {
    /// The geometry itself is inconsistent.
    BadGeometry {
        erase_block_bytes: u64,
        program_unit_bytes: u64,
        capacity_bytes: u64,
        reason: &'static str,
    },
    /// An access past the end of the area.
    OutOfBounds {
        offset: u64,
        len: u64,
        capacity_bytes: u64,
    },
    /// A program or erase that is not aligned as the geometry requires.
    Unaligned {
        op: &'static str,
        offset: u64,
        len: u64,
        unit_bytes: u64,
    },
    /// Programming onto bytes that were not erased since they were last programmed.
    NotErased { offset: u64 },
    /// The (simulated) power was cut: this and every later operation fail.
    PowerCut { op: &'static str },
    /// An I/O error from the operating system, with the operation and position it hit.
    Io {
        op: &'static str,
        offset: u64,
        source: io::Error,
    },
    /// A backing file exists but has the wrong size for the configured ring.
    SizeMismatch {
        path: String,
        expected_bytes: u64,
        found_bytes: u64,
    },
    /// A block device is smaller than the configured ring.
    DeviceTooSmall {
        path: String,
        needed_bytes: u64,
        found_bytes: u64,
    },
    /// Another process holds the lock on the backing file.
    Locked { path: String },
    /// A program or erase on a flash area opened read-only.
    ReadOnly,
}

impl fmt::Display for FlashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlashError::BadGeometry {
                erase_block_bytes,
                program_unit_bytes,
                capacity_bytes,
                reason,
            } => write!(
                f,
                "bad flash geometry (erase block {erase_block_bytes} B, program unit \
                 {program_unit_bytes} B, capacity {capacity_bytes} B): {reason}"
            ),
            FlashError::OutOfBounds {
                offset,
                len,
                capacity_bytes,
            } => write!(
                f,
                "access of {len} bytes at {offset} is past the end of the flash area \
                 ({capacity_bytes} bytes)"
            ),
            FlashError::Unaligned {
                op,
                offset,
                len,
                unit_bytes,
            } => write!(
                f,
                "{op} of {len} bytes at {offset} is not aligned to {unit_bytes} bytes"
            ),
            FlashError::NotErased { offset } => {
                write!(f, "program onto non-erased bytes at {offset}")
            }
            FlashError::PowerCut { op } => write!(f, "{op} failed: power cut (simulated)"),
            FlashError::Io { op, offset, .. } => write!(f, "{op} at byte {offset} failed"),
            FlashError::SizeMismatch {
                path,
                expected_bytes,
                found_bytes,
            } => write!(
                f,
                "{path} is {found_bytes} bytes but the configured ring needs exactly \
                 {expected_bytes} bytes (a ring's size never changes: move the old data \
                 directory away or configure the old size)"
            ),
            FlashError::DeviceTooSmall {
                path,
                needed_bytes,
                found_bytes,
            } => write!(
                f,
                "{path} is a block device of {found_bytes} bytes but the configured ring needs \
                 {needed_bytes} bytes"
            ),
            FlashError::Locked { path } => {
                write!(f, "{path} is in use by another outpost process")
            }
            FlashError::ReadOnly => {
                write!(
                    f,
                    "program or erase refused: the flash area is open read-only"
                )
            }
        }
    }
}

impl std::error::Error for FlashError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            FlashError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Checks that `[offset, offset + len)` lies inside an area of `capacity_bytes`.
pub(crate) fn check_bounds(offset: u64, len: u64, capacity_bytes: u64) -> Result<(), FlashError> {
    match offset.checked_add(len) {
        Some(end) if end <= capacity_bytes => Ok(()),
        _ => Err(FlashError::OutOfBounds {
            offset,
            len,
            capacity_bytes,
        }),
    }
}

/// Checks that `offset` and `len` are multiples of `unit_bytes`.
pub(crate) fn check_aligned(
    op: &'static str,
    offset: u64,
    len: u64,
    unit_bytes: u64,
) -> Result<(), FlashError> {
    if !offset.is_multiple_of(unit_bytes) || !len.is_multiple_of(unit_bytes) {
        return Err(FlashError::Unaligned {
            op,
            offset,
            len,
            unit_bytes,
        });
    }
    Ok(())
}

/// Whether every byte of `[at, at + len)` reads as [`ERASED_BYTE`], read `chunk_bytes` at a
/// time; stops at the first chunk holding anything else (so a slot with data costs one read).
pub fn reads_erased<F: Flash + ?Sized>(
    flash: &F,
    at: u64,
    len: u64,
    chunk_bytes: u64,
) -> Result<bool, FlashError> {
    let chunk = chunk_bytes.clamp(1, len.max(1));
    let mut buf = vec![0u8; chunk as usize];
    let mut off = 0;
    while off < len {
        let n = chunk.min(len - off) as usize;
        flash.read(at + off, &mut buf[..n])?;
        if buf[..n].iter().any(|&x| x != ERASED_BYTE) {
            return Ok(false);
        }
        off += n as u64;
    }
    Ok(true)
}

/// A shared handle is a flash too: tests keep one to take a crash image after the ring that
/// owned the other failed or was dropped.
impl<T: Flash + ?Sized> Flash for std::sync::Arc<T> {
    fn geometry(&self) -> Geometry {
        (**self).geometry()
    }
    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        (**self).read(offset, buf)
    }
    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        (**self).program(offset, data)
    }
    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        (**self).erase(block_offset)
    }
    fn sync(&self) -> Result<(), FlashError> {
        (**self).sync()
    }
    fn take_created_erased(&self) -> bool {
        (**self).take_created_erased()
    }
    fn overwrites_in_place(&self) -> bool {
        (**self).overwrites_in_place()
    }
}
