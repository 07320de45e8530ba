//! Group commit: the async front of the ring. Appends from many tasks go through one bounded
//! queue to a single writer thread, which gathers everything queued into one group (one
//! `program`); a sync thread syncs it, and an ack thread then publishes it to readers and
//! answers its `acks = durable` appends. `written` appends are answered after the program,
//! `none` appends are not answered at all.
//!
//! The pipeline (three threads, one medium):
//!
//! ```text
//! writer: | prepare N (encode, CRC) | program N | prepare N+1 ..... | program N+1 | ...
//! sync:                                        | sync N |                        | sync N+1
//! ack:                                                  | publish N, answer N |
//! ```
//!
//! Invariants:
//! - **At most one unsynced program** (ring invariant 1, which recovery's torn-tail rule
//!   relies on, docs/FORMAT.md section 6): the writer programs group N+1 only after the sync
//!   of group N returned `Ok`. While that sync runs, the writer only works in RAM
//!   (`Ring::prepare_group` encodes and places appends without touching the medium); a
//!   segment roll, the one step of preparing that writes, first waits for the sync too.
//! - **Syncs are published in order**: one sync runs at a time, on the sync thread; after it
//!   returned `Ok` the group goes (FIFO) to the ack thread, which publishes it to readers and
//!   then answers its `durable` appends. The sync thread does nothing else, so the next sync
//!   starts as soon as the next group is programmed.
//! - **A failed sync poisons the ring**: its appends get `SyncFailed`, everything prepared after
//!   it gets `Poisoned` and is never programmed, and so does every later append.
//! - **Bounded**: at most `append_queue_max` appends are queued, at most as many more are held
//!   by the writer, and the group being built and the one being synced are each at most
//!   `group_bytes_max` bytes.
//! - **Appenders free their own allocations**: an append's records travel with its answer back
//!   to the appending task, which drops them, so the writer never frees client memory (it did
//!   for a third of its time).

use super::error::AppendError;
use super::flash::{Flash, FlashError};
use super::format::{MetaOp, Record};
use super::index::Shared;
use super::reader::Reader;
use super::ring::{
    AppendBody, Appended, AtomicPartBody, GroupResult, Ring, Unsynced, error_chain, poison,
    publish, release,
};
use super::types::{Offset, PartitionId, ProducerEpoch, ProducerId};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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
    /// `QueueState::sync` is `Running` (a copy the writer polls without the lock; it is only
    /// a hint to stop preparing: decisions that need the truth take the lock).
    sync_running: AtomicBool,
}

struct QueueState {
    jobs: VecDeque<Job>,
    closed: bool,
    /// While the writer sleeps on `wake_writer`: a push notifies it once the queue holds this
    /// many jobs (1 when it is idle; a chunk while a sync runs, whose end wakes it anyway, so
    /// that it is not woken once per append). `usize::MAX` while it is awake.
    wake_at: usize,
    sync: SyncState,
}

/// The sync thread's progress, as the writer sees it.
enum SyncState {
    /// No sync running; the last one (if any) returned `Ok`, or its failure was already seen.
    Idle,
    Running,
    /// The last sync failed (the ring is poisoned): the cause.
    Failed(String),
}

impl Queue {
    fn new(capacity: usize) -> Queue {
        Queue {
            state: Mutex::new(QueueState {
                jobs: VecDeque::new(),
                closed: false,
                wake_at: usize::MAX,
                sync: SyncState::Idle,
            }),
            wake_writer: Condvar::new(),
            room: event_listener::Event::new(),
            capacity,
            sync_running: AtomicBool::new(false),
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

    /// Whether the writer sleeps (then `set_sync` and `close` must notify it).
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

    fn sync_running(&self) -> bool {
        self.sync_running.load(Ordering::Acquire)
    }

    /// Waits until a chunk of jobs is queued (or all the queue can hold), the running sync
    /// ended, or the queue is closed.
    fn wait_for_jobs_or_sync(&self) {
        let mut s = lock(&self.state);
        let enough = PREPARE_CHUNK.min(self.capacity);
        while s.jobs.len() < enough && !s.closed && matches!(s.sync, SyncState::Running) {
            s = self.sleep(s, enough);
        }
    }

    /// Waits until no sync runs; `Err` with the cause if the last one failed (reported once).
    fn wait_sync(&self) -> Result<(), String> {
        let mut s = lock(&self.state);
        while matches!(s.sync, SyncState::Running) {
            s = self.sleep(s, usize::MAX);
        }
        match std::mem::replace(&mut s.sync, SyncState::Idle) {
            SyncState::Failed(cause) => Err(cause),
            _ => Ok(()),
        }
    }

    fn set_sync(&self, state: SyncState) {
        let mut s = lock(&self.state);
        self.sync_running
            .store(matches!(state, SyncState::Running), Ordering::Release);
        s.sync = state;
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
    /// Starts the writer and sync threads on an opened ring.
    pub fn start(ring: Ring<F>) -> std::io::Result<Log<F>> {
        let queue = Arc::new(Queue::new(ring.config().append_queue_max as usize));
        let reader = ring.reader();
        let shared = ring.shared();
        let published = Arc::new(event_listener::Event::new());
        let (tx, rx) = mpsc::sync_channel::<SyncJob>(1);
        let (to_ack, acks) = mpsc::sync_channel::<SyncJob>(2);
        let interval_bytes = ring.config().index_interval_bytes;
        let (s, p) = (shared.clone(), published.clone());
        let ack_thread = std::thread::Builder::new()
            .name("outpost-ack".into())
            .spawn(move || ack_loop(acks, &s, &p, interval_bytes))?;
        let syncer = Syncer {
            flash: ring.flash_handle(),
            shared: shared.clone(),
            queue: queue.clone(),
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
        let writer = std::thread::Builder::new()
            .name("outpost-writer".into())
            .spawn(move || writer_loop(ring, &q, tx, sync_thread))?;
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
        match self.0 {
            None => Ok(None),
            Some(answer) => match answer.await {
                // The body is dropped here, on the appender's thread.
                Some((result, _body)) => result.map(Some),
                None => Err(AppendError::Closed),
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

/// One programmed group handed to the sync thread.
struct SyncJob {
    unsynced: Unsynced,
    /// Its `durable` appends, answered after the sync.
    waiters: Vec<(Reply, Appended, JobBody)>,
}

struct Syncer<F: Flash> {
    flash: Arc<F>,
    shared: Arc<RwLock<Shared>>,
    queue: Arc<Queue>,
}

impl<F: Flash> Syncer<F> {
    /// Syncs each job in turn (one at a time: the writer waits for the outcome before it
    /// programs again) and passes it on to the ack thread, so that the next sync can start as
    /// soon as the writer programmed the next group. Ends when the writer drops its sender.
    fn run(self, rx: mpsc::Receiver<SyncJob>, to_ack: mpsc::SyncSender<SyncJob>) {
        for job in rx {
            match self.flash.sync() {
                Ok(()) => {
                    // The medium is free: let the writer program the next group while this
                    // one is published and answered.
                    self.queue.set_sync(SyncState::Idle);
                    if let Err(mpsc::SendError(job)) = to_ack.send(job) {
                        // The ack thread is gone (it panicked): answer here.
                        log::error!("storage: the ack thread stopped");
                        drop(job); // its replies answer `Closed`
                    }
                }
                Err(e) => {
                    // Poisoned before the writer hears of it, so nothing it prepared since is
                    // ever programmed.
                    let cause = poison(&self.shared, &e);
                    self.queue.set_sync(SyncState::Failed(cause.clone()));
                    for (reply, _, body) in job.waiters {
                        let cause = cause.clone();
                        reply.answer(Err(AppendError::SyncFailed { cause }), body);
                    }
                }
            }
        }
    }
}

/// Publishes synced groups to readers and answers their `durable` appends, in sync order
/// (the channel is FIFO and holds at most two groups, so RAM stays bounded).
fn ack_loop(
    rx: mpsc::Receiver<SyncJob>,
    shared: &RwLock<Shared>,
    published: &event_listener::Event,
    interval_bytes: u64,
) {
    for job in rx {
        publish(shared, job.unsynced, interval_bytes);
        published.notify(usize::MAX);
        for (reply, appended, body) in job.waiters {
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

/// Appends placed per `prepare_group` call: the writer checks between chunks whether the
/// running sync ended (1 KiB records: ~128 KiB, some tens of microseconds of encoding).
const PREPARE_CHUNK: usize = 128;

fn writer_loop<F: Flash>(
    mut ring: Ring<F>,
    queue: &Queue,
    to_sync: mpsc::SyncSender<SyncJob>,
    sync_thread: JoinHandle<()>,
) {
    let gather_max = ring.config().append_queue_max as usize;
    // Taken from the queue, not placed yet.
    let mut local: VecDeque<Job> = VecDeque::new();
    // Placed in the group being built (`Ring::prepare_group` accepted them), in order.
    let mut placed: Vec<(Job, Appended)> = Vec::new();
    loop {
        let group = !placed.is_empty() || ring.has_prepared();
        // 1. Take what is queued, unless a group is ready and the medium free: then program it
        //    first (the medium is the bottleneck). Sleep only when there is nothing to do.
        let program_now = group && !queue.sync_running();
        let idle = local.is_empty() && !group;
        if !program_now && !queue.take(&mut local, gather_max, idle) {
            break; // closed and drained
        }
        // 2. Place it in the group being built: RAM only, while the previous sync runs. In
        //    chunks, so that the end of that sync is noticed soon: the medium must not wait.
        let mut failed = false;
        while !program_now && !local.is_empty() {
            let n = local.len().min(PREPARE_CHUNK);
            let bodies: Vec<AppendBody<'_>> =
                local.iter().take(n).map(|j| j.body.as_append()).collect();
            let outcome = ring.prepare_group(&bodies, &mut || {
                // A roll writes: the previous group must be durable first.
                queue
                    .wait_sync()
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
                    if consumed < n || !queue.sync_running() {
                        break; // the group is full, or the medium is free
                    }
                }
                Err(e) => {
                    let cause = error_chain(&e);
                    ring.discard_group();
                    fail_all(placed.drain(..).map(|(j, _)| j), &cause);
                    fail_all(local.drain(..), &cause);
                    failed = true;
                }
            }
        }
        if failed || (placed.is_empty() && !ring.has_prepared()) {
            continue;
        }
        // 3. Program when the medium is free. While the previous sync still runs, let more
        //    appends join this group, unless it is full (appends are left over: step 2 leaves
        //    some only when the group is full or no sync runs).
        if local.is_empty() && queue.sync_running() {
            queue.wait_for_jobs_or_sync();
            continue;
        }
        if let Err(cause) = queue.wait_sync() {
            ring.discard_group();
            fail_all(placed.drain(..).map(|(j, _)| j), &cause);
            continue;
        }
        if let Err(e) = ring.program_group() {
            let cause = error_chain(&e);
            fail_all(placed.drain(..).map(|(j, _)| j), &cause);
            continue;
        }
        let mut waiters = Vec::new();
        for (j, a) in placed.drain(..) {
            match (j.acks, j.reply) {
                (Acks::Durable, Some(reply)) => waiters.push((reply, a, j.body)),
                (_, reply) => answer(reply, Ok(a), j.body),
            }
        }
        // 4. Hand the sync over; the writer goes on preparing the next group meanwhile.
        queue.set_sync(SyncState::Running);
        let job = SyncJob {
            unsynced: ring.take_unsynced(),
            waiters,
        };
        if let Err(mpsc::SendError(job)) = to_sync.send(job) {
            // The sync thread is gone (it panicked): nothing can be synced any more, so the
            // ring is poisoned (nothing else is programmed) and the group's appends fail.
            let e = FlashError::Io {
                op: "sync",
                offset: 0,
                source: std::io::Error::other("the sync thread stopped"),
            };
            let cause = poison(&ring.shared(), &e);
            queue.set_sync(SyncState::Failed(cause.clone()));
            for (reply, _, body) in job.waiters {
                let cause = cause.clone();
                reply.answer(Err(AppendError::SyncFailed { cause }), body);
            }
        }
    }
    // Closed: let the last sync finish, stop the sync thread, then a final sync of our own.
    let _ = queue.wait_sync();
    drop(to_sync);
    if sync_thread.join().is_err() {
        log::error!("storage: the sync thread panicked");
    }
    if let Err(e) = ring.sync() {
        log::error!("storage: final sync failed: {}", error_chain(&e));
    }
}
