//! `outpost fsck`: runs the recovery scan read-only on a stopped broker's ring and prints what
//! it finds. Exit 0 when there is no damage (a torn tail alone is not damage: it is what a
//! power cut leaves, and the next open drops it), 1 when damage is found.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args as ClapArgs;

use super::common::{self, StorageArgs};
use super::{CliError, EXIT_FAILURE, EXIT_OK};
use crate::config::Settings;
use crate::storage::flash::FileFlash;
use crate::storage::recovery::{Mode, recover};
use crate::storage::{CorruptionPolicy, RecoveryReport};

#[derive(Debug, ClapArgs)]
pub struct Args {
    #[command(flatten)]
    storage: StorageArgs,
}

pub fn run(args: Args) -> Result<i32, CliError> {
    let settings = common::load_settings(&args.storage.overrides(None))?;
    // Recovery logs each damaged region at warn as it goes; the report below says it all, so
    // only errors are logged unless RUST_LOG asks for more.
    common::init_logger(log::LevelFilter::Error);
    let path = common::ring_path(&settings);
    let geometry = common::geometry(&settings)?;
    let flash = FileFlash::open_read_only(&path, geometry)
        .map_err(|e| CliError::opening(path.clone(), true, e))?;
    let recovered =
        recover(&flash, &settings.ring, Mode::Fsck).map_err(|source| CliError::Storage {
            path: path.clone(),
            source,
        })?;
    let report = recovered.report;
    print!("{}", render(&path, &settings, &report));
    Ok(if report.damage.is_empty() {
        EXIT_OK
    } else {
        EXIT_FAILURE
    })
}

/// The human report for `report`, read from the ring file at `path`.
fn render(path: &Path, settings: &Settings, report: &RecoveryReport) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, path, settings, report);
    out
}

fn write_report(
    out: &mut String,
    path: &Path,
    settings: &Settings,
    report: &RecoveryReport,
) -> std::fmt::Result {
    let r = &settings.ring;
    writeln!(out, "outpost fsck {}", path.display())?;
    writeln!(
        out,
        "ring: {} bytes, {} segments of {} bytes; erase block {} bytes, program unit {} bytes \
         (board {})",
        r.ring_bytes,
        r.segment_count(),
        r.segment_bytes,
        r.erase_block_bytes,
        r.program_unit_bytes,
        settings.board.name,
    )?;

    if report.blank {
        writeln!(
            out,
            "segments: none: the ring is blank (`outpost serve` formats it on first start)"
        )?;
    } else {
        writeln!(
            out,
            "segments: {} live, oldest first (valid end: the byte where its valid batches end)",
            report.segments.len()
        )?;
        writeln!(
            out,
            "  {:>8}  {:>6}  {:>10}  {:>8}  {:>10}",
            "seq", "slot", "valid end", "batches", "records"
        )?;
        for s in &report.segments {
            let damaged = report.damage.iter().any(|d| d.seq == Some(s.seq));
            let torn = report.torn_tail.is_some_and(|t| t.seq == s.seq);
            let note = match (damaged, torn) {
                (true, _) => "  damaged",
                (false, true) => "  torn tail",
                (false, false) => "",
            };
            writeln!(
                out,
                "  {:>8}  {:>6}  {:>10}  {:>8}  {:>10}{note}",
                s.seq, s.slot, s.valid_end, s.batches, s.records
            )?;
        }
    }

    if report.partitions.is_empty() {
        writeln!(out, "partitions: none")?;
    } else {
        writeln!(
            out,
            "partitions: {} (offsets earliest..next)",
            report.partitions.len()
        )?;
        writeln!(
            out,
            "  {:>10}  {:>12}  {:>12}",
            "partition", "earliest", "next"
        )?;
        for (partition, earliest, next) in &report.partitions {
            writeln!(out, "  {partition:>10}  {earliest:>12}  {next:>12}")?;
        }
    }
    writeln!(
        out,
        "metadata: {} entries, {} bytes",
        report.meta_entries, report.meta_bytes
    )?;

    match &report.torn_tail {
        None => writeln!(out, "torn tail: none")?,
        Some(t) => {
            writeln!(
                out,
                "torn tail: segment {} (slot {}) at byte {}, {} bytes not erased — dropped on \
                 next open",
                t.seq, t.slot, t.pos, t.dirty_bytes
            )?;
            writeln!(
                out,
                "  (not damage: a torn tail is what a write interrupted by a power cut or a crash \
                 leaves, and recovery drops it)"
            )?;
        }
    }

    if let Some(t) = &report.stale_tail {
        writeln!(
            out,
            "stale tail: segment {} (slot {}) from byte {}, {} bytes not erased after its last \
             group — erased on next open, appends continue there",
            t.seq, t.slot, t.pos, t.dirty_bytes
        )?;
        writeln!(
            out,
            "  (not damage: on a medium that overwrites in place, the bytes after the last \
             group are stale bytes of an older segment of the slot, or what a power cut left \
             of an interrupted write)"
        )?;
    }

    if report.damage.is_empty() {
        writeln!(out, "damage: none")?;
    } else {
        writeln!(out, "damage: {} region(s)", report.damage.len())?;
        for at in &report.damage {
            writeln!(out, "  {at}")?;
        }
    }
    writeln!(
        out,
        "skipped: {} bytes of batches after damage",
        report.skipped_bytes
    )?;

    if report.damage.is_empty() {
        let tail = if report.torn_tail.is_some() {
            " (the torn tail is not damage)"
        } else {
            ""
        };
        writeln!(out, "result: clean{tail}; exit 0")?;
    } else {
        writeln!(out, "result: DAMAGE FOUND; exit 1")?;
        let consequence = match r.corruption_policy {
            CorruptionPolicy::Refuse => {
                "with the configured corruption_policy = \"refuse\", `outpost serve` refuses \
                 to open this ring; with \"skip-segment\" it skips the damaged bytes listed \
                 above and starts"
            }
            CorruptionPolicy::SkipSegment => {
                "with the configured corruption_policy = \"skip-segment\", `outpost serve` \
                 skips the damaged bytes listed above and starts"
            }
        };
        writeln!(out, "  ({consequence})")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_CONFIG_TEXT, Overrides, parse_config};
    use crate::storage::recovery::{SegmentReport, TornTail};
    use crate::storage::{DamageAt, Offset, PartitionId, SegmentSeq};

    fn settings() -> Settings {
        parse_config("test", DEFAULT_CONFIG_TEXT, None, &Overrides::default()).unwrap()
    }

    fn segment(seq: u64, valid_end: u64) -> SegmentReport {
        SegmentReport {
            seq: SegmentSeq(seq),
            slot: seq % 16,
            valid_end,
            batches: 3,
            records: 20,
        }
    }

    #[test]
    fn clean_report_with_torn_tail() {
        let report = RecoveryReport {
            segments: vec![segment(16, 4_194_304), segment(17, 1024)],
            partitions: vec![(PartitionId(0), Offset(5), Offset(40))],
            torn_tail: Some(TornTail {
                seq: SegmentSeq(17),
                slot: 1,
                pos: 1024,
                dirty_bytes: 300,
            }),
            meta_entries: 2,
            meta_bytes: 64,
            ..RecoveryReport::default()
        };
        let out = render(Path::new("data/ring.dat"), &settings(), &report);
        let expected = "\
outpost fsck data/ring.dat
ring: 67108864 bytes, 16 segments of 4194304 bytes; erase block 65536 bytes, program unit 512 bytes (board x86_64-dev)
segments: 2 live, oldest first (valid end: the byte where its valid batches end)
       seq    slot   valid end   batches     records
        16       0     4194304         3          20
        17       1        1024         3          20  torn tail
partitions: 1 (offsets earliest..next)
   partition      earliest          next
           0             5            40
metadata: 2 entries, 64 bytes
torn tail: segment 17 (slot 1) at byte 1024, 300 bytes not erased — dropped on next open
";
        assert!(out.starts_with(expected), "{out}");
        assert!(out.contains("damage: none\n"), "{out}");
        assert!(out.ends_with("result: clean (the torn tail is not damage); exit 0\n"));
    }

    #[test]
    fn damage_is_listed_with_its_position() {
        let report = RecoveryReport {
            segments: vec![segment(0, 2048), segment(1, 512)],
            damage: vec![DamageAt {
                seq: Some(SegmentSeq(0)),
                slot: 0,
                pos: 2048,
                reason: "batch body CRC mismatch".into(),
            }],
            skipped_bytes: 1000,
            ..RecoveryReport::default()
        };
        let out = render(Path::new("r"), &settings(), &report);
        assert!(out.contains("         0       0        2048         3          20  damaged\n"));
        assert!(out.contains(
            "damage: 1 region(s)\n  segment 0 (slot 0) at byte 2048: batch body CRC mismatch\n"
        ));
        assert!(out.contains("skipped: 1000 bytes"));
        assert!(out.contains("result: DAMAGE FOUND; exit 1\n"));
        assert!(out.contains("corruption_policy = \"refuse\""));
    }

    #[test]
    fn blank_ring() {
        let report = RecoveryReport {
            blank: true,
            ..RecoveryReport::default()
        };
        let out = render(Path::new("r"), &settings(), &report);
        assert!(out.contains("segments: none: the ring is blank"), "{out}");
        assert!(out.ends_with("result: clean; exit 0\n"), "{out}");
    }
}
