use std::collections::BTreeMap;

use super::*;
use crate::component::{Component, Extension};

/// Accepts `Authorization: let-me-in`; says so without the credential otherwise.
struct Gate;

#[async_trait]
impl ServerAuthenticator for Gate {
    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        match headers.get("authorization") {
            Some(v) if v == "let-me-in" => Ok(()),
            Some(_) => Err(AuthError::Unauthenticated("wrong credential".into())),
            None => Err(AuthError::Unauthenticated("no Authorization header".into())),
        }
    }

    fn challenge(&self) -> HeaderValue {
        HeaderValue::from_static("Test")
    }
}

struct Badge;

impl ClientAuthenticator for Badge {
    fn headers(&self) -> Result<HeaderMap, String> {
        let mut headers = HeaderMap::new();
        headers.insert("authorization", HeaderValue::from_static("let-me-in"));
        Ok(headers)
    }
}

/// An extension with the given sides.
struct Ext {
    server: bool,
    client: bool,
}

impl Component for Ext {}

impl Extension for Ext {
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
    fn server_authenticator(&self) -> Option<Arc<dyn ServerAuthenticator>> {
        self.server
            .then(|| Arc::new(Gate) as Arc<dyn ServerAuthenticator>)
    }
    fn client_authenticator(&self) -> Option<Arc<dyn ClientAuthenticator>> {
        self.client
            .then(|| Arc::new(Badge) as Arc<dyn ClientAuthenticator>)
    }
}

fn host() -> Host {
    let mut enabled: BTreeMap<ComponentId, Arc<dyn Extension>> = BTreeMap::new();
    for (name, server, client) in [("both", true, true), ("server", true, false)] {
        enabled.insert(
            ComponentId::new("test", Some(name)),
            Arc::new(Ext { server, client }),
        );
    }
    enabled.insert(
        ComponentId::new("health", None),
        Arc::new(Ext {
            server: false,
            client: false,
        }),
    );
    Host::new(enabled, vec![ComponentId::new("test", Some("off"))])
}

fn settings(id: &str) -> AuthSettings {
    AuthSettings {
        authenticator: id.to_owned(),
    }
}

#[test]
fn an_authenticator_is_found_by_id_for_the_side_it_offers() {
    let host = host();
    assert!(settings("test/both").server_authenticator(&host).is_ok());
    assert!(settings("test/both").client_authenticator(&host).is_ok());
    assert!(settings("test/server").server_authenticator(&host).is_ok());
}

#[test]
fn references_say_what_is_wrong_at_the_authenticator_key() {
    let host = host();
    let server = |id: &str| settings(id).server_authenticator(&host).err().unwrap();
    let client = |id: &str| settings(id).client_authenticator(&host).err().unwrap();
    let cases = [
        (
            server("test/none"),
            "authenticator: extension `test/none` is not defined in the `extensions` section",
        ),
        (
            server("test/off"),
            "authenticator: extension `test/off` is defined but not enabled: list it in `service.extensions`",
        ),
        (
            server("health"),
            "authenticator: extension `health` is not a server authenticator",
        ),
        (
            client("test/server"),
            "authenticator: extension `test/server` is not a client authenticator",
        ),
        (client("Not An Id"), "authenticator: invalid component id"),
    ];
    for (err, want) in cases {
        assert_eq!(err.path, "authenticator");
        assert!(err.to_string().starts_with(want), "{err}\nwanted: {want}");
    }
}

#[test]
fn auth_settings_take_only_the_authenticator_key() {
    let err = crate::config::parse_component_config::<Wrapper>(
        &serde_json::json!({"auth": {"authenticator": "x", "token": "t"}}),
    )
    .unwrap_err();
    assert_eq!(err.path, "auth.token");
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Wrapper {
    auth: AuthSettings,
}
impl crate::config::Validate for Wrapper {}

fn request_auth(refusals: &AuthRefusals) -> RequestAuth {
    RequestAuth::new(
        Arc::new(Gate),
        &ComponentId::new("otlp", Some("in")),
        "http",
        refusals.clone(),
    )
}

fn with(value: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", HeaderValue::from_str(value).unwrap());
    headers
}

#[tokio::test(start_paused = true)]
async fn refusals_are_counted_and_logged_first_then_summed_up_without_the_credential() {
    let (log, _guard) = auditcol_testkit::CapturedLog::start();
    let refusals = AuthRefusals::default();
    let auth = request_auth(&refusals);
    let client: SocketAddr = "192.0.2.7:40000".parse().unwrap();

    auth.check(&with("let-me-in"), Some(client)).await.unwrap();
    assert_eq!(refusals.get(), 0);
    assert_eq!(auth.challenge(), "Test");

    let err = auth
        .check(&with("guessed-credential"), Some(client))
        .await
        .unwrap_err();
    assert_eq!(err, AuthError::Unauthenticated("wrong credential".into()));
    for _ in 0..4 {
        auth.check(&HeaderMap::new(), None).await.unwrap_err();
    }
    assert_eq!(refusals.get(), 5);
    let text = log.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("client=192.0.2.7:40000"), "{text}");
    assert!(text.contains("reason=wrong credential"), "{text}");
    assert!(text.contains("component=otlp/in"), "{text}");

    // The summary comes at the end of the window, with the last refusal's client and reason.
    tokio::time::sleep(REFUSAL_LOG_WINDOW).await;
    tokio::task::yield_now().await;
    let text = log.text();
    assert_eq!(text.lines().count(), 2, "{text}");
    let summary = text.lines().nth(1).unwrap();
    assert!(summary.contains("refused 4 more unauthenticated requests in the last 10s"));
    assert!(summary.contains("last_client=unknown"), "{summary}");
    assert!(summary.contains("last_reason=no Authorization header"));

    // The next refusal is logged in full again.
    auth.check(&with("another-guess"), Some(client))
        .await
        .unwrap_err();
    let text = log.text();
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        !text.contains("guess"),
        "the credential is never logged:\n{text}"
    );
    assert_eq!(refusals.get(), 6);
}

#[test]
fn the_log_window_logs_one_then_counts_until_it_closes() {
    let start = Instant::now();
    let mut window = LogWindow::default();
    let refuse = |w: &mut LogWindow, after_ms: u64, n: &str| {
        w.refused(
            start + Duration::from_millis(after_ms),
            format!("client{n}"),
            format!("reason{n}"),
        )
    };
    assert_eq!(refuse(&mut window, 0, "1"), LogAction::Log);
    assert_eq!(
        refuse(&mut window, 5, "2"),
        LogAction::Count {
            schedule_summary_at: Some(start + REFUSAL_LOG_WINDOW)
        }
    );
    assert_eq!(
        refuse(&mut window, 9_999, "3"),
        LogAction::Count {
            schedule_summary_at: None
        }
    );
    assert_eq!(
        window.summary(),
        Some(Summary {
            refused: 2,
            last_client: "client3".into(),
            last_reason: "reason3".into()
        })
    );
    assert_eq!(window.summary(), None, "closed: nothing more to say");
    // A window that passed without another refusal needs no summary.
    assert_eq!(refuse(&mut window, 20_000, "4"), LogAction::Log);
    assert_eq!(refuse(&mut window, 30_000, "5"), LogAction::Log);
}

#[test]
fn the_mapping_is_one_place_for_both_protocols() {
    let no = AuthError::Unauthenticated("x".into());
    assert_eq!(
        (no.http_status(), no.grpc_code(), no.retry_after_secs()),
        (401, 16, None)
    );
    let busy = AuthError::Unavailable("x".into());
    assert_eq!(
        (
            busy.http_status(),
            busy.grpc_code(),
            busy.retry_after_secs()
        ),
        (503, 14, Some(1))
    );
    assert_eq!(busy.reason(), "x");
}

#[tokio::test]
async fn refusals_are_counted_in_the_receivers_metrics_as_unauthenticated() {
    let telemetry = crate::telemetry::Telemetry::new(crate::telemetry::MetricsLevel::Normal);
    let id = ComponentId::new("otlp", Some("in"));
    let receiver = Arc::new(telemetry.receiver(&id, "http"));
    let auth = request_auth(&AuthRefusals::default()).with_telemetry(receiver);
    let labels = [
        ("receiver", "otlp/in"),
        ("transport", "http"),
        ("reason", "unauthenticated"),
    ];
    auth.check(&with("let-me-in"), None).await.unwrap();
    assert_eq!(
        telemetry.sample("auditcol_receiver_refused_requests_total", &labels),
        None,
        "a reason's series appears with its first refusal"
    );
    auth.check(&with("wrong"), None).await.unwrap_err();
    auth.check(&HeaderMap::new(), None).await.unwrap_err();
    assert_eq!(
        telemetry.sample("auditcol_receiver_refused_requests_total", &labels),
        Some(2.0)
    );
}
