//! What the broker integration, bad-input and crash tests share: a temp directory with a small
//! board (and an optional config file), the real `outpost serve` on 127.0.0.1 port 0, raw
//! frames over a blocking socket, a seeded PRNG, and a few client helpers.
//!
//! Each test file uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost::client::Client;
use outpost::protocol::body::{Response, decode_response, encode_request};
use outpost::protocol::frame::{FrameHeader, HEADER_BYTES};
use outpost::protocol::messages::Empty;
use outpost::protocol::{ErrorCode, Kind};
use outpost::storage::Record;
use serde::Serialize;

mod rng;
#[allow(unused_imports)] // like the rest of this module: each test uses a part of it
pub use rng::Rng;

pub const BIN: &str = env!("CARGO_BIN_EXE_outpost");
/// Longest wait for anything that should be quick (a start, a response, a close).
pub const WAIT: Duration = Duration::from_secs(20);

/// A directory under the system temp dir, unique per test and run, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let dir =
            std::env::temp_dir().join(format!("outpost-it-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// The data directory `serve --data` gets.
    pub fn data(&self) -> PathBuf {
        self.0.join("data")
    }

    /// The ring file the broker keeps in the data directory.
    pub fn ring_file(&self) -> PathBuf {
        self.data().join("ring.dat")
    }

    /// Writes a small board file: 4 KiB erase blocks, 512 B program units, `segment` and
    /// `ring` sizes (TOML size strings such as "64 KiB"), batches of at most `batch`.
    pub fn board(&self, segment: &str, ring: &str, group: &str, batch: &str) -> PathBuf {
        let path = self.0.join("it-small.toml");
        std::fs::write(
            &path,
            format!(
                r#"name = "it-small"
target_triple = "x86_64-unknown-linux-gnu"
erase_block_bytes = "4 KiB"
program_unit_bytes = "512 B"
segment_bytes = "{segment}"
ring_bytes = "{ring}"
memory_budget_bytes = "16 MiB"
listen_addr = "127.0.0.1:7478"
group_bytes_max = "{group}"
batch_bytes_max = "{batch}"
meta_bytes_max = "4 KiB"
partitions_max = 64
"#
            ),
        )
        .unwrap();
        path
    }

    /// Writes a config file: the two required policies and the `[broker]` lines given
    /// (`key = value` each).
    pub fn config(&self, broker: &[&str]) -> PathBuf {
        let path = self.0.join("outpost.toml");
        let mut text = String::from(
            "[storage]\nfull_policy = \"reject\"\ncorruption_policy = \"refuse\"\n\n[broker]\n",
        );
        for line in broker {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `outpost serve --listen 127.0.0.1:0`. Killed (SIGKILL) on drop if still running.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Every stderr line so far (the broker's log), for failure messages.
    log: Arc<Mutex<Vec<String>>>,
}

impl Server {
    /// Starts `outpost serve` with `board`, the data directory `data` and, optionally, a
    /// config file; waits for its `listening on ADDR` line.
    pub fn start(board: &Path, data: &Path, config: Option<&Path>) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve");
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["--listen", "127.0.0.1:0", "--board"])
            .arg(board)
            .arg("--data")
            .arg(data)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        // Drain stderr for the whole run, so the broker never blocks on a full pipe.
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok).unwrap_or_default();
            let _ = tx.send(first);
            // Keep reading, so a later write to stdout never fails.
            for _ in lines.map_while(Result::ok) {}
        });
        let line = match rx.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "outpost serve printed no `listening on` line within {WAIT:?}; stderr:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let Some(addr) = line.trim_end().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            // Let the stderr thread catch up with the error the broker printed.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "outpost serve's first stdout line is {line:?}; stderr:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Server {
            child,
            addr: addr.parse().unwrap(),
            log,
        }
    }

    pub fn addr_string(&self) -> String {
        self.addr.to_string()
    }

    /// The broker's stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL, then reaps the process.
    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM; returns the exit code once it exited.
    pub fn terminate(mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status
                    .code()
                    .unwrap_or_else(|| panic!("exited by a signal: {status:?}"));
            }
            assert!(
                Instant::now() < deadline,
                "outpost serve did not exit within {WAIT:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// A raw-frame connection to this broker.
    pub fn raw(&self) -> Raw {
        Raw::connect(self.addr)
    }

    /// A client connection (HELLO done).
    pub fn client(&self) -> Client {
        smol::block_on(Client::connect(self.addr_string())).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One frame as read from the socket.
#[derive(Debug)]
pub struct Frame {
    pub header: FrameHeader,
    pub body: Vec<u8>,
}

impl Frame {
    /// The error code of a response body (`Ok` for a success).
    pub fn code(&self) -> ErrorCode {
        let (code, _) = postcard::take_from_bytes::<u16>(&self.body)
            .unwrap_or_else(|e| panic!("response body has no code: {e} ({self:?})"));
        ErrorCode::from_u16(code).unwrap_or_else(|| panic!("unknown error code {code}"))
    }

    /// The error message of an error response ("" for a success).
    pub fn message(&self) -> String {
        match decode_response::<Empty>(&self.body) {
            Ok(Response::Err { message, .. }) => message.to_owned(),
            _ => String::new(),
        }
    }

    /// Decodes an OK response's payload; panics on an error response.
    pub fn ok<'a, T: serde::Deserialize<'a>>(&'a self) -> T {
        match decode_response::<T>(&self.body) {
            Ok(Response::Ok(v)) => v,
            Ok(Response::Err { code, message }) => {
                panic!("expected OK, got {code}: {message}")
            }
            Err(e) => panic!("response body does not decode: {e}"),
        }
    }
}

/// What reading a frame found.
#[derive(Debug)]
pub enum Read1 {
    Frame(Frame),
    /// The broker closed the connection (end of stream, or a reset after a close).
    Closed,
}

/// Raw frames over a blocking socket: for requests the client library would never send.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Raw { stream }
    }

    /// Writes bytes; an error is returned, not a panic (the broker may have closed already).
    pub fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Writes a well-formed request frame of `kind` with `body`.
    pub fn send<T: Serialize>(&mut self, kind: u8, id: u32, body: &T) {
        let frame = request_frame(kind, id, body);
        self.write(&frame).unwrap();
    }

    /// Closes the write side (the broker reads end of stream).
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }

    /// Reads one whole frame, or `Closed` at end of stream. Panics on a timeout.
    pub fn read(&mut self) -> Read1 {
        let mut header = [0u8; HEADER_BYTES];
        match read_full(&mut self.stream, &mut header) {
            Ok(true) => {}
            Ok(false) => return Read1::Closed,
            Err(e) if is_reset(&e) => return Read1::Closed,
            Err(e) => panic!("reading a frame header failed: {e}"),
        }
        let header = parse_header(&header);
        let mut body = vec![0u8; header.body_bytes as usize];
        match read_full(&mut self.stream, &mut body) {
            Ok(true) => {}
            Ok(false) => panic!("the connection closed inside a frame body ({header:?})"),
            Err(e) => panic!("reading a frame body failed: {e} ({header:?})"),
        }
        Read1::Frame(Frame { header, body })
    }

    /// Reads one frame; panics if the connection closed instead.
    pub fn frame(&mut self) -> Frame {
        match self.read() {
            Read1::Frame(f) => f,
            Read1::Closed => panic!("the broker closed the connection; a frame was expected"),
        }
    }

    /// Reads the response to request `id` of `kind` (the next frame must be it); returns it.
    pub fn response(&mut self, kind: u8, id: u32) -> Frame {
        let f = self.frame();
        assert!(f.header.is_response(), "{f:?}");
        assert_eq!(f.header.request_id, id, "{f:?}");
        assert_eq!(f.header.kind, kind, "{f:?}");
        f
    }

    /// Sends a request and reads its response.
    pub fn call<T: Serialize>(&mut self, kind: u8, id: u32, body: &T) -> Frame {
        self.send(kind, id, body);
        self.response(kind, id)
    }

    /// Asserts the next frame is a GOODBYE with `code` and `id`, then that the broker closes
    /// the connection. Returns the GOODBYE's message.
    pub fn expect_goodbye(&mut self, code: ErrorCode, id: u32) -> String {
        let f = self.frame();
        assert_eq!(f.header.kind, Kind::Goodbye as u8, "not a GOODBYE: {f:?}");
        assert!(f.header.is_response(), "{f:?}");
        assert_eq!(f.header.request_id, id, "GOODBYE request id: {f:?}");
        assert_eq!(f.code(), code, "GOODBYE code ({})", f.message());
        let message = f.message();
        self.expect_closed();
        message
    }

    /// Asserts the broker closes the connection with nothing more sent.
    pub fn expect_closed(&mut self) {
        match self.read() {
            Read1::Closed => {}
            Read1::Frame(f) => panic!("a frame after the connection should have closed: {f:?}"),
        }
    }
}

fn is_reset(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
    )
}

/// Fills `buf`; false at end of stream before the first byte.
fn read_full(stream: &mut TcpStream, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match stream.read(&mut buf[at..]) {
            Ok(0) if at == 0 => return Ok(false),
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("end of stream after {at} of {} bytes", buf.len()),
                ));
            }
            Ok(n) => at += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// The header fields as sent, without checking the CRC (the tests check what they need).
pub fn parse_header(h: &[u8; HEADER_BYTES]) -> FrameHeader {
    FrameHeader {
        body_bytes: u32::from_le_bytes([h[0], h[1], h[2], h[3]]),
        version: h[4],
        kind: h[5],
        flags: u16::from_le_bytes([h[6], h[7]]),
        request_id: u32::from_le_bytes([h[8], h[9], h[10], h[11]]),
    }
}

/// A well-formed request frame.
pub fn request_frame<T: Serialize>(kind: u8, id: u32, body: &T) -> Vec<u8> {
    let size =
        postcard::serialize_with_flavor(body, postcard::ser_flavors::Size::default()).unwrap();
    let mut buf = vec![0u8; HEADER_BYTES + size];
    let n = encode_request(&mut buf, kind, id, body).unwrap();
    buf.truncate(n);
    buf
}

/// A frame with any header fields (a correct CRC) and any body bytes.
pub fn raw_frame(header: FrameHeader, body: &[u8]) -> Vec<u8> {
    let mut out = header.encode().to_vec();
    out.extend_from_slice(body);
    out
}

/// A record with a value and optional key, timestamp and headers.
pub fn record(key: Option<&[u8]>, value: &[u8]) -> Record {
    Record {
        timestamp_ms: 1_700_000_000_000,
        key: key.map(<[u8]>::to_vec),
        value: value.to_vec(),
        headers: Vec::new(),
    }
}

/// Every record of `partition` from `from` to the partition's end at the time of the call
/// (no long poll), in offset order.
pub async fn fetch_all(
    client: &Client,
    topic: &str,
    partition: u32,
    from: u64,
) -> Vec<outpost::client::FetchedRecord> {
    let end = client.list_offsets(topic, partition).await.unwrap().next;
    let mut out = Vec::new();
    let mut at = from;
    while at < end {
        let f = client
            .fetch(topic, partition, at, 1 << 20, 0)
            .await
            .unwrap();
        assert!(
            !f.records.is_empty(),
            "FETCH {topic}/{partition} at {at} returned nothing before next {end}"
        );
        at = f.next_fetch_offset(at);
        out.extend(f.records);
    }
    out
}

/// `target/<profile>/examples/<name>`, built (`cargo build --example`) if missing or older
/// than its source: `cargo test` builds examples, a test or bench run alone may not have.
#[allow(dead_code)] // not every test binary runs an example
pub fn example_bin(name: &str) -> Result<PathBuf, String> {
    let profile_dir = Path::new(BIN)
        .parent()
        .ok_or("no directory above the outpost binary")?;
    let bin = profile_dir
        .join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/{name}.rs"));
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let stale = match (modified(&bin), modified(&src)) {
        (Some(b), Some(s)) => b < s,
        (None, _) => true,
        (Some(_), None) => false,
    };
    if stale {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--example", name])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                cmd.arg("--release");
            }
            Some(other) => {
                cmd.args(["--profile", other]);
            }
        }
        if let Some(target) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target);
        }
        let status = cmd
            .status()
            .map_err(|e| format!("cargo build --example {name}: {e}"))?;
        if !status.success() {
            return Err(format!("cargo build --example {name}: {status}"));
        }
    }
    Ok(bin)
}
