//! What every HTTP exporter does the same way (feature `http-client`): the
//! `tls` and `headers` checks, building the `reqwest` client, reading
//! `Retry-After` and quoting what an error answer said.
//!
//! As in the Collector, the URL scheme decides TLS: `https://` endpoints use
//! rustls as `tls` says (the built-in web roots, or `tls.ca_file` instead),
//! `http://` ones are plain text — so `tls.insecure` has no meaning here,
//! and TLS keys with an `http://` URL are refused ([`check_tls`]).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::{ConfigError, nested};
use crate::rpc_status::RpcStatus;
use crate::tls::ALPN_HTTP;

/// At most this many characters of an error answer go into a message.
pub const SNIPPET_CHARS: usize = 256;

pub use crate::tls::TlsClientSettings;

/// Checks `tls` for a client of the URL `url`, the value of config key
/// `key`: `insecure` is refused (the scheme decides), TLS keys with an
/// `http://` URL are refused (unused), and the files are loaded. Error
/// paths start with `tls.`.
pub fn check_tls(tls: &TlsClientSettings, key: &str, url: &str) -> Result<(), ConfigError> {
    if tls.insecure {
        return Err(ConfigError::at(
            "tls.insecure",
            "has no meaning for an HTTP client: the URL scheme decides (http:// is plain text, https:// is TLS)",
        ));
    }
    let plain_text = reqwest::Url::parse(url).is_ok_and(|u| u.scheme() == "http");
    if plain_text {
        nested(
            "tls",
            tls.check_unused(&format!(
                "is unused: `{key}` is an http:// URL (plain text); write https:// for TLS"
            )),
        )?;
    }
    nested("tls", tls.validate())
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
/// builds. Reads the PEM files again (the config was checked at build),
/// so call it at start.
pub fn client_builder(
    headers: HeaderMap,
    tls: &TlsClientSettings,
) -> Result<reqwest::ClientBuilder, String> {
    let config = tls.load(ALPN_HTTP).map_err(|e| format!("tls.{e}"))?;
    Ok(reqwest::Client::builder()
        .default_headers(headers)
        .use_preconfigured_tls(rustls::ClientConfig::clone(config.rustls_config())))
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
    fn the_url_scheme_decides_tls() {
        let insecure = TlsClientSettings {
            insecure: true,
            ..TlsClientSettings::default()
        };
        let err = check_tls(&insecure, "endpoint", "https://h").unwrap_err();
        assert_eq!(err.path, "tls.insecure");
        assert!(err.message.contains("the URL scheme decides"), "{err}");
        let ca = TlsClientSettings {
            ca_file: Some("/ca.pem".into()),
            ..TlsClientSettings::default()
        };
        let err = check_tls(&ca, "endpoint", "http://h:1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "tls.ca_file: is unused: `endpoint` is an http:// URL (plain text); write https:// for TLS"
        );
        let err = check_tls(&ca, "endpoint", "https://h:1").unwrap_err();
        assert_eq!(err.to_string(), "tls.ca_file: /ca.pem: file not found");
        check_tls(&TlsClientSettings::default(), "endpoint", "http://h:1").unwrap();
    }
}
