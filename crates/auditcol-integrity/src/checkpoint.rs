//! Checkpoints: signed statements "line N of this file ends at byte B and
//! the chain head there is H", one JSON object per line of the sidecar.

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::chain::{Head, LINE_HEAD_PREFIX, put_str};
use crate::hex;
use crate::keys::{Algorithm, TrailSigner, TrailVerifier};

/// The version of the checkpoint format, in every checkpoint's `v`.
pub const FORMAT_VERSION: u32 = 1;

/// The first bytes of every signed message.
const SIGNED_DOMAIN: &[u8] = b"auditcol-checkpoint-v1";

/// Why a checkpoint was written (informational, but signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The first checkpoint of a new trail, before any line.
    Start,
    /// After a batch, with `sync: true`.
    Batch,
    /// Every `checkpoint_interval` when lines were written.
    Interval,
    /// When the exporter stopped.
    Shutdown,
    /// Rotation: the last checkpoint of the file moved aside (`sealed`), or
    /// the first of the new file.
    Rotation,
    /// At start: lines written after the last checkpoint before a crash,
    /// hashed again.
    Recovery,
    /// At start: lines already in the file when its trail began.
    Adopted,
}

impl Reason {
    /// The name as written.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Batch => "batch",
            Reason::Interval => "interval",
            Reason::Shutdown => "shutdown",
            Reason::Rotation => "rotation",
            Reason::Recovery => "recovery",
            Reason::Adopted => "adopted",
        }
    }
}

/// One checkpoint. Field order is the order written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Format version: [`FORMAT_VERSION`].
    pub v: u32,
    /// The trail id: 32 lower-case hex digits (128 random bits) chosen when
    /// the trail began.
    pub trail: String,
    /// The id of the exporter that began the trail (`file/audit`).
    pub exporter: String,
    /// Which file of the trail this is: 0 for the first, +1 per rotation.
    pub file_seq: u64,
    /// The file's name (no directory) when the checkpoint was written: the
    /// live name, or for a `sealed` checkpoint the name of the rotated file.
    pub file: String,
    /// The checkpoint's number in the trail: 0, 1, 2… across all files.
    pub seq: u64,
    /// The first line this checkpoint covers (1-based, in this file);
    /// `last_line + 1` when it covers no new line.
    pub first_line: u64,
    /// The number of lines of the file covered so far.
    pub last_line: u64,
    /// The byte length of those lines.
    pub bytes: u64,
    /// The chain head after `last_line`.
    pub head: Head,
    /// The head this file's chain starts from: the previous file's final
    /// head, or `h_0` for the first file of the trail.
    pub previous_head: Head,
    /// When it was written: RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Why it was written.
    pub reason: Reason,
    /// The last checkpoint of a file moved aside by rotation: nothing follows
    /// in this file, and the trail goes on in file `file_seq + 1`.
    pub sealed: bool,
    /// The signature algorithm.
    pub alg: Algorithm,
    /// The signing key's id (see [`TrailSigner::key_id`]).
    pub key_id: String,
    /// The first [`LINE_HEAD_PREFIX`] bytes of the chain head after each
    /// line `first_line..=last_line`, concatenated; base64 (standard, padded)
    /// in JSON; or empty when the writer kept too many lines to record them
    /// (see `chain::MAX_LINE_HEADS`). Not needed to detect a change, only to
    /// name its line.
    pub line_heads: LineHeads,
    /// The signature of [`signed_message`](Self::signed_message), hex.
    pub sig: String,
}

/// Why a checkpoint's signature was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureProblem {
    /// Signed with another algorithm than the key given.
    Algorithm {
        /// The checkpoint's.
        found: Algorithm,
        /// The key's.
        expected: Algorithm,
    },
    /// Signed by another key (its key id differs).
    OtherKey {
        /// The checkpoint's key id.
        found: String,
        /// The key id of the key given.
        expected: String,
    },
    /// The key id matches but the signature does not: the checkpoint was
    /// changed after it was signed.
    Invalid,
}

impl std::fmt::Display for SignatureProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignatureProblem::Algorithm { found, expected } => write!(
                f,
                "the checkpoint is signed with {found}, the key given is for {expected}"
            ),
            SignatureProblem::OtherKey { found, expected } => write!(
                f,
                "the checkpoint is signed by another key (key id {found}; the key given has key id {expected})"
            ),
            SignatureProblem::Invalid => f.write_str(
                "the signature does not match the checkpoint: it was changed after it was signed",
            ),
        }
    }
}

impl Checkpoint {
    /// The bytes signed: `"auditcol-checkpoint-v1"`, then each field in
    /// order, strings as `u32be(len) ‖ UTF-8`, numbers as `u64be`, heads as
    /// their 32 bytes, `sealed` as one byte 0 or 1, and last the SHA-256 of
    /// the raw `line_heads`; `v` and `sig` are not part of it (`v` is
    /// implied by the domain string).
    pub fn signed_message(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(SIGNED_DOMAIN);
        put_str(&mut out, &self.trail);
        put_str(&mut out, &self.exporter);
        out.extend_from_slice(&self.file_seq.to_be_bytes());
        put_str(&mut out, &self.file);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.first_line.to_be_bytes());
        out.extend_from_slice(&self.last_line.to_be_bytes());
        out.extend_from_slice(&self.bytes.to_be_bytes());
        out.extend_from_slice(&self.head.0);
        out.extend_from_slice(&self.previous_head.0);
        put_str(&mut out, &self.time);
        put_str(&mut out, self.reason.name());
        out.push(u8::from(self.sealed));
        put_str(&mut out, self.alg.name());
        put_str(&mut out, &self.key_id);
        // A digest, not the megabytes of a checkpoint of a million lines:
        // Ed25519 hashes its message twice with SHA-512.
        out.extend_from_slice(&Sha256::digest(&self.line_heads.0));
        out
    }

    /// The head prefix this checkpoint recorded for `line`, if it covers it.
    pub fn line_head(&self, line: u64) -> Option<&[u8]> {
        let index = usize::try_from(line.checked_sub(self.first_line)?).ok()?;
        self.line_heads
            .0
            .get(index * LINE_HEAD_PREFIX..(index + 1) * LINE_HEAD_PREFIX)
    }

    /// Sets `alg`, `key_id` and `sig` with `signer`.
    pub fn sign(&mut self, signer: &TrailSigner) {
        self.alg = signer.algorithm();
        self.key_id = signer.key_id();
        self.sig = hex::encode(&signer.sign(&self.signed_message()));
    }

    /// Checks the signature with `key`.
    pub fn verify_signature(&self, key: &TrailVerifier) -> Result<(), SignatureProblem> {
        if self.alg != key.algorithm() {
            return Err(SignatureProblem::Algorithm {
                found: self.alg,
                expected: key.algorithm(),
            });
        }
        let signature = hex::decode(&self.sig).unwrap_or_default();
        if key.verify(&self.signed_message(), &signature) {
            return Ok(());
        }
        let expected = key.key_id();
        if self.key_id != expected {
            return Err(SignatureProblem::OtherKey {
                found: self.key_id.clone(),
                expected,
            });
        }
        Err(SignatureProblem::Invalid)
    }

    /// The sidecar line: compact JSON in field order, then `\n`.
    pub fn to_line(&self) -> Vec<u8> {
        // A struct of strings, numbers and bools always serialises.
        let mut line = serde_json::to_vec(self).unwrap_or_default();
        line.push(b'\n');
        line
    }

    /// Parses one sidecar line (without its `\n`) and checks the shape of
    /// its fields (not its signature).
    pub fn parse(line: &[u8]) -> Result<Checkpoint, String> {
        let checkpoint: Checkpoint = serde_json::from_slice(line).map_err(|e| e.to_string())?;
        checkpoint.check_shape()?;
        Ok(checkpoint)
    }

    fn check_shape(&self) -> Result<(), String> {
        if self.v != FORMAT_VERSION {
            return Err(format!(
                "format version {} (this auditcol reads version {FORMAT_VERSION})",
                self.v
            ));
        }
        if self.trail.len() != 32 || hex::decode(&self.trail).is_none() {
            return Err("`trail` is not 32 hexadecimal digits".into());
        }
        if self.file.is_empty() || self.file.contains(['/', '\\']) || self.file.starts_with('.') {
            return Err(format!("`file` is not a plain file name: {:?}", self.file));
        }
        if self.first_line == 0 || self.first_line > self.last_line.saturating_add(1) {
            return Err(format!(
                "`first_line` {} does not fit `last_line` {}",
                self.first_line, self.last_line
            ));
        }
        if hex::decode(&self.sig).is_none() {
            return Err("`sig` is not hexadecimal".into());
        }
        let lines = self.last_line + 1 - self.first_line;
        let heads = self.line_heads.0.len() as u64;
        if heads != 0 && heads != lines.saturating_mul(LINE_HEAD_PREFIX as u64) {
            return Err(format!(
                "`line_heads` holds {heads} bytes, not {LINE_HEAD_PREFIX} for each of its {lines} lines (nor none)"
            ));
        }
        Ok(())
    }
}

/// The head prefixes of a checkpoint's lines (see [`Checkpoint::line_heads`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LineHeads(pub Vec<u8>);

impl Serialize for LineHeads {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for LineHeads {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(LineHeads)
            .map_err(|e| serde::de::Error::custom(format!("`line_heads` is not base64: {e}")))
    }
}

/// A new random trail id: 32 hex digits from the operating system's randomness.
pub fn new_trail_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random bytes from the system: {e}"))?;
    Ok(hex::encode(&bytes))
}

/// `2024-05-01T10:00:00.123Z`: the time format of checkpoints.
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::genesis;

    pub(crate) fn sample() -> Checkpoint {
        Checkpoint {
            v: FORMAT_VERSION,
            trail: "00112233445566778899aabbccddeeff".into(),
            exporter: "file/audit".into(),
            file_seq: 2,
            file: "audit.jsonl".into(),
            seq: 7,
            first_line: 11,
            last_line: 20,
            bytes: 5200,
            head: Head([1; 32]),
            previous_head: genesis("file/audit", "00112233445566778899aabbccddeeff"),
            time: "2024-05-01T10:00:00.123Z".into(),
            reason: Reason::Batch,
            sealed: false,
            alg: Algorithm::Ed25519,
            key_id: String::new(),
            line_heads: LineHeads((0..40).collect()),
            sig: String::new(),
        }
    }

    #[test]
    fn the_signed_message_is_the_documented_encoding() {
        let mut c = sample();
        c.key_id = "k".into();
        let m = c.signed_message();
        let mut expected = b"auditcol-checkpoint-v1".to_vec();
        expected.extend_from_slice(&[0, 0, 0, 32]);
        expected.extend_from_slice(c.trail.as_bytes());
        expected.extend_from_slice(&[0, 0, 0, 10]);
        expected.extend_from_slice(b"file/audit");
        expected.extend_from_slice(&2u64.to_be_bytes());
        expected.extend_from_slice(&[0, 0, 0, 11]);
        expected.extend_from_slice(b"audit.jsonl");
        for n in [7u64, 11, 20, 5200] {
            expected.extend_from_slice(&n.to_be_bytes());
        }
        expected.extend_from_slice(&[1; 32]);
        expected.extend_from_slice(&c.previous_head.0);
        expected.extend_from_slice(&[0, 0, 0, 24]);
        expected.extend_from_slice(b"2024-05-01T10:00:00.123Z");
        expected.extend_from_slice(&[0, 0, 0, 5]);
        expected.extend_from_slice(b"batch");
        expected.push(0);
        expected.extend_from_slice(&[0, 0, 0, 7]);
        expected.extend_from_slice(b"ed25519");
        expected.extend_from_slice(&[0, 0, 0, 1, b'k']);
        expected.extend_from_slice(&Sha256::digest((0..40).collect::<Vec<u8>>()));
        assert_eq!(m, expected);
    }

    #[test]
    fn a_signed_checkpoint_round_trips_through_its_line_and_verifies() {
        let signer = TrailSigner::hmac(b"0123456789abcdef");
        let mut c = sample();
        c.sign(&signer);
        let line = c.to_line();
        assert!(line.ends_with(b"\n"));
        assert!(
            line.starts_with(b"{\"v\":1,\"trail\":\"0011"),
            "{}",
            String::from_utf8_lossy(&line)
        );
        let parsed = Checkpoint::parse(&line[..line.len() - 1]).unwrap();
        assert_eq!(parsed, c);
        parsed.verify_signature(&signer.verifier()).unwrap();
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let signer = TrailSigner::hmac(b"0123456789abcdef");
        let mut c = sample();
        c.sign(&signer);
        let key = signer.verifier();
        type Change = Box<dyn Fn(&mut Checkpoint)>;
        let changes: Vec<Change> = vec![
            Box::new(|c| c.trail = "ffffffffffffffffffffffffffffffff".into()),
            Box::new(|c| c.exporter = "file/other".into()),
            Box::new(|c| c.file_seq += 1),
            Box::new(|c| c.file = "other.jsonl".into()),
            Box::new(|c| c.seq += 1),
            Box::new(|c| c.first_line += 1),
            Box::new(|c| c.last_line += 1),
            Box::new(|c| c.bytes += 1),
            Box::new(|c| c.head.0[31] ^= 1),
            Box::new(|c| c.previous_head.0[0] ^= 1),
            Box::new(|c| c.time = "2024-05-01T10:00:00.124Z".into()),
            Box::new(|c| c.reason = Reason::Interval),
            Box::new(|c| c.sealed = true),
            Box::new(|c| c.line_heads.0[39] ^= 1),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut changed = c.clone();
            change(&mut changed);
            assert_eq!(
                changed.verify_signature(&key),
                Err(SignatureProblem::Invalid),
                "change {i}"
            );
        }
    }

    #[test]
    fn another_key_is_named_as_such() {
        let mut c = sample();
        c.sign(&TrailSigner::hmac(b"one key, long enough"));
        let other = TrailVerifier::hmac(b"another key, long enough");
        assert!(matches!(
            c.verify_signature(&other),
            Err(SignatureProblem::OtherKey { .. })
        ));
    }

    #[test]
    fn malformed_checkpoints_are_refused_with_a_reason() {
        let mut c = sample();
        c.file = "../etc/passwd".into();
        let line = serde_json::to_vec(&c).unwrap();
        assert!(
            Checkpoint::parse(&line)
                .unwrap_err()
                .contains("plain file name")
        );
        assert!(Checkpoint::parse(b"{\"v\":1}").is_err());
        let mut c = sample();
        c.line_heads.0.pop();
        let line = serde_json::to_vec(&c).unwrap();
        assert!(Checkpoint::parse(&line).unwrap_err().contains("line_heads"));
        assert!(Checkpoint::parse(b"not json").is_err());
    }

    #[test]
    fn line_heads_are_found_by_line_number() {
        let c = sample();
        assert_eq!(c.line_head(11), Some(&[0u8, 1, 2, 3][..]));
        assert_eq!(c.line_head(20), Some(&[36u8, 37, 38, 39][..]));
        assert_eq!(c.line_head(10), None);
        assert_eq!(c.line_head(21), None);
    }

    #[test]
    fn times_have_milliseconds_and_a_z() {
        let t = OffsetDateTime::from_unix_timestamp_nanos(1_714_557_600_123_456_789).unwrap();
        assert_eq!(format_time(t), "2024-05-01T10:00:00.123Z");
    }
}
