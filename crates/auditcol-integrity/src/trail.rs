//! The writer's side of a trail: the chain of the file being written and
//! the checkpoints it is due. No I/O: the file exporter writes the lines
//! and the sidecar, this says what goes into them.

use time::OffsetDateTime;

use crate::chain::{ChainHasher, Head, LINE_HEAD_PREFIX, genesis};
use crate::checkpoint::{Checkpoint, FORMAT_VERSION, LineHeads, Reason, format_time};
use crate::keys::{Algorithm, TrailSigner};

/// The chain of one output file of a trail, and where its next checkpoint
/// starts.
///
/// ```
/// use auditcol_integrity::{TrailSigner, TrailState, Reason};
/// let signer = TrailSigner::hmac(b"a secret of 16+ bytes");
/// let mut trail = TrailState::begin("file/audit", "00112233445566778899aabbccddeeff");
/// trail.feed(b"{\"version\":\"0.2\"}\n");
/// let checkpoint = trail.checkpoint("audit.jsonl", Reason::Batch, false, &signer);
/// trail.committed(&checkpoint);
/// assert_eq!((checkpoint.first_line, checkpoint.last_line), (1, 1));
/// assert!(!trail.is_dirty());
/// ```
#[derive(Clone)]
pub struct TrailState {
    trail: String,
    exporter: String,
    file_seq: u64,
    next_seq: u64,
    previous_head: Head,
    chain: ChainHasher,
    /// `last_line` of the last checkpoint written for this file, if any.
    checkpointed: Option<u64>,
}

impl TrailState {
    /// A new trail: file 0, chain at `h_0`, no checkpoint yet.
    pub fn begin(exporter: &str, trail: &str) -> Self {
        let h0 = genesis(exporter, trail);
        Self {
            trail: trail.to_owned(),
            exporter: exporter.to_owned(),
            file_seq: 0,
            next_seq: 0,
            previous_head: h0,
            chain: ChainHasher::new(h0),
            checkpointed: None,
        }
    }

    /// Goes on in the file of `last`, its last checkpoint: the lines after
    /// it are still to be fed.
    pub fn resume(last: &Checkpoint) -> Self {
        Self {
            trail: last.trail.clone(),
            exporter: last.exporter.clone(),
            file_seq: last.file_seq,
            next_seq: last.seq + 1,
            previous_head: last.previous_head,
            chain: ChainHasher::resume(last.head, last.last_line, last.bytes),
            checkpointed: Some(last.last_line),
        }
    }

    /// Goes on in the file after the one `sealed` closed.
    pub fn after_sealed(sealed: &Checkpoint) -> Self {
        Self {
            trail: sealed.trail.clone(),
            exporter: sealed.exporter.clone(),
            file_seq: sealed.file_seq + 1,
            next_seq: sealed.seq + 1,
            previous_head: sealed.head,
            chain: ChainHasher::new(sealed.head),
            checkpointed: None,
        }
    }

    /// The state of the next file after a rotation, once the sealing
    /// checkpoint `sealed` of this one is written.
    pub fn next_file(&self, sealed: &Checkpoint) -> Self {
        debug_assert_eq!(sealed.head, self.chain.head());
        Self::after_sealed(sealed)
    }

    /// Hashes whole lines just written to the file.
    pub fn feed(&mut self, lines: &[u8]) {
        self.chain.feed(lines);
    }

    /// Forgets the bytes of a last line without its `\n` (cut off the file).
    pub fn discard_partial(&mut self) {
        self.chain.discard_partial();
    }

    /// The trail id.
    pub fn trail(&self) -> &str {
        &self.trail
    }

    /// The exporter that began the trail.
    pub fn exporter(&self) -> &str {
        &self.exporter
    }

    /// This file's place in the trail.
    pub fn file_seq(&self) -> u64 {
        self.file_seq
    }

    /// Lines of this file hashed.
    pub fn lines(&self) -> u64 {
        self.chain.lines()
    }

    /// Bytes of this file hashed.
    pub fn bytes(&self) -> u64 {
        self.chain.bytes()
    }

    /// The chain head after the last line.
    pub fn head(&self) -> Head {
        self.chain.head()
    }

    /// `last_line` of this file's last checkpoint, if it has one.
    pub fn checkpointed_lines(&self) -> Option<u64> {
        self.checkpointed
    }

    /// Whether lines were hashed since the last checkpoint, or this file
    /// has none yet.
    pub fn is_dirty(&self) -> bool {
        self.checkpointed != Some(self.chain.lines())
    }

    /// The next checkpoint, signed, dated now; [`committed`](Self::committed)
    /// once it is written.
    pub fn checkpoint(
        &self,
        file_name: &str,
        reason: Reason,
        sealed: bool,
        signer: &TrailSigner,
    ) -> Checkpoint {
        self.checkpoint_at(file_name, reason, sealed, signer, OffsetDateTime::now_utc())
    }

    /// [`checkpoint`](Self::checkpoint) with a given time.
    pub fn checkpoint_at(
        &self,
        file_name: &str,
        reason: Reason,
        sealed: bool,
        signer: &TrailSigner,
        time: OffsetDateTime,
    ) -> Checkpoint {
        let mut checkpoint = Checkpoint {
            v: FORMAT_VERSION,
            trail: self.trail.clone(),
            exporter: self.exporter.clone(),
            file_seq: self.file_seq,
            file: file_name.to_owned(),
            seq: self.next_seq,
            first_line: self.checkpointed.unwrap_or(0) + 1,
            last_line: self.chain.lines(),
            bytes: self.chain.bytes(),
            head: self.chain.head(),
            previous_head: self.previous_head,
            time: format_time(time),
            reason,
            sealed,
            alg: Algorithm::Ed25519,
            key_id: String::new(),
            line_heads: LineHeads(self.line_heads()),
            sig: String::new(),
        };
        checkpoint.sign(signer);
        checkpoint
    }

    /// The head prefixes of the lines since the last checkpoint; empty if
    /// there were too many to keep.
    fn line_heads(&self) -> Vec<u8> {
        let heads = self.chain.line_heads();
        let lines = self.chain.lines() - self.checkpointed.unwrap_or(0);
        if heads.len() as u64 == lines * LINE_HEAD_PREFIX as u64 {
            heads.to_vec()
        } else {
            Vec::new()
        }
    }

    /// Records that `checkpoint` (made by [`checkpoint`](Self::checkpoint)
    /// from this state) is in the sidecar.
    pub fn committed(&mut self, checkpoint: &Checkpoint) {
        self.next_seq = checkpoint.seq + 1;
        self.checkpointed = Some(checkpoint.last_line);
        self.chain.take_line_heads();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> TrailSigner {
        TrailSigner::hmac(b"sixteen bytes at least")
    }

    #[test]
    fn checkpoints_cover_the_lines_since_the_last_one() {
        let signer = signer();
        let mut trail = TrailState::begin("file", "00112233445566778899aabbccddeeff");
        assert!(trail.is_dirty(), "a file without checkpoint is due one");
        let start = trail.checkpoint("a", Reason::Start, false, &signer);
        assert_eq!((start.first_line, start.last_line, start.bytes), (1, 0, 0));
        assert_eq!(start.head, start.previous_head);
        trail.committed(&start);
        assert!(!trail.is_dirty());
        trail.feed(b"x\ny\n");
        let c = trail.checkpoint("a", Reason::Batch, false, &signer);
        assert_eq!((c.seq, c.first_line, c.last_line, c.bytes), (1, 1, 2, 4));
        assert_eq!(c.line_heads.0.len(), 8);
        trail.committed(&c);
        trail.feed(b"z\n");
        let c = trail.checkpoint("a", Reason::Batch, false, &signer);
        assert_eq!((c.seq, c.first_line, c.last_line), (2, 3, 3));
        assert_eq!(c.line_head(3), Some(&trail.head().0[..4]));
    }

    #[test]
    fn an_uncommitted_checkpoint_changes_nothing() {
        let signer = signer();
        let mut trail = TrailState::begin("file", "00112233445566778899aabbccddeeff");
        trail.feed(b"x\n");
        let lost = trail.checkpoint("a", Reason::Batch, false, &signer);
        let again = trail.checkpoint("a", Reason::Batch, false, &signer);
        assert_eq!(lost.seq, again.seq);
        assert_eq!(lost.first_line, again.first_line);
    }

    #[test]
    fn resuming_goes_on_where_the_checkpoint_left_off() {
        let signer = signer();
        let mut trail = TrailState::begin("file", "00112233445566778899aabbccddeeff");
        trail.feed(b"x\n");
        let c = trail.checkpoint("a", Reason::Batch, false, &signer);
        trail.committed(&c);
        trail.feed(b"y\n");
        let mut resumed = TrailState::resume(&c);
        resumed.feed(b"y\n");
        assert_eq!(resumed.head(), trail.head());
        let next = resumed.checkpoint("a", Reason::Recovery, false, &signer);
        assert_eq!((next.seq, next.first_line, next.last_line), (1, 2, 2));
    }

    #[test]
    fn the_next_file_starts_from_the_sealed_head() {
        let signer = signer();
        let mut trail = TrailState::begin("file", "00112233445566778899aabbccddeeff");
        trail.feed(b"x\n");
        let sealed = trail.checkpoint("a-1", Reason::Rotation, true, &signer);
        let next = trail.next_file(&sealed);
        let opening = next.checkpoint("a", Reason::Rotation, false, &signer);
        assert_eq!(opening.file_seq, 1);
        assert_eq!(opening.seq, sealed.seq + 1);
        assert_eq!(opening.previous_head, sealed.head);
        assert_eq!((opening.first_line, opening.last_line), (1, 0));
    }
}
