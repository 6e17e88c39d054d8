//! `bearertokenauth`: a static token (or several) in a header.
//!
//! Server side: a request is let in when its header is `<scheme> <token>`
//! for one of the tokens. The scheme is matched without regard to case; the
//! token is compared as a SHA-256 digest against the digest of *every*
//! configured token, each comparison in constant time and their results
//! combined without branching, so neither the time taken nor an early exit
//! tells how much of a guess was right, how long a token is, or which token
//! matched.
//!
//! Client side: every request gets the header with the first token.
//!
//! Tokens come from `token`, `tokens` or a file (`filename`, alias
//! `tokens_file`): one token per line — the first word of the line, the
//! rest a comment — empty lines and lines starting with `#` skipped. The
//! file is read at start (a missing or empty file fails the start) and read
//! again within a second of any change, so tokens rotate without a restart.

use std::sync::Arc;

use async_trait::async_trait;
use auditcol_core::ComponentId;
use auditcol_core::auth::{
    AuthError, ClientAuthenticator, HeaderMap, HeaderName, HeaderValue, ServerAuthenticator,
};
use auditcol_core::component::{Component, Extension, StartError};
use auditcol_core::config::ConfigError;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};
use tokio::time::Instant;

use crate::header;
use crate::watched::WatchedFile;

mod config;

pub use config::{BearerTokenAuthConfig, DEFAULT_HEADER, DEFAULT_SCHEME};

/// The component type in config ids (`bearertokenauth`, `bearertokenauth/<name>`).
pub const TYPE_NAME: &str = "bearertokenauth";

/// The tokens in force.
pub(crate) struct TokenSet {
    /// SHA-256 of each token: what presented tokens are compared with.
    digests: Vec<[u8; 32]>,
    /// The header value a client sends: `<scheme> <first token>`.
    client_value: HeaderValue,
}

impl TokenSet {
    fn new(tokens: &[&str], scheme: &str) -> Result<Self, String> {
        let first = tokens.first().ok_or("holds no token")?;
        let value = if scheme.is_empty() {
            (*first).to_owned()
        } else {
            format!("{scheme} {first}")
        };
        let mut client_value = HeaderValue::from_str(&value)
            .map_err(|_| "a token cannot travel in an HTTP header".to_owned())?;
        client_value.set_sensitive(true);
        Ok(Self {
            digests: tokens.iter().map(|t| Sha256::digest(t).into()).collect(),
            client_value,
        })
    }

    /// Whether `presented` is one of the tokens. Every token is compared,
    /// in constant time, whatever matches.
    fn contains(&self, presented: &[u8]) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let mut found = Choice::from(0);
        for digest in &self.digests {
            found |= digest.ct_eq(&presented);
        }
        found.into()
    }

    /// How many tokens there are.
    pub(crate) fn len(&self) -> usize {
        self.digests.len()
    }
}

/// Parses a tokens file: the first word of each line, skipping empty lines
/// and `#` comments. Errors give the line number, never a token.
pub(crate) fn parse_tokens_file(text: &str) -> Result<Vec<&str>, String> {
    let mut tokens = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let token = line.split_whitespace().next().unwrap_or_default();
        config::check_token(token).map_err(|why| format!("line {}: the token {why}", i + 1))?;
        tokens.push(token);
    }
    if tokens.is_empty() {
        return Err("holds no token: write one token per line".into());
    }
    Ok(tokens)
}

/// Where the tokens come from.
enum Tokens {
    Fixed(Arc<TokenSet>),
    File(Arc<WatchedFile<TokenSet>>),
}

/// The authenticator itself: both sides.
struct BearerAuthenticator {
    header: HeaderName,
    scheme: String,
    tokens: Tokens,
}

impl BearerAuthenticator {
    fn tokens(&self) -> Option<Arc<TokenSet>> {
        match &self.tokens {
            Tokens::Fixed(set) => Some(set.clone()),
            Tokens::File(file) => file.current(),
        }
    }
}

#[async_trait]
impl ServerAuthenticator for BearerAuthenticator {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        let value = header::single_value(headers, &self.header)?;
        let token = header::credential(value, &self.scheme, &self.header)?;
        let tokens = self
            .tokens()
            .ok_or_else(|| AuthError::Unavailable("the tokens file is not read yet".into()))?;
        if tokens.contains(token) {
            Ok(())
        } else {
            Err(AuthError::Unauthenticated(
                "the token is not one of the configured tokens".into(),
            ))
        }
    }

    fn challenge(&self) -> HeaderValue {
        let scheme = if self.scheme.is_empty() {
            DEFAULT_SCHEME
        } else {
            &self.scheme
        };
        HeaderValue::from_str(scheme).unwrap_or(HeaderValue::from_static(DEFAULT_SCHEME))
    }
}

impl ClientAuthenticator for BearerAuthenticator {
    fn headers(&self) -> Result<HeaderMap, String> {
        let tokens = self
            .tokens()
            .ok_or("the tokens file is not read yet: the extension has not started")?;
        let mut headers = HeaderMap::new();
        headers.insert(self.header.clone(), tokens.client_value.clone());
        Ok(headers)
    }
}

/// A `bearertokenauth` extension.
pub struct BearerTokenAuth {
    id: ComponentId,
    authenticator: Arc<BearerAuthenticator>,
}

impl BearerTokenAuth {
    /// The extension for a validated `config`; a tokens file is read at start.
    pub fn new(id: ComponentId, config: &BearerTokenAuthConfig) -> Result<Self, ConfigError> {
        let header = config
            .header_name()
            .map_err(|message| ConfigError::at("header", message))?;
        let scheme = config.scheme.clone();
        let tokens = if let Some(path) = &config.filename {
            let file_scheme = scheme.clone();
            Tokens::File(Arc::new(WatchedFile::new(
                path,
                "tokens file",
                id.to_string(),
                Box::new(move |text| TokenSet::new(&parse_tokens_file(text)?, &file_scheme)),
            )))
        } else {
            let listed: Vec<&str> = match (&config.token, &config.tokens) {
                (Some(token), _) => vec![token.expose()],
                (None, Some(tokens)) => tokens.iter().map(|t| t.expose()).collect(),
                (None, None) => Vec::new(),
            };
            let key = if config.token.is_some() {
                "token"
            } else {
                "tokens"
            };
            Tokens::Fixed(Arc::new(
                TokenSet::new(&listed, &scheme).map_err(|why| ConfigError::at(key, why))?,
            ))
        };
        Ok(Self {
            id,
            authenticator: Arc::new(BearerAuthenticator {
                header,
                scheme,
                tokens,
            }),
        })
    }
}

#[async_trait]
impl Component for BearerTokenAuth {
    async fn start(&self) -> Result<(), StartError> {
        if let Tokens::File(file) = &self.authenticator.tokens {
            file.start(TokenSet::len)
                .map_err(|e| StartError(format!("extension {}: {e}", self.id)))?;
        }
        Ok(())
    }

    async fn shutdown(&self, _deadline: Instant) {
        if let Tokens::File(file) = &self.authenticator.tokens {
            file.stop().await;
        }
    }
}

impl Extension for BearerTokenAuth {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn server_authenticator(&self) -> Option<Arc<dyn ServerAuthenticator>> {
        Some(self.authenticator.clone())
    }

    fn client_authenticator(&self) -> Option<Arc<dyn ClientAuthenticator>> {
        Some(self.authenticator.clone())
    }
}

#[cfg(test)]
mod tests;
