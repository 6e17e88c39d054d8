//! The tamper-evident trail of auditcol's `file` exporter, in one place for
//! the writer (the exporter) and the checker (`auditcol verify`).
//!
//! An output file's lines stay exactly as they are. Beside the file, a
//! sidecar `<file>.chain` holds **checkpoints**: signed statements of how
//! many lines the file had, how many bytes they made and the head of a
//! SHA-256 chain over them,
//!
//! ```text
//! h_0 = SHA-256("auditcol-trail-v1" ‖ str(exporter id) ‖ str(trail id))
//! h_n = SHA-256(h_{n-1} ‖ line_n)          line_n with its '\n'
//! ```
//!
//! The chain runs on across rotations: each file's checkpoints carry the
//! head it starts from (`previous_head`, the previous file's final head),
//! and the last checkpoint of a rotated file is `sealed`. Any change to a
//! covered line — an edit, an insertion, a deletion, a swap, a cut — changes
//! the head at the next checkpoint; a checkpoint cannot be redone without
//! the signing key. ARCHITECTURE.md ("The integrity trail") specifies the
//! format byte for byte.
//!
//! - [`chain`]: the hash chain, streamed ([`ChainHasher`]).
//! - [`checkpoint`]: the checkpoint, its canonical signed bytes, its JSON line.
//! - [`keys`]: Ed25519 (PKCS#8 PEM) and HMAC-SHA256 signers and verifiers, `keygen`.
//! - [`sidecar`]: reading sidecars, torn last lines included.
//! - [`trail`]: the writer's state: what the next checkpoint says.
//! - [`verify`]: the verifier.

pub mod chain;
pub mod checkpoint;
mod hex;
pub mod keys;
pub mod sidecar;
pub mod trail;
pub mod verify;

pub use chain::{ChainHasher, Head};
pub use checkpoint::{Checkpoint, Reason};
pub use keys::{Algorithm, KeyError, TrailSigner, TrailVerifier};
pub use sidecar::sidecar_path;
pub use trail::TrailState;
pub use verify::{Problem, ProblemKind, Report, VerifyOptions, verify_paths};
