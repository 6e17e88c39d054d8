//! The persistent sending queue (`sending_queue.storage: <directory>`).
//!
//! Each exporter keeps its batches in its own namespace under the
//! directory: an append-only log split in segment files
//! (`segment-<n>.log`), and a `LOCK` file held while it runs, so a second
//! collector on the same directory fails at start instead of corrupting it.
//!
//! A record is `[len u32][crc32 u32][kind u8][id u64][payload]` (little
//! endian; `len` and the CRC cover kind, id and payload). A batch record
//! holds the batch's OTLP protobuf encoding; an ack record says that batch
//! is done with. One writer thread appends: it takes every record waiting,
//! writes them with one `write` and covers them with one `fdatasync` (group
//! commit), and only then are their pushes answered. Acks are written
//! without a sync of their own: a lost ack means a batch sent twice, never
//! a batch lost. A segment whose batches are all acknowledged is deleted.
//!
//! At open, the segments are read in order. A record whose length or CRC
//! does not check out (a torn write at a crash, a damaged disk) ends its
//! segment: it is reported, the segment is cut there, and every record
//! before it is kept. Batches without an ack are queued again, in order.
//! After a failed write the segment is cut back to its length before the
//! write, or — if even that fails — abandoned for a new one, so that no
//! good record ever follows a torn one.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use async_trait::async_trait;
use tokio::sync::{Notify, oneshot};

use super::queue::{Pending, PushError, QueueId, QueueStorage, QueuedBatch, Ticket, pop_pending};
use crate::LogBatch;

/// A segment is closed for appends once it is this large (or a quarter of
/// `max_size_mib`, if smaller: acknowledged data in the open segment stays
/// on disk until it is closed, and must not fill the queue).
const SEGMENT_BYTES: u64 = 16 << 20;

const HEADER: usize = 4 + 4;
const KIND_BATCH: u8 = 1;
const KIND_ACK: u8 = 2;
/// kind + id.
const BODY_PREFIX: usize = 1 + 8;

/// Why a persistent queue could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process holds the namespace's lock.
    #[error(
        "{0} is in use by another process (its LOCK file is held): two collectors cannot share one exporter's persistent queue; give each its own `sending_queue.storage` or stop the other"
    )]
    Locked(PathBuf),
    /// The file system refused.
    #[error("cannot open the persistent queue in {path}: {error}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the OS said.
        error: io::Error,
    },
}

/// What opening found on disk.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Batches queued again (written but not acknowledged before).
    pub batches: usize,
    /// Their records.
    pub records: usize,
    /// Damaged places (torn or corrupt records), each a segment cut short.
    pub damaged: Vec<String>,
}

/// A bounded queue whose batches survive a crash once pushed.
pub struct PersistentQueue {
    shared: Arc<Shared>,
    /// To the writer thread; taken at drop so that the thread ends.
    writer: Mutex<Option<mpsc::Sender<Op>>>,
    /// Joined at drop: the lock is released only once the thread is done.
    thread: Option<std::thread::JoinHandle<()>>,
    capacity: usize,
    max_bytes: u64,
    recovery: Recovery,
}

struct Shared {
    dir: PathBuf,
    state: Mutex<State>,
    available: Notify,
    /// Bytes of the segment files on disk.
    disk_bytes: AtomicU64,
    fsyncs: AtomicU64,
    /// Held for the queue's life; the OS lock goes with it.
    _lock: File,
}

#[derive(Default)]
struct State {
    pending: Pending,
    /// Bytes of appends not yet written.
    reserved_bytes: u64,
    next_id: QueueId,
}

enum Op {
    Append {
        id: QueueId,
        record: Vec<u8>,
        batch: LogBatch,
        ticket: Option<Ticket>,
        size: usize,
        done: oneshot::Sender<Result<(), String>>,
    },
    Ack(QueueId),
    Sync(oneshot::Sender<()>),
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The directory name of a component's namespace: its id with `/` as `~`
/// and anything outside `[A-Za-z0-9._-]` as `%XX`.
pub fn namespace(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'_' | b'-' => out.push(b as char),
            b'/' => out.push('~'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn io_error(path: &Path) -> impl Fn(io::Error) -> OpenError + '_ {
    move |error| OpenError::Io {
        path: path.to_owned(),
        error,
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("segment-{number:020}.log"))
}

fn record(kind: u8, id: QueueId, payload: &[u8]) -> Vec<u8> {
    let body_len = BODY_PREFIX + payload.len();
    let mut out = Vec::with_capacity(HEADER + body_len);
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(kind);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(payload);
    let crc = crc32fast::hash(&out[HEADER..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// One record read back.
struct ReadRecord<'a> {
    kind: u8,
    id: QueueId,
    payload: &'a [u8],
}

/// Reads the records of a segment; stops at the first one that does not
/// check out and returns where it starts.
fn read_records(bytes: &[u8]) -> (Vec<ReadRecord<'_>>, Option<(usize, &'static str)>) {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < HEADER {
            return (records, Some((at, "a record header cut short")));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        let crc = u32::from_le_bytes(rest[4..8].try_into().unwrap_or_default());
        if len < BODY_PREFIX || rest.len() - HEADER < len {
            return (records, Some((at, "a record cut short")));
        }
        let body = &rest[HEADER..HEADER + len];
        if crc32fast::hash(body) != crc {
            return (
                records,
                Some((at, "a record whose checksum does not match")),
            );
        }
        let kind = body[0];
        if kind != KIND_BATCH && kind != KIND_ACK {
            return (records, Some((at, "a record of unknown kind")));
        }
        let id = u64::from_le_bytes(body[1..9].try_into().unwrap_or_default());
        records.push(ReadRecord {
            kind,
            id,
            payload: &body[BODY_PREFIX..],
        });
        at += HEADER + len;
    }
    (records, None)
}

impl PersistentQueue {
    /// Opens (creating if needed) the namespace `dir`: takes its lock, reads
    /// back what was not acknowledged, and starts the writer. `size_of`
    /// measures restored batches in the queue's sizer unit. Blocking I/O.
    pub fn open(
        dir: &Path,
        capacity: usize,
        max_bytes: u64,
        size_of: impl Fn(&LogBatch) -> usize,
    ) -> Result<Self, OpenError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io_error(&lock_path))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(OpenError::Locked(dir.into())),
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(OpenError::Io {
                    path: lock_path,
                    error,
                });
            }
        }

        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(io_error(dir))? {
            let entry = entry.map_err(io_error(dir))?;
            let name = entry.file_name();
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_prefix("segment-"))
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            numbers.push(number);
        }
        numbers.sort_unstable();

        let mut recovery = Recovery::default();
        // Batch id → (segment, batch); removed when its ack is read.
        let mut batches: BTreeMap<QueueId, (u64, LogBatch)> = BTreeMap::new();
        let mut sizes = BTreeMap::new();
        let mut max_id = None;
        for &number in &numbers {
            let path = segment_path(dir, number);
            let bytes = std::fs::read(&path).map_err(io_error(&path))?;
            let (records, damage) = read_records(&bytes);
            for r in records {
                max_id = max_id.max(Some(r.id));
                match r.kind {
                    KIND_BATCH => {
                        match LogBatch::decode_protobuf(bytes::Bytes::copy_from_slice(r.payload)) {
                            Ok(decoded) => {
                                batches.insert(r.id, (number, decoded.batch));
                            }
                            Err(e) => recovery.damaged.push(format!(
                                "{}: batch {} does not decode ({e}); it is skipped",
                                path.display(),
                                r.id
                            )),
                        }
                    }
                    _ => {
                        batches.remove(&r.id);
                    }
                }
            }
            let mut len = bytes.len() as u64;
            if let Some((at, what)) = damage {
                recovery.damaged.push(format!(
                    "{} at byte {at} of {}: {what} (a write torn by a crash, or a damaged disk); \
                     the {} bytes from there are dropped, the records before are kept",
                    path.display(),
                    bytes.len(),
                    bytes.len() - at
                ));
                let file = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_error(&path))?;
                file.set_len(at as u64).map_err(io_error(&path))?;
                file.sync_all().map_err(io_error(&path))?;
                len = at as u64;
            }
            sizes.insert(number, len);
        }

        let mut state = State {
            next_id: max_id.map_or(0, |id| id + 1),
            ..State::default()
        };
        let mut live: BTreeMap<u64, usize> = BTreeMap::new();
        let mut location = HashMap::new();
        for (id, (segment, batch)) in batches {
            recovery.batches += 1;
            recovery.records += batch.len();
            *live.entry(segment).or_default() += 1;
            location.insert(id, segment);
            let size = size_of(&batch);
            state.pending.used += size;
            state.pending.waiting.push_back((
                QueuedBatch {
                    id,
                    batch,
                    ticket: None,
                },
                size,
            ));
        }
        // Segments with nothing left to send go now.
        for &number in &numbers {
            if !live.contains_key(&number) {
                let path = segment_path(dir, number);
                std::fs::remove_file(&path).map_err(io_error(&path))?;
                sizes.remove(&number);
            }
        }

        let shared = Arc::new(Shared {
            dir: dir.to_owned(),
            state: Mutex::new(state),
            available: Notify::new(),
            disk_bytes: AtomicU64::new(sizes.values().sum()),
            fsyncs: AtomicU64::new(0),
            _lock: lock,
        });
        let (tx, rx) = mpsc::channel();
        let writer = Writer {
            shared: shared.clone(),
            current: None,
            next_segment: numbers.last().map_or(0, |n| n + 1),
            live,
            location,
            sizes,
            pending_acks: Vec::new(),
            segment_bytes: SEGMENT_BYTES.min(max_bytes / 4).max(1),
        };
        let thread = std::thread::Builder::new()
            .name("auditcol-queue-writer".into())
            .spawn(move || writer.run(rx))
            .map_err(io_error(dir))?;
        Ok(Self {
            shared,
            writer: Mutex::new(Some(tx)),
            thread: Some(thread),
            capacity,
            max_bytes,
            recovery,
        })
    }

    /// What opening found.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The namespace directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Bytes of the segment files on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.shared.disk_bytes.load(Ordering::Relaxed)
    }

    /// `fdatasync`s done so far (one per group of pushes).
    pub fn fsyncs(&self) -> u64 {
        self.shared.fsyncs.load(Ordering::Relaxed)
    }

    fn send(&self, op: Op) -> bool {
        self.writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|w| w.send(op).is_ok())
    }
}

impl Drop for PersistentQueue {
    fn drop(&mut self) {
        // The writer writes what it was given (acks included), then ends.
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl QueueStorage for PersistentQueue {
    async fn push(
        &self,
        batch: LogBatch,
        size: usize,
        ticket: Option<Ticket>,
    ) -> Result<QueueId, PushError> {
        if size > self.capacity {
            return Err(PushError::TooLarge {
                size,
                capacity: self.capacity,
            });
        }
        let mut payload = Vec::with_capacity(batch.encoded_len());
        batch.encode_protobuf_into(&mut payload);
        let bytes = (HEADER + BODY_PREFIX + payload.len()) as u64;
        if bytes > self.max_bytes {
            return Err(PushError::TooLarge {
                size: bytes as usize,
                capacity: self.max_bytes as usize,
            });
        }
        let id = {
            let mut state = self.shared.state();
            if state.pending.closed {
                return Err(PushError::Closed);
            }
            if state.pending.used + size > self.capacity {
                return Err(PushError::Full {
                    size,
                    used: state.pending.used,
                    capacity: self.capacity,
                });
            }
            let on_disk = self.disk_bytes() + state.reserved_bytes;
            if on_disk + bytes > self.max_bytes {
                return Err(PushError::DiskFull {
                    size: bytes,
                    used: on_disk,
                    max: self.max_bytes,
                });
            }
            state.pending.used += size;
            state.reserved_bytes += bytes;
            let id = state.next_id;
            state.next_id += 1;
            id
        };
        let (done, answer) = oneshot::channel();
        let op = Op::Append {
            id,
            record: record(KIND_BATCH, id, &payload),
            batch,
            ticket,
            size,
            done,
        };
        if !self.send(op) {
            let mut state = self.shared.state();
            state.pending.used -= size;
            state.reserved_bytes -= bytes;
            return Err(PushError::Closed);
        }
        // The writer queues the batch once it is on disk, even if this
        // caller has gone away meanwhile.
        match answer.await {
            Ok(Ok(())) => Ok(id),
            Ok(Err(message)) => Err(PushError::Storage(message)),
            Err(_) => Err(PushError::Closed),
        }
    }

    async fn pop(&self) -> Option<QueuedBatch> {
        let shared = &self.shared;
        pop_pending(&shared.state, &shared.available, |s| &mut s.pending).await
    }

    fn ack(&self, id: QueueId) {
        self.shared.state().pending.ack(id);
        self.send(Op::Ack(id));
    }

    fn close(&self) {
        self.shared.state().pending.closed = true;
        self.shared.available.notify_waiters();
    }

    async fn sync(&self) {
        let (done, finished) = oneshot::channel();
        if self.send(Op::Sync(done)) {
            let _ = finished.await;
        }
    }

    fn len(&self) -> usize {
        self.shared.state().pending.waiting.len()
    }

    fn size(&self) -> usize {
        self.shared.state().pending.used
    }

    fn capacity(&self) -> usize {
        self.capacity
    }
}

/// The open segment appends go to.
struct Segment {
    number: u64,
    file: File,
    len: u64,
}

/// The thread that owns the segment files.
struct Writer {
    shared: Arc<Shared>,
    current: Option<Segment>,
    next_segment: u64,
    /// Unacknowledged batches per segment.
    live: BTreeMap<u64, usize>,
    /// The segment of each unacknowledged batch.
    location: HashMap<QueueId, u64>,
    /// Bytes of each segment file.
    sizes: BTreeMap<u64, u64>,
    /// Acks whose records are still to be written.
    pending_acks: Vec<QueueId>,
    /// Where a segment is closed for appends.
    segment_bytes: u64,
}

/// A write failure, logged once per this many (and the first).
const LOG_EVERY: u64 = 100;

impl Writer {
    fn run(mut self, ops: mpsc::Receiver<Op>) {
        let mut failures = 0u64;
        // `recv` fails once the queue is dropped and every op is taken.
        while let Ok(first) = ops.recv() {
            let mut group = vec![first];
            group.extend(ops.try_iter());
            let mut buffer = Vec::new();
            let mut appends = Vec::new();
            let mut syncs = Vec::new();
            let mut acks = std::mem::take(&mut self.pending_acks);
            for op in group {
                match op {
                    Op::Append {
                        id,
                        record,
                        batch,
                        ticket,
                        size,
                        done,
                    } => {
                        buffer.extend_from_slice(&record);
                        appends.push((id, record.len() as u64, batch, ticket, size, done));
                    }
                    Op::Ack(id) => acks.push(id),
                    Op::Sync(done) => syncs.push(done),
                }
            }
            for &id in &acks {
                buffer.extend_from_slice(&record(KIND_ACK, id, &[]));
            }
            let needs_sync = !appends.is_empty() || !syncs.is_empty();
            let result = self.write(&buffer, needs_sync);
            let reserved: u64 = appends.iter().map(|a| a.1).sum();
            match result {
                Ok(segment) => {
                    let mut state = self.shared.state();
                    state.reserved_bytes -= reserved;
                    for (id, _, batch, ticket, size, done) in appends {
                        *self.live.entry(segment).or_default() += 1;
                        self.location.insert(id, segment);
                        state
                            .pending
                            .waiting
                            .push_back((QueuedBatch { id, batch, ticket }, size));
                        let _ = done.send(Ok(()));
                        self.shared.available.notify_one();
                    }
                    drop(state);
                    for id in acks {
                        self.forget(id);
                    }
                }
                Err(e) => {
                    failures += 1;
                    let message = format!(
                        "cannot write to the persistent queue in {}: {e}",
                        self.shared.dir.display()
                    );
                    if failures == 1 || failures.is_multiple_of(LOG_EVERY) {
                        tracing::error!(
                            queue = %self.shared.dir.display(),
                            error = %e,
                            failures,
                            "persistent queue write failed: batches are refused (clients retry) until it succeeds"
                        );
                    }
                    let mut state = self.shared.state();
                    state.reserved_bytes -= reserved;
                    for (_, _, _, _, size, done) in appends {
                        state.pending.used -= size;
                        let _ = done.send(Err(message.clone()));
                    }
                    self.pending_acks = acks;
                }
            }
            for done in syncs {
                let _ = done.send(());
            }
        }
    }

    /// Appends `buffer` to the current segment (opening one if needed) and,
    /// with `sync`, makes it durable. Returns the segment written to.
    fn write(&mut self, buffer: &[u8], sync: bool) -> io::Result<u64> {
        if self
            .current
            .as_ref()
            .is_some_and(|s| s.len >= self.segment_bytes)
        {
            self.close_current();
        }
        if self.current.is_none() {
            self.open_segment()?;
        }
        let Some(segment) = self.current.as_mut() else {
            return Err(io::Error::other("no open segment"));
        };
        if buffer.is_empty() && !sync {
            return Ok(segment.number);
        }
        let before = segment.len;
        let written = segment.file.write_all(buffer).and_then(|()| {
            if sync {
                self.shared.fsyncs.fetch_add(1, Ordering::Relaxed);
                segment.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                segment.len += buffer.len() as u64;
                let number = segment.number;
                self.grow(number, buffer.len() as u64);
                Ok(number)
            }
            Err(e) => {
                // Cut back what this write may have left; if that fails too,
                // leave the segment so that nothing is appended after a torn
                // record.
                let cut = segment
                    .file
                    .set_len(before)
                    .and_then(|()| segment.file.sync_data());
                if cut.is_err() {
                    self.close_current();
                }
                Err(e)
            }
        }
    }

    fn grow(&mut self, number: u64, by: u64) {
        *self.sizes.entry(number).or_default() += by;
        self.shared.disk_bytes.fetch_add(by, Ordering::Relaxed);
    }

    fn open_segment(&mut self) -> io::Result<()> {
        let number = self.next_segment;
        let path = segment_path(&self.shared.dir, number);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)?;
        // The new file's name must survive a crash as well as its content.
        File::open(&self.shared.dir)?.sync_all()?;
        self.next_segment += 1;
        self.sizes.insert(number, 0);
        self.current = Some(Segment {
            number,
            file,
            len: 0,
        });
        Ok(())
    }

    /// Stops appending to the current segment; deletes it if nothing in it
    /// is still to be sent.
    fn close_current(&mut self) {
        if let Some(segment) = self.current.take()
            && !self.live.contains_key(&segment.number)
        {
            self.delete(segment.number);
        }
    }

    /// Batch `id` is acknowledged: its segment goes once nothing in it is live.
    fn forget(&mut self, id: QueueId) {
        let Some(segment) = self.location.remove(&id) else {
            return;
        };
        let Some(live) = self.live.get_mut(&segment) else {
            return;
        };
        *live -= 1;
        if *live == 0 {
            self.live.remove(&segment);
            if self.current.as_ref().map(|s| s.number) != Some(segment) {
                self.delete(segment);
            }
        }
    }

    fn delete(&mut self, number: u64) {
        let path = segment_path(&self.shared.dir, number);
        match std::fs::remove_file(&path) {
            Ok(()) => {
                if let Some(size) = self.sizes.remove(&number) {
                    self.shared.disk_bytes.fetch_sub(size, Ordering::Relaxed);
                }
            }
            Err(e) => tracing::warn!(
                segment = %path.display(),
                error = %e,
                "cannot delete a sent segment of the persistent queue; it is retried at the next start"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(dir: &Path) -> PersistentQueue {
        PersistentQueue::open(dir, 1000, 1 << 30, |_| 1).unwrap()
    }

    fn segments(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "log"))
            .collect();
        files.sort();
        files
    }

    /// The batches a reopened queue hands out, as (records, first event time).
    async fn drain(q: &PersistentQueue) -> Vec<usize> {
        q.close();
        let mut out = Vec::new();
        while let Some(item) = q.pop().await {
            out.push(item.batch.len());
        }
        out
    }

    #[tokio::test]
    async fn pushed_batches_survive_a_restart_in_order_and_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let sent = [LogBatch::sample_varied(), LogBatch::sample_audit(3)];
        {
            let q = open(dir.path());
            for b in &sent {
                q.push(b.clone(), 1, Some(7)).await.unwrap();
            }
        }
        let q = open(dir.path());
        assert_eq!(q.recovery().batches, 2);
        assert_eq!(q.recovery().records, sent[0].len() + 3);
        q.close();
        for expected in &sent {
            let item = q.pop().await.unwrap();
            assert_eq!(item.ticket, None, "tickets live in memory only");
            assert_eq!(item.batch.encode_protobuf(), expected.encode_protobuf());
        }
        assert!(q.pop().await.is_none());
    }

    #[tokio::test]
    async fn acknowledged_batches_are_not_sent_again_and_their_segments_go() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = open(dir.path());
            for n in 1..=3 {
                q.push(LogBatch::sample_audit(n), 1, None).await.unwrap();
            }
            let first = q.pop().await.unwrap();
            q.ack(first.id);
            q.sync().await;
        }
        let q = open(dir.path());
        assert_eq!(drain(&q).await, vec![2, 3]);
        // All of them acknowledged: after a restart nothing is left on disk.
        let q2 = {
            drop(q);
            open(dir.path())
        };
        while let Some(item) = {
            q2.close();
            q2.pop().await
        } {
            q2.ack(item.id);
        }
        q2.sync().await;
        drop(q2);
        let q3 = open(dir.path());
        assert_eq!(q3.recovery().batches, 0);
        assert!(
            segments(dir.path()).is_empty(),
            "{:?}",
            segments(dir.path())
        );
    }

    #[tokio::test]
    async fn a_torn_tail_is_reported_cut_and_the_records_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = open(dir.path());
            for n in 1..=3 {
                q.push(LogBatch::sample_audit(n), 1, None).await.unwrap();
            }
        }
        let segment = segments(dir.path()).pop().unwrap();
        let len = std::fs::metadata(&segment).unwrap().len();
        let file = OpenOptions::new().write(true).open(&segment).unwrap();
        file.set_len(len - 5).unwrap();
        drop(file);
        {
            let q = open(dir.path());
            let damage = &q.recovery().damaged;
            assert_eq!(damage.len(), 1, "{damage:?}");
            assert!(damage[0].contains("cut short"), "{}", damage[0]);
            assert!(damage[0].contains(&segment.display().to_string()));
            // New pushes after a recovery are readable at the next start.
            q.push(LogBatch::sample_audit(4), 1, None).await.unwrap();
        }
        let q = open(dir.path());
        assert!(q.recovery().damaged.is_empty());
        assert_eq!(drain(&q).await, vec![1, 2, 4]);
    }

    #[tokio::test]
    async fn a_corrupt_record_is_detected_by_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        {
            let q = open(dir.path());
            for n in 1..=3 {
                q.push(LogBatch::sample_audit(n), 1, None).await.unwrap();
            }
        }
        let segment = segments(dir.path()).pop().unwrap();
        let mut bytes = std::fs::read(&segment).unwrap();
        let last = bytes.len() - 10;
        bytes[last] ^= 0xff;
        std::fs::write(&segment, &bytes).unwrap();
        let q = open(dir.path());
        assert!(
            q.recovery().damaged[0].contains("checksum"),
            "{:?}",
            q.recovery().damaged
        );
        assert_eq!(drain(&q).await, vec![1, 2]);
    }

    #[test]
    fn a_second_process_on_the_same_namespace_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let first = open(dir.path());
        let second = PersistentQueue::open(dir.path(), 10, 1 << 20, |_| 1);
        match second {
            Err(OpenError::Locked(path)) => assert_eq!(path, dir.path()),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("opened twice"),
        }
        drop(first);
        PersistentQueue::open(dir.path(), 10, 1 << 20, |_| 1).unwrap();
    }

    #[tokio::test]
    async fn the_disk_bound_refuses_what_does_not_fit() {
        let dir = tempfile::tempdir().unwrap();
        let batch = LogBatch::sample_audit(50);
        let one = (HEADER + BODY_PREFIX + batch.encoded_len()) as u64;
        let q = PersistentQueue::open(dir.path(), 1000, one * 2 + one / 2, |_| 1).unwrap();
        q.push(batch.clone(), 1, None).await.unwrap();
        q.push(batch.clone(), 1, None).await.unwrap();
        assert!(matches!(
            q.push(batch.clone(), 1, None).await,
            Err(PushError::DiskFull { .. })
        ));
        assert!(q.disk_bytes() <= one * 2 + one / 2);
    }

    #[tokio::test]
    async fn concurrent_pushes_share_fsyncs() {
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(open(dir.path()));
        let pushes: Vec<_> = (0..64)
            .map(|_| {
                let q = q.clone();
                tokio::spawn(async move { q.push(LogBatch::sample_audit(2), 1, None).await })
            })
            .collect();
        for p in pushes {
            p.await.unwrap().unwrap();
        }
        assert_eq!(q.len(), 64);
        assert!(q.fsyncs() < 64, "{} fsyncs for 64 pushes", q.fsyncs());
    }

    #[test]
    fn namespaces_are_safe_directory_names() {
        assert_eq!(namespace("webhook/siem"), "webhook~siem");
        assert_eq!(namespace("file"), "file");
        assert_eq!(namespace("file/../x y"), "file~..~x%20y");
    }
}
