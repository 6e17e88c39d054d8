//! `basicauth`: HTTP Basic credentials, checked against htpasswd entries
//! (server side) or sent (client side).
//!
//! bcrypt is slow on purpose (a few to a hundred milliseconds of a core per
//! check), which makes it a lever for anyone who can reach a receiver: a
//! flood of wrong passwords could keep every core busy. Three rules keep
//! that bounded:
//!
//! - **A cache of successful checks.** A credential that verified once is
//!   remembered — as an HMAC-SHA256 of user and password under a key drawn
//!   at random when the users are read, never the password itself — so a
//!   client sending the same credentials on every request pays for bcrypt
//!   once. At most [`CACHE_CAPACITY`] entries (the oldest make room); the
//!   cache starts empty whenever the htpasswd file is read again.
//! - **Few checks at a time.** At most half the cores (at least one) run
//!   bcrypt at once, on the blocking thread pool, never on the threads that
//!   serve requests; a check holds its place until bcrypt returns, even if
//!   the client has gone.
//! - **A short queue.** At most [`WAITING_PER_CHECK`] requests per running
//!   check wait for a place; the next ones are answered at once with
//!   HTTP 503 / gRPC UNAVAILABLE and `Retry-After: 1`, which OTLP clients
//!   retry — a flood slows new clients down, and clients already in the
//!   cache not at all.
//!
//! An unknown user's password is checked against a known user's hash (and
//! then refused), so that a refusal takes as long whether the user exists
//! or not. `{SHA}` entries are checked at once, in constant time.

use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use auditcol_core::ComponentId;
use auditcol_core::auth::{
    AuthError, ClientAuthenticator, HeaderMap, HeaderValue, ServerAuthenticator,
};
use auditcol_core::component::{Component, Extension, StartError};
use auditcol_core::config::ConfigError;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use http::header::AUTHORIZATION;
use sha2::Sha256;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::header;
use crate::watched::WatchedFile;

mod config;
pub(crate) mod htpasswd;

pub use config::{BasicAuthConfig, ClientAuthSettings, HtpasswdSettings};

use htpasswd::Htpasswd;

/// The component type in config ids (`basicauth`, `basicauth/<name>`).
pub const TYPE_NAME: &str = "basicauth";

/// Successful checks remembered, per htpasswd version.
pub const CACHE_CAPACITY: usize = 1024;

/// Requests that may wait for a bcrypt check, per check that may run.
pub const WAITING_PER_CHECK: usize = 8;

/// The `WWW-Authenticate` challenge.
const CHALLENGE: &str = "Basic realm=\"auditcol\"";

const WRONG: &str = "wrong user name or password";

/// bcrypt checks that may run at once: half the cores, at least one.
fn concurrent_checks() -> usize {
    std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
}

/// The users in force and the credentials already verified against them.
struct Users {
    htpasswd: Htpasswd,
    verified: VerifiedCache,
}

impl Users {
    fn new(htpasswd: Htpasswd) -> Self {
        Self {
            htpasswd,
            verified: VerifiedCache::new(CACHE_CAPACITY),
        }
    }
}

/// Credentials that verified, as keyed hashes, oldest first out.
struct VerifiedCache {
    key: [u8; 32],
    capacity: usize,
    entries: Mutex<Verified>,
}

/// The keyed hashes, and their order of arrival.
#[derive(Default)]
struct Verified {
    set: HashSet<[u8; 32]>,
    order: VecDeque<[u8; 32]>,
}

impl VerifiedCache {
    fn new(capacity: usize) -> Self {
        Self {
            key: rand::random(),
            capacity,
            entries: Mutex::default(),
        }
    }

    /// HMAC-SHA256 of the user and password under the cache's own key: the
    /// password cannot be read back from it, nor guessed offline without the key.
    fn key_of(&self, user: &[u8], password: &[u8]) -> [u8; 32] {
        let mut mac =
            <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(&(user.len() as u64).to_be_bytes());
        mac.update(user);
        mac.update(password);
        mac.finalize().into_bytes().into()
    }

    fn contains(&self, key: &[u8; 32]) -> bool {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .set
            .contains(key)
    }

    fn insert(&self, key: [u8; 32]) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let Verified { set, order } = &mut *entries;
        if !set.insert(key) {
            return;
        }
        order.push_back(key);
        while order.len() > self.capacity {
            if let Some(oldest) = order.pop_front() {
                set.remove(&oldest);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .order
            .len()
    }
}

/// At most `permits` slow checks at once, and at most `max_waiting`
/// requests waiting for one; past that, refused at once.
struct CheckLimit {
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// Counts a waiting request until dropped (also when the request is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl CheckLimit {
    fn new(permits: usize, max_waiting: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits)),
            waiting: AtomicUsize::new(0),
            max_waiting,
        }
    }

    async fn acquire(&self) -> Result<OwnedSemaphorePermit, AuthError> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        let before = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _waiting = Waiting(&self.waiting);
        if before >= self.max_waiting {
            return Err(AuthError::Unavailable(
                "too many password checks in progress; retry shortly".into(),
            ));
        }
        self.permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| AuthError::Unavailable("password checks have stopped".into()))
    }
}

/// Where the users come from.
enum Source {
    Fixed(Arc<Users>),
    File(Arc<WatchedFile<Users>>),
}

/// The server side.
struct BasicServer {
    source: Source,
    limit: CheckLimit,
}

impl BasicServer {
    fn users(&self) -> Option<Arc<Users>> {
        match &self.source {
            Source::Fixed(users) => Some(users.clone()),
            Source::File(file) => file.current(),
        }
    }
}

/// `user` and `password` of `Authorization: Basic <base64(user:password)>`.
fn basic_credentials(headers: &HeaderMap) -> Result<(Vec<u8>, usize), AuthError> {
    let value = header::single_value(headers, &AUTHORIZATION)?;
    let encoded = header::credential(value, "Basic", &AUTHORIZATION)?;
    let decoded = STANDARD.decode(encoded).map_err(|_| {
        AuthError::Unauthenticated("the Basic credentials are not valid base64".into())
    })?;
    let colon = decoded.iter().position(|&b| b == b':').ok_or_else(|| {
        AuthError::Unauthenticated("the Basic credentials are not `user:password`".into())
    })?;
    Ok((decoded, colon))
}

#[async_trait]
impl ServerAuthenticator for BasicServer {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let (decoded, colon) = basic_credentials(headers)?;
        let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
        let users = self
            .users()
            .ok_or_else(|| AuthError::Unavailable("the htpasswd file is not read yet".into()))?;
        let key = users.verified.key_of(user, password);
        if users.verified.contains(&key) {
            return Ok(());
        }
        let known = std::str::from_utf8(user)
            .ok()
            .and_then(|user| users.htpasswd.get(user));
        let Some(hash) = known.or_else(|| users.htpasswd.stand_in()) else {
            return Err(AuthError::Unauthenticated(WRONG.into()));
        };
        let matches = if hash.is_slow() {
            let permit = self.limit.acquire().await?;
            let hash = hash.clone();
            let password = password.to_vec();
            // The place is held until bcrypt returns, even if this request is dropped.
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                hash.verify(&password)
            })
            .await
            .unwrap_or(false)
        } else {
            hash.verify(password)
        };
        if matches && known.is_some() {
            users.verified.insert(key);
            Ok(())
        } else {
            Err(AuthError::Unauthenticated(WRONG.into()))
        }
    }

    fn challenge(&self) -> HeaderValue {
        HeaderValue::from_static(CHALLENGE)
    }
}

/// The client side: one header value, made once.
struct BasicClient {
    value: HeaderValue,
}

impl ClientAuthenticator for BasicClient {
    fn headers(&self) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, self.value.clone());
        Ok(headers)
    }
}

/// Which side this extension is.
enum Side {
    Server(Arc<BasicServer>),
    Client(Arc<BasicClient>),
}

/// A `basicauth` extension.
pub struct BasicAuth {
    id: ComponentId,
    side: Side,
}

impl BasicAuth {
    /// The extension for a validated `config`; an htpasswd file is read at start.
    pub fn new(id: ComponentId, config: &BasicAuthConfig) -> Result<Self, ConfigError> {
        let side = match (&config.htpasswd, &config.client_auth) {
            (Some(htpasswd), _) => {
                let inline = htpasswd
                    .inline
                    .as_ref()
                    .map(|text| Htpasswd::parse(text.expose()))
                    .transpose()
                    .map_err(|e| ConfigError::at("htpasswd.inline", e))?;
                let source = match (&htpasswd.file, inline) {
                    (Some(path), inline) => Source::File(Arc::new(WatchedFile::new(
                        path,
                        "htpasswd file",
                        id.to_string(),
                        Box::new(move |text| {
                            let file = Htpasswd::parse(text)?;
                            Ok(Users::new(match &inline {
                                Some(inline) => file.overridden_by(inline),
                                None => file,
                            }))
                        }),
                    ))),
                    (None, Some(inline)) => Source::Fixed(Arc::new(Users::new(inline))),
                    (None, None) => {
                        return Err(ConfigError::at("htpasswd", "set `file` or `inline`"));
                    }
                };
                Side::Server(Arc::new(BasicServer {
                    source,
                    limit: CheckLimit::new(
                        concurrent_checks(),
                        concurrent_checks() * WAITING_PER_CHECK,
                    ),
                }))
            }
            (None, Some(client)) => {
                let encoded =
                    STANDARD.encode(format!("{}:{}", client.username, client.password.expose()));
                let mut value = HeaderValue::from_str(&format!("Basic {encoded}"))
                    .map_err(|_| ConfigError::at("client_auth", "cannot be sent in a header"))?;
                value.set_sensitive(true);
                Side::Client(Arc::new(BasicClient { value }))
            }
            (None, None) => {
                return Err(ConfigError::at("", "set `htpasswd` or `client_auth`"));
            }
        };
        Ok(Self { id, side })
    }
}

#[async_trait]
impl Component for BasicAuth {
    async fn start(&self) -> Result<(), StartError> {
        let Side::Server(server) = &self.side else {
            return Ok(());
        };
        match &server.source {
            Source::File(file) => file
                .start(|users: &Users| users.htpasswd.len())
                .map_err(|e| StartError(format!("extension {}: {e}", self.id)))?,
            Source::Fixed(users) => {
                tracing::info!(component = %self.id, entries = users.htpasswd.len(), "htpasswd entries read from the config");
            }
        }
        Ok(())
    }

    async fn shutdown(&self, _deadline: Instant) {
        if let Side::Server(server) = &self.side
            && let Source::File(file) = &server.source
        {
            file.stop().await;
        }
    }
}

impl Extension for BasicAuth {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn server_authenticator(&self) -> Option<Arc<dyn ServerAuthenticator>> {
        match &self.side {
            Side::Server(server) => Some(server.clone()),
            Side::Client(_) => None,
        }
    }

    fn client_authenticator(&self) -> Option<Arc<dyn ClientAuthenticator>> {
        match &self.side {
            Side::Client(client) => Some(client.clone()),
            Side::Server(_) => None,
        }
    }
}

#[cfg(test)]
mod tests;
