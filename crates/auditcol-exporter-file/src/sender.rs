//! [`FileSender`]: writes one batch; the exporter helper around it queues and retries.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auditcol_core::component::StartError;
use auditcol_core::exporterhelper::{BatchSender, SendError};
use auditcol_core::telemetry::{DropReason, Drops, Telemetry};
use auditcol_core::{LogBatch, PipelineError};

use auditcol_integrity::{Reason, TrailSigner};
use tokio::task::JoinHandle;

use crate::config::{FileExporterConfig, Format, IntegritySettings};
use crate::format::{encode_batch, write_stdout};
use crate::group::{GroupCommit, into_io};
use crate::trail::TrailOptions;
use crate::writer::{FileWriter, Rotation};

/// Where the lines go.
#[derive(Debug, Clone)]
enum Target {
    Stdout,
    File {
        path: PathBuf,
        rotation: Option<Rotation>,
        sync: bool,
        integrity: Option<IntegritySettings>,
    },
}

/// Encodes a batch in the configured format and appends it in one write.
///
/// Several sending workers may call [`BatchSender::send`] at once: each
/// batch is encoded on its own, then written whole under a lock, so lines of
/// two batches never interleave.
pub struct FileSender {
    /// The exporter id, for messages.
    id: String,
    format: Format,
    target: Target,
    /// Opened at start; `None` before and after.
    file: Arc<Mutex<Option<FileWriter>>>,
    /// Encoding buffers for reuse: a fresh multi-megabyte buffer per batch
    /// costs page faults that show in profiles.
    buffers: Arc<BufferPool>,
    /// Failed writes in a row: the first and every hundredth are logged.
    write_failures: AtomicU64,
    /// With `integrity`: the task writing a checkpoint every `checkpoint_interval`.
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    /// Records skipped because `json` carries audit events only.
    non_audit: Drops,
    /// With `sync: true`: batches that wait together share one sync.
    group: Arc<GroupCommit>,
}

/// A few cleared `Vec<u8>`s, each kept only while not too large.
#[derive(Default)]
struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// Buffers kept at most; more are freed. With `integrity` a buffer
    /// comes back only once the trail's thread has hashed it, so as many as
    /// the sending workers and that thread's queue may be out at once.
    const KEEP: usize = 32;
    /// A buffer above this capacity is freed rather than kept.
    const MAX_KEPT_CAPACITY: usize = 16 << 20;

    fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .unwrap_or_default()
    }

    fn give_back(&self, mut buffer: Vec<u8>) {
        if buffer.capacity() == 0 || buffer.capacity() > Self::MAX_KEPT_CAPACITY {
            return;
        }
        buffer.clear();
        let mut kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < Self::KEEP {
            kept.push(buffer);
        }
    }
}

impl FileSender {
    /// A sender for `config`. Opens nothing: the file is opened at start.
    pub fn new(id: impl Into<String>, config: &FileExporterConfig) -> Self {
        let id_text: String = id.into();
        let target = match config.file_path() {
            None => Target::Stdout,
            Some(path) => Target::File {
                path: PathBuf::from(path),
                rotation: config.rotation.as_ref().map(|r| Rotation {
                    max_bytes: r.max_bytes(),
                    max_backups: r.max_backups,
                }),
                sync: config.sync,
                integrity: config.integrity.clone(),
            },
        };
        Self {
            id: id_text.clone(),
            format: config.format,
            target,
            file: Arc::new(Mutex::new(None)),
            buffers: Arc::default(),
            write_failures: AtomicU64::new(0),
            checkpointer: Mutex::new(None),
            group: Arc::default(),
            non_audit: Telemetry::disabled().exporter_drops(&id_text, DropReason::NonAudit),
        }
    }

    /// The same sender, counting the records it skips (not audit events,
    /// in `json`) in `non_audit`.
    pub fn with_non_audit_drops(mut self, non_audit: Drops) -> Self {
        self.non_audit = non_audit;
        self
    }

    fn describe_target(&self) -> String {
        match &self.target {
            Target::Stdout => "standard output".to_owned(),
            Target::File { path, .. } => path.display().to_string(),
        }
    }
}

impl FileSender {
    /// Sends `batch` once, as one request: all of it is delivered or none.
    pub async fn send_batch(&self, batch: &LogBatch) -> Result<(), PipelineError> {
        let mut bytes = self.buffers.take();
        let skipped = match encode_batch(batch, self.format, &mut bytes) {
            Ok(skipped) => skipped,
            Err(e) => {
                self.buffers.give_back(bytes);
                return Err(PipelineError::permanent(format!(
                    "exporter {}: cannot write the batch as OTLP JSON: {e}",
                    self.id
                )));
            }
        };
        self.non_audit.add(
            skipped,
            &"format `json` writes audit events only (format `otlp_json` keeps every record)",
        );
        if bytes.is_empty() {
            self.buffers.give_back(bytes);
            return Ok(());
        }
        let written = if matches!(self.target, Target::File { sync: true, .. }) {
            self.write_synced(bytes).await
        } else {
            self.write(bytes).await
        };
        match written {
            Ok(Ok(())) => {
                let failures = self.write_failures.swap(0, Ordering::Relaxed);
                if failures > 0 {
                    tracing::info!(exporter = %self.id, target = %self.describe_target(), failures, "writing works again");
                }
                Ok(())
            }
            Ok(Err(e)) => {
                let failures = self.write_failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::error!(
                        exporter = %self.id,
                        target = %self.describe_target(),
                        error = %e,
                        failures,
                        "cannot write: the batch is retried, nothing of it is left in the file"
                    );
                }
                Err(PipelineError::retryable(format!(
                    "exporter {}: cannot write to {}: {e}",
                    self.id,
                    self.describe_target()
                )))
            }
            Err(e) => Err(PipelineError::retryable(format!(
                "exporter {}: the write to {} did not complete: {e}",
                self.id,
                self.describe_target()
            ))),
        }
    }

    /// Appends `bytes` (without `sync`; or to stdout) on a blocking thread.
    /// The outer error says the write did not run to its end.
    async fn write(&self, bytes: Vec<u8>) -> Result<std::io::Result<()>, String> {
        let file = self.file.clone();
        let buffers = self.buffers.clone();
        let to_file = matches!(self.target, Target::File { .. });
        let written = tokio::task::spawn_blocking(move || {
            let mut bytes = bytes;
            let written = if !to_file {
                write_stdout(&bytes).map(|()| None)
            } else {
                let mut guard = file.lock().unwrap_or_else(|e| e.into_inner());
                match guard.as_mut() {
                    // With a trail, the writer hands the buffer on to the
                    // trail's thread, which gives it back to the pool.
                    Some(writer) => writer.write_lines(&mut bytes),
                    None => Err(std::io::Error::other("the file is not open")),
                }
            };
            buffers.give_back(bytes);
            written
        })
        .await;
        match written {
            Ok(Ok(Some(sync))) => {
                // Write-behind for the trail: not waited for.
                let file = self.file.clone();
                tokio::task::spawn_blocking(move || {
                    let synced = sync.run();
                    if let Some(writer) = file.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                        writer.note_synced(synced);
                    }
                });
                Ok(Ok(()))
            }
            Ok(Ok(None)) => Ok(Ok(())),
            Ok(Err(e)) => Ok(Err(e)),
            Err(e) => Err(e.to_string()),
        }
    }

    /// With `sync: true`: appends `bytes` in the next group (see
    /// [`crate::group`]) and waits until the group is synced (and
    /// checkpointed); this batch leads the group when none is being written.
    async fn write_synced(&self, bytes: Vec<u8>) -> Result<std::io::Result<()>, String> {
        let joined = self.group.join(bytes);
        if joined.lead {
            let group = self.group.clone();
            let file = self.file.clone();
            let buffers = self.buffers.clone();
            tokio::task::spawn_blocking(move || {
                group.lead(
                    |bytes| {
                        let mut guard = file.lock().unwrap_or_else(|e| e.into_inner());
                        match guard.as_mut() {
                            // Synced by the writer: no write-behind to run.
                            Some(writer) => writer.write_lines(bytes).map(drop),
                            None => Err(std::io::Error::other("the file is not open")),
                        }
                    },
                    |bytes| buffers.give_back(bytes),
                );
            });
        }
        match joined.outcome.await {
            Ok(outcome) => Ok(into_io(outcome)),
            Err(_) => Err("the writing thread stopped".to_owned()),
        }
    }
}

#[async_trait]
impl BatchSender for FileSender {
    async fn start(&self) -> Result<(), StartError> {
        let Target::File {
            path,
            rotation,
            sync,
            integrity,
        } = self.target.clone()
        else {
            return Ok(());
        };
        let id = self.id.clone();
        let settings = integrity.clone();
        let buffers = self.buffers.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let trail = match &settings {
                None => None,
                Some(settings) => Some(TrailOptions {
                    exporter: id.clone(),
                    signer: Arc::new(load_signer(&id, settings)?),
                    recycle: Arc::new(move |buffer| buffers.give_back(buffer)),
                }),
            };
            FileWriter::open(&path, rotation, sync, trail.as_ref()).map_err(|e| {
                format!(
                    "exporter {id}: cannot open {} for writing: {e}",
                    path.display()
                )
            })
        })
        .await
        .map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
        let writer = opened.map_err(StartError)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
        if let Some(settings) = integrity {
            let task = tokio::spawn(checkpoint_every(
                settings.checkpoint_interval.0,
                self.file.clone(),
                self.id.clone(),
            ));
            *self.checkpointer.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        Ok(())
    }

    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        Ok(self.send_batch(batch).await?)
    }

    async fn shutdown(&self) {
        let checkpointer = self
            .checkpointer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = checkpointer {
            task.abort();
        }
        let writer = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            // Whatever `sync` says, leave the data on disk when stopping,
            // with a last checkpoint of the trail.
            let closed = tokio::task::spawn_blocking(move || writer.close()).await;
            if let Ok(Err(e)) = closed {
                tracing::warn!(exporter = %self.id, error = %e, "cannot sync the file or checkpoint its trail at shutdown");
            }
        }
    }
}

/// Reads the signing key of `integrity` (at start: factories have no side
/// effects).
fn load_signer(id: &str, settings: &IntegritySettings) -> Result<TrailSigner, String> {
    match (&settings.signing_key_file, &settings.hmac_key) {
        (Some(path), _) => {
            let path = std::path::Path::new(path);
            let signer = TrailSigner::from_pem_file(path)
                .map_err(|e| format!("exporter {id}: integrity.signing_key_file: {e}"))?;
            if auditcol_integrity::keys::readable_by_others(path) {
                tracing::warn!(
                    exporter = %id,
                    key = %path.display(),
                    "the signing key can be read by other users than its owner: whoever reads it can forge checkpoints (chmod 600 it)"
                );
            }
            Ok(signer)
        }
        (None, Some(secret)) => Ok(TrailSigner::hmac(secret.expose().as_bytes())),
        (None, None) => Err(format!(
            "exporter {id}: integrity needs `signing_key_file` or `hmac_key`"
        )),
    }
}

/// Every `interval`, a checkpoint of the lines written since the last one.
async fn checkpoint_every(
    interval: std::time::Duration,
    file: Arc<Mutex<Option<FileWriter>>>,
    id: String,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failures = 0u64;
    loop {
        ticks.tick().await;
        let file = file.clone();
        let done = tokio::task::spawn_blocking(move || {
            let lock = || file.lock().unwrap_or_else(|e| e.into_inner());
            // The bulk of the data to sync is synced without holding the
            // writer; the checkpoint then syncs what came since, and is
            // signed and written by the trail's thread, waited for here.
            let sync = lock().as_mut()?.background_sync();
            if let Some(sync) = sync {
                let synced = sync.run();
                lock().as_mut()?.note_synced(synced);
            }
            let asked = lock().as_mut()?.checkpoint(Reason::Interval);
            Some(match asked {
                Ok(Some(answer)) => answer.recv().unwrap_or_else(|_| {
                    Err(std::io::Error::other(
                        "the integrity trail's thread has stopped",
                    ))
                }),
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            })
        })
        .await;
        match done {
            Ok(None) | Err(_) => return,
            Ok(Some(Ok(()))) => {
                if failures > 0 {
                    tracing::info!(exporter = %id, failures, "checkpoints are written again");
                }
                failures = 0;
            }
            Ok(Some(Err(e))) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(100) {
                    tracing::error!(exporter = %id, error = %e, failures, "cannot write a checkpoint: the lines since the last one stay unverified until one succeeds");
                }
            }
        }
    }
}
