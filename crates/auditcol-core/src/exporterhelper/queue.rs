//! Sending-queue storage: where batches wait between `consume` and the
//! sending workers.
//!
//! The helper talks to storage only through [`QueueStorage`], so a
//! persistent queue can replace [`MemoryQueue`] without any exporter
//! noticing.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::LogBatch;

/// Identifies a batch inside one queue until it is acknowledged.
pub type QueueId = u64;

/// What the pusher attached to a batch, handed back with it to the worker
/// (the helper's key for the caller waiting on the outcome). Kept in memory
/// only: a batch restored from disk after a restart has none.
pub type Ticket = u64;

/// A batch taken from the queue by a worker.
#[derive(Debug)]
pub struct QueuedBatch {
    /// Pass to [`QueueStorage::ack`] once the batch is done with.
    pub id: QueueId,
    /// The batch.
    pub batch: LogBatch,
    /// The pusher's ticket, if any.
    pub ticket: Option<Ticket>,
}

/// Why [`QueueStorage::push`] refused a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// No room now; room frees up as batches are acknowledged.
    #[error("the sending queue is full ({used} of {capacity} used, this batch needs {size})")]
    Full {
        size: usize,
        used: usize,
        capacity: usize,
    },
    /// The batch alone is larger than the whole queue: it can never fit.
    #[error("the batch ({size}) is larger than the whole sending queue ({capacity})")]
    TooLarge { size: usize, capacity: usize },
    /// A persistent queue has no room left on disk (`max_size_mib`).
    #[error(
        "the persistent sending queue is full on disk ({used} of {max} bytes used, this batch needs {size})"
    )]
    DiskFull { size: u64, used: u64, max: u64 },
    /// The storage could not keep the batch (a write or sync failed).
    #[error("{0}")]
    Storage(String),
    /// The queue was closed (shutdown): nothing more is accepted.
    #[error("the sending queue is closed")]
    Closed,
}

/// Storage behind the sending queue.
///
/// The contract:
/// - [`push`](Self::push) is the durability point: once it returns `Ok`,
///   the batch survives whatever the storage promises to survive (a
///   persistent storage writes and fsyncs before returning). A queue that
///   acknowledges its callers before export must be durable. A push that
///   is abandoned midway (its caller went away) either leaves the batch
///   queued or not at all.
/// - [`pop`](Self::pop) hands a batch to one worker; the batch still counts
///   against the capacity until [`ack`](Self::ack), so memory stays bounded
///   by `queue_size` including batches being sent.
/// - `ack` is called once the batch is finished with: exported, or dropped
///   for good (permanent error, retries exhausted). A batch popped but never
///   acknowledged (the process stopped while sending it) is, in a persistent
///   storage, delivered again at the next start.
/// - [`close`](Self::close) stops `push`; `pop` then returns the remaining
///   batches and `None` once empty.
#[async_trait]
pub trait QueueStorage: Send + Sync + 'static {
    /// Stores `batch` of `size` (in the queue's sizer unit) with the
    /// pusher's `ticket`; returns its id.
    async fn push(
        &self,
        batch: LogBatch,
        size: usize,
        ticket: Option<Ticket>,
    ) -> Result<QueueId, PushError>;

    /// Waits for the next batch; `None` once closed and empty.
    async fn pop(&self) -> Option<QueuedBatch>;

    /// The batch `id` is done with: free its room (and its disk space).
    fn ack(&self, id: QueueId);

    /// Refuses further pushes and wakes idle `pop`s so they can end.
    fn close(&self);

    /// Makes every ack so far durable (at shutdown), so that fewer batches
    /// are sent twice after a restart.
    async fn sync(&self) {}

    /// Batches waiting to be popped.
    fn len(&self) -> usize;

    /// True when no batch waits to be popped.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Room in use, in the sizer unit, popped-but-unacknowledged batches included.
    fn size(&self) -> usize;

    /// Total room, in the sizer unit.
    fn capacity(&self) -> usize;
}

/// A bounded in-memory queue. Its content is lost on a crash, which is why
/// the helper acknowledges callers only after export by default.
pub struct MemoryQueue {
    capacity: usize,
    state: Mutex<MemoryState>,
    /// Wakes workers waiting in `pop`.
    available: Notify,
}

#[derive(Default)]
struct MemoryState {
    pending: Pending,
    next_id: QueueId,
}

/// What every storage keeps in memory between push and ack: the batches
/// waiting, the batches being sent, and the room they use.
#[derive(Default)]
pub(crate) struct Pending {
    pub(crate) waiting: VecDeque<(QueuedBatch, usize)>,
    /// Sizes of popped, unacknowledged batches.
    pub(crate) in_flight: HashMap<QueueId, usize>,
    pub(crate) used: usize,
    pub(crate) closed: bool,
}

impl Pending {
    /// Frees the room of batch `id`, once it is done with.
    pub(crate) fn ack(&mut self, id: QueueId) {
        if let Some(size) = self.in_flight.remove(&id) {
            self.used -= size;
        }
    }
}

/// Waits for the next batch in the [`Pending`] that `pending` reaches
/// under `lock`; `None` once closed and empty. `available` is told of
/// every push and of the close.
pub(crate) async fn pop_pending<S>(
    lock: &Mutex<S>,
    available: &Notify,
    pending: impl Fn(&mut S) -> &mut Pending,
) -> Option<QueuedBatch> {
    loop {
        // Register interest before looking, so a push or close between
        // the look and the wait is not missed.
        let notified = available.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            // A panic while holding this lock leaves the state consistent
            // (every update is a single step): a poisoned lock is usable.
            let mut guard = lock.lock().unwrap_or_else(|e| e.into_inner());
            let state = pending(&mut guard);
            if let Some((item, size)) = state.waiting.pop_front() {
                state.in_flight.insert(item.id, size);
                let more = !state.waiting.is_empty();
                drop(guard);
                if more {
                    // One notify_one may have stood for several pushes:
                    // pass the wake-up on to another worker.
                    available.notify_one();
                }
                return Some(item);
            }
            if state.closed {
                return None;
            }
        }
        notified.await;
    }
}

impl MemoryQueue {
    /// An empty queue holding at most `capacity` (in the sizer's unit).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            state: Mutex::new(MemoryState::default()),
            available: Notify::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, MemoryState> {
        // A panic while holding this lock leaves the state consistent (every
        // update is a single step), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl QueueStorage for MemoryQueue {
    async fn push(
        &self,
        batch: LogBatch,
        size: usize,
        ticket: Option<Ticket>,
    ) -> Result<QueueId, PushError> {
        let mut state = self.state();
        if state.pending.closed {
            return Err(PushError::Closed);
        }
        if size > self.capacity {
            return Err(PushError::TooLarge {
                size,
                capacity: self.capacity,
            });
        }
        if state.pending.used + size > self.capacity {
            return Err(PushError::Full {
                size,
                used: state.pending.used,
                capacity: self.capacity,
            });
        }
        let id = state.next_id;
        state.next_id += 1;
        state.pending.used += size;
        state
            .pending
            .waiting
            .push_back((QueuedBatch { id, batch, ticket }, size));
        drop(state);
        self.available.notify_one();
        Ok(id)
    }

    async fn pop(&self) -> Option<QueuedBatch> {
        pop_pending(&self.state, &self.available, |s| &mut s.pending).await
    }

    fn ack(&self, id: QueueId) {
        self.state().pending.ack(id);
    }

    fn close(&self) {
        self.state().pending.closed = true;
        self.available.notify_waiters();
    }

    fn len(&self) -> usize {
        self.state().pending.waiting.len()
    }

    fn size(&self) -> usize {
        self.state().pending.used
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_come_out_in_push_order() {
        let q = MemoryQueue::new(10);
        let a = q.push(LogBatch::sample_audit(1), 1, None).await.unwrap();
        let b = q.push(LogBatch::sample_audit(2), 1, None).await.unwrap();
        assert_eq!(q.pop().await.unwrap().id, a);
        assert_eq!(q.pop().await.unwrap().batch.len(), 2);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn popped_batches_hold_their_room_until_acknowledged() {
        let q = MemoryQueue::new(3);
        let id = q.push(LogBatch::sample_audit(3), 3, None).await.unwrap();
        let popped = q.pop().await.unwrap();
        assert_eq!(popped.id, id);
        assert!(matches!(
            q.push(LogBatch::sample_audit(1), 1, None).await,
            Err(PushError::Full { used: 3, .. })
        ));
        q.ack(id);
        assert_eq!(q.size(), 0);
        q.push(LogBatch::sample_audit(1), 1, None).await.unwrap();
    }

    #[tokio::test]
    async fn a_batch_larger_than_the_queue_can_never_fit() {
        let q = MemoryQueue::new(3);
        assert_eq!(
            q.push(LogBatch::sample_audit(4), 4, None).await,
            Err(PushError::TooLarge {
                size: 4,
                capacity: 3
            })
        );
    }

    #[tokio::test]
    async fn close_refuses_pushes_and_ends_pop_once_empty() {
        let q = std::sync::Arc::new(MemoryQueue::new(10));
        q.push(LogBatch::sample_audit(1), 1, None).await.unwrap();
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move {
                let first = q.pop().await.is_some();
                let second = q.pop().await.is_none();
                (first, second)
            })
        };
        q.close();
        assert_eq!(
            q.push(LogBatch::sample_audit(1), 1, None).await,
            Err(PushError::Closed)
        );
        assert_eq!(waiter.await.unwrap(), (true, true));
    }

    #[tokio::test]
    async fn a_waiting_pop_wakes_on_push() {
        let q = std::sync::Arc::new(MemoryQueue::new(10));
        let waiter = {
            let q = q.clone();
            tokio::spawn(async move { q.pop().await.map(|b| b.batch.len()) })
        };
        tokio::task::yield_now().await;
        q.push(LogBatch::sample_audit(5), 1, None).await.unwrap();
        assert_eq!(waiter.await.unwrap(), Some(5));
    }
}
