//! What every HTTP exporter does the same way (feature `http-client`): the
//! `tls` and `headers` settings and their checks, building the `reqwest`
//! client, reading `Retry-After` and quoting what an error answer said.
//!
//! As in the Collector, the URL scheme decides TLS: `https://` endpoints use
//! rustls with the built-in web roots plus `tls.ca_file`, `http://` ones are
//! plain text.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::config::{ConfigError, TlsFiles, check_tls_files};
use crate::rpc_status::RpcStatus;

/// At most this many characters of an error answer go into a message.
pub const SNIPPET_CHARS: usize = 256;

/// `tls`: how `https://` endpoints are trusted, and the client certificate.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsClientSettings {
    /// A PEM file of CA certificates trusted besides the built-in roots.
    pub ca_file: Option<String>,
    /// Accept any server certificate. For tests only: it gives up the
    /// protection TLS exists for.
    pub insecure_skip_verify: bool,
    /// The client certificate (PEM) for mutual TLS; with `key_file`.
    pub cert_file: Option<String>,
    /// The client certificate's private key (PEM); with `cert_file`.
    pub key_file: Option<String>,
}

impl TlsClientSettings {
    /// Checks the keys under `tls`: no empty file names, and a client
    /// certificate comes with its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_tls_files(self.files(), None)
    }

    /// The PEM files, for [`check_tls_files`].
    pub fn files(&self) -> TlsFiles<'_> {
        TlsFiles {
            ca_file: self.ca_file.as_deref(),
            cert_file: self.cert_file.as_deref(),
            key_file: self.key_file.as_deref(),
        }
    }
}

/// Checks that `url` (the value of config key `key`) is an absolute
/// `http://` or `https://` URL with a host; `example` shows one.
pub fn check_url(key: &str, url: &str, example: &str) -> Result<(), ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::at(key, format!("`{url}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::at(
            key,
            format!("`{url}` must be an http:// or https:// URL with a host, e.g. {example}"),
        ));
    }
    Ok(())
}

/// Checks the `headers` map: valid names, values without control
/// characters or line breaks.
pub fn check_headers(headers: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in headers {
        let key = format!("headers.{name}");
        HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ConfigError::at(&key, "is not a valid HTTP header name"))?;
        HeaderValue::from_str(value).map_err(|_| {
            ConfigError::at(
                &key,
                "is not a valid HTTP header value (no control characters or line breaks)",
            )
        })?;
    }
    Ok(())
}

/// The `headers` map as a `HeaderMap`; entries that `check_headers` would
/// refuse are left out.
pub fn header_map(headers: &BTreeMap<String, String>) -> HeaderMap {
    headers
        .iter()
        .filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name.as_bytes()).ok()?,
                HeaderValue::from_str(value).ok()?,
            ))
        })
        .collect()
}

/// A client builder sending `headers` with every request and trusting as
/// `tls` says; the caller adds what is its own (timeouts, redirects) and
/// builds. Reads the PEM files, so call it at start, not at build.
pub fn client_builder(
    headers: HeaderMap,
    tls: &TlsClientSettings,
) -> Result<reqwest::ClientBuilder, String> {
    let mut builder = reqwest::Client::builder()
        .default_headers(headers)
        .danger_accept_invalid_certs(tls.insecure_skip_verify);
    if let Some(path) = &tls.ca_file {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read tls.ca_file {path}: {e}"))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("tls.ca_file {path} holds no usable PEM certificate: {e}"))?;
        if certs.is_empty() {
            return Err(format!("tls.ca_file {path} holds no PEM certificate"));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    if let (Some(cert_file), Some(key_file)) = (&tls.cert_file, &tls.key_file) {
        let mut pem = std::fs::read(cert_file)
            .map_err(|e| format!("cannot read tls.cert_file {cert_file}: {e}"))?;
        pem.push(b'\n');
        pem.extend(
            std::fs::read(key_file)
                .map_err(|e| format!("cannot read tls.key_file {key_file}: {e}"))?,
        );
        let identity = reqwest::Identity::from_pem(&pem).map_err(|e| {
            format!(
                "tls.cert_file {cert_file} and tls.key_file {key_file} are not a PEM certificate and key: {e}"
            )
        })?;
        builder = builder.identity(identity);
    }
    Ok(builder)
}

/// `request` with the headers of `auth` (an exporter's `auth`), which
/// replace headers of the same name; an error says why there are none.
pub fn authenticate(
    request: reqwest::RequestBuilder,
    auth: Option<&std::sync::Arc<dyn crate::auth::ClientAuthenticator>>,
) -> Result<reqwest::RequestBuilder, String> {
    match auth {
        None => Ok(request),
        Some(auth) => Ok(request.headers(
            auth.headers()
                .map_err(|e| format!("cannot authenticate: {e}"))?,
        )),
    }
}

/// Builds a client from [`client_builder`]'s result.
pub fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client, String> {
    builder
        .build()
        .map_err(|e| format!("cannot set up the HTTP client: {e}"))
}

/// Reads at most `limit` bytes of an answer's body; the rest is not read
/// (the connection is then not reused). An endpoint cannot make the exporter
/// hold more than `limit` bytes per answer.
pub async fn read_body_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A `Retry-After` value: delay-seconds or an HTTP date (a date in the past
/// means now). `None` when it is neither.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of an answer, read as [`parse_retry_after`] does.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, now))
}

/// What an error answer says, for a message: the `message` of a JSON
/// object (a `google.rpc.Status` or most APIs' errors) or of a protobuf
/// `google.rpc.Status`, else the start of the body as text. At most
/// [`SNIPPET_CHARS`] characters, control characters escaped, so that an
/// answer cannot forge a log line.
pub fn body_snippet(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body)
        && let Some(message) = value.get("message").and_then(|m| m.as_str())
    {
        return truncate(message);
    }
    let text = String::from_utf8_lossy(body);
    let printable =
        !text.contains('\u{FFFD}') && !text.chars().any(|c| c.is_control() && !c.is_whitespace());
    if !printable && let Ok(status) = <RpcStatus as prost::Message>::decode(body) {
        return truncate(&status.message);
    }
    truncate(text.trim())
}

fn truncate(text: &str) -> String {
    let mut out = String::new();
    for (n, c) in text.chars().enumerate() {
        if n == SNIPPET_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Duration = Duration::from_secs(1_700_000_000);

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + NOW
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        assert_eq!(parse_retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        let later = httpdate::fmt_http_date(now() + Duration::from_secs(30));
        assert_eq!(
            parse_retry_after(&later, now()),
            Some(Duration::from_secs(30))
        );
        let earlier = httpdate::fmt_http_date(now() - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&earlier, now()), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now()), None);
        assert_eq!(parse_retry_after("-1", now()), None);
    }

    #[test]
    fn snippets_quote_the_message_of_json_and_protobuf_statuses() {
        assert_eq!(
            body_snippet(br#"{"code":3,"message":"bad record 2"}"#),
            "bad record 2"
        );
        let status = RpcStatus {
            code: 3,
            message: "bad record 5".into(),
            details: vec![],
        };
        assert_eq!(
            body_snippet(&prost::Message::encode_to_vec(&status)),
            "bad record 5"
        );
        assert_eq!(body_snippet(b"  forbidden\n"), "forbidden");
    }

    #[test]
    fn snippets_are_bounded_and_cannot_break_a_line() {
        let long = "x".repeat(1000);
        assert_eq!(
            body_snippet(long.as_bytes()).chars().count(),
            SNIPPET_CHARS + 1
        );
        assert_eq!(
            body_snippet(b"no\nsecond line\x1b[31m"),
            "no\\nsecond line\\u{1b}[31m"
        );
    }

    #[test]
    fn headers_are_checked_with_their_path() {
        let bad_value = BTreeMap::from([("x-key".to_owned(), "a\nb".to_owned())]);
        assert_eq!(check_headers(&bad_value).unwrap_err().path, "headers.x-key");
        let bad_name = BTreeMap::from([("bad key".to_owned(), "v".to_owned())]);
        assert_eq!(
            check_headers(&bad_name).unwrap_err().path,
            "headers.bad key"
        );
        let good = BTreeMap::from([("authorization".to_owned(), "Bearer t".to_owned())]);
        check_headers(&good).unwrap();
        assert_eq!(header_map(&good)["authorization"], "Bearer t");
    }

    #[test]
    fn urls_must_be_http_with_a_host() {
        check_url("endpoint", "https://h:1/x", "e").unwrap();
        for url in ["127.0.0.1:4318", "grpc://host:4317", "not a url", "http://"] {
            assert_eq!(
                check_url("endpoint", url, "e").unwrap_err().path,
                "endpoint",
                "{url}"
            );
        }
    }

    #[test]
    fn a_client_certificate_needs_its_key_and_files_are_not_empty() {
        let tls = |ca: Option<&str>, cert: Option<&str>, key: Option<&str>| TlsClientSettings {
            ca_file: ca.map(Into::into),
            cert_file: cert.map(Into::into),
            key_file: key.map(Into::into),
            insecure_skip_verify: false,
        };
        assert_eq!(
            tls(Some(""), None, None).validate().unwrap_err().path,
            "tls.ca_file"
        );
        assert_eq!(
            tls(None, Some("c"), None).validate().unwrap_err().path,
            "tls.key_file"
        );
        assert_eq!(
            tls(None, None, Some("k")).validate().unwrap_err().path,
            "tls.cert_file"
        );
        tls(Some("ca"), Some("c"), Some("k")).validate().unwrap();
    }
}
