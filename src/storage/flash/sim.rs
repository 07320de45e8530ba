//! [`SimFlash`]: an in-memory flash area that models power cuts, for crash-consistency tests.
//!
//! Modelled on embassy-boot's `mem_flash.rs` (the flash rules are enforced with panics) and on
//! redb's crash-consistency test backend (each write since the last sync may independently be
//! lost, kept or torn, so they may land out of order).
//!
//! State, all behind one mutex:
//! - `live`: what reads return now, every program and erase applied in call order;
//! - `durable`: what survived the last successful `sync`;
//! - `pending`: the programs and erases since that sync, in call order;
//! - `programmed`: per program unit of `live`, whether it was programmed since its last erase.
//!
//! Invariant: `live` is `durable` with every pending op applied in full (bit flips aside, which
//! hit both images). A power cut keeps `durable` and any mix of the pending ops (see
//! [`SimFlash::crash_image`]).
//!
//! A `SimFlash` models raw flash (programming a unit twice needs an erase in between) unless
//! made [`SimFlash::overwriting`]: then it models a medium that overwrites in place (a file, an
//! SD card), where a program may hit any unit.
//!
//! Breaking a flash rule (unaligned program or erase, programming a unit twice without an
//! erase on raw flash) panics: that is a bug in the ring, and a test must fail loudly rather than see an
//! error the ring might handle. Out-of-bounds accesses return [`FlashError::OutOfBounds`].
//! Both checks come before the power check, and calls that fail them are not counted as ops.

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{ERASED_BYTE, Flash, FlashError, Geometry, check_bounds};

/// A fault to inject, armed by [`SimFlash::set_fault`]. Counts start at 0 from the moment it is
/// armed; arming a fault replaces the previous one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// No fault.
    None,
    /// The n-th mutating op (program, erase or sync) from now fails with
    /// [`FlashError::PowerCut`] and has no effect, and so does every later one. Reads keep
    /// working on the live image. Power stays off for good: recover through
    /// [`SimFlash::crash_image`].
    CutAtOp(u64),
    /// The n-th sync from now fails with [`FlashError::Io`] and makes nothing durable (the
    /// pending ops stay pending). Every other op, and every later sync, works.
    FailSyncAt(u64),
}

/// A simulated flash area (see the module docs).
pub struct SimFlash {
    geometry: Geometry,
    state: Mutex<State>,
    /// [`Flash::overwrites_in_place`]: programs may hit units programmed since their erase.
    overwrites: bool,
}

/// A program or erase not yet made durable by a sync.
enum Pending {
    Program { offset: u64, data: Vec<u8> },
    Erase { block_offset: u64 },
}

struct State {
    live: Vec<u8>,
    durable: Vec<u8>,
    pending: Vec<Pending>,
    programmed: Vec<bool>,
    /// Mutating calls made with the power on (including a sync failed by `FailSyncAt`).
    ops: u64,
    /// Syncs made with the power on.
    syncs: u64,
    /// The armed fault, its count made absolute (compared with `ops` or `syncs`).
    fault: Fault,
    cut: bool,
}

impl State {
    /// Counts a mutating op, or fails it if the power is (or is now) cut.
    fn power_on(&mut self, op: &'static str) -> Result<(), FlashError> {
        if self.fault == Fault::CutAtOp(self.ops) {
            self.cut = true;
        }
        if self.cut {
            return Err(FlashError::PowerCut { op });
        }
        self.ops += 1;
        Ok(())
    }
}

impl SimFlash {
    /// A fully erased area: every byte [`ERASED_BYTE`], no unit programmed, all of it durable.
    pub fn new(geometry: Geometry) -> SimFlash {
        SimFlash::from_image(
            geometry,
            vec![ERASED_BYTE; geometry.capacity_bytes() as usize],
        )
    }

    /// An area holding `bytes`, all durable. A unit counts as programmed unless every byte in it
    /// is [`ERASED_BYTE`]: after a crash nothing tells a torn or half-erased unit from a
    /// programmed one, so the ring must erase it before programming it again.
    ///
    /// Panics if `bytes` is not exactly `capacity_bytes` long.
    pub fn from_image(geometry: Geometry, bytes: Vec<u8>) -> SimFlash {
        assert_eq!(
            bytes.len() as u64,
            geometry.capacity_bytes(),
            "SimFlash::from_image: the image size must equal the capacity"
        );
        let programmed = bytes
            .chunks(geometry.program_unit_bytes() as usize)
            .map(|unit| unit.iter().any(|&b| b != ERASED_BYTE))
            .collect();
        let state = State {
            durable: bytes.clone(),
            live: bytes,
            pending: Vec::new(),
            programmed,
            ops: 0,
            syncs: 0,
            fault: Fault::None,
            cut: false,
        };
        SimFlash {
            geometry,
            state: Mutex::new(state),
            overwrites: false,
        }
    }

    /// The same area as a medium that overwrites in place (`true`) or as raw flash (`false`,
    /// what `new` and `from_image` make).
    pub fn overwriting(mut self, on: bool) -> SimFlash {
        self.overwrites = on;
        self
    }

    /// Arms `fault` (counting from now), replacing any armed one. It does not restore power
    /// after a cut.
    pub fn set_fault(&self, fault: Fault) {
        let mut s = self.lock();
        s.fault = match fault {
            Fault::None => Fault::None,
            Fault::CutAtOp(n) => Fault::CutAtOp(s.ops.saturating_add(n)),
            Fault::FailSyncAt(n) => Fault::FailSyncAt(s.syncs.saturating_add(n)),
        };
    }

    /// Mutating ops (program, erase, sync) made so far with the power on. Run a workload once
    /// without faults to learn its count `n`, then `CutAtOp(k)` for `k` in `0..n` cuts it at
    /// every point.
    pub fn ops_count(&self) -> u64 {
        self.lock().ops
    }

    /// Whether a [`Fault::CutAtOp`] has fired.
    pub fn is_cut(&self) -> bool {
        self.lock().cut
    }

    /// The medium as a power cut now could leave it, chosen by `seed` (the same seed on the same
    /// history gives the same bytes).
    ///
    /// Starting from the durable image, each pending op, in order and independently, is lost
    /// (~35%), lands in full (~35%) or is torn (~30%). A torn program is, with equal odds:
    /// - a prefix: `k` whole units land, then a byte prefix of unit `k` whose rest keeps its
    ///   old bytes or (half the time) becomes garbage; later units keep their old bytes;
    /// - scattered: each unit independently lands, keeps its old bytes or becomes garbage (a
    ///   file's pages are written back in any order, so a later part of a write can land
    ///   without an earlier one);
    /// - a suffix: the first `k` units (at least one, not all) keep their old bytes or become
    ///   garbage, the rest lands whole (later pages written back, the first ones not: whole
    ///   later batches of a group behind a lost first one).
    ///
    /// A torn erase leaves each program unit of the block erased, unchanged or garbage,
    /// independently.
    ///
    /// The result has no pending ops and no fault, its programmed units are recomputed as in
    /// [`SimFlash::from_image`], and it overwrites in place if this area does.
    pub fn crash_image(&self, seed: u64) -> SimFlash {
        let s = self.lock();
        let unit = self.geometry.program_unit_bytes() as usize;
        let mut rng = SplitMix64(seed);
        let mut image = s.durable.clone();
        for op in &s.pending {
            let fate = rng.below(100);
            if fate < 35 {
                continue;
            }
            let torn = fate >= 70;
            match op {
                Pending::Program { offset, data } => {
                    let target = &mut image[span(*offset, data.len())];
                    if !torn {
                        target.copy_from_slice(data);
                        continue;
                    }
                    let units = data.len() / unit;
                    let shape = rng.below(3);
                    if shape == 2 && units > 1 {
                        let k = (1 + rng.below(units as u64 - 1)) as usize * unit;
                        target[k..].copy_from_slice(&data[k..]);
                        if rng.below(2) == 1 {
                            rng.fill(&mut target[..k]);
                        }
                        continue;
                    }
                    if shape == 1 {
                        for (t, d) in target.chunks_mut(unit).zip(data.chunks(unit)) {
                            match rng.below(3) {
                                0 => t.copy_from_slice(d),
                                1 => {}
                                _ => rng.fill(t),
                            }
                        }
                        continue;
                    }
                    let whole = rng.below((data.len() / unit) as u64) as usize * unit;
                    let landed = whole + rng.below(unit as u64) as usize;
                    target[..landed].copy_from_slice(&data[..landed]);
                    if rng.below(2) == 1 {
                        rng.fill(&mut target[landed..whole + unit]);
                    }
                }
                Pending::Erase { block_offset } => {
                    let block = self.geometry.erase_block_bytes() as usize;
                    let target = &mut image[span(*block_offset, block)];
                    if torn {
                        // Each program unit independently: erased, old bytes kept, or garbage.
                        // (A file's erase is many writes the OS may flush in any order; a
                        // NOR erase cut short leaves any pattern.)
                        for u in target.chunks_mut(unit) {
                            match rng.below(3) {
                                0 => u.fill(ERASED_BYTE),
                                1 => {}
                                _ => rng.fill(u),
                            }
                        }
                    } else {
                        target.fill(ERASED_BYTE);
                    }
                }
            }
        }
        SimFlash::from_image(self.geometry, image).overwriting(self.overwrites)
    }

    /// Flips bit `bit` (0..8) of the byte at `byte_offset` in both the live and the durable
    /// image: bit rot, which survives syncs and crashes. It is not an op and works after a cut.
    pub fn flip_bit(&self, byte_offset: u64, bit: u8) {
        assert!(bit < 8, "SimFlash::flip_bit: bit {bit} is not in 0..8");
        assert!(
            byte_offset < self.geometry.capacity_bytes(),
            "SimFlash::flip_bit: byte {byte_offset} is past the end"
        );
        let mut s = self.lock();
        let i = byte_offset as usize;
        s.live[i] ^= 1 << bit;
        s.durable[i] ^= 1 << bit;
    }

    /// A copy of the live image (what reads return now).
    pub fn image(&self) -> Vec<u8> {
        self.lock().live.clone()
    }

    /// A copy of the durable image (what the last successful sync left).
    pub fn durable_image(&self) -> Vec<u8> {
        self.lock().durable.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A rule violation panics with the lock held, but only before changing anything, so the
        // state behind a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn units(&self, offset: u64, len: usize) -> Range<usize> {
        let unit = self.geometry.program_unit_bytes();
        let first = (offset / unit) as usize;
        first..first + len / unit as usize
    }
}

/// The byte range `offset..offset + len` of an image; bounds were checked against its length.
fn span(offset: u64, len: usize) -> Range<usize> {
    offset as usize..offset as usize + len
}

impl Flash for SimFlash {
    fn geometry(&self) -> Geometry {
        self.geometry
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), FlashError> {
        check_bounds(offset, buf.len() as u64, self.geometry.capacity_bytes())?;
        buf.copy_from_slice(&self.lock().live[span(offset, buf.len())]);
        Ok(())
    }

    fn program(&self, offset: u64, data: &[u8]) -> Result<(), FlashError> {
        let unit = self.geometry.program_unit_bytes();
        check_bounds(offset, data.len() as u64, self.geometry.capacity_bytes())?;
        assert!(
            offset.is_multiple_of(unit) && (data.len() as u64).is_multiple_of(unit),
            "SimFlash: program of {} bytes at {offset} is not aligned to the {unit}-byte \
             program unit",
            data.len()
        );
        let units = self.units(offset, data.len());
        let mut s = self.lock();
        if !self.overwrites
            && let Some(u) = units.clone().find(|&u| s.programmed[u])
        {
            panic!(
                "SimFlash: program at {offset} hits the unit at {} which is already programmed \
                 (not erased since it was last programmed)",
                u as u64 * unit
            );
        }
        s.power_on("program")?;
        if data.is_empty() {
            return Ok(());
        }
        s.programmed[units].fill(true);
        s.live[span(offset, data.len())].copy_from_slice(data);
        s.pending.push(Pending::Program {
            offset,
            data: data.to_vec(),
        });
        Ok(())
    }

    fn erase(&self, block_offset: u64) -> Result<(), FlashError> {
        let block = self.geometry.erase_block_bytes();
        check_bounds(block_offset, block, self.geometry.capacity_bytes())?;
        assert!(
            block_offset.is_multiple_of(block),
            "SimFlash: erase at {block_offset} is not aligned to the {block}-byte erase block"
        );
        let mut s = self.lock();
        s.power_on("erase")?;
        s.live[span(block_offset, block as usize)].fill(ERASED_BYTE);
        s.programmed[self.units(block_offset, block as usize)].fill(false);
        s.pending.push(Pending::Erase { block_offset });
        Ok(())
    }

    fn overwrites_in_place(&self) -> bool {
        self.overwrites
    }

    fn sync(&self) -> Result<(), FlashError> {
        let mut s = self.lock();
        s.power_on("sync")?;
        let n = s.syncs;
        s.syncs += 1;
        if s.fault == Fault::FailSyncAt(n) {
            return Err(FlashError::Io {
                op: "sync",
                offset: 0,
                source: io::Error::other("simulated sync failure"),
            });
        }
        let State {
            live,
            durable,
            pending,
            ..
        } = &mut *s;
        durable.copy_from_slice(live);
        pending.clear();
        Ok(())
    }
}

impl fmt::Debug for SimFlash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.lock();
        f.debug_struct("SimFlash")
            .field("geometry", &self.geometry)
            .field("pending_ops", &s.pending.len())
            .field("ops", &s.ops)
            .field("fault", &s.fault)
            .field("cut", &s.cut)
            .finish_non_exhaustive()
    }
}

/// splitmix64: tiny, deterministic on every platform, and good enough to pick fates.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform-enough in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    fn fill(&mut self, bytes: &mut [u8]) {
        for chunk in bytes.chunks_mut(8) {
            chunk.copy_from_slice(&self.next_u64().to_le_bytes()[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const BLOCK: u64 = 256;
    const UNIT: u64 = 16;

    fn geometry() -> Geometry {
        Geometry::new(BLOCK, UNIT, 4 * BLOCK).unwrap()
    }

    fn read(flash: &SimFlash, offset: u64, len: usize) -> Vec<u8> {
        let mut buf = vec![0; len];
        flash.read(offset, &mut buf).unwrap();
        buf
    }

    #[test]
    fn program_read_round_trip() {
        let flash = SimFlash::new(geometry());
        assert_eq!(read(&flash, 0, 1024), vec![ERASED_BYTE; 1024]);
        let data: Vec<u8> = (0..64).collect();
        flash.program(32, &data).unwrap();
        assert_eq!(read(&flash, 33, 63), data[1..]);
        assert_eq!(read(&flash, 96, 16), vec![ERASED_BYTE; 16]);
    }

    #[test]
    fn out_of_bounds_is_an_error() {
        let flash = SimFlash::new(geometry());
        let oob = |r: Result<(), FlashError>| matches!(r, Err(FlashError::OutOfBounds { .. }));
        assert!(oob(flash.read(1023, &mut [0; 2])));
        assert!(oob(flash.program(1024, &[0; 16])));
        assert!(oob(flash.program(u64::MAX - 7, &[0; 16])));
        assert!(oob(flash.erase(1024)));
        assert_eq!(flash.ops_count(), 0);
    }

    #[test]
    #[should_panic(expected = "already programmed")]
    fn program_onto_programmed_unit_panics() {
        let flash = SimFlash::new(geometry());
        flash.program(0, &[1; 32]).unwrap();
        let _ = flash.program(16, &[ERASED_BYTE; 16]);
    }

    #[test]
    #[should_panic(expected = "not aligned to the 16-byte program unit")]
    fn unaligned_program_offset_panics() {
        let _ = SimFlash::new(geometry()).program(8, &[0; 16]);
    }

    #[test]
    #[should_panic(expected = "not aligned to the 16-byte program unit")]
    fn unaligned_program_length_panics() {
        let _ = SimFlash::new(geometry()).program(16, &[0; 20]);
    }

    #[test]
    #[should_panic(expected = "not aligned to the 256-byte erase block")]
    fn unaligned_erase_panics() {
        let _ = SimFlash::new(geometry()).erase(16);
    }

    #[test]
    fn erase_allows_reprogramming() {
        let flash = SimFlash::new(geometry());
        flash.program(BLOCK, &[1; 32]).unwrap();
        flash.program(0, &[3; 16]).unwrap();
        flash.erase(BLOCK).unwrap();
        assert_eq!(read(&flash, BLOCK, 32), vec![ERASED_BYTE; 32]);
        flash.program(BLOCK, &[2; 32]).unwrap();
        assert_eq!(read(&flash, BLOCK, 32), vec![2; 32]);
        assert_eq!(read(&flash, 0, 16), vec![3; 16]); // other blocks untouched
    }

    #[test]
    fn sync_makes_durable() {
        let flash = SimFlash::new(geometry());
        flash.program(0, &[5; 16]).unwrap();
        assert_eq!(flash.durable_image(), vec![ERASED_BYTE; 1024]);
        flash.sync().unwrap();
        assert_eq!(flash.durable_image(), flash.image());
        assert_eq!(flash.durable_image()[..16], [5; 16]);
        // Nothing pending: every crash image is the durable one.
        for seed in 0..20 {
            assert_eq!(flash.crash_image(seed).image(), flash.image());
        }
    }

    #[test]
    fn cut_at_op_fails_that_op_and_all_later_ones() {
        let flash = SimFlash::new(geometry());
        flash.program(0, &[1; 16]).unwrap();
        flash.set_fault(Fault::CutAtOp(2));
        flash.program(16, &[2; 16]).unwrap(); // op 0 from now
        flash.erase(BLOCK).unwrap(); // op 1
        let before = flash.image();
        assert!(!flash.is_cut());
        let cut = |r: Result<(), FlashError>| matches!(r, Err(FlashError::PowerCut { .. }));
        assert!(cut(flash.program(32, &[3; 16])));
        assert!(flash.is_cut());
        assert!(cut(flash.sync()));
        assert!(cut(flash.erase(0)));
        assert!(cut(flash.program(48, &[4; 16])));
        assert_eq!(flash.image(), before);
        assert_eq!(read(&flash, 16, 16), vec![2; 16]); // reads still work on live
        assert_eq!(flash.ops_count(), 3);
        assert_eq!(flash.durable_image(), vec![ERASED_BYTE; 1024]);
        flash.set_fault(Fault::None); // does not restore power
        assert!(cut(flash.sync()));
        let after = flash.crash_image(1);
        assert!(!after.is_cut());
        after.sync().unwrap();
    }

    #[test]
    fn fail_sync_at_fails_that_sync_only() {
        let flash = SimFlash::new(geometry());
        flash.set_fault(Fault::FailSyncAt(1));
        flash.program(0, &[1; 16]).unwrap();
        flash.sync().unwrap();
        flash.program(16, &[2; 16]).unwrap();
        match flash.sync() {
            Err(FlashError::Io {
                op: "sync", source, ..
            }) => {
                assert_eq!(source.kind(), io::ErrorKind::Other);
            }
            other => panic!("expected a sync Io error, got {other:?}"),
        }
        assert_eq!(flash.durable_image()[16..32], [ERASED_BYTE; 16]);
        flash.program(32, &[3; 16]).unwrap();
        flash.sync().unwrap();
        assert_eq!(flash.durable_image(), flash.image());
        assert!(!flash.is_cut());
        assert_eq!(flash.ops_count(), 6);
    }

    /// One synced unit, then three pending programs of several units each.
    fn history() -> SimFlash {
        let flash = SimFlash::new(geometry());
        flash.program(0, &[0x11; 16]).unwrap();
        flash.sync().unwrap();
        for (i, fill) in [0xA1, 0xA2, 0xA3].into_iter().enumerate() {
            flash.program((i as u64 + 1) * BLOCK, &[fill; 64]).unwrap();
        }
        flash
    }

    #[test]
    fn crash_image_is_deterministic_and_varied() {
        let (a, b) = (history(), history());
        for seed in [0, 7, u64::MAX] {
            assert_eq!(a.crash_image(seed).image(), a.crash_image(seed).image());
            assert_eq!(a.crash_image(seed).image(), b.crash_image(seed).image());
        }
        let live = a.image();
        let (mut torn_unit, mut lost_op, mut all_landed) = (false, false, false);
        let mut distinct = HashSet::new();
        for seed in 0..200 {
            let image = a.crash_image(seed).image();
            for (i, fill) in [0xA1, 0xA2, 0xA3].into_iter().enumerate() {
                let region = &image[span((i as u64 + 1) * BLOCK, 64)];
                lost_op |= region.iter().all(|&b| b == ERASED_BYTE);
                torn_unit |= region.chunks(UNIT as usize).any(|unit| {
                    !unit.iter().all(|&b| b == ERASED_BYTE) && !unit.iter().all(|&b| b == fill)
                });
            }
            all_landed |= image == live;
            distinct.insert(image);
        }
        assert!(torn_unit && lost_op && all_landed);
        assert!(
            distinct.len() > 20,
            "only {} distinct images",
            distinct.len()
        );
    }

    #[test]
    fn crash_image_keeps_synced_bytes_outside_pending_ops() {
        let flash = SimFlash::new(geometry());
        flash.program(0, &[0x11; 64]).unwrap();
        flash.program(BLOCK, &[0x22; 64]).unwrap();
        flash.sync().unwrap();
        flash.erase(BLOCK).unwrap();
        flash.program(2 * BLOCK + 32, &[0x33; 32]).unwrap();
        flash.program(3 * BLOCK, &[0x44; 48]).unwrap();
        let durable = flash.durable_image();
        let touched = [
            span(BLOCK, 256),
            span(2 * BLOCK + 32, 32),
            span(3 * BLOCK, 48),
        ];
        for seed in 0..100 {
            let image = flash.crash_image(seed).image();
            for (i, (&got, &want)) in image.iter().zip(&durable).enumerate() {
                if !touched.iter().any(|r| r.contains(&i)) {
                    assert_eq!(got, want, "seed {seed}: byte {i} changed");
                }
            }
        }
    }

    #[test]
    fn crash_image_marks_non_erased_units_programmed() {
        let mut bytes = vec![ERASED_BYTE; 1024];
        bytes[20] = 0xFE; // unit 1 is not fully erased
        let flash = SimFlash::from_image(geometry(), bytes);
        assert_eq!(flash.durable_image(), flash.image());
        flash.program(0, &[0; 16]).unwrap();
        flash.program(32, &[0; 16]).unwrap();
        let unit1 = std::panic::catch_unwind(|| flash.program(16, &[0; 16]));
        assert!(unit1.is_err());
        // The state stays usable after a caught violation.
        flash.erase(0).unwrap();
        flash.program(16, &[0; 16]).unwrap();
    }

    #[test]
    fn an_overwriting_area_programs_over_programmed_units_and_keeps_its_mode() {
        let flash = SimFlash::new(geometry()).overwriting(true);
        assert!(flash.overwrites_in_place());
        assert!(!SimFlash::new(geometry()).overwrites_in_place());
        flash.program(0, &[1; 32]).unwrap();
        flash.sync().unwrap();
        flash.program(16, &[2; 32]).unwrap(); // over unit 1, no erase
        assert_eq!(read(&flash, 0, 48), [[1; 16], [2; 16], [2; 16]].concat());
        // A cut leaves unit 1 old (1), new (2) or garbage, never anything else: the old bytes
        // are what a torn overwrite keeps.
        let mut old_kept = false;
        for seed in 0..100 {
            let crashed = flash.crash_image(seed);
            assert!(crashed.overwrites_in_place(), "seed {seed}");
            old_kept |= read(&crashed, 16, 16) == [1; 16];
            crashed.program(0, &[3; 16]).unwrap();
        }
        assert!(old_kept);
    }

    #[test]
    fn a_torn_program_can_land_a_later_unit_without_an_earlier_one() {
        // One pending program of four units: some crash images hold unit 3 new while unit 0
        // is not (a file's pages written back out of order).
        let flash = SimFlash::new(geometry());
        flash.program(0, &[0xA1; 64]).unwrap();
        let scattered = (0..300).any(|seed| {
            let image = flash.crash_image(seed).image();
            image[48..64] == [0xA1; 16] && image[0..16] != [0xA1; 16]
        });
        assert!(scattered);
    }

    #[test]
    fn flip_bit_hits_both_images() {
        let flash = SimFlash::new(geometry());
        flash.flip_bit(3, 0);
        assert_eq!(flash.image()[3], 0xFE);
        assert_eq!(flash.durable_image()[3], 0xFE);
        assert_eq!(flash.crash_image(9).image()[3], 0xFE);
    }
}
