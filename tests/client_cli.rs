//! The client commands of the real `outpost` binary against a real `outpost serve` on
//! 127.0.0.1 port 0 (a small board in each test's temp dir): topics, produce from stdin and
//! `--value`, consume as text and JSON with `--count` and `--idle-exit-ms`, a long poll woken
//! by a produce, status, errors (unknown topic, no broker), and `bench` against that broker
//! and against one it starts itself. Then the delivery semantics: `consume --group`
//! (at-least-once and at-most-once commits, `--join`), exactly-once refused for `consume`,
//! `pipe` copying exactly once (run again: nothing more) and stopping on SIGTERM, and
//! `produce --producer-name` (idempotent batches, resent across a broker restart).

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_outpost");
const WAIT: Duration = Duration::from_secs(30);

/// A directory under the system temp dir, unique per test and run, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!(
            "outpost-client-cli-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// A small board: 4 MiB ring of 16 segments of 256 KiB, 64 KiB batches.
    fn board(&self) -> PathBuf {
        let path = self.0.join("client-small.toml");
        std::fs::write(
            &path,
            r#"# A small board for the client CLI tests.
name = "client-small"
target_triple = "x86_64-unknown-linux-gnu"
erase_block_bytes = "4 KiB"
program_unit_bytes = "512 B"
segment_bytes = "256 KiB"
ring_bytes = "4 MiB"
memory_budget_bytes = "16 MiB"
listen_addr = "127.0.0.1:7478"
group_bytes_max = "128 KiB"
batch_bytes_max = "64 KiB"
meta_bytes_max = "4 KiB"
partitions_max = 64
"#,
        )
        .unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `outpost serve --listen 127.0.0.1:0`, stopped (SIGTERM) on drop.
struct Broker {
    child: Child,
    addr: String,
    dir: TempDir,
}

impl Broker {
    fn start(name: &str) -> Broker {
        let dir = TempDir::new(name);
        let board = dir.board();
        let (child, addr) = Broker::serve(&dir, &board, "127.0.0.1:0");
        Broker { child, addr, dir }
    }

    /// Stops the broker (SIGTERM) and starts it again on the same address and data.
    fn restart(&mut self) {
        self.stop();
        let board = self.dir.0.join("client-small.toml");
        // The port was free a moment ago, but nothing reserves it: another process may bind it
        // meanwhile (rare), so retry for a while, as `semantics_crash` does.
        for attempt in 0..20 {
            if let Some((child, addr)) = Broker::try_serve(&self.dir, &board, &self.addr) {
                assert_eq!(addr, self.addr);
                self.child = child;
                return;
            }
            eprintln!(
                "restart on {} failed (attempt {attempt}); retrying",
                self.addr
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        panic!("outpost serve could not listen on {} again", self.addr);
    }

    /// `outpost serve` on `listen`; returns it and the address it printed.
    fn serve(dir: &TempDir, board: &std::path::Path, listen: &str) -> (Child, String) {
        Broker::try_serve(dir, board, listen)
            .unwrap_or_else(|| panic!("outpost serve did not print `listening on` within {WAIT:?}"))
    }

    /// `serve`, or `None` if it exited or did not print its address within `WAIT`.
    fn try_serve(dir: &TempDir, board: &std::path::Path, listen: &str) -> Option<(Child, String)> {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", listen, "--board"])
            .arg(board)
            .arg("--data")
            .arg(dir.0.join("data"))
            .env_remove("RUST_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("listening on ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        match rx.recv_timeout(WAIT) {
            Ok(addr) => Some((child, addr)),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                None
            }
        }
    }

    /// `outpost <args> --addr <this broker>`.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.args(args)
            .args(["--addr", &self.addr])
            .env_remove("RUST_LOG")
            .env_remove("OUTPOST_ADDR");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and expects exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "outpost {args:?} failed:\nstdout: {}\nstderr: {}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Runs with `input` on stdin and expects exit 0; returns stdout.
    fn ok_with_stdin(&self, args: &[&str], input: &[u8]) -> String {
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "outpost {args:?} failed: {}",
            text(&out.stderr)
        );
        text(&out.stdout)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Broker {
    /// SIGTERM, then SIGKILL if it has not exited within [`WAIT`].
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + WAIT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Asserts a failed command: exit 1, last stderr line `outpost: ...` containing `needle`.
fn assert_fails_with(out: &Output, needle: &str) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("outpost: "), "{stderr}");
    assert!(last.contains(needle), "no {needle:?} in: {stderr}");
}

#[test]
fn topics_create_list_describe() {
    let b = Broker::start("topics");
    assert_eq!(
        b.ok(&["topics", "create", "readings", "--partitions", "3"]),
        "created topic readings with 3 partitions\n"
    );
    assert_eq!(
        b.ok(&["topics", "create", "events"]),
        "created topic events with 1 partition\n"
    );
    let list = b.ok(&["topics", "list"]);
    assert_eq!(
        list,
        "topic     partitions\nevents             1\nreadings           3\n"
    );
    let describe = b.ok(&["topics", "describe", "readings"]);
    assert_eq!(
        describe,
        "topic readings: 3 partitions, 0 records stored\n \
         partition      earliest          next\n         \
         0             0             0\n         \
         1             0             0\n         \
         2             0             0\n"
    );
    assert_fails_with(&b.run(&["topics", "create", "readings"]), "TOPIC_EXISTS");
    assert_fails_with(
        &b.run(&["topics", "create", "bad name!"]),
        "INVALID_TOPIC_NAME",
    );
    assert_fails_with(&b.run(&["topics", "describe", "nope"]), "UNKNOWN_TOPIC");
}

/// The offsets that `produce` output lines name (`partition P offset O`,
/// `partition P offsets A..B`).
fn covered(out: &str) -> Vec<u64> {
    let mut offsets = Vec::new();
    for line in out.lines() {
        let words: Vec<&str> = line.split(' ').collect();
        match words[..] {
            ["partition", _, "offset", o] => offsets.push(o.parse().unwrap()),
            ["partition", _, "offsets", range] => {
                let (a, b) = range.split_once("..").unwrap();
                offsets.extend(a.parse::<u64>().unwrap()..b.parse().unwrap());
            }
            _ => panic!("unexpected produce output line {line:?}"),
        }
    }
    offsets
}

#[test]
fn produce_stdin_then_consume_text_and_json() {
    let b = Broker::start("roundtrip");
    b.ok(&["topics", "create", "lines"]);
    let input = "first\nsecond \"quoted\"\n\ttabbed\\back\n\r\nlast-no-newline";
    let out = b.ok_with_stdin(
        &[
            "produce", "--topic", "lines", "--key", "k1", "--header", "src=test",
        ],
        input.as_bytes(),
    );
    // One line per batch (how many batches depends on how the lines arrived); together they
    // cover offsets 0..5 in order.
    assert_eq!(covered(&out), (0..5).collect::<Vec<u64>>(), "{out}");

    let values = b.ok(&["consume", "--topic", "lines", "--count", "5"]);
    assert_eq!(
        values,
        "first\nsecond \"quoted\"\n\ttabbed\\back\n\nlast-no-newline\n"
    );

    let json = b.ok(&[
        "consume", "--topic", "lines", "--count", "5", "--format", "json",
    ]);
    let lines: Vec<&str> = json.lines().collect();
    assert_eq!(lines.len(), 5, "{json}");
    assert!(
        lines[1].starts_with(r#"{"topic":"lines","partition":0,"offset":1,"timestamp_ms":"#),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].ends_with(
            r#","key":"k1","headers":[{"name":"src","value":"test"}],"value":"second \"quoted\""}"#
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with(r#""value":"\ttabbed\\back"}"#),
        "{}",
        lines[2]
    );
    assert!(lines[3].ends_with(r#""value":""}"#), "{}", lines[3]);

    // --from N and --count.
    assert_eq!(
        b.ok(&["consume", "--topic", "lines", "--from", "3", "--count", "1"]),
        "\n"
    );
}

#[test]
fn produce_keeps_the_order_of_many_lines() {
    let b = Broker::start("order");
    b.ok(&["topics", "create", "o"]);
    let lines: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let out = b.ok_with_stdin(
        &[
            "produce",
            "--topic",
            "o",
            "--partition",
            "0",
            "--batch",
            "100",
        ],
        lines.as_bytes(),
    );
    assert_eq!(covered(&out), (0..20_000).collect::<Vec<u64>>());
    assert!(out.lines().count() >= 200, "batches of at most 100 lines");
    let back = b.ok(&["consume", "--topic", "o", "--count", "20000"]);
    assert!(back == lines, "records came back in another order");
}

#[test]
fn count_and_idle_exit_stop_the_consumer() {
    let b = Broker::start("stops");
    b.ok(&["topics", "create", "t"]);
    for v in ["a", "b", "c"] {
        let out = b.ok(&["produce", "--topic", "t", "--value", v, "--acks", "written"]);
        assert!(out.starts_with("partition 0 offset "), "{out}");
    }
    assert_eq!(b.ok(&["consume", "--topic", "t", "--count", "2"]), "a\nb\n");

    // Three records, then 300 ms without a new one.
    let started = Instant::now();
    assert_eq!(
        b.ok(&["consume", "--topic", "t", "--idle-exit-ms", "300"]),
        "a\nb\nc\n"
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    // Nothing new after latest: exits after the idle time with nothing printed.
    let started = Instant::now();
    assert_eq!(
        b.ok(&[
            "consume",
            "--topic",
            "t",
            "--from",
            "latest",
            "--idle-exit-ms",
            "300",
        ]),
        ""
    );
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // acks none: no offsets, but the record arrives.
    let out = b.ok(&["produce", "--topic", "t", "--value", "d", "--acks", "none"]);
    assert!(out.contains("sent 1 record(s) with acks none"), "{out}");
    assert_eq!(
        b.ok(&[
            "consume",
            "--topic",
            "t",
            "--from",
            "3",
            "--count",
            "1",
            "--idle-exit-ms",
            "10000",
        ]),
        "d\n"
    );
}

#[test]
fn a_waiting_consumer_is_woken_by_a_produce() {
    let b = Broker::start("longpoll");
    b.ok(&["topics", "create", "t"]);
    let consumer = b
        .cmd(&[
            "consume",
            "--topic",
            "t",
            // The topic is empty, so offset 0 is where `latest` would start too; with `latest`
            // a consumer slower than the sleep below would start after the record.
            "--from",
            "0",
            "--count",
            "1",
            "--idle-exit-ms",
            "20000",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Let it reach its long poll, then produce.
    std::thread::sleep(Duration::from_millis(300));
    let sent = Instant::now();
    b.ok(&["produce", "--topic", "t", "--value", "wake up"]);
    let out = consumer.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "wake up\n");
    assert!(
        sent.elapsed() < Duration::from_secs(5),
        "{:?}",
        sent.elapsed()
    );
}

#[test]
fn unknown_topic_fails_with_the_code() {
    let b = Broker::start("unknown");
    let out = b.run(&["consume", "--topic", "nope", "--idle-exit-ms", "100"]);
    assert_fails_with(&out, "UNKNOWN_TOPIC");
    assert!(
        text(&out.stderr)
            .contains("cannot consume topic nope partition 0: server refused: UNKNOWN_TOPIC (7)"),
        "{}",
        text(&out.stderr)
    );
    let out = b.run(&["produce", "--topic", "nope", "--value", "x"]);
    assert_fails_with(&out, "UNKNOWN_TOPIC");
    assert!(text(&out.stderr).contains("cannot produce to topic nope"));
    // From stdin too: the error comes after the in-flight batches, exit 1.
    let mut child = b
        .cmd(&["produce", "--topic", "nope"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"1\n2\n").unwrap();
    assert_fails_with(&child.wait_with_output().unwrap(), "UNKNOWN_TOPIC");
    // A partition out of range.
    b.ok(&["topics", "create", "t"]);
    assert_fails_with(
        &b.run(&[
            "produce",
            "--topic",
            "t",
            "--partition",
            "5",
            "--value",
            "x",
        ]),
        "UNKNOWN_PARTITION",
    );
}

#[test]
fn no_broker_is_a_clear_error() {
    // A port nothing listens on: bind one, then free it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let out = Command::new(BIN)
        .args(["topics", "list"])
        .env("OUTPOST_ADDR", &addr)
        .output()
        .unwrap();
    assert_fails_with(&out, &format!("cannot connect to the broker at {addr}"));
    assert!(
        text(&out.stderr).contains("refused"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn outpost_addr_env_and_status() {
    let b = Broker::start("status");
    b.ok(&["topics", "create", "s", "--partitions", "2"]);
    b.ok(&[
        "produce",
        "--topic",
        "s",
        "--partition",
        "1",
        "--value",
        "x",
    ]);
    // OUTPOST_ADDR instead of --addr.
    let out = Command::new(BIN)
        .arg("status")
        .env("OUTPOST_ADDR", &b.addr)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let status = text(&out.stdout);
    assert!(status.contains(&format!(" at {}\n", b.addr)), "{status}");
    assert!(status.contains("\nuptime: "), "{status}");
    assert!(status.contains("\nring: "), "{status}");
    assert!(status.contains("\nconnections: "), "{status}");
    assert!(
        status.contains("\n  s               0             0             0\n"),
        "{status}"
    );
    assert!(
        status.contains("\n  s               1             0             1\n"),
        "{status}"
    );
}

/// The `name  value` row of a bench table.
fn bench_row<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.trim_start().strip_prefix(name).map(str::trim))
        .unwrap_or_else(|| panic!("no {name:?} row in:\n{out}"))
}

#[test]
fn bench_against_a_running_broker() {
    let b = Broker::start("bench");
    let out = b.ok(&["bench", "--records", "2000", "--record-bytes", "100"]);
    assert!(
        out.starts_with("outpost bench: 2000 records of 100 B"),
        "{out}"
    );
    assert_eq!(bench_row(&out, "records "), "2000");
    for row in [
        "records/s",
        "MB/s",
        "ack p50 µs",
        "ack p99 µs",
        "ack p99.9 µs",
        "binary size",
    ] {
        assert!(!bench_row(&out, row).starts_with("n/a"), "{row}: {out}");
    }
    assert!(
        bench_row(&out, "broker peak RSS").starts_with("n/a"),
        "{out}"
    );
    // The records are there.
    let d = b.ok(&["topics", "describe", "bench"]);
    assert!(d.contains("0             0          2000\n"), "{d}");
}

#[test]
fn bench_starts_and_stops_its_own_broker() {
    let dir = TempDir::new("bench-own");
    let board = dir.board();
    let out = Command::new(BIN)
        .args([
            "bench",
            "--records",
            "3000",
            "--record-bytes",
            "1024",
            "--board",
        ])
        .arg(&board)
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        bench_row(&stdout, "broker peak RSS").contains(" MiB ("),
        "{stdout}"
    );
    assert!(
        bench_row(&stdout, "broker CPU s").contains("(user + system)"),
        "{stdout}"
    );
    assert!(!stdout.contains("broker stop"), "{stdout}");
    // Its data directory is gone.
    let data = stdout
        .lines()
        .find_map(|l| l.split("data in ").nth(1))
        .map(|d| d.trim_end_matches(')'))
        .unwrap_or_else(|| panic!("no data dir in {stdout}"));
    assert!(!std::path::Path::new(data).exists(), "{data} left behind");
}

/// A client that keeps exactly `inflight_max` requests unanswered (the client library never
/// exceeds it) must never be refused TOO_MANY_IN_FLIGHT. Regression: the broker used to free
/// a request's in-flight slot only after queueing its response, so the client's next request
/// could arrive first.
#[test]
fn a_full_window_is_never_refused_too_many_in_flight() {
    let b = Broker::start("inflight");
    let out = b.ok(&[
        "bench",
        "--records",
        "300000",
        "--record-bytes",
        "10",
        "--batch",
        "1",
        "--window",
        "1000",
    ]);
    assert!(out.contains("capped by the broker's inflight_max"), "{out}");
}

// ---------------------------------------------------------------------------------------------
// Consumer groups, idempotent producers and exactly-once from the command line
// ---------------------------------------------------------------------------------------------

/// The committed offsets `groups describe` shows: `(topic, partition, committed)` per row.
fn committed(b: &Broker, group: &str) -> Vec<(String, u32, Option<u64>)> {
    let out = b.ok(&["groups", "describe", group]);
    let mut rows = Vec::new();
    let mut table = false;
    for line in out.lines() {
        let cells: Vec<&str> = line.split_whitespace().collect();
        if cells.first() == Some(&"topic") && cells.get(1) == Some(&"partition") {
            table = true;
            continue;
        }
        if table {
            rows.push((
                cells[0].to_string(),
                cells[1].parse().unwrap(),
                cells[2].parse().ok(),
            ));
        }
    }
    assert!(table, "no offsets table in: {out}");
    rows
}

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Produces `values` to `topic` partition `p`, one record each.
fn produce_each(b: &Broker, topic: &str, p: u32, values: &[&str]) {
    let input: String = values.iter().map(|v| format!("{v}\n")).collect();
    b.ok_with_stdin(
        &["produce", "--topic", topic, "--partition", &p.to_string()],
        input.as_bytes(),
    );
}

#[test]
fn consume_as_a_group_commits_what_it_printed() {
    let b = Broker::start("consume-group");
    b.ok(&["topics", "create", "g", "--partitions", "2"]);
    produce_each(&b, "g", 0, &["a0", "a1", "a2"]);
    produce_each(&b, "g", 1, &["b0", "b1"]);

    // at-least-once (the default), as the group's standalone consumer of both partitions,
    // stopping inside a poll: the commit covers exactly the 4 records printed.
    let out = b.ok(&[
        "consume",
        "--topic",
        "g",
        "--group",
        "readers",
        "--count",
        "4",
        "--idle-exit-ms",
        "5000",
    ]);
    let first: Vec<&str> = out.lines().collect();
    assert_eq!(first.len(), 4, "{out}");
    let rows = committed(&b, "readers");
    assert_eq!(rows.len(), 2, "{rows:?}");
    let total: u64 = rows.iter().map(|r| r.2.unwrap()).sum();
    assert_eq!(total, 4, "{rows:?}");

    // The next run prints the one record left, then commits the end of both partitions.
    let out = b.ok(&[
        "consume",
        "--topic",
        "g",
        "--group",
        "readers",
        "--semantics",
        "at-least-once",
        "--idle-exit-ms",
        "500",
    ]);
    let mut all: Vec<&str> = first.iter().copied().chain(out.lines()).collect();
    all.sort_unstable();
    assert_eq!(all, ["a0", "a1", "a2", "b0", "b1"], "{out}");
    assert_eq!(
        committed(&b, "readers"),
        [("g".into(), 0, Some(3)), ("g".into(), 1, Some(2))]
    );
    // Nothing left for the group.
    let out = b.ok(&[
        "consume",
        "--topic",
        "g",
        "--group",
        "readers",
        "--idle-exit-ms",
        "300",
    ]);
    assert_eq!(out, "");

    // at-most-once on one partition, as JSON: committed before printing, and a --count that
    // stops inside the poll commits only what was printed.
    let out = b.ok(&[
        "consume",
        "--topic",
        "g",
        "--partition",
        "0",
        "--group",
        "once",
        "--semantics",
        "at-most-once",
        "--count",
        "2",
        "--format",
        "json",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines[1].starts_with(r#"{"topic":"g","partition":0,"offset":1,"#),
        "{out}"
    );
    assert_eq!(committed(&b, "once"), [("g".into(), 0, Some(2))]);

    // A member (--join) gets both partitions, starts from the committed offsets (the end),
    // and leaves the group when it stops.
    produce_each(&b, "g", 1, &["b2"]);
    let out = b.ok(&[
        "consume",
        "--topic",
        "g",
        "--group",
        "readers",
        "--join",
        "--idle-exit-ms",
        "1000",
    ]);
    assert_eq!(out, "b2\n");
    assert_eq!(
        committed(&b, "readers"),
        [("g".into(), 0, Some(3)), ("g".into(), 1, Some(3))]
    );
    let describe = b.ok(&["groups", "describe", "readers"]);
    assert!(describe.contains(": Empty,"), "{describe}");
}

#[test]
fn consume_exactly_once_is_a_usage_error() {
    let out = Command::new(BIN)
        .args([
            "consume",
            "--topic",
            "t",
            "--group",
            "g",
            "--semantics",
            "exactly-once",
            "--addr",
            "127.0.0.1:9",
        ])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.starts_with("error: --semantics exactly-once needs an output topic"),
        "{stderr}"
    );
    assert!(stderr.contains("outpost pipe --group G"), "{stderr}");
    assert!(stderr.contains("Usage: outpost consume"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn pipe_exactly_once_copies_every_record_once() {
    let b = Broker::start("pipe");
    b.ok(&["topics", "create", "src", "--partitions", "2"]);
    b.ok(&["topics", "create", "dst"]);
    let p0: Vec<String> = (0..6).map(|i| format!("p0-{i}")).collect();
    let p1: Vec<String> = (0..4).map(|i| format!("p1-{i}")).collect();
    produce_each(&b, "src", 0, &refs(&p0));
    produce_each(&b, "src", 1, &refs(&p1));
    b.ok(&[
        "produce",
        "--topic",
        "src",
        "--partition",
        "1",
        "--key",
        "k",
        "--header",
        "h=v",
        "--value",
        "p1-4",
    ]);
    let pipe = [
        "pipe",
        "--group",
        "mirror",
        "--from",
        "src",
        "--to",
        "dst",
        "--semantics",
        "exactly-once",
        "--idle-exit-ms",
        "700",
    ];
    assert_eq!(
        b.ok(&pipe),
        "piped 11 records from src to dst (exactly-once)\n"
    );
    // Run again: the group's offsets were committed with the copies, so nothing is copied.
    assert_eq!(
        b.ok(&pipe),
        "piped 0 records from src to dst (exactly-once)\n"
    );
    let copies = b.ok(&["consume", "--topic", "dst", "--idle-exit-ms", "300"]);
    let copies: Vec<&str> = copies.lines().collect();
    assert_eq!(copies.len(), 11, "{copies:?}");
    // Every record once, each source partition's in its order.
    let of = |prefix: &str| -> Vec<&str> {
        copies
            .iter()
            .copied()
            .filter(|c| c.starts_with(prefix))
            .collect()
    };
    assert_eq!(of("p0-"), refs(&p0));
    assert_eq!(of("p1-"), ["p1-0", "p1-1", "p1-2", "p1-3", "p1-4"]);
    // A copy keeps the key and the headers.
    let json = b.ok(&[
        "consume", "--topic", "dst", "--from", "10", "--count", "1", "--format", "json",
    ]);
    assert!(
        json.ends_with(concat!(
            r#","key":"k","headers":[{"name":"h","value":"v"}],"value":"p1-4"}"#,
            "\n"
        )),
        "{json}"
    );
    assert_eq!(
        committed(&b, "mirror"),
        [("src".into(), 0, Some(6)), ("src".into(), 1, Some(5))]
    );
    // New records: only they are copied.
    produce_each(&b, "src", 0, &["p0-6"]);
    assert_eq!(
        b.ok(&pipe),
        "piped 1 record from src to dst (exactly-once)\n"
    );
    let copies = b.ok(&[
        "consume",
        "--topic",
        "dst",
        "--from",
        "11",
        "--idle-exit-ms",
        "300",
    ]);
    assert_eq!(copies, "p0-6\n");

    // at-least-once into another topic, then mistakes.
    b.ok(&["topics", "create", "dst2", "--partitions", "3"]);
    let out = b.ok(&[
        "pipe",
        "--group",
        "m2",
        "--from",
        "src",
        "--to",
        "dst2",
        "--idle-exit-ms",
        "500",
    ]);
    assert_eq!(out, "piped 12 records from src to dst2 (at-least-once)\n");
    assert_eq!(
        b.ok(&["topics", "describe", "dst2"])
            .lines()
            .skip(2)
            .map(|l| l.split_whitespace().last().unwrap().to_string())
            .collect::<Vec<_>>(),
        ["7", "5", "0"],
        "partition P to P modulo 3"
    );
    assert_fails_with(
        &b.run(&[
            "pipe",
            "--group",
            "m3",
            "--from",
            "src",
            "--to",
            "nope",
            "--idle-exit-ms",
            "100",
        ]),
        "UNKNOWN_TOPIC",
    );
    let out = b.run(&["pipe", "--group", "m3", "--from", "src", "--to", "src"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn produce_with_a_producer_name_stores_every_record_once() {
    let b = Broker::start("idempotent");
    b.ok(&["topics", "create", "idem", "--partitions", "3"]);
    // The key picks the partition the broker's partitioner would.
    let plain = b.ok(&[
        "produce", "--topic", "idem", "--key", "sensor-7", "--value", "x",
    ]);
    let partition = plain.split(' ').nth(1).unwrap().to_string();
    let lines: String = (0..1000).map(|i| format!("v{i}\n")).collect();
    let out = b.ok_with_stdin(
        &[
            "produce",
            "--topic",
            "idem",
            "--key",
            "sensor-7",
            "--producer-name",
            "pump-7",
            "--batch",
            "100",
        ],
        lines.as_bytes(),
    );
    assert!(
        out.lines()
            .all(|l| l.starts_with(&format!("partition {partition} "))),
        "{out}"
    );
    assert_eq!(covered(&out), (1..1001).collect::<Vec<u64>>(), "{out}");
    let back = b.ok(&[
        "consume",
        "--topic",
        "idem",
        "--partition",
        &partition,
        "--from",
        "1",
        "--count",
        "1000",
    ]);
    assert!(back == lines, "records came back in another order");
    // --value, and an explicit partition; the same name again (a new epoch).
    assert_eq!(
        b.ok(&[
            "produce",
            "--topic",
            "idem",
            "--partition",
            "2",
            "--producer-name",
            "pump-7",
            "--value",
            "y",
        ]),
        if partition == "2" {
            "partition 2 offset 1001\n"
        } else {
            "partition 2 offset 0\n"
        }
    );
    // Idempotent batches are always durable.
    let out = b.run(&[
        "produce",
        "--topic",
        "idem",
        "--producer-name",
        "p",
        "--acks",
        "none",
        "--value",
        "z",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("--acks"),
        "{}",
        text(&out.stderr)
    );
    // A bad name is the broker's INVALID_PRODUCER_NAME.
    assert_fails_with(
        &b.run(&[
            "produce",
            "--topic",
            "idem",
            "--producer-name",
            "",
            "--value",
            "z",
        ]),
        "INVALID_PRODUCER_NAME",
    );
}

/// The lines a child prints on stdout, as they come (the channel closes at its end).
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    rx
}

#[test]
fn produce_with_a_producer_name_resends_across_a_broker_restart() {
    let mut b = Broker::start("resend");
    b.ok(&["topics", "create", "r"]);
    let mut child = b
        .cmd(&["produce", "--topic", "r", "--producer-name", "pump-7"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let lines = stdout_lines(&mut child);
    stdin.write_all(b"one\n").unwrap();
    stdin.flush().unwrap();
    assert_eq!(lines.recv_timeout(WAIT).unwrap(), "partition 0 offset 0");
    // The broker restarts under the producer: its connection is gone, so the next batch is
    // sent again on a new one, and stored once.
    b.restart();
    stdin.write_all(b"two\nthree\n").unwrap();
    drop(stdin);
    let rest: Vec<String> = lines.iter().collect();
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(covered(&rest.join("\n")), [1, 2], "{rest:?}");
    assert!(
        stderr.contains("sending the batch again in 100 ms, on a new connection"),
        "{stderr}"
    );
    assert_eq!(
        b.ok(&["consume", "--topic", "r", "--count", "3"]),
        "one\ntwo\nthree\n"
    );
}

#[test]
fn pipe_stops_cleanly_on_sigterm() {
    let b = Broker::start("pipe-signal");
    b.ok(&["topics", "create", "in"]);
    b.ok(&["topics", "create", "out"]);
    produce_each(&b, "in", 0, &["x", "y", "z"]);
    let child = b
        .cmd(&[
            "pipe",
            "--group",
            "m",
            "--from",
            "in",
            "--to",
            "out",
            "--semantics",
            "exactly-once",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Running (no --idle-exit-ms) once the copies are there.
    let deadline = Instant::now() + WAIT;
    while b.ok(&["consume", "--topic", "out", "--idle-exit-ms", "100"]) != "x\ny\nz\n" {
        assert!(Instant::now() < deadline, "pipe copied nothing");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(WAIT)
        .expect("pipe exits on SIGTERM")
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "piped 3 records from in to out (exactly-once)\n"
    );
    assert_eq!(committed(&b, "m"), [("in".into(), 0, Some(3))]);
}
