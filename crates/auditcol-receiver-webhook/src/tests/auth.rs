//! `auth` on top of the signature, with the real `bearertokenauth`
//! extension: both must pass, the credential is checked first, and a
//! refusal is counted and logged without the credential.

use auditcol_core::BuildContext;
use auditcol_core::component::Host;

use super::*;

const SECRET: &str = "flipt webhook secret";
const TOKEN: &str = "webhook-test-token-91c2";

fn host() -> Host {
    auditcol_extension_auth::test_host(&[("bearertokenauth/flipt", json!({"token": TOKEN}))], &[])
        .unwrap()
}

async fn start_with_auth() -> Running {
    let raw = json!({
        "endpoint": "127.0.0.1:0",
        "path": "/flipt",
        "signing_secret": SECRET,
        "auth": {"authenticator": "bearertokenauth/flipt"},
    });
    let config: WebhookReceiverConfig = parse_component_config(&raw).unwrap();
    let consumer = TestConsumer::new();
    let receiver = WebhookReceiver::new(
        ComponentId::new("webhook", Some("flipt")),
        config.clone(),
        consumer.clone(),
    )
    .with_authenticator(&host())
    .unwrap();
    let receiver = Arc::new(receiver);
    receiver.start().await.unwrap();
    Running {
        receiver,
        consumer,
        config,
    }
}

/// POSTs a Flipt event with `authorization`, signed with `signature`, or
/// correctly when `None`.
async fn post_with(
    running: &Running,
    authorization: Option<&str>,
    signature: Option<&str>,
) -> Reply {
    let body = flipt_event("flipt", "2024-05-01T10:00:00Z");
    let signed = sign(SECRET, body.as_bytes());
    let mut headers = vec![
        ("content-type", "application/json"),
        ("x-flipt-webhook-signature", signature.unwrap_or(&signed)),
    ];
    if let Some(value) = authorization {
        headers.push(("authorization", value));
    }
    post(running, &headers, body.as_bytes()).await
}

#[tokio::test]
async fn a_signed_request_with_the_token_is_accepted() {
    let running = start_with_auth().await;
    let reply = post_with(&running, Some(&format!("Bearer {TOKEN}")), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(running.consumer.records(), 1);
    assert_eq!(running.receiver.unauthenticated_requests(), 0);
}

#[tokio::test]
async fn without_the_token_a_correctly_signed_request_is_refused_401() {
    let (log, _guard) = auditcol_testkit::CapturedLog::start();
    let running = start_with_auth().await;
    let reply = post_with(&running, None, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_eq!(reply.error(), "no authorization header");
    let reply = post_with(&running, Some("Bearer stolen-guess-0000"), None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.error(),
        "the token is not one of the configured tokens"
    );
    assert_eq!(running.consumer.records(), 0);
    assert_eq!(running.receiver.unauthenticated_requests(), 2);
    let text = log.text();
    assert!(text.contains("component=webhook/flipt"), "{text}");
    assert!(!text.contains("stolen-guess"), "{text}");
}

#[tokio::test]
async fn with_the_token_the_signature_is_still_required() {
    let running = start_with_auth().await;
    let bearer = format!("Bearer {TOKEN}");
    let reply = post_with(
        &running,
        Some(&bearer),
        Some(&sign("another secret", b"{}")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(
        reply.error().contains("does not match the body"),
        "{}",
        reply.error()
    );
    assert_eq!(
        reply.header("www-authenticate"),
        None,
        "a signature refusal"
    );
    assert_eq!(running.consumer.records(), 0);
    assert_eq!(
        running.receiver.unauthenticated_requests(),
        0,
        "counted with signatures, not here"
    );
}

#[test]
fn an_undefined_authenticator_is_a_config_error_at_auth_authenticator() {
    let err = WebhookReceiverFactory
        .build(
            &BuildContext::new(ComponentId::new("webhook", None)).with_host(host()),
            &json!({"auth": {"authenticator": "basicauth/none"}}),
            TestConsumer::new(),
        )
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "auth.authenticator: extension `basicauth/none` is not defined in the `extensions` section"
    );
}

#[tokio::test]
async fn a_receiver_with_auth_never_serves_without_its_authenticator() {
    let config: WebhookReceiverConfig = parse_component_config(&json!({
        "endpoint": "127.0.0.1:0",
        "auth": {"authenticator": "bearertokenauth/flipt"},
    }))
    .unwrap();
    let receiver = WebhookReceiver::new(
        ComponentId::new("webhook", None),
        config,
        TestConsumer::new(),
    );
    let err = receiver.start().await.unwrap_err().to_string();
    assert!(
        err.contains("auth is set but no authenticator was resolved"),
        "{err}"
    );
    assert!(receiver.local_addr().is_none());
}
