use super::*;
use auditcol_core::config::parse_component_config;
use serde_json::json;

fn parse(raw: serde_json::Value) -> Result<OtlpReceiverConfig, ConfigError> {
    parse_component_config(&raw)
}

fn parse_yaml(yaml: &str) -> Result<OtlpReceiverConfig, ConfigError> {
    let raw: serde_json::Value = serde_saphyr::from_str(yaml).expect("test YAML is valid");
    parse(raw)
}

#[test]
fn both_protocols_present_take_the_collector_defaults() {
    let config = parse_yaml("protocols:\n  grpc:\n  http: {}\n").unwrap();
    assert_eq!(config.protocols.grpc, Some(GrpcConfig::default()));
    assert_eq!(config.protocols.http, Some(HttpConfig::default()));
    let grpc = config.protocols.grpc.unwrap();
    assert_eq!(grpc.endpoint, "127.0.0.1:4317");
    assert_eq!(grpc.max_recv_msg_size_bytes(), 4 * 1024 * 1024);
    let http = config.protocols.http.unwrap();
    assert_eq!(http.endpoint, "127.0.0.1:4318");
    assert_eq!(http.max_request_body_bytes(), 4_194_304);
}

#[test]
fn an_absent_protocol_is_disabled() {
    let config = parse(json!({"protocols": {"grpc": {}}})).unwrap();
    assert!(config.protocols.grpc.is_some());
    assert_eq!(config.protocols.http, None);
}

#[test]
fn settings_are_read() {
    let config = parse(json!({"protocols": {
        "grpc": {"endpoint": "0.0.0.0:5317", "max_recv_msg_size_mib": 16},
        "http": {"endpoint": "localhost:5318", "max_request_body_size": 1000},
    }}))
    .unwrap();
    let grpc = config.protocols.grpc.unwrap();
    assert_eq!(grpc.socket_addr().unwrap(), "0.0.0.0:5317".parse().unwrap());
    assert_eq!(grpc.max_recv_msg_size_bytes(), 16 * 1024 * 1024);
    let http = config.protocols.http.unwrap();
    assert_eq!(
        http.socket_addr().unwrap(),
        "127.0.0.1:5318".parse().unwrap()
    );
    assert_eq!(http.max_request_body_bytes(), 1000);
}

#[test]
fn no_protocols_is_an_error() {
    for raw in [json!(null), json!({}), json!({"protocols": {}})] {
        let err = parse(raw.clone()).unwrap_err();
        assert_eq!(err.path, "protocols", "{raw}");
        assert!(
            err.message
                .contains("enable at least one of protocols.grpc, protocols.http"),
            "{}",
            err.message
        );
    }
}

#[test]
fn an_endpoint_that_is_not_host_port_is_an_error_at_its_path() {
    for endpoint in [
        "4317",
        "example.com:4317",
        "127.0.0.1:http",
        "127.0.0.1:70000",
    ] {
        let err = parse(json!({"protocols": {"grpc": {"endpoint": endpoint}}})).unwrap_err();
        assert_eq!(err.path, "protocols.grpc.endpoint", "{endpoint}");
        assert!(
            err.message
                .contains(&format!("invalid endpoint `{endpoint}`")),
            "{}",
            err.message
        );
    }
    let err = parse(json!({"protocols": {"http": {"endpoint": "nowhere"}}})).unwrap_err();
    assert_eq!(err.path, "protocols.http.endpoint");
}

#[test]
fn an_empty_host_listens_on_all_interfaces_as_in_the_collector() {
    let config = parse(json!({"protocols": {"grpc": {"endpoint": ":4317"}}})).unwrap();
    assert_eq!(
        config.protocols.grpc.unwrap().socket_addr().unwrap(),
        "0.0.0.0:4317".parse().unwrap()
    );
}

#[test]
fn ipv6_endpoints_are_accepted() {
    let config = parse(json!({"protocols": {"http": {"endpoint": "[::1]:4318"}}})).unwrap();
    assert_eq!(
        config.protocols.http.unwrap().socket_addr().unwrap(),
        "[::1]:4318".parse().unwrap()
    );
}

#[test]
fn size_limits_must_be_positive() {
    let err = parse(json!({"protocols": {"grpc": {"max_recv_msg_size_mib": 0}}})).unwrap_err();
    assert_eq!(err.path, "protocols.grpc.max_recv_msg_size_mib");
    let err = parse(json!({"protocols": {"http": {"max_request_body_size": 0}}})).unwrap_err();
    assert_eq!(err.path, "protocols.http.max_request_body_size");
}

#[test]
fn http_timeouts_are_checked_with_their_path() {
    for (http, path) in [
        (json!({"idle_timeout": "0s"}), "protocols.http.idle_timeout"),
        (
            json!({"read_header_timeout": "0s"}),
            "protocols.http.read_header_timeout",
        ),
        (
            json!({"idle_timeout": "soon"}),
            "protocols.http.idle_timeout",
        ),
        (
            json!({"http2_keepalive": {"timeout": "0s"}}),
            "protocols.http.http2_keepalive.timeout",
        ),
        (
            json!({"http2_keepalive": {"interval": "1s"}}),
            "protocols.http.http2_keepalive.interval",
        ),
    ] {
        let err = parse(json!({"protocols": {"http": http}})).unwrap_err();
        assert_eq!(err.path, path, "{http}");
    }
    let http = parse(json!({"protocols": {"http": {
        "read_timeout": "5s", "idle_timeout": "2m",
        "http2_keepalive": {"time": "0s", "timeout": "0s"},
    }}}))
    .unwrap()
    .protocols
    .http
    .unwrap();
    let timeouts = http.timeouts();
    assert_eq!(
        timeouts.read_timeout,
        Some(std::time::Duration::from_secs(5))
    );
    assert_eq!(timeouts.idle_timeout, std::time::Duration::from_secs(120));
    assert_eq!(timeouts.http2_keepalive, None, "time 0 = no pings");
    let defaults = HttpConfig::default().timeouts();
    assert_eq!(defaults.read_timeout, None);
    assert_eq!(defaults.idle_timeout, std::time::Duration::from_secs(60));
}

#[test]
fn a_size_limit_of_the_wrong_type_names_its_path() {
    let err = parse(json!({"protocols": {"grpc": {"max_recv_msg_size_mib": "4MiB"}}})).unwrap_err();
    assert_eq!(err.path, "protocols.grpc.max_recv_msg_size_mib");
}

#[test]
fn unknown_keys_are_errors_with_their_path() {
    let err =
        parse(json!({"protocols": {"grpc": {"endpoint": "127.0.0.1:1", "port": 1}}})).unwrap_err();
    assert_eq!(err.path, "protocols.grpc.port");
    assert!(
        err.message.contains("unknown field `port`"),
        "{}",
        err.message
    );
    let err = parse(json!({"protocols": {"grpc": {}, "thrift": {}}})).unwrap_err();
    assert_eq!(err.path, "protocols.thrift");
    let err = parse(json!({"protocol": {"grpc": {}}})).unwrap_err();
    assert_eq!(err.path, "protocol");
}
