//! A real Apache Kafka for the tests: one KRaft node (broker and controller in one JVM) on
//! loopback, in a temp directory, on free ports; verified with a real client (librdkafka via
//! confluent-kafka, `tools/py/kafka_tool.py`). std only.
//!
//! Needs (`make test` provides both; run `make kafka venv` before a bare `cargo test`):
//! - `OUTPOST_KAFKA_HOME`: the Kafka 4.1.1 jars and log4j2.xml `make kafka` assembled
//!   (`<home>/libs/*.jar`, `<home>/log4j2.xml`). Unset: `$OUTPOST_CACHE_DIR/kafka-4.1.1`, or
//!   `$HOME/.cache/outpost/kafka-4.1.1`, where `make kafka` puts it.
//! - `OUTPOST_PYTHON`: the venv Python with confluent-kafka (`make venv`). Unset:
//!   `<crate>/.venv/bin/python`.
//! - `java` 17+ on PATH (or `$JAVA_HOME/bin/java`).
//!
//! Missing any of them is a loud panic ("run `make kafka`"), never a skip.
//!
//! Optional: `OUTPOST_KAFKA_JVM_OPTS` replaces the JVM flags (default [`JVM_OPTS_FAST`]);
//! `OUTPOST_KAFKA_NO_CDS=1` ignores the cache's class-data-sharing archive (`kafka.jsa`);
//! `OUTPOST_KAFKA_KEEP=1` keeps the temp directory after drop (it is always kept, and its
//! path printed, when the test is panicking).
//!
//! ```ignore
//! #[path = "support/kafka.rs"]
//! mod kafka;
//! use kafka::{Fault, Kafka, Txn};
//!
//! let (mut k, proxy) = Kafka::start_behind_proxy("fwd-outage");
//! k.create_topic("up", 3, false);
//! k.create_topic("cursor", 1, true);
//! // outpost forwards to k.edge_bootstrap() (the proxy); the tests read k.bootstrap().
//! proxy.set(Fault::Refuse);
//! ...
//! let recs = k.consume_all("up", true); // read_committed, every partition, to the end
//! k.stop(); k.start_again();            // same dir, same ports
//! ```
//!
//! The API:
//! - `Kafka::start(name) -> Kafka`: no proxy; `edge_bootstrap() == bootstrap()`.
//! - `Kafka::start_behind_proxy(name) -> (Kafka, Proxy)`: Kafka has two client listeners,
//!   PLAINTEXT (advertised as itself, for verification) and EDGE, advertised as the proxy's
//!   address so that clients bootstrapping through the proxy stay behind it.
//! - `Kafka::start_with(name, &KafkaOptions) -> Kafka` and
//!   `Kafka::start_behind_proxy_with(name, &KafkaOptions) -> (Kafka, Proxy)`: extra
//!   server.properties (e.g. short `transactional.id.expiration.ms`), JVM flags, no warm-up.
//! - `bootstrap()`, `edge_bootstrap()`, `create_topic(name, partitions, compacted)`,
//!   `consume_all(topic, read_committed) -> Vec<KRecord>` (sorted by partition, offset),
//!   `advertised_brokers(bootstrap) -> Vec<(i32, String, u16)>`,
//!   `produce(bootstrap, topic, &[KRecord], Txn) -> Vec<KRecord>` (as stored: partition,
//!   offset, timestamp), `stop()` (SIGTERM, SIGKILL after 30 s), `kill()` (SIGKILL),
//!   `start_again()`, `is_running()`, `log_tail()`, `dir()`,
//!   `txn_bench(topic, records, record_bytes, txn_records, warmup_records) -> TxnBench`
//!   (confluent-kafka's transactional producer: the forwarder bench's reference; start the
//!   broker with `jvm_opts: Some(JVM_OPTS_BENCH.into())` for benches).
//! - Drop kills the JVM (SIGKILL: the data is thrown away anyway) and removes the directory.
//!
//! Start: StorageTool format --standalone, then kafka.Kafka; ready at "Kafka Server started"
//! in server.log (90 s at most, then a panic with the log's tail). Unless
//! `KafkaOptions::warm_transactions` is false, a tiny committed transaction is then made
//! so that `__transaction_state` exists and the first InitProducerId of a test does not get
//! COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS.
//!
//! A watchdog shell holds a pipe from the test process and SIGKILLs the JVM when the test
//! process dies (even by SIGKILL), so no broker outlives its test.
#![allow(dead_code)]

#[path = "proxy.rs"]
pub mod proxy;

pub use proxy::{Fault, Proxy};

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The Kafka version `make kafka` assembles (tools/kafka/pom.xml).
pub const KAFKA_VERSION: &str = "4.1.1";
/// Longest wait for "Kafka Server started".
pub const START_TIMEOUT: Duration = Duration::from_secs(90);
/// Longest wait for a clean exit after SIGTERM, then SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Seconds the Python client may take for one command (create, consume, produce).
pub const CLIENT_TIMEOUT_S: u32 = 60;
/// JVM flags for tests: the fastest start measured on 2 cores (C1 only, serial GC, small
/// heap). Throughput suffers (C1 code): benches want [`JVM_OPTS_BENCH`].
pub const JVM_OPTS_FAST: &str =
    "-Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData";
/// JVM flags for benches: full JIT (C2), the serial collector (2 cores), same heap cap.
pub const JVM_OPTS_BENCH: &str = "-Xms256m -Xmx512m -XX:+UseSerialGC -XX:-UsePerfData";

/// One record read back (or produced). Null header values read as empty.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct KRecord {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl KRecord {
    /// The first header of that name.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    /// The first header of that name as UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }
}

/// What [`Kafka::txn_bench`] measured (`line` is txn_bench.py's own output line).
#[derive(Clone, Debug)]
pub struct TxnBench {
    pub records: u64,
    pub record_bytes: u32,
    pub seconds: f64,
    pub records_per_s: f64,
    /// Value bytes, 10^6 per second.
    pub mb_per_s: f64,
    pub line: String,
}

/// How [`Kafka::produce`] ends its records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Txn {
    /// One transaction, committed.
    Commit,
    /// One transaction, aborted.
    Abort,
    /// No transaction (idempotent producer).
    None,
}

/// Options for [`Kafka::start_with`].
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// Extra server.properties lines (`key`, `value`), after (so overriding) the defaults.
    pub properties: Vec<(String, String)>,
    /// JVM flags; `None`: `OUTPOST_KAFKA_JVM_OPTS` or [`JVM_OPTS_FAST`].
    pub jvm_opts: Option<String>,
    /// Make `__transaction_state` exist before returning (about a second on 2 cores).
    pub warm_transactions: bool,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            properties: Vec::new(),
            jvm_opts: None,
            warm_transactions: true,
        }
    }
}

/// One KRaft node on loopback. See the module doc.
pub struct Kafka {
    name: String,
    dir: PathBuf,
    home: PathBuf,
    java: PathBuf,
    jvm_opts: Vec<String>,
    port: u16,
    controller_port: u16,
    /// (Kafka's EDGE listener port, the proxy port it advertises), when behind a proxy.
    edge: Option<(u16, u16)>,
    child: Option<Child>,
    watchdog: Option<Child>,
    /// How long the last start took: format (first start only), JVM start until "Kafka
    /// Server started", and the transaction warm-up (first start only).
    pub start_time: Duration,
    /// The part of `start_time` spent in StorageTool format.
    pub format_time: Duration,
    /// The part of `start_time` spent in the transaction warm-up.
    pub warm_time: Duration,
}

impl Kafka {
    pub fn start(name: &str) -> Kafka {
        Kafka::start_with(name, &KafkaOptions::default())
    }

    pub fn start_with(name: &str, opts: &KafkaOptions) -> Kafka {
        Kafka::launch(name, opts, None)
    }

    /// Kafka behind a [`Proxy`]: outpost connects to `edge_bootstrap()` (the proxy), which
    /// forwards to Kafka's EDGE listener; Kafka advertises the proxy's address on EDGE.
    pub fn start_behind_proxy(name: &str) -> (Kafka, Proxy) {
        Kafka::start_behind_proxy_with(name, &KafkaOptions::default())
    }

    pub fn start_behind_proxy_with(name: &str, opts: &KafkaOptions) -> (Kafka, Proxy) {
        let [edge_port] = free_ports::<1>();
        let proxy = Proxy::start(SocketAddr::from(([127, 0, 0, 1], edge_port)));
        let k = Kafka::launch(name, opts, Some((edge_port, proxy.port())));
        (k, proxy)
    }

    fn launch(name: &str, opts: &KafkaOptions, edge: Option<(u16, u16)>) -> Kafka {
        let t0 = Instant::now();
        let home = kafka_home();
        let java = java_bin();
        let python = python_bin();
        assert!(
            python.exists(),
            "kafka harness: no Python at {} (OUTPOST_PYTHON); run `make venv` (or `make test`)",
            python.display()
        );
        let jvm_opts = opts
            .jvm_opts
            .clone()
            .or_else(|| std::env::var("OUTPOST_KAFKA_JVM_OPTS").ok())
            .unwrap_or_else(|| JVM_OPTS_FAST.to_string());
        let dir = unique_dir(name);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        let [port, controller_port] = free_ports::<2>();
        let mut k = Kafka {
            name: name.to_string(),
            dir,
            home,
            java,
            jvm_opts: jvm_opts.split_whitespace().map(String::from).collect(),
            port,
            controller_port,
            edge,
            child: None,
            watchdog: None,
            start_time: Duration::ZERO,
            format_time: Duration::ZERO,
            warm_time: Duration::ZERO,
        };
        k.write_properties(&opts.properties);
        k.format();
        k.format_time = t0.elapsed();
        k.spawn_and_wait();
        let t_warm = Instant::now();
        if opts.warm_transactions {
            k.py(
                &[
                    "warm",
                    "--bootstrap",
                    &k.bootstrap(),
                    "--transactional-id",
                    "outpost-harness-warm",
                ],
                None,
            );
        }
        k.warm_time = t_warm.elapsed();
        k.start_time = t0.elapsed();
        k
    }

    /// "127.0.0.1:PORT" of the PLAINTEXT listener: for verifying clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The address outpost should use: the proxy's when behind one, else `bootstrap()`.
    pub fn edge_bootstrap(&self) -> String {
        match self.edge {
            Some((_, proxy_port)) => format!("127.0.0.1:{proxy_port}"),
            None => self.bootstrap(),
        }
    }

    /// Kafka's own EDGE listener (what the proxy forwards to), when behind a proxy.
    pub fn edge_listener(&self) -> Option<SocketAddr> {
        self.edge
            .map(|(p, _)| SocketAddr::from(([127, 0, 0, 1], p)))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => c.try_wait().map(|s| s.is_none()).unwrap_or(false),
            None => false,
        }
    }

    /// Creates a topic (replication factor 1) and waits until every partition has a leader.
    /// `compacted`: cleanup.policy=compact.
    pub fn create_topic(&self, name: &str, partitions: u32, compacted: bool) {
        let mut args = vec![
            "create-topic".to_string(),
            "--bootstrap".into(),
            self.bootstrap(),
            "--topic".into(),
            name.into(),
            "--partitions".into(),
            partitions.to_string(),
        ];
        if compacted {
            args.push("--compacted".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.py(&args, None);
    }

    /// Every record of every partition of `topic`, from the beginning to the end offset
    /// taken when the read starts (high watermark, or last stable offset when
    /// `read_committed`), sorted by (partition, offset). Panics if the end is not reached
    /// within [`CLIENT_TIMEOUT_S`].
    pub fn consume_all(&self, topic: &str, read_committed: bool) -> Vec<KRecord> {
        let b = self.bootstrap();
        let mut args = vec!["consume", "--bootstrap", &b, "--topic", topic];
        if read_committed {
            args.push("--read-committed");
        }
        let mut recs = parse_records(&self.py(&args, None));
        recs.sort_by_key(|r| (r.partition, r.offset));
        recs
    }

    /// Produces `records` with the Python client to `bootstrap` (either address), in one
    /// transaction committed or aborted, or without one. A record's `partition` < 0 lets the
    /// partitioner choose, `timestamp_ms` < 0 lets the client stamp it; offsets are ignored.
    /// Returns the records as delivered (partition, offset, timestamp filled in; for an
    /// aborted transaction, those that got a delivery report).
    pub fn produce(
        &self,
        bootstrap: &str,
        topic: &str,
        records: &[KRecord],
        txn: Txn,
    ) -> Vec<KRecord> {
        let mut input = String::new();
        for r in records {
            let _ = write!(
                input,
                "P {} {} {} {} {}",
                r.partition,
                r.timestamp_ms,
                enc(r.key.as_deref()),
                enc(r.value.as_deref()),
                r.headers.len()
            );
            for (n, v) in &r.headers {
                let _ = write!(input, " {} {}", enc(Some(n.as_bytes())), enc(Some(v)));
            }
            input.push('\n');
        }
        let t = match txn {
            Txn::Commit => "commit",
            Txn::Abort => "abort",
            Txn::None => "none",
        };
        let out = self.py(
            &[
                "produce",
                "--bootstrap",
                bootstrap,
                "--topic",
                topic,
                "--txn",
                t,
            ],
            Some(&input),
        );
        parse_records(&out)
    }

    /// The brokers (node id, host, port) the Metadata response advertises to a client that
    /// bootstraps at `bootstrap`: through the proxy, the proxy's address.
    pub fn advertised_brokers(&self, bootstrap: &str) -> Vec<(i32, String, u16)> {
        let out = self.py(&["brokers", "--bootstrap", bootstrap], None);
        out.lines()
            .filter_map(|l| l.strip_prefix("B "))
            .map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (
                    f[0].parse().unwrap(),
                    f[1].to_string(),
                    f[2].parse().unwrap(),
                )
            })
            .collect()
    }

    /// confluent-kafka's own transactional producer (`tools/py/txn_bench.py`) sending
    /// `records` records of `record_bytes` bytes to `topic` on `bootstrap()`, `txn_records`
    /// per transaction, after `warmup_records` untimed ones: the reference the forwarder
    /// bench compares with, against the same broker in the same run.
    pub fn txn_bench(
        &self,
        topic: &str,
        records: u64,
        record_bytes: u32,
        txn_records: u64,
        warmup_records: u64,
    ) -> TxnBench {
        let python = python_bin();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/py/txn_bench.py");
        let out = Command::new(&python)
            .arg(&script)
            .args(["--bootstrap", &self.bootstrap(), "--topic", topic])
            .args(["--records", &records.to_string()])
            .args(["--record-bytes", &record_bytes.to_string()])
            .args(["--txn-records", &txn_records.to_string()])
            .args(["--warmup-records", &warmup_records.to_string()])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("kafka harness: cannot run {} ({e})", python.display()));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().find(|l| l.starts_with("txn_bench "));
        let (Some(line), true) = (line, out.status.success()) else {
            panic!(
                "kafka harness: txn_bench.py failed ({}):\n{stdout}{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let field = |name: &str| -> f64 {
            line.split(' ')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("kafka harness: no {name} in {line:?}"))
        };
        TxnBench {
            records: field("records") as u64,
            record_bytes: field("bytes") as u32,
            seconds: field("seconds"),
            records_per_s: field("records_per_s"),
            mb_per_s: field("mb_per_s"),
            line: line.to_string(),
        }
    }

    /// SIGTERM, then wait for the exit (SIGKILL after [`STOP_TIMEOUT`]).
    pub fn stop(&mut self) {
        self.disarm_watchdog();
        let Some(mut child) = self.child.take() else {
            return;
        };
        signal(child.id(), SIGTERM);
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    eprintln!(
                        "kafka harness: {} did not stop in {STOP_TIMEOUT:?}; SIGKILL",
                        self.name
                    );
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
            }
        }
    }

    /// SIGKILL now (a broker crash), and reap it.
    pub fn kill(&mut self) {
        self.disarm_watchdog();
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the same node again (same directory, same ports), stopping it first if it
    /// runs. Waits for "Kafka Server started".
    pub fn start_again(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let t0 = Instant::now();
        self.spawn_and_wait();
        self.start_time = t0.elapsed();
        self.format_time = Duration::ZERO;
        self.warm_time = Duration::ZERO;
    }

    /// The last 60 lines of server.log (and of the JVM's stdout/stderr if it wrote any).
    pub fn log_tail(&self) -> String {
        let mut s = tail(&self.dir.join("logs/server.log"), 60);
        let out = tail(&self.dir.join("logs/jvm.out"), 20);
        if !out.trim().is_empty() {
            s.push_str("\n--- jvm stdout/stderr ---\n");
            s.push_str(&out);
        }
        s
    }

    fn props_path(&self) -> PathBuf {
        self.dir.join("server.properties")
    }

    fn write_properties(&self, extra: &[(String, String)]) {
        let (p, c, d) = (self.port, self.controller_port, self.dir.display());
        let (listeners, advertised, map) = match self.edge {
            Some((e, proxy)) => (
                format!(
                    "PLAINTEXT://127.0.0.1:{p},EDGE://127.0.0.1:{e},CONTROLLER://127.0.0.1:{c}"
                ),
                format!(
                    "PLAINTEXT://127.0.0.1:{p},EDGE://127.0.0.1:{proxy},CONTROLLER://127.0.0.1:{c}"
                ),
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,EDGE:PLAINTEXT",
            ),
            None => (
                format!("PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
                format!("PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"),
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            ),
        };
        let mut props = format!(
            "# written by tests/support/kafka.rs
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:{c}
listeners={listeners}
advertised.listeners={advertised}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map={map}
log.dirs={d}/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
log.cleaner.enable=true
log.cleaner.threads=1
log.cleaner.dedupe.buffer.size=16777216
"
        );
        for (k, v) in extra {
            let _ = writeln!(props, "{k}={v}");
        }
        std::fs::write(self.props_path(), props).unwrap();
    }

    fn java_cmd(&self) -> Command {
        let mut cmd = Command::new(&self.java);
        let jsa = self.home.join("kafka.jsa");
        if jsa.is_file() && std::env::var_os("OUTPOST_KAFKA_NO_CDS").is_none() {
            // Class data sharing (made by `make kafka`); ignored by a JVM it does not fit.
            cmd.arg(format!("-XX:SharedArchiveFile={}", jsa.display()))
                .arg("-Xshare:auto");
        }
        cmd.args(&self.jvm_opts)
            .arg("-Djava.awt.headless=true")
            .arg(format!(
                "-Dlog4j2.configurationFile={}",
                self.home.join("log4j2.xml").display()
            ))
            .arg(format!(
                "-Dkafka.logs.dir={}",
                self.dir.join("logs").display()
            ))
            .arg("-cp")
            .arg(format!("{}/libs/*", self.home.display()))
            .stdin(Stdio::null());
        cmd
    }

    fn format(&self) {
        let out = self
            .java_cmd()
            .args(["kafka.tools.StorageTool", "format"])
            // `--cluster-id=ID` in one argument: argparse would take an id that starts with
            // '-' for an option (CI failed on one, 1 run in 64).
            .arg(format!("--cluster-id={}", cluster_id()))
            .arg("--config")
            .arg(self.props_path())
            .arg("--standalone")
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "kafka harness: cannot run {} ({e}); install Java 17+ and run `make kafka`",
                    self.java.display()
                )
            });
        assert!(
            out.status.success(),
            "kafka harness: StorageTool format failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn spawn_and_wait(&mut self) {
        let log = self.dir.join("logs/server.log");
        let from = std::fs::metadata(&log).map_or(0, |m| m.len());
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("logs/jvm.out"))
            .unwrap();
        let child = self
            .java_cmd()
            .arg("kafka.Kafka")
            .arg(self.props_path())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "kafka harness: cannot run {} ({e}); install Java 17+ and run `make kafka`",
                    self.java.display()
                )
            });
        self.watchdog = spawn_watchdog(child.id());
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if log_contains_from(&log, from, "Kafka Server started") {
                return;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                self.disarm_watchdog();
                panic!(
                    "kafka harness: Kafka {} exited during start ({st}); log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "kafka harness: Kafka {} not started after {START_TIMEOUT:?}; log tail:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn disarm_watchdog(&mut self) {
        if let Some(mut w) = self.watchdog.take() {
            // SIGKILL the shell before it could act, so it never signals a reaped pid.
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// Runs `tools/py/kafka_tool.py ARGS` with `stdin`, returns its stdout; panics with its
    /// stderr and the broker log's tail on failure.
    fn py(&self, args: &[&str], stdin: Option<&str>) -> String {
        let python = python_bin();
        let mut cmd = Command::new(&python);
        cmd.arg(tool_script())
            .args(args)
            .arg("--timeout")
            .arg(CLIENT_TIMEOUT_S.to_string())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "kafka harness: cannot run {} ({e}); run `make venv`",
                python.display()
            )
        });
        if let Some(input) = stdin {
            let mut w = child.stdin.take().unwrap();
            let input = input.to_string();
            std::thread::spawn(move || {
                let _ = w.write_all(input.as_bytes());
            });
        }
        let mut err_pipe = child.stderr.take().unwrap();
        let err_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err_pipe.read_to_string(&mut s);
            s
        });
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        let status = child.wait().unwrap();
        let err = err_reader.join().unwrap_or_default();
        if !status.success() {
            panic!(
                "kafka harness: `kafka_tool.py {}` failed ({status}):\n{err}\n--- broker {} log tail ---\n{}",
                args.join(" "),
                self.name,
                self.log_tail()
            );
        }
        out
    }
}

impl Drop for Kafka {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() || std::env::var_os("OUTPOST_KAFKA_KEEP").is_some() {
            eprintln!(
                "kafka harness: kept {} (server.log in logs/)",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `<home>` with `libs/` and `log4j2.xml`, or a panic saying to run `make kafka`.
pub fn kafka_home() -> PathBuf {
    let home = match std::env::var_os("OUTPOST_KAFKA_HOME") {
        Some(h) => PathBuf::from(h),
        None => {
            let cache = std::env::var_os("OUTPOST_CACHE_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/outpost"))
                })
                .unwrap_or_else(|| PathBuf::from("/nonexistent"));
            cache.join(format!("kafka-{KAFKA_VERSION}"))
        }
    };
    let ok = home.join(".stamp").is_file()
        && home.join("log4j2.xml").is_file()
        && std::fs::read_dir(home.join("libs")).is_ok_and(|mut d| {
            d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().starts_with("kafka_2.13-")))
        });
    assert!(
        ok,
        "kafka harness: no Kafka {KAFKA_VERSION} at {} (OUTPOST_KAFKA_HOME); run `make kafka` \
         (or `make test`, which runs it)",
        home.display()
    );
    home
}

/// `$OUTPOST_PYTHON`, else `<crate>/.venv/bin/python`.
pub fn python_bin() -> PathBuf {
    std::env::var_os("OUTPOST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"))
}

/// `tools/py/kafka_tool.py` of this crate.
pub fn tool_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/py/kafka_tool.py")
}

fn java_bin() -> PathBuf {
    match std::env::var_os("JAVA_HOME") {
        Some(h) if Path::new(&h).join("bin/java").is_file() => Path::new(&h).join("bin/java"),
        _ => PathBuf::from("java"),
    }
}

/// `N` distinct free loopback ports, from below the kernel's ephemeral range, so that no
/// outgoing connection (nor anyone's bind to port 0) takes one between its release here and
/// Kafka's bind, or while Kafka is stopped between `stop` and `start_again`. A port is never
/// handed out twice in one test process. Falls back to port 0 picks if that range is busy.
pub fn free_ports<const N: usize>() -> [u16; N] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::Mutex;
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    let (from, to) = (low.saturating_sub(16384).max(10000), low);
    let mut given = GIVEN.lock().unwrap();
    let mut held: Vec<TcpListener> = Vec::new();
    let mut attempts = 0u64;
    while held.len() < N {
        attempts += 1;
        let l = if from < to && attempts < 1000 {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(attempts);
            let port = from + (h.finish() % u64::from(to - from)) as u16;
            if given.contains(&port) {
                continue;
            }
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => l,
                Err(_) => continue,
            }
        } else {
            TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0")
        };
        given.push(l.local_addr().unwrap().port());
        held.push(l);
    }
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

fn unique_dir(name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    std::env::temp_dir().join(format!(
        "outpost-kafka-{name}-{}-{nanos}",
        std::process::id()
    ))
}

/// A random Kafka cluster id: 16 bytes, URL-safe base64 without padding.
pub fn cluster_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_usize(i);
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[0] |= 1; // never the reserved all-zero id
    // The first character is bytes[0]'s top 6 bits; below 32 it is a letter, never '-' or
    // '_' (Kafka's own Uuid.randomUuid also refuses ids that start with '-').
    bytes[0] &= 0x7f;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(B64[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(B64[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// A shell that reads its stdin (a pipe from this process) until EOF, then SIGKILLs `pid`:
/// when the test process dies, the JVM dies too.
fn spawn_watchdog(pid: u32) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while read -r _; do :; done; kill -9 {pid} 2>/dev/null"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

const SIGTERM: i32 = 15;

fn signal(pid: u32, sig: i32) {
    unsafe extern "C" {
        fn kill(pid: i32, sig: i32) -> i32;
    }
    // SAFETY: kill(2) on a child we have not reaped yet (so the pid is still ours).
    unsafe {
        kill(pid as i32, sig);
    }
}

fn log_contains_from(path: &Path, from: u64, needle: &str) -> bool {
    use std::io::{Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if f.seek(SeekFrom::Start(from)).is_err() {
        return false;
    }
    let mut s = String::new();
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return false;
    }
    s.push_str(&String::from_utf8_lossy(&buf));
    s.contains(needle)
}

fn tail(path: &Path, lines: usize) -> String {
    let s = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn enc(b: Option<&[u8]>) -> String {
    match b {
        None => "-".to_string(),
        Some(b) => {
            let mut s = String::with_capacity(1 + 2 * b.len());
            s.push('x');
            for byte in b {
                let _ = write!(s, "{byte:02x}");
            }
            s
        }
    }
}

fn dec(s: &str) -> Option<Vec<u8>> {
    if s == "-" {
        return None;
    }
    let hex = s
        .strip_prefix('x')
        .unwrap_or_else(|| panic!("kafka harness: bad bytes field {s:?}"));
    assert!(hex.len().is_multiple_of(2), "kafka harness: odd hex {s:?}");
    Some(
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("kafka harness: bad hex"))
            .collect(),
    )
}

/// Parses the tool's `R` lines; checks the `END <count>` trailer.
pub fn parse_records(out: &str) -> Vec<KRecord> {
    let mut recs = Vec::new();
    let mut end = None;
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        match f[0] {
            "R" => {
                let n: usize = f[6].parse().unwrap();
                assert_eq!(
                    f.len(),
                    7 + 2 * n,
                    "kafka harness: bad record line {line:?}"
                );
                recs.push(KRecord {
                    partition: f[1].parse().unwrap(),
                    offset: f[2].parse().unwrap(),
                    timestamp_ms: f[3].parse().unwrap(),
                    key: dec(f[4]),
                    value: dec(f[5]),
                    headers: (0..n)
                        .map(|i| {
                            let name = dec(f[7 + 2 * i]).unwrap_or_default();
                            (
                                String::from_utf8(name).expect("kafka harness: header name"),
                                dec(f[8 + 2 * i]).unwrap_or_default(),
                            )
                        })
                        .collect(),
                });
            }
            "END" => end = Some(f[1].parse::<usize>().unwrap()),
            _ => {}
        }
    }
    assert_eq!(
        end,
        Some(recs.len()),
        "kafka harness: truncated client output"
    );
    recs
}
