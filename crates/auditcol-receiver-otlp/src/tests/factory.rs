//! The factory: type name, config errors, no side effects, README example.

use auditcol_core::BuildContext;

use super::*;

fn ctx() -> BuildContext {
    BuildContext::new(ComponentId::new("otlp", Some("in")))
}

#[test]
fn the_type_name_is_otlp() {
    assert_eq!(OtlpReceiverFactory.type_name(), "otlp");
}

#[test]
fn build_reports_config_errors_with_their_path() {
    let err = OtlpReceiverFactory
        .build(
            &ctx(),
            &json!({"protocols": {"grpc": {"endpoint": "nowhere"}}}),
            TestConsumer::new(),
        )
        .err()
        .unwrap();
    assert_eq!(err.path, "protocols.grpc.endpoint");
}

#[test]
fn build_binds_nothing() {
    // The port is held here: a build that bound it would fail.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = taken.local_addr().unwrap().to_string();
    OtlpReceiverFactory
        .build(
            &ctx(),
            &json!({"protocols": {"grpc": {"endpoint": endpoint}, "http": {"endpoint": endpoint}}}),
            TestConsumer::new(),
        )
        .unwrap();
}
