//! A fault-injecting TCP proxy for the tests: std threads only, loopback only.
//!
//! It sits between a client (outpost's forwarder) and a server (Kafka's EDGE listener, see
//! `kafka.rs`) and, on command, passes bytes, refuses connections, stalls, resets every open
//! connection, or cuts connections after a number of response bytes.
//!
//! ```ignore
//! let proxy = Proxy::start(upstream_addr);      // listens on 127.0.0.1:<proxy.port()>
//! proxy.set(Fault::Refuse);                     // uplink down: open connections are reset,
//!                                               // new ones are accepted and reset at once
//! proxy.set(Fault::Pass);                       // uplink back
//! let f = proxy.random_fault(seed);             // a seeded choice, for chaos tests
//! proxy.set(f);
//! assert!(proxy.connections_total() > 0);
//! ```
//!
//! Semantics of each [`Fault`] (they take effect at once, on open and new connections):
//! - `Pass`: forward both ways (and end a `Stall`).
//! - `Refuse`: every open connection is reset (RST), and every new one is accepted and reset
//!   at once (the client sees ECONNRESET / an EOF before any byte). Stays until the next `set`.
//! - `Stall`: no byte moves either way; sockets stay open (the proxy stops reading, so TCP
//!   back-pressure builds up). Bytes already read are held and delivered after the stall.
//! - `Reset`: an action, not a state: every open connection is reset (RST through
//!   `SO_LINGER 0`) now, then the proxy behaves as `Pass` ([`Proxy::fault`] reports `Pass`).
//! - `CutResponse { after_bytes }`: requests pass; each connection is reset once
//!   `after_bytes` response bytes (server to client) went back since the fault was set (for
//!   connections open then) or since it was opened. The cut can fall inside a response.
//!   Stays until the next `set`.
//!
//! Resets use `SO_LINGER 0` (a real RST) on Linux through a one-line `setsockopt` binding;
//! elsewhere they fall back to a plain close (FIN).
#![allow(dead_code)]

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// What the proxy does to the bytes and connections passing through it. See the module doc.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Refuse,
    Stall,
    Reset,
    CutResponse { after_bytes: usize },
}

/// How often a pump thread looks at the fault state while it waits for bytes.
const POLL: Duration = Duration::from_millis(20);
/// Longest wait for the upstream TCP connect.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    dead: AtomicBool,
    /// Response bytes sent back since the connection opened or a `CutResponse` was set.
    response_bytes: AtomicUsize,
    /// Pump threads still running; the last one removes the connection from the list.
    pumps: AtomicU8,
}

impl Conn {
    /// Resets both sides: linger 0, then wake the pumps; the sockets close (with RST) when
    /// the last handle drops.
    fn kill(&self) {
        if self.dead.swap(true, Ordering::SeqCst) {
            return;
        }
        set_linger_zero(&self.client);
        set_linger_zero(&self.upstream);
        let _ = self.client.shutdown(Shutdown::Read);
        let _ = self.upstream.shutdown(Shutdown::Read);
    }
}

struct Shared {
    upstream: SocketAddr,
    mode: Mutex<Fault>,
    conns: Mutex<Vec<Arc<Conn>>>,
    stop: AtomicBool,
    accepted: AtomicU64,
    refused: AtomicU64,
    killed: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Shared {
    fn mode(&self) -> Fault {
        *self.mode.lock().unwrap()
    }

    fn kill_all(&self) {
        let conns: Vec<Arc<Conn>> = self.conns.lock().unwrap().clone();
        for c in conns {
            if !c.dead.load(Ordering::SeqCst) {
                self.killed.fetch_add(1, Ordering::Relaxed);
            }
            c.kill();
        }
    }
}

/// The proxy: one accept thread plus two pump threads per connection. Dropping it stops
/// everything and resets the open connections.
pub struct Proxy {
    shared: Arc<Shared>,
    addr: SocketAddr,
    acceptor: Option<JoinHandle<()>>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`, in `Pass` mode.
    pub fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy: bind 127.0.0.1:0");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            upstream,
            mode: Mutex::new(Fault::Pass),
            conns: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            accepted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            killed: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        });
        let s = shared.clone();
        let acceptor = std::thread::Builder::new()
            .name(format!("proxy-accept-{}", addr.port()))
            .spawn(move || accept_loop(listener, s))
            .unwrap();
        Proxy {
            shared,
            addr,
            acceptor: Some(acceptor),
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// "127.0.0.1:PORT".
    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Applies a fault at once, to open and new connections (see the module doc).
    pub fn set(&self, f: Fault) {
        let mut mode = self.shared.mode.lock().unwrap();
        match f {
            Fault::Reset => {
                *mode = Fault::Pass;
                drop(mode);
                self.shared.kill_all();
            }
            Fault::Refuse => {
                *mode = Fault::Refuse;
                drop(mode);
                self.shared.kill_all();
            }
            Fault::CutResponse { after_bytes } => {
                for c in self.shared.conns.lock().unwrap().iter() {
                    c.response_bytes.store(0, Ordering::SeqCst);
                }
                *mode = f;
                drop(mode);
                if after_bytes == 0 {
                    self.shared.kill_all();
                }
            }
            Fault::Pass | Fault::Stall => *mode = f,
        }
    }

    /// The mode in force (`Reset` is never reported: it is an action, then `Pass`).
    pub fn fault(&self) -> Fault {
        self.shared.mode()
    }

    /// A fault chosen by `rng_seed` alone (the same seed gives the same fault): `Pass`,
    /// `Refuse`, `Stall`, `Reset` or `CutResponse` with `after_bytes` in 0..4096, each about
    /// one time in five. It does not apply it: call [`Proxy::set`].
    pub fn random_fault(&self, rng_seed: u64) -> Fault {
        random_fault(rng_seed)
    }

    /// Client connections accepted so far (including refused ones).
    pub fn connections_total(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// Client connections accepted and reset at once under `Refuse` (or because the upstream
    /// could not be reached).
    pub fn connections_refused(&self) -> u64 {
        self.shared.refused.load(Ordering::Relaxed)
    }

    /// Open connections reset by `Refuse`, `Reset` or `CutResponse`.
    pub fn connections_killed(&self) -> u64 {
        self.shared.killed.load(Ordering::Relaxed)
    }

    /// Connections open now.
    pub fn connections_open(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }

    /// Bytes forwarded client to server, and server to client.
    pub fn bytes(&self) -> (u64, u64) {
        (
            self.shared.bytes_up.load(Ordering::Relaxed),
            self.shared.bytes_down.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        self.shared.kill_all();
    }
}

/// The seeded choice behind [`Proxy::random_fault`].
pub fn random_fault(rng_seed: u64) -> Fault {
    let a = splitmix64(rng_seed);
    let b = splitmix64(a);
    match a % 5 {
        0 => Fault::Pass,
        1 => Fault::Refuse,
        2 => Fault::Stall,
        3 => Fault::Reset,
        _ => Fault::CutResponse {
            after_bytes: (b % 4096) as usize,
        },
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn accept_loop(listener: TcpListener, s: Arc<Shared>) {
    for stream in listener.incoming() {
        if s.stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = stream else { continue };
        s.accepted.fetch_add(1, Ordering::Relaxed);
        if s.mode() == Fault::Refuse {
            refuse(&s, client);
            continue;
        }
        let upstream = match TcpStream::connect_timeout(&s.upstream, CONNECT_TIMEOUT) {
            Ok(u) => u,
            Err(_) => {
                refuse(&s, client);
                continue;
            }
        };
        let _ = client.set_nodelay(true);
        let _ = upstream.set_nodelay(true);
        for sock in [&client, &upstream] {
            let _ = sock.set_read_timeout(Some(POLL));
            let _ = sock.set_write_timeout(Some(POLL));
        }
        let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
            refuse(&s, client);
            continue;
        };
        let conn = Arc::new(Conn {
            client,
            upstream,
            dead: AtomicBool::new(false),
            response_bytes: AtomicUsize::new(0),
            pumps: AtomicU8::new(2),
        });
        s.conns.lock().unwrap().push(conn.clone());
        // The fault may have changed between the check above and the push.
        if matches!(
            s.mode(),
            Fault::Refuse | Fault::CutResponse { after_bytes: 0 }
        ) {
            s.killed.fetch_add(1, Ordering::Relaxed);
            conn.kill();
        }
        let port = conn.client.local_addr().map_or(0, |a| a.port());
        for (up, from, to) in [
            (true, c2, u2.try_clone()),
            (false, u2, conn.client.try_clone()),
        ] {
            let Ok(to) = to else {
                conn.kill();
                finish(&s, &conn);
                continue;
            };
            let (s, conn) = (s.clone(), conn.clone());
            std::thread::Builder::new()
                .name(format!("proxy-{port}-{}", if up { "up" } else { "down" }))
                .spawn(move || {
                    pump(&s, &conn, from, to, up);
                    finish(&s, &conn);
                })
                .unwrap();
        }
    }
}

fn refuse(s: &Shared, client: TcpStream) {
    s.refused.fetch_add(1, Ordering::Relaxed);
    set_linger_zero(&client);
    drop(client);
}

/// The last pump out removes the connection, closing its sockets.
fn finish(s: &Shared, conn: &Arc<Conn>) {
    if conn.pumps.fetch_sub(1, Ordering::SeqCst) == 1 {
        s.conns.lock().unwrap().retain(|c| !Arc::ptr_eq(c, conn));
    }
}

/// Moves bytes one way (`up`: client to server) until EOF, an error or a kill.
fn pump(s: &Shared, conn: &Conn, mut from: TcpStream, mut to: TcpStream, up: bool) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        if conn.dead.load(Ordering::SeqCst) || s.stop.load(Ordering::SeqCst) {
            return;
        }
        if s.mode() == Fault::Stall {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => {
                conn.kill();
                return;
            }
        };
        if conn.dead.load(Ordering::SeqCst) {
            return;
        }
        if n == 0 {
            // A clean half-close: pass it on, and let the other direction finish.
            let _ = to.shutdown(Shutdown::Write);
            return;
        }
        let mut data = &buf[..n];
        // Bytes already read are held through a stall.
        while s.mode() == Fault::Stall {
            if conn.dead.load(Ordering::SeqCst) || s.stop.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let mut cut = false;
        if !up && let Fault::CutResponse { after_bytes } = s.mode() {
            let sent = conn.response_bytes.load(Ordering::SeqCst);
            let allowed = after_bytes.saturating_sub(sent);
            if data.len() >= allowed {
                data = &data[..allowed];
                cut = true;
            }
        }
        if !write_all(conn, &mut to, data) {
            conn.kill();
            return;
        }
        if up {
            s.bytes_up.fetch_add(data.len() as u64, Ordering::Relaxed);
        } else {
            s.bytes_down.fetch_add(data.len() as u64, Ordering::Relaxed);
            conn.response_bytes.fetch_add(data.len(), Ordering::SeqCst);
        }
        if cut {
            s.killed.fetch_add(1, Ordering::Relaxed);
            conn.kill();
            return;
        }
    }
}

/// Writes everything unless the connection dies first (write timeouts let it look).
fn write_all(conn: &Conn, to: &mut TcpStream, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        if conn.dead.load(Ordering::SeqCst) {
            return false;
        }
        match to.write(data) {
            Ok(0) => return false,
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(_) => return false,
        }
    }
    true
}

/// `SO_LINGER {on, 0}`: closing the socket then sends RST instead of FIN.
#[cfg(target_os = "linux")]
fn set_linger_zero(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    #[repr(C)]
    struct Linger {
        l_onoff: i32,
        l_linger: i32,
    }
    unsafe extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const Linger, len: u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_LINGER: i32 = 13;
    let l = Linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd owned by `s`, and a pointer to a live, correctly sized
    // `struct linger`.
    unsafe {
        setsockopt(
            s.as_raw_fd(),
            SOL_SOCKET,
            SO_LINGER,
            &l,
            std::mem::size_of::<Linger>() as u32,
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn set_linger_zero(_s: &TcpStream) {}
