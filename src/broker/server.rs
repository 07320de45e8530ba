//! The accept loop: admits connections up to `connections_max` (one more is sent a GOODBYE
//! `TOO_MANY_CONNECTIONS` and closed), serves each on an executor run by this thread and
//! helper threads (the storage writer has its own), and shuts down in order: stop accepting,
//! let every connection finish its requests in flight (at most [`SHUTDOWN_WAIT`]), return.

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::pin::pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use smol::io::{AsyncReadExt, AsyncWriteExt};
use smol::net::{TcpListener, TcpStream};
use smol::{Executor, Timer};

use super::cmd::error_frame;
use super::{Broker, conn, release};
use crate::protocol::{ErrorCode, Kind};
use crate::storage::flash::Flash;

/// How long shutdown waits for connections to finish their requests in flight.
pub const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);
/// Most threads running connections (this one included).
pub const THREADS_MAX: usize = 4;
/// Most refused connections being sent their GOODBYE at once; beyond it, a connection over
/// the limit is closed without one.
const REFUSING_MAX: u32 = 64;
/// How long a refused connection gets to take its GOODBYE.
const REFUSE_WAIT: Duration = Duration::from_millis(500);
/// Pause after a failed accept (out of file descriptors, ...), so the loop does not spin.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `listener` until `shutdown` resolves, then stops accepting, begins the broker's
/// shutdown, waits (at most [`SHUTDOWN_WAIT`]) for the connections to finish their requests
/// in flight and returns. The caller closes the log afterwards ([`Broker::close`]).
///
/// Connections run on an executor driven by the calling thread plus helper threads (one per
/// available core, at most [`THREADS_MAX`] in all), started here and joined before returning.
pub async fn run<F: Flash + 'static>(
    listener: TcpListener,
    broker: Arc<Broker<F>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let ex = Arc::new(Executor::new());
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, THREADS_MAX);
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let mut helpers = Vec::new();
    for i in 1..threads {
        let ex = ex.clone();
        let stop = stop_rx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("outpost-worker-{i}"))
            .spawn(move || {
                smol::block_on(ex.run(async move {
                    let _ = stop.recv().await;
                }))
            });
        match spawned {
            Ok(h) => helpers.push(h),
            Err(e) => {
                log::warn!("broker: cannot start a worker thread ({e}); running on fewer");
                break;
            }
        }
    }
    ex.spawn(release::run(broker.clone())).detach();
    ex.spawn(super::groups::run(broker.clone())).detach();
    let result = ex.run(accept_loop(listener, &broker, &ex, shutdown)).await;
    drop(stop_tx);
    for h in helpers {
        if h.join().is_err() {
            log::error!("broker: a worker thread panicked");
        }
    }
    // Tasks still running (past the shutdown wait) are dropped with the executor.
    drop(ex);
    result
}

/// Decrements the connection count when a connection's task ends (or is dropped).
struct Admitted<F: Flash>(Arc<Broker<F>>);

impl<F: Flash> Drop for Admitted<F> {
    fn drop(&mut self) {
        self.0.connection_ended();
    }
}

async fn accept_loop<F: Flash + 'static>(
    listener: TcpListener,
    broker: &Arc<Broker<F>>,
    ex: &Arc<Executor<'static>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut shutdown = pin!(shutdown);
    let refusing = Arc::new(AtomicU32::new(0));
    let connections_max = broker.config().connections_max;
    loop {
        let accept = async { Some(listener.accept().await) };
        let stop = async {
            shutdown.as_mut().await;
            None
        };
        let stopping = async {
            wait_stopping(broker).await;
            None
        };
        let next = smol::future::or(accept, smol::future::or(stop, stopping)).await;
        let (stream, peer) = match next {
            None => break,
            Some(Ok(accepted)) => accepted,
            Some(Err(e)) => {
                log::warn!("broker: accept failed: {e}");
                Timer::after(ACCEPT_RETRY).await;
                continue;
            }
        };
        if broker.connections() >= connections_max {
            log::debug!("broker: {peer}: refused, connections_max ({connections_max}) reached");
            if refusing.load(Ordering::Relaxed) < REFUSING_MAX {
                refusing.fetch_add(1, Ordering::Relaxed);
                let refusing = refusing.clone();
                ex.spawn(async move {
                    refuse(stream, connections_max).await;
                    refusing.fetch_sub(1, Ordering::Relaxed);
                })
                .detach();
            }
            continue;
        }
        broker.connection_opened();
        let admitted = Admitted(broker.clone());
        let broker = broker.clone();
        let weak: Weak<Executor<'static>> = Arc::downgrade(ex);
        ex.spawn(async move {
            let _admitted = admitted;
            conn::serve(stream, broker, weak).await;
        })
        .detach();
    }
    drop(listener);
    log::info!("broker: no longer accepting connections; finishing requests in flight");
    broker.begin_shutdown();
    if !wait_connections_closed(broker, SHUTDOWN_WAIT).await {
        log::warn!(
            "broker: {} connection(s) still busy after {SHUTDOWN_WAIT:?}; closing them",
            broker.connections()
        );
    }
    Ok(())
}

/// Resolves once the broker's shutdown has begun (by [`Broker::begin_shutdown`] elsewhere).
async fn wait_stopping<F: Flash>(broker: &Broker<F>) {
    loop {
        let listener = broker.listen_shutdown();
        if broker.is_shutting_down() {
            return;
        }
        listener.await;
    }
}

/// Waits until no connection is open, at most `wait`; false if some still are.
async fn wait_connections_closed<F: Flash>(broker: &Broker<F>, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    loop {
        let closed = broker.connection_closed.listen();
        if broker.connections() == 0 {
            return true;
        }
        let timeout = async {
            Timer::at(deadline).await;
            false
        };
        let notified = async {
            closed.await;
            true
        };
        if !smol::future::or(notified, timeout).await {
            return broker.connections() == 0;
        }
    }
}

/// Sends a connection over the limit its GOODBYE, then closes it (draining what it sent
/// meanwhile, so the close does not reset the connection before the GOODBYE is read).
async fn refuse(mut stream: TcpStream, connections_max: u32) {
    let goodbye = error_frame(
        Kind::Goodbye as u8,
        0,
        ErrorCode::TooManyConnections,
        &format!("connections_max ({connections_max}) connections are open; try again later"),
    );
    let deadline = Instant::now() + REFUSE_WAIT;
    let send = async {
        let sent = stream.write_all(&goodbye).await.is_ok();
        let _ = stream.shutdown(Shutdown::Write);
        if sent {
            let mut sink = [0u8; 1024];
            while let Ok(n) = stream.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        }
    };
    let timeout = async {
        Timer::at(deadline).await;
    };
    smol::future::or(send, timeout).await;
    let _ = stream.shutdown(Shutdown::Both);
}
