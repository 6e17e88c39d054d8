//! [`FileSender`]: writes one batch; the exporter helper around it queues and retries.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use auditcol_core::component::StartError;
use auditcol_core::exporterhelper::{BatchSender, SendError};
use auditcol_core::{LogBatch, PipelineError};

use crate::config::{FileExporterConfig, Format};
use crate::format::{encode_batch, write_stdout};
use crate::writer::{FileWriter, Rotation};

/// Where the lines go.
#[derive(Debug, Clone)]
enum Target {
    Stdout,
    File {
        path: PathBuf,
        rotation: Option<Rotation>,
        sync: bool,
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
}

/// A few cleared `Vec<u8>`s, each kept only while not too large.
#[derive(Default)]
struct BufferPool(Mutex<Vec<Vec<u8>>>);

impl BufferPool {
    /// Buffers kept at most; more are freed.
    const KEEP: usize = 4;
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
        if buffer.capacity() > Self::MAX_KEPT_CAPACITY {
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
        let target = match config.file_path() {
            None => Target::Stdout,
            Some(path) => Target::File {
                path: PathBuf::from(path),
                rotation: config.rotation.as_ref().map(|r| Rotation {
                    max_bytes: r.max_bytes(),
                    max_backups: r.max_backups,
                }),
                sync: config.sync,
            },
        };
        Self {
            id: id.into(),
            format: config.format,
            target,
            file: Arc::new(Mutex::new(None)),
            buffers: Arc::default(),
            write_failures: AtomicU64::new(0),
        }
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
        if skipped > 0 {
            tracing::debug!(
                exporter = %self.id,
                records = skipped,
                "skipped records that are not audit events (format `otlp_json` keeps them)"
            );
        }
        if bytes.is_empty() {
            self.buffers.give_back(bytes);
            return Ok(());
        }
        let file = self.file.clone();
        let buffers = self.buffers.clone();
        let to_file = matches!(self.target, Target::File { .. });
        let written = tokio::task::spawn_blocking(move || {
            let written = if !to_file {
                write_stdout(&bytes)
            } else {
                let mut guard = file.lock().unwrap_or_else(|e| e.into_inner());
                match guard.as_mut() {
                    Some(writer) => writer.write_batch(&bytes),
                    None => Err(std::io::Error::other("the file is not open")),
                }
            };
            buffers.give_back(bytes);
            written
        })
        .await;
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
}

#[async_trait]
impl BatchSender for FileSender {
    async fn start(&self) -> Result<(), StartError> {
        let Target::File {
            path,
            rotation,
            sync,
        } = self.target.clone()
        else {
            return Ok(());
        };
        let opened = tokio::task::spawn_blocking(move || FileWriter::open(&path, rotation, sync))
            .await
            .map_err(|e| StartError(format!("exporter {}: {e}", self.id)))?;
        let writer = opened.map_err(|e| {
            StartError(format!(
                "exporter {}: cannot open {} for writing: {e}",
                self.id,
                self.describe_target()
            ))
        })?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = Some(writer);
        Ok(())
    }

    async fn send(&self, batch: &LogBatch) -> Result<(), SendError> {
        Ok(self.send_batch(batch).await?)
    }

    async fn shutdown(&self) {
        let writer = self.file.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            // Whatever `sync` says, leave the data on disk when stopping.
            let synced = tokio::task::spawn_blocking(move || writer.sync()).await;
            if let Ok(Err(e)) = synced {
                tracing::warn!(exporter = %self.id, error = %e, "cannot sync the file at shutdown");
            }
        }
    }
}
