//! Settings of the `bearertokenauth` extension, with the Collector's keys.
//!
//! ```yaml
//! scheme: Bearer                 # "" = the header holds the token alone
//! header: Authorization
//! token: ${env:INGEST_TOKEN}     # or:
//! tokens: [${env:TOKEN_A}, ${env:TOKEN_B}]
//! filename: /etc/auditcol/tokens # or: one token per line, re-read on change (alias: tokens_file)
//! ```

use auditcol_core::config::{ConfigError, Secret, Validate};
use http::HeaderName;
use serde::Deserialize;

/// The default scheme, as in the Collector.
pub const DEFAULT_SCHEME: &str = "Bearer";
/// The default header, as in the Collector.
pub const DEFAULT_HEADER: &str = "Authorization";

/// The whole `bearertokenauth` config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct BearerTokenAuthConfig {
    /// The scheme before the token: `<scheme> <token>`; empty for the token alone.
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// The header that carries it (gRPC metadata key in lower case).
    #[serde(default = "default_header")]
    pub header: String,
    /// One token.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Several tokens, any of which is accepted; a client sends the first.
    #[serde(default)]
    pub tokens: Option<Vec<Secret>>,
    /// A file of tokens, one per line, re-read when it changes.
    #[serde(default, alias = "tokens_file")]
    pub filename: Option<String>,
}

fn default_scheme() -> String {
    DEFAULT_SCHEME.to_owned()
}

fn default_header() -> String {
    DEFAULT_HEADER.to_owned()
}

impl Default for BearerTokenAuthConfig {
    fn default() -> Self {
        Self {
            scheme: default_scheme(),
            header: default_header(),
            token: None,
            tokens: None,
            filename: None,
        }
    }
}

impl BearerTokenAuthConfig {
    /// The header name. Only meaningful after validation.
    pub fn header_name(&self) -> Result<HeaderName, String> {
        HeaderName::from_bytes(self.header.as_bytes())
            .map_err(|_| format!("`{}` is not a valid HTTP header name", self.header))
    }
}

/// Whether `scheme` is an HTTP token (RFC 9110 `tchar`s).
fn is_http_token(scheme: &str) -> bool {
    scheme
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Why `token` cannot be sent in a header, if it cannot. Never quotes it.
pub(crate) fn check_token(token: &str) -> Result<(), &'static str> {
    if token.is_empty() {
        Err("is empty (is its environment variable set?)")
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        Err("must be printable ASCII without spaces: it travels in an HTTP header")
    } else {
        Ok(())
    }
}

impl Validate for BearerTokenAuthConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        self.header_name()
            .map_err(|message| ConfigError::at("header", message))?;
        if !is_http_token(&self.scheme) {
            return Err(ConfigError::at(
                "scheme",
                format!(
                    "`{}` is not a scheme name (letters, digits and !#$%&'*+-.^_`|~, e.g. `Bearer`), or \"\" for the token alone",
                    self.scheme
                ),
            ));
        }
        let given: Vec<&str> = [
            ("token", self.token.is_some()),
            ("tokens", self.tokens.is_some()),
            ("filename", self.filename.is_some()),
        ]
        .into_iter()
        .filter_map(|(key, set)| set.then_some(key))
        .collect();
        match given[..] {
            [] => {
                return Err(ConfigError::at(
                    "",
                    "set one of `token`, `tokens` or `filename` (a file of tokens, one per line)",
                ));
            }
            [_] => {}
            [first, second, ..] => {
                return Err(ConfigError::at(
                    second,
                    format!(
                        "set one of `token`, `tokens` or `filename`, not both `{first}` and `{second}`"
                    ),
                ));
            }
        }
        if let Some(token) = &self.token {
            check_token(token.expose()).map_err(|why| ConfigError::at("token", why))?;
        }
        if let Some(tokens) = &self.tokens {
            if tokens.is_empty() {
                return Err(ConfigError::at("tokens", "must hold at least one token"));
            }
            for (i, token) in tokens.iter().enumerate() {
                check_token(token.expose())
                    .map_err(|why| ConfigError::at(format!("tokens[{i}]"), why))?;
            }
        }
        if self
            .filename
            .as_deref()
            .is_some_and(|f| f.trim().is_empty())
        {
            return Err(ConfigError::at(
                "filename",
                "must not be empty: the path of a file with one token per line",
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

    fn parse(value: serde_json::Value) -> Result<BearerTokenAuthConfig, ConfigError> {
        parse_component_config(&value)
    }

    #[test]
    fn defaults_are_the_collectors() {
        let config = parse(json!({"token": "t0k"})).unwrap();
        assert_eq!(config.scheme, "Bearer");
        assert_eq!(config.header_name().unwrap(), "authorization");
    }

    #[test]
    fn tokens_file_is_another_name_for_filename() {
        let config = parse(json!({"tokens_file": "/etc/tokens"})).unwrap();
        assert_eq!(config.filename.as_deref(), Some("/etc/tokens"));
        let err = parse(json!({"tokens_file": "a", "filename": "b"})).unwrap_err();
        assert!(err.message.contains("duplicate field"), "{err}");
    }

    #[test]
    fn errors_name_the_key_and_never_quote_a_token() {
        let cases = [
            (json!({}), "", "set one of `token`, `tokens` or `filename`"),
            (
                json!({"token": "a", "filename": "f"}),
                "filename",
                "set one of `token`, `tokens` or `filename`, not both `token` and `filename`",
            ),
            (
                json!({"token": "a", "tokens": ["b"]}),
                "tokens",
                "not both `token` and `tokens`",
            ),
            (
                json!({"token": ""}),
                "token",
                "is empty (is its environment variable set?)",
            ),
            (
                json!({"token": "has space-secret"}),
                "token",
                "must be printable ASCII without spaces",
            ),
            (
                json!({"tokens": []}),
                "tokens",
                "must hold at least one token",
            ),
            (
                json!({"tokens": ["ok", "bad\tsecret"]}),
                "tokens[1]",
                "must be printable ASCII without spaces",
            ),
            (json!({"filename": " "}), "filename", "must not be empty"),
            (
                json!({"token": "a", "header": "bad header"}),
                "header",
                "`bad header` is not a valid HTTP header name",
            ),
            (
                json!({"token": "a", "scheme": "Two words"}),
                "scheme",
                "`Two words` is not a scheme name",
            ),
            (
                json!({"token": "a", "tokenz": "b"}),
                "tokenz",
                "unknown field",
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
    fn an_empty_scheme_and_another_header_are_allowed() {
        let config = parse(json!({"token": "k", "scheme": "", "header": "X-API-Key"})).unwrap();
        assert_eq!(config.header_name().unwrap(), "x-api-key");
    }

    #[test]
    fn debug_output_hides_the_tokens() {
        let config = parse(json!({"tokens": ["first-secret", "second-secret"]})).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }
}
