//! Settings of the `health_check` extension, named as the Collector's.

use std::net::SocketAddr;

use auditcol_core::config::{ConfigError, Validate};
use auditcol_core::receiverhelper::parse_endpoint;
use serde::Deserialize;

/// The Collector's default endpoint: `localhost` is loopback, 127.0.0.1.
pub const DEFAULT_ENDPOINT: &str = "localhost:13133";

/// `extensions: { health_check: { endpoint, path } }`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheckConfig {
    /// `host:port` to listen on; `:13133` for every interface.
    pub endpoint: String,
    /// The path that answers; every other path is 404.
    pub path: String,
}

impl Default for HealthCheckConfig {
    fn default() -> Self {
        Self {
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            path: "/".to_owned(),
        }
    }
}

impl HealthCheckConfig {
    /// The address to bind (validated).
    pub fn socket_addr(&self) -> Result<SocketAddr, String> {
        parse_endpoint(&self.endpoint)
    }
}

impl Validate for HealthCheckConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.socket_addr()
            .map_err(|e| ConfigError::at("endpoint", e))?;
        if !self.path.starts_with('/') {
            return Err(ConfigError::at(
                "path",
                format!("`{}` must start with `/`, e.g. `/health`", self.path),
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

    #[test]
    fn defaults_are_the_collectors_on_loopback() {
        let config: HealthCheckConfig = parse_component_config(&json!(null)).unwrap();
        assert_eq!(config.socket_addr().unwrap().to_string(), "127.0.0.1:13133");
        assert_eq!(config.path, "/");
    }

    #[test]
    fn bad_settings_are_refused_with_their_key() {
        for (raw, key) in [
            (json!({"endpoint": "example.com:13133"}), "endpoint"),
            (json!({"path": "health"}), "path"),
            (json!({"check_collector_pipeline": {}}), ""),
        ] {
            let err = parse_component_config::<HealthCheckConfig>(&raw).unwrap_err();
            if key.is_empty() {
                assert!(err.message.contains("unknown field"), "{err}");
            } else {
                assert_eq!(err.path, key, "{err}");
            }
        }
    }
}
