//! A credentials file read at start and read again when it changes, so that
//! rotating tokens or passwords needs no restart.
//!
//! The file's identity and size and modification time are looked at every
//! [`POLL_INTERVAL`]; when they change the file is read and parsed again. A
//! file that cannot be read or parsed then keeps the credentials read last
//! (logged at ERROR: a half-written file must not lock every client out, nor
//! let anyone in). Replacing the file by a rename (as Kubernetes does with
//! mounted secrets) or rewriting it in place are both seen.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, SystemTime};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the file is looked at.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Parses the file's text into what the authenticator uses.
pub(crate) type Parse<T> = Box<dyn Fn(&str) -> Result<T, String> + Send + Sync>;

/// What identifies a version of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    #[cfg(unix)]
    inode: (u64, u64),
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            #[cfg(unix)]
            inode: (metadata.dev(), metadata.ino()),
        }
    }
}

/// What [`WatchedFile::reload_if_changed`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reload {
    Unchanged,
    Reloaded,
    /// The file changed but could not be used; the previous content stays.
    Failed(String),
}

/// A file of credentials, its current parsed content, and the task that
/// watches it.
pub(crate) struct WatchedFile<T> {
    path: PathBuf,
    /// For messages: `tokens file`, `htpasswd file`.
    what: &'static str,
    /// The extension id, for the log.
    component: String,
    parse: Parse<T>,
    current: RwLock<Option<Arc<T>>>,
    stamp: Mutex<Option<Stamp>>,
    watcher: Mutex<Option<(CancellationToken, JoinHandle<()>)>>,
}

impl<T: Send + Sync + 'static> WatchedFile<T> {
    pub(crate) fn new(
        path: impl Into<PathBuf>,
        what: &'static str,
        component: String,
        parse: Parse<T>,
    ) -> Self {
        Self {
            path: path.into(),
            what,
            component,
            parse,
            current: RwLock::new(None),
            stamp: Mutex::new(None),
            watcher: Mutex::new(None),
        }
    }

    /// The content read last; `None` before [`WatchedFile::load`].
    pub(crate) fn current(&self) -> Option<Arc<T>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Reads the file now; the error names the file (and the line).
    pub(crate) fn load(&self) -> Result<(), String> {
        let (stamp, content) = self.read()?;
        self.install(stamp, content);
        Ok(())
    }

    fn read(&self) -> Result<(Stamp, T), String> {
        let path = self.path.display();
        let what = self.what;
        let file = std::fs::File::open(&self.path)
            .map_err(|e| format!("cannot read the {what} {path}: {e}"))?;
        let stamp = file
            .metadata()
            .map(|m| Stamp::of(&m))
            .map_err(|e| format!("cannot read the {what} {path}: {e}"))?;
        let text = std::io::read_to_string(file)
            .map_err(|e| format!("cannot read the {what} {path}: {e}"))?;
        let content = (self.parse)(&text).map_err(|e| format!("{what} {path}: {e}"))?;
        Ok((stamp, content))
    }

    fn install(&self, stamp: Stamp, content: T) {
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(content));
        *self.stamp.lock().unwrap_or_else(PoisonError::into_inner) = Some(stamp);
    }

    /// Reads the file again if it changed since it was read last.
    pub(crate) fn reload_if_changed(&self) -> Reload {
        let now = match std::fs::metadata(&self.path) {
            Ok(metadata) => Stamp::of(&metadata),
            Err(e) => {
                // Gone for a moment while it is replaced, or for good: keep
                // what was read, and say so once per change.
                let failed = format!("cannot read the {} {}: {e}", self.what, self.path.display());
                return self.note_failure(None, failed);
            }
        };
        if self
            .stamp
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            == Some(&now)
        {
            return Reload::Unchanged;
        }
        match self.read() {
            Ok((stamp, content)) => {
                self.install(stamp, content);
                Reload::Reloaded
            }
            Err(e) => self.note_failure(Some(now), e),
        }
    }

    /// Remembers the version that failed, so it is reported once.
    fn note_failure(&self, stamp: Option<Stamp>, error: String) -> Reload {
        let mut last = self.stamp.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none() && stamp.is_none() {
            // Already reported as missing.
            return Reload::Unchanged;
        }
        *last = stamp;
        Reload::Failed(error)
    }

    /// Reads the file (the error names it, and the line) and from then on
    /// watches it; logs how many `entries` each version holds.
    pub(crate) fn start(self: &Arc<Self>, entries: fn(&T) -> usize) -> Result<(), String> {
        self.load()?;
        let (component, what) = (self.component.clone(), self.what);
        tracing::info!(
            component = %component,
            entries = self.current().map_or(0, |c| entries(&c)),
            "{what} read; it is read again when it changes"
        );
        self.watch(move |content: &T| {
            tracing::info!(
                component = %component,
                entries = entries(content),
                "{what} changed: its new entries are in force"
            );
        });
        Ok(())
    }

    /// Starts looking at the file every [`POLL_INTERVAL`]; `on_reload` is
    /// told about each new version.
    pub(crate) fn watch(self: &Arc<Self>, on_reload: impl Fn(&T) + Send + Sync + 'static) {
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let file = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(POLL_INTERVAL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                let checking = file.clone();
                let Ok(outcome) =
                    tokio::task::spawn_blocking(move || checking.reload_if_changed()).await
                else {
                    continue;
                };
                match outcome {
                    Reload::Unchanged => {}
                    Reload::Reloaded => {
                        if let Some(content) = file.current() {
                            on_reload(&content);
                        }
                    }
                    Reload::Failed(error) => tracing::error!(
                        component = %file.component,
                        error = %error,
                        "the {} changed but cannot be used; the credentials read before stay in force",
                        file.what
                    ),
                }
            }
        });
        let previous = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .replace((cancel, task));
        if let Some((cancel, _)) = previous {
            cancel.cancel();
        }
    }

    /// Stops watching.
    pub(crate) async fn stop(&self) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((cancel, task)) = watcher {
            cancel.cancel();
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &str) -> Result<Vec<String>, String> {
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.is_empty() {
            Err("holds nothing".into())
        } else {
            Ok(lines)
        }
    }

    fn watched(path: &std::path::Path) -> WatchedFile<Vec<String>> {
        WatchedFile::new(path, "test file", "test".into(), Box::new(lines))
    }

    #[test]
    fn a_changed_file_is_read_again_and_a_bad_version_keeps_the_last_good_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "a\n").unwrap();
        let file = watched(&path);
        assert!(file.current().is_none());
        file.load().unwrap();
        assert_eq!(*file.current().unwrap(), ["a"]);
        assert_eq!(file.reload_if_changed(), Reload::Unchanged);

        std::fs::write(&path, "b\nc\n").unwrap();
        assert_eq!(file.reload_if_changed(), Reload::Reloaded);
        assert_eq!(*file.current().unwrap(), ["b", "c"]);

        std::fs::write(&path, "").unwrap();
        let Reload::Failed(error) = file.reload_if_changed() else {
            panic!("an empty file must fail")
        };
        assert!(
            error.contains("test file") && error.contains("holds nothing"),
            "{error}"
        );
        assert_eq!(*file.current().unwrap(), ["b", "c"], "kept");
        assert_eq!(file.reload_if_changed(), Reload::Unchanged, "reported once");

        // Replaced by a rename, as mounted secrets are.
        let next = dir.path().join("creds.new");
        std::fs::write(&next, "d\n").unwrap();
        std::fs::rename(&next, &path).unwrap();
        assert_eq!(file.reload_if_changed(), Reload::Reloaded);
        assert_eq!(*file.current().unwrap(), ["d"]);
    }

    #[test]
    fn a_missing_file_fails_the_load_and_later_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        let err = watched(&path).load().unwrap_err();
        assert!(err.starts_with("cannot read the test file"), "{err}");

        std::fs::write(&path, "a\n").unwrap();
        let file = watched(&path);
        file.load().unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(file.reload_if_changed(), Reload::Failed(_)));
        assert_eq!(file.reload_if_changed(), Reload::Unchanged, "reported once");
        assert_eq!(*file.current().unwrap(), ["a"]);
        std::fs::write(&path, "e\n").unwrap();
        assert_eq!(file.reload_if_changed(), Reload::Reloaded);
        assert_eq!(*file.current().unwrap(), ["e"]);
    }

    #[tokio::test]
    async fn the_watcher_picks_up_a_new_version_within_the_poll_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("creds");
        std::fs::write(&path, "a\n").unwrap();
        let file = Arc::new(watched(&path));
        file.load().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        file.watch(move |lines: &Vec<String>| {
            let _ = tx.send(lines.clone());
        });
        std::fs::write(&path, "rotated\n").unwrap();
        let seen = tokio::time::timeout(POLL_INTERVAL * 5, rx.recv())
            .await
            .expect("reloaded within the poll interval")
            .unwrap();
        assert_eq!(seen, ["rotated"]);
        file.stop().await;
    }
}
