//! The `webhook` exporter in the real binary, delivering to real HTTP
//! endpoints (Python's `http.server`) that check every request's signature
//! with the Python snippet of Flagsmith's documentation — one under
//! Flagsmith's header, one under Flipt's.

use auditcol_e2e::{Collector, WebhookSink as Sink, flipt_event, http_post};

const CONFIG: &str = r#"
receivers:
  webhook/in:
    endpoint: "127.0.0.1:0"
    format: audit
exporters:
  webhook/flagsmith:
    endpoint: "{FLAGSMITH_URL}"
    signing_secret: "{FLAGSMITH_SECRET}"
    signature: flagsmith
  webhook/flipt:
    endpoint: "{FLIPT_URL}"
    signing_secret: "flipt webhook secret"
    signature: flipt
    mode: batch
    max_events_per_request: 3
    retry_on_failure:
      enabled: false
service:
  pipelines:
    logs:
      receivers: [webhook/in]
      exporters: [webhook/flagsmith, webhook/flipt]
"#;

fn events(n: usize) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            let noun = ["flag", "segment", "variant"][i % 3];
            let timestamp = format!("2024-05-01T10:00:{i:02}Z");
            flipt_event(noun, "updated", &format!("key-{i}"), &timestamp)
        })
        .collect()
}

fn post_events(collector: &Collector, events: &[serde_json::Value]) -> auditcol_e2e::HttpResponse {
    let body = serde_json::to_vec(events).unwrap();
    http_post(
        collector.component_endpoint("webhook/in"),
        "/",
        &[("Content-Type", "application/json")],
        &body,
    )
}

#[test]
fn every_event_arrives_at_both_endpoints_and_every_signature_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let flagsmith = Sink::start(
        dir.path(),
        "flagsmith",
        "my shared secret",
        "X-Flagsmith-Signature",
    );
    let flipt = Sink::start(
        dir.path(),
        "flipt",
        "flipt webhook secret",
        "x-flipt-webhook-signature",
    );
    let collector = Collector::start(
        &CONFIG
            .replace("{FLAGSMITH_URL}", &flagsmith.url)
            .replace("{FLAGSMITH_SECRET}", "my shared secret")
            .replace("{FLIPT_URL}", &flipt.url),
    );
    let sent = events(10);
    for part in sent.chunks(5) {
        let reply = post_events(&collector, part);
        // 200 only once both exporters delivered every event.
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    let mut arrived = flagsmith.wait_for_events(10);
    assert!(arrived.iter().all(|(valid, _)| *valid), "{arrived:?}");
    assert_eq!(flagsmith.requests().len(), 10, "one request per event");
    let key = |e: &serde_json::Value| e["payload"]["key"].as_str().unwrap().to_owned();
    arrived.sort_by_key(|(_, e)| key(e));
    let events: Vec<_> = arrived.into_iter().map(|(_, e)| e).collect();
    assert_eq!(events, sent, "each event as it was sent, once");

    let arrived = flipt.wait_for_events(10);
    assert!(arrived.iter().all(|(valid, _)| *valid), "{arrived:?}");
    let sizes: Vec<usize> = flipt
        .requests()
        .iter()
        .map(|(_, b)| b.as_array().unwrap().len())
        .collect();
    assert_eq!(
        sizes,
        [3, 2, 3, 2],
        "arrays of at most 3, per incoming batch"
    );
    let events: Vec<_> = arrived.into_iter().map(|(_, e)| e).collect();
    assert_eq!(events, sent, "in order");
}

#[test]
fn an_endpoint_that_refuses_the_signature_fails_the_request_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let flagsmith = Sink::start(
        dir.path(),
        "flagsmith",
        "my shared secret",
        "X-Flagsmith-Signature",
    );
    let flipt = Sink::start(
        dir.path(),
        "flipt",
        "flipt webhook secret",
        "x-flipt-webhook-signature",
    );
    // The Flagsmith exporter signs with another secret: every request gets 401.
    let collector = Collector::start(
        &CONFIG
            .replace("{FLAGSMITH_URL}", &flagsmith.url)
            .replace("{FLAGSMITH_SECRET}", "not the shared secret")
            .replace("{FLIPT_URL}", &flipt.url),
    );
    let reply = post_events(&collector, &events(2));
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.text().contains("answered HTTP 401"),
        "the client hears why: {}",
        reply.text()
    );
    let requests = flagsmith.requests();
    assert_eq!(requests.len(), 2, "a 401 is not retried");
    assert!(requests.iter().all(|(valid, _)| !valid));
    collector.wait_for_log("the endpoint refused events for good");
    // The other exporter delivered.
    assert_eq!(flipt.wait_for_events(2).len(), 2);
}
