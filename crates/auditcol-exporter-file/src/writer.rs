//! The output file: append, rotate by size, keep a bounded number of backups.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};

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
}

impl FileWriter {
    /// Opens `path` for appending, creating it and its parent directories.
    /// With `sync`, the directory is synced too, so that a new file's name
    /// survives a crash.
    pub(crate) fn open(path: &Path, rotation: Option<Rotation>, sync: bool) -> io::Result<Self> {
        if let Some(parent) = path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent)?;
        }
        let existed = path.exists();
        let file = open_append(path)?;
        let size = file.metadata()?.len();
        let writer = Self {
            path: path.to_owned(),
            file,
            size,
            rotation,
            sync,
            last_backup: None,
            rotation_failures: 0,
            cut_to: None,
        };
        if sync && !existed {
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
    pub(crate) fn write_batch(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.repair()?;
        if let Some(rotation) = self.rotation
            && self.size > 0
            && self.size.saturating_add(bytes.len() as u64) > rotation.max_bytes
        {
            self.rotate(rotation);
        }
        let before = self.size;
        let written = self.file.write_all(bytes).and_then(|()| {
            if self.sync {
                self.file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.size += bytes.len() as u64;
                Ok(())
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
        self.cut_to = None;
        Ok(())
    }

    /// Flushes file data to disk.
    pub(crate) fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
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
    fn rotate(&mut self, rotation: Rotation) {
        match self.try_rotate() {
            Ok(()) => {
                if self.rotation_failures > 0 {
                    tracing::info!(path = %self.path.display(), failures = self.rotation_failures, "rotation works again");
                }
                self.rotation_failures = 0;
                if let Err(e) = self.prune(rotation.max_backups) {
                    // Too many backups is not worth failing a write for.
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot delete old rotated files");
                }
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
        let fresh_path = self.path.with_file_name(format!(
            ".{}.rotating",
            self.path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
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
        if self.sync {
            self.sync_dir()?;
        }
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
        let mut w = FileWriter::open(&path, None, false).unwrap();
        w.write_batch(b"one\n").unwrap();
        assert_eq!(read(&path), "one\n");
    }

    #[test]
    fn writes_append_to_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        std::fs::write(&path, "old\n").unwrap();
        let mut w = FileWriter::open(&path, None, true).unwrap();
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
        let mut w = FileWriter::open(&path, Some(rotation), false).unwrap();
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
        let mut w = FileWriter::open(&path, Some(rotation), false).unwrap();
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
        let mut w = FileWriter::open(&path, Some(rotation), false).unwrap();
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
        let mut w = FileWriter::open(&path, Some(rotation), false).unwrap();
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
        let mut w = FileWriter::open(&path, Some(rotation), true).unwrap();
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
        let mut w = FileWriter::open(&path, None, false).unwrap();
        w.write_batch(b"one\n").unwrap();
        // What a full disk leaves: part of a batch, then an error.
        w.file.write_all(b"{\"version\":").unwrap();
        w.cut_to = Some(w.size);
        w.write_batch(b"two\n").unwrap();
        assert_eq!(read(&path), "one\ntwo\n");
    }
}
