//! Settings of the `basicauth` extension, with the Collector's keys: one
//! side per extension.
//!
//! ```yaml
//! # server side: check incoming requests
//! htpasswd:
//!   file: /etc/auditcol/htpasswd   # read at start, again when it changes
//!   inline: |                      # merged with the file; inline wins for a user in both
//!     flipt:$2y$10$...
//! # client side: send credentials (instead of htpasswd)
//! client_auth:
//!   username: auditcol
//!   password: ${env:SIEM_PASSWORD}
//! ```

use auditcol_core::config::{ConfigError, Secret, Validate, nested};
use serde::Deserialize;

use super::htpasswd::Htpasswd;

/// The whole `basicauth` config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuthConfig {
    /// Server side: the accepted users and their password hashes.
    #[serde(default)]
    pub htpasswd: Option<HtpasswdSettings>,
    /// Client side: the credentials to send.
    #[serde(default)]
    pub client_auth: Option<ClientAuthSettings>,
}

/// `htpasswd`: Apache htpasswd lines, from a file, inline, or both.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct HtpasswdSettings {
    /// An htpasswd file, read at start and again when it changes.
    #[serde(default)]
    pub file: Option<String>,
    /// htpasswd lines in the config (hashes only, never passwords).
    #[serde(default)]
    pub inline: Option<Secret>,
}

/// `client_auth`: what an exporter sends.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthSettings {
    /// The user name (no `:`).
    pub username: String,
    /// The password, typically `${env:…}`.
    pub password: Secret,
}

impl Validate for BasicAuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        match (&self.htpasswd, &self.client_auth) {
            (None, None) => Err(ConfigError::at(
                "",
                "set `htpasswd` (to check incoming requests) or `client_auth` (to send credentials)",
            )),
            (Some(_), Some(_)) => Err(ConfigError::at(
                "client_auth",
                "cannot be set with `htpasswd`: one basicauth extension is either a server or a client authenticator (define two, e.g. basicauth/server and basicauth/client)",
            )),
            (Some(htpasswd), None) => nested("htpasswd", htpasswd.validate()),
            (None, Some(client)) => nested("client_auth", client.validate()),
        }
    }
}

impl Validate for HtpasswdSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.file.is_none() && self.inline.is_none() {
            return Err(ConfigError::at(
                "",
                "set `file` (an htpasswd file) or `inline` (htpasswd lines), or both",
            ));
        }
        if self.file.as_deref().is_some_and(|f| f.trim().is_empty()) {
            return Err(ConfigError::at(
                "file",
                "must not be empty: the path of an htpasswd file",
            ));
        }
        if let Some(inline) = &self.inline {
            Htpasswd::parse(inline.expose()).map_err(|e| ConfigError::at("inline", e))?;
        }
        Ok(())
    }
}

impl Validate for ClientAuthSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.username.is_empty() {
            return Err(ConfigError::at(
                "username",
                "is empty (is its environment variable set?)",
            ));
        }
        if self.username.contains(':') || self.username.chars().any(char::is_control) {
            return Err(ConfigError::at(
                "username",
                "must not contain `:` or control characters (Basic credentials are `user:password`)",
            ));
        }
        if self.password.is_empty() {
            return Err(ConfigError::at(
                "password",
                "is empty (is its environment variable set?)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditcol_core::config::parse_component_config;
    use serde_json::json;

    fn parse(value: serde_json::Value) -> Result<BasicAuthConfig, ConfigError> {
        parse_component_config(&value)
    }

    use crate::basic::htpasswd::tests::FLIPT_LINE as FLIPT;

    #[test]
    fn one_side_per_extension() {
        parse(json!({"htpasswd": {"inline": FLIPT}})).unwrap();
        parse(json!({"htpasswd": {"file": "/etc/htpasswd"}})).unwrap();
        parse(json!({"client_auth": {"username": "u", "password": "p"}})).unwrap();
        let cases = [
            (json!({}), "", "set `htpasswd`"),
            (
                json!({"htpasswd": {"file": "f"}, "client_auth": {"username": "u", "password": "p"}}),
                "client_auth",
                "cannot be set with `htpasswd`",
            ),
            (json!({"htpasswd": {}}), "htpasswd", "set `file`"),
            (
                json!({"htpasswd": {"file": ""}}),
                "htpasswd.file",
                "must not be empty",
            ),
            (
                json!({"htpasswd": {"inline": "flipt:plain-secret"}}),
                "htpasswd.inline",
                "line 1: user `flipt`: the password is not hashed with bcrypt",
            ),
            (
                json!({"client_auth": {"username": "", "password": "p"}}),
                "client_auth.username",
                "is empty",
            ),
            (
                json!({"client_auth": {"username": "a:b", "password": "p"}}),
                "client_auth.username",
                "must not contain `:`",
            ),
            (
                json!({"client_auth": {"username": "u", "password": ""}}),
                "client_auth.password",
                "is empty",
            ),
            (
                json!({"client_auth": {"username": "u"}}),
                "client_auth",
                "missing field `password`",
            ),
        ];
        for (value, path, message) in cases {
            let err = parse(value.clone()).unwrap_err();
            assert_eq!(err.path, path, "{value}: {err}");
            assert!(err.message.contains(message), "{value}: {err}");
            assert!(!err.message.contains("secret"), "{value}: {err}");
        }
    }

    #[test]
    fn debug_output_hides_passwords_and_hashes() {
        let config =
            parse(json!({"client_auth": {"username": "u", "password": "pw-secret"}})).unwrap();
        assert!(!format!("{config:?}").contains("pw-secret"));
        let config = parse(json!({"htpasswd": {"inline": FLIPT}})).unwrap();
        assert!(!format!("{config:?}").contains("$2y$"));
    }
}
