//! Group commit: the async front of the ring. Appends from many tasks go through one bounded
//! queue to a single writer thread, which gathers everything queued into one group; a sync
//! thread programs and syncs it (one `program`, one `sync`), and an ack thread then publishes
//! it to readers and answers its `acks = durable` appends. `written` appends are answered after
//! the program, `none` appends are not answered at all.
//!
//! The pipeline (three threads, one medium):
//!
//! ```text
//! writer: | prepare N (encode, CRC) | seal N | prepare N+1 .......... | seal N+1 | prepare N+2
//! sync:                                     | program N | sync N | program N+1 | sync N+1 |
//! ack:                                                           | publish N, answer N |
//! ```
//!
//! The writer hands a group over as soon as the sync thread can take one (it holds at most two:
//! the one it programs and syncs, and the next, sealed and waiting), so the sync thread goes
//! from one sync straight to the next program without waiting for another thread: the medium
//! is the bottleneck, and it never waits for the CPU work of the writer or the ack thread.
//!
//! Invariants:
//! - **At most one unsynced program** (ring invariant 1, which recovery's torn-tail rule
//!   relies on, docs/FORMAT.md section 6): only the sync thread programs and syncs while groups
//!   are in flight, one group after the other (program N, sync N, program N+1, ...), so this
//!   holds by construction. The writer works in RAM only (`Ring::prepare_group` encodes and
//!   places appends, `Ring::seal_group` closes a group without touching the medium); the one
//!   step of preparing that writes, a segment roll, first waits until every group handed over
//!   is synced.
//! - **Syncs are published in order**: the sync thread passes each synced group (FIFO) to the
//!   ack thread, which publishes it to readers and then answers its `durable` appends.
//! - **A failed program or sync poisons the ring**: the appends of its group get `Poisoned` or
//!   `SyncFailed`; the sync thread programs nothing after it (a group sealed before the writer
//!   heard of it included), and every later append gets `Poisoned`.
//! - **Bounded**: at most `append_queue_max` appends are queued, at most as many more are held
//!   by the writer, and the group being built, the one waiting and the one being programmed
//!   are each at most `group_bytes_max` bytes (their buffers are recycled, not freed).
//! - **Appenders free their own allocations**: an append's records travel with its answer back
//!   to the appending task, which drops them, so the writer never frees client memory (it did
//!   for a third of its time).

use super::error::AppendError;
use super::flash::{Flash, FlashError};
use super::format::{MetaOp, Record};
use super::index::Shared;
use super::reader::Reader;
use super::ring::{
    AppendBody, Appended, AtomicPartBody, GroupResult, Ring, Sealed, Unsynced, count_program,
    error_chain, poison, publish, release,
};
use super::types::{Offset, PartitionId, ProducerEpoch, ProducerId};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, RwLock};
use std::task::{Context, Poll, Waker};
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
    Atomic {
        producer: ProducerId,
        epoch: ProducerEpoch,
        parts: Vec<AtomicPartBody>,
        meta: Vec<MetaOp>,
    },
    InitProducer(Vec<u8>),
}

impl JobBody {
    fn as_append(&self) -> AppendBody<'_> {
        match self {
            JobBody::Records { partition, records } => AppendBody::Records {
                partition: *partition,
                records,
            },
            JobBody::Meta(ops) => AppendBody::Meta(ops),
            JobBody::Atomic {
                producer,
                epoch,
                parts,
                meta,
            } => AppendBody::Atomic {
                producer: *producer,
                epoch: *epoch,
                parts,
                meta,
            },
            JobBody::InitProducer(name) => AppendBody::InitProducer { name },
        }
    }
}

struct Job {
    body: JobBody,
    acks: Acks,
    /// `None` for `Acks::None`.
    reply: Option<Reply>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock with its state half changed.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// One append's answer
// ---------------------------------------------------------------------------------------------

/// The answer to one append, shared by the appending task ([`Answer`]) and the writer side
/// ([`Reply`]): one small allocation and one uncontended lock per append, instead of a channel.
struct Slot {
    state: Mutex<SlotState>,
}

enum SlotState {
    /// Not answered yet; the waker of the task waiting for it, once it polled.
    Waiting(Option<Waker>),
    /// Answered. The append's body comes back with the answer, for the appender to drop.
    Answered(Result<Appended, AppendError>, Option<JobBody>),
    /// The appender took the answer.
    Taken,
}

/// The writer side's handle: answering consumes it; dropping it unanswered (the writer thread
/// ended) answers `Closed`, so no appender waits forever.
struct Reply(Option<Arc<Slot>>);

impl Reply {
    fn answer(mut self, result: Result<Appended, AppendError>, body: JobBody) {
        if let Some(slot) = self.0.take() {
            fill(slot, result, Some(body));
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(slot) = self.0.take() {
            fill(slot, Err(AppendError::Closed), None);
        }
    }
}

fn fill(slot: Arc<Slot>, result: Result<Appended, AppendError>, body: Option<JobBody>) {
    let waker = {
        let mut s = lock(&slot.state);
        match std::mem::replace(&mut *s, SlotState::Answered(result, body)) {
            SlotState::Waiting(w) => w,
            // Unreachable (a `Reply` answers once); keep what was there.
            other => {
                *s = other;
                None
            }
        }
    };
    // Our reference goes first, so the appender usually frees the slot on its own thread.
    drop(slot);
    if let Some(w) = waker {
        w.wake();
    }
}

/// The appender's side: resolves to the answer and the body handed back, or `None` if it was
/// already taken.
struct Answer(Arc<Slot>);

impl Future for Answer {
    type Output = Option<(Result<Appended, AppendError>, Option<JobBody>)>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.0.state);
        match std::mem::replace(&mut *s, SlotState::Taken) {
            SlotState::Answered(result, body) => Poll::Ready(Some((result, body))),
            SlotState::Waiting(w) => {
                let w = match w {
                    Some(w) if w.will_wake(cx.waker()) => w,
                    _ => cx.waker().clone(),
                };
                *s = SlotState::Waiting(Some(w));
                Poll::Pending
            }
            SlotState::Taken => Poll::Ready(None),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The queue between the appenders and the writer
// ---------------------------------------------------------------------------------------------

/// Appenders push jobs; the writer takes them in batches and sleeps on `wake_writer` when it
/// has nothing to do (woken by a job, a close, or the end of a sync).
struct Queue {
    state: Mutex<QueueState>,
    wake_writer: Condvar,
    /// Appenders wait here while the queue is full.
    room: event_listener::Event,
    /// `append_queue_max`.
    capacity: usize,
    /// `QueueState::in_flight` (a copy the writer polls without the lock; it is only a hint to
    /// stop preparing and hand the group over: decisions that need the truth take the lock).
    in_flight: AtomicUsize,
}

struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    /// While the writer sleeps on `wake_writer`: a push notifies it once the queue holds this
    /// many jobs (1 when it is idle; a chunk while it waits for the sync thread, whose end of a
    /// group wakes it anyway, so that it is not woken once per append). `usize::MAX` while it is
    /// awake.
    wake_at: usize,
    /// Groups handed to the sync thread and not programmed and synced yet (at most
    /// [`GROUPS_IN_FLIGHT_MAX`]).
    in_flight: usize,
    /// A program or sync of the sync thread failed (the ring is poisoned): the cause, until the
    /// writer has seen it.
    failed: Option<String>,
}

/// Groups the sync thread holds at most: the one it programs and syncs, and the next, sealed
/// and waiting, so that it starts programming the next group the moment a sync returns, without
/// waiting for the writer.
const GROUPS_IN_FLIGHT_MAX: usize = 2;

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
                wake_at: usize::MAX,
                in_flight: 0,
                failed: None,
            }),
            wake_writer: Condvar::new(),
            room: event_listener::Event::new(),
            capacity,
            in_flight: AtomicUsize::new(0),
        }
    }

    /// Queues `job`, waiting while the queue is full (back-pressure).
    async fn push(&self, job: Job) -> Result<(), AppendError> {
        let mut listener = None;
        loop {
            {
                let mut s = lock(&self.state);
                if s.closed {
                    return Err(AppendError::Closed);
                }
                if s.jobs.len() < self.capacity {
                    s.jobs.push_back(job);
                    if s.jobs.len() >= s.wake_at {
                        s.wake_at = usize::MAX; // one notification is enough
                        self.wake_writer.notify_one();
                    }
                    return Ok(());
                }
                // Full: listen before unlocking, so a take in between is not missed.
                if listener.is_none() {
                    listener = Some(self.room.listen());
                    continue;
                }
            }
            if let Some(l) = listener.take() {
                l.await;
            }
        }
    }

    /// Sleeps on `wake_writer` once (the caller re-checks its condition); pushes wake it
    /// once the queue holds `wake_at` jobs (at least 1, at most the capacity).
    fn sleep<'a>(
        &'a self,
        mut s: MutexGuard<'a, QueueState>,
        wake_at: usize,
    ) -> MutexGuard<'a, QueueState> {
        s.wake_at = wake_at.clamp(1, self.capacity);
        let mut s = self
            .wake_writer
            .wait(s)
            .unwrap_or_else(PoisonError::into_inner);
        s.wake_at = usize::MAX;
        s
    }

    /// Whether the writer sleeps (then `group_done` and `close` must notify it).
    fn asleep(s: &QueueState) -> bool {
        s.wake_at != usize::MAX
    }

    /// Moves queued jobs into `local` until it holds `max`. With `block`, first waits until
    /// there is a job or the queue is closed. Returns `false` only when `block` was asked and
    /// the queue is closed and empty.
    fn take(&self, local: &mut VecDeque<Job>, max: usize, block: bool) -> bool {
        let mut s = lock(&self.state);
        if block {
            while s.jobs.is_empty() && !s.closed {
                s = self.sleep(s, 1);
            }
            if s.jobs.is_empty() {
                return false;
            }
        }
        let was_full = s.jobs.len() >= self.capacity;
        let n = s.jobs.len().min(max.saturating_sub(local.len()));
        if n == s.jobs.len() && local.is_empty() {
            std::mem::swap(&mut s.jobs, local);
        } else {
            local.extend(s.jobs.drain(..n));
        }
        drop(s);
        if was_full && n > 0 {
            self.room.notify(usize::MAX);
        }
        true
    }

    /// Whether the sync thread can take another group (a hint, see `Queue::in_flight`).
    fn can_hand_over(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) < GROUPS_IN_FLIGHT_MAX
    }

    /// Waits until the sync thread can take another group; with `jobs_too`, also until a
    /// chunk of jobs is queued (or all the queue can hold), so the writer can prepare them.
    fn wait_hand_over(&self, jobs_too: bool) {
        let mut s = lock(&self.state);
        let enough = if jobs_too {
            PREPARE_CHUNK.min(self.capacity)
        } else {
            usize::MAX
        };
        while s.in_flight >= GROUPS_IN_FLIGHT_MAX && s.jobs.len() < enough {
            s = self.sleep(s, enough);
        }
    }

    /// Waits until every group handed over is programmed and synced (before the writer does
    /// I/O itself: a roll, the final sync). `Err` with the cause if one failed (reported once).
    fn wait_idle(&self) -> Result<(), String> {
        let mut s = lock(&self.state);
        while s.in_flight > 0 {
            s = self.sleep(s, usize::MAX);
        }
        match s.failed.take() {
            Some(cause) => Err(cause),
            None => Ok(()),
        }
    }

    /// The writer hands a group over.
    fn group_handed_over(&self) {
        let mut s = lock(&self.state);
        s.in_flight += 1;
        self.in_flight.store(s.in_flight, Ordering::Release);
    }

    /// The sync thread is done with a group: synced, or failed with `Err(cause)`.
    fn group_done(&self, outcome: Result<(), String>) {
        let mut s = lock(&self.state);
        s.in_flight = s.in_flight.saturating_sub(1);
        self.in_flight.store(s.in_flight, Ordering::Release);
        if let Err(cause) = outcome {
            s.failed = Some(cause);
        }
        if Queue::asleep(&s) {
            self.wake_writer.notify_one();
        }
    }

    fn close(&self) {
        let mut s = lock(&self.state);
        s.closed = true;
        self.wake_writer.notify_one();
        drop(s);
        self.room.notify(usize::MAX);
    }
}

// ---------------------------------------------------------------------------------------------
// The log
// ---------------------------------------------------------------------------------------------

/// The group-committed log: cheap to share behind an `Arc`.
pub struct Log<F: Flash> {
    queue: Arc<Queue>,
    /// Notified after every sync that published records (long-polling readers wait on it).
    published: Arc<event_listener::Event>,
    reader: Reader<F>,
    shared: Arc<RwLock<Shared>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl<F: Flash + 'static> Log<F> {
    /// Starts the writer, sync and ack threads on an opened ring.
    pub fn start(ring: Ring<F>) -> std::io::Result<Log<F>> {
        let queue = Arc::new(Queue::new(ring.config().append_queue_max as usize));
        let reader = ring.reader();
        let shared = ring.shared();
        let published = Arc::new(event_listener::Event::new());
        // Holds the sealed group waiting while the sync thread works on the one before.
        let (tx, rx) = mpsc::sync_channel::<GroupJob>(GROUPS_IN_FLIGHT_MAX - 1);
        let (to_ack, acks) = mpsc::sync_channel::<AckJob>(1);
        let interval_bytes = ring.config().index_interval_bytes;
        let (s, p) = (shared.clone(), published.clone());
        let ack_thread = std::thread::Builder::new()
            .name("outpost-ack".into())
            .spawn(move || ack_loop(acks, &s, &p, interval_bytes))?;
        let spares = Arc::new(Mutex::new(Vec::new()));
        let syncer = Syncer {
            flash: ring.flash_handle(),
            shared: shared.clone(),
            queue: queue.clone(),
            spares: spares.clone(),
        };
        // If a spawn below fails, the threads above end: their channels' senders are dropped.
        let sync_thread = std::thread::Builder::new()
            .name("outpost-sync".into())
            .spawn(move || {
                syncer.run(rx, to_ack);
                if ack_thread.join().is_err() {
                    log::error!("storage: the ack thread panicked");
                }
            })?;
        let q = queue.clone();
        let buffer_bytes = usize::try_from(ring.config().group_bytes_max).unwrap_or(usize::MAX);
        let writer = std::thread::Builder::new()
            .name("outpost-writer".into())
            .spawn(move || {
                let handover = Handover {
                    queue: &q,
                    to_sync: tx,
                    spares,
                    buffer_bytes,
                };
                writer_loop(ring, handover, sync_thread)
            })?;
        Ok(Log {
            queue,
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

    /// [`Log::append`], and hands the records back once it is answered, so the caller can
    /// reuse their buffers for the next append instead of allocating (and the allocator
    /// zeroing) new ones. Empty with `Acks::None` (the writer drops those) and when the log is
    /// closed.
    pub async fn append_returning(
        &self,
        partition: PartitionId,
        records: Vec<Record>,
        acks: Acks,
    ) -> (Result<Option<Appended>, AppendError>, Vec<Record>) {
        let body = JobBody::Records { partition, records };
        let pending = match self.queue_job(body, acks).await {
            Ok(p) => p,
            Err(e) => return (Err(e), Vec::new()),
        };
        let (result, body) = pending.wait_returning().await;
        let records = match body {
            Some(JobBody::Records { records, .. }) => records,
            _ => Vec::new(),
        };
        (result, records)
    }

    /// Appends metadata operations (always durable before it returns).
    pub async fn append_meta(&self, ops: Vec<MetaOp>) -> Result<(), AppendError> {
        self.submit(JobBody::Meta(ops), Acks::Durable).await?;
        Ok(())
    }

    /// Queues an idempotent producer's atomic write (`AppendBody::Atomic`), durable before the
    /// returned handle resolves. Returns once the write is queued: writes queued one after the
    /// other are checked against the producer state in that order, so a caller that queues a
    /// producer's writes in sequence order (and only then waits) keeps them in order.
    pub async fn queue_atomic(
        &self,
        producer: ProducerId,
        epoch: ProducerEpoch,
        parts: Vec<AtomicPartBody>,
        meta: Vec<MetaOp>,
    ) -> Result<Pending, AppendError> {
        let body = JobBody::Atomic {
            producer,
            epoch,
            parts,
            meta,
        };
        self.queue_job(body, Acks::Durable).await
    }

    /// Gives `name` a producer id and its next epoch (durable before it returns).
    pub async fn init_producer(
        &self,
        name: &[u8],
    ) -> Result<(ProducerId, ProducerEpoch), AppendError> {
        let a = self
            .submit(JobBody::InitProducer(name.to_vec()), Acks::Durable)
            .await?;
        a.and_then(|a| a.producer).ok_or(AppendError::Closed)
    }

    async fn submit(&self, body: JobBody, acks: Acks) -> Result<Option<Appended>, AppendError> {
        self.queue_job(body, acks).await?.wait().await
    }

    async fn queue_job(&self, body: JobBody, acks: Acks) -> Result<Pending, AppendError> {
        let (reply, answer) = if acks == Acks::None {
            (None, None)
        } else {
            let slot = Arc::new(Slot {
                state: Mutex::new(SlotState::Waiting(None)),
            });
            (Some(Reply(Some(slot.clone()))), Some(Answer(slot)))
        };
        self.queue.push(Job { body, acks, reply }).await?;
        Ok(Pending(answer))
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
        self.queue.close();
        let handle = lock(&self.writer).take();
        if let Some(h) = handle
            && h.join().is_err()
        {
            log::error!("storage: the writer thread panicked");
        }
    }
}

/// A queued append's answer (`None` inside for `Acks::None`).
pub struct Pending(Option<Answer>);

impl Pending {
    /// Waits until the append's ack mode is satisfied.
    pub async fn wait(self) -> Result<Option<Appended>, AppendError> {
        // The body is dropped here, on the appender's thread.
        self.wait_returning().await.0
    }

    /// `wait`, with the append's body handed back (`None` for `Acks::None`).
    async fn wait_returning(self) -> (Result<Option<Appended>, AppendError>, Option<JobBody>) {
        match self.0 {
            None => (Ok(None), None),
            Some(answer) => match answer.await {
                Some((result, body)) => (result.map(Some), body),
                None => (Err(AppendError::Closed), None),
            },
        }
    }
}

impl<F: Flash> Drop for Log<F> {
    fn drop(&mut self) {
        self.close();
    }
}

// ---------------------------------------------------------------------------------------------
// The sync thread
// ---------------------------------------------------------------------------------------------

/// An answered-later append: its reply, its result, and its body (handed back with the answer).
type Waiter = (Reply, Appended, JobBody);

/// One group sealed by the writer, for the sync thread to program and sync.
struct GroupJob {
    /// Where and what to program (`None`: nothing new, only earlier programs to sync, e.g. a
    /// group the writer flushed itself before a roll).
    program: Option<(u64, Vec<u8>)>,
    unsynced: Unsynced,
    /// `written` appends, answered after the program.
    written: Vec<Waiter>,
    /// `durable` appends, answered after the sync (by the ack thread).
    durable: Vec<Waiter>,
}

/// One synced group for the ack thread.
struct AckJob {
    unsynced: Unsynced,
    durable: Vec<Waiter>,
}

/// Group buffers the sync thread is done with, for the writer to build groups in again (a
/// fresh multi-MiB buffer costs page faults on every group).
type Spares = Arc<Mutex<Vec<Vec<u8>>>>;

/// Spare buffers kept: one per group in flight is all the writer can use.
const SPARES_MAX: usize = GROUPS_IN_FLIGHT_MAX;

struct Syncer<F: Flash> {
    flash: Arc<F>,
    shared: Arc<RwLock<Shared>>,
    queue: Arc<Queue>,
    spares: Spares,
}

/// If the sync thread ends with groups in flight (a panic: it returns only when the writer has
/// dropped its sender, after every group was done), the ring is poisoned — a program may be
/// unsynced, so nothing may be written again before a reopen (invariants 1 and 5) — and the
/// writer is told, so it never waits for a group that nobody will sync.
struct SyncerGone<'a> {
    queue: &'a Queue,
    shared: &'a RwLock<Shared>,
}

impl Drop for SyncerGone<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.queue.state);
        if s.in_flight > 0 {
            let e = FlashError::Io {
                op: "sync",
                offset: 0,
                source: std::io::Error::other("the sync thread stopped"),
            };
            let cause = poison(self.shared, &e);
            s.in_flight = 0;
            self.queue.in_flight.store(0, Ordering::Release);
            s.failed = Some(cause);
        }
        self.queue.wake_writer.notify_one();
    }
}

impl<F: Flash> Syncer<F> {
    /// Programs and syncs each group in turn — the only thread that touches the medium while
    /// groups are in flight, so at most one program is ever unsynced (invariant 1) — and passes
    /// it on to the ack thread, so that the next group (usually sealed and waiting already) is
    /// programmed the moment a sync returns. Ends when the writer drops its sender.
    fn run(self, rx: mpsc::Receiver<GroupJob>, to_ack: mpsc::SyncSender<AckJob>) {
        let _gone = SyncerGone {
            queue: &self.queue,
            shared: &self.shared,
        };
        for job in rx {
            let GroupJob {
                program,
                unsynced,
                written,
                durable,
            } = job;
            // Nothing is programmed after a failure (invariant 5), not even a group the writer
            // sealed before it heard of it.
            let poisoned = self
                .shared
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .poisoned
                .clone();
            if let Some(cause) = poisoned {
                self.queue.group_done(Err(cause.clone()));
                fail_waiters(written.into_iter().chain(durable), &cause, false);
                continue;
            }
            if let Some((at, bytes)) = program {
                let programmed = self.guarded("program", || self.flash.program(at, &bytes));
                let len = bytes.len();
                self.recycle(bytes);
                if programmed.is_ok() {
                    count_program(&self.shared, len);
                }
                if let Err(e) = programmed {
                    let cause = poison(&self.shared, &e);
                    self.queue.group_done(Err(cause.clone()));
                    fail_waiters(written.into_iter().chain(durable), &cause, false);
                    continue;
                }
            }
            for (reply, appended, body) in written {
                reply.answer(Ok(appended), body);
            }
            match self.guarded("sync", || self.flash.sync()) {
                Ok(()) => {
                    // Passed on first, then counted done: the groups the ack thread holds count
                    // as in flight until it has them, so their records stay bounded (this send
                    // waits only while it lags two groups behind).
                    if let Err(mpsc::SendError(job)) = to_ack.send(AckJob { unsynced, durable }) {
                        // The ack thread is gone (it panicked).
                        log::error!("storage: the ack thread stopped");
                        drop(job); // its replies answer `Closed`
                    }
                    // The medium is free: the next group may be handed over while this one is
                    // published and answered.
                    self.queue.group_done(Ok(()));
                }
                Err(e) => {
                    let cause = poison(&self.shared, &e);
                    self.queue.group_done(Err(cause.clone()));
                    fail_waiters(durable.into_iter(), &cause, true);
                }
            }
        }
    }

    /// Runs one call of the flash driver; a panic in it becomes an I/O error of that call, so
    /// that it poisons the ring like any failed program or sync and this thread goes on
    /// answering every group handed over (`Poisoned`) instead of unwinding with them: the
    /// appends of a group still in the channel would otherwise be dropped unanswered (`Closed`),
    /// and the ones the writer hands over meanwhile would never see the poison.
    fn guarded(
        &self,
        op: &'static str,
        call: impl FnOnce() -> Result<(), FlashError>,
    ) -> Result<(), FlashError> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(call)).unwrap_or_else(|_| {
            Err(FlashError::Io {
                op,
                offset: 0,
                source: std::io::Error::other("the flash driver panicked"),
            })
        })
    }

    fn recycle(&self, bytes: Vec<u8>) {
        let mut spares = lock(&self.spares);
        if spares.len() < SPARES_MAX {
            spares.push(bytes);
        }
    }
}

/// Answers waiters after a failure: `SyncFailed` for the appends of the sync that failed,
/// `Poisoned` for the rest.
fn fail_waiters(waiters: impl Iterator<Item = Waiter>, cause: &str, sync_failed: bool) {
    for (reply, _, body) in waiters {
        let cause = cause.to_string();
        let e = if sync_failed {
            AppendError::SyncFailed { cause }
        } else {
            AppendError::Poisoned { cause }
        };
        reply.answer(Err(e), body);
    }
}

/// Publishes synced groups to readers and answers their `durable` appends, in sync order
/// (the channel is FIFO and holds at most one group, so RAM stays bounded).
fn ack_loop(
    rx: mpsc::Receiver<AckJob>,
    shared: &RwLock<Shared>,
    published: &event_listener::Event,
    interval_bytes: u64,
) {
    for job in rx {
        publish(shared, job.unsynced, interval_bytes);
        published.notify(usize::MAX);
        for (reply, appended, body) in job.durable {
            reply.answer(Ok(appended), body);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The writer thread
// ---------------------------------------------------------------------------------------------

fn answer(reply: Option<Reply>, result: Result<Appended, AppendError>, body: JobBody) {
    match reply {
        Some(r) => r.answer(result, body),
        None => {
            if let Err(e) = result {
                log::debug!("storage: an acks=none append failed: {}", error_chain(&e));
            }
        }
    }
}

/// Answers every job with `Poisoned { cause }`.
fn fail_all(jobs: impl Iterator<Item = Job>, cause: &str) {
    for j in jobs {
        let e = AppendError::Poisoned {
            cause: cause.to_string(),
        };
        answer(j.reply, Err(e), j.body);
    }
}

/// Appends placed per `prepare_group` call: the writer checks between chunks whether the sync
/// thread can take a group (1 KiB records: ~128 KiB, some tens of microseconds of encoding).
const PREPARE_CHUNK: usize = 128;

/// The writer's side of the hand-over to the sync thread.
struct Handover<'a> {
    queue: &'a Queue,
    to_sync: mpsc::SyncSender<GroupJob>,
    spares: Spares,
    /// A new group buffer's capacity (`group_bytes_max`): it never grows past it, so the RAM
    /// bound holds and the first groups do not reallocate.
    buffer_bytes: usize,
}

impl Handover<'_> {
    /// Seals the group being built and hands it to the sync thread, with its appends' replies.
    /// The caller checked that the sync thread can take it (so the send does not block: only the
    /// writer adds groups, and the sync thread holds at most one besides the channel's).
    fn hand_over<F: Flash>(&self, ring: &mut Ring<F>, placed: &mut Vec<(Job, Appended)>) {
        let spare = lock(&self.spares)
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.buffer_bytes));
        let Sealed { program, unsynced } = match ring.seal_group(spare) {
            Ok(sealed) => sealed,
            Err(e) => {
                let cause = error_chain(&e);
                ring.discard_group();
                fail_all(placed.drain(..).map(|(j, _)| j), &cause);
                return;
            }
        };
        let mut written = Vec::new();
        let mut durable = Vec::with_capacity(placed.len());
        for (j, a) in placed.drain(..) {
            match (j.acks, j.reply) {
                (Acks::Durable, Some(reply)) => durable.push((reply, a, j.body)),
                (Acks::Written, Some(reply)) => written.push((reply, a, j.body)),
                (_, reply) => answer(reply, Ok(a), j.body),
            }
        }
        self.queue.group_handed_over();
        let job = GroupJob {
            program,
            unsynced,
            written,
            durable,
        };
        if let Err(mpsc::SendError(job)) = self.to_sync.send(job) {
            // The sync thread is gone (it panicked): nothing can be synced any more, so the
            // ring is poisoned (nothing else is programmed) and the group's appends fail.
            let e = FlashError::Io {
                op: "sync",
                offset: 0,
                source: std::io::Error::other("the sync thread stopped"),
            };
            let cause = poison(&ring.shared(), &e);
            self.queue.group_done(Err(cause.clone()));
            // Never programmed: `Poisoned`, not "may or may not survive".
            fail_waiters(job.written.into_iter().chain(job.durable), &cause, false);
        }
    }
}

fn writer_loop<F: Flash>(mut ring: Ring<F>, handover: Handover<'_>, sync_thread: JoinHandle<()>) {
    let queue = handover.queue;
    let gather_max = ring.config().append_queue_max as usize;
    // Taken from the queue, not placed yet.
    let mut local: VecDeque<Job> = VecDeque::new();
    // Placed in the group being built (`Ring::prepare_group` accepted them), in order.
    let mut placed: Vec<(Job, Appended)> = Vec::new();
    // The group being built cannot take the next append in `local`.
    let mut full = false;
    loop {
        // 1. Hand the group over as soon as the sync thread can take it, so that the medium
        //    never waits for the writer; the group is whatever arrived since the last one.
        let group = !placed.is_empty() || ring.has_prepared();
        if group && queue.can_hand_over() {
            handover.hand_over(&mut ring, &mut placed);
            full = false;
            continue;
        }
        // 2. Otherwise get appends to prepare (sleeping only when there is nothing to do), or,
        //    if the group is full, wait until it can be handed over.
        if full {
            queue.wait_hand_over(false);
            continue;
        }
        if local.is_empty() {
            if group {
                queue.wait_hand_over(true);
                queue.take(&mut local, gather_max, false);
                continue;
            }
            if !queue.take(&mut local, gather_max, true) {
                break; // closed and drained
            }
        }
        // 3. Place them in the group being built: RAM only, while the sync thread programs and
        //    syncs earlier groups. In chunks, so that the moment it can take this group is
        //    noticed soon: the medium must not wait.
        while !local.is_empty() {
            let n = local.len().min(PREPARE_CHUNK);
            let bodies: Vec<AppendBody<'_>> =
                local.iter().take(n).map(|j| j.body.as_append()).collect();
            let outcome = ring.prepare_group(&bodies, &mut || {
                // A roll writes: every group handed over must be durable first.
                queue
                    .wait_idle()
                    .map_err(|cause| AppendError::Poisoned { cause })
            });
            drop(bodies);
            match outcome {
                Ok(GroupResult { consumed, results }) => {
                    for (j, r) in local.drain(..consumed).zip(results) {
                        match r {
                            Ok(a) => placed.push((j, a)),
                            Err(e) => answer(j.reply, Err(e), j.body),
                        }
                    }
                    if consumed < n {
                        full = true;
                        break;
                    }
                    if queue.can_hand_over() {
                        break;
                    }
                }
                Err(e) => {
                    let cause = error_chain(&e);
                    ring.discard_group();
                    fail_all(placed.drain(..).map(|(j, _)| j), &cause);
                    fail_all(local.drain(..), &cause);
                }
            }
        }
    }
    // Closed: let the groups in flight finish, stop the sync thread, then a final sync of our
    // own.
    let _ = queue.wait_idle();
    drop(handover);
    if sync_thread.join().is_err() {
        log::error!("storage: the sync thread panicked");
    }
    if let Err(e) = ring.sync() {
        log::error!("storage: final sync failed: {}", error_chain(&e));
    }
}
