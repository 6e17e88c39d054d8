//! The `webhook` receiver in the real binary: Flipt and Flagsmith feeding one
//! pipeline into a `file` exporter. Requests are signed with the Python
//! snippet of Flagsmith's documentation; outputs are compared byte for byte.

use std::time::{SystemTime, UNIX_EPOCH};

use auditcol_e2e::{Collector, HttpResponse, file_lines, http_post, sign_with_documented_snippet};

/// The secret of the Flagsmith documentation's snippet.
const FLAGSMITH_SECRET: &str = "my shared secret";
const FLIPT_SECRET: &str = "flipt webhook secret";

const CONFIG: &str = r#"
receivers:
  webhook/flipt:
    endpoint: "127.0.0.1:0"
    path: /flipt
    format: audit
    signing_secret: "flipt webhook secret"
  webhook/flagsmith:
    endpoint: "127.0.0.1:0"
    format: flagsmith
    signing_secret: "my shared secret"
exporters:
  file:
    path: "{DIR}/audit.jsonl"
    format: json
service:
  pipelines:
    logs:
      receivers: [webhook/flipt, webhook/flagsmith]
      exporters: [file]
"#;

fn post_flagsmith(collector: &Collector, signature: &str, body: &[u8]) -> HttpResponse {
    http_post(
        collector.component_endpoint("webhook/flagsmith"),
        "/",
        &[
            ("Content-Type", "application/json"),
            ("X-Flagsmith-Signature", signature),
        ],
        body,
    )
}

fn post_flipt(collector: &Collector, body: &[u8]) -> HttpResponse {
    let signature = sign_with_documented_snippet(FLIPT_SECRET, body);
    http_post(
        collector.component_endpoint("webhook/flipt"),
        "/flipt",
        &[
            ("Content-Type", "application/json"),
            ("x-flipt-webhook-signature", &signature),
        ],
        body,
    )
}

/// An audit-log entry as Flagsmith's organisation webhooks send it:
/// `json.dumps({"data": entry, "event_type": ...}, sort_keys=True)`.
const FLAGSMITH_REQUEST: &str = concat!(
    r#"{"data": {"author": {"email": "user@domain.com", "first_name": "Kyle", "id": 3, "last_login": null, "last_name": "Johnson", "uuid": "5e3f0b5a-3f3c-4d0e-9d53-0f6c2b1f7a10"}, "#,
    r#""created_date": "2024-05-01T10:00:00.123456Z", "environment": {"api_key": "ser.abc", "id": 12, "name": "production"}, "id": 812, "is_system_event": false, "#,
    r#""log": "Flag state updated for feature: my_feature", "project": {"id": 6, "name": "Project name", "organisation": 1}, "#,
    r#""related_object_id": 41, "related_object_type": "FEATURE_STATE", "related_object_uuid": null}, "event_type": "AUDIT_LOG_CREATED"}"#
);

const FLAGSMITH_LINE: &str = concat!(
    r#"{"version":"0.2","type":"feature_state","action":"updated","#,
    r#""metadata":{"actor":{"email":"user@domain.com","first_name":"Kyle","id":"3","last_name":"Johnson"}},"#,
    r#""payload":{"author":{"email":"user@domain.com","first_name":"Kyle","id":3,"last_login":null,"last_name":"Johnson","uuid":"5e3f0b5a-3f3c-4d0e-9d53-0f6c2b1f7a10"},"#,
    r#""created_date":"2024-05-01T10:00:00.123456Z","environment":{"api_key":"ser.abc","id":12,"name":"production"},"id":812,"is_system_event":false,"#,
    r#""log":"Flag state updated for feature: my_feature","project":{"id":6,"name":"Project name","organisation":1},"#,
    r#""related_object_id":41,"related_object_type":"FEATURE_STATE","related_object_uuid":null},"#,
    r#""timestamp":"2024-05-01T10:00:00.123456Z","status":"success"}"#
);

#[test]
fn a_request_signed_by_flagsmiths_documented_snippet_is_accepted_and_one_changed_byte_is_not() {
    let collector = Collector::start(CONFIG);
    let audit = collector.path("audit.jsonl");
    let body = FLAGSMITH_REQUEST.as_bytes();
    let signature = sign_with_documented_snippet(FLAGSMITH_SECRET, body);

    let reply = post_flagsmith(&collector, &signature, body);
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), r#"{"accepted":1}"#);
    assert_eq!(file_lines(&audit, 1), [FLAGSMITH_LINE]);

    // Same signature, one byte changed: a forgery.
    let mut forged = body.to_vec();
    let at = FLAGSMITH_REQUEST.find("my_feature").unwrap();
    forged[at] = b'M';
    let reply = post_flagsmith(&collector, &signature, &forged);
    assert_eq!(reply.status, 401, "{}", reply.text());
    assert!(
        reply.text().contains("does not match the body"),
        "{}",
        reply.text()
    );

    // A good request after it is written right after the first line: the
    // forged one never entered the pipeline.
    let good = FLAGSMITH_REQUEST.replace("\"id\": 812", "\"id\": 813");
    let reply = post_flagsmith(
        &collector,
        &sign_with_documented_snippet(FLAGSMITH_SECRET, good.as_bytes()),
        good.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    let lines = file_lines(&audit, 2);
    assert_eq!(
        lines,
        [
            FLAGSMITH_LINE.to_owned(),
            FLAGSMITH_LINE.replace("\"id\":812", "\"id\":813")
        ]
    );
    assert!(
        collector
            .log()
            .lines()
            .any(|l| l.contains("refused a request") && l.contains("reason=\"signature\"")),
        "{}",
        collector.log()
    );
}

/// The examples of the two seed documents, verbatim, and the line the
/// Flagsmith one must become (the receiver's unit tests read the same files).
const FLAGSMITH_SEED: &str =
    include_str!("../crates/auditcol-receiver-webhook/testdata/flagsmith-documented-entry.json");
const FLAGSMITH_SEED_LINE: &str = include_str!(
    "../crates/auditcol-receiver-webhook/testdata/flagsmith-documented-entry.expected.jsonl"
);
const FLIPT_SEED: &str =
    include_str!("../crates/auditcol-receiver-webhook/testdata/flipt-documented-event.json");

/// The seed event as Flipt's webhook sink sends it (`json.Marshal` of its
/// `audit.Event`: struct field order, payload keys sorted), at `timestamp`.
fn flipt_seed_as_sent(timestamp: &str) -> String {
    format!(
        concat!(
            r#"{{"version":"0.2","type":"flag","action":"created","#,
            r#""metadata":{{"actor":{{"authentication":"none","ip":"172.17.0.1"}}}},"#,
            r#""payload":{{"description":"flipt flag","enabled":true,"key":"flipt","name":"flipt","namespace_key":"default"}},"#,
            r#""timestamp":"{}","status":"success"}}"#
        ),
        timestamp
    )
}

#[test]
fn every_seed_example_comes_out_as_its_audit_event_line() {
    let collector = Collector::start(CONFIG);
    let audit = collector.path("audit.jsonl");

    let reply = post_flagsmith(
        &collector,
        &sign_with_documented_snippet(FLAGSMITH_SECRET, FLAGSMITH_SEED.as_bytes()),
        FLAGSMITH_SEED.as_bytes(),
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(file_lines(&audit, 1), [FLAGSMITH_SEED_LINE.trim_end()]);

    // The Flipt example's timestamp is the Unix epoch, which OTLP reads as
    // "unknown" (time_unix_nano 0): the output then carries the time the
    // event was received; everything else is what Flipt writes.
    let before = now_secs();
    let reply = post_flipt(&collector, FLIPT_SEED.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    let after = now_secs();
    let line = file_lines(&audit, 2).remove(1);
    let timestamp: serde_json::Value = serde_json::from_str(&line).unwrap();
    let timestamp = timestamp["timestamp"].as_str().unwrap().to_owned();
    assert_eq!(line, flipt_seed_as_sent(&timestamp));
    let received = rfc3339_secs(&timestamp);
    assert!(
        (before..=after).contains(&received),
        "{timestamp} is not the time of receipt"
    );
}

#[test]
fn the_flipt_seed_event_comes_out_byte_for_byte_as_flipt_writes_it() {
    let collector = Collector::start(CONFIG);
    let audit = collector.path("audit.jsonl");
    // The seed event as Flipt's sink sends it, at a real time.
    let seed = flipt_seed_as_sent("2024-05-01T10:00:00Z");
    // Every actor field of Flipt's `Actor` struct, in its declaration order.
    let full_actor = seed.replace(
        r#""actor":{"authentication":"none","ip":"172.17.0.1"}"#,
        r#""actor":{"authentication":"oidc","ip":"10.0.0.7","email":"kyle@example.com","name":"Kyle Johnson","picture":"https://example.com/k.png"}"#,
    );
    for (i, body) in [&seed, &full_actor].into_iter().enumerate() {
        let reply = post_flipt(&collector, body.as_bytes());
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(&file_lines(&audit, i + 1)[i], body, "byte for byte");
    }

    // The same event with its actor keys in another order (as a sorting
    // encoder would write them) and an empty field: written as Flipt's
    // encoder writes that event.
    let reordered = full_actor.replace(
        r#""actor":{"authentication":"oidc","ip":"10.0.0.7","email":"kyle@example.com","name":"Kyle Johnson","picture":"https://example.com/k.png"}"#,
        r#""actor":{"picture":"https://example.com/k.png","name":"Kyle Johnson","ip":"10.0.0.7","email":"kyle@example.com","authentication":"oidc","team":""}"#,
    );
    let reply = post_flipt(&collector, reordered.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(file_lines(&audit, 3)[2], full_actor);
}

#[test]
fn a_bad_event_refuses_its_whole_request_naming_it_and_good_requests_keep_flowing() {
    let collector = Collector::start(CONFIG);
    let audit = collector.path("audit.jsonl");
    let good = flipt_seed_as_sent("2024-05-01T10:00:00Z");
    let bad = flipt_seed_as_sent("2024-05-01 10:00");
    let ndjson = format!("{good}\n{good}\n{good}\n{bad}\n");
    let signature = sign_with_documented_snippet(FLIPT_SECRET, ndjson.as_bytes());
    let reply = http_post(
        collector.component_endpoint("webhook/flipt"),
        "/flipt",
        &[
            ("Content-Type", "application/x-ndjson"),
            ("x-flipt-webhook-signature", &signature),
        ],
        ndjson.as_bytes(),
    );
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        error["error"],
        "events[3].timestamp: not RFC 3339: `2024-05-01 10:00` (write e.g. `2024-05-01T10:00:00Z`)"
    );

    let other = good.replace("2024-05-01T10:00:00Z", "2024-05-01T10:00:01Z");
    let reply = post_flipt(&collector, other.as_bytes());
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        file_lines(&audit, 1),
        [other],
        "none of the refused request's events"
    );
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Whole seconds of an RFC 3339 UTC timestamp (`2024-05-01T10:00:00.5Z`).
fn rfc3339_secs(timestamp: &str) -> u64 {
    let nanos = auditcol_model::timestamp::parse_rfc3339(timestamp).unwrap();
    nanos / 1_000_000_000
}
