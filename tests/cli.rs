//! The `outpost` binary end to end: help, `serve` start-up and clean shutdown on SIGTERM, the
//! lock that keeps two brokers off one ring, `fsck` on a clean, a torn and a corrupted ring,
//! and a bad config file.
//!
//! Rings are small (a 1 MiB board written into each test's temp dir) so every test runs in
//! well under a second, except the one that uses the real 64 MiB x86_64-dev board.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost::config::{self, Overrides, Settings};
use outpost::storage::flash::{FileFlash, Geometry};
use outpost::storage::format::{BATCH_HEADER_BYTES, BatchHeader, BatchKind, align_up};
use outpost::storage::{AppendBody, PartitionId, Record, Ring, SegmentSeq};

const BIN: &str = env!("CARGO_BIN_EXE_outpost");
const WAIT: Duration = Duration::from_secs(20);

/// A directory under the system temp dir, unique per test and run, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("outpost-cli-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    fn ring(&self) -> PathBuf {
        self.data().join("ring.dat")
    }

    /// Writes a small board file (1 MiB ring of 16 segments of 64 KiB) and returns its path.
    fn small_board(&self) -> PathBuf {
        let path = self.0.join("cli-small.toml");
        std::fs::write(
            &path,
            r#"# A tiny board for the CLI tests.
name = "cli-small"
target_triple = "x86_64-unknown-linux-gnu"
erase_block_bytes = "4 KiB"
program_unit_bytes = "512 B"
segment_bytes = "64 KiB"
ring_bytes = "1 MiB"
memory_budget_bytes = "16 MiB"
listen_addr = "127.0.0.1:7478"
group_bytes_max = "16 KiB"
batch_bytes_max = "4 KiB"
meta_bytes_max = "1 KiB"
partitions_max = 16
"#,
        )
        .unwrap();
        path
    }

    /// The settings the CLI resolves for `--board <small board> --data <data>`.
    fn small_settings(&self) -> Settings {
        config::load(&Overrides {
            board: Some(self.small_board().display().to_string()),
            data: Some(self.data()),
            ..Overrides::default()
        })
        .unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `outpost <args>` in `dir`, with the default log level.
fn outpost(dir: &TempDir, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args).current_dir(&dir.0).env_remove("RUST_LOG");
    c
}

fn run(dir: &TempDir, args: &[&str]) -> Output {
    let _spawning = spawn_guard();
    outpost(dir, args).output().unwrap()
}

/// A test that opens a ring file in this process takes its exclusive lock (flock). A child
/// that another test spawns meanwhile holds a copy of that descriptor between its fork and its
/// exec, and the lock with it, so an `outpost fsck` or `serve` on that ring just after found it
/// "in use by another outpost process" (1 run in 60 idle, 1 in 12 under load). Spawns hold this
/// lock shared, in-process ring opens exclusively, until the ring is closed.
static RING_OPEN: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn spawn_guard() -> std::sync::RwLockReadGuard<'static, ()> {
    RING_OPEN
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn ring_open_guard() -> std::sync::RwLockWriteGuard<'static, ()> {
    RING_OPEN
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A running `outpost serve`, with its stderr lines arriving on a channel.
struct Server {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Server {
    /// Starts `outpost serve <args>` and waits until it says it is serving.
    fn start(dir: &TempDir, args: &[&str]) -> Server {
        // Port 0: tests run in parallel, and next to whatever else listens on 7478.
        let mut args = args.to_vec();
        if !args.contains(&"--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        let spawning = spawn_guard();
        let mut child = outpost(dir, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(spawning); // `spawn` returns once the child has exec'd
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = Server {
            child,
            lines,
            seen: Vec::new(),
        };
        server.wait_for("outpost serving storage in");
        server
    }

    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(needle);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!(
                        "no {needle:?} from outpost serve within {WAIT:?}; stderr so far:\n{}",
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Sends SIGTERM and returns the exit code once the process has exited.
    fn terminate(mut self) -> i32 {
        let spawning = spawn_guard();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        drop(spawning);
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Collect the rest of stderr for the messages below: until the reader thread
                // hits end of file (the channel closes), which can come after the exit.
                while let Ok(line) = self.lines.recv_timeout(WAIT) {
                    self.seen.push(line);
                }
                let stopped = self.seen.iter().any(|l| l.contains("stopped cleanly"));
                assert!(stopped, "no clean stop logged:\n{}", self.seen.join("\n"));
                return status.code().expect("exited by a signal, not by itself");
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("outpost serve did not exit within {WAIT:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn help_exits_0_for_every_command() {
    let dir = TempDir::new("help");
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["fsck", "--help"],
        &["help", "serve"],
    ] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        assert!(text(&out.stdout).contains("Usage: outpost"), "{args:?}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let dir = TempDir::new("usage");
    for args in [&[][..], &["serve", "--bogus"], &["no-such-command"]] {
        let out = run(&dir, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(text(&out.stderr).contains("Usage:"), "{args:?}");
    }
}

#[test]
fn serve_creates_the_ring_and_stops_cleanly_on_sigterm() {
    let dir = TempDir::new("serve");
    let data = dir.data();
    let server = Server::start(
        &dir,
        &[
            "serve",
            "--board",
            "x86_64-dev",
            "--data",
            data.to_str().unwrap(),
        ],
    );
    let size = std::fs::metadata(dir.ring()).unwrap().len();
    assert_eq!(size, 64 << 20, "x86_64-dev has a 64 MiB ring");
    assert_eq!(server.terminate(), 0);
}

#[test]
fn second_serve_on_the_same_data_dir_is_refused() {
    let dir = TempDir::new("lock");
    let board = dir.small_board();
    let data = dir.data();
    let args = [
        "serve",
        "--board",
        board.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let first = Server::start(&dir, &args);
    let second = run(&dir, &args);
    assert_eq!(second.status.code(), Some(1));
    let stderr = text(&second.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("outpost: "), "{stderr}");
    assert!(last.contains("in use"), "{stderr}");
    // fsck refuses a ring a broker holds, too.
    let fsck = run(&dir, &["fsck", "--board", args[2], "--data", args[4]]);
    assert_eq!(fsck.status.code(), Some(1));
    assert!(text(&fsck.stderr).contains("in use"));
    assert_eq!(first.terminate(), 0);
}

#[test]
fn fsck_of_a_cleanly_stopped_ring_exits_0_and_lists_segments() {
    let dir = TempDir::new("fsck-clean");
    let board = dir.small_board();
    let (board, data) = (board.to_str().unwrap(), dir.data());
    let data = data.to_str().unwrap();
    let server = Server::start(&dir, &["serve", "--board", board, "--data", data]);
    assert_eq!(server.terminate(), 0);
    assert_eq!(std::fs::metadata(dir.ring()).unwrap().len(), 1 << 20);

    let out = run(&dir, &["fsck", "--board", board, "--data", data]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("segments: 1 live"), "{stdout}");
    assert!(
        stdout
            .lines()
            .any(|l| l.split_whitespace().eq(["0", "0", "512", "0", "0"])),
        "no row for segment 0:\n{stdout}"
    );
    assert!(stdout.contains("damage: none"), "{stdout}");
    assert!(stdout.contains("result: clean"), "{stdout}");
}

#[test]
fn fsck_without_a_ring_file_fails() {
    let dir = TempDir::new("fsck-none");
    let board = dir.small_board();
    let data = dir.data();
    let out = run(
        &dir,
        &[
            "fsck",
            "--board",
            board.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with("outpost: no ring file at "));
    assert!(!data.exists(), "fsck must not create anything");
}

/// Writes `batches` batches of three 1000-byte records through the library, as the broker
/// will, and returns the settings used.
fn fill(dir: &TempDir, batches: usize) -> Settings {
    let _open = ring_open_guard(); // declared first: released after the ring is closed
    let settings = dir.small_settings();
    std::fs::create_dir_all(dir.data()).unwrap();
    let r = &settings.ring;
    let geometry = Geometry::new(r.erase_block_bytes, r.program_unit_bytes, r.ring_bytes).unwrap();
    let (flash, _) = FileFlash::open_or_create(&dir.ring(), geometry).unwrap();
    let (mut ring, _) = Ring::open(flash, settings.ring.clone()).unwrap();
    let records: Vec<Record> = (0..3)
        .map(|i| Record {
            timestamp_ms: i,
            key: None,
            value: vec![b'a' + i as u8; 1000],
            headers: vec![],
        })
        .collect();
    let bodies: Vec<AppendBody<'_>> = (0..batches)
        .map(|i| AppendBody::Records {
            partition: PartitionId((i % 2) as u32),
            records: &records,
        })
        .collect();
    let mut rest = &bodies[..];
    while !rest.is_empty() {
        let group = ring.write_group(rest).unwrap();
        ring.sync().unwrap();
        for result in group.results {
            result.unwrap();
        }
        rest = &rest[group.consumed..];
    }
    settings
}

/// The batches of segment 0 (slot 0) as `(position, header)`, read from the ring file.
fn batches_of_segment_0(dir: &TempDir, settings: &Settings) -> Vec<(u64, BatchHeader)> {
    let image = std::fs::read(dir.ring()).unwrap();
    let unit = settings.ring.program_unit_bytes;
    let seg = &image[..settings.ring.segment_bytes as usize];
    let mut pos = unit; // the segment header takes the first program unit
    let mut out = Vec::new();
    while pos as usize + BATCH_HEADER_BYTES <= seg.len() {
        let at = pos as usize;
        let Ok(h) = BatchHeader::decode(&seg[at..at + BATCH_HEADER_BYTES], SegmentSeq(0), 1 << 20)
        else {
            break;
        };
        out.push((pos, h));
        pos += h.total_bytes();
        if h.last_in_group() {
            pos = align_up(pos, unit);
        }
    }
    out
}

#[test]
fn fsck_reports_a_flipped_byte_in_a_sealed_segment_and_exits_1() {
    let dir = TempDir::new("fsck-damage");
    let settings = fill(&dir, 100); // ~300 KiB: segments 0..=4
    let batches = batches_of_segment_0(&dir, &settings);
    let records: Vec<_> = batches
        .iter()
        .filter(|(_, h)| h.kind == BatchKind::Records)
        .collect();
    assert!(records.len() > 6, "segment 0 holds too few batches");
    // A batch in the middle of segment 0: flip one byte in the middle of its body.
    let (pos, header) = *records[records.len() / 2];
    let byte = pos + BATCH_HEADER_BYTES as u64 + u64::from(header.body_bytes) / 2;
    let mut image = std::fs::read(dir.ring()).unwrap();
    image[byte as usize] ^= 0x20;
    std::fs::write(dir.ring(), &image).unwrap();

    let board = dir.small_board();
    let data = dir.data();
    let args = [
        "--board",
        board.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
    ];
    let out = run(&dir, &[&["fsck"][..], &args].concat());
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains(&format!("segment 0 (slot 0) at byte {pos}:")),
        "damage not named at byte {pos}:\n{stdout}{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("damage: 1 region(s)"), "{stdout}");
    assert!(stdout.contains("result: DAMAGE FOUND"), "{stdout}");
    let row0 = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap();
    assert!(row0.ends_with("damaged"), "{stdout}");
    // Later segments are still listed.
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("4 ")),
        "{stdout}"
    );

    // And the broker refuses the ring under the default corruption_policy = "refuse".
    let serve = run(
        &dir,
        &[&["serve", "--listen", "127.0.0.1:0"][..], &args].concat(),
    );
    assert_eq!(serve.status.code(), Some(1));
    let stderr = text(&serve.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("outpost: cannot open the ring in "),
        "{stderr}"
    );
    assert!(
        last.contains(&format!("segment 0 (slot 0) at byte {pos}")),
        "{stderr}"
    );
}

/// Runs `outpost fsck` on the small board's ring in `dir`.
fn fsck(dir: &TempDir) -> (Option<i32>, String) {
    let board = dir.small_board();
    let data = dir.data();
    let out = run(
        dir,
        &[
            "fsck",
            "--board",
            board.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    let stdout = text(&out.stdout);
    (out.status.code(), format!("{stdout}{}", text(&out.stderr)))
}

#[test]
fn fsck_reports_a_torn_tail_and_exits_0() {
    let dir = TempDir::new("fsck-torn");
    let settings = fill(&dir, 4); // all in segment 0, one group: checkpoint + 4 batches
    let batches = batches_of_segment_0(&dir, &settings);
    let (pos, last) = *batches.last().unwrap();
    assert!(last.last_in_group() && !batches[batches.len() - 2].1.last_in_group());
    // What a write cut short leaves: the group's last batch did not land whole.
    let mut image = std::fs::read(dir.ring()).unwrap();
    image[pos as usize..pos as usize + 100].fill(0x5A);
    std::fs::write(dir.ring(), &image).unwrap();

    let (code, out) = fsck(&dir);
    assert_eq!(code, Some(0), "{out}");
    let line = out
        .lines()
        .find(|l| l.starts_with("torn tail: "))
        .unwrap_or_default();
    assert!(
        line.starts_with(&format!("torn tail: segment 0 (slot 0) at byte {pos}, "))
            && line.ends_with("bytes not erased — dropped on next open"),
        "{out}"
    );
    assert!(out.contains("damage: none"), "{out}");
    assert!(!out.contains("stale tail"), "{out}");
}

#[test]
fn fsck_reports_bytes_after_the_last_whole_group_as_a_stale_tail_and_exits_0() {
    let dir = TempDir::new("fsck-stale");
    let settings = fill(&dir, 4);
    let batches = batches_of_segment_0(&dir, &settings);
    let end = batches_end(&batches, &settings);
    // Bytes after a whole group: a ring file overwrites in place, so this is what a wrapped
    // ring's stale bytes (or a cut group of which nothing landed whole) look like.
    let mut image = std::fs::read(dir.ring()).unwrap();
    image[end as usize..end as usize + 100].fill(0x5A);
    std::fs::write(dir.ring(), &image).unwrap();

    let (code, out) = fsck(&dir);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("torn tail: none"), "{out}");
    assert!(
        out.contains(&format!(
            "stale tail: segment 0 (slot 0) from byte {end}, 100 bytes not erased after its \
             last group — erased on next open, appends continue there"
        )),
        "{out}"
    );
    assert!(out.contains("damage: none"), "{out}");

    // The next open writes 0xFF over them (a ring file overwrites in place) before appending.
    let r = &settings.ring;
    let geometry = Geometry::new(r.erase_block_bytes, r.program_unit_bytes, r.ring_bytes).unwrap();
    let open = ring_open_guard();
    let (flash, _) = FileFlash::open_or_create(&dir.ring(), geometry).unwrap();
    let (ring, report) = Ring::open(flash, settings.ring.clone()).unwrap();
    assert_eq!(report.stale_tail.map(|t| t.pos), Some(end));
    drop(ring);
    drop(open);
    let image = std::fs::read(dir.ring()).unwrap();
    let seg = settings.ring.segment_bytes as usize;
    assert!(image[end as usize..seg].iter().all(|&b| b == 0xFF));
    let (code, out) = fsck(&dir);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("stale tail"), "{out}");
}

/// Where the (one) group of `batches` ends, padded to the program unit.
fn batches_end(batches: &[(u64, BatchHeader)], settings: &Settings) -> u64 {
    let (pos, last) = batches.last().unwrap();
    align_up(pos + last.total_bytes(), settings.ring.program_unit_bytes)
}

#[test]
fn bad_config_file_is_refused_with_the_key() {
    let dir = TempDir::new("badconfig");
    let config = dir.0.join("outpost.toml");
    std::fs::write(
        &config,
        "board = \"x86_64-dev\"\nsegmnet_bytes = \"4 MiB\"\n\n[storage]\nfull_policy = \
         \"reject\"\ncorruption_policy = \"refuse\"\n",
    )
    .unwrap();
    let data = dir.data();
    let out = run(
        &dir,
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("outpost: "), "{stderr}");
    assert!(stderr.contains("segmnet_bytes"), "{stderr}");
    assert!(stderr.contains(config.to_str().unwrap()), "{stderr}");
    assert!(!data.exists(), "nothing may be created on a bad config");
}

#[test]
fn bad_listen_address_is_refused() {
    let dir = TempDir::new("badlisten");
    let out = run(&dir, &["serve", "--listen", "localhost", "--data", "d"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("outpost: "), "{stderr}");
    assert!(stderr.contains("--listen"), "{stderr}");
    assert!(!dir.0.join("d").exists());
}
