//! `auth` on either protocol, with the real authenticator extensions: the
//! right credentials pass, anything else is refused before the message is
//! read, counted, and logged without the credential.

use ::http::{Method, StatusCode};
use auditcol_core::BuildContext;
use auditcol_core::auth::GRPC_UNAUTHENTICATED;
use auditcol_core::component::Host;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use tonic::Code;
use tonic::metadata::MetadataValue;

use super::http::send;
use super::*;
use crate::ingest::RpcStatus;

const TOKEN: &str = "receiver-test-token-7f3a";
/// `printf basic-test-pw | openssl dgst -sha1 -binary | base64`
const HTPASSWD: &str = "flipt:{SHA}GbkOdOsgFIUKF77lIkD+1Y1Ld+8=";
/// base64 of `flipt:basic-test-pw`
const BASIC: &str = "Basic ZmxpcHQ6YmFzaWMtdGVzdC1wdw==";

fn host() -> Host {
    auditcol_extension_auth::test_host(
        &[
            ("bearertokenauth/ingest", json!({"token": TOKEN})),
            (
                "basicauth/ingest",
                json!({"htpasswd": {"inline": HTPASSWD}}),
            ),
            (
                "basicauth/client",
                json!({"client_auth": {"username": "u", "password": "p"}}),
            ),
        ],
        &["bearertokenauth/off"],
    )
    .unwrap()
}

/// A receiver on both protocols, `grpc_auth` / `http_auth` naming authenticators.
async fn start_with_auth(grpc_auth: Option<&str>, http_auth: Option<&str>) -> Running {
    let mut protocols = json!({
        "grpc": {"endpoint": "127.0.0.1:0"},
        "http": {"endpoint": "127.0.0.1:0"},
    });
    if let Some(id) = grpc_auth {
        protocols["grpc"]["auth"] = json!({"authenticator": id});
    }
    if let Some(id) = http_auth {
        protocols["http"]["auth"] = json!({"authenticator": id});
    }
    let config: OtlpReceiverConfig =
        parse_component_config(&json!({"protocols": protocols})).unwrap();
    let consumer = TestConsumer::new();
    let receiver = OtlpReceiver::new(ComponentId::new("otlp", None), config, consumer.clone())
        .with_authenticators(&host())
        .unwrap();
    let receiver = Arc::new(receiver);
    receiver.start().await.unwrap();
    Running { receiver, consumer }
}

async fn post(running: &Running, headers: &[(&str, &str)]) -> auditcol_testkit::Reply {
    send(
        running.addr("http"),
        Method::POST,
        "/v1/logs",
        headers,
        LogBatch::sample_audit(2).encode_protobuf(),
    )
    .await
}

async fn grpc_export(running: &Running, authorization: Option<&str>) -> Result<(), tonic::Status> {
    let mut client = LogsServiceClient::connect(running.grpc_url())
        .await
        .unwrap();
    let batch = LogBatch::sample_audit(2).encode_protobuf();
    let mut request = tonic::Request::new(prost::Message::decode(batch.as_slice()).unwrap());
    if let Some(value) = authorization {
        request
            .metadata_mut()
            .insert("authorization", MetadataValue::try_from(value).unwrap());
    }
    client.export(request).await.map(|_| ())
}

#[tokio::test]
async fn http_with_the_right_bearer_token_reaches_the_pipeline() {
    let running = start_with_auth(None, Some("bearertokenauth/ingest")).await;
    let bearer = format!("Bearer {TOKEN}");
    let reply = post(
        &running,
        &[
            ("content-type", "application/x-protobuf"),
            ("authorization", &bearer),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert_eq!(running.consumer.records(), 2);
    assert_eq!(running.receiver.unauthenticated_requests(), 0);
}

#[tokio::test]
async fn http_without_or_with_a_wrong_token_is_401_in_the_requests_encoding_and_nothing_enters() {
    let (log, _guard) = auditcol_testkit::CapturedLog::start();
    let running = start_with_auth(None, Some("bearertokenauth/ingest")).await;
    let reply = post(&running, &[("content-type", "application/json")]).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(
        reply.json(),
        json!({"code": GRPC_UNAUTHENTICATED, "message": "no authorization header"})
    );

    let reply = post(
        &running,
        &[
            ("content-type", "application/x-protobuf"),
            ("authorization", "Bearer guessed-token-1234"),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.header("content-type"), Some("application/x-protobuf"));
    let status: RpcStatus = prost::Message::decode(&reply.body[..]).unwrap();
    assert_eq!(status.code, 16);
    assert_eq!(
        status.message,
        "the token is not one of the configured tokens"
    );

    assert_eq!(
        running.consumer.records(),
        0,
        "nothing entered the pipeline"
    );
    assert_eq!(running.receiver.unauthenticated_requests(), 2);
    let text = log.text();
    assert!(
        text.contains("refused a request: not authenticated"),
        "{text}"
    );
    assert!(text.contains("client=127.0.0.1:"), "{text}");
    assert!(!text.contains("guessed-token"), "{text}");
}

#[tokio::test]
async fn http_credentials_are_checked_before_the_body_is_read() {
    let running = start_with_auth(None, Some("bearertokenauth/ingest")).await;
    // A declared body far over the limit and a body that is no protobuf:
    // without credentials, neither is looked at.
    let too_large = (64 * 1024 * 1024).to_string();
    for headers in [
        vec![
            ("content-type", "application/x-protobuf"),
            ("content-length", too_large.as_str()),
        ],
        vec![("content-type", "text/plain")],
    ] {
        let reply = send(
            running.addr("http"),
            Method::POST,
            "/v1/logs",
            &headers,
            b"not protobuf".to_vec(),
        )
        .await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{headers:?}");
    }
}

#[tokio::test]
async fn http_basic_auth_checks_the_htpasswd_entry() {
    let running = start_with_auth(None, Some("basicauth/ingest")).await;
    let reply = post(
        &running,
        &[
            ("content-type", "application/x-protobuf"),
            ("authorization", BASIC),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    let reply = post(
        &running,
        &[
            ("content-type", "application/x-protobuf"),
            // flipt:wrong-password
            ("authorization", "Basic ZmxpcHQ6d3JvbmctcGFzc3dvcmQ="),
        ],
    )
    .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        reply.header("www-authenticate"),
        Some("Basic realm=\"auditcol\"")
    );
    assert_eq!(running.consumer.records(), 2, "only the first request's");
}

#[tokio::test]
async fn grpc_with_the_right_token_is_accepted_and_otherwise_unauthenticated() {
    let (log, _guard) = auditcol_testkit::CapturedLog::start();
    let running = start_with_auth(Some("bearertokenauth/ingest"), None).await;
    grpc_export(&running, Some(&format!("Bearer {TOKEN}")))
        .await
        .unwrap();
    assert_eq!(running.consumer.records(), 2);

    let status = grpc_export(&running, None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "no authorization header");
    let status = grpc_export(&running, Some("Bearer guessed-token-5678"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        !status.message().contains("guessed"),
        "{}",
        status.message()
    );

    assert_eq!(running.consumer.records(), 2, "nothing more entered");
    assert_eq!(running.receiver.unauthenticated_requests(), 2);
    let text = log.text();
    assert!(
        text.contains("protocol=\"grpc\"") || text.contains("protocol=grpc"),
        "{text}"
    );
    assert!(text.contains("client=127.0.0.1:"), "{text}");
    assert!(!text.contains("guessed-token"), "{text}");
}

#[tokio::test]
async fn grpc_basic_auth_checks_the_htpasswd_entry() {
    let running = start_with_auth(Some("basicauth/ingest"), None).await;
    grpc_export(&running, Some(BASIC)).await.unwrap();
    let status = grpc_export(&running, Some(&format!("Bearer {TOKEN}")))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(running.consumer.records(), 2);
}

#[tokio::test]
async fn auth_applies_to_the_protocol_it_is_set_on_only() {
    let running = start_with_auth(Some("bearertokenauth/ingest"), None).await;
    let reply = post(&running, &[("content-type", "application/x-protobuf")]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    assert!(grpc_export(&running, None).await.is_err());
}

#[test]
fn an_authenticator_that_cannot_be_used_is_a_config_error_at_its_key() {
    let build = |protocol: &str, id: &str| {
        let config = json!({"protocols": {protocol: {"auth": {"authenticator": id}}}});
        OtlpReceiverFactory
            .build(
                &BuildContext::new(ComponentId::new("otlp", None)).with_host(host()),
                &config,
                TestConsumer::new(),
            )
            .err()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        build("grpc", "bearertokenauth/none"),
        "protocols.grpc.auth.authenticator: extension `bearertokenauth/none` is not defined in the `extensions` section"
    );
    assert_eq!(
        build("http", "bearertokenauth/off"),
        "protocols.http.auth.authenticator: extension `bearertokenauth/off` is defined but not enabled: list it in `service.extensions`"
    );
    assert!(
        build("http", "basicauth/client").starts_with(
            "protocols.http.auth.authenticator: extension `basicauth/client` is not a server authenticator"
        )
    );
    let err = OtlpReceiverFactory
        .build(
            &BuildContext::new(ComponentId::new("otlp", None)),
            &json!({"protocols": {"grpc": {"auth": {}}}}),
            TestConsumer::new(),
        )
        .err()
        .unwrap();
    assert_eq!(err.path, "protocols.grpc.auth");
    assert!(
        err.message.contains("missing field `authenticator`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_receiver_with_auth_never_serves_without_its_authenticator() {
    let config: OtlpReceiverConfig = parse_component_config(&json!({"protocols": {
        "http": {"endpoint": "127.0.0.1:0", "auth": {"authenticator": "bearertokenauth/ingest"}},
    }}))
    .unwrap();
    let receiver = OtlpReceiver::new(ComponentId::new("otlp", None), config, TestConsumer::new());
    let err = receiver.start().await.unwrap_err().to_string();
    assert!(
        err.contains("protocols.http.auth is set but no authenticator was resolved"),
        "{err}"
    );
    assert!(receiver.local_addrs().is_empty());
}
