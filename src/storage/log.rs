//! Group commit: the async front of the ring. Appends from many tasks go through one bounded
//! queue to a single writer thread, which gathers everything queued into one group (one
//! `program`), syncs once, and only then answers `acks = durable` appends. `written` appends are
//! answered after the program, `none` appends are not answered at all.

use super::error::AppendError;
use super::flash::Flash;
use super::format::{MetaOp, Record};
use super::index::Shared;
use super::reader::Reader;
use super::ring::{AppendBody, Appended, Ring, error_chain, release};
use super::types::{Offset, PartitionId};
use smol::channel::{self, Receiver, Sender};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

/// When an append is acknowledged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Acks {
    /// Not at all: fire and forget (at-most-once).
    None,
    /// After the record was handed to the medium (`program`), before the sync.
    Written,
    /// After the sync that covers the record returned `Ok`: survives power loss (the default).
    #[default]
    Durable,
}

enum JobBody {
    Records {
        partition: PartitionId,
        records: Vec<Record>,
    },
    Meta(Vec<MetaOp>),
}

impl JobBody {
    fn as_append(&self) -> AppendBody<'_> {
        match self {
            JobBody::Records { partition, records } => AppendBody::Records {
                partition: *partition,
                records,
            },
            JobBody::Meta(ops) => AppendBody::Meta(ops),
        }
    }
}

type Reply = Sender<Result<Appended, AppendError>>;

struct Job {
    body: JobBody,
    acks: Acks,
    reply: Option<Reply>,
}

fn answer(reply: Option<Reply>, result: Result<Appended, AppendError>) {
    match reply {
        // The receiver may have gone away (the client disconnected): nothing to do.
        Some(r) => {
            let _ = r.try_send(result);
        }
        None => {
            if let Err(e) = result {
                log::debug!("storage: an acks=none append failed: {}", error_chain(&e));
            }
        }
    }
}

/// The group-committed log: cheap to share behind an `Arc`.
pub struct Log<F: Flash> {
    tx: Sender<Job>,
    /// Notified after every sync that published records (long-polling readers wait on it).
    published: Arc<event_listener::Event>,
    reader: Reader<F>,
    shared: Arc<RwLock<Shared>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<F: Flash + 'static> Log<F> {
    /// Starts the writer thread on an opened ring.
    pub fn start(ring: Ring<F>) -> std::io::Result<Log<F>> {
        let (tx, rx) = channel::bounded(ring.config().append_queue_max as usize);
        let reader = ring.reader();
        let shared = ring.shared();
        let published = Arc::new(event_listener::Event::new());
        let notify = published.clone();
        let writer = std::thread::Builder::new()
            .name("outpost-writer".into())
            .spawn(move || writer_loop(ring, rx, &notify))?;
        Ok(Log {
            tx,
            published,
            reader,
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }
}

impl<F: Flash> Log<F> {
    /// Appends records to `partition`. Waits while the queue is full (back-pressure), then
    /// until the ack mode is satisfied. With `Acks::None` it returns `Ok(None)` once queued.
    pub async fn append(
        &self,
        partition: PartitionId,
        records: Vec<Record>,
        acks: Acks,
    ) -> Result<Option<Appended>, AppendError> {
        self.submit(JobBody::Records { partition, records }, acks)
            .await
    }

    /// Appends metadata operations (always durable before it returns).
    pub async fn append_meta(&self, ops: Vec<MetaOp>) -> Result<(), AppendError> {
        self.submit(JobBody::Meta(ops), Acks::Durable).await?;
        Ok(())
    }

    async fn submit(&self, body: JobBody, acks: Acks) -> Result<Option<Appended>, AppendError> {
        let (reply, rx) = if acks == Acks::None {
            (None, None)
        } else {
            let (t, r) = channel::bounded(1);
            (Some(t), Some(r))
        };
        self.tx
            .send(Job { body, acks, reply })
            .await
            .map_err(|_| AppendError::Closed)?;
        match rx {
            None => Ok(None),
            Some(rx) => match rx.recv().await {
                Ok(r) => r.map(Some),
                Err(_) => Err(AppendError::Closed),
            },
        }
    }

    pub fn reader(&self) -> &Reader<F> {
        &self.reader
    }

    /// A listener notified after the next sync that publishes records. Register it *before*
    /// checking for data, then await it, so no publish is missed.
    pub fn listen_published(&self) -> event_listener::EventListener {
        self.published.listen()
    }

    /// Lets records of `partition` below `upto` be reclaimed.
    pub fn release(&self, partition: PartitionId, upto: Offset) {
        release(&self.shared, partition, upto);
    }

    /// Stops accepting appends, lets the writer finish what is queued, syncs, and joins it.
    pub fn close(&self) {
        self.tx.close();
        let handle = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            log::error!("storage: the writer thread panicked");
        }
    }
}

impl<F: Flash> Drop for Log<F> {
    fn drop(&mut self) {
        self.close();
    }
}

fn writer_loop<F: Flash>(mut ring: Ring<F>, rx: Receiver<Job>, published: &event_listener::Event) {
    let gather_max = ring.config().append_queue_max as usize;
    let mut queue: VecDeque<Job> = VecDeque::new();
    loop {
        if queue.is_empty() {
            match rx.recv_blocking() {
                Ok(j) => queue.push_back(j),
                Err(_) => break, // closed and drained
            }
        }
        while queue.len() < gather_max {
            match rx.try_recv() {
                Ok(j) => queue.push_back(j),
                Err(_) => break,
            }
        }
        let bodies: Vec<AppendBody<'_>> = queue.iter().map(|j| j.body.as_append()).collect();
        let outcome = ring.write_group(&bodies);
        drop(bodies);
        let group = match outcome {
            Ok(g) => g,
            Err(e) => {
                let cause = error_chain(&e);
                for j in queue.drain(..) {
                    answer(
                        j.reply,
                        Err(AppendError::Poisoned {
                            cause: cause.clone(),
                        }),
                    );
                }
                continue;
            }
        };
        let mut waiting = Vec::new();
        for (j, r) in queue.drain(..group.consumed).zip(group.results) {
            match (r, j.acks) {
                (Ok(a), Acks::Durable) => waiting.push((j.reply, a)),
                (r, _) => answer(j.reply, r),
            }
        }
        match ring.sync() {
            Ok(()) => {
                published.notify(usize::MAX);
                for (reply, a) in waiting {
                    answer(reply, Ok(a));
                }
            }
            Err(e) => {
                let cause = error_chain(&e);
                for (reply, _) in waiting {
                    answer(
                        reply,
                        Err(AppendError::SyncFailed {
                            cause: cause.clone(),
                        }),
                    );
                }
            }
        }
    }
    if let Err(e) = ring.sync() {
        log::error!("storage: final sync failed: {}", error_chain(&e));
    }
}
