//! The `webhook` exporter against real HTTP servers on 127.0.0.1 (ports
//! chosen by the OS) that answer as each test scripts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditcol_core::component::ComponentId;
use auditcol_core::config::parse_component_config;
use auditcol_core::exporterhelper::ExporterHelper;
use auditcol_core::model::AuditEvent;
use auditcol_core::signature::BodySigner;
use auditcol_core::{Component, LogBatch, LogsConsumer};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::time::Instant;

use super::*;

/// How the sink answers one request.
#[derive(Clone, Copy, Debug)]
enum Answer {
    Ok,
    /// A status, with `Retry-After` seconds when given.
    Status(u16, Option<u64>),
    /// Takes the request, then answers 200 only after this long.
    SlowOk(Duration),
}

/// One request as the sink saw it.
#[derive(Clone, Debug)]
struct Received {
    method: HttpMethod,
    headers: HeaderMap,
    body: Bytes,
    at: Instant,
    answer: Answer,
}

impl Received {
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    /// Whether the sink took the events (a 2xx, however late).
    fn accepted(&self) -> bool {
        matches!(self.answer, Answer::Ok | Answer::SlowOk(_))
    }
}

/// An HTTP server on 127.0.0.1:0 that records every request and answers
/// the n-th (from 0) as `script(n)` says.
struct Sink {
    url: String,
    received: Mutex<Vec<Received>>,
    script: Box<dyn Fn(usize) -> Answer + Send + Sync>,
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
}

impl Sink {
    async fn start(script: impl Fn(usize) -> Answer + Send + Sync + 'static) -> Arc<Sink> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let sink = Arc::new(Sink {
            url: format!("http://{}/hook", listener.local_addr().unwrap()),
            received: Mutex::new(Vec::new()),
            script: Box::new(script),
            in_flight: AtomicUsize::new(0),
            most_in_flight: AtomicUsize::new(0),
        });
        let state = sink.clone();
        let app = axum::Router::new().fallback(
            move |method: HttpMethod, headers: HeaderMap, body: Bytes| {
                let sink = state.clone();
                async move { sink.handle(method, headers, body).await }
            },
        );
        tokio::spawn(async move { axum::serve(listener, app).await });
        sink
    }

    async fn handle(&self, method: HttpMethod, headers: HeaderMap, body: Bytes) -> Response {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = {
            let mut received = self.received.lock().unwrap();
            let answer = (self.script)(received.len());
            received.push(Received {
                method,
                headers,
                body,
                at: Instant::now(),
                answer,
            });
            answer
        };
        let response = match answer {
            Answer::Ok => StatusCode::OK.into_response(),
            Answer::SlowOk(delay) => {
                tokio::time::sleep(delay).await;
                StatusCode::OK.into_response()
            }
            Answer::Status(code, retry_after) => {
                let mut response = (
                    StatusCode::from_u16(code).unwrap(),
                    r#"{"message":"scripted failure"}"#,
                )
                    .into_response();
                if let Some(seconds) = retry_after {
                    response
                        .headers_mut()
                        .insert("retry-after", seconds.to_string().parse().unwrap());
                }
                response
            }
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        response
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The events of every accepted request, in arrival order.
    fn accepted_events(&self) -> Vec<serde_json::Value> {
        let mut events = Vec::new();
        for r in self.received().iter().filter(|r| r.accepted()) {
            match r.json() {
                serde_json::Value::Array(list) => events.extend(list),
                one => events.push(one),
            }
        }
        events
    }
}

/// Audit events `flag:created`, `segment:deleted`, `flag:updated`,
/// `variant:created`… with payload keys `flag-<n>`, stamped with ids.
fn batch(n: usize) -> LogBatch {
    let mut batch = LogBatch::sample_audit(n);
    batch.prepare_ingest(1_714_557_700_000_000_000, "upstream");
    batch
}

fn key(event: &serde_json::Value) -> String {
    event["payload"]["key"].as_str().unwrap().to_owned()
}

/// Fast retries, so that a test waits only where the server says so.
fn fast_retries() -> serde_json::Value {
    json!({"initial_interval": "20ms", "max_interval": "50ms", "randomization_factor": 0})
}

/// A started exporter, built as the factory builds it.
async fn exporter(mut config: serde_json::Value) -> Arc<ExporterHelper> {
    if config.get("retry_on_failure").is_none() {
        config["retry_on_failure"] = fast_retries();
    }
    let config: WebhookExporterConfig = parse_component_config(&config).unwrap();
    let exporter = Arc::new(ExporterHelper::new(
        &BuildContext::new(ComponentId::new(TYPE_NAME, Some("test"))),
        config.helper_settings(),
        Arc::new(WebhookSender::new("webhook/test", &config)),
    ));
    exporter.start().await.unwrap();
    exporter
}

/// (sent, failed) records so far.
fn exporter_counters(exporter: &ExporterHelper) -> (u64, u64) {
    (
        exporter.counters().sent_records(),
        exporter.counters().failed_records(),
    )
}

/// `n` audit events whose payload keys are `flag-<first>`…, nouns in turn.
fn numbered_batch(first: usize, n: usize) -> LogBatch {
    let nouns = ["flag", "segment", "variant"];
    let events: Vec<AuditEvent> = (first..first + n)
        .map(|i| {
            let mut e = AuditEvent::new(nouns[i % nouns.len()], "updated");
            e.payload = json!({"key": format!("flag-{i}")});
            e.timestamp = 1_714_557_600_000_000_000;
            e
        })
        .collect();
    let mut batch = LogBatch::from_events("test", &events);
    batch.prepare_ingest(1_714_557_700_000_000_000, "upstream");
    batch
}

#[tokio::test]
async fn each_event_is_posted_as_its_flipt_json_with_its_signature() {
    let sink = Sink::start(|_| Answer::Ok).await;
    let exporter = exporter(json!({
        "endpoint": sink.url, "signing_secret": "s3cret", "signature": "flipt",
        "headers": {"authorization": "Bearer t"},
    }))
    .await;
    let batch = batch(3);
    exporter.consume(batch.clone()).await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 3);
    let signer = BodySigner::new("s3cret");
    let mut expected: Vec<Vec<u8>> = batch
        .records()
        .map(|r| {
            let mut json = Vec::new();
            assert!(r.write_audit_json(&mut json));
            json
        })
        .collect();
    let mut bodies: Vec<Vec<u8>> = received.iter().map(|r| r.body.to_vec()).collect();
    expected.sort();
    bodies.sort();
    assert_eq!(bodies, expected, "exactly the event JSON, one per request");
    for r in &received {
        assert_eq!(r.method, HttpMethod::POST);
        assert_eq!(r.headers["content-type"], "application/json");
        assert_eq!(r.headers["authorization"], "Bearer t");
        assert_eq!(
            r.headers["x-flipt-webhook-signature"],
            signer.sign_hex(&r.body).as_str()
        );
        let event = r.json();
        assert_eq!(event["version"], "0.2");
        assert_eq!(event["status"], "success");
    }
}

#[tokio::test]
async fn put_and_the_default_signature_header() {
    let sink = Sink::start(|_| Answer::Ok).await;
    let exporter =
        exporter(json!({"endpoint": sink.url, "method": "PUT", "signing_secret": "k"})).await;
    exporter.consume(batch(1)).await.unwrap();
    let r = &sink.received()[0];
    assert_eq!(r.method, HttpMethod::PUT);
    assert_eq!(
        r.headers["x-auditcol-signature"],
        BodySigner::new("k").sign_hex(&r.body).as_str()
    );
}

#[tokio::test]
async fn without_a_secret_no_signature_is_sent() {
    let sink = Sink::start(|_| Answer::Ok).await;
    let exporter = exporter(json!({"endpoint": sink.url})).await;
    exporter.consume(batch(1)).await.unwrap();
    let r = &sink.received()[0];
    assert!(r.headers.get("x-auditcol-signature").is_none());
}

#[tokio::test]
async fn batch_mode_posts_json_arrays_of_at_most_max_events_per_request() {
    let sink = Sink::start(|_| Answer::Ok).await;
    let exporter = exporter(json!({
        "endpoint": sink.url, "mode": "batch", "max_events_per_request": 2,
        "signing_secret": "s", "signature": "flagsmith",
    }))
    .await;
    exporter.consume(batch(5)).await.unwrap();
    let received = sink.received();
    let sizes: Vec<usize> = received
        .iter()
        .map(|r| r.json().as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![2, 2, 1], "in batch order, one after another");
    let keys: Vec<String> = sink.accepted_events().iter().map(key).collect();
    assert_eq!(keys, ["flag-0", "flag-1", "flag-2", "flag-3", "flag-4"]);
    for r in &received {
        assert_eq!(
            r.headers["x-flagsmith-signature"],
            BodySigner::new("s").sign_hex(&r.body).as_str()
        );
    }
}

#[tokio::test]
async fn a_template_renders_a_slack_message() {
    let sink = Sink::start(|_| Answer::Ok).await;
    let exporter = exporter(json!({
        "endpoint": sink.url,
        "template": {
            "body": r#"{"text": {{ ("*" ~ type ~ ":" ~ action ~ "* by " ~ (metadata.actor.ip | default("system")) ~ " — " ~ payload.key) | tojson }}, "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": {{ ("id: " ~ id) | tojson }}}]}]}"#,
        },
    }))
    .await;
    let batch = batch(1);
    let id = batch
        .records()
        .next()
        .unwrap()
        .audit_id()
        .unwrap()
        .to_owned();
    exporter.consume(batch).await.unwrap();
    let r = &sink.received()[0];
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json(),
        json!({"text": "*flag:created* by 127.0.0.1 — flag-0",
               "blocks": [{"type": "section", "fields": [{"type": "mrkdwn", "text": format!("id: {id}")}]}]})
    );
}

#[tokio::test]
async fn a_template_in_batch_mode_sees_the_events() {
    let sink = Sink::start(|_| Answer::Ok).await;
    let exporter = exporter(json!({
        "endpoint": sink.url, "mode": "batch",
        "template": {
            "body": "{% for e in events %}{{ e.type }}:{{ e.action }} {{ e.payload.key }}\n{% endfor %}",
            "content_type": "text/plain",
        },
    }))
    .await;
    exporter.consume(batch(2)).await.unwrap();
    let r = &sink.received()[0];
    assert_eq!(r.headers["content-type"], "text/plain");
    assert_eq!(
        std::str::from_utf8(&r.body).unwrap(),
        "flag:created flag-0\nsegment:deleted flag-1\n"
    );
}

#[tokio::test]
async fn an_event_whose_template_does_not_render_is_refused_and_the_others_are_sent() {
    let sink = Sink::start(|_| Answer::Ok).await;
    // The body for flag-1 is not JSON, and the content type says JSON.
    let exporter = exporter(json!({
        "endpoint": sink.url,
        "template": {"body": r#"{% if payload.key == "flag-1" %}oops{% else %}{"k": {{ payload.key | tojson }}}{% endif %}"#},
    }))
    .await;
    let batch = batch(3);
    let bad_id = batch
        .records()
        .nth(1)
        .unwrap()
        .audit_id()
        .unwrap()
        .to_owned();
    let err = exporter.consume(batch).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.message().contains("1 of 3 records were refused"),
        "{err}"
    );
    assert!(err.message().contains(&bad_id), "names the event: {err}");
    assert!(err.message().contains("not valid JSON"), "{err}");
    let mut keys: Vec<String> = sink
        .received()
        .iter()
        .map(|r| r.json()["k"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["flag-0", "flag-2"]);
}

#[tokio::test]
async fn a_503_with_retry_after_is_retried_after_the_wait_the_server_asked() {
    let sink = Sink::start(|n| {
        if n < 2 {
            Answer::Status(503, Some(1))
        } else {
            Answer::Ok
        }
    })
    .await;
    let exporter = exporter(json!({"endpoint": sink.url})).await;
    let begin = Instant::now();
    exporter.consume(batch(1)).await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 3);
    assert!(received[2].accepted());
    for pair in received.windows(2) {
        let waited = pair[1].at - pair[0].at;
        assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
    }
    assert!(begin.elapsed() >= Duration::from_secs(2));
}

#[tokio::test]
async fn a_400_is_reported_upstream_and_counted_while_other_events_flow() {
    // The second request of the batch is refused for good.
    let sink = Sink::start(|n| {
        if n == 1 {
            Answer::Status(400, None)
        } else {
            Answer::Ok
        }
    })
    .await;
    let exporter = exporter(json!({"endpoint": sink.url, "max_concurrent_requests": 1})).await;
    let err = exporter.consume(batch(4)).await.unwrap_err();
    assert!(err.is_permanent(), "{err:?}");
    assert!(
        err.message()
            .contains("1 of 4 records were refused for good"),
        "{err}"
    );
    assert!(
        err.message()
            .contains("answered HTTP 400: scripted failure"),
        "{err}"
    );
    assert_eq!(sink.received().len(), 4, "the 400 is not retried");
    assert_eq!(sink.accepted_events().len(), 3);
    // The next batch flows.
    exporter.consume(batch(2)).await.unwrap();
    assert_eq!(sink.accepted_events().len(), 5);
    let helper = exporter_counters(&exporter);
    assert_eq!(helper, (5, 1));
}

#[tokio::test]
async fn a_slow_answer_beyond_timeout_is_retried_and_acknowledged_once() {
    let sink = Sink::start(|n| {
        if n == 0 {
            Answer::SlowOk(Duration::from_secs(3))
        } else {
            Answer::Ok
        }
    })
    .await;
    let exporter = exporter(json!({"endpoint": sink.url, "timeout": "200ms"})).await;
    let begin = Instant::now();
    exporter.consume(batch(1)).await.unwrap();
    assert!(
        begin.elapsed() < Duration::from_secs(3),
        "did not wait for the slow answer"
    );
    let received = sink.received();
    assert_eq!(received.len(), 2, "sent again after the timeout");
    assert_eq!(received[0].body, received[1].body);
    assert_eq!(exporter_counters(&exporter), (1, 0), "one acknowledgement");
}

/// Every third request fails; every event must arrive, and duplicates are
/// exactly the requests the server took but answered too late.
async fn every_third_request_fails(failure: Answer) -> (Arc<Sink>, usize) {
    let sink = Sink::start(move |n| if n % 3 == 2 { failure } else { Answer::Ok }).await;
    let exporter = exporter(json!({"endpoint": sink.url, "timeout": "150ms"})).await;
    for round in 0..4 {
        exporter
            .consume(numbered_batch(10 * round, 10))
            .await
            .unwrap();
    }
    let mut arrived: HashMap<String, usize> = HashMap::new();
    for event in sink.accepted_events() {
        *arrived.entry(key(&event)).or_default() += 1;
    }
    for n in 0..40 {
        assert!(
            arrived.contains_key(&format!("flag-{n}")),
            "event {n} never arrived"
        );
    }
    assert_eq!(arrived.len(), 40);
    let duplicates = arrived.values().map(|n| n - 1).sum();
    (sink, duplicates)
}

#[tokio::test]
async fn every_third_request_failing_with_503_loses_nothing_and_duplicates_nothing() {
    let (sink, duplicates) = every_third_request_fails(Answer::Status(503, None)).await;
    assert_eq!(duplicates, 0);
    assert!(sink.received().len() > 40, "failures were retried");
}

#[tokio::test]
async fn every_third_request_timing_out_duplicates_only_what_the_server_took_late() {
    let (sink, duplicates) =
        every_third_request_fails(Answer::SlowOk(Duration::from_millis(400))).await;
    let late = sink
        .received()
        .iter()
        .filter(|r| matches!(r.answer, Answer::SlowOk(_)))
        .count();
    assert!(late > 0);
    assert_eq!(duplicates, late);
}

#[tokio::test]
async fn events_of_one_noun_arrive_in_batch_order_and_concurrency_is_bounded() {
    // The first request fails once: its lane waits, the others go on.
    let sink = Sink::start(|n| {
        if n == 0 {
            Answer::Status(503, None)
        } else {
            Answer::SlowOk(Duration::from_millis(20))
        }
    })
    .await;
    let exporter = exporter(json!({"endpoint": sink.url, "max_concurrent_requests": 2})).await;
    exporter.consume(numbered_batch(0, 16)).await.unwrap();
    assert!(sink.most_in_flight.load(Ordering::SeqCst) <= 2);
    let events = sink.accepted_events();
    assert_eq!(events.len(), 16, "each event once");
    let mut by_noun: HashMap<String, Vec<String>> = HashMap::new();
    for e in &events {
        by_noun
            .entry(e["type"].as_str().unwrap().to_owned())
            .or_default()
            .push(key(e));
    }
    for (noun, keys) in by_noun {
        let mut sorted = keys.clone();
        sorted.sort_by_key(|k| k[5..].parse::<usize>().unwrap());
        assert_eq!(keys, sorted, "{noun} out of order");
    }
}

#[tokio::test]
async fn records_that_are_not_audit_events_are_not_sent() {
    let sink = Sink::start(|_| Answer::Ok).await;
    let exporter = exporter(json!({"endpoint": sink.url})).await;
    // One audit event and one plain log record.
    exporter.consume(LogBatch::sample_varied()).await.unwrap();
    assert_eq!(sink.received().len(), 1);
    assert_eq!(exporter_counters(&exporter), (2, 0));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable_and_names_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    drop(listener);
    let exporter = exporter(json!({
        "endpoint": url,
        "retry_on_failure": {"enabled": false},
    }))
    .await;
    let err = exporter.consume(batch(2)).await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
    assert!(err.message().contains(&url), "{err}");
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let sink = Sink::start(|_| Answer::Status(302, None)).await;
    let exporter = exporter(json!({"endpoint": sink.url})).await;
    let err = exporter.consume(batch(1)).await.unwrap_err();
    assert!(err.is_permanent());
    assert!(err.message().contains("HTTP 302"), "{err}");
}

#[tokio::test]
async fn https_with_the_ca_file_delivers_and_without_it_is_refused() {
    use auditcol_testkit::pki::TestPki;
    use auditcol_testkit::tls::https_server;
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    let (url, requests) = https_server(&pki.server, None).await;
    let trusting = exporter(json!({"endpoint": url, "tls": {"ca_file": pki.ca}})).await;
    trusting.consume(batch(2)).await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let default_roots = exporter(json!({
        "endpoint": url,
        "retry_on_failure": {"enabled": false},
    }))
    .await;
    let err = default_roots.consume(batch(1)).await.unwrap_err();
    assert!(err.message().contains("certificate"), "{err}");
    assert_eq!(requests.load(Ordering::SeqCst), 2);
    let skipping = exporter(json!({"endpoint": url, "tls": {"insecure_skip_verify": true}})).await;
    skipping.consume(batch(1)).await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn mutual_tls_and_server_name_override() {
    use auditcol_testkit::pki::TestPki;
    use auditcol_testkit::tls::https_server;
    let dir = tempfile::tempdir().unwrap();
    let pki = TestPki::generate(dir.path());
    // A certificate for a name, not for the address the endpoint has.
    let named = pki
        .authority
        .server(&["siem.internal"])
        .write(dir.path(), "named");
    let (url, requests) = https_server(&named, Some(&pki.ca)).await;
    let by_address = exporter(json!({
        "endpoint": url,
        "retry_on_failure": {"enabled": false},
        "tls": {"ca_file": pki.ca, "cert_file": pki.client.cert, "key_file": pki.client.key},
    }))
    .await;
    let err = by_address.consume(batch(1)).await.unwrap_err();
    assert!(err.message().contains("not valid for name"), "{err}");
    let without_certificate = exporter(json!({
        "endpoint": url,
        "retry_on_failure": {"enabled": false},
        "tls": {"ca_file": pki.ca, "server_name_override": "siem.internal"},
    }))
    .await;
    assert!(without_certificate.consume(batch(1)).await.is_err());
    assert_eq!(requests.load(Ordering::SeqCst), 0);
    let both = exporter(json!({
        "endpoint": url,
        "tls": {
            "ca_file": pki.ca, "server_name_override": "siem.internal",
            "cert_file": pki.client.cert, "key_file": pki.client.key,
        },
    }))
    .await;
    both.consume(batch(1)).await.unwrap();
    assert_eq!(requests.load(Ordering::SeqCst), 1);
}

#[test]
fn tls_with_an_http_endpoint_or_insecure_is_refused() {
    let err = parse_component_config::<WebhookExporterConfig>(
        &json!({"endpoint": "http://h/hook", "tls": {"ca_file": "/ca.pem"}}),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "tls.ca_file: is unused: `endpoint` is an http:// URL (plain text); write https:// for TLS"
    );
    let err = parse_component_config::<WebhookExporterConfig>(
        &json!({"endpoint": "https://h/hook", "tls": {"insecure": true}}),
    )
    .unwrap_err();
    assert_eq!(err.path, "tls.insecure");
}

#[tokio::test]
async fn build_reports_config_errors_with_their_path() {
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, None));
    let err = WebhookExporterFactory
        .build(&ctx, &json!({"endpoint": "http://h", "signature": "flipt"}))
        .err()
        .unwrap();
    assert_eq!(err.path, "signature");
}

#[tokio::test]
async fn auth_adds_the_authenticators_header_to_every_request_besides_the_signature() {
    let host = auditcol_extension_auth::test_host(
        &[(
            "basicauth/siem",
            json!({"client_auth": {"username": "auditcol", "password": "pw"}}),
        )],
        &[],
    )
    .unwrap();
    let sink = Sink::start(|_| Answer::Ok).await;
    let ctx = BuildContext::new(ComponentId::new(TYPE_NAME, Some("test"))).with_host(host);
    let exporter = WebhookExporterFactory
        .build(
            &ctx,
            &json!({"endpoint": sink.url, "signing_secret": "s3cret",
                    "auth": {"authenticator": "basicauth/siem"},
                    "retry_on_failure": fast_retries()}),
        )
        .unwrap();
    exporter.start().await.unwrap();
    exporter.consume(batch(3)).await.unwrap();
    let received = sink.received();
    assert_eq!(received.len(), 3);
    for r in &received {
        // base64 of auditcol:pw
        assert_eq!(r.headers["authorization"], "Basic YXVkaXRjb2w6cHc=");
        assert!(r.headers.contains_key("x-auditcol-signature"));
    }
}
