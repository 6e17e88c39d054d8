//! Authentication through extensions, as in the OpenTelemetry Collector's
//! `configauth`: an extension (`bearertokenauth/ingest`) offers a
//! [`ServerAuthenticator`] that receivers ask about each request, and/or a
//! [`ClientAuthenticator`] whose headers exporters add to each request.
//! Components refer to one with `auth: {authenticator: <id>}`
//! ([`AuthSettings`]), resolved once at build through the
//! [`Host`](crate::component::Host).
//!
//! A receiver checks credentials on the request's headers alone — HTTP
//! headers, or the HTTP/2 headers that carry gRPC metadata — before it reads
//! or decodes any of the body, through a [`RequestAuth`]: it counts the
//! refusals ([`AuthRefusals`], per receiver) and logs them at WARN, the
//! first of every ten seconds with its client address and reason, then a
//! summary of the rest. Nothing an authenticator returns ever holds the
//! credential, so neither answers nor logs can echo it.
//!
//! ```
//! use auditcol_core::auth::AuthError;
//!
//! let wrong = AuthError::Unauthenticated("the token is not one of the configured tokens".into());
//! assert_eq!((wrong.http_status(), wrong.grpc_code()), (401, 16));
//! let busy = AuthError::Unavailable("too many password checks in progress".into());
//! assert_eq!((busy.http_status(), busy.grpc_code(), busy.retry_after_secs()), (503, 14, Some(1)));
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::component::{ComponentId, Host};
use crate::config::ConfigError;
use crate::telemetry::{ReceiverTelemetry, RefusalReason};

pub use http::{HeaderMap, HeaderName, HeaderValue};

/// `google.rpc.Code` UNAUTHENTICATED.
pub const GRPC_UNAUTHENTICATED: i32 = 16;
/// `google.rpc.Code` UNAVAILABLE.
pub const GRPC_UNAVAILABLE: i32 = 14;

/// Why a request was not let in. The message is the reason, written for an
/// operator and safe to send back: it never holds the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Missing, malformed or wrong credentials: HTTP 401, gRPC UNAUTHENTICATED.
    /// Clients must not retry without other credentials.
    #[error("{0}")]
    Unauthenticated(String),
    /// The credentials could not be checked now (too many slow password
    /// checks in flight): HTTP 503 with `Retry-After`, gRPC UNAVAILABLE, so
    /// well-behaved clients come back.
    #[error("{0}")]
    Unavailable(String),
}

impl AuthError {
    /// The HTTP status of the answer: 401 or 503.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Unauthenticated(_) => 401,
            Self::Unavailable(_) => 503,
        }
    }

    /// The gRPC status code of the answer: UNAUTHENTICATED (16) or UNAVAILABLE (14).
    pub fn grpc_code(&self) -> i32 {
        match self {
            Self::Unauthenticated(_) => GRPC_UNAUTHENTICATED,
            Self::Unavailable(_) => GRPC_UNAVAILABLE,
        }
    }

    /// `Retry-After` seconds for the HTTP answer.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::Unauthenticated(_) => None,
            Self::Unavailable(_) => Some(1),
        }
    }

    /// The reason.
    pub fn reason(&self) -> &str {
        match self {
            Self::Unauthenticated(reason) | Self::Unavailable(reason) => reason,
        }
    }
}

/// Checks the credentials of incoming requests (the server side of an
/// authenticator extension).
#[async_trait]
pub trait ServerAuthenticator: Send + Sync {
    /// Accepts the request whose headers are `headers`, or says why not.
    /// Called before the body is read; the answer never holds a credential.
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError>;

    /// The `WWW-Authenticate` value of an HTTP 401 answer, e.g. `Bearer` or
    /// `Basic realm="auditcol"`.
    fn challenge(&self) -> HeaderValue;
}

/// Supplies the credentials of outgoing requests (the client side of an
/// authenticator extension).
pub trait ClientAuthenticator: Send + Sync {
    /// The headers to add to the next request (HTTP headers, or gRPC
    /// metadata). Asked for every request, so that a rotated token is used
    /// as soon as it is read. Values are marked sensitive.
    fn headers(&self) -> Result<HeaderMap, String>;
}

/// `auth` on a receiver protocol or an exporter: the authenticator
/// extension to use, by id, as in the Collector.
///
/// ```yaml
/// auth:
///   authenticator: bearertokenauth/ingest
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// The id of an extension listed in `service.extensions`.
    pub authenticator: String,
}

impl AuthSettings {
    /// The server side of the extension named by `authenticator`, or an
    /// error at key `authenticator` saying what is missing. Wrap it with
    /// [`nested`](crate::config::nested) for the full key path.
    pub fn server_authenticator(
        &self,
        host: &Host,
    ) -> Result<Arc<dyn ServerAuthenticator>, ConfigError> {
        let extension = host
            .extension(&self.authenticator)
            .map_err(|message| ConfigError::at("authenticator", message))?;
        extension.server_authenticator().ok_or_else(|| {
            ConfigError::at(
                "authenticator",
                format!(
                    "extension `{}` is not a server authenticator: it cannot check the credentials of incoming requests (a `basicauth` with `htpasswd`, or a `bearertokenauth`, can)",
                    self.authenticator
                ),
            )
        })
    }

    /// The client side of the extension named by `authenticator`, or an
    /// error at key `authenticator` saying what is missing.
    pub fn client_authenticator(
        &self,
        host: &Host,
    ) -> Result<Arc<dyn ClientAuthenticator>, ConfigError> {
        let extension = host
            .extension(&self.authenticator)
            .map_err(|message| ConfigError::at("authenticator", message))?;
        extension.client_authenticator().ok_or_else(|| {
            ConfigError::at(
                "authenticator",
                format!(
                    "extension `{}` is not a client authenticator: it cannot add credentials to outgoing requests (a `basicauth` with `client_auth`, or a `bearertokenauth`, can)",
                    self.authenticator
                ),
            )
        })
    }
}

/// The client authenticator of an exporter's `auth` key, when it has one;
/// errors are at `auth.authenticator`.
pub fn exporter_authenticator(
    auth: Option<&AuthSettings>,
    host: &Host,
) -> Result<Option<Arc<dyn ClientAuthenticator>>, ConfigError> {
    auth.map(|auth| crate::config::nested("auth", auth.client_authenticator(host)))
        .transpose()
}

/// Requests a receiver refused for missing or wrong credentials (and those
/// it could not check), shared by all its protocols. Cloning shares the count.
#[derive(Debug, Clone, Default)]
pub struct AuthRefusals(Arc<AtomicU64>);

impl AuthRefusals {
    /// Refusals so far.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    fn add(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed) + 1
    }
}

/// How long after a logged refusal the next ones are only counted, then
/// summed up in one line.
pub const REFUSAL_LOG_WINDOW: Duration = Duration::from_secs(10);

/// The authentication step of one receiver protocol: the authenticator, the
/// receiver's refusal count and the refusal log.
#[derive(Clone)]
pub struct RequestAuth {
    authenticator: Arc<dyn ServerAuthenticator>,
    refusals: AuthRefusals,
    log: Arc<RefusalLog>,
    /// The receiver's metrics of this protocol, when it has them.
    telemetry: Option<Arc<ReceiverTelemetry>>,
}

impl RequestAuth {
    /// The check of `protocol` (`grpc`, `http`) of receiver `component`,
    /// counting refusals in `refusals`.
    pub fn new(
        authenticator: Arc<dyn ServerAuthenticator>,
        component: &ComponentId,
        protocol: &'static str,
        refusals: AuthRefusals,
    ) -> Self {
        Self {
            authenticator,
            refusals,
            log: Arc::new(RefusalLog {
                component: component.to_string(),
                protocol,
                window: Mutex::new(LogWindow::default()),
            }),
            telemetry: None,
        }
    }

    /// The same check, counting its refusals in the receiver's metrics too
    /// (`auditcol_receiver_refused_requests{reason="unauthenticated"}`).
    pub fn with_telemetry(mut self, telemetry: Arc<ReceiverTelemetry>) -> Self {
        self.telemetry = Some(telemetry);
        self
    }

    /// The check a receiver's `auth` setting (at key path `key`, e.g.
    /// `protocols.grpc.auth`) asks for, found through `host`; `None`
    /// without `auth`. Errors are at `<key>.authenticator`.
    pub fn resolve(
        auth: Option<&AuthSettings>,
        key: &str,
        host: &Host,
        component: &ComponentId,
        protocol: &'static str,
        refusals: &AuthRefusals,
    ) -> Result<Option<Self>, ConfigError> {
        auth.map(|auth| {
            let authenticator = crate::config::nested(key, auth.server_authenticator(host))?;
            Ok(Self::new(
                authenticator,
                component,
                protocol,
                refusals.clone(),
            ))
        })
        .transpose()
    }

    /// Accepts a request from `client` with `headers`, or refuses it: the
    /// refusal is counted and logged (never the credential).
    pub async fn check(
        &self,
        headers: &HeaderMap,
        client: Option<SocketAddr>,
    ) -> Result<(), AuthError> {
        let result = self.authenticator.authenticate(headers).await;
        if let Err(error) = &result {
            let total = self.refusals.add();
            if let Some(telemetry) = &self.telemetry {
                telemetry.count_refused_request(RefusalReason::Unauthenticated);
            }
            self.log.refused(client, error, total);
        }
        result
    }

    /// The `WWW-Authenticate` value of an HTTP 401 answer.
    pub fn challenge(&self) -> HeaderValue {
        self.authenticator.challenge()
    }
}

/// Logs refusals at WARN without flooding the log: the first one, then,
/// [`REFUSAL_LOG_WINDOW`] later, how many more there were.
struct RefusalLog {
    component: String,
    protocol: &'static str,
    window: Mutex<LogWindow>,
}

/// The state of the refusal log: the pure part, tested on its own.
#[derive(Debug, Default)]
struct LogWindow {
    /// While a window is open, refusals are only counted.
    open_until: Option<Instant>,
    /// Refusals counted in the open window, and the last one's client and reason.
    suppressed: u64,
    last: Option<(String, String)>,
    /// Whether the summary of the open window is due.
    summary_scheduled: bool,
}

/// What to do with one refusal.
#[derive(Debug, PartialEq, Eq)]
enum LogAction {
    /// Log it, and open a window.
    Log,
    /// Count it; the summary is written at the instant given, when the
    /// caller must schedule it (the window's first suppressed refusal).
    Count {
        schedule_summary_at: Option<Instant>,
    },
}

/// One summary line.
#[derive(Debug, PartialEq, Eq)]
struct Summary {
    refused: u64,
    last_client: String,
    last_reason: String,
}

impl LogWindow {
    fn refused(&mut self, now: Instant, client: String, reason: String) -> LogAction {
        match self.open_until {
            Some(until) if now < until => {
                self.suppressed += 1;
                self.last = Some((client, reason));
                let first = !self.summary_scheduled;
                self.summary_scheduled = true;
                LogAction::Count {
                    schedule_summary_at: first.then_some(until),
                }
            }
            _ => {
                self.open_until = Some(now + REFUSAL_LOG_WINDOW);
                LogAction::Log
            }
        }
    }

    /// Closes the window: the next refusal is logged again.
    fn summary(&mut self) -> Option<Summary> {
        let summary = self.last.take().map(|(last_client, last_reason)| Summary {
            refused: self.suppressed,
            last_client,
            last_reason,
        });
        *self = Self::default();
        summary
    }
}

impl RefusalLog {
    fn refused(self: &Arc<Self>, client: Option<SocketAddr>, error: &AuthError, total: u64) {
        let client = client.map_or_else(|| "unknown".to_owned(), |a| a.to_string());
        let action = self
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .refused(Instant::now(), client.clone(), error.reason().to_owned());
        match action {
            LogAction::Log => tracing::warn!(
                component = %self.component,
                protocol = self.protocol,
                client = %client,
                reason = %error,
                refused_total = total,
                "refused a request: not authenticated; nothing of it entered the pipeline (further refusals in the next {}s are summed up)",
                REFUSAL_LOG_WINDOW.as_secs()
            ),
            LogAction::Count {
                schedule_summary_at: Some(at),
            } => {
                let log = self.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(runtime) => {
                        runtime.spawn(async move {
                            tokio::time::sleep_until(at).await;
                            log.write_summary();
                        });
                    }
                    // Outside a runtime (never in a receiver): no timer, say it now.
                    Err(_) => log.write_summary(),
                }
            }
            LogAction::Count { .. } => {}
        }
    }

    fn write_summary(&self) {
        let summary = self
            .window
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .summary();
        if let Some(summary) = summary {
            tracing::warn!(
                component = %self.component,
                protocol = self.protocol,
                refused = summary.refused,
                last_client = %summary.last_client,
                last_reason = %summary.last_reason,
                "refused {} more unauthenticated requests in the last {}s",
                summary.refused,
                REFUSAL_LOG_WINDOW.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests;
