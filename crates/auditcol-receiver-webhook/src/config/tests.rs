use super::*;
use auditcol_core::config::parse_component_config;
use serde_json::json;

fn parse(raw: serde_json::Value) -> Result<WebhookReceiverConfig, ConfigError> {
    parse_component_config(&raw)
}

#[test]
fn an_empty_section_takes_the_defaults() {
    for raw in [json!(null), json!({})] {
        let config = parse(raw).unwrap();
        assert_eq!(config, WebhookReceiverConfig::default());
        assert_eq!(
            config.socket_addr().unwrap(),
            "127.0.0.1:8088".parse().unwrap()
        );
        assert_eq!(config.path, "/");
        assert_eq!(config.format, Format::Audit);
        assert_eq!(config.signing_secret, None);
        assert_eq!(config.max_request_body_bytes(), 1_048_576);
    }
}

#[test]
fn the_signature_header_defaults_to_the_senders_per_format() {
    let audit = parse(json!({"format": "audit"})).unwrap();
    assert_eq!(
        audit.signature_header_name().unwrap(),
        "x-flipt-webhook-signature"
    );
    let flagsmith = parse(json!({"format": "flagsmith"})).unwrap();
    assert_eq!(
        flagsmith.signature_header_name().unwrap(),
        "x-flagsmith-signature"
    );
    let custom = parse(
        json!({"format": "flagsmith", "signing_secret": "s", "signature_header": "X-Signature"}),
    )
    .unwrap();
    assert_eq!(custom.signature_header_name().unwrap(), "x-signature");
}

#[test]
fn the_default_header_names_are_the_documented_ones() {
    for format in [Format::Audit, Format::Flagsmith] {
        assert!(
            format
                .default_signature_header()
                .eq_ignore_ascii_case(format.default_signature_header_name().as_str())
        );
    }
}

#[test]
fn settings_are_read() {
    let config = parse(json!({
        "endpoint": "0.0.0.0:9000",
        "path": "/flagsmith",
        "format": "flagsmith",
        "signing_secret": "s3cret",
        "max_request_body_size": 4096,
    }))
    .unwrap();
    assert_eq!(
        config.socket_addr().unwrap(),
        "0.0.0.0:9000".parse().unwrap()
    );
    assert_eq!(config.path, "/flagsmith");
    assert_eq!(config.format, Format::Flagsmith);
    assert_eq!(
        config.signing_secret.as_ref().map(Secret::expose),
        Some("s3cret")
    );
    assert_eq!(config.max_request_body_bytes(), 4096);
}

#[test]
fn an_unknown_format_names_the_known_ones() {
    let err = parse(json!({"format": "xml"})).unwrap_err();
    assert_eq!(err.path, "format");
    assert!(err.message.contains("`audit`"), "{}", err.message);
    assert!(err.message.contains("`flagsmith`"), "{}", err.message);
}

#[test]
fn an_empty_secret_is_an_error_rather_than_no_signature_check() {
    let err = parse(json!({"signing_secret": ""})).unwrap_err();
    assert_eq!(err.path, "signing_secret");
    assert!(
        err.message.contains("environment variable"),
        "{}",
        err.message
    );
}

#[test]
fn the_secret_is_never_printed() {
    let config = parse(json!({"signing_secret": "hunter2"})).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("signing_secret: Some(***)"), "{shown}");
    let printed = serde_json::to_value(&config).unwrap();
    assert_eq!(
        printed["signing_secret"], "[REDACTED]",
        "print-config masks it by its type"
    );
}

#[test]
fn a_path_must_be_a_plain_url_path() {
    for path in ["", "flipt", "/a b", "/a?x=1", "/a#b"] {
        let err = parse(json!({"path": path})).unwrap_err();
        assert_eq!(err.path, "path", "{path:?}");
    }
    parse(json!({"path": "/hooks/flipt-audit_v1"})).unwrap();
}

#[test]
fn an_invalid_header_name_is_an_error_at_its_path() {
    let err = parse(json!({"signing_secret": "s", "signature_header": "X Signature"})).unwrap_err();
    assert_eq!(err.path, "signature_header");
    assert!(err.message.contains("`X Signature`"), "{}", err.message);
}

#[test]
fn an_endpoint_that_is_not_host_port_is_an_error_at_its_path() {
    for endpoint in ["8088", "example.com:8088", "127.0.0.1:http"] {
        let err = parse(json!({"endpoint": endpoint})).unwrap_err();
        assert_eq!(err.path, "endpoint", "{endpoint}");
        assert!(
            err.message
                .contains(&format!("invalid endpoint `{endpoint}`")),
            "{}",
            err.message
        );
    }
    let config = parse(json!({"endpoint": ":8088"})).unwrap();
    assert_eq!(
        config.socket_addr().unwrap(),
        "0.0.0.0:8088".parse().unwrap()
    );
    let config = parse(json!({"endpoint": "localhost:0"})).unwrap();
    assert_eq!(
        config.socket_addr().unwrap(),
        "127.0.0.1:0".parse().unwrap()
    );
}

#[test]
fn the_body_limit_must_be_positive() {
    let err = parse(json!({"max_request_body_size": 0})).unwrap_err();
    assert_eq!(err.path, "max_request_body_size");
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let err = parse(json!({"secret": "x"})).unwrap_err();
    assert_eq!(err.path, "secret");
    assert!(
        err.message.contains("unknown field `secret`"),
        "{}",
        err.message
    );
}

#[test]
fn a_signature_header_without_a_secret_is_an_error_rather_than_ignored() {
    let err = parse(json!({"signature_header": "X-Signature"})).unwrap_err();
    assert_eq!(err.path, "signature_header");
    assert!(
        err.message.contains("without signing_secret"),
        "{}",
        err.message
    );
}
