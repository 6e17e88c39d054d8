//! The authenticator extensions of auditcol, in the shape of the
//! OpenTelemetry Collector's `bearertokenauth` and `basicauth`:
//!
//! ```yaml
//! extensions:
//!   bearertokenauth/ingest:
//!     filename: /etc/auditcol/ingest-tokens   # one token per line, re-read when it changes
//!   basicauth/siem:
//!     client_auth: {username: auditcol, password: ${env:SIEM_PASSWORD}}
//! receivers:
//!   otlp:
//!     protocols:
//!       grpc:
//!         auth: {authenticator: bearertokenauth/ingest}
//! service:
//!   extensions: [bearertokenauth/ingest, basicauth/siem]
//! ```
//!
//! Each extension offers the core's
//! [`ServerAuthenticator`](auditcol_core::auth::ServerAuthenticator) (a
//! receiver asks it about every request, on the headers alone, before the
//! body is read) and/or
//! [`ClientAuthenticator`](auditcol_core::auth::ClientAuthenticator) (an
//! exporter adds its headers to every request).
//!
//! - [`bearer`]: `Authorization: Bearer <token>` against a set of tokens,
//!   compared in constant time as SHA-256 digests (no early exit, no
//!   length revealed); tokens in the config or in a file re-read on change.
//! - [`basic`]: `Authorization: Basic …` against htpasswd entries (bcrypt
//!   `$2y$`/`$2b$`/`$2a$`, or `{SHA}`); bcrypt checks are bounded in number
//!   and successful ones cached under a keyed hash, so a flood of wrong
//!   passwords cannot take every core.
//!
//! Nothing here ever logs or answers a credential: tokens and passwords are
//! [`Secret`](auditcol_core::config::Secret)s, refusals carry reasons only.

use std::sync::Arc;

use auditcol_core::component::{BuildContext, Extension, ExtensionFactory};
use auditcol_core::config::ConfigError;

pub mod basic;
pub mod bearer;
mod header;
mod watched;

pub use basic::{BasicAuth, BasicAuthConfig};
pub use bearer::{BearerTokenAuth, BearerTokenAuthConfig};

/// Builds `bearertokenauth` extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct BearerTokenAuthFactory;

impl ExtensionFactory for BearerTokenAuthFactory {
    fn type_name(&self) -> &'static str {
        bearer::TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Extension>, ConfigError> {
        let config: BearerTokenAuthConfig = ctx.parse_config(config)?;
        Ok(Arc::new(BearerTokenAuth::new(ctx.id.clone(), &config)?))
    }
}

/// Builds `basicauth` extensions.
#[derive(Debug, Clone, Copy, Default)]
pub struct BasicAuthFactory;

impl ExtensionFactory for BasicAuthFactory {
    fn type_name(&self) -> &'static str {
        basic::TYPE_NAME
    }

    fn build(
        &self,
        ctx: &BuildContext,
        config: &serde_json::Value,
    ) -> Result<Arc<dyn Extension>, ConfigError> {
        let config: BasicAuthConfig = ctx.parse_config(config)?;
        Ok(Arc::new(BasicAuth::new(ctx.id.clone(), &config)?))
    }
}

/// A host offering these extensions, built by their factories from
/// `(id, config)` pairs (`("bearertokenauth/ingest", json!({"token": "t"}))`),
/// and knowing `disabled` ids as defined but not enabled: for other crates'
/// tests of `auth` (feature `test-util`).
#[cfg(feature = "test-util")]
pub fn test_host(
    enabled: &[(&str, serde_json::Value)],
    disabled: &[&str],
) -> Result<auditcol_core::component::Host, ConfigError> {
    use auditcol_core::ComponentId;
    let mut built = std::collections::BTreeMap::new();
    for (id, config) in enabled {
        let id = ComponentId::parse(id).map_err(|e| ConfigError::at("", e))?;
        let factory: &dyn ExtensionFactory = match id.type_name() {
            bearer::TYPE_NAME => &BearerTokenAuthFactory,
            basic::TYPE_NAME => &BasicAuthFactory,
            other => return Err(ConfigError::at("", format!("no extension type `{other}`"))),
        };
        let extension = factory.build(&BuildContext::new(id.clone()), config)?;
        built.insert(id, extension);
    }
    let disabled = disabled
        .iter()
        .map(|id| ComponentId::parse(id).map_err(|e| ConfigError::at("", e)))
        .collect::<Result<_, _>>()?;
    Ok(auditcol_core::component::Host::new(built, disabled))
}

#[cfg(test)]
mod tests;
