//! The Kafka client settings both components take, at the top level of
//! their config: `brokers`, `client_id`, `authentication`, `tls` and
//! `properties` (any other librdkafka property).
//!
//! A component's config is split in two by [`parse_config`]: these keys are
//! read here, once for both components, and the rest by the component's own
//! struct. Both halves refuse unknown keys, and errors keep their key path.

use std::collections::BTreeMap;
use std::fmt;

use auditcol_core::config::{ConfigError, Validate, nested, parse_component_config};
use auditcol_core::tls::TlsClientSettings;
use rdkafka::ClientConfig;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The keys [`KafkaClientSettings`] reads from a component's config.
pub const CLIENT_KEYS: [&str; 5] = [
    "brokers",
    "client_id",
    "authentication",
    "tls",
    "properties",
];

/// The client id when `client_id` is not set.
pub const DEFAULT_CLIENT_ID: &str = "auditcol";

/// Where and how to connect: what the kafka exporter and receiver share.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaClientSettings {
    /// The bootstrap brokers, `host:port` each: a list, or one string of
    /// comma-separated brokers (handy with `${env:KAFKA_BROKERS}`).
    #[serde(default, deserialize_with = "brokers")]
    pub brokers: Vec<String>,
    /// The client id the brokers see (logs, quotas).
    #[serde(default = "default_client_id")]
    pub client_id: String,
    /// SASL authentication; none when absent.
    #[serde(default)]
    pub authentication: Option<Authentication>,
    /// TLS to the brokers: on when present (`tls: {}`), as in the
    /// Collector's Kafka components; `tls.insecure: true` turns it off.
    #[serde(default)]
    pub tls: Option<TlsClientSettings>,
    /// Any other librdkafka property, e.g. `socket.keepalive.enable: true`.
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
}

fn brokers<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize, Serialize)]
    #[serde(untagged)]
    enum Brokers {
        List(Vec<String>),
        Text(String),
    }
    Ok(
        match Brokers::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "expected a list of host:port, or one string of comma-separated host:port",
            )
        })? {
            Brokers::List(list) => list,
            Brokers::Text(text) => text
                .split(',')
                .map(str::trim)
                .filter(|b| !b.is_empty())
                .map(str::to_owned)
                .collect(),
        },
    )
}

fn default_client_id() -> String {
    DEFAULT_CLIENT_ID.to_owned()
}

impl Default for KafkaClientSettings {
    fn default() -> Self {
        Self {
            brokers: Vec::new(),
            client_id: default_client_id(),
            authentication: None,
            tls: None,
            properties: BTreeMap::new(),
        }
    }
}

/// `authentication`: SASL over the connection (with `tls`, over TLS).
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Authentication {
    /// `PLAIN`, `SCRAM-SHA-256` (default, as Flipt's sink) or `SCRAM-SHA-512`.
    #[serde(default)]
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password; usually `${env:…}`.
    pub password: String,
}

impl fmt::Debug for Authentication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authentication")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A SASL mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
pub enum SaslMechanism {
    /// User name and password in clear text: only over TLS.
    #[serde(rename = "PLAIN")]
    Plain,
    /// Salted challenge-response with SHA-256: Flipt's sink's choice.
    #[default]
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// Salted challenge-response with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The librdkafka `sasl.mechanisms` value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// A librdkafka property value: YAML strings, numbers and booleans are all
/// given to librdkafka as text.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum PropertyValue {
    /// `true` / `false`.
    Bool(bool),
    /// A number.
    Number(serde_json::Number),
    /// Text.
    Text(String),
}

impl fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Bool(b) => write!(f, "{b}"),
            Self::Number(n) => write!(f, "{n}"),
            Self::Text(t) => f.write_str(t),
        }
    }
}

/// The librdkafka properties the client settings set themselves, and the
/// key that sets each.
const CONNECTION_PROPERTIES: [(&str, &str); 13] = [
    ("bootstrap.servers", "brokers"),
    ("metadata.broker.list", "brokers"),
    ("client.id", "client_id"),
    ("security.protocol", "tls and authentication"),
    ("sasl.mechanism", "authentication.mechanism"),
    ("sasl.mechanisms", "authentication.mechanism"),
    ("sasl.username", "authentication.username"),
    ("sasl.password", "authentication.password"),
    ("ssl.ca.location", "tls.ca_file"),
    ("ssl.certificate.location", "tls.cert_file"),
    ("ssl.key.location", "tls.key_file"),
    (
        "enable.ssl.certificate.verification",
        "tls.insecure_skip_verify",
    ),
    (
        "ssl.endpoint.identification.algorithm",
        "tls.insecure_skip_verify",
    ),
];

/// The client settings and the component's own, as one map of every key
/// with its default filled in (for `auditcol print-config`).
pub fn effective_config(
    client: &KafkaClientSettings,
    own: &impl serde::Serialize,
) -> serde_json::Value {
    let mut merged = match serde_json::to_value(own) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    if let Ok(serde_json::Value::Object(client)) = serde_json::to_value(client) {
        merged.extend(client);
    }
    serde_json::Value::Object(merged)
}

/// Splits a component's raw config into the client settings and the
/// component's own settings `T`, and validates both. Error paths are the
/// keys as written (`tls.ca_file`, `topic`).
pub fn parse_config<T: DeserializeOwned + Validate>(
    raw: &serde_json::Value,
) -> Result<(KafkaClientSettings, T), ConfigError> {
    let mut own = match raw {
        serde_json::Value::Null => serde_json::Map::new(),
        serde_json::Value::Object(map) => map.clone(),
        _ => {
            return Err(ConfigError::at(
                "",
                "expected a map of settings (brokers, topic, ...)",
            ));
        }
    };
    check_renamed_tls_keys(own.get("tls"))?;
    let mut client = serde_json::Map::new();
    for key in CLIENT_KEYS {
        if let Some(value) = own.remove(key) {
            client.insert(key.to_owned(), value);
        }
    }
    let client: KafkaClientSettings = parse_component_config(&serde_json::Value::Object(client))?;
    let own: T = parse_component_config(&serde_json::Value::Object(own))?;
    Ok((client, own))
}

/// The `tls` keys of Flipt's Kafka sink that earlier versions took, with
/// what to write now.
fn check_renamed_tls_keys(tls: Option<&serde_json::Value>) -> Result<(), ConfigError> {
    let Some(tls) = tls.and_then(serde_json::Value::as_object) else {
        return Ok(());
    };
    if tls.contains_key("require_tls") {
        return Err(ConfigError::at(
            "tls.require_tls",
            "is no longer a key: TLS is on when `tls` is present (`tls: {}` trusts the system's CAs), and `tls.insecure: true` turns it off, as in the Collector",
        ));
    }
    if tls.contains_key("insecure_skip_tls") {
        return Err(ConfigError::at(
            "tls.insecure_skip_tls",
            "is now `tls.insecure_skip_verify`, as in the Collector",
        ));
    }
    Ok(())
}

impl KafkaClientSettings {
    /// The TLS settings when the connection uses TLS.
    fn tls_on(&self) -> Option<&TlsClientSettings> {
        self.tls.as_ref().filter(|tls| !tls.insecure)
    }
}

impl Validate for KafkaClientSettings {
    fn validate(&self) -> Result<(), ConfigError> {
        if self.brokers.is_empty() {
            return Err(ConfigError::at(
                "brokers",
                "is required: the Kafka bootstrap brokers, e.g. [\"kafka-1:9092\", \"kafka-2:9092\"]",
            ));
        }
        for (i, broker) in self.brokers.iter().enumerate() {
            check_broker(broker).map_err(|e| ConfigError::at(format!("brokers[{i}]"), e))?;
        }
        if self.client_id.trim().is_empty() {
            return Err(ConfigError::at(
                "client_id",
                "must not be empty (remove the key for `auditcol`)",
            ));
        }
        if let Some(auth) = &self.authentication {
            if auth.username.is_empty() {
                return Err(ConfigError::at(
                    "authentication.username",
                    "must not be empty (an unset ${env:…}?)",
                ));
            }
            if auth.password.is_empty() {
                return Err(ConfigError::at(
                    "authentication.password",
                    "must not be empty (an unset ${env:…}?)",
                ));
            }
        }
        match &self.tls {
            None => {}
            Some(tls) if tls.insecure => nested(
                "tls",
                tls.check_unused("is unused: `tls.insecure: true` makes the connection plain text"),
            )?,
            Some(tls) => {
                if tls.server_name_override.is_some() {
                    return Err(ConfigError::at(
                        "tls.server_name_override",
                        "is not supported by the Kafka client (librdkafka): it checks each broker's certificate against the host name the broker advertises",
                    ));
                }
                if tls.min_version.is_some() {
                    return Err(ConfigError::at(
                        "tls.min_version",
                        "is not supported by the Kafka client (librdkafka has no such setting): OpenSSL and the broker agree on the version",
                    ));
                }
                nested("tls", tls.validate())?;
            }
        }
        for name in self.properties.keys() {
            if let Some((_, key)) = CONNECTION_PROPERTIES.iter().find(|(p, _)| p == name) {
                return Err(ConfigError::at(
                    format!("properties.{name}"),
                    format!("is set by `{key}`: use that key instead"),
                ));
            }
        }
        Ok(())
    }
}

/// `host:port`, with a port number.
fn check_broker(broker: &str) -> Result<(), String> {
    let example = "write host:port, e.g. kafka-1:9092";
    let Some((host, port)) = broker.rsplit_once(':') else {
        return Err(format!("`{broker}` has no port: {example}"));
    };
    if host.is_empty() || host.contains(char::is_whitespace) || host.contains("://") {
        return Err(format!("`{broker}` is not host:port: {example}"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!("`{broker}` has an invalid port: {example}")),
    }
}

impl KafkaClientSettings {
    /// The bootstrap brokers as librdkafka takes them.
    pub fn bootstrap_servers(&self) -> String {
        self.brokers.join(",")
    }

    /// A librdkafka config: the connection (brokers, client id, TLS, SASL),
    /// then `component` (the component's own properties, its defaults),
    /// then `properties` (which may override those defaults).
    pub fn client_config<'a>(
        &self,
        component: impl IntoIterator<Item = (&'a str, String)>,
    ) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", self.bootstrap_servers())
            .set("client.id", &self.client_id);
        let protocol = match (self.tls_on().is_some(), self.authentication.is_some()) {
            (false, false) => "plaintext",
            (true, false) => "ssl",
            (false, true) => "sasl_plaintext",
            (true, true) => "sasl_ssl",
        };
        config.set("security.protocol", protocol);
        if let Some(auth) = &self.authentication {
            config
                .set("sasl.mechanisms", auth.mechanism.name())
                .set("sasl.username", &auth.username)
                .set("sasl.password", &auth.password);
        }
        if let Some(tls) = self.tls_on() {
            if let Some(ca) = &tls.ca_file {
                config.set("ssl.ca.location", ca);
            }
            if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
                config
                    .set("ssl.certificate.location", cert)
                    .set("ssl.key.location", key);
            }
            if tls.insecure_skip_verify {
                config
                    .set("enable.ssl.certificate.verification", "false")
                    .set("ssl.endpoint.identification.algorithm", "none");
            } else {
                // librdkafka's default since 1.9; said here so that no
                // build of it skips the host name check.
                config.set("ssl.endpoint.identification.algorithm", "https");
            }
        }
        for (key, value) in component {
            config.set(key, value);
        }
        for (key, value) in &self.properties {
            config.set(key, value.to_string());
        }
        config
    }

    /// Checks `properties` against the component's own settings and against
    /// librdkafka: a property that one of the component's keys sets
    /// (`reserved`: property and key) is refused, and so is a name or value
    /// librdkafka does not accept. No client is created.
    pub fn check_properties<'a>(
        &self,
        reserved: &[(&str, &str)],
        component: impl IntoIterator<Item = (&'a str, String)>,
    ) -> Result<(), ConfigError> {
        for name in self.properties.keys() {
            if let Some((_, key)) = reserved.iter().find(|(p, _)| p == name) {
                return Err(ConfigError::at(
                    format!("properties.{name}"),
                    format!("is set by `{key}`: use that key instead"),
                ));
            }
        }
        // librdkafka checks each property as it is set; the properties go
        // last, so an error is about them unless a component default is bad.
        let mut check = ClientConfig::new();
        for (key, value) in component {
            check.set(key, value);
        }
        check
            .create_native_config()
            .map_err(|e| ConfigError::at("", format!("invalid librdkafka setting: {e}")))?;
        for (name, value) in &self.properties {
            check.set(name, value.to_string());
            check.create_native_config().map_err(|e| {
                ConfigError::at(
                    format!("properties.{name}"),
                    format!(
                        "librdkafka does not accept `{name}: {value}`: {e} (see librdkafka's CONFIGURATION.md)"
                    ),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    struct Own {
        #[serde(default)]
        topic: Option<String>,
    }
    impl Validate for Own {}

    fn parse(raw: serde_json::Value) -> Result<(KafkaClientSettings, Own), ConfigError> {
        parse_config(&raw)
    }

    #[test]
    fn client_keys_and_component_keys_are_read_apart() {
        let (client, own) = parse(json!({
            "brokers": ["k1:9092", "k2:9093"], "topic": "audit",
            "properties": {"socket.keepalive.enable": true, "retries": 5}
        }))
        .unwrap();
        assert_eq!(client.bootstrap_servers(), "k1:9092,k2:9093");
        assert_eq!(client.client_id, "auditcol");
        assert_eq!(own.topic.as_deref(), Some("audit"));
        let config = client.client_config([]);
        assert_eq!(config.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(config.get("retries"), Some("5"));
        assert_eq!(config.get("security.protocol"), Some("plaintext"));
    }

    use auditcol_testkit::pki::{TestPki, path_str};

    #[test]
    fn unknown_keys_are_errors_in_either_half() {
        let err = parse(json!({"brokers": ["k:1"], "topik": "x"})).unwrap_err();
        assert_eq!(err.path, "topik");
        assert!(
            err.message.contains("unknown field `topik`"),
            "{}",
            err.message
        );
        let err = parse(json!({"brokers": ["k:1"], "tls": {"require": true}})).unwrap_err();
        assert_eq!(err.path, "tls.require");
        assert!(
            err.message.contains("unknown field `require`"),
            "{}",
            err.message
        );
    }

    #[test]
    fn brokers_are_required_and_host_port() {
        assert_eq!(parse(json!({})).unwrap_err().path, "brokers");
        for bad in ["kafka", "kafka:", "kafka:x", ":9092", "tcp://k:9092", "k:0"] {
            let err = parse(json!({"brokers": ["ok:1", bad]})).unwrap_err();
            assert_eq!(err.path, "brokers[1]", "{bad}");
        }
        assert!(parse(json!({"brokers": ["[::1]:9092", "10.0.0.1:9092"]})).is_ok());
        let (client, _) = parse(json!({"brokers": "k1:9092, k2:9092"})).unwrap();
        assert_eq!(client.brokers, ["k1:9092", "k2:9092"]);
        assert_eq!(parse(json!({"brokers": 9092})).unwrap_err().path, "brokers");
    }

    #[test]
    fn tls_and_sasl_choose_the_security_protocol() {
        let dir = tempfile::tempdir().unwrap();
        let pki = TestPki::generate(dir.path());
        let (client, _) = parse(json!({
            "brokers": ["k:9093"],
            "authentication": {"mechanism": "SCRAM-SHA-512", "username": "u", "password": "p"},
            "tls": {"ca_file": pki.ca, "cert_file": pki.client.cert, "key_file": pki.client.key}
        }))
        .unwrap();
        let config = client.client_config([]);
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("sasl.username"), Some("u"));
        assert_eq!(config.get("ssl.ca.location"), Some(path_str(&pki.ca)));
        assert_eq!(
            config.get("ssl.certificate.location"),
            Some(path_str(&pki.client.cert))
        );
        assert_eq!(
            config.get("ssl.key.location"),
            Some(path_str(&pki.client.key))
        );
        assert_eq!(
            config.get("ssl.endpoint.identification.algorithm"),
            Some("https")
        );
        let (skipping, _) =
            parse(json!({"brokers": ["k:9093"], "tls": {"insecure_skip_verify": true}})).unwrap();
        let config = skipping.client_config([]);
        assert_eq!(config.get("security.protocol"), Some("ssl"));
        assert_eq!(
            config.get("enable.ssl.certificate.verification"),
            Some("false")
        );
        assert_eq!(
            config.get("ssl.endpoint.identification.algorithm"),
            Some("none")
        );
        let (system_roots, _) = parse(json!({"brokers": ["k:9093"], "tls": {}})).unwrap();
        let config = system_roots.client_config([]);
        assert_eq!(config.get("security.protocol"), Some("ssl"));
        assert_eq!(config.get("ssl.ca.location"), None);
        let (off, _) = parse(json!({"brokers": ["k:9093"], "tls": {"insecure": true}})).unwrap();
        assert_eq!(
            off.client_config([]).get("security.protocol"),
            Some("plaintext")
        );
        let (plain, _) = parse(json!({"brokers": ["k:1"],
            "authentication": {"username": "u", "password": "p"}}))
        .unwrap();
        let config = plain.client_config([]);
        assert_eq!(config.get("security.protocol"), Some("sasl_plaintext"));
        assert_eq!(config.get("sasl.mechanisms"), Some("SCRAM-SHA-256"));
        assert!(!format!("{plain:?}").contains("\"p\""), "password in Debug");
    }

    #[test]
    fn tls_keys_that_make_no_sense_are_refused_with_their_path() {
        let table = [
            (
                json!({"insecure": true, "ca_file": "/ca.pem"}),
                "tls.ca_file",
                "is unused: `tls.insecure: true` makes the connection plain text",
            ),
            (
                json!({"cert_file": "/c.pem"}),
                "tls.key_file",
                "is required with `cert_file`: the client certificate's private key",
            ),
            (
                json!({"ca_file": "/nonexistent/ca.pem"}),
                "tls.ca_file",
                "/nonexistent/ca.pem: file not found",
            ),
            (
                json!({"server_name_override": "kafka.internal"}),
                "tls.server_name_override",
                "is not supported by the Kafka client (librdkafka): it checks each broker's certificate against the host name the broker advertises",
            ),
            (
                json!({"min_version": "1.3"}),
                "tls.min_version",
                "is not supported by the Kafka client (librdkafka has no such setting): OpenSSL and the broker agree on the version",
            ),
            (
                json!({"require_tls": true}),
                "tls.require_tls",
                "is no longer a key: TLS is on when `tls` is present (`tls: {}` trusts the system's CAs), and `tls.insecure: true` turns it off, as in the Collector",
            ),
            (
                json!({"insecure_skip_tls": true}),
                "tls.insecure_skip_tls",
                "is now `tls.insecure_skip_verify`, as in the Collector",
            ),
        ];
        for (tls, path, message) in table {
            let err = parse(json!({"brokers": ["k:1"], "tls": tls})).unwrap_err();
            assert_eq!(
                (err.path.as_str(), err.message.as_str()),
                (path, message),
                "{tls}"
            );
        }
        let err = parse(json!({"brokers": ["k:1"],
            "authentication": {"username": "u", "password": ""}}))
        .unwrap_err();
        assert_eq!(err.path, "authentication.password");
        let err = parse(json!({"brokers": ["k:1"],
            "authentication": {"mechanism": "GSSAPI", "username": "u", "password": "p"}}))
        .unwrap_err();
        assert_eq!(err.path, "authentication.mechanism");
    }

    #[test]
    fn properties_that_a_key_sets_are_refused_with_that_key() {
        let err =
            parse(json!({"brokers": ["k:1"], "properties": {"sasl.password": "x"}})).unwrap_err();
        assert_eq!(err.path, "properties.sasl.password");
        assert!(err.message.contains("authentication.password"));
        let (client, _) =
            parse(json!({"brokers": ["k:1"], "properties": {"linger.ms": 5}})).unwrap();
        let err = client
            .check_properties(&[("linger.ms", "linger")], [])
            .unwrap_err();
        assert_eq!(err.path, "properties.linger.ms");
        assert!(err.message.contains("`linger`"), "{}", err.message);
    }

    #[test]
    fn librdkafka_checks_property_names_and_values() {
        let (client, _) =
            parse(json!({"brokers": ["k:1"], "properties": {"no.such.property": 1}})).unwrap();
        let err = client.check_properties(&[], []).unwrap_err();
        assert_eq!(err.path, "properties.no.such.property");
        let (client, _) = parse(json!({"brokers": ["k:1"],
            "properties": {"socket.keepalive.enable": "maybe"}}))
        .unwrap();
        assert!(client.check_properties(&[], []).is_err());
        let (client, _) = parse(json!({"brokers": ["k:1"],
            "properties": {"socket.keepalive.enable": true, "reconnect.backoff.ms": 50}}))
        .unwrap();
        client.check_properties(&[], []).unwrap();
    }
}
