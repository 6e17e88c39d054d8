//! The `tls` section of a listener and [`ServerTls`], which serves it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::files::{PemFile, certified_key, read_error};
use super::{TlsVersion, provider};
use crate::config::{ConfigDuration, ConfigError};

/// `tls` of a listener, as the Collector's `configtls` server settings.
///
/// ```yaml
/// tls:
///   cert_file: /etc/auditcol/tls/server.pem   # the chain, leaf first
///   key_file: /etc/auditcol/tls/server.key
///   client_ca_file: /etc/auditcol/tls/clients-ca.pem   # mutual TLS
///   min_version: "1.2"                        # or "1.3"
///   reload_interval: 1m                       # re-read the files when they change
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsServerSettings {
    /// The server's certificate chain (PEM), its own certificate first.
    pub cert_file: Option<String>,
    /// The private key of that certificate (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<String>,
    /// CA certificates (PEM) that client certificates must chain to. Set,
    /// it turns on mutual TLS: a client without such a certificate is
    /// refused at the handshake.
    pub client_ca_file: Option<String>,
    /// The lowest TLS version accepted.
    pub min_version: TlsVersion,
    /// How often the files are looked at again; when they changed they are
    /// loaded, and new connections get the new certificate. Unset: never.
    pub reload_interval: Option<ConfigDuration>,
}

impl TlsServerSettings {
    /// Checks the keys and loads the files as a listener would: every
    /// problem names its key (`cert_file`) and the file.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let files = self.read_files()?;
        build_config(self, &files, &[]).map(drop)
    }

    /// (key, file) of the files, in a fixed order: cert, key, client CA.
    fn file_names(&self) -> Result<Vec<(&'static str, &str)>, ConfigError> {
        fn required<'a>(
            key: &'static str,
            value: &'a Option<String>,
            what: &str,
        ) -> Result<(&'static str, &'a str), ConfigError> {
            match value {
                None => Err(ConfigError::at(
                    key,
                    format!("is required with `tls`: {what}"),
                )),
                Some(v) if v.trim().is_empty() => {
                    Err(ConfigError::at(key, format!("must not be empty: {what}")))
                }
                Some(v) => Ok((key, v.as_str())),
            }
        }
        let mut names = vec![
            required(
                "cert_file",
                &self.cert_file,
                "the server's certificate (PEM)",
            )?,
            required(
                "key_file",
                &self.key_file,
                "the private key of the certificate (PEM)",
            )?,
        ];
        if self.client_ca_file.is_some() {
            names.push(required(
                "client_ca_file",
                &self.client_ca_file,
                "the CA certificates (PEM) of client certificates, or remove the key",
            )?);
        }
        if self.reload_interval.is_some_and(|d| d.0.is_zero()) {
            return Err(ConfigError::at(
                "reload_interval",
                "must be more than 0: how often the files are looked at again (remove the key to never reload)",
            ));
        }
        Ok(names)
    }

    fn read_files(&self) -> Result<Vec<PemFile>, ConfigError> {
        self.file_names()?
            .into_iter()
            .map(|(key, path)| PemFile::read(key, path))
            .collect()
    }
}

/// The rustls config from the files read (cert, key[, client CA]).
fn build_config(
    settings: &TlsServerSettings,
    files: &[PemFile],
    alpn: &[&[u8]],
) -> Result<Arc<ServerConfig>, ConfigError> {
    let provider = provider();
    let (cert, key) = (&files[0], &files[1]);
    let (chain, private_key) = certified_key(cert, key, &provider)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(settings.min_version.versions())
        .map_err(|e| ConfigError::at("min_version", e.to_string()))?;
    let builder = match files.get(2) {
        Some(ca) => {
            let roots = ca.trust_anchors()?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| ca.error(format_args!("cannot verify clients with it: {e}")))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, private_key)
        .map_err(|e| cert.error(format_args!("cannot serve this certificate: {e}")))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What a look at the files found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The files are as they were.
    Unchanged,
    /// They changed and were loaded: new connections get them.
    Reloaded,
    /// They changed but cannot be loaded (the error names the file); the
    /// previous certificate is still served.
    Failed(ConfigError),
}

/// The contents of each file at the last look (an error kind for a file
/// that could not be read), to tell when they change.
type Snapshot = Vec<Result<Vec<u8>, io::ErrorKind>>;

/// TLS on one listener: the current rustls config (replaced when the
/// files change), handshakes under a deadline, failures counted.
pub struct ServerTls {
    settings: TlsServerSettings,
    alpn: Vec<Vec<u8>>,
    /// The component and protocol, for the log.
    listener: Arc<str>,
    config: RwLock<Arc<ServerConfig>>,
    seen: Mutex<Snapshot>,
    failed_handshakes: AtomicU64,
}

/// Bytes of the first read after the handshake, kept for the HTTP server.
const FIRST_READ: usize = 4096;

impl ServerTls {
    /// Loads the files of `settings` for the listener `listener` (e.g.
    /// `otlp grpc`), offering `alpn` ([`super::ALPN_GRPC`], [`super::ALPN_HTTP`]).
    pub fn load(
        settings: &TlsServerSettings,
        alpn: &[&[u8]],
        listener: impl Into<Arc<str>>,
    ) -> Result<Arc<Self>, ConfigError> {
        let files = settings.read_files()?;
        let config = build_config(settings, &files, alpn)?;
        Ok(Arc::new(Self {
            settings: settings.clone(),
            alpn: alpn.iter().map(|p| p.to_vec()).collect(),
            listener: listener.into(),
            config: RwLock::new(config),
            seen: Mutex::new(files.into_iter().map(|f| Ok(f.bytes)).collect()),
            failed_handshakes: AtomicU64::new(0),
        }))
    }

    /// The config new connections get.
    pub fn config(&self) -> Arc<ServerConfig> {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether clients must show a certificate (`client_ca_file`).
    pub fn mutual(&self) -> bool {
        self.settings.client_ca_file.is_some()
    }

    /// What a listener with `tls` speaks, for its `listening` event:
    /// `off`, `on` or `mutual`.
    pub fn mode(tls: Option<&ServerTls>) -> &'static str {
        match tls {
            None => "off",
            Some(tls) if tls.mutual() => "mutual",
            Some(_) => "on",
        }
    }

    /// Handshakes that failed or timed out so far.
    pub fn failed_handshakes(&self) -> u64 {
        self.failed_handshakes.load(Ordering::Relaxed)
    }

    /// Reads the files again and, if they changed, loads them. A change
    /// that cannot be loaded is logged once at WARN with the file and what
    /// is wrong; the previous certificate is kept until the files change
    /// again. A rotation that writes the certificate and the key one after
    /// the other may be seen half done: the next look then loads it.
    pub async fn reload(&self) -> ReloadOutcome {
        let Ok(names) = self.settings.file_names() else {
            return ReloadOutcome::Unchanged;
        };
        let mut snapshot: Snapshot = Vec::with_capacity(names.len());
        for (_, path) in &names {
            snapshot.push(tokio::fs::read(path).await.map_err(|e| e.kind()));
        }
        {
            let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
            if *seen == snapshot {
                return ReloadOutcome::Unchanged;
            }
            seen.clone_from(&snapshot);
        }
        let mut files = Vec::with_capacity(names.len());
        for ((key, path), read) in names.into_iter().zip(snapshot) {
            match read {
                Ok(bytes) => files.push(PemFile {
                    key,
                    path: path.to_owned(),
                    bytes,
                }),
                Err(kind) => {
                    return self.reload_failed(read_error(key, path, &io::Error::from(kind)));
                }
            }
        }
        let alpn: Vec<&[u8]> = self.alpn.iter().map(Vec::as_slice).collect();
        match build_config(&self.settings, &files, &alpn) {
            Ok(config) => {
                *self.config.write().unwrap_or_else(PoisonError::into_inner) = config;
                tracing::info!(
                    listener = %self.listener,
                    cert_file = %files[0].path,
                    "TLS files changed: new connections get the new certificate"
                );
                ReloadOutcome::Reloaded
            }
            Err(e) => self.reload_failed(e),
        }
    }

    fn reload_failed(&self, error: ConfigError) -> ReloadOutcome {
        tracing::warn!(
            listener = %self.listener,
            error = %format_args!("tls.{error}"),
            "TLS files changed but cannot be loaded; still serving the previous certificate"
        );
        ReloadOutcome::Failed(error)
    }

    /// With `reload_interval`, a task that calls [`Self::reload`] every
    /// interval until `shutdown`; `None` without.
    pub fn spawn_reloading(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Option<JoinHandle<()>> {
        let every = self.settings.reload_interval?.0;
        let tls = self.clone();
        Some(tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = ticks.tick() => {
                        tls.reload().await;
                    }
                }
            }
        }))
    }

    /// The TLS handshake with `client`, then its first bytes, within
    /// `timeout`: a client that connects and goes silent — before, during
    /// or right after the handshake — is dropped then and gives back its
    /// connection slot. `None` when the handshake failed (counted, and
    /// logged at WARN for the first and every 1000th), timed out, or the
    /// client closed without a request.
    pub async fn accept<IO>(
        &self,
        io: IO,
        client: SocketAddr,
        timeout: Duration,
    ) -> Option<TlsConnection<IO>>
    where
        IO: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config());
        let deadline = tokio::time::Instant::now() + timeout;
        let mut stream = match tokio::time::timeout_at(deadline, acceptor.accept(io)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.note_failure(client, &e);
                return None;
            }
            Err(_) => {
                self.note_failure(client, &format!("no complete handshake within {timeout:?}"));
                return None;
            }
        };
        let mut first = vec![0u8; FIRST_READ];
        match tokio::time::timeout_at(deadline, stream.read(&mut first)).await {
            Ok(Ok(n)) if n > 0 => {
                first.truncate(n);
                Some(TlsConnection {
                    stream,
                    first,
                    read: 0,
                })
            }
            Ok(Ok(_)) => None,
            Ok(Err(e)) => {
                tracing::debug!(listener = %self.listener, %client, error = %e, "TLS connection failed after the handshake");
                None
            }
            Err(_) => {
                tracing::debug!(listener = %self.listener, %client, "TLS client sent nothing after the handshake; closed");
                None
            }
        }
    }

    fn note_failure(&self, client: SocketAddr, error: &dyn std::fmt::Display) {
        let failed = self.failed_handshakes.fetch_add(1, Ordering::Relaxed) + 1;
        // The first, then every thousandth: a scan must not flood the log.
        if failed == 1 || failed.is_multiple_of(1000) {
            tracing::warn!(
                listener = %self.listener,
                %client,
                error = %error,
                failed_handshakes = failed,
                "TLS handshake failed (logged for the first and every 1000th; the others at debug)"
            );
        } else {
            tracing::debug!(listener = %self.listener, %client, error = %error, "TLS handshake failed");
        }
    }
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("listener", &self.listener)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A server-side TLS connection after its handshake; the first bytes the
/// client sent are read again first.
pub struct TlsConnection<IO> {
    stream: tokio_rustls::server::TlsStream<IO>,
    first: Vec<u8>,
    read: usize,
}

impl<IO> TlsConnection<IO> {
    /// The connection under TLS.
    pub fn get_ref(&self) -> &IO {
        self.stream.get_ref().0
    }

    /// The client's certificate chain, with mutual TLS.
    pub fn peer_certificates(&self) -> Option<&[CertificateDer<'static>]> {
        self.stream.get_ref().1.peer_certificates()
    }

    /// The protocol agreed by ALPN (`h2`, `http/1.1`), if any.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.stream.get_ref().1.alpn_protocol()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsConnection<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.read < this.first.len() {
            let n = buf.remaining().min(this.first.len() - this.read);
            buf.put_slice(&this.first[this.read..this.read + n]);
            this.read += n;
            if this.read == this.first.len() {
                this.first = Vec::new();
                this.read = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsConnection<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
