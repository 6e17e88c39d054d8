//! `integrity`: the sidecar `<file>.chain` written beside the output file —
//! the checkpoints of its hash chain (format and verifier:
//! `auditcol_integrity`). The writer calls in here after each write, at
//! rotation and at start, where an unfinished rotation is completed and the
//! lines written after the last checkpoint before a crash are hashed again.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use auditcol_integrity::checkpoint::new_trail_id;
use auditcol_integrity::sidecar::read_sidecar_end;
use auditcol_integrity::{Checkpoint, Reason, TrailSigner, TrailState, sidecar_path};

/// Takes back a buffer of lines once they are hashed (the sender's pool).
pub(crate) type Recycle = Arc<dyn Fn(Vec<u8>) + Send + Sync>;

/// What a writer needs to keep a trail.
#[derive(Clone)]
pub(crate) struct TrailOptions {
    /// The exporter id: part of `h_0` when a trail begins.
    pub exporter: String,
    /// Signs the checkpoints.
    pub signer: Arc<TrailSigner>,
    /// Where hashed buffers go.
    pub recycle: Recycle,
}

/// The trail of the file being written: its chain and its open sidecar.
pub(crate) struct Trail {
    signer: Arc<TrailSigner>,
    state: TrailState,
    sidecar_path: PathBuf,
    sidecar: File,
    /// The sidecar's length: where the next checkpoint goes.
    sidecar_len: u64,
    /// The output file's name, written in its checkpoints.
    live_name: String,
    /// Where to cut the sidecar back to: a failed append left part of itself.
    cut_to: Option<u64>,
}

/// The next file's trail, ready before a rotation is committed.
pub(crate) struct PreparedFile {
    state: TrailState,
    /// The next file's sidecar under its temporary name, holding its first
    /// checkpoint.
    sidecar: File,
    sidecar_len: u64,
    pub temp_path: PathBuf,
}

/// The name of a file, for checkpoints.
pub(crate) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The temporary name of the next file's sidecar during a rotation.
pub(crate) fn temp_sidecar_path(path: &Path) -> PathBuf {
    path.with_file_name(format!(".{}.chain.rotating", file_name(path)))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

/// What to do when the trail on disk does not fit: the operator's move.
fn set_aside(path: &Path) -> String {
    format!(
        "check it with `auditcol verify {}`, then keep {} and its .chain as evidence by moving them aside: a new trail begins at the next start",
        path.display(),
        file_name(path)
    )
}

fn open_sidecar(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
}

/// Reads the last checkpoint of the sidecar at `path` and checks it was
/// signed with our key. `None`: no sidecar, or no checkpoint in it.
fn last_checkpoint(
    path: &Path,
    signer: &TrailSigner,
    cut_torn: bool,
) -> io::Result<Option<Checkpoint>> {
    let mut sidecar = match OpenOptions::new().read(true).append(cut_torn).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let end =
        read_sidecar_end(&mut sidecar).map_err(|e| invalid(format!("{}: {e}", path.display())))?;
    if let Some(torn) = end.torn
        && cut_torn
    {
        sidecar.set_len(torn.offset)?;
        sidecar.sync_data()?;
        tracing::warn!(
            sidecar = %path.display(),
            bytes = torn.len,
            "cut off a checkpoint torn by a crash while it was written"
        );
    }
    let checkpoint = match end.last {
        None => return Ok(None),
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            return Err(invalid(format!(
                "the last line of {} is not a valid checkpoint ({e}); {}",
                path.display(),
                set_aside(path)
            )));
        }
    };
    if let Err(problem) = checkpoint.verify_signature(&signer.verifier()) {
        return Err(invalid(format!(
            "the last checkpoint of {}: {problem}. Configure the key the trail was begun with, or {}",
            path.display(),
            set_aside(path)
        )));
    }
    Ok(Some(checkpoint))
}

/// At start, before the output file is opened: completes a rotation that a
/// crash interrupted after its checkpoint sealed the file (the sidecar at
/// the live name is sealed): the file and its sidecar get their backup names.
pub(crate) fn finish_interrupted_rotation(path: &Path, options: &TrailOptions) -> io::Result<()> {
    let _ = std::fs::remove_file(temp_sidecar_path(path));
    let sidecar = sidecar_path(path);
    let Some(sealed) = last_checkpoint(&sidecar, &options.signer, true)? else {
        return Ok(());
    };
    if !sealed.sealed {
        return Ok(());
    }
    let backup = path.with_file_name(&sealed.file);
    if path.exists() && !backup.exists() {
        std::fs::rename(path, &backup)?;
    }
    std::fs::rename(&sidecar, sidecar_path(&backup))?;
    tracing::warn!(
        path = %path.display(),
        backup = %backup.display(),
        "finished a rotation interrupted by a crash: the file was sealed but not yet moved aside"
    );
    Ok(())
}

impl Trail {
    /// Opens the trail of the output file `path` (open as `data`): goes on
    /// from the last checkpoint of its sidecar, or in a new file after the
    /// newest sealed backup, or begins a new trail. Lines in the file that
    /// no checkpoint covers (written after the last one before a crash, or
    /// before the trail began) are hashed and checkpointed now; a line torn
    /// by a crash is cut off. `backups`: the rotated files, oldest first.
    pub(crate) fn open(
        path: &Path,
        data: &File,
        options: &TrailOptions,
        backups: &[PathBuf],
    ) -> io::Result<Trail> {
        let sidecar_path = sidecar_path(path);
        let live_name = file_name(path);
        let last = last_checkpoint(&sidecar_path, &options.signer, true)?;
        let (state, opening) = match last {
            Some(c) if c.sealed => {
                return Err(invalid(format!(
                    "{} ends with a sealed checkpoint but the rotation it began could not be finished",
                    sidecar_path.display()
                )));
            }
            Some(c) => (TrailState::resume(&c), None),
            None => Self::new_file(path, options, backups)?,
        };
        let sidecar = open_sidecar(&sidecar_path)?;
        let sidecar_len = sidecar.metadata()?.len();
        let mut trail = Trail {
            signer: options.signer.clone(),
            state,
            sidecar_path,
            sidecar,
            sidecar_len,
            live_name,
            cut_to: None,
        };
        if let Some(reason) = opening {
            trail.checkpoint(reason)?;
        }
        trail.catch_up(path, data, opening.is_some())?;
        Ok(trail)
    }

    /// The state of a file that has no checkpoint yet, and the reason of
    /// its first one.
    fn new_file(
        path: &Path,
        options: &TrailOptions,
        backups: &[PathBuf],
    ) -> io::Result<(TrailState, Option<Reason>)> {
        if let Some(newest) = backups.iter().rev().find(|b| sidecar_path(b).exists()) {
            if let Some(sealed) = last_checkpoint(&sidecar_path(newest), &options.signer, false)?
                && sealed.sealed
            {
                tracing::info!(
                    path = %path.display(),
                    trail = %sealed.trail,
                    file_seq = sealed.file_seq + 1,
                    after = %newest.display(),
                    "going on with the trail in a new file"
                );
                return Ok((TrailState::after_sealed(&sealed), Some(Reason::Rotation)));
            }
            tracing::info!(
                path = %path.display(),
                newest_backup = %newest.display(),
                "the newest rotated file's trail was not sealed: beginning a new trail"
            );
        }
        let trail = new_trail_id().map_err(io::Error::other)?;
        tracing::info!(path = %path.display(), trail = %trail, exporter = %options.exporter, "beginning a new integrity trail");
        Ok((
            TrailState::begin(&options.exporter, &trail),
            Some(Reason::Start),
        ))
    }

    /// Hashes the lines of the output file after the last checkpoint, cuts
    /// off a torn last line, and checkpoints what it hashed. `adopting`:
    /// the trail of this file begins now, so its lines predate it.
    fn catch_up(&mut self, path: &Path, data: &File, adopting: bool) -> io::Result<()> {
        let covered = self.state.bytes();
        let size = data.metadata()?.len();
        if size < covered {
            return Err(invalid(format!(
                "{} has {size} bytes, but its last checkpoint covers {covered} bytes ({} lines): it was cut after it was checkpointed; {}",
                path.display(),
                self.state.lines(),
                set_aside(path)
            )));
        }
        if size == covered {
            return Ok(());
        }
        let mut reader = File::open(path)?;
        if covered > 0 {
            let mut last = [0u8];
            reader.seek(SeekFrom::Start(covered - 1))?;
            reader.read_exact(&mut last)?;
            if last[0] != b'\n' {
                return Err(invalid(format!(
                    "{}: byte {covered}, where its last checkpoint ends, is not the end of a line: the file was changed; {}",
                    path.display(),
                    set_aside(path)
                )));
            }
        }
        let first_line = self.state.lines() + 1;
        let mut buffer = vec![0u8; 1 << 20];
        loop {
            let n = match reader.read(&mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.state.feed(&buffer[..n]);
        }
        let complete = self.state.bytes();
        if complete < size {
            data.set_len(complete)?;
            data.sync_data()?;
            self.state.discard_partial();
            tracing::warn!(
                path = %path.display(),
                bytes = size - complete,
                line = self.state.lines() + 1,
                "cut off a line torn by a crash while it was written (it was never acknowledged)"
            );
        }
        let lines = self.state.lines() + 1 - first_line;
        if lines == 0 {
            return Ok(());
        }
        let reason = if adopting {
            Reason::Adopted
        } else {
            Reason::Recovery
        };
        data.sync_data()?;
        self.checkpoint(reason)?;
        if adopting {
            tracing::warn!(
                path = %path.display(),
                lines,
                bytes = complete,
                "hashed {lines} lines that were in the file before its trail began: the trail covers them from now on, but cannot tell whether they were changed before"
            );
        } else {
            tracing::warn!(
                path = %path.display(),
                first_line,
                last_line = first_line + lines - 1,
                lines,
                from_byte = covered,
                to_byte = complete,
                "re-hashed {lines} lines written after the last checkpoint before the collector stopped, and checkpointed them"
            );
        }
        Ok(())
    }

    /// Hashes whole lines just appended to the output file.
    pub(crate) fn feed(&mut self, lines: &[u8]) {
        self.state.feed(lines);
    }

    /// Lines hashed since the last checkpoint (or no checkpoint yet).
    pub(crate) fn is_dirty(&self) -> bool {
        self.state.is_dirty()
    }

    /// The chain state, to restore after a failed write.
    pub(crate) fn snapshot(&self) -> TrailState {
        self.state.clone()
    }

    /// Puts back a state from [`snapshot`](Self::snapshot).
    pub(crate) fn restore(&mut self, state: TrailState) {
        self.state = state;
    }

    /// Appends a checkpoint of the lines so far and fsyncs the sidecar. The
    /// caller has made the output file durable up to them.
    pub(crate) fn checkpoint(&mut self, reason: Reason) -> io::Result<()> {
        let checkpoint = self
            .state
            .checkpoint(&self.live_name, reason, false, &self.signer);
        self.append(&checkpoint)
    }

    /// Writes `checkpoint` whole or not at all (a failed append is cut back
    /// out), fsynced.
    fn append(&mut self, checkpoint: &Checkpoint) -> io::Result<()> {
        self.repair()?;
        let line = checkpoint.to_line();
        let written = self
            .sidecar
            .write_all(&line)
            .and_then(|()| self.sidecar.sync_data());
        match written {
            Ok(()) => {
                self.sidecar_len += line.len() as u64;
                self.state.committed(checkpoint);
                Ok(())
            }
            Err(e) => {
                self.cut_to = Some(self.sidecar_len);
                let _ = self.repair();
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "cannot write a checkpoint to {}: {e}",
                        self.sidecar_path.display()
                    ),
                ))
            }
        }
    }

    /// Cuts the sidecar back to before a failed append, if that is still to do.
    fn repair(&mut self) -> io::Result<()> {
        let Some(length) = self.cut_to else {
            return Ok(());
        };
        self.sidecar
            .set_len(length)
            .and_then(|()| self.sidecar.sync_data())
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot cut {} back to {length} bytes after a failed write: {e}",
                        self.sidecar_path.display()
                    ),
                )
            })?;
        self.cut_to = None;
        Ok(())
    }

    /// Step one of a rotation to `backup_name`: the next file's sidecar,
    /// under a temporary name, with its first checkpoint. Nothing is
    /// committed yet.
    pub(crate) fn prepare_next(
        &self,
        path: &Path,
        backup_name: &str,
    ) -> io::Result<(Checkpoint, PreparedFile)> {
        let sealed = self
            .state
            .checkpoint(backup_name, Reason::Rotation, true, &self.signer);
        let mut state = self.state.next_file(&sealed);
        let opening = state.checkpoint(&self.live_name, Reason::Rotation, false, &self.signer);
        let temp_path = temp_sidecar_path(path);
        let line = opening.to_line();
        let mut sidecar = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&temp_path)
            .and_then(|mut f| {
                f.write_all(&line)?;
                f.sync_data()?;
                Ok(f)
            })
            .map_err(|e| {
                let _ = std::fs::remove_file(&temp_path);
                io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", temp_path.display()),
                )
            })?;
        sidecar.seek(SeekFrom::End(0))?;
        state.committed(&opening);
        Ok((
            sealed,
            PreparedFile {
                state,
                sidecar,
                sidecar_len: line.len() as u64,
                temp_path,
            },
        ))
    }

    /// Step two: the sealing checkpoint, which commits the rotation (a crash
    /// after it is finished at the next start).
    pub(crate) fn seal(&mut self, sealed: &Checkpoint) -> io::Result<()> {
        self.append(sealed)
    }

    /// Last step: the trail goes on in the prepared file, now at the live name.
    pub(crate) fn switch_to(&mut self, next: PreparedFile) {
        self.state = next.state;
        self.sidecar = next.sidecar;
        self.sidecar_len = next.sidecar_len;
        self.cut_to = None;
    }
}

/// Commands to the trail's thread, carried out in the order sent: lines are
/// hashed in the order they were written, and a checkpoint covers exactly
/// the lines sent before it.
enum Command {
    /// Lines just written.
    Lines(Vec<u8>),
    /// Lines just written and synced, and their checkpoint (`sync: true`);
    /// when it fails they are taken back out of the chain.
    Batch(Vec<u8>, SyncSender<io::Result<()>>),
    /// A checkpoint of the lines so far (synced by the writer).
    Checkpoint(Reason, SyncSender<io::Result<()>>),
    /// Rotation: the next file's sidecar under its temporary name, then the
    /// sealing checkpoint. Answers the temporary name.
    Seal {
        path: PathBuf,
        backup_name: String,
        reply: SyncSender<io::Result<PathBuf>>,
    },
    /// The renames are done: go on in the next file.
    Switch,
    /// Swaps the sidecar handle (tests: a sidecar that refuses writes).
    #[cfg(test)]
    ReplaceSidecar(File, SyncSender<File>),
}

/// Commands waiting at most: past this the writer waits for the hashing
/// (backpressure) instead of queuing more buffers. Room for bursts: on a
/// busy machine the thread is not always running, and a writer that waits
/// for it holds up every other write.
const QUEUED_COMMANDS: usize = 64;

/// The trail, kept by a thread of its own: hashing the lines (SHA-256 of
/// every line, the main cost of `integrity`) and signing and writing
/// checkpoints happen there, not while the writer is held — without `sync`
/// not even on the way to the acknowledgement.
pub(crate) struct TrailWorker {
    commands: Option<SyncSender<Command>>,
    thread: Option<JoinHandle<()>>,
    sidecar_path: PathBuf,
    /// Lines were sent since the last checkpoint was asked for.
    sent_since_checkpoint: bool,
    /// The last checkpoint failed: the lines it was to cover are still due one.
    failed: Arc<AtomicBool>,
}

fn gone() -> io::Error {
    io::Error::other("the integrity trail's thread has stopped")
}

impl TrailWorker {
    /// Hands `trail` to a thread of its own.
    pub(crate) fn spawn(trail: Trail, recycle: Recycle) -> io::Result<TrailWorker> {
        let (commands, inbox) = sync_channel(QUEUED_COMMANDS);
        let sidecar_path = trail.sidecar_path.clone();
        let failed = Arc::new(AtomicBool::new(false));
        let flag = failed.clone();
        let thread = std::thread::Builder::new()
            .name("auditcol-trail".into())
            .spawn(move || run(trail, inbox, recycle, flag))?;
        Ok(TrailWorker {
            commands: Some(commands),
            thread: Some(thread),
            sidecar_path,
            sent_since_checkpoint: false,
            failed,
        })
    }

    fn send(&self, command: Command) -> io::Result<()> {
        self.commands
            .as_ref()
            .ok_or_else(gone)?
            .send(command)
            .map_err(|_| gone())
    }

    /// Lines just written: hashed in the background.
    pub(crate) fn lines(&mut self, lines: Vec<u8>) -> io::Result<()> {
        self.sent_since_checkpoint = true;
        self.send(Command::Lines(lines))
    }

    /// Lines just written and synced, and their checkpoint, waited for.
    pub(crate) fn batch(&mut self, lines: Vec<u8>) -> io::Result<()> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::Batch(lines, reply))?;
        answer.recv().map_err(|_| gone())?
    }

    /// Whether lines are due a checkpoint.
    pub(crate) fn is_dirty(&self) -> bool {
        self.sent_since_checkpoint || self.failed.load(Ordering::Relaxed)
    }

    /// Asks for a checkpoint of the lines sent so far; the answer comes on
    /// the receiver (wait for it without holding the writer).
    pub(crate) fn checkpoint(&mut self, reason: Reason) -> io::Result<Receiver<io::Result<()>>> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::Checkpoint(reason, reply))?;
        self.sent_since_checkpoint = false;
        Ok(answer)
    }

    /// Prepares the next file and seals this one; answers the next
    /// sidecar's temporary name.
    pub(crate) fn seal(&mut self, path: &Path, backup_name: &str) -> io::Result<PathBuf> {
        let (reply, answer) = sync_channel(1);
        self.send(Command::Seal {
            path: path.to_owned(),
            backup_name: backup_name.to_owned(),
            reply,
        })?;
        let temp = answer.recv().map_err(|_| gone())??;
        self.sent_since_checkpoint = false;
        Ok(temp)
    }

    /// After the renames of a rotation.
    pub(crate) fn switch(&mut self) -> io::Result<()> {
        self.send(Command::Switch)
    }

    /// The sidecar's path.
    pub(crate) fn sidecar_path(&self) -> &Path {
        &self.sidecar_path
    }

    /// Swaps the sidecar handle, to make appends fail.
    #[cfg(test)]
    pub(crate) fn replace_sidecar(&mut self, file: File) -> File {
        let (reply, answer) = sync_channel(1);
        self.send(Command::ReplaceSidecar(file, reply)).unwrap();
        answer.recv().unwrap()
    }
}

impl Drop for TrailWorker {
    /// Lets the thread finish what was sent (hashing only: no checkpoint is
    /// written unless asked for) and waits for it.
    fn drop(&mut self) {
        self.commands = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The trail's thread.
fn run(mut trail: Trail, inbox: Receiver<Command>, recycle: Recycle, failed: Arc<AtomicBool>) {
    let mut next: Option<PreparedFile> = None;
    for command in inbox {
        match command {
            Command::Lines(lines) => {
                trail.feed(&lines);
                recycle(lines);
            }
            Command::Batch(lines, reply) => {
                let snapshot = trail.snapshot();
                trail.feed(&lines);
                recycle(lines);
                let done = trail.checkpoint(Reason::Batch);
                if done.is_err() {
                    trail.restore(snapshot);
                }
                let _ = reply.send(done);
            }
            Command::Checkpoint(reason, reply) => {
                let done = if trail.is_dirty() {
                    trail.checkpoint(reason)
                } else {
                    Ok(())
                };
                failed.store(done.is_err(), Ordering::Relaxed);
                let _ = reply.send(done);
            }
            Command::Seal {
                path,
                backup_name,
                reply,
            } => {
                let done = trail
                    .prepare_next(&path, &backup_name)
                    .and_then(|(sealed, prepared)| match trail.seal(&sealed) {
                        Ok(()) => Ok(prepared),
                        Err(e) => {
                            let _ = std::fs::remove_file(&prepared.temp_path);
                            Err(e)
                        }
                    })
                    .map(|prepared| {
                        let temp = prepared.temp_path.clone();
                        next = Some(prepared);
                        temp
                    });
                if done.is_ok() {
                    failed.store(false, Ordering::Relaxed);
                }
                let _ = reply.send(done);
            }
            Command::Switch => {
                if let Some(prepared) = next.take() {
                    trail.switch_to(prepared);
                }
            }
            #[cfg(test)]
            Command::ReplaceSidecar(file, reply) => {
                let _ = reply.send(std::mem::replace(&mut trail.sidecar, file));
            }
        }
    }
}
