//! The client commands of the real `outpost` binary against a real `outpost serve` on
//! 127.0.0.1 port 0 (a small board in each test's temp dir): topics, produce from stdin and
//! `--value`, consume as text and JSON with `--count` and `--idle-exit-ms`, a long poll woken
//! by a produce, status, errors (unknown topic, no broker), and `bench` against that broker
//! and against one it starts itself.

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
    _dir: TempDir,
}

impl Broker {
    fn start(name: &str) -> Broker {
        let dir = TempDir::new(name);
        let board = dir.board();
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--board"])
            .arg(&board)
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
        let addr = match rx.recv_timeout(WAIT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("outpost serve did not print `listening on` within {WAIT:?}");
            }
        };
        Broker {
            child,
            addr,
            _dir: dir,
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
            "--from",
            "latest",
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
