//! The factory: type name, config errors, no side effects.

use auditcol_core::BuildContext;

use super::*;

fn ctx() -> BuildContext {
    BuildContext::new(ComponentId::new("webhook", Some("flipt")))
}

#[test]
fn the_type_name_is_webhook() {
    assert_eq!(WebhookReceiverFactory.type_name(), "webhook");
}

#[test]
fn build_reports_config_errors_with_their_path() {
    let err = WebhookReceiverFactory
        .build(
            &ctx(),
            &json!({"format": "flagsmith", "signing_secret": ""}),
            TestConsumer::new(),
        )
        .err()
        .unwrap();
    assert_eq!(err.path, "signing_secret");
}

#[test]
fn build_binds_nothing() {
    // The port is held here: a build that bound it would fail.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = taken.local_addr().unwrap().to_string();
    WebhookReceiverFactory
        .build(&ctx(), &json!({"endpoint": endpoint}), TestConsumer::new())
        .unwrap();
}
