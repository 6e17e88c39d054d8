//! Group commit for `sync: true`: the batches that arrive while one group
//! is being written and synced wait together, and are then written as one
//! append with one `fdatasync` — and, with `integrity`, one checkpoint —
//! for all of them.
//!
//! A batch is acknowledged only when the sync (and checkpoint) covering it
//! succeeded. A group is all or nothing, like a single batch: when its write,
//! sync or checkpoint fails, the writer takes the whole group out of the
//! file again and every batch in it gets the error (and is retried).
//!
//! With one sender at a time this is what writing each batch alone was;
//! with several, a second `fdatasync` no longer waits behind the first for
//! each batch.

use std::io;
use std::sync::Mutex;

use tokio::sync::oneshot;

/// The outcome a batch of a group is told. (`io::Error` is not `Clone`:
/// each member gets the kind and the message.)
pub(crate) type Outcome = Result<(), (io::ErrorKind, String)>;

/// Turns an [`Outcome`] back into an `io::Result`.
pub(crate) fn into_io(outcome: Outcome) -> io::Result<()> {
    outcome.map_err(|(kind, message)| io::Error::new(kind, message))
}

/// Batches waiting for the next group, and whether a group is being written.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    pending: Vec<Member>,
    /// A leader is writing groups; it takes the pending ones before it stops.
    leading: bool,
}

struct Member {
    bytes: Vec<u8>,
    done: oneshot::Sender<Outcome>,
}

/// What [`GroupCommit::join`] tells a batch.
pub(crate) struct Joined {
    /// The outcome of the group that writes the batch.
    pub(crate) outcome: oneshot::Receiver<Outcome>,
    /// No group was being written: the caller must run
    /// [`GroupCommit::lead`] (on a blocking thread).
    pub(crate) lead: bool,
}

impl GroupCommit {
    /// Queues `bytes` (whole lines) for the next group.
    pub(crate) fn join(&self, bytes: Vec<u8>) -> Joined {
        let (done, outcome) = oneshot::channel();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.pending.push(Member { bytes, done });
        let lead = !state.leading;
        state.leading = true;
        Joined { outcome, lead }
    }

    /// Writes groups until none is waiting: each group's batches in the
    /// order they joined, as one buffer handed to `write` (which appends,
    /// syncs and checkpoints it, or leaves nothing of it), then tells every
    /// member the outcome. Buffers no longer needed go to `give_back`.
    pub(crate) fn lead(
        &self,
        mut write: impl FnMut(&mut Vec<u8>) -> io::Result<()>,
        give_back: impl Fn(Vec<u8>),
    ) {
        let _unwinding = Leading(self);
        loop {
            let members = {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if state.pending.is_empty() {
                    state.leading = false;
                    return;
                }
                std::mem::take(&mut state.pending)
            };
            let mut replies = Vec::with_capacity(members.len());
            let mut members = members.into_iter();
            let Some(first) = members.next() else {
                continue;
            };
            let mut bytes = first.bytes;
            replies.push(first.done);
            for member in members {
                bytes.extend_from_slice(&member.bytes);
                give_back(member.bytes);
                replies.push(member.done);
            }
            let outcome: Outcome = write(&mut bytes).map_err(|e| (e.kind(), e.to_string()));
            give_back(bytes);
            for reply in replies {
                // A sender that stopped waiting (timed out) is retried by
                // its exporter helper; nothing to tell it.
                let _ = reply.send(outcome.clone());
            }
        }
    }
}

/// Should a write panic, the next batch leads again, and those waiting
/// are told to retry (their senders are dropped): no batch waits forever.
struct Leading<'a>(&'a GroupCommit);

impl Drop for Leading<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut state = self.0.state.lock().unwrap_or_else(|e| e.into_inner());
            state.leading = false;
            state.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_that_wait_together_are_written_as_one_group_in_order() {
        let group = Arc::new(GroupCommit::default());
        let first = group.join(b"a\n".to_vec());
        assert!(first.lead);
        // While the first group is not written yet, two more join: they wait.
        let second = group.join(b"b\n".to_vec());
        let third = group.join(b"c\n".to_vec());
        assert!(!second.lead && !third.lead);
        let mut writes = Vec::new();
        group.lead(
            |bytes| {
                writes.push(String::from_utf8(bytes.clone()).unwrap());
                Ok(())
            },
            |_| {},
        );
        assert_eq!(writes, ["a\nb\nc\n"], "one group, in the order they joined");
        for joined in [first, second, third] {
            assert_eq!(joined.outcome.await.unwrap(), Ok(()));
        }
        // The leader stopped: the next batch leads again.
        assert!(group.join(b"d\n".to_vec()).lead);
    }

    #[tokio::test]
    async fn a_failed_group_fails_every_batch_in_it() {
        let group = GroupCommit::default();
        let a = group.join(b"a\n".to_vec());
        let b = group.join(b"b\n".to_vec());
        group.lead(|_| Err(io::Error::other("disk full")), |_| {});
        for joined in [a, b] {
            let err = into_io(joined.outcome.await.unwrap()).unwrap_err();
            assert_eq!(err.to_string(), "disk full");
        }
    }

    #[tokio::test]
    async fn batches_that_join_while_a_group_is_written_make_the_next_group() {
        let group = Arc::new(GroupCommit::default());
        let first = group.join(b"a\n".to_vec());
        let late = std::sync::Mutex::new(None);
        let mut writes = Vec::new();
        group.lead(
            |bytes| {
                writes.push(String::from_utf8(bytes.clone()).unwrap());
                // Joins during the first group's write.
                let mut late = late.lock().unwrap();
                if late.is_none() {
                    *late = Some(group.join(b"b\n".to_vec()));
                }
                Ok(())
            },
            |_| {},
        );
        assert_eq!(writes, ["a\n", "b\n"]);
        assert_eq!(first.outcome.await.unwrap(), Ok(()));
        let late = late.into_inner().unwrap().unwrap();
        assert!(!late.lead, "the running leader took it");
        assert_eq!(late.outcome.await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_write_that_panics_fails_its_group_and_the_next_batch_leads_again() {
        let group = Arc::new(GroupCommit::default());
        let a = group.join(b"a\n".to_vec());
        let leader = group.clone();
        let panicked = std::thread::spawn(move || {
            leader.lead(|_| panic!("a bug in the writer"), |_| {});
        })
        .join();
        assert!(panicked.is_err());
        assert!(a.outcome.await.is_err(), "told to retry, not left waiting");
        assert!(group.join(b"b\n".to_vec()).lead);
    }
}
