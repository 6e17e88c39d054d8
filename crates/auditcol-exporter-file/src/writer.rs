//! The output file: append, rotate by size, keep a bounded number of backups.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use auditcol_integrity::{Reason, sidecar_path};
use time::{Duration, OffsetDateTime};

use std::sync::mpsc::Receiver;

use crate::trail::{Trail, TrailOptions, TrailWorker, file_name};

/// When to rotate and how many backups to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rotation {
    /// Rotate before a write would take the file past this size.
    pub max_bytes: u64,
    /// Backups to keep; 0 = all.
    pub max_backups: usize,
}

/// An open output file. Blocking: use it from `spawn_blocking`.
pub(crate) struct FileWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Option<Rotation>,
    sync: bool,
    /// Time in the name of the last backup, to keep names in order even
    /// when rotating several times a millisecond.
    last_backup: Option<OffsetDateTime>,
    /// Rotations that failed in a row.
    rotation_failures: u64,
    /// Where to cut the file back to: a failed write left part of itself.
    cut_to: Option<u64>,
    /// The integrity trail's thread (chain and sidecar), with `integrity`.
    trail: Option<TrailWorker>,
    /// A rotation committed by its sealing checkpoint but not finished
    /// (a rename failed): nothing is written until it is.
    pending: Option<PendingRotation>,
    /// Bytes of the current file known to be on disk.
    synced: u64,
    /// Where the next write-behind starts: writeback was started up to here.
    written_back: u64,
    /// A [`BackgroundSync`] is running.
    sync_in_flight: bool,
    /// Counts the files written (rotations): a [`Synced`] of an earlier
    /// file says nothing of the current one.
    generation: u64,
}

/// With a trail and without `sync`: data written since writeback was last
/// started past which it is started again in the background (write-behind,
/// `sync_file_range` on Linux). Checkpoints and rotations then find most of
/// the data on disk when they must make it durable. (A full `fdatasync`
/// every few megabytes instead commits the journal each time, and writes
/// to the file wait for those commits: a third of the throughput, measured.)
const WRITE_BEHIND: u64 = 16 << 20;

/// Disk work to do without holding the writer.
pub(crate) struct BackgroundSync {
    file: File,
    kind: SyncKind,
    generation: u64,
}

enum SyncKind {
    /// Start writing `from..to` back, without waiting for it.
    StartWriteback { from: u64, to: u64 },
    /// `fdatasync`: the file's first `size` bytes are durable after it.
    Durable { size: u64 },
}

/// What a [`BackgroundSync`] did.
pub(crate) struct Synced {
    /// The durable length, after a successful `fdatasync`.
    durable: Option<u64>,
    generation: u64,
}

impl BackgroundSync {
    /// Does it.
    pub(crate) fn run(self) -> Synced {
        let durable = match self.kind {
            SyncKind::StartWriteback { from, to } => {
                start_writeback(&self.file, from, to);
                None
            }
            SyncKind::Durable { size } => self.file.sync_data().is_ok().then_some(size),
        };
        Synced {
            durable,
            generation: self.generation,
        }
    }
}

/// Starts writing back `from..to` of `file` without waiting (and without a
/// journal commit). Best effort: a failure only leaves more for the next sync.
#[cfg(target_os = "linux")]
fn start_writeback(file: &File, from: u64, to: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(from), i64::try_from(to - from)) else {
        return;
    };
    // SAFETY: the descriptor is open for the duration of the call (borrowed
    // from `file`); sync_file_range reads no memory of ours.
    unsafe {
        libc::sync_file_range(file.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

#[cfg(not(target_os = "linux"))]
fn start_writeback(_file: &File, _from: u64, _to: u64) {}

/// The renames left to do of a rotation of a file with a trail.
struct PendingRotation {
    /// Renames done so far (of the four in [`FileWriter::finish_rotation`]).
    done: u8,
    backup: PathBuf,
    fresh_path: PathBuf,
    fresh: File,
    /// The next file's sidecar, under its temporary name.
    next_sidecar: PathBuf,
}

impl FileWriter {
    /// Opens `path` for appending, creating it and its parent directories.
    /// With `sync`, the directory is synced too, so that a new file's name
    /// survives a crash. With `trail`, the trail is opened too (see
    /// [`Trail::open`]), after finishing a rotation a crash interrupted.
    pub(crate) fn open(
        path: &Path,
        rotation: Option<Rotation>,
        sync: bool,
        trail: Option<&TrailOptions>,
    ) -> io::Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        if let Some(options) = trail {
            crate::trail::finish_interrupted_rotation(path, options)?;
        }
        let existed = path.exists();
        let file = open_append(path)?;
        let mut writer = Self {
            path: path.to_owned(),
            file,
            size: 0,
            rotation,
            sync,
            last_backup: None,
            rotation_failures: 0,
            cut_to: None,
            trail: None,
            pending: None,
            synced: 0,
            written_back: 0,
            sync_in_flight: false,
            generation: 0,
        };
        if let Some(options) = trail {
            let backups = writer.backups()?;
            let trail = Trail::open(path, &writer.file, options, &backups)?;
            writer.trail = Some(TrailWorker::spawn(trail, options.recycle.clone())?);
        }
        writer.size = writer.file.metadata()?.len();
        if writer.trail.is_some() {
            // Opening a trail synced what it read back.
            writer.synced = writer.size;
        }
        if (sync || trail.is_some()) && !existed {
            writer.sync_dir()?;
        }
        Ok(writer)
    }

    /// Appends `bytes` (whole lines) in one write, rotating first if they
    /// would not fit, then fsyncs if asked to.
    ///
    /// All or nothing: when the write or its sync fails, the file is cut
    /// back to its length before the write, so a retry never follows a torn
    /// line and no line is left half-written. (If even the cut fails, the
    /// next write tries it again first and refuses to append until it
    /// succeeds.)
    ///
    /// With a trail, the lines are hashed into the chain once written, and
    /// with `sync` a checkpoint of them is appended to the sidecar and
    /// fsynced too (after the data): when that fails, the batch is cut back
    /// out of the file as for a failed write.
    ///
    /// With a trail and without `sync`, once more than [`WRITE_BEHIND`] is
    /// written but not synced, the write hands back a [`BackgroundSync`] to
    /// run without holding the writer. With a trail, `bytes` is handed to the
    /// trail's thread (and left empty).
    pub(crate) fn write_lines(
        &mut self,
        bytes: &mut Vec<u8>,
    ) -> io::Result<Option<BackgroundSync>> {
        self.repair()?;
        self.finish_rotation()?;
        if self.rotation.is_some_and(|r| {
            self.size > 0 && self.size.saturating_add(bytes.len() as u64) > r.max_bytes
        }) {
            self.rotate();
            // A rotation committed but not finished: no write in the sealed file.
            self.finish_rotation()?;
        }
        let before = self.size;
        let len = bytes.len() as u64;
        let written = self.file.write_all(bytes).and_then(|()| {
            if self.sync {
                self.file.sync_data()?;
                self.synced = before + len;
            }
            Ok(())
        });
        // The trail's thread takes the buffer: the lines are hashed there.
        let written = match (written, &mut self.trail) {
            (Ok(()), Some(trail)) if self.sync => trail.batch(std::mem::take(bytes)),
            (Ok(()), Some(trail)) => trail.lines(std::mem::take(bytes)),
            (written, _) => written,
        };
        match written {
            Ok(()) => {
                self.size += len;
                Ok(self.write_behind())
            }
            Err(e) => {
                // Part of the batch may be in the file (a full disk takes
                // what fits): take it out again.
                self.size = self.file.metadata().map_or(u64::MAX, |m| m.len());
                if self.size != before {
                    self.size = u64::MAX;
                    self.cut_to = Some(before);
                    let _ = self.repair();
                }
                Err(e)
            }
        }
    }

    /// [`write_lines`](Self::write_lines) of a copy of `bytes`.
    #[cfg(test)]
    pub(crate) fn write_batch(&mut self, bytes: &[u8]) -> io::Result<Option<BackgroundSync>> {
        self.write_lines(&mut bytes.to_vec())
    }

    /// With a trail and without `sync`, when [`WRITE_BEHIND`] bytes were
    /// written since writeback was last started: its start, to run without
    /// holding the writer.
    fn write_behind(&mut self) -> Option<BackgroundSync> {
        if self.trail.is_none()
            || self.sync
            || self.sync_in_flight
            || self.size.saturating_sub(self.written_back) <= WRITE_BEHIND
        {
            return None;
        }
        let file = self.file.try_clone().ok()?;
        let from = self.written_back.max(self.synced);
        self.written_back = self.size;
        self.sync_in_flight = true;
        Some(BackgroundSync {
            file,
            kind: SyncKind::StartWriteback {
                from,
                to: self.size,
            },
            generation: self.generation,
        })
    }

    /// With a trail, when part of the file may not be on disk and no
    /// background sync is running: an `fdatasync` to run without holding
    /// the writer (before a checkpoint, which then syncs only what came since).
    pub(crate) fn background_sync(&mut self) -> Option<BackgroundSync> {
        if self.trail.is_none() || self.sync_in_flight || self.synced >= self.size {
            return None;
        }
        let file = self.file.try_clone().ok()?;
        self.sync_in_flight = true;
        Some(BackgroundSync {
            file,
            kind: SyncKind::Durable { size: self.size },
            generation: self.generation,
        })
    }

    /// Records what a [`BackgroundSync`] did.
    pub(crate) fn note_synced(&mut self, synced: Synced) {
        self.sync_in_flight = false;
        if let Some(size) = synced.durable
            && synced.generation == self.generation
        {
            self.synced = self.synced.max(size);
        }
    }

    /// Syncs the data file if part of it may not be on disk.
    fn sync_written(&mut self) -> io::Result<()> {
        if self.synced < self.size {
            let size = self.size;
            self.file.sync_data()?;
            self.synced = size;
        }
        Ok(())
    }

    /// Cuts the file back to where the last failed write began, if that is
    /// still to do.
    fn repair(&mut self) -> io::Result<()> {
        let Some(length) = self.cut_to else {
            return Ok(());
        };
        self.file
            .set_len(length)
            .and_then(|()| self.file.sync_data())
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot cut the file back to {length} bytes after a failed write: {e}"),
                )
            })?;
        self.size = length;
        self.synced = self.synced.min(length);
        self.written_back = self.written_back.min(length);
        self.cut_to = None;
        Ok(())
    }

    /// Flushes file data to disk.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// With a trail: asks for a checkpoint of the lines written since the
    /// last one, if any, once they are synced to disk. The answer comes on
    /// the receiver: wait for it without holding the writer.
    pub(crate) fn checkpoint(
        &mut self,
        reason: Reason,
    ) -> io::Result<Option<Receiver<io::Result<()>>>> {
        self.repair()?;
        self.finish_rotation()?;
        if !self.trail.as_ref().is_some_and(TrailWorker::is_dirty) {
            return Ok(None);
        }
        // A checkpoint never covers data that is not on disk.
        self.sync_written()?;
        match &mut self.trail {
            Some(trail) => trail.checkpoint(reason).map(Some),
            None => Ok(None),
        }
    }

    /// [`checkpoint`](Self::checkpoint), waiting for it.
    pub(crate) fn checkpoint_and_wait(&mut self, reason: Reason) -> io::Result<()> {
        match self.checkpoint(reason)? {
            Some(answer) => answer
                .recv()
                .map_err(|_| io::Error::other("the integrity trail's thread has stopped"))?,
            None => Ok(()),
        }
    }

    /// At shutdown: a last checkpoint, and the data on disk whatever `sync` says.
    pub(crate) fn close(mut self) -> io::Result<()> {
        self.checkpoint_and_wait(Reason::Shutdown)?;
        self.sync()
    }

    fn sync_dir(&self) -> io::Result<()> {
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)?.sync_all()
    }

    /// Moves the file aside as a backup and continues in a fresh one.
    ///
    /// Atomic from the writer's point of view: the fresh file is created
    /// first (under a temporary name), so when that is impossible (no file
    /// handles, no inodes, no space) nothing moves and writing goes on in
    /// the current file, past `max_bytes`, until a later rotation succeeds.
    /// Writes never go to a backup.
    fn rotate(&mut self) {
        let rotated = if self.trail.is_some() {
            self.try_rotate_with_trail()
        } else {
            self.try_rotate()
        };
        match rotated {
            Ok(()) => {}
            Err(e) if self.pending.is_some() => {
                // Committed: finish_rotation retries before the next write.
                tracing::error!(path = %self.path.display(), error = %e, "cannot finish rotating: writes wait until the renames succeed");
            }
            Err(e) => {
                self.rotation_failures += 1;
                if self.rotation_failures == 1 || self.rotation_failures.is_multiple_of(100) {
                    tracing::warn!(
                        path = %self.path.display(),
                        error = %e,
                        failures = self.rotation_failures,
                        "cannot rotate: writing on in the current file past max_megabytes until rotation succeeds"
                    );
                }
            }
        }
    }

    fn try_rotate(&mut self) -> io::Result<()> {
        let (fresh_path, fresh) = self.create_fresh()?;
        let backup = self.free_backup_path();
        if let Err(e) = std::fs::rename(&self.path, &backup) {
            let _ = std::fs::remove_file(&fresh_path);
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot rename {} to {}: {e}",
                    self.path.display(),
                    backup.display()
                ),
            ));
        }
        if let Err(e) = std::fs::rename(&fresh_path, &self.path) {
            // Put the file back: the current handle writes to it again.
            let _ = std::fs::rename(&backup, &self.path);
            let _ = std::fs::remove_file(&fresh_path);
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot rename {} to {}: {e}",
                    fresh_path.display(),
                    self.path.display()
                ),
            ));
        }
        // The backup's data is complete (every write was whole); make it durable.
        if self.sync {
            self.file.sync_data()?;
        }
        self.file = fresh;
        self.size = 0;
        self.synced = 0;
        self.written_back = 0;
        self.generation += 1;
        if self.sync {
            self.sync_dir()?;
        }
        self.rotated();
        Ok(())
    }

    /// After a rotation: the failures are over, old backups go.
    fn rotated(&mut self) {
        if self.rotation_failures > 0 {
            tracing::info!(path = %self.path.display(), failures = self.rotation_failures, "rotation works again");
        }
        self.rotation_failures = 0;
        let max_backups = self.rotation.map_or(0, |r| r.max_backups);
        if let Err(e) = self.prune(max_backups) {
            // Too many backups is not worth failing a write for.
            tracing::warn!(path = %self.path.display(), error = %e, "cannot delete old rotated files");
        }
    }

    /// The fresh file of a rotation, under its temporary name, emptied.
    fn create_fresh(&self) -> io::Result<(PathBuf, File)> {
        let fresh_path = self
            .path
            .with_file_name(format!(".{}.rotating", file_name(&self.path)));
        // A leftover of a rotation interrupted by a crash is emptied: its
        // name was never the file's, so nothing was acknowledged in it.
        let fresh = open_append(&fresh_path)
            .and_then(|f| f.set_len(0).map(|()| f))
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create {}: {e}", fresh_path.display()),
                )
            })?;
        Ok((fresh_path, fresh))
    }

    /// Rotation with a trail. Prepared first (the fresh file, the next
    /// sidecar with its first checkpoint: when either is impossible nothing
    /// changes and writing goes on in the current file), then committed by
    /// the sealing checkpoint, then the four renames of
    /// [`finish_rotation`](Self::finish_rotation). A crash at any point is
    /// recovered at start: before the seal the rotation never happened,
    /// after it the start finishes it.
    fn try_rotate_with_trail(&mut self) -> io::Result<()> {
        let (fresh_path, fresh) = self.create_fresh()?;
        let backup = self.free_backup_path();
        let sealed = self.sync_written().and_then(|()| match &mut self.trail {
            Some(trail) => trail.seal(&self.path, &file_name(&backup)),
            None => Err(io::Error::other("no trail")),
        });
        let next_sidecar = match sealed {
            Ok(path) => path,
            Err(e) => {
                let _ = std::fs::remove_file(&fresh_path);
                return Err(e);
            }
        };
        self.pending = Some(PendingRotation {
            done: 0,
            backup,
            fresh_path,
            fresh,
            next_sidecar,
        });
        self.finish_rotation()
    }

    /// The renames of a committed rotation, from where they stopped:
    /// file → backup, sidecar → backup's sidecar, fresh file → file, next
    /// sidecar → sidecar. In this order a crash leaves a state the start
    /// recognises (a sealed sidecar at the live name, or none).
    fn finish_rotation(&mut self) -> io::Result<()> {
        let Some(pending) = &mut self.pending else {
            return Ok(());
        };
        let Some(trail) = &mut self.trail else {
            return Ok(());
        };
        let sidecar = trail.sidecar_path().to_owned();
        let renames = [
            (self.path.clone(), pending.backup.clone()),
            (sidecar.clone(), sidecar_path(&pending.backup)),
            (pending.fresh_path.clone(), self.path.clone()),
            (pending.next_sidecar.clone(), sidecar),
        ];
        for (from, to) in &renames[usize::from(pending.done)..] {
            std::fs::rename(from, to).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot rename {} to {}: {e}", from.display(), to.display()),
                )
            })?;
            pending.done += 1;
        }
        let Some(pending) = self.pending.take() else {
            return Ok(());
        };
        self.file = pending.fresh;
        self.size = 0;
        self.synced = 0;
        self.written_back = 0;
        self.generation += 1;
        trail.switch()?;
        // The renames are the rotation's commit on disk: make them durable.
        self.sync_dir()?;
        self.rotated();
        Ok(())
    }

    /// `<stem>-<UTC time>.<ext>` next to the file, not yet taken, and
    /// later than the previous backup's.
    fn free_backup_path(&mut self) -> PathBuf {
        let (stem, ext) = self.name_parts();
        let mut time = OffsetDateTime::now_utc();
        if let Some(last) = self.last_backup {
            time = time.max(last + Duration::milliseconds(1));
        }
        loop {
            let name = match &ext {
                Some(ext) => format!("{stem}-{}.{ext}", backup_timestamp(time)),
                None => format!("{stem}-{}", backup_timestamp(time)),
            };
            let candidate = self.path.with_file_name(name);
            if !candidate.exists() {
                self.last_backup = Some(time);
                return candidate;
            }
            // Two rotations within a millisecond: keep names unique and in order.
            time += Duration::milliseconds(1);
        }
    }

    fn name_parts(&self) -> (String, Option<String>) {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match name.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() => (stem.to_owned(), Some(ext.to_owned())),
            _ => (name, None),
        }
    }

    /// The rotated files of this file, oldest first.
    pub(crate) fn backups(&self) -> io::Result<Vec<PathBuf>> {
        let (stem, ext) = self.name_parts();
        let prefix = format!("{stem}-");
        let suffix = ext.map(|e| format!(".{e}")).unwrap_or_default();
        let dir = match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        };
        let mut names: Vec<String> = std::fs::read_dir(&dir)?
            .filter_map(|entry| entry.ok())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| {
                name.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(&suffix))
                    .is_some_and(is_backup_timestamp)
            })
            .collect();
        // The timestamp format sorts by time.
        names.sort();
        Ok(names.into_iter().map(|n| dir.join(n)).collect())
    }

    fn prune(&self, max_backups: usize) -> io::Result<()> {
        if max_backups == 0 {
            return Ok(());
        }
        let backups = self.backups()?;
        let excess = backups.len().saturating_sub(max_backups);
        for old in &backups[..excess] {
            std::fs::remove_file(old)?;
            // A rotated file's trail goes with it.
            match std::fs::remove_file(sidecar_path(old)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `2024-05-01T10-00-00.123`: no `:` so the name is valid everywhere.
fn backup_timestamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn is_backup_timestamp(text: &str) -> bool {
    const SHAPE: &[u8] = b"dddd-dd-ddTdd-dd-dd.ddd";
    text.len() == SHAPE.len()
        && text.bytes().zip(SHAPE).all(|(c, &s)| match s {
            b'd' => c.is_ascii_digit(),
            _ => c == s,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).unwrap()
    }

    #[test]
    fn parent_directories_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a/b/audit.jsonl");
        let mut w = FileWriter::open(&path, None, false, None).unwrap();
        w.write_batch(b"one\n").unwrap();
        assert_eq!(read(&path), "one\n");
    }

    #[test]
    fn writes_append_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let mut w = FileWriter::open(&path, None, true, None).unwrap();
        w.write_batch(b"new\n").unwrap();
        assert_eq!(read(&path), "old\nnew\n");
    }

    #[test]
    fn a_write_that_would_overflow_rotates_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let rotation = Rotation {
            max_bytes: 10,
            max_backups: 5,
        };
        let mut w = FileWriter::open(&path, Some(rotation), false, None).unwrap();
        w.write_batch(b"12345\n").unwrap();
        w.write_batch(b"67890\n").unwrap();
        assert_eq!(read(&path), "67890\n");
        let backups = w.backups().unwrap();
        assert_eq!(backups.len(), 1);
        assert_eq!(read(&backups[0]), "12345\n");
        let name = backups[0]
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("audit-") && name.ends_with(".jsonl"),
            "{name}"
        );
        assert!(is_backup_timestamp(
            &name["audit-".len()..name.len() - ".jsonl".len()]
        ));
    }

    #[test]
    fn only_max_backups_are_kept_oldest_deleted_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let rotation = Rotation {
            max_bytes: 4,
            max_backups: 2,
        };
        let mut w = FileWriter::open(&path, Some(rotation), false, None).unwrap();
        for line in ["a1\n", "a2\n", "a3\n", "a4\n", "a5\n"] {
            w.write_batch(line.as_bytes()).unwrap();
        }
        let backups: Vec<String> = w.backups().unwrap().iter().map(|p| read(p)).collect();
        assert_eq!(backups, vec!["a3\n", "a4\n"]);
        assert_eq!(read(&path), "a5\n");
    }

    #[test]
    fn other_files_in_the_directory_are_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let unrelated = dir.path().join("audit-notes.jsonl");
        std::fs::write(&unrelated, "keep").unwrap();
        let rotation = Rotation {
            max_bytes: 1,
            max_backups: 1,
        };
        let mut w = FileWriter::open(&path, Some(rotation), false, None).unwrap();
        for line in ["x\n", "y\n", "z\n"] {
            w.write_batch(line.as_bytes()).unwrap();
        }
        assert_eq!(w.backups().unwrap().len(), 1);
        assert_eq!(read(&unrelated), "keep");
    }

    #[test]
    fn a_batch_larger_than_the_limit_is_written_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit");
        let rotation = Rotation {
            max_bytes: 2,
            max_backups: 0,
        };
        let mut w = FileWriter::open(&path, Some(rotation), false, None).unwrap();
        w.write_batch(b"longer than two\n").unwrap();
        assert_eq!(read(&path), "longer than two\n");
        w.write_batch(b"next\n").unwrap();
        assert_eq!(read(&path), "next\n");
        assert_eq!(w.backups().unwrap().len(), 1);
    }

    #[test]
    fn when_the_new_file_cannot_be_created_writing_goes_on_in_the_current_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let rotation = Rotation {
            max_bytes: 4,
            max_backups: 0,
        };
        let mut w = FileWriter::open(&path, Some(rotation), true, None).unwrap();
        w.write_batch(b"a1\n").unwrap();
        // The fresh file's name is taken by a directory: creating it fails,
        // as it would without file handles or inodes.
        let blocker = dir.path().join(".audit.jsonl.rotating");
        std::fs::create_dir(&blocker).unwrap();
        w.write_batch(b"a2\n").unwrap();
        w.write_batch(b"a3\n").unwrap();
        assert_eq!(read(&path), "a1\na2\na3\n", "nothing moved, nothing lost");
        assert!(w.backups().unwrap().is_empty());
        // The resource comes back: the next write rotates by itself.
        std::fs::remove_dir(&blocker).unwrap();
        w.write_batch(b"a4\n").unwrap();
        assert_eq!(read(&path), "a4\n");
        let backups = w.backups().unwrap();
        assert_eq!(backups.len(), 1);
        assert_eq!(read(&backups[0]), "a1\na2\na3\n");
        assert!(!dir.path().join(".audit.jsonl.rotating").exists());
    }

    #[test]
    fn a_failed_write_leaves_no_part_of_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut w = FileWriter::open(&path, None, false, None).unwrap();
        w.write_batch(b"one\n").unwrap();
        // What a full disk leaves: part of a batch, then an error.
        w.file.write_all(b"{\"version\":").unwrap();
        w.cut_to = Some(w.size);
        w.write_batch(b"two\n").unwrap();
        assert_eq!(read(&path), "one\ntwo\n");
    }

    mod integrity {
        use super::*;
        use auditcol_integrity::verify::{NoProgress, ProblemKind, Report};
        use auditcol_integrity::{TrailSigner, VerifyOptions, verify_paths};
        use std::sync::Arc;

        fn signer() -> Arc<TrailSigner> {
            Arc::new(TrailSigner::hmac(b"the writer tests' secret"))
        }

        fn options() -> TrailOptions {
            TrailOptions {
                exporter: "file/test".into(),
                signer: signer(),
                recycle: Arc::new(drop),
            }
        }

        fn open(path: &Path, rotation: Option<Rotation>, sync: bool) -> FileWriter {
            FileWriter::open(path, rotation, sync, Some(&options())).unwrap()
        }

        fn verify(paths: &[&Path], strict: bool) -> Report {
            let paths: Vec<PathBuf> = paths.iter().map(|p| p.to_path_buf()).collect();
            verify_paths(
                &paths,
                &signer().verifier(),
                VerifyOptions { strict },
                &NoProgress,
            )
        }

        fn assert_ok(report: &Report) {
            assert!(report.ok, "{report:#?}");
            assert_eq!(report.trails.len(), 1, "{report:#?}");
        }

        fn sidecar_lines(path: &Path) -> Vec<String> {
            read(&sidecar_path(path))
                .lines()
                .map(str::to_owned)
                .collect()
        }

        fn line(i: usize) -> Vec<u8> {
            format!("{{\"n\":{i}}}\n").into_bytes()
        }

        fn small_rotation() -> Rotation {
            Rotation {
                max_bytes: 40,
                max_backups: 0,
            }
        }

        #[test]
        fn with_sync_every_batch_is_checkpointed_before_it_returns() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, None, true);
            w.write_batch(&[line(1), line(2)].concat()).unwrap();
            w.write_batch(&line(3)).unwrap();
            // The start, then one per batch; verified while still open.
            assert_eq!(sidecar_lines(&path).len(), 3);
            assert_ok(&verify(&[&path], true));
            assert_eq!(
                read(&path),
                "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
                "lines as written"
            );
        }

        #[test]
        fn without_sync_lines_are_checkpointed_when_asked_and_at_close() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, None, false);
            w.write_batch(&line(1)).unwrap();
            let report = verify(&[&path], false);
            assert_ok(&report);
            assert_eq!(report.trails[0].unverified.as_ref().unwrap().lines, 1);
            w.checkpoint_and_wait(Reason::Interval).unwrap();
            w.checkpoint_and_wait(Reason::Interval).unwrap();
            assert_eq!(sidecar_lines(&path).len(), 2, "nothing new, no checkpoint");
            w.write_batch(&line(2)).unwrap();
            w.close().unwrap();
            assert_eq!(sidecar_lines(&path).len(), 3);
            assert_ok(&verify(&[&path], true));
        }

        #[test]
        fn the_chain_runs_across_rotations_and_pruning_takes_sidecars_along() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let rotation = Rotation {
                max_bytes: 40,
                max_backups: 2,
            };
            let mut w = open(&path, Some(rotation), true);
            for i in 0..20 {
                w.write_batch(&line(i)).unwrap();
            }
            w.close().unwrap();
            let backups = FileWriter::open(&path, None, false, None)
                .unwrap()
                .backups()
                .unwrap();
            assert_eq!(backups.len(), 2);
            for backup in &backups {
                let last = sidecar_lines(backup).pop().unwrap();
                assert!(last.contains("\"sealed\":true"), "{last}");
            }
            let chains = std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".chain")
                })
                .count();
            assert_eq!(chains, 3, "the pruned files' sidecars went with them");
            let report = verify(&[dir.path()], false);
            assert_ok(&report);
            assert!(
                report.trails[0].notes[0].contains("pruned"),
                "{:?}",
                report.trails[0].notes
            );
            assert_eq!(report.trails[0].files.len(), 3);
        }

        #[test]
        fn a_restart_goes_on_with_the_same_trail() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, Some(small_rotation()), false);
            for i in 0..8 {
                w.write_batch(&line(i)).unwrap();
            }
            w.close().unwrap();
            let mut w = open(&path, Some(small_rotation()), false);
            for i in 8..16 {
                w.write_batch(&line(i)).unwrap();
            }
            w.close().unwrap();
            let report = verify(&[dir.path()], true);
            assert_ok(&report);
            assert_eq!(report.trails[0].lines, 16);
        }

        #[test]
        fn lines_after_the_last_checkpoint_before_a_crash_are_rehashed_at_start() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, None, false);
            w.write_batch(&line(1)).unwrap();
            w.checkpoint_and_wait(Reason::Interval).unwrap();
            w.write_batch(&[line(2), line(3)].concat()).unwrap();
            // A crash: no close, and half of a line that was being written.
            drop(w);
            let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
            raw.write_all(b"{\"n\":").unwrap();
            let mut w = open(&path, None, false);
            let last = sidecar_lines(&path).pop().unwrap();
            assert!(
                last.contains("\"reason\":\"recovery\"")
                    && last.contains("\"first_line\":2,\"last_line\":3"),
                "{last}"
            );
            assert_eq!(
                read(&path),
                "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n",
                "the torn line is cut off"
            );
            w.write_batch(&line(4)).unwrap();
            w.close().unwrap();
            assert_ok(&verify(&[&path], true));
        }

        #[test]
        fn a_torn_checkpoint_is_cut_off_at_start() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, None, true);
            w.write_batch(&line(1)).unwrap();
            drop(w);
            let mut sidecar = OpenOptions::new()
                .append(true)
                .open(sidecar_path(&path))
                .unwrap();
            sidecar.write_all(b"{\"v\":1,\"trail\":").unwrap();
            let mut w = open(&path, None, true);
            w.write_batch(&line(2)).unwrap();
            assert!(read(&sidecar_path(&path)).ends_with("}\n"));
            assert_ok(&verify(&[&path], true));
        }

        #[test]
        fn lines_already_in_the_file_are_adopted_by_a_new_trail() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            std::fs::write(&path, [line(1), line(2)].concat()).unwrap();
            let mut w = open(&path, None, true);
            let lines = sidecar_lines(&path);
            assert!(lines[0].contains("\"reason\":\"start\""));
            assert!(lines[1].contains("\"reason\":\"adopted\""));
            w.write_batch(&line(3)).unwrap();
            assert_ok(&verify(&[&path], true));
        }

        /// Rotates once with a trail, then puts the files back as a crash
        /// after `renames_done` of the four renames would have left them.
        fn crash_during_rotation(renames_done: u8) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, Some(small_rotation()), true);
            for i in 0..6 {
                w.write_batch(&line(i)).unwrap();
            }
            let backups = w.backups().unwrap();
            drop(w);
            let backup = backups.last().unwrap();
            let (live, live_chain) = (path.clone(), sidecar_path(&path));
            let (old, old_chain) = (backup.clone(), sidecar_path(backup));
            // The live files of the last rotation hold lines already: start
            // from a rotation that has just happened.
            assert!(read(&live).len() < 40);
            std::fs::remove_file(&live).unwrap();
            std::fs::remove_file(&live_chain).unwrap();
            if renames_done < 1 {
                std::fs::rename(&old, &live).unwrap();
            }
            if renames_done < 2 {
                std::fs::rename(&old_chain, &live_chain).unwrap();
            }
            if renames_done >= 3 {
                std::fs::write(&live, "").unwrap();
            }
            let mut w = open(&path, Some(small_rotation()), true);
            for i in 100..104 {
                w.write_batch(&line(i)).unwrap();
            }
            w.close().unwrap();
            let report = verify(&[dir.path()], true);
            assert_ok(&report);
            assert_eq!(report.trails[0].files.len(), 2, "{report:#?}");
        }

        #[test]
        fn a_crash_after_sealing_before_any_rename_is_finished_at_start() {
            crash_during_rotation(0);
        }

        #[test]
        fn a_crash_after_moving_the_file_is_finished_at_start() {
            crash_during_rotation(1);
        }

        #[test]
        fn a_crash_after_moving_file_and_sidecar_is_finished_at_start() {
            crash_during_rotation(2);
        }

        #[test]
        fn a_crash_before_the_new_sidecar_is_in_place_is_finished_at_start() {
            crash_during_rotation(3);
        }

        #[test]
        fn another_key_refuses_to_start_and_says_why() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            open(&path, None, true).write_batch(&line(1)).unwrap();
            let other = TrailOptions {
                exporter: "file/test".into(),
                signer: Arc::new(TrailSigner::hmac(b"a different secret")),
                recycle: Arc::new(drop),
            };
            let err = FileWriter::open(&path, None, true, Some(&other))
                .err()
                .unwrap();
            assert!(err.to_string().contains("another key"), "{err}");
        }

        #[test]
        fn a_file_cut_below_its_checkpoint_refuses_to_start() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, None, true);
            w.write_batch(&[line(1), line(2)].concat()).unwrap();
            drop(w);
            std::fs::write(&path, line(1)).unwrap();
            let err = FileWriter::open(&path, None, true, Some(&options()))
                .err()
                .unwrap();
            assert!(err.to_string().contains("auditcol verify"), "{err}");
            let report = verify(&[&path], false);
            assert_eq!(
                report.trails[0].problem.as_ref().unwrap().kind,
                ProblemKind::Truncated
            );
        }

        #[test]
        fn without_sync_writeback_starts_in_the_background_as_the_file_grows() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, None, false);
            let big = [vec![b'x'; 10 << 20], b"\n".to_vec()].concat();
            assert!(w.write_batch(&big).unwrap().is_none(), "10 MiB may wait");
            let start = w
                .write_batch(&big)
                .unwrap()
                .expect("20 MiB: writeback starts");
            assert!(w.write_batch(&big).unwrap().is_none(), "one at a time");
            w.note_synced(start.run());
            assert_eq!(w.synced, 0, "started, not durable");
            let again = w
                .write_batch(&big)
                .unwrap()
                .expect("20 MiB more since it started");
            w.note_synced(again.run());
            // Before a checkpoint: a durable sync of all of it.
            let durable = w.background_sync().unwrap();
            w.note_synced(durable.run());
            assert_eq!(w.synced, 4 * big.len() as u64);
            assert!(w.background_sync().is_none(), "all on disk");
            let mut plain = FileWriter::open(&dir.path().join("plain"), None, false, None).unwrap();
            assert!(
                plain.write_batch(&big).unwrap().is_none()
                    && plain.write_batch(&big).unwrap().is_none(),
                "only with a trail"
            );
        }

        #[test]
        fn a_failed_checkpoint_takes_its_batch_back_out() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.jsonl");
            let mut w = open(&path, None, true);
            w.write_batch(&line(1)).unwrap();
            // A sidecar that refuses writes.
            let broken = File::open(dir.path()).unwrap();
            let sidecar = w.trail.as_mut().unwrap().replace_sidecar(broken);
            assert!(w.write_batch(&line(2)).is_err());
            assert_eq!(
                read(&path),
                "{\"n\":1}\n",
                "the batch is not left in the file"
            );
            w.trail.as_mut().unwrap().replace_sidecar(sidecar);
            w.write_batch(&line(2)).unwrap();
            assert_ok(&verify(&[&path], true));
        }
    }
}
